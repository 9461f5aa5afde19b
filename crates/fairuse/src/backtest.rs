//! `fairuse backtest`: replays one trace under two policies through the simulator (the same domain
//! pipeline as the service) and reports what the new policy changes, per user and in total.
//!
//! Users never affect each other in the simulator (each has their own meter, state, budget, lock
//! and evaluation slot), so the trace is split by user and each user is simulated alone under each
//! policy, with a closing tick at the trace's last instant so timers and due evaluations run as far
//! as in one whole run. That gives per-user STT and classifier figures from the simulator's own
//! summary, through its public API only. The report is a function of the trace and the policies.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use fairuse_domain::policy::{ClassifierBackend, Policy};
use fairuse_domain::stage::Stage;
use fairuse_domain::time::{MS_PER_HOUR, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sim::{SimClassifier, SimError, Simulator};

/// One policy of the comparison, with what to call it in the report.
pub struct Side<'a> {
    pub name: String,
    pub policy: &'a Policy,
    pub classifier: SimClassifier,
}

/// What one policy did to one user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The highest stage reached at any time.
    pub highest_stage: Stage,
    /// The stage at the trace's last instant, timers applied.
    pub final_stage: Stage,
    /// When each stage was first reached, for the stages reached.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub first_reached: BTreeMap<Stage, String>,
    pub classifier_runs: u64,
    pub stt_ms_saved: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRow {
    pub uid: String,
    pub current: Outcome,
    pub new: Outcome,
    pub changed: bool,
}

/// Users whose highest stage reached is at least warning, throttle and restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reached {
    pub warning: u64,
    pub throttle: u64,
    pub restrict: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub reached: Reached,
    pub final_stages: BTreeMap<Stage, u64>,
    pub classifier_runs: u64,
    pub stt_ms_saved: i64,
    pub stt_hours_saved: f64,
}

/// Uids per stage: newly reaching it under the new policy, or spared it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByStage {
    pub warning: Vec<String>,
    pub throttle: Vec<String>,
    pub restrict: Vec<String>,
}

impl ByStage {
    fn slot(&mut self, stage: Stage) -> Option<&mut Vec<String>> {
        match stage {
            Stage::None => None,
            Stage::Warning => Some(&mut self.warning),
            Stage::Throttle => Some(&mut self.throttle),
            Stage::Restrict => Some(&mut self.restrict),
        }
    }

    fn is_empty(&self) -> bool {
        self.warning.is_empty() && self.throttle.is_empty() && self.restrict.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub policy: String,
    pub against: String,
    pub users: u64,
    pub current: Totals,
    pub new: Totals,
    /// Users who reach a stage under the new policy and did not under the current one.
    pub newly: ByStage,
    /// Users who reached a stage under the current policy and do not under the new one.
    pub spared: ByStage,
    pub changed_users: u64,
    /// New minus current.
    pub classifier_runs_difference: i64,
    pub stt_hours_saved_difference: f64,
    /// Every user, in uid order.
    pub per_user: Vec<UserRow>,
}

/// Only what splitting needs from a line: the rest is the simulator's to check.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    t: Cow<'a, str>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
}

/// An outcome line of the simulator, as far as stages go.
#[derive(Deserialize)]
struct OutHead {
    t: Option<String>,
    to: Option<Stage>,
}

/// A user's lines (with their line numbers in the whole trace).
struct UserTrace<'a> {
    lines: Vec<(u64, &'a str)>,
}

