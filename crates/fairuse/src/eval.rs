//! `fairuse eval`: runs a labelled trace through the whole ladder (the real simulator, in process,
//! with the heuristic classifier by default) and reports per population what the service would
//! have done: who was detected, how long after their first usage abusers were restricted, which
//! honest users were warned, throttled or restricted by a misuse verdict, and how much STT audio
//! the budgets held back.
//!
//! Labels say who each user really is (`gen-trace --labels`, one `{"uid":..,"kind":..}` line per
//! user); kinds starting with `abuser` are abusers, every other kind is honest. A label may also
//! carry the `set` of the user's family (`gen-families --labels`: `tuning` or `held_out`) and the
//! `usage_type` a right verdict names; with sets, the report marks each row's set and adds a
//! summary per set, with the goal judged on the held-out families alone. Without a labels
//! file the trace's `verdict` lines are the truth (a qualifying score makes `abuser_<type>`).
//!
//! How it is measured:
//! * The trace is split by population and each part replayed by its own [`Simulator`] on its own
//!   thread (ticks go to every part). The simulator keeps no state across users but the case
//!   reference counter, so every outcome is what one simulator over the whole trace gives, and
//!   each part's closing summary is that population's exact STT saving.
//! * A stage is *reached* on an escalation (`stage_changed` to a higher stage). The verdict that
//!   drove it is the `classified` line just before. Escalations driven only by the synthetic
//!   `free_exhausted` verdict (a free-plan user whose host reported no credits left, SPEC
//!   section 3) are counted apart: they are the free tier working as designed, not a misuse call.
//! * Time to restrict is measured from the user's first usage report in the trace, so for an
//!   abuser who streams from the start it is the time of continuous abuse it took.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::{Context, anyhow};
use fairuse_domain::policy::Policy;
use fairuse_domain::time::{MS_PER_HOUR, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sim::{SimClassifier, Simulator, VerdictRecord};

/// Arguments of `fairuse eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// The trace (JSON lines), e.g. from `gen-trace`; `-` reads standard input (then --labels is needed).
    #[arg(long)]
    pub trace: String,
    /// Who each user is: JSON lines `{"uid":..,"kind":..}` as `gen-trace --labels` writes them.
    /// Without it the trace's `verdict` lines are the truth.
    #[arg(long)]
    pub labels: Option<String>,
    /// A policy file; the shipped default when absent.
    #[arg(long, env = "FAIRUSE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Which classifier answers: the built-in heuristic, or the trace's `verdict` lines.
    #[arg(long, value_enum, default_value = "heuristic")]
    pub classifier: SimClassifier,
    /// An abuser counts as caught when restricted within this many hours of their first usage.
    #[arg(long, default_value_t = 48)]
    pub within_hours: u32,
    /// Where the markdown report goes; `-` is standard output.
    #[arg(long, short, default_value = "-")]
    pub out: String,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<String>,
    /// Also write every classifier run to this file, one JSON line each: uid, label kind, hours
    /// since the user's first usage, conversations shown, score, usage type, recipes, the
    /// heuristic's signals, evidence and the most recent titles. A diagnostic for tuning.
    #[arg(long)]
    pub verdicts: Option<String>,
    /// With --verdicts: each line also carries the whole classifier input, to re-score offline.
    #[arg(long, requires = "verdicts")]
    pub verdict_inputs: bool,
}

/// One population's row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindRow {
    pub kind: String,
    /// The family set from the labels (`tuning`, `held_out`), if they name one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// Every kind not starting with `abuser` is honest.
    pub honest: bool,
    /// Users of this kind that appear in the trace.
    pub users: u64,
    /// Users the classifier ran for at least once.
    pub classified: u64,
    /// Users who reached warning / throttle / restrict through a misuse verdict (detections for
    /// abusers, false warnings / throttles / restricts for honest users).
    pub warned: u64,
    pub throttled: u64,
    pub restricted: u64,
    /// Users who reached a stage only through the synthetic `free_exhausted` verdict.
    pub free_exhausted_only: u64,
    /// Users restricted (by any verdict) within `within_hours` of their first usage.
    pub restricted_within: u64,
    /// Hours from first usage to restrict (by any verdict), over the users restricted.
    pub median_hours_to_restrict: Option<f64>,
    pub max_hours_to_restrict: Option<f64>,
    /// Abusers whose most frequent qualifying verdict names their own usage type.
    pub typed_right: u64,
    pub classifier_runs: u64,
    /// STT audio the budgets held back for this population (the simulator's own figure).
    pub stt_ms_saved: i64,
}

