//! What admins and users do by hand: reset, set a stage, resolve a verdict, exempt, appeal.

use super::{Ctx, EnforcementState, Event, EventKind, Outcome, Resolution, apply_timers};
use crate::error::InputError;
use crate::ids::CaseRef;
use crate::stage::Stage;
use crate::time::Timestamp;

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