fn split(trace: &str) -> anyhow::Result<(BTreeMap<String, UserTrace<'_>>, Option<String>)> {
    let mut users: BTreeMap<String, UserTrace<'_>> = BTreeMap::new();
    let mut last: Option<(Timestamp, String)> = None;
    for (i, raw) in trace.lines().enumerate() {
        let n = i as u64 + 1;
        let text = raw.trim();
        if text.is_empty() {
            continue;
        }
        let head: Head<'_> =
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--trace: line {n}: not a trace line: {e}"))?;
        let t = Timestamp::parse_rfc3339(&head.t).map_err(|e| anyhow::anyhow!("--trace: line {n}: t: {e}"))?;
        if let Some((prev, prev_text)) = &last
            && t < *prev
        {
            bail!(
                "--trace: line {n}: t: {} is earlier than the previous line ({prev_text}); traces must be in time order",
                head.t
            );
        }
        last = Some((t, head.t.to_string()));
        // Ticks only move the clock; each user's run ends with a tick at the last instant.
        if let Some(uid) = head.uid {
            users.entry(uid.into_owned()).or_insert_with(|| UserTrace { lines: Vec::new() }).lines.push((n, text));
        }
    }
    Ok((users, last.map(|(_, t)| t)))
}

fn simulate(side: &Side<'_>, user: &UserTrace<'_>, end: &str) -> anyhow::Result<Outcome> {
    let mut input = String::new();
    for (_, text) in &user.lines {
        input.push_str(text);
        input.push('\n');
    }
    input.push_str(&serde_json::json!({"t": end, "type": "tick"}).to_string());
    input.push('\n');
    let mut out = Vec::new();
    let summary =
        Simulator::new(side.policy, side.classifier, &mut out).run(input.as_bytes()).map_err(|e| match e {
            // Back to the line number in the whole trace.
            SimError::Line { line, message } => {
                let n = user.lines.get(line.saturating_sub(1) as usize).map_or(line, |(n, _)| *n);
                anyhow::anyhow!("--trace: line {n}: {message} (under {})", side.name)
            }
            other => anyhow::anyhow!("simulating under {}: {other}", side.name),
        })?;
    let mut highest = Stage::None;
    let mut first_reached = BTreeMap::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let head: OutHead = serde_json::from_slice(line).context("reading the simulator's output")?;
        if let (Some(to), Some(t)) = (head.to, head.t) {
            highest = highest.max(to);
            if to != Stage::None {
                first_reached.entry(to).or_insert(t);
            }
        }
    }
    let s = &summary.stages;
    let final_stage = if s.restrict > 0 {
        Stage::Restrict
    } else if s.throttle > 0 {
        Stage::Throttle
    } else if s.warning > 0 {
        Stage::Warning
    } else {
        Stage::None
    };
    Ok(Outcome {
        highest_stage: highest.max(final_stage),
        final_stage,
        first_reached,
        classifier_runs: summary.classifier_runs,
        stt_ms_saved: summary.stt_ms_saved,
    })
}

fn hours(ms: i64) -> f64 {
    // Two decimals: 36 s resolution, enough for a report and stable to print.
    (ms as f64 / MS_PER_HOUR as f64 * 100.0).round() / 100.0
}

fn add(totals: &mut Totals, o: &Outcome) {
    totals.reached.warning += u64::from(o.highest_stage >= Stage::Warning);
    totals.reached.throttle += u64::from(o.highest_stage >= Stage::Throttle);
    totals.reached.restrict += u64::from(o.highest_stage >= Stage::Restrict);
    *totals.final_stages.entry(o.final_stage).or_default() += 1;
    totals.classifier_runs += o.classifier_runs;
    totals.stt_ms_saved += o.stt_ms_saved;
    totals.stt_hours_saved = hours(totals.stt_ms_saved);
}