impl KindRow {
    /// Adds another population's counts, for a table's total row (per-user figures such as the
    /// median are not summed).
    fn add(&mut self, r: &KindRow) {
        self.users += r.users;
        self.classified += r.classified;
        self.warned += r.warned;
        self.throttled += r.throttled;
        self.restricted += r.restricted;
        self.free_exhausted_only += r.free_exhausted_only;
        self.restricted_within += r.restricted_within;
        self.typed_right += r.typed_right;
        self.classifier_runs += r.classifier_runs;
        self.stt_ms_saved += r.stt_ms_saved;
    }
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub classifier: String,
    pub within_hours: u32,
    /// Lines read from the trace.
    pub lines: u64,
    pub users: u64,
    pub classifier_runs: u64,
    pub stt_ms_saved: i64,
    /// Honest kinds first, then abusers, each alphabetical.
    pub rows: Vec<KindRow>,
    /// One summary per family set, when the labels name sets (held-out first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<SetSummary>,
}

/// What happened to one set of families (tuning or held out).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SetSummary {
    pub set: String,
    pub abuser_families: u64,
    pub abusers: u64,
    pub abusers_restricted_within: u64,
    pub honest_families: u64,
    pub honest_users: u64,
    /// Honest users warned (or more) by a misuse verdict.
    pub honest_warned: u64,
    pub honest_throttled: u64,
    pub honest_restricted: u64,
    /// At least 95 % of the abusers restricted within the window and no honest user warned.
    pub goal_met: bool,
}

impl SetSummary {
    fn of(set: &str, rows: &[KindRow]) -> SetSummary {
        let mut s = SetSummary { set: set.to_owned(), ..SetSummary::default() };
        for r in rows.iter().filter(|r| r.set.as_deref() == Some(set)) {
            if r.honest {
                s.honest_families += 1;
                s.honest_users += r.users;
                s.honest_warned += r.warned;
                s.honest_throttled += r.throttled;
                s.honest_restricted += r.restricted;
            } else {
                s.abuser_families += 1;
                s.abusers += r.users;
                s.abusers_restricted_within += r.restricted_within;
            }
        }
        s.goal_met = s.honest_warned == 0 && s.abusers_restricted_within * 100 >= s.abusers * 95;
        s
    }
}

impl EvalReport {
    fn rows_where(&self, honest: bool) -> impl Iterator<Item = &KindRow> {
        self.rows.iter().filter(move |r| r.honest == honest)
    }

    pub fn honest_users(&self) -> u64 {
        self.rows_where(true).map(|r| r.users).sum()
    }
    pub fn abusers(&self) -> u64 {
        self.rows_where(false).map(|r| r.users).sum()
    }
    /// Honest users throttled or restricted by a misuse verdict.
    pub fn false_throttles(&self) -> u64 {
        self.rows_where(true).map(|r| r.throttled).sum()
    }
    pub fn false_restricts(&self) -> u64 {
        self.rows_where(true).map(|r| r.restricted).sum()
    }
    pub fn false_warnings(&self) -> u64 {
        self.rows_where(true).map(|r| r.warned).sum()
    }
    pub fn abusers_restricted_within(&self) -> u64 {
        self.rows_where(false).map(|r| r.restricted_within).sum()
    }

    /// The bar: no honest user throttled or restricted, and at least 95 % of the abusers
    /// restricted within the window.
    pub fn goal_met(&self) -> bool {
        let abusers = self.abusers();
        self.false_throttles() == 0
            && self.false_restricts() == 0
            && (abusers == 0 || self.abusers_restricted_within() * 100 >= abusers * 95)
    }

    /// The summary of one family set (`held_out`, `tuning`), if the labels name it.
    pub fn set(&self, set: &str) -> Option<&SetSummary> {
        self.sets.iter().find(|s| s.set == set)
    }

