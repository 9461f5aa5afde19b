//! The decision: may this user's audio reach the STT vendor now, may they sync, and why; with the
//! bypasses (disabled, kill switch, exempt) and shadow mode applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BudgetStatus, CapCheck, EnforcementState, budget_status};
use crate::ids::CaseRef;
use crate::policy::{Mode, Policy, WindowDef};
use crate::stage::Stage;
use crate::time::Timestamp;

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
        windows: by_window_key(policy.windows.iter().zip(&check.totals).map(|(w, t)| (w, *t))),
        caps: by_window_key(policy.windows.iter().zip(caps).filter_map(|(w, c)| c.map(|c| (w, c)))),
        plan: policy.plan_name(plan).to_owned(),
        triggered,
        ceiling_exceeded: check.ceiling_exceeded && not_enforced.is_none(),
        retry_after_s: retry_after,
        reasons,
        shadow,
        case_ref: state.last_case_ref.clone(),
    }
}

/// `{"daily_ms": ...}`: values keyed by their window's name with `_ms`. Built key by key, without
/// `format!` or the sorted copy `collect` makes: a decision builds two of these on every request.
fn by_window_key<'a>(values: impl Iterator<Item = (&'a WindowDef, i64)>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (w, v) in values {
        let mut key = String::with_capacity(w.name.len() + 3);
        key.push_str(&w.name);
        key.push_str("_ms");
        out.insert(key, v);
    }
    out
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
