//! What happens when a cap is exceeded, a verdict arrives, a timer runs out or an admin acts.
//!
//! Every function here is `(state, input, policy, now) -> (new state, events)`: no I/O, no clock.
//! The service wraps them with store reads and writes; the simulator calls them directly; both
//! therefore apply the same rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::classifier::{UsageType, Verdict};
use crate::error::InputError;
use crate::ids::{CaseRef, IdSource};
use crate::policy::{Cause, MessageContext, Mode, PlanId, Policy};
use crate::stage::Stage;
use crate::time::Timestamp;
use crate::windows::WindowTotals;

/// A qualifying verdict, kept to count `prior` on the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub event_id: String,
    pub at: Timestamp,
    pub overturned: bool,
    /// Free-exhausted verdicts are about credits, not abuse: an upgrade removes them.
    #[serde(default)]
    pub usage_type: UsageType,
}

/// A user's enforcement state: the durable part of fair use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnforcementState {
    pub stage: Stage,
    /// When the current stage expires; `None` for `none` and for manual stages without expiry.
    pub stage_until: Option<Timestamp>,
    /// Set by an admin: timers never lower a manual stage that has no expiry.
    pub manual: bool,
    pub stage_since: Option<Timestamp>,
    /// The start of the current counting period (the last reset or upgrade clearing).
    pub period_start: Option<Timestamp>,
    /// Qualifying verdicts within the ladder's prior window, oldest first.
    pub qualifying: Vec<VerdictRecord>,
    pub last_case_ref: Option<CaseRef>,
    pub last_usage_type: Option<UsageType>,
    pub last_score: Option<f64>,
    /// The host's plan name; `None` means the policy's default plan.
    pub plan: Option<String>,
    pub credits_exhausted: bool,
    /// Dynamic exemption (admin API); config exemptions live in the policy.
    pub exempt: bool,
    /// The last classifier job whose verdict was applied: a job that two workers ran (a lease
    /// that ran out) is applied once.
    #[serde(default)]
    pub last_job_id: Option<String>,
    pub updated_at: Option<Timestamp>,
}

impl EnforcementState {
    /// Why the user is in their stage, for the texts they see.
    pub fn cause(&self) -> Cause {
        if self.manual {
            Cause::Admin
        } else if self.last_usage_type == Some(UsageType::FreeExhausted) {
            Cause::FreeCredits
        } else {
            Cause::Misuse
        }
    }

    /// The context of the texts about the user's current stage.
    pub fn message_context(&self) -> MessageContext<'_> {
        MessageContext {
            stage: self.stage,
            case_ref: self.last_case_ref.as_ref().map(CaseRef::as_str),
            until: self.stage_until,
            cause: self.cause(),
        }
    }

    pub fn plan_id(&self, policy: &Policy) -> PlanId {
        self.plan.as_deref().and_then(|p| policy.plan(p)).unwrap_or_else(|| policy.default_plan_id())
    }

    /// Qualifying, not-overturned verdicts within the prior window of `now`, since the last reset.
    pub fn prior(&self, policy: &Policy, now: Timestamp) -> u32 {
        let from = now.minus_ms(policy.ladder.prior_window.ms());
        self.qualifying
            .iter()
            .filter(|v| !v.overturned && v.at >= from && self.period_start.is_none_or(|p| v.at >= p))
            .count() as u32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Classified,
    StageChanged,
    BudgetExhausted,
    TimerExpired,
    AdminReset,
    AdminSetStage,
    AdminResolve,
    AdminExempt,
    AdminUnexempt,
    Appeal,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Classified => "classified",
            EventKind::StageChanged => "stage_changed",
            EventKind::BudgetExhausted => "budget_exhausted",
            EventKind::TimerExpired => "timer_expired",
            EventKind::AdminReset => "admin_reset",
            EventKind::AdminSetStage => "admin_set_stage",
            EventKind::AdminResolve => "admin_resolve",
            EventKind::AdminExempt => "admin_exempt",
            EventKind::AdminUnexempt => "admin_unexempt",
            EventKind::Appeal => "appeal",
        }
    }
}

/// One window against the user's plan at the time of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowCheck {
    pub window: String,
    pub total_ms: i64,
    pub cap_ms: Option<i64>,
    pub over: bool,
}