    /// The report as markdown: one table for abusers, one for honest users, and the verdict on the
    /// goal; with family sets, a set column and a table per set with the held-out goal.
    pub fn markdown(&self) -> String {
        let with_sets = self.rows.iter().any(|r| r.set.is_some());
        let set_head = if with_sets { " set |" } else { "" };
        let set_rule = if with_sets { "---|" } else { "" };
        let set_cell = |r: &KindRow| {
            if with_sets { format!(" {} |", r.set.as_deref().map_or("–", set_name)) } else { String::new() }
        };
        let blank = if with_sets { " |" } else { "" };
        let hours = |ms: i64| format!("{:.0}", ms as f64 / MS_PER_HOUR as f64);
        let opt = |h: Option<f64>| h.map_or_else(|| "–".to_owned(), |h| format!("{h:.1}"));
        let pct =
            |n: u64, d: u64| if d == 0 { "–".to_owned() } else { format!("{:.1} %", 100.0 * n as f64 / d as f64) };
        let w = self.within_hours;
        let mut s = String::new();
        s.push_str(&format!(
            "{} users, {} trace lines, classifier `{}`: {} classifier runs, {} h of STT audio held back by budgets.\n\n",
            self.users,
            self.lines,
            self.classifier,
            self.classifier_runs,
            hours(self.stt_ms_saved)
        ));
        s.push_str(&format!(
            "| abusers |{set_head} users | detected (warned) | restricted | restricted ≤ {w} h | median h to restrict | max h to restrict | usage type right | staged for exhausted free credits only | STT h saved |\n"
        ));
        s.push_str(&format!("|---|{set_rule}---|---|---|---|---|---|---|---|---|\n"));
        let mut total = KindRow::default();
        for r in self.rows_where(false) {
            s.push_str(&format!(
                "| {} |{} {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |\n",
                r.kind,
                set_cell(r),
                r.users,
                r.warned,
                r.restricted,
                r.restricted_within,
                pct(r.restricted_within, r.users),
                opt(r.median_hours_to_restrict),
                opt(r.max_hours_to_restrict),
                r.typed_right,
                r.free_exhausted_only,
                hours(r.stt_ms_saved)
            ));
            total.add(r);
        }
        s.push_str(&format!(
            "| **all abusers** |{blank} {} | {} | {} | {} ({}) | | | {} | {} | {} |\n\n",
            total.users,
            total.warned,
            total.restricted,
            total.restricted_within,
            pct(total.restricted_within, total.users),
            total.typed_right,
            total.free_exhausted_only,
            hours(total.stt_ms_saved)
        ));
        s.push_str(&format!("| honest users |{set_head} users | classified | false warnings | false throttles | false restricts | staged for exhausted free credits (by design) | STT h saved |\n"));
        s.push_str(&format!("|---|{set_rule}---|---|---|---|---|---|---|\n"));
        let mut total = KindRow::default();
        for r in self.rows_where(true) {
            s.push_str(&format!(
                "| {} |{} {} | {} | {} | {} | {} | {} | {} |\n",
                r.kind,
                set_cell(r),
                r.users,
                r.classified,
                r.warned,
                r.throttled,
                r.restricted,
                r.free_exhausted_only,
                hours(r.stt_ms_saved)
            ));
            total.add(r);
        }
        s.push_str(&format!(
            "| **all honest** |{blank} {} | {} | {} | {} | {} | {} | {} |\n\n",
            total.users,
            total.classified,
            total.warned,
            total.throttled,
            total.restricted,
            total.free_exhausted_only,
            hours(total.stt_ms_saved)
        ));
        let abusers = self.abusers();
        s.push_str(&format!(
            "Goal (no honest user throttled or restricted by a misuse verdict, ≥ 95 % of abusers restricted within {w} h of their first usage): **{}** — {} honest throttled, {} honest restricted, {} of {} abusers ({}) restricted within {w} h.\n",
            if self.goal_met() { "met" } else { "not met" },
            self.false_throttles(),
            self.false_restricts(),
            self.abusers_restricted_within(),
            abusers,
            pct(self.abusers_restricted_within(), abusers),
        ));
        if !self.sets.is_empty() {
            s.push_str(&format!(
                "\n| family set | abuser families | abusers | restricted ≤ {w} h | honest families | honest users | honest warned | honest throttled | honest restricted | goal (≥ 95 % restricted ≤ {w} h, 0 honest warned) |\n"
            ));
            s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
            for x in &self.sets {
                s.push_str(&format!(
                    "| {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                    set_name(&x.set),
                    x.abuser_families,
                    x.abusers,
                    x.abusers_restricted_within,
                    pct(x.abusers_restricted_within, x.abusers),
                    x.honest_families,
                    x.honest_users,
                    x.honest_warned,
                    x.honest_throttled,
                    x.honest_restricted,
                    if x.goal_met { "met" } else { "not met" }
                ));
            }
            for x in &self.sets {
                s.push_str(&format!(
                    "\n{} families: {} of {} abusers ({}) restricted within {w} h; {} of {} honest users warned. Goal (≥ 95 % of abusers restricted within {w} h, 0 honest users warned): **{}**.\n",
                    if x.set == "held_out" { "Held-out (unseen)" } else if x.set == "tuning" { "Tuning" } else { x.set.as_str() },
                    x.abusers_restricted_within,
                    x.abusers,
                    pct(x.abusers_restricted_within, x.abusers),
                    x.honest_warned,
                    x.honest_users,
                    if x.goal_met { "met" } else { "not met" },
                ));
            }
        }
        s
    }
}