/// Runs `trace` under `new` and `current` and compares.
pub fn backtest(trace: &str, new: &Side<'_>, current: &Side<'_>) -> anyhow::Result<Report> {
    let (users, end) = split(trace)?;
    let Some(end) = end else { bail!("--trace: the trace has no lines") };
    let mut report = Report {
        policy: new.name.clone(),
        against: current.name.clone(),
        users: users.len() as u64,
        current: Totals::default(),
        new: Totals::default(),
        newly: ByStage::default(),
        spared: ByStage::default(),
        changed_users: 0,
        classifier_runs_difference: 0,
        stt_hours_saved_difference: 0.0,
        per_user: Vec::with_capacity(users.len()),
    };
    for stage in [Stage::None, Stage::Warning, Stage::Throttle, Stage::Restrict] {
        report.current.final_stages.insert(stage, 0);
        report.new.final_stages.insert(stage, 0);
    }
    for (uid, user) in &users {
        let c = simulate(current, user, &end)?;
        let n = simulate(new, user, &end)?;
        add(&mut report.current, &c);
        add(&mut report.new, &n);
        for stage in [Stage::Warning, Stage::Throttle, Stage::Restrict] {
            if n.highest_stage >= stage && c.highest_stage < stage {
                report.newly.slot(stage).into_iter().for_each(|v| v.push(uid.clone()));
            }
            if c.highest_stage >= stage && n.highest_stage < stage {
                report.spared.slot(stage).into_iter().for_each(|v| v.push(uid.clone()));
            }
        }
        let changed = c != n;
        report.changed_users += u64::from(changed);
        report.per_user.push(UserRow { uid: uid.clone(), current: c, new: n, changed });
    }
    report.classifier_runs_difference = report.new.classifier_runs as i64 - report.current.classifier_runs as i64;
    report.stt_hours_saved_difference = hours(report.new.stt_ms_saved - report.current.stt_ms_saved);
    Ok(report)
}

fn signed<T: PartialOrd + Default + std::fmt::Display>(v: T) -> String {
    if v > T::default() { format!("+{v}") } else { format!("{v}") }
}

/// The report for people: totals, who is newly staged or spared, and the users that changed
/// (`--json` lists every user).
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let (c, n) = (&r.current, &r.new);
    let _ =
        writeln!(s, "backtest of {} against {}: {} users, {} changed", r.policy, r.against, r.users, r.changed_users);
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<26}{:>12}{:>12}{:>10}", "", "current", "new", "change");
    let row = |s: &mut String, label: &str, a: u64, b: u64| {
        let _ = writeln!(s, "{label:<26}{a:>12}{b:>12}{:>10}", signed(b as i64 - a as i64));
    };
    row(&mut s, "users warned", c.reached.warning, n.reached.warning);
    row(&mut s, "users throttled", c.reached.throttle, n.reached.throttle);
    row(&mut s, "users restricted", c.reached.restrict, n.reached.restrict);
    for stage in [Stage::None, Stage::Warning, Stage::Throttle, Stage::Restrict] {
        let (a, b) = (c.final_stages.get(&stage).copied(), n.final_stages.get(&stage).copied());
        row(&mut s, &format!("in {} at the end", stage.as_str()), a.unwrap_or(0), b.unwrap_or(0));
    }
    row(&mut s, "classifier runs", c.classifier_runs, n.classifier_runs);
    let _ = writeln!(
        s,
        "{:<26}{:>12.2}{:>12.2}{:>10}",
        "STT hours saved",
        c.stt_hours_saved,
        n.stt_hours_saved,
        if r.stt_hours_saved_difference > 0.0 {
            format!("+{:.2}", r.stt_hours_saved_difference)
        } else {
            format!("{:.2}", r.stt_hours_saved_difference)
        }
    );
    let list = |s: &mut String, what: &str, by: &ByStage| {
        if by.is_empty() {
            let _ = writeln!(s, "{what}: nobody");
            return;
        }
        for (stage, uids) in [("warned", &by.warning), ("throttled", &by.throttle), ("restricted", &by.restrict)] {
            if !uids.is_empty() {
                let _ = writeln!(s, "{what} {stage} ({}): {}", uids.len(), uids.join(", "));
            }
        }
    };
    let _ = writeln!(s);
    list(&mut s, "newly", &r.newly);
    list(&mut s, "spared", &r.spared);
    let changed: Vec<&UserRow> = r.per_user.iter().filter(|u| u.changed).collect();
    if !changed.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<28}{:>21}{:>21}{:>25}{:>13}{:>17}",
            "user", "highest stage", "final stage", "first warned (UTC)", "classifier", "STT h saved"
        );
        for u in changed {
            // "02T13:05": day of the month and time, enough to compare two runs of one trace.
            let warned =
                |o: &Outcome| o.first_reached.get(&Stage::Warning).and_then(|t| t.get(8..16)).unwrap_or("-").to_owned();
            let arrow = |a: Stage, b: Stage| format!("{} -> {}", a.as_str(), b.as_str());
            let _ = writeln!(
                s,
                "{:<28}{:>21}{:>21}{:>25}{:>13}{:>17}",
                u.uid,
                arrow(u.current.highest_stage, u.new.highest_stage),
                arrow(u.current.final_stage, u.new.final_stage),
                format!("{} -> {}", warned(&u.current), warned(&u.new)),
                format!("{} -> {}", u.current.classifier_runs, u.new.classifier_runs),
                format!("{:.2} -> {:.2}", hours(u.current.stt_ms_saved), hours(u.new.stt_ms_saved)),
            );
        }
    }
    s
}