/// Why an event happened, with the totals and the thresholds *of the user's plan*.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub reason: String,
    pub plan: String,
    pub windows: Vec<WindowCheck>,
    pub ceiling_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Upheld,
    Overturned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub outcome: Outcome,
    pub notes: String,
    pub resolved_by: String,
    pub resolved_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSnapshot {
    pub used_ms: i64,
    pub limit_ms: i64,
}

/// An append-only audit event. Every event has its own unique case reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub case_ref: CaseRef,
    pub uid: String,
    pub created_at: Timestamp,
    pub kind: EventKind,
    pub trigger: Option<Trigger>,
    pub verdict: Option<Verdict>,
    pub previous_stage: Stage,
    pub new_stage: Stage,
    pub stage_until: Option<Timestamp>,
    pub actor: String,
    pub shadow: bool,
    pub session_id: Option<String>,
    /// The admin's reason, or the appeal text.
    pub notes: Option<String>,
    pub budget: Option<BudgetSnapshot>,
    pub resolution: Option<Resolution>,
    pub evidence_redacted_at: Option<Timestamp>,
}

impl Event {
    pub fn changes_stage(&self) -> bool {
        self.previous_stage != self.new_stage
    }

    /// The context of the texts a notification of this event carries; `state` is the user's
    /// state after it, for events that do not say why the stage applies (timers, budgets).
    pub fn message_context<'a>(&'a self, state: &EnforcementState) -> MessageContext<'a> {
        let cause = match (&self.verdict, self.kind) {
            (_, EventKind::AdminSetStage) => Cause::Admin,
            (Some(v), _) if v.usage_type == UsageType::FreeExhausted => Cause::FreeCredits,
            (Some(_), _) => Cause::Misuse,
            (None, _) => state.cause(),
        };
        MessageContext { stage: self.new_stage, case_ref: Some(self.case_ref.as_str()), until: self.stage_until, cause }
    }
}

pub const SYSTEM_ACTOR: &str = "system";

/// What every state function needs besides the state.
pub struct Ctx<'a> {
    pub policy: &'a Policy,
    pub now: Timestamp,
    pub uid: &'a str,
    pub ids: &'a mut dyn IdSource,
}

impl Ctx<'_> {
    fn event(&mut self, kind: EventKind, at: Timestamp, previous: Stage, new: Stage) -> Event {
        Event {
            event_id: self.ids.event_id(),
            case_ref: self.ids.case_ref(),
            uid: self.uid.to_owned(),
            created_at: at,
            kind,
            trigger: None,
            verdict: None,
            previous_stage: previous,
            new_stage: new,
            stage_until: None,
            actor: SYSTEM_ACTOR.into(),
            shadow: self.policy.switches.mode == Mode::Shadow,
            session_id: None,
            notes: None,
            budget: None,
            resolution: None,
            evidence_redacted_at: None,
        }
    }
}

/// Applies every timer that has run out by `now`, each at its own expiry instant: restrict steps
/// to throttle with a fresh throttle timer, throttle to warning, warning to none. Called on every
/// read, so a stale stage is never enforced.
pub fn apply_timers(state: &mut EnforcementState, ctx: &mut Ctx<'_>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(until) = state.stage_until {
        if state.stage == Stage::None || ctx.now < until {
            break;
        }
        let from = state.stage;
        let to = from.step_down();
        state.stage = to;
        state.manual = false;
        state.stage_since = Some(until);
        state.stage_until = ctx.policy.stage_timer(to).map(|t| until.plus_ms(t));
        state.updated_at = Some(until);
        let mut e = ctx.event(EventKind::TimerExpired, until, from, to);
        e.stage_until = state.stage_until;
        state.last_case_ref = Some(e.case_ref.clone());
        events.push(e);
    }
    if state.stage == Stage::None {
        state.stage_until = None;
    }
    events
}