/// How a family set is written in the report.
fn set_name(set: &str) -> &str {
    match set {
        "held_out" => "held-out",
        other => other,
    }
}

/// Who each user is. Users without a label get `default`.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    by_uid: HashMap<String, String>,
    default: String,
    /// Kind -> family set, from labels that name one.
    sets: BTreeMap<String, String>,
    /// Kind -> the usage type a right verdict names, from labels that name one.
    usage_types: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LabelLine {
    uid: String,
    kind: String,
    #[serde(default)]
    set: Option<String>,
    #[serde(default)]
    usage_type: Option<String>,
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
        struct VerdictLine<'a> {
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

    fn kinds(&self) -> BTreeSet<String> {
        let mut kinds: BTreeSet<String> = self.by_uid.values().cloned().collect();
        kinds.insert(self.default.clone());
        kinds
    }
}

/// Runs `fairuse eval`: reads the policy, labels and trace, prints the markdown report to `--out`.
pub fn run(args: &EvalArgs) -> anyhow::Result<EvalReport> {
    let policy = match &args.policy {
        None => Policy::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading policy file {}", p.display()))?;
            Policy::from_toml_str(&text).with_context(|| format!("policy file {}", p.display()))?
        }
    };
    let open = |path: &str| -> anyhow::Result<Box<dyn BufRead>> {
        if path == "-" {
            Ok(Box::new(std::io::stdin().lock()))
        } else {
            let file = File::open(path).with_context(|| format!("opening {path}"))?;
            Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
        }
    };
    let labels = match &args.labels {
        Some(path) => Labels::read(open(path)?).with_context(|| format!("--labels {path}"))?,
        None if args.trace == "-" => {
            return Err(anyhow!("--labels is needed when the trace comes from standard input"));
        }
        None => Labels::from_verdicts(open(&args.trace)?, policy.classifier.qualify_score)?,
    };
    let mut verdicts = match &args.verdicts {
        Some(path) => Some(std::io::BufWriter::new(
            File::create(path).with_context(|| format!("--verdicts: cannot create {path}"))?,
        )),
        None => None,
    };
    let report = evaluate_with_verdicts(
        &policy,
        args.classifier,
        open(&args.trace)?,
        &labels,
        args.within_hours,
        verdicts.as_mut().map(|w| VerdictLog { out: w as &mut dyn Write, inputs: args.verdict_inputs }),
    )
    .with_context(|| format!("evaluating {}", args.trace))?;
    if let (Some(mut w), Some(path)) = (verdicts, &args.verdicts) {
        w.flush().with_context(|| format!("writing {path}"))?;
    }
    let text = report.markdown();
    if args.out == "-" {
        print!("{text}");
    } else {
        std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out))?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("report as JSON")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {path}"))?;
    }
    Ok(report)
}

/// The evaluation on any reader: the trace is split by label kind and replayed, one simulator per
/// kind on its own thread.
pub fn evaluate<R: BufRead>(
    policy: &Policy,
    classifier: SimClassifier,
    trace: R,
    labels: &Labels,
    within_hours: u32,
) -> anyhow::Result<EvalReport> {
    evaluate_with_verdicts(policy, classifier, trace, labels, within_hours, None)
}

