//! The ladder's automatic moves: timers stepping a stage down, verdicts stepping it up, and a plan
//! change clearing what only free-credit verdicts drove.

use super::{Ctx, EnforcementState, Event, EventKind, Trigger, VerdictRecord};
use crate::classifier::{UsageType, Verdict};
use crate::policy::PlanId;
use crate::stage::Stage;

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
            measured: verdict.is_measured(),
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