/// A verdict's effect on the ladder, with the `classified` event every run writes.
pub fn apply_verdict(
    state: &mut EnforcementState,
    verdict: Verdict,
    trigger: Option<Trigger>,
    session_id: Option<String>,
    ctx: &mut Ctx<'_>,
) -> Vec<Event> {
    let mut events = apply_timers(state, ctx);
    let policy = ctx.policy;
    let now = ctx.now;
    let keep_from = now.minus_ms(policy.ladder.prior_window.ms());
    state.qualifying.retain(|v| v.at >= keep_from);
    let qualifies = verdict.misuse_score >= policy.classifier.qualify_score;
    let prior = state.prior(policy, now);
    let from = state.stage;
    let to = if !qualifies {
        from
    } else {
        match from {
            Stage::None => Stage::Warning,
            Stage::Warning if prior >= policy.ladder.throttle_prior => Stage::Throttle,
            Stage::Throttle if prior >= policy.ladder.restrict_prior => Stage::Restrict,
            other => other,
        }
    };
    let mut e = ctx.event(EventKind::Classified, now, from, to);
    if qualifies {
        if to != from || !state.manual {
            // Escalation replaces a manual stage; every qualifying verdict restarts the timer.
            state.stage_until = policy.stage_timer(to).map(|t| now.plus_ms(t));
            state.manual = false;
        }
        if to != from {
            state.stage = to;
            state.stage_since = Some(now);
            state.last_case_ref = Some(e.case_ref.clone());
        }
        state.qualifying.push(VerdictRecord {
            event_id: e.event_id.clone(),
            at: now,
            overturned: false,
            usage_type: verdict.usage_type,
        });
    }
    state.last_usage_type = Some(verdict.usage_type);
    state.last_score = Some(verdict.misuse_score);
    state.updated_at = Some(now);
    e.trigger = trigger;
    e.verdict = Some(verdict);
    e.session_id = session_id;
    e.stage_until = state.stage_until;
    events.push(e);
    events
}

/// The caps of the user's plan against their window totals.
#[derive(Debug, Clone, PartialEq)]
pub struct CapCheck {
    pub totals: WindowTotals,
    /// Indexes of windows strictly over their soft cap.
    pub triggered: Vec<usize>,
    /// The ceiling window at or over the ceiling (`>=`).
    pub ceiling_exceeded: bool,
}

pub fn check_caps(totals: WindowTotals, plan: PlanId, policy: &Policy) -> CapCheck {
    debug_assert_eq!(totals.len(), policy.windows.len(), "totals read with another policy");
    let caps = policy.caps(plan);
    let triggered = totals
        .iter()
        .zip(caps)
        .enumerate()
        .filter(|(_, (total, cap))| cap.is_some_and(|c| *total > c))
        .map(|(i, _)| i)
        .collect();
    let ceiling_exceeded = totals.at_ceiling(policy);
    CapCheck { totals, triggered, ceiling_exceeded }
}

impl CapCheck {
    pub fn trigger(&self, reason: &str, plan: PlanId, policy: &Policy) -> Trigger {
        let caps = policy.caps(plan);
        Trigger {
            reason: reason.into(),
            plan: policy.plan_name(plan).into(),
            windows: policy
                .windows
                .iter()
                .enumerate()
                .map(|(i, w)| WindowCheck {
                    window: w.name.clone(),
                    total_ms: self.totals.get(i).unwrap_or(0),
                    cap_ms: caps.get(i).copied().flatten(),
                    over: self.triggered.contains(&i),
                })
                .collect(),
            ceiling_ms: policy.ceiling.limit.ms(),
        }
    }
}

/// Whether a user is due for evaluation: at most once per check interval.
pub fn evaluation_due(last: Option<Timestamp>, policy: &Policy, now: Timestamp) -> bool {
    last.is_none_or(|l| now.millis() - l.millis() >= policy.metering.check_interval.ms())
}

/// Why the classifier does or does not run after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifyGate {
    Run,
    NoCapTriggered,
    Disabled,
    KillSwitch,
    Exempt,
    InRestrict,
    CoolingDown,
}

/// The trigger rules: a soft cap triggered, the user not exempt, not in restrict, the cooldown
/// passed (the lock is free). The caller still has to take the lock.
pub fn classify_gate(
    state: &EnforcementState,
    check: &CapCheck,
    exempt: bool,
    cooldown_passed: bool,
    policy: &Policy,
) -> ClassifyGate {
    if !policy.switches.enabled {
        ClassifyGate::Disabled
    } else if policy.switches.kill_switch {
        ClassifyGate::KillSwitch
    } else if check.triggered.is_empty() {
        ClassifyGate::NoCapTriggered
    } else if exempt {
        ClassifyGate::Exempt
    } else if state.stage == Stage::Restrict {
        ClassifyGate::InRestrict
    } else if !cooldown_passed {
        ClassifyGate::CoolingDown
    } else {
        ClassifyGate::Run
    }
}