/// Where `fairuse eval --verdicts` writes, and whether each line carries the classifier input.
pub struct VerdictLog<'a> {
    pub out: &'a mut dyn Write,
    pub inputs: bool,
}

/// [`evaluate`], also writing every classifier run as a JSON line to `verdicts` (by kind, then
/// user, then time), with the user's label kind.
pub fn evaluate_with_verdicts<R: BufRead>(
    policy: &Policy,
    classifier: SimClassifier,
    mut trace: R,
    labels: &Labels,
    within_hours: u32,
    mut verdicts: Option<VerdictLog<'_>>,
) -> anyhow::Result<EvalReport> {
    let log = verdicts.as_ref().map(|v| v.inputs);
    let kinds: Vec<String> = labels.kinds().into_iter().collect();
    let shard_of: HashMap<&str, usize> = kinds.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let mut first_usage: HashMap<String, i64> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut lines = 0u64;

    type ShardResult = (ShardOutcome, crate::sim::Summary, Vec<VerdictRecord>);
    let results = std::thread::scope(|scope| -> anyhow::Result<Vec<ShardResult>> {
        let mut senders: Vec<Option<SyncSender<Vec<u8>>>> = Vec::new();
        let mut handles = Vec::new();
        for _ in &kinds {
            let (tx, rx) = sync_channel::<Vec<u8>>(4);
            senders.push(Some(tx));
            handles.push(scope.spawn(move || {
                let mut collector = Collector::default();
                let sim = Simulator::new(policy, classifier, &mut collector);
                let sim = match log {
                    Some(true) => sim.with_verdict_inputs(),
                    Some(false) => sim.with_verdict_log(),
                    None => sim,
                };
                let summary = sim.run_logged(ChunkReader::new(rx));
                (collector.finish(), summary)
            }));
        }
        let mut buffers: Vec<Vec<u8>> = vec![Vec::with_capacity(CHUNK); kinds.len()];
        let mut line = Vec::new();
        loop {
            line.clear();
            if trace.read_until(b'\n', &mut line).context("reading the trace")? == 0 {
                break;
            }
            lines += 1;
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let head = Head::of(&line);
            let targets: Vec<usize> = match head.as_ref().and_then(|h| h.uid.as_deref()) {
                Some(uid) => {
                    let shard = *seen.entry(uid.to_owned()).or_insert_with(|| shard_of[labels.kind(uid)]);
                    if let Some(h) = &head
                        && h.kind == "usage"
                        && !first_usage.contains_key(uid)
                        && let Ok(t) = Timestamp::parse_rfc3339(&h.t)
                    {
                        first_usage.insert(uid.to_owned(), t.millis());
                    }
                    vec![shard]
                }
                // Ticks (and anything without a user) go to every part; unreadable lines to the first,
                // whose simulator reports them.
                None if head.is_some() => (0..kinds.len()).collect(),
                None => vec![0],
            };
            for shard in targets {
                buffers[shard].extend_from_slice(&line);
                if buffers[shard].len() >= CHUNK {
                    send(shard, &mut buffers, &mut senders);
                }
            }
        }
        for shard in 0..kinds.len() {
            send(shard, &mut buffers, &mut senders);
        }
        drop(senders);
        let mut results = Vec::new();
        for (kind, handle) in kinds.iter().zip(handles) {
            let (outcome, summary) = handle.join().map_err(|_| anyhow!("the simulator for {kind} panicked"))?;
            let (summary, records) =
                summary.map_err(|e| anyhow!("{e} (counting only the lines of the {kind} users and ticks)"))?;
            results.push((outcome?, summary, records));
        }
        Ok(results)
    })?;

    let mut rows: Vec<KindRow> = kinds
        .iter()
        .map(|k| KindRow {
            kind: k.clone(),
            honest: !k.starts_with("abuser"),
            set: labels.set(k).map(str::to_owned),
            ..KindRow::default()
        })
        .collect();
    let mut report = EvalReport {
        classifier: match classifier {
            SimClassifier::Heuristic => "heuristic".into(),
            SimClassifier::Scripted => "scripted".into(),
        },
        within_hours,
        lines,
        users: seen.len() as u64,
        classifier_runs: 0,
        stt_ms_saved: 0,
        rows: Vec::new(),
        sets: Vec::new(),
    };
    let within_ms = i64::from(within_hours) * MS_PER_HOUR;
    for (row, (outcome, summary, mut records)) in rows.iter_mut().zip(results) {
        if let Some(VerdictLog { out: w, .. }) = verdicts.as_mut() {
            records.sort_by(|a, b| a.uid.cmp(&b.uid).then(a.run.cmp(&b.run)));
            for mut r in records {
                r.kind = Some(row.kind.clone());
                serde_json::to_writer(&mut *w, &r).context("writing a verdict record")?;
                w.write_all(b"\n").context("writing a verdict record")?;
            }
        }
        row.classifier_runs = summary.classifier_runs;
        row.stt_ms_saved = summary.stt_ms_saved;
        report.classifier_runs += summary.classifier_runs;
        report.stt_ms_saved += summary.stt_ms_saved;
        let own_type = match labels.usage_types.get(&row.kind) {
            Some(t) if !row.honest => Some(t.as_str()),
            _ => row.kind.strip_prefix("abuser_"),
        };
        let mut to_restrict: Vec<f64> = Vec::new();
        for (uid, &shard) in &seen {
            if kinds[shard] != row.kind {
                continue;
            }
            row.users += 1;
            let Some(u) = outcome.users.get(uid) else { continue };
            row.classified += u64::from(u.runs > 0);
            row.warned += u64::from(u.by_misuse[0].is_some());
            row.throttled += u64::from(u.by_misuse[1].is_some());
            row.restricted += u64::from(u.by_misuse[2].is_some());
            row.free_exhausted_only += u64::from(u.any[0].is_some() && u.by_misuse[0].is_none());
            if let (Some(at), Some(first)) = (u.any[2], first_usage.get(uid)) {
                let ms = at - first;
                to_restrict.push(ms as f64 / MS_PER_HOUR as f64);
                row.restricted_within += u64::from(ms <= within_ms);
            }
            let top = u.types.iter().max_by_key(|(t, n)| (**n, std::cmp::Reverse(*t))).map(|(t, _)| t.as_str());
            row.typed_right += u64::from(own_type.is_some() && top == own_type);
        }
        to_restrict.sort_by(f64::total_cmp);
        row.median_hours_to_restrict = (!to_restrict.is_empty()).then(|| to_restrict[(to_restrict.len() - 1) / 2]);
        row.max_hours_to_restrict = to_restrict.last().copied();
    }
    rows.retain(|r| r.users > 0 || r.kind != "unlabeled");
    rows.sort_by(|a, b| (!a.honest, &a.kind).cmp(&(!b.honest, &b.kind)));
    let mut set_names: Vec<&str> = rows.iter().filter_map(|r| r.set.as_deref()).collect();
    set_names.sort_by_key(|s| (*s != "held_out", *s != "tuning", *s));
    set_names.dedup();
    report.sets = set_names.iter().map(|s| SetSummary::of(s, &rows)).collect();
    report.rows = rows;
    Ok(report)
}

