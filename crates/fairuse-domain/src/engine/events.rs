//! The append-only audit events every transition writes, what they record (trigger, verdict,
//! resolution, budget), and [`Ctx`], the context that stamps them.

use serde::{Deserialize, Serialize};

use super::EnforcementState;
use crate::classifier::{UsageType, Verdict};
use crate::ids::{CaseRef, IdSource};
use crate::policy::{Cause, MessageContext, Mode, Policy};
use crate::stage::Stage;
use crate::time::Timestamp;

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
    pub(super) fn event(&mut self, kind: EventKind, at: Timestamp, previous: Stage, new: Stage) -> Event {
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