/// The synthetic verdict for a free plan without credits, when the policy enables it.
pub fn synthetic_verdict(state: &EnforcementState, policy: &Policy) -> Option<Verdict> {
    let free = policy.plan_is_free(state.plan_id(policy));
    (policy.free_tier.synthetic_verdict && free && state.credits_exhausted).then(Verdict::free_exhausted)
}

/// The host reported a plan. On a paid plan, free-exhausted verdicts stop counting (they were
/// about credits, not abuse: Omi's #6298), and a stage that only they drove is cleared back to
/// `none`. A stage that abuse verdicts also drove, or that an admin set, stays.
pub fn plan_changed(
    state: &mut EnforcementState,
    plan: PlanId,
    credits_exhausted: bool,
    ctx: &mut Ctx<'_>,
) -> Vec<Event> {
    let mut events = apply_timers(state, ctx);
    state.plan = Some(ctx.policy.plan_name(plan).to_owned());
    state.credits_exhausted = credits_exhausted;
    state.updated_at = Some(ctx.now);
    if ctx.policy.plan_is_free(plan) {
        return events;
    }
    let before = state.qualifying.len();
    state.qualifying.retain(|v| v.usage_type != UsageType::FreeExhausted);
    let removed_any = state.qualifying.len() != before;
    let abuse_remains = state.qualifying.iter().any(|v| !v.overturned);
    let driven_by_credits = removed_any || state.last_usage_type == Some(UsageType::FreeExhausted);
    if state.stage != Stage::None && !state.manual && driven_by_credits && !abuse_remains {
        let from = state.stage;
        state.stage = Stage::None;
        state.stage_until = None;
        state.stage_since = Some(ctx.now);
        state.last_usage_type = None;
        let mut e = ctx.event(EventKind::StageChanged, ctx.now, from, Stage::None);
        e.notes = Some(format!("cleared on upgrade to {}", ctx.policy.plan_name(plan)));
        e.trigger = Some(Trigger {
            reason: "plan_upgrade".into(),
            plan: ctx.policy.plan_name(plan).into(),
            windows: vec![],
            ceiling_ms: ctx.policy.ceiling.limit.ms(),
        });
        state.last_case_ref = Some(e.case_ref.clone());
        events.push(e);
    }
    events
}

fn clear(state: &mut EnforcementState, now: Timestamp) {
    state.stage = Stage::None;
    state.stage_until = None;
    state.manual = false;
    state.stage_since = Some(now);
    state.period_start = Some(now);
    state.qualifying.clear();
    state.last_usage_type = None;
    state.updated_at = Some(now);
}

/// Admin reset: back to `none`, timers cleared, a new counting period starts.
pub fn admin_reset(state: &mut EnforcementState, actor: &str, reason: Option<String>, ctx: &mut Ctx<'_>) -> Vec<Event> {
    let mut events = apply_timers(state, ctx);
    let from = state.stage;
    clear(state, ctx.now);
    let mut e = ctx.event(EventKind::AdminReset, ctx.now, from, Stage::None);
    e.actor = actor.into();
    e.notes = reason;
    state.last_case_ref = Some(e.case_ref.clone());
    events.push(e);
    events
}