/// Bytes handed to a simulator at a time.
const CHUNK: usize = 1 << 18;

/// Hands a part's buffered lines to its simulator.
fn send(shard: usize, buffers: &mut [Vec<u8>], senders: &mut [Option<SyncSender<Vec<u8>>>]) {
    let chunk = std::mem::replace(&mut buffers[shard], Vec::with_capacity(CHUNK));
    // A simulator that stopped (a bad line) drops its receiver; its error comes with its result.
    if let Some(tx) = &senders[shard]
        && tx.send(chunk).is_err()
    {
        senders[shard] = None;
    }
}

/// The `t`, `type` and `uid` of a trace line: the fast path reads the layout `gen-trace` writes,
/// anything else goes through serde.
struct Head<'a> {
    t: Cow<'a, str>,
    kind: Cow<'a, str>,
    uid: Option<Cow<'a, str>>,
}

impl<'a> Head<'a> {
    fn of(line: &'a [u8]) -> Option<Head<'a>> {
        Self::fast(line).or_else(|| {
            #[derive(Deserialize)]
            struct Slow<'b> {
                #[serde(borrow)]
                t: Cow<'b, str>,
                #[serde(rename = "type", borrow)]
                kind: Cow<'b, str>,
                #[serde(borrow, default)]
                uid: Option<Cow<'b, str>>,
            }
            let s: Slow<'a> = serde_json::from_slice(line).ok()?;
            Some(Head { t: s.t, kind: s.kind, uid: s.uid })
        })
    }

