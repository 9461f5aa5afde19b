//! The family files: their format, validation and loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use serde::{Deserialize, Serialize};

/// Whether a family's users abuse the service or use it honestly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Abuser,
    Honest,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Abuser => "abuser",
            Kind::Honest => "honest",
        }
    }
}

/// `[audio]`: what the streaming gateway hears in a family's sessions. Optional: without it the
/// family streams nothing through the gateway and only the host's metadata is seen. With it,
/// every session of a user is one gateway stream, written as a `stream_session` line (with the
/// stream's `audio`) when it ends; `simulate` and `eval` turn the audio into fingerprint codes
/// ([`crate::heard`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioPlan {
    pub source: AudioSource,
    /// `shared` and `own_loop`: recordings in the pool.
    #[serde(default)]
    pub recordings: u32,
    /// `shared`: the pool's name, `[a-z0-9_]+`; families naming the same pool hear the same
    /// recordings. The family's own name when absent.
    #[serde(default)]
    pub pool: Option<String>,
    /// `shared` and `own_loop`: minutes of each recording.
    #[serde(default)]
    pub recording_minutes: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioSource {
    /// People talking: audio nobody else ever hears.
    Live,
    /// Recordings from one pool shared by the family's users (the same books, episodes, videos),
    /// played through; at the end of one, a random one of the pool.
    Shared,
    /// Each user's own playlist of recordings, played in order and over again.
    OwnLoop,
    /// Users in pairs (users 1 and 2, 3 and 4, ...) who spend their days together: the same
    /// schedule and the same live audio at the same moment (two wearers in one room).
    CoLocated,
}

/// Who may look at a family: the heuristic's author (tuning) or nobody before the report (held out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FamilySet {
    #[value(name = "tuning")]
    Tuning,
    #[value(name = "held_out")]
    HeldOut,
}

impl FamilySet {
    pub fn as_str(self) -> &'static str {
        match self {
            FamilySet::Tuning => "tuning",
            FamilySet::HeldOut => "held_out",
        }
    }
}

/// How a user's conversations are titled, as weights.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleWeights {
    /// An LLM summary of the content ("Elizabeth Rejects Mr. Darcy's Proposal").
    pub summary: f64,
    /// A media-style or numbered title ("Kapitel 12", "Session 14 with client").
    pub media: f64,
    /// A plain title that says little ("Afternoon", "Quick chat").
    pub neutral: f64,
}

/// One language's titles and summaries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// How likely a user of the family has this as their main language.
    #[serde(default = "one")]
    pub weight: f64,
    /// `[title, overview]` pairs written as a host's summariser would.
    #[serde(default)]
    pub summaries: Vec<(String, String)>,
    /// Media-style or numbered title templates.
    #[serde(default)]
    pub media_titles: Vec<String>,
    /// Plain title templates.
    #[serde(default)]
    pub neutral_titles: Vec<String>,
    /// Overview templates for media and neutral titles.
    #[serde(default)]
    pub overviews: Vec<String>,
    /// What `{phrase}` becomes.
    #[serde(default)]
    pub phrases: Vec<String>,
    /// What `{name}` becomes.
    #[serde(default)]
    pub names: Vec<String>,
}

pub(super) fn one() -> f64 {
    1.0
}

pub(super) fn default_spread() -> f64 {
    0.1
}

/// One family file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// `[a-z0-9_]+`; the label kind is `<kind>_<name>`, user ids `<name>-NNN`.
    pub name: String,
    pub kind: Kind,
    pub set: FamilySet,
    pub description: String,
    /// For abusers: the usage type a right verdict names (audiobook, podcast, prerecorded,
    /// tv_movie, commercial).
    #[serde(default)]
    pub usage_type: Option<String>,
    /// Plan name -> weight.
    pub plans: BTreeMap<String, f64>,
    /// Category (free text the host sets) -> weight.
    pub categories: BTreeMap<String, f64>,
    pub style_weights: StyleWeights,
    /// Hours of wall time in sessions per day.
    pub daily_hours: [f64; 2],
    pub session_minutes: [f64; 2],
    pub session_gap_minutes: [f64; 2],
    pub conversation_minutes: [f64; 2],
    pub conversation_gap_minutes: [f64; 2],
    /// Speech per minute of conversation, as a share.
    pub density: [f64; 2],
    /// How much one minute's density strays from its conversation's (uniform +-).
    #[serde(default = "default_spread")]
    pub minute_spread: f64,
    /// Speakers the host reports per conversation.
    pub speakers: [u32; 2],
    /// Share of conversations whose host reports a speaker count at all.
    #[serde(default = "one")]
    pub speaker_count_share: f64,
    /// Words per minute of speech, for `word_count`; absent means no word count.
    #[serde(default)]
    pub words_per_minute: Option<[f64; 2]>,
    /// Honest users: the local hour their day starts.
    #[serde(default)]
    pub start_hour: Option<[f64; 2]>,
    /// Honest users: the UTC offsets (hours) they live in.
    #[serde(default)]
    pub utc_offsets: Vec<i32>,
    /// Share of users who also use a second language of the family now and then.
    #[serde(default)]
    pub second_language_share: f64,
    /// What the gateway hears, if the family streams through it.
    #[serde(default)]
    pub audio: Option<AudioPlan>,
    /// The day of the trace (0 = the first) the family's users start: later arrivals find the
    /// service, and its print index, already in use.
    #[serde(default)]
    pub start_day: u32,
    /// Language code -> titles.
    pub languages: BTreeMap<String, Language>,
}