/// Admin set-stage: a manual stage, with or without an expiry.
pub fn admin_set_stage(
    state: &mut EnforcementState,
    stage: Stage,
    until: Option<Timestamp>,
    actor: &str,
    reason: Option<String>,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<Event>, InputError> {
    if let Some(u) = until
        && u <= ctx.now
    {
        return Err(InputError::new("until", format!("{u} is not in the future")));
    }
    let mut events = apply_timers(state, ctx);
    let from = state.stage;
    state.stage = stage;
    state.manual = stage != Stage::None;
    state.stage_until = if stage == Stage::None { None } else { until };
    state.stage_since = Some(ctx.now);
    state.updated_at = Some(ctx.now);
    let mut e = ctx.event(EventKind::AdminSetStage, ctx.now, from, stage);
    e.actor = actor.into();
    e.notes = reason;
    e.stage_until = state.stage_until;
    state.last_case_ref = Some(e.case_ref.clone());
    events.push(e);
    Ok(events)
}

/// Resolves a classified event: an overturned verdict stops counting toward `prior`. The stage is
/// left to the admin (reset or set-stage), so a resolution never silently lifts a restriction.
pub fn resolve_event(
    state: &mut EnforcementState,
    target: &mut Event,
    outcome: Outcome,
    notes: String,
    actor: &str,
    ctx: &mut Ctx<'_>,
) -> Vec<Event> {
    let mut events = apply_timers(state, ctx);
    target.resolution =
        Some(Resolution { outcome, notes: notes.clone(), resolved_by: actor.into(), resolved_at: ctx.now });
    if let Some(v) = state.qualifying.iter_mut().find(|v| v.event_id == target.event_id) {
        v.overturned = outcome == Outcome::Overturned;
    }
    state.updated_at = Some(ctx.now);
    let mut e = ctx.event(EventKind::AdminResolve, ctx.now, state.stage, state.stage);
    e.actor = actor.into();
    e.notes = Some(format!(
        "{} {}: {notes}",
        match outcome {
            Outcome::Upheld => "upheld",
            Outcome::Overturned => "overturned",
        },
        target.case_ref
    ));
    events.push(e);
    events
}

pub fn set_exempt(state: &mut EnforcementState, exempt: bool, actor: &str, ctx: &mut Ctx<'_>) -> Vec<Event> {
    let mut events = apply_timers(state, ctx);
    state.exempt = exempt;
    state.updated_at = Some(ctx.now);
    let kind = if exempt { EventKind::AdminExempt } else { EventKind::AdminUnexempt };
    let mut e = ctx.event(kind, ctx.now, state.stage, state.stage);
    e.actor = actor.into();
    events.push(e);
    events
}

/// The appeal text as recorded (trimmed), or why it is refused.
pub fn check_appeal_text(text: &str) -> Result<&str, InputError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(InputError::new("text", "must be 1-4000 characters"));
    }
    Ok(text)
}

pub fn appeal(
    state: &EnforcementState,
    case_ref: &CaseRef,
    text: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Event, InputError> {
    let text = check_appeal_text(text)?;
    let mut e = ctx.event(EventKind::Appeal, ctx.now, state.stage, state.stage);
    e.actor = ctx.uid.to_owned();
    e.notes = Some(format!("appeal of {case_ref}: {text}"));
    Ok(e)
}

/// Today's forwarded-audio counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDay {
    pub day: i64,
    pub used_ms: i64,
    pub exhausted_noted: bool,
}

impl BudgetDay {
    /// The counter as of `now`: a new UTC day starts at zero.
    pub fn today(self, now: Timestamp) -> BudgetDay {
        if self.day == now.utc_day() {
            self
        } else {
            BudgetDay { day: now.utc_day(), used_ms: 0, exhausted_noted: false }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub daily_limit_ms: i64,
    pub used_ms: i64,
    pub remaining_ms: i64,
    pub exhausted: bool,
    pub resets_at: Timestamp,
}

pub fn budget_status(limit_ms: i64, used_ms: i64, now: Timestamp) -> BudgetStatus {
    BudgetStatus {
        daily_limit_ms: limit_ms,
        used_ms,
        remaining_ms: (limit_ms - used_ms).max(0),
        exhausted: used_ms >= limit_ms,
        resets_at: now.next_utc_midnight(),
    }
}

/// Who is outside enforcement right now, and why (the first reason that applies).
pub fn bypass_reason(state: &EnforcementState, uid: &str, policy: &Policy) -> Option<&'static str> {
    if !policy.switches.enabled {
        Some("fair use is disabled")
    } else if policy.switches.kill_switch {
        Some("kill switch is on: every decision allows")
    } else if state.exempt || policy.is_exempt_in_config(uid) {
        Some("user is exempt")
    } else {
        None
    }
}

/// The answer to "may this user's audio go to the STT vendor now?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub stage: Stage,
    pub effective_stage: Stage,
    pub stt_allowed: bool,
    pub sync_allowed: bool,
    pub stt_model_tier: String,
    pub stt_budget: Option<BudgetStatus>,
    pub windows: BTreeMap<String, i64>,
    pub caps: BTreeMap<String, i64>,
    pub plan: String,
    pub triggered: Vec<String>,
    pub ceiling_exceeded: bool,
    pub retry_after_s: Option<i64>,
    pub reasons: Vec<String>,
    pub shadow: bool,
    pub case_ref: Option<CaseRef>,
}

