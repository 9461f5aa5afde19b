//! The cap check and the classifier trigger: which windows of the user's plan are over their caps,
//! and whether the classifier runs (or a synthetic verdict stands in for it).

use super::{EnforcementState, Trigger, WindowCheck};
use crate::classifier::Verdict;
use crate::policy::{PlanId, Policy};
use crate::stage::Stage;
use crate::time::Timestamp;
use crate::windows::WindowTotals;

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