/// Arguments of `fairuse backtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct BacktestArgs {
    /// The policy to try.
    #[arg(long)]
    pub policy: PathBuf,
    /// The policy to compare with; the shipped default when absent.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// The trace (from `export-trace`, `gen-trace` or by hand); `-` reads standard input.
    #[arg(long)]
    pub trace: String,
    /// Which classifier answers under both policies; by default each policy's backend (heuristic).
    #[arg(long, value_enum)]
    pub classifier: Option<SimClassifier>,
    /// Print the report as JSON, every user included.
    #[arg(long)]
    pub json: bool,
}

fn read_policy(flag: &str, path: &std::path::Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{flag}: reading {}", path.display()))?;
    Policy::from_toml_str(&text).with_context(|| format!("{flag}: policy file {}", path.display()))
}

/// The simulator's classifier for a policy: the override, or what its backend means offline.
pub fn classifier_for(flag: &str, policy: &Policy, chosen: Option<SimClassifier>) -> anyhow::Result<SimClassifier> {
    Ok(match (chosen, policy.classifier.backend) {
        (Some(c), _) => c,
        (None, ClassifierBackend::Scripted) => SimClassifier::Scripted,
        (None, ClassifierBackend::Heuristic | ClassifierBackend::Ensemble) => SimClassifier::Heuristic,
        (None, ClassifierBackend::Openai) => bail!(
            "{flag}: classifier.backend is openai and a backtest runs offline; pass --classifier heuristic, or scripted to replay the recorded verdicts"
        ),
    })
}

/// `fairuse backtest`: the report, as text or JSON.
pub fn run(args: &BacktestArgs) -> anyhow::Result<String> {
    let new_policy = read_policy("--policy", &args.policy)?;
    let current_policy = match &args.against {
        Some(p) => read_policy("--against", p)?,
        None => Policy::default(),
    };
    let trace = if args.trace == "-" {
        std::io::read_to_string(std::io::stdin().lock()).context("--trace: reading standard input")?
    } else {
        std::fs::read_to_string(&args.trace).with_context(|| format!("--trace: reading {}", args.trace))?
    };
    let new = Side {
        name: args.policy.display().to_string(),
        policy: &new_policy,
        classifier: classifier_for("--policy", &new_policy, args.classifier)?,
    };
    let current = Side {
        name: args.against.as_ref().map_or("the shipped default policy".to_owned(), |p| p.display().to_string()),
        policy: &current_policy,
        classifier: classifier_for("--against", &current_policy, args.classifier)?,
    };
    let report = backtest(&trace, &new, &current)?;
    if args.json {
        Ok(serde_json::to_string_pretty(&report).context("writing the report")? + "\n")
    } else {
        Ok(render_text(&report))
    }
}