/// Decides for a state whose timers were already applied. `budget_used_ms` is today's forwarded
/// audio; `recovery(window, cap)` answers when a window falls back to `cap` if the user stops now.
pub fn decide(
    state: &EnforcementState,
    uid: &str,
    check: &CapCheck,
    budget_used_ms: i64,
    policy: &Policy,
    now: Timestamp,
    recovery: &dyn Fn(usize, i64) -> Option<Timestamp>,
) -> Decision {
    let plan = state.plan_id(policy);
    let caps = policy.caps(plan);
    let mut reasons = Vec::new();
    let bypass = bypass_reason(state, uid, policy);
    let shadow = policy.switches.mode == Mode::Shadow;
    let effective_stage = if let Some(why) = bypass {
        reasons.push(why.to_owned());
        Stage::None
    } else if shadow {
        if state.stage != Stage::None {
            reasons.push(format!("shadow mode: stage {} is recorded, not enforced", state.stage));
        }
        Stage::None
    } else {
        state.stage
    };
    // `triggered` and `ceiling_exceeded` say what is enforced: a host blocks on them. When nothing
    // is (bypassed or shadow mode) they stay empty and false, and the reasons say what would
    // have applied; the totals are in `windows` either way.
    let not_enforced = match bypass {
        Some(why) => Some(why),
        None if shadow => Some("shadow mode"),
        None => None,
    };
    let suffix = not_enforced.map(|why| format!(" (not enforced: {why})")).unwrap_or_default();
    let triggered: Vec<String> = if not_enforced.is_some() {
        Vec::new()
    } else {
        check.triggered.iter().map(|&i| policy.windows[i].name.clone()).collect()
    };
    for &i in &check.triggered {
        reasons.push(format!(
            "{} speech {} ms is over the {} cap of {} ms{suffix}",
            policy.windows[i].name,
            check.totals[i],
            policy.plan_name(plan),
            caps[i].unwrap_or(0)
        ));
    }
    let ceiling_enforced = forwarding(state, uid, check.ceiling_exceeded, policy).ceiling_enforced;
    let mut retry_after: Option<i64> = None;
    let mut wait_until = |t: Timestamp| {
        let s = ((t.millis() - now.millis()).max(0) + 999) / 1000;
        retry_after = Some(retry_after.map_or(s, |r: i64| r.max(s)));
    };
    if check.ceiling_exceeded {
        reasons.push(format!(
            "{} speech is at or over the ceiling of {} ms{suffix}",
            policy.ceiling.window,
            policy.ceiling.limit.ms()
        ));
    }
    if ceiling_enforced
        && let Some(limit) = policy.ceiling_limit_ms()
        && let Some(t) = recovery(policy.ceiling_window(), limit - 1)
    {
        wait_until(t);
    }
    let stage_policy = policy.stage_policy(effective_stage);
    let budget =
        stage_policy.and_then(|s| s.stt_daily_budget).map(|limit| budget_status(limit.ms(), budget_used_ms, now));
    let budget_exhausted = budget.as_ref().is_some_and(|b| b.exhausted);
    if let Some(b) = budget.as_ref().filter(|b| b.exhausted) {
        reasons.push(format!("daily STT budget of {} ms is used up until {}", b.daily_limit_ms, b.resets_at));
        wait_until(b.resets_at);
    }
    let sync_blocked = stage_policy.is_some_and(|s| s.sync_blocked_over_caps) && !check.triggered.is_empty();
    if sync_blocked {
        reasons.push("sync uploads are paused while over the fair-use caps".into());
        // The earliest of: the stage expiring, or every triggered window back under its cap.
        let caps_clear = check.triggered.iter().filter_map(|&i| caps[i].and_then(|c| recovery(i, c))).max();
        let until = match (state.stage_until, caps_clear) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = until {
            wait_until(t);
        }
    }
    Decision {
        stage: state.stage,
        effective_stage,
        stt_allowed: !budget_exhausted && !ceiling_enforced,
        sync_allowed: !sync_blocked && !ceiling_enforced,
        stt_model_tier: stage_policy.map_or("standard", |s| s.stt_model_tier.as_str()).to_owned(),
        stt_budget: budget,
        windows: policy.windows.iter().zip(&check.totals).map(|(w, t)| (format!("{}_ms", w.name), *t)).collect(),
        caps: policy.windows.iter().zip(caps).filter_map(|(w, c)| c.map(|c| (format!("{}_ms", w.name), c))).collect(),
        plan: policy.plan_name(plan).to_owned(),
        triggered,
        ceiling_exceeded: check.ceiling_exceeded && not_enforced.is_none(),
        retry_after_s: retry_after,
        reasons,
        shadow,
        case_ref: state.last_case_ref.clone(),
    }
}