pub(super) const PLACEHOLDERS: [&str; 5] = ["n", "season", "day", "phrase", "name"];
pub(super) const PLANS: [&str; 3] = ["free", "paid", "unlimited"];

impl Family {
    /// Parses and checks one family file's text.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Family> {
        let f: Family = toml::from_str(text)?;
        f.check()?;
        Ok(f)
    }

    /// `<kind>_<name>`, the label kind `fairuse eval` reports.
    pub fn label_kind(&self) -> String {
        format!("{}_{}", self.kind.as_str(), self.name)
    }

    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.name.is_empty()
            || self.name.len() > 100
            || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("name: {:?} must be 1-100 characters of [a-z0-9_]", self.name);
        }
        let range = |field: &str, r: [f64; 2], lo: f64, hi: f64| -> anyhow::Result<()> {
            if !(r[0].is_finite() && r[1].is_finite() && lo <= r[0] && r[0] <= r[1] && r[1] <= hi) {
                bail!("{field}: [{}, {}] must be an increasing pair within [{lo}, {hi}]", r[0], r[1]);
            }
            Ok(())
        };
        range("daily_hours", self.daily_hours, 0.1, 24.0)?;
        range("session_minutes", self.session_minutes, 1.0, 24.0 * 60.0)?;
        range("session_gap_minutes", self.session_gap_minutes, 0.0, 24.0 * 60.0)?;
        range("conversation_minutes", self.conversation_minutes, 1.0, 24.0 * 60.0)?;
        range("conversation_gap_minutes", self.conversation_gap_minutes, 0.0, 24.0 * 60.0)?;
        range("density", self.density, 0.0, 1.0)?;
        range("minute_spread", [0.0, self.minute_spread], 0.0, 1.0)?;
        range("speaker_count_share", [0.0, self.speaker_count_share], 0.0, 1.0)?;
        range("second_language_share", [0.0, self.second_language_share], 0.0, 1.0)?;
        if let Some(w) = self.words_per_minute {
            range("words_per_minute", w, 1.0, 400.0)?;
        }
        if self.speakers[0] == 0 || self.speakers[0] > self.speakers[1] || self.speakers[1] > 50 {
            bail!("speakers: [{}, {}] must be an increasing pair within [1, 50]", self.speakers[0], self.speakers[1]);
        }
        match (self.kind, self.start_hour) {
            (Kind::Honest, Some(h)) => range("start_hour", h, 0.0, 23.99)?,
            (Kind::Honest, None) => bail!("start_hour: honest families need the local hour their day starts"),
            (Kind::Abuser, Some(_)) => bail!("start_hour: abusers stream from the first hour; leave it out"),
            (Kind::Abuser, None) => {}
        }
        if self.kind == Kind::Honest && self.utc_offsets.is_empty() {
            bail!("utc_offsets: honest families need at least one");
        }
        if let Some(o) = self.utc_offsets.iter().find(|o| !(-12..=14).contains(*o)) {
            bail!("utc_offsets: {o} is not a UTC offset");
        }
        if let Some(t) = &self.usage_type
            && !["audiobook", "podcast", "prerecorded", "tv_movie", "commercial"].contains(&t.as_str())
        {
            bail!("usage_type: {t:?} is not audiobook, podcast, prerecorded, tv_movie or commercial");
        }
        if let Some(a) = &self.audio
            && matches!(a.source, AudioSource::Shared | AudioSource::OwnLoop)
        {
            if a.recordings == 0 || a.recordings > 10_000 {
                bail!("audio.recordings: {} must be 1-10000 for a shared or own_loop source", a.recordings);
            }
            if let Some(p) = &a.pool
                && (p.is_empty()
                    || p.len() > 100
                    || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            {
                bail!("audio.pool: {p:?} must be 1-100 characters of [a-z0-9_]");
            }
            match a.recording_minutes {
                Some(m) => range("audio.recording_minutes", m, 1.0, 24.0 * 60.0)?,
                None => bail!("audio.recording_minutes: needed for a shared or own_loop source"),
            }
        }
        weights("plans", &self.plans)?;
        if let Some(p) = self.plans.keys().find(|p| !PLANS.contains(&p.as_str())) {
            bail!("plans: {p:?} is not a shipped plan ({})", PLANS.join(", "));
        }
        weights("categories", &self.categories)?;
        let s = self.style_weights;
        if ![s.summary, s.media, s.neutral].iter().all(|w| w.is_finite() && *w >= 0.0)
            || s.summary + s.media + s.neutral <= 0.0
        {
            bail!("style_weights: weights must be >= 0 and not all 0");
        }
        if self.languages.is_empty() {
            bail!("languages: at least one");
        }
        for (code, l) in &self.languages {
            let at = |field: &str| format!("languages.{code}.{field}");
            if !(l.weight.is_finite() && l.weight > 0.0) {
                bail!("{}: must be > 0", at("weight"));
            }
            if (!l.media_titles.is_empty() || !l.neutral_titles.is_empty()) && l.overviews.is_empty() {
                bail!("{}: media and neutral titles need overviews", at("overviews"));
            }
            if styles_available(l, s).iter().all(|w| *w <= 0.0) {
                bail!("languages.{code}: no title style with a positive weight has titles");
            }
            let texts = l
                .summaries
                .iter()
                .flat_map(|(t, o)| [t, o])
                .chain(&l.media_titles)
                .chain(&l.neutral_titles)
                .chain(&l.overviews);
            for text in texts {
                if text.trim().is_empty() {
                    bail!("languages.{code}: an empty title or overview");
                }
                for p in placeholders(text) {
                    if !PLACEHOLDERS.contains(&p) {
                        bail!("languages.{code}: unknown placeholder {{{p}}} in {text:?}");
                    }
                    if p == "phrase" && l.phrases.is_empty() {
                        bail!("{}: {{phrase}} is used but there are no phrases", at("phrases"));
                    }
                    if p == "name" && l.names.is_empty() {
                        bail!("{}: {{name}} is used but there are no names", at("names"));
                    }
                }
            }
        }
        Ok(())
    }
}