    /// `{"t":"<t>","type":"<kind>"` then `,"uid":"<uid>"` or `}`, with no escapes in between.
    fn fast(line: &'a [u8]) -> Option<Head<'a>> {
        let text = std::str::from_utf8(line).ok()?;
        let rest = text.strip_prefix("{\"t\":\"")?;
        let (t, rest) = rest.split_once('"')?;
        let rest = rest.strip_prefix(",\"type\":\"")?;
        let (kind, rest) = rest.split_once('"')?;
        let uid = match rest.strip_prefix(",\"uid\":\"") {
            Some(r) => Some(r.split_once('"')?.0),
            None if rest.trim_end() == "}" => None,
            None => return None, // another layout: let serde read it
        };
        if [t, kind].iter().chain(uid.iter()).any(|s| s.contains('\\')) {
            return None;
        }
        Some(Head { t: Cow::Borrowed(t), kind: Cow::Borrowed(kind), uid: uid.map(Cow::Borrowed) })
    }
}

/// A [`BufRead`] over the chunks a channel delivers; the end of input when the sender is gone.
struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    fn new(rx: Receiver<Vec<u8>>) -> ChunkReader {
        ChunkReader { rx, chunk: Vec::new(), pos: 0 }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

/// What happened to one user, from the outcome lines.
#[derive(Debug, Default)]
struct UserOutcome {
    runs: u32,
    /// Qualifying misuse verdicts (not `free_exhausted`) by usage type.
    types: BTreeMap<String, u32>,
    /// The last `classified` line: its instant and usage type.
    last_classified: Option<(String, String)>,
    /// First instant the user reached warning, throttle, restrict: by any verdict, and by a
    /// misuse verdict (anything but `free_exhausted`).
    any: [Option<i64>; 3],
    by_misuse: [Option<i64>; 3],
}

#[derive(Debug, Default)]
struct ShardOutcome {
    users: HashMap<String, UserOutcome>,
}

/// The simulator's output, read as it is written.
#[derive(Default)]
struct Collector {
    pending: Vec<u8>,
    out: ShardOutcome,
    error: Option<anyhow::Error>,
}

#[derive(Deserialize)]
struct OutcomeLine {
    #[serde(default)]
    t: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    usage_type: Option<String>,
    #[serde(default)]
    qualifies: Option<bool>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

fn stage_level(stage: &str) -> Option<usize> {
    match stage {
        "none" => Some(0),
        "warning" => Some(1),
        "throttle" => Some(2),
        "restrict" => Some(3),
        _ => None,
    }
}

impl Collector {
    fn line(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let l: OutcomeLine = serde_json::from_slice(bytes)
            .with_context(|| format!("unreadable outcome line {}", String::from_utf8_lossy(bytes)))?;
        let (Some(uid), Some(t)) = (l.uid, l.t) else { return Ok(()) }; // the summary
        let u = self.out.users.entry(uid).or_default();
        match l.kind.as_str() {
            "classified" => {
                u.runs += 1;
                let ty = l.usage_type.unwrap_or_default();
                if l.qualifies == Some(true) && ty != "free_exhausted" {
                    *u.types.entry(ty.clone()).or_default() += 1;
                }
                u.last_classified = Some((t, ty));
            }
            "stage_changed" => {
                let from = l.from.as_deref().and_then(stage_level);
                let to = l.to.as_deref().and_then(stage_level);
                let (Some(from), Some(to)) = (from, to) else { return Ok(()) };
                if to <= from {
                    return Ok(()); // a step down (a plan change clearing a free-credits stage)
                }
                let at = Timestamp::parse_rfc3339(&t).map_err(|e| anyhow!("outcome t {t}: {e}"))?.millis();
                let misuse = u.last_classified.as_ref().is_some_and(|(ct, ty)| *ct == t && ty != "free_exhausted");
                for level in 1..=to {
                    u.any[level - 1].get_or_insert(at);
                    if misuse {
                        u.by_misuse[level - 1].get_or_insert(at);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<ShardOutcome> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

impl Write for Collector {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if self.error.is_none()
                && let Err(e) = self.line(&line[..end])
            {
                self.error = Some(e);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
