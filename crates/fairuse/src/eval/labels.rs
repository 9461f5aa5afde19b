//! Who each user is: the labels file.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;

use anyhow::{Context, anyhow};
use serde::Deserialize;

/// Who each user is. Users without a label get `default`.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub(super) by_uid: HashMap<String, String>,
    pub(super) default: String,
    /// Kind -> family set, from labels that name one.
    pub(super) sets: BTreeMap<String, String>,
    /// Kind -> the usage type a right verdict names, from labels that name one.
    pub(super) usage_types: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub(super) struct LabelLine {
    pub(super) uid: String,
    pub(super) kind: String,
    #[serde(default)]
    pub(super) set: Option<String>,
    #[serde(default)]
    pub(super) usage_type: Option<String>,
}

impl Labels {
    /// JSON lines `{"uid":..,"kind":..}`; users not listed are `unlabeled`.
    pub fn read<R: BufRead>(input: R) -> anyhow::Result<Labels> {
        let mut by_uid = HashMap::new();
        let (mut sets, mut usage_types) = (BTreeMap::new(), BTreeMap::new());
        for (n, line) in input.lines().enumerate() {
            let line = line.context("reading the labels")?;
            if line.trim().is_empty() {
                continue;
            }
            let l: LabelLine = serde_json::from_str(&line)
                .with_context(|| format!("labels line {}: expected {{\"uid\":..,\"kind\":..}}", n + 1))?;
            for (field, value, map) in [("set", l.set, &mut sets), ("usage_type", l.usage_type, &mut usage_types)] {
                let Some(value) = value else { continue };
                if let Some(before) = map.insert(l.kind.clone(), value.clone())
                    && before != value
                {
                    return Err(anyhow!(
                        "labels line {}: {field}: kind {} is {before:?} on an earlier line and {value:?} here",
                        n + 1,
                        l.kind
                    ));
                }
            }
            by_uid.insert(l.uid, l.kind);
        }
        Ok(Labels { by_uid, default: "unlabeled".into(), sets, usage_types })
    }

    /// The truth from a trace's `verdict` lines: a user whose highest scripted score qualifies is
    /// `abuser_<usage type>`, everyone else `honest`.
    pub fn from_verdicts<R: BufRead>(trace: R, qualify_score: f64) -> anyhow::Result<Labels> {
        #[derive(Deserialize)]
        pub(super) struct VerdictLine<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow, default)]
            uid: Option<Cow<'a, str>>,
            #[serde(default)]
            misuse_score: Option<f64>,
            #[serde(borrow, default)]
            usage_type: Option<Cow<'a, str>>,
        }
        let mut best: HashMap<String, (f64, String)> = HashMap::new();
        for (n, line) in trace.lines().enumerate() {
            let line = line.context("reading the trace for its verdict lines")?;
            if !line.contains("\"verdict\"") {
                continue;
            }
            let v: VerdictLine<'_> =
                serde_json::from_str(&line).with_context(|| format!("trace line {}: not JSON", n + 1))?;
            if v.kind != "verdict" {
                continue;
            }
            let (Some(uid), Some(score)) = (v.uid, v.misuse_score) else { continue };
            let ty = v.usage_type.as_deref().unwrap_or("unknown").to_owned();
            let e = best.entry(uid.into_owned()).or_insert((f64::NEG_INFINITY, String::new()));
            if score > e.0 {
                *e = (score, ty);
            }
        }
        let by_uid = best
            .into_iter()
            .map(|(uid, (score, ty))| {
                (uid, if score >= qualify_score { format!("abuser_{ty}") } else { "honest".into() })
            })
            .collect();
        Ok(Labels { by_uid, default: "honest".into(), ..Labels::default() })
    }

    pub fn kind(&self, uid: &str) -> &str {
        self.by_uid.get(uid).map_or(self.default.as_str(), String::as_str)
    }

    /// The family set of a kind, if the labels name one.
    pub fn set(&self, kind: &str) -> Option<&str> {
        self.sets.get(kind).map(String::as_str)
    }

    pub(super) fn kinds(&self) -> BTreeSet<String> {
        let mut kinds: BTreeSet<String> = self.by_uid.values().cloned().collect();
        kinds.insert(self.default.clone());
        kinds
    }
}