pub(super) fn weights(field: &str, w: &BTreeMap<String, f64>) -> anyhow::Result<()> {
    if w.is_empty() || !w.values().all(|v| v.is_finite() && *v >= 0.0) || w.values().sum::<f64>() <= 0.0 {
        bail!("{field}: needs at least one entry, weights >= 0 and not all 0");
    }
    Ok(())
}

/// The family's style weights, zero where the language has no titles of that style.
pub(super) fn styles_available(l: &Language, s: StyleWeights) -> [f64; 3] {
    [
        if l.summaries.is_empty() { 0.0 } else { s.summary },
        if l.media_titles.is_empty() { 0.0 } else { s.media },
        if l.neutral_titles.is_empty() { 0.0 } else { s.neutral },
    ]
}

/// The names inside `{...}` of a template.
pub(super) fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

/// Reads every family: `<dir>/tuning/*.toml` and `<dir>/held_out/*.toml` (a file's `set` must
/// match its folder), sorted by name. Names are unique.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<Family>> {
    let mut families: Vec<Family> = Vec::new();
    for set in [FamilySet::Tuning, FamilySet::HeldOut] {
        let sub = dir.join(set.as_str());
        if !sub.is_dir() {
            continue;
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&sub)
            .with_context(|| format!("reading {}", sub.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", sub.display()))?;
        paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let f = Family::from_toml_str(&text).with_context(|| format!("family file {}", path.display()))?;
            if f.set != set {
                bail!(
                    "family file {}: set = {:?} but it is in the {} folder",
                    path.display(),
                    f.set.as_str(),
                    set.as_str()
                );
            }
            if families.iter().any(|g| g.name == f.name) {
                bail!("family file {}: another family is also named {:?}", path.display(), f.name);
            }
            families.push(f);
        }
    }
    if families.is_empty() {
        bail!("no family files in {}/tuning or {}/held_out", dir.display(), dir.display());
    }
    families.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(families)
}
