//! `fairuse simulate`: replays a trace through the real engine with a virtual clock and
//! in-memory state, writing one JSON line per outcome and a closing summary (SPEC section 8).
//!
//! It calls the same domain steps as the service ([`fairuse_domain::pipeline`]: a report over a cap
//! is judged at most once per check interval and otherwise falls due, the gate, the cooldown, the
//! conversations the classifier reads, evidence hygiene, the ladder; timers and due evaluations
//! applied as the clock passes them; budgets), so a backtest shows what the service would have
//! done. The service performs the same calls around its stores; `tests/replay.rs` replays one trace
//! through both and compares every event. The output is a function of the trace and the policy.
//!
//! The input and output lines are in [`lines`]; the rest stays in one file (a little under 700
//! lines) because it is one state machine: the [`Simulator`]'s steps share its users, clock,
//! timers and due evaluations.

mod lines;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{BufRead, Write};

use fairuse_domain::classifier::{
    ClassifierInput, Conversation, HeuristicClassifier, ScriptedClassifier, UsageShape, UsageType, Verdict,
};
use fairuse_domain::engine::{self, BudgetDay, CapCheck, ClassifyGate, Ctx, EnforcementState, Event, EventKind};
use fairuse_domain::ids::{Lane, SequentialIds, Uid};
use fairuse_domain::pipeline::{self, AfterReport, Judgement};
use fairuse_domain::policy::Policy;
use fairuse_domain::sessions::StreamSession;

use crate::heard::Hearing;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::Job;
use fairuse_domain::time::Timestamp;
use fairuse_domain::windows::{SpeechAmount, UsageReport, UserMeter};
use serde::Serialize;

pub use crate::verdict_log::VerdictRecord;
use crate::verdict_log::{VERDICT_LOG_TITLES, describe_conversation};
use lines::*;

/// Which classifier the simulation asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimClassifier {
    /// `verdict` lines of the trace say what each user's runs return.
    Scripted,
    /// The built-in offline heuristic on `conversation` lines and usage shape.
    Heuristic,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("trace line {line}: {message}")]
    Line { line: u64, message: String },
    #[error("reading the trace: {0}")]
    Read(std::io::Error),
    #[error("writing the output: {0}")]
    Write(std::io::Error),
}

#[derive(Default)]
struct SimUser {
    uid: String,
    meter: UserMeter,
    state: EnforcementState,
    budget: BudgetDay,
    /// When the user was last judged: the evaluation slot is held for a check interval after it.
    last_eval: Option<Timestamp>,
    /// A due evaluation is queued (one per user, as the service's job id is the user's).
    due_pending: bool,
    due_session: Option<String>,
    /// The re-judgement at the end of a cooldown is queued (the service's job of its own).
    rejudge_pending: bool,
    rejudge_session: Option<String>,
    /// The classifier lock doubles as the cooldown: held until this instant after a run.
    lock_until: Option<Timestamp>,
    scripted: Option<Verdict>,
    conversations: Vec<Conversation>,
    /// The gateway's stream sessions of the lookback, by session id (the latest snapshot of each).
    sessions: BTreeMap<String, StreamSession>,
    /// Ceiling headroom at the last exact read, minus speech recorded since: while it is positive
    /// the ceiling cannot have been reached, so most reports need no window read.
    ceiling_headroom: i64,
    /// [`pipeline::headroom`] against the caps of the user's plan, minus speech recorded since:
    /// while it is not negative nothing can have triggered, so the report needs no judging.
    cap_headroom: i64,
    /// The user's first usage report, for the verdict log's hours.
    first_usage: Option<Timestamp>,
}

/// The closing line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub users: u64,
    pub stages: Stages,
    pub classifier_runs: u64,
    pub stt_ms_saved: i64,
    /// Lines read, of which usage reports: the simulator's own throughput figures.
    #[serde(skip)]
    pub lines: u64,
    #[serde(skip)]
    pub usage_lines: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stages {
    pub none: u64,
    pub warning: u64,
    pub throttle: u64,
    pub restrict: u64,
}

