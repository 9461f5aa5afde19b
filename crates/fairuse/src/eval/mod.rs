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

mod labels;
mod report;
mod shard;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};

use anyhow::{Context, anyhow};
use fairuse_domain::policy::Policy;
use fairuse_domain::time::{MS_PER_HOUR, Timestamp};

use crate::sim::{SimClassifier, Simulator, VerdictRecord};

pub use labels::*;
pub use report::*;
use shard::*;

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
    /// An abuser counts as caught when restricted by a misuse verdict within this many hours of their
    /// first usage (the synthetic verdict for exhausted free credits is not a detection).
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
            // Restricted by a misuse verdict, as the `restricted` column counts: a free user whose
            // host reported no credits left is staged by design, not detected.
            if let (Some(at), Some(first)) = (u.by_misuse[2], first_usage.get(uid)) {
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
