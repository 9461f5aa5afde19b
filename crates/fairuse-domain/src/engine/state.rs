//! A user's enforcement state: their stage, its timer and the qualifying verdicts that count on
//! the ladder, as stored between requests.

use serde::{Deserialize, Serialize};

use crate::classifier::UsageType;
use crate::ids::CaseRef;
use crate::policy::{Cause, MessageContext, PlanId, Policy};
use crate::stage::Stage;
use crate::time::Timestamp;

/// A qualifying verdict, kept to count `prior` on the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub event_id: String,
    pub at: Timestamp,
    pub overturned: bool,
    /// Free-exhausted verdicts are about credits, not abuse: an upgrade removes them.
    #[serde(default)]
    pub usage_type: UsageType,
    /// The verdict was measured (duplicate audio), so the ladder's next step comes after the
    /// shorter `[fingerprint] cooldown`. Absent in records stored before it existed: inferred.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub measured: bool,
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