pub struct Simulator<'p, W: Write> {
    policy: &'p Policy,
    classifier: SimClassifier,
    users: Vec<SimUser>,
    index: HashMap<String, usize>,
    timers: BinaryHeap<Reverse<(Timestamp, usize)>>,
    /// Due evaluations by due instant (the service's queued `evaluate:` jobs): `None` for a
    /// crossing's, the attempts made for a re-judgement.
    due: BinaryHeap<Reverse<(Timestamp, usize, Option<u32>)>>,
    jobs: u64,
    ids: SequentialIds,
    out: W,
    now: Timestamp,
    classifier_runs: u64,
    stt_ms_saved: i64,
    lines: u64,
    usage_lines: u64,
    /// Every classifier run, when asked for ([`Simulator::with_verdict_log`]).
    verdict_log: Option<Vec<VerdictRecord>>,
    /// Whether verdict records carry the whole classifier input.
    log_inputs: bool,
    runs_per_user: HashMap<usize, u32>,
    /// The print index and duplicate trackers of the streams the trace describes.
    hearing: Hearing,
}

impl<'p, W: Write> Simulator<'p, W> {
    pub fn new(policy: &'p Policy, classifier: SimClassifier, out: W) -> Self {
        Simulator {
            policy,
            classifier,
            users: Vec::new(),
            hearing: Hearing::default(),
            index: HashMap::new(),
            timers: BinaryHeap::new(),
            due: BinaryHeap::new(),
            jobs: 0,
            ids: SequentialIds::new(0x5EED_F00D),
            out,
            now: Timestamp(i64::MIN),
            classifier_runs: 0,
            stt_ms_saved: 0,
            lines: 0,
            usage_lines: 0,
            verdict_log: None,
            log_inputs: false,
            runs_per_user: HashMap::new(),
        }
    }

    /// Records every classifier run; [`Simulator::run_logged`] returns the records.
    pub fn with_verdict_log(mut self) -> Self {
        self.verdict_log = Some(Vec::new());
        self
    }

    /// Records every classifier run with the whole input it was given.
    pub fn with_verdict_inputs(mut self) -> Self {
        self.log_inputs = true;
        self.with_verdict_log()
    }

    /// Replays every line of `input`, then writes the summary.
    pub fn run<R: BufRead>(self, input: R) -> Result<Summary, SimError> {
        self.run_logged(input).map(|(summary, _)| summary)
    }