/// What may reach the STT vendor right now: the part of [`decide`] the audio path needs on every
/// report, without reading the windows (the caller says whether the ceiling is exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// The stage whose effects apply (`none` when bypassed or in shadow mode).
    pub effective_stage: Stage,
    pub ceiling_enforced: bool,
    /// Today's budget of the effective stage, if it has one.
    pub budget_limit_ms: Option<i64>,
    /// The budget of the recorded stage, used to note exhaustion in shadow mode.
    pub recorded_budget_limit_ms: Option<i64>,
}

pub fn forwarding(state: &EnforcementState, uid: &str, ceiling_exceeded: bool, policy: &Policy) -> Forwarding {
    let bypass = bypass_reason(state, uid, policy).is_some();
    let shadow = policy.switches.mode == Mode::Shadow;
    let enforce = !bypass && !shadow;
    let effective_stage = if enforce { state.stage } else { Stage::None };
    let limit_of = |s: Stage| policy.stage_policy(s).and_then(|p| p.stt_daily_budget).map(|d| d.ms());
    Forwarding {
        effective_stage,
        ceiling_enforced: enforce && ceiling_exceeded,
        budget_limit_ms: limit_of(effective_stage),
        recorded_budget_limit_ms: if bypass { None } else { limit_of(state.stage) },
    }
}

/// How [`record_stt`] split one report's STT audio.
#[derive(Debug, Clone, PartialEq)]
pub struct SttSplit {
    /// Audio that went to the vendor and counts toward today's budget.
    pub forwarded_ms: i64,
    /// Audio held back (the ceiling, or the budget used up); `forwarded_ms + held_back_ms` is the
    /// report's `stt_ms`.
    pub held_back_ms: i64,
    /// `budget_exhausted`, the first time today's budget runs out.
    pub event: Option<Event>,
}

/// Forwarded audio for one report: what went to the vendor and what was held back, and the
/// `budget_exhausted` event the first time today's budget runs out (recorded with `shadow: true`
/// and nothing held back in shadow mode).
pub fn record_stt(
    state: &EnforcementState,
    budget: &mut BudgetDay,
    stt_ms: i64,
    fwd: &Forwarding,
    ctx: &mut Ctx<'_>,
) -> SttSplit {
    *budget = budget.today(ctx.now);
    let forwarded = if fwd.ceiling_enforced {
        0
    } else if let Some(limit) = fwd.budget_limit_ms {
        stt_ms.min((limit - budget.used_ms).max(0))
    } else {
        stt_ms
    };
    budget.used_ms += forwarded;
    let mut event = None;
    if let Some(limit) = fwd.budget_limit_ms.or(fwd.recorded_budget_limit_ms)
        && budget.used_ms >= limit
        && !budget.exhausted_noted
    {
        budget.exhausted_noted = true;
        let mut e = ctx.event(EventKind::BudgetExhausted, ctx.now, state.stage, state.stage);
        e.budget = Some(BudgetSnapshot { used_ms: budget.used_ms, limit_ms: limit });
        e.stage_until = state.stage_until;
        event = Some(e);
    }
    SttSplit { forwarded_ms: forwarded, held_back_ms: stt_ms - forwarded, event }
}