    /// [`Simulator::run`], also returning the verdict log (empty unless
    /// [`Simulator::with_verdict_log`] asked for it).
    pub fn run_logged<R: BufRead>(mut self, mut input: R) -> Result<(Summary, Vec<VerdictRecord>), SimError> {
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = input.read_line(&mut buf).map_err(SimError::Read)?;
            if n == 0 {
                break;
            }
            self.lines += 1;
            let text = buf.trim();
            if text.is_empty() {
                continue;
            }
            self.line(text)?;
        }
        let log = self.verdict_log.take().unwrap_or_default();
        self.finish().map(|summary| (summary, log))
    }

    /// The benchmark baseline: reads and parses every line (JSON and timestamp) exactly as
    /// [`Simulator::run`] does, and applies nothing.
    pub fn parse_only<R: BufRead>(mut input: R) -> Result<Summary, SimError> {
        let (mut lines, mut usage_lines) = (0u64, 0u64);
        let mut buf = String::new();
        loop {
            buf.clear();
            if input.read_line(&mut buf).map_err(SimError::Read)? == 0 {
                break;
            }
            lines += 1;
            let text = buf.trim();
            if text.is_empty() {
                continue;
            }
            let line: TraceLine<'_> =
                serde_json::from_str(text).map_err(|e| err(lines, format!("not a trace line: {e}")))?;
            Timestamp::parse_rfc3339(&line.t).map_err(|e| err(lines, format!("t: {e}")))?;
            usage_lines += u64::from(line.kind == "usage");
        }
        Ok(Summary {
            kind: "summary",
            users: 0,
            stages: Stages::default(),
            classifier_runs: 0,
            stt_ms_saved: 0,
            lines,
            usage_lines,
        })
    }

    fn line(&mut self, text: &str) -> Result<(), SimError> {
        let n = self.lines;
        let line: TraceLine<'_> = serde_json::from_str(text).map_err(|e| err(n, describe_json_error(text, e)))?;
        let t = Timestamp::parse_rfc3339(&line.t).map_err(|e| err(n, format!("t: {e}")))?;
        if t < self.now {
            return Err(err(
                n,
                format!("t: {} is earlier than the previous line ({}); traces must be in time order", line.t, self.now),
            ));
        }
        self.now = t;
        self.run_clock(t)?;
        if line.kind == "tick" {
            return Ok(());
        }
        let uid = line.uid.as_deref().ok_or_else(|| err(n, "uid: missing"))?;
        Uid::check(uid).map_err(|e| err(n, e.to_string()))?;
        let u = self.user(uid);
        match &*line.kind {
            "usage" => self.usage(u, &line, t, n),
            "plan" => {
                let plan_name = line.plan.as_deref().ok_or_else(|| err(n, "plan: missing"))?;
                let plan = self.policy.plan_or_error(plan_name).map_err(|e| err(n, e.to_string()))?;
                let events = {
                    let user = &mut self.users[u];
                    user.cap_headroom = -1; // other caps: the next report reads the windows
                    let mut ctx = Ctx { policy: self.policy, now: t, uid: &user.uid, ids: &mut self.ids };
                    engine::plan_changed(&mut user.state, plan, line.credits_exhausted.unwrap_or(false), &mut ctx)
                };
                self.emit(u, &events)
            }
            "conversation" => {
                let c = line.conversation.clone().ok_or_else(|| err(n, "conversation: missing"))?;
                pipeline::validate_conversation(&c, self.policy, t).map_err(|e| err(n, format!("conversation.{e}")))?;
                if self.classifier == SimClassifier::Scripted {
                    return Ok(()); // validated above; only the heuristic reads conversations
                }
                let lookback = self.policy.classifier.lookback.ms();
                let user = &mut self.users[u];
                user.conversations
                    .retain(|x| x.started_at >= t.minus_ms(lookback) && x.conversation_id != c.conversation_id);
                user.conversations.push(c.for_classifier());
                Ok(())
            }
            "stream_session" => {
                let s = line.session.clone().ok_or_else(|| err(n, "session: missing"))?;
                s.validate().map_err(|e| err(n, format!("session.{e}")))?;
                if s.updated_at > t {
                    return Err(err(n, format!("session.updated_at: {} is later than the line's t", s.updated_at)));
                }
                if self.classifier == SimClassifier::Scripted {
                    return Ok(()); // validated above; only the heuristic's input carries sessions
                }
                let mut s = s;
                // Without fingerprints the gateway would learn nothing from the audio.
                if let Some(audio) = &line.audio
                    && self.policy.fingerprint.enabled
                {
                    let retention = self.policy.fingerprint.retention.ms();
                    self.hearing.hear(&self.users[u].uid, &mut s, audio, t, retention);
                }
                // The store keeps one record per session, the latest snapshot.
                let lookback = self.policy.classifier.lookback.ms();
                let user = &mut self.users[u];
                user.sessions.retain(|_, x| x.updated_at >= t.minus_ms(lookback));
                user.sessions.insert(s.session_id.clone(), s);
                Ok(())
            }
            "verdict" => {
                let score = line.misuse_score.ok_or_else(|| err(n, "misuse_score: missing"))?;
                let ty = line.usage_type.as_deref().unwrap_or("unknown");
                let ty = UsageType::parse(ty).ok_or_else(|| err(n, format!("usage_type: unknown type {ty:?}")))?;
                self.users[u].scripted = Some(ScriptedClassifier::scripted(score, ty));
                Ok(())
            }
            "admin" => self.admin(u, &line, t, n),
            other => Err(err(
                n,
                format!(
                    "type: unknown line type {other:?}; expected usage, plan, conversation, stream_session, verdict, admin or tick"
                ),
            )),
        }
    }

    fn user(&mut self, uid: &str) -> usize {
        if let Some(&i) = self.index.get(uid) {
            return i;
        }
        let i = self.users.len();
        self.users.push(SimUser {
            uid: uid.to_owned(),
            ceiling_headroom: self.policy.ceiling_headroom(0),
            cap_headroom: -1,
            ..SimUser::default()
        });
        self.index.insert(uid.to_owned(), i);
        i
    }

    fn usage(&mut self, u: usize, line: &TraceLine<'_>, t: Timestamp, n: u64) -> Result<(), SimError> {
        self.usage_lines += 1;
        let policy = self.policy;
        if !policy.switches.enabled {
            return Ok(()); // off: nothing is metered
        }
        let lane = Lane::parse(line.lane.as_deref().unwrap_or("realtime")).map_err(|e| err(n, e.to_string()))?;
        let amount = match (line.speech_ms, &line.session_id, line.cumulative_speech_ms) {
            (Some(ms), None, None) => SpeechAmount::Delta(ms),
            (None, Some(s), Some(total)) => SpeechAmount::Cumulative { session_id: s.to_string(), total_ms: total },
            _ => return Err(err(n, "speech_ms: give either speech_ms, or session_id with cumulative_speech_ms")),
        };
        let at = match &line.at {
            Some(a) => Some(Timestamp::parse_rfc3339(a).map_err(|e| err(n, format!("at: {e}")))?),
            None => None,
        };
        let report = UsageReport {
            lane,
            amount,
            at,
            idempotency_key: line.idempotency_key.as_ref().map(|k| k.to_string()),
            stt_ms: line.stt_ms.unwrap_or(0),
        };
        report.validate(policy, t).map_err(|e| err(n, e.to_string()))?;
        let mut events: Vec<Event> = Vec::new();
        let mut check = None;
        {
            let user = &mut self.users[u];
            user.first_usage.get_or_insert(t);
            let outcome = user.meter.record(&report, policy.metering.retention.ms(), t);
            if lane.is_capped() {
                user.ceiling_headroom -= outcome.speech_added_ms;
                user.cap_headroom -= outcome.speech_added_ms;
            }
            // Judging needs the exact windows only when something may have triggered and the
            // report could change what happens (the slot is free, or no evaluation is queued).
            let may_judge = engine::evaluation_due(user.last_eval, policy, t) || !user.due_pending;
            if user.cap_headroom < 0 && may_judge {
                let totals = user.meter.capped_totals(policy, t);
                let plan = user.state.plan_id(policy);
                user.cap_headroom = pipeline::headroom(&totals, policy.caps(plan), policy);
                user.ceiling_headroom = policy.ceiling_headroom(totals[policy.ceiling_window()]);
                check = Some(engine::check_caps(totals, plan, policy));
            }
            let ceiling_exceeded = if user.ceiling_headroom > 0 {
                false
            } else {
                let total = user.meter.capped_total(policy.window_minutes()[policy.ceiling_window()], t);
                user.ceiling_headroom = policy.ceiling_headroom(total);
                user.ceiling_headroom <= 0
            };
            let fwd = engine::forwarding(&user.state, &user.uid, ceiling_exceeded, policy);
            let mut ctx = Ctx { policy, now: t, uid: &user.uid, ids: &mut self.ids };
            let split = engine::record_stt(&user.state, &mut user.budget, outcome.stt_added_ms, &fwd, &mut ctx);
            self.stt_ms_saved += split.held_back_ms;
            events.extend(split.event);
        }
        self.emit(u, &events)?;
        let session = line.session_id.as_deref().map(str::to_owned);
        if let Some(check) = check
            && let AfterReport::Judge { due_at } = pipeline::after_report(&check, policy, t)
        {
            let user = &mut self.users[u];
            if engine::evaluation_due(user.last_eval, policy, t) {
                self.evaluate(u, t, session)?;
            } else if !user.due_pending {
                user.due_pending = true;
                user.due_session = session;
                self.due.push(Reverse((due_at, u, None)));
            }
        }
        Ok(())
    }

    /// A judgement (the service's `evaluate` and the classifier job it queues, run at once).
    fn evaluate(&mut self, u: usize, t: Timestamp, session_id: Option<String>) -> Result<(), SimError> {
        let policy = self.policy;
        let user = &mut self.users[u];
        user.last_eval = Some(t);
        let totals = user.meter.capped_totals(policy, t);
        let plan = user.state.plan_id(policy);
        user.cap_headroom = pipeline::headroom(&totals, policy.caps(plan), policy);
        let check: CapCheck = engine::check_caps(totals, plan, policy);
        user.ceiling_headroom = policy.ceiling_headroom(check.totals[policy.ceiling_window()]);
        let exempt = user.state.exempt || policy.is_exempt_in_config(&user.uid);
        let cooldown_passed = user.lock_until.is_none_or(|l| t >= l);
        match engine::classify_gate(&user.state, &check, exempt, cooldown_passed, policy) {
            ClassifyGate::Run => {}
            ClassifyGate::CoolingDown => {
                // As the service: a user on the ladder is judged again when the cooldown ends.
                if let Some(at) = pipeline::rejudge_at(&user.state, policy, t)
                    && !user.rejudge_pending
                {
                    user.rejudge_pending = true;
                    user.rejudge_session = session_id;
                    self.due.push(Reverse((at, u, Some(0))));
                }
                return Ok(());
            }
            _ => return Ok(()),
        }
        self.jobs += 1;
        let job = Job {
            id: format!("sim-{}", self.jobs),
            uid: user.uid.clone(),
            lock_token: String::new(),
            session_id,
            attempts: 0,
            created_at: t,
        };
        if !pipeline::job_still_wanted(&user.state, &check, exempt, &job.id, policy) {
            return Ok(());
        }
        let mut signals = Vec::new();
        let mut repeating = false;
        let mut shown: Vec<Conversation> = Vec::new();
        let mut logged_input = None;
        let verdict = match self.classifier {
            // A trace's `verdict` line is what the classifier says, stated by the trace's author
            // (SPEC section 8): it stands for a backend's answer, so evidence rules do not apply.
            SimClassifier::Scripted => engine::synthetic_verdict(&user.state, policy).unwrap_or_else(|| {
                user.scripted.clone().unwrap_or_else(|| ScriptedClassifier::scripted(0.0, UsageType::None))
            }),
            SimClassifier::Heuristic => {
                let lookback = policy.classifier.lookback.ms();
                let input = ClassifierInput {
                    uid: user.uid.clone(),
                    plan: policy.plan_name(plan).to_owned(),
                    conversations: pipeline::select_conversations(user.conversations.clone(), policy, t),
                    shape: UsageShape::measure(&user.meter, lookback, t),
                    window_totals_ms: check.totals.as_slice().to_vec(),
                    sessions: pipeline::select_stream_sessions(
                        user.sessions.values().cloned(),
                        t.minus_ms(lookback),
                        pipeline::CLASSIFIER_STREAM_SESSIONS,
                    ),
                };
                let verdict = match pipeline::judgement(&user.state, &input, policy) {
                    Judgement::Given(v) => v,
                    // The heuristic cannot fail (`classify` is its explanation's verdict).
                    Judgement::Ask => {
                        let explained = HeuristicClassifier.explain(&input);
                        signals = explained.signals;
                        pipeline::admit(explained.verdict.clamped(), &input, policy)
                    }
                };
                repeating = pipeline::repeats_earlier_audio(&input);
                if self.verdict_log.is_some() {
                    shown = input.conversations.clone();
                }
                if self.log_inputs {
                    logged_input = Some(input);
                }
                verdict
            }
        };
        if let Some(log) = &mut self.verdict_log {
            let run = self.runs_per_user.entry(u).or_default();
            *run += 1;
            let first = user.first_usage.unwrap_or(t);
            log.push(VerdictRecord {
                uid: user.uid.clone(),
                kind: None,
                t: t.to_rfc3339(),
                hours: ((t.millis() - first.millis()) as f64 / 3_600_000.0 * 100.0).round() / 100.0,
                run: *run,
                stage_before: user.state.stage,
                conversations: shown.len(),
                misuse_score: verdict.misuse_score,
                usage_type: verdict.usage_type,
                qualifies: verdict.misuse_score >= policy.classifier.qualify_score,
                recipes: verdict.recipes.clone(),
                demoted: verdict.demoted.clone(),
                signals,
                evidence: verdict.evidence.iter().map(|e| format!("{}: {}", e.conversation_id, e.reason)).collect(),
                recent: shown.iter().rev().take(VERDICT_LOG_TITLES).rev().map(describe_conversation).collect(),
                input: logged_input,
            });
        }
        self.classifier_runs += 1;
        user.lock_until = Some(t.plus_ms(pipeline::lock_hold(&verdict, repeating, policy).ms()));
        let trigger = check.trigger("soft_cap", plan, policy);
        let mut ctx = Ctx { policy, now: t, uid: &user.uid, ids: &mut self.ids };
        let events = pipeline::apply_job_verdict(&mut user.state, &job, verdict, trigger, &mut ctx);
        self.emit(u, &events)
    }

    fn admin(&mut self, u: usize, line: &TraceLine<'_>, t: Timestamp, n: u64) -> Result<(), SimError> {
        let policy = self.policy;
        let user = &mut self.users[u];
        let mut ctx = Ctx { policy, now: t, uid: &user.uid, ids: &mut self.ids };
        let reason = line.reason.as_ref().map(|r| r.to_string());
        let events = match line.action.as_deref() {
            Some("reset") => engine::admin_reset(&mut user.state, "trace", reason, &mut ctx),
            Some("set_stage") => {
                let stage = Stage::parse(line.stage.as_deref().unwrap_or("")).map_err(|e| err(n, e.to_string()))?;
                let until = match &line.until {
                    Some(u) => Some(Timestamp::parse_rfc3339(u).map_err(|e| err(n, format!("until: {e}")))?),
                    None => None,
                };
                engine::admin_set_stage(&mut user.state, stage, until, "trace", reason, &mut ctx)
                    .map_err(|e| err(n, e.to_string()))?
            }
            Some(other) => {
                return Err(err(n, format!("action: unknown admin action {other:?}; expected reset or set_stage")));
            }
            None => return Err(err(n, "action: missing")),
        };
        self.emit(u, &events)
    }

    /// Applies every timer and due evaluation due by `t`, in time order across users (a timer
    /// before an evaluation due at the same instant, as the service's sweeps run).
    fn run_clock(&mut self, t: Timestamp) -> Result<(), SimError> {
        loop {
            let timer = self.timers.peek().map(|Reverse((at, _))| *at).filter(|at| *at <= t);
            let due = self.due.peek().map(|Reverse((at, _, _))| *at).filter(|at| *at <= t);
            match (timer, due) {
                (Some(a), Some(b)) if a <= b => self.next_timer()?,
                (Some(_), None) => self.next_timer()?,
                (_, Some(_)) => self.next_due()?,
                (None, None) => return Ok(()),
            }
        }
    }

    fn next_timer(&mut self) -> Result<(), SimError> {
        let Some(Reverse((due, u))) = self.timers.pop() else { return Ok(()) };
        let user = &mut self.users[u];
        if user.state.stage_until != Some(due) {
            return Ok(()); // superseded by a later timer
        }
        let mut ctx = Ctx { policy: self.policy, now: due, uid: &user.uid, ids: &mut self.ids };
        let events = engine::apply_timers(&mut user.state, &mut ctx);
        self.emit(u, &events)
    }

    /// A due evaluation takes the evaluation slot like a report would; if the slot is taken, the
    /// pipeline says whether to try again ([`pipeline::retry_due_evaluation`]), as the service's
    /// job does.
    fn next_due(&mut self) -> Result<(), SimError> {
        let Some(Reverse((due, u, rejudge))) = self.due.pop() else { return Ok(()) };
        let policy = self.policy;
        let user = &mut self.users[u];
        if engine::evaluation_due(user.last_eval, policy, due) {
            if rejudge.is_some() {
                // The service's job is still queued while it runs, so the evaluation cannot queue
                // the same re-judgement again.
                let session = user.rejudge_session.take();
                self.evaluate(u, due, session)?;
                self.users[u].rejudge_pending = false;
                return Ok(());
            }
            user.due_pending = false;
            let session = user.due_session.take();
            return self.evaluate(u, due, session);
        }
        match rejudge {
            Some(attempts) => {
                let job = Job { attempts, ..pipeline::rejudge_job(&user.uid, None, due) };
                if let Some(at) = pipeline::retry_due_evaluation(&job, policy, due) {
                    self.due.push(Reverse((at, u, Some(attempts + 1))));
                } else {
                    user.rejudge_pending = false;
                    user.rejudge_session = None;
                }
            }
            None => {
                user.due_pending = false;
                user.due_session = None;
            }
        }
        Ok(())
    }

    fn emit(&mut self, u: usize, events: &[Event]) -> Result<(), SimError> {
        let user = &self.users[u];
        let out = &mut self.out;
        let qualify_score = self.policy.classifier.qualify_score;
        for e in events {
            let base = |kind| OutLine {
                t: e.created_at.to_rfc3339(),
                kind,
                uid: &user.uid,
                misuse_score: None,
                usage_type: None,
                qualifies: None,
                from: None,
                to: None,
                case_ref: None,
                used_ms: None,
                limit_ms: None,
                shadow: e.shadow,
            };
            let stage_line = |kind| OutLine {
                from: Some(e.previous_stage),
                to: Some(e.new_stage),
                case_ref: Some(e.case_ref.as_str()),
                ..base(kind)
            };
            match e.kind {
                EventKind::Classified => {
                    let v = e.verdict.as_ref();
                    let score = v.map_or(0.0, |v| v.misuse_score);
                    write_line(
                        out,
                        &OutLine {
                            misuse_score: Some(score),
                            usage_type: v.map(|v| v.usage_type.as_str()),
                            qualifies: Some(score >= qualify_score),
                            ..base("classified")
                        },
                    )?;
                    if e.changes_stage() {
                        write_line(out, &stage_line("stage_changed"))?;
                    }
                }
                EventKind::BudgetExhausted => {
                    let b = e.budget.as_ref();
                    write_line(
                        out,
                        &OutLine {
                            used_ms: b.map(|b| b.used_ms),
                            limit_ms: b.map(|b| b.limit_ms),
                            ..base("budget_exhausted")
                        },
                    )?;
                }
                kind => write_line(out, &stage_line(kind.as_str()))?,
            }
        }
        let state = &self.users[u].state;
        if let Some(until) = state.stage_until
            && !events.is_empty()
        {
            self.timers.push(Reverse((until, u)));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Summary, SimError> {
        let mut stages = Stages::default();
        let now = self.now;
        for u in 0..self.users.len() {
            // Stages as of the last instant of the trace, timers applied.
            let user = &mut self.users[u];
            let mut ctx = Ctx { policy: self.policy, now, uid: &user.uid, ids: &mut self.ids };
            let events = engine::apply_timers(&mut user.state, &mut ctx);
            debug_assert!(events.is_empty(), "run_clock already applied every timer due by now");
            match user.state.stage {
                Stage::None => stages.none += 1,
                Stage::Warning => stages.warning += 1,
                Stage::Throttle => stages.throttle += 1,
                Stage::Restrict => stages.restrict += 1,
            }
        }
        let summary = Summary {
            kind: "summary",
            users: self.users.len() as u64,
            stages,
            classifier_runs: self.classifier_runs,
            stt_ms_saved: self.stt_ms_saved,
            lines: self.lines,
            usage_lines: self.usage_lines,
        };
        write_line(&mut self.out, &summary)?;
        self.out.flush().map_err(SimError::Write)?;
        Ok(summary)
    }
}
