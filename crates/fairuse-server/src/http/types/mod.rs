//! The response bodies of the HTTP API, apart from the domain types they are built from. The
//! domain's structs (`Decision`, `EnforcementState`, `Event`, ...) are also what the SQL stores
//! keep in JSON columns; answering with them directly made every domain rename a breaking API
//! change. Each body here is the documented shape (`openapi.json`, schema named in its doc) and
//! is built with `From<&DomainType>` or by its handler, so the domain may change and the wire
//! stays put; `tests/response_shapes.rs` pins every shape with a golden file.
//!
//! The domain's value vocabulary (`Stage`, `CaseRef`, `Timestamp`, `UsageType`, `EventKind`,
//! `Outcome`, `Recipe`, `EvidenceKind`) is reused as is: each serializes as one string, whose
//! spelling the API documents as an enum and the stores share.
//!
//! Error answers are [`crate::error::ErrorBody`], beside the one table from errors to statuses.
//!
//! Imports only the domain and the service's own answer types; the handlers import this.

mod admin;
mod events;

use std::collections::BTreeMap;

use fairuse_domain::engine::{BudgetStatus, Decision, EnforcementState};
use fairuse_domain::ids::CaseRef;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use fairuse_domain::windows::RecordOutcome;
use serde::Serialize;

use crate::service::UsageAccepted;

pub use admin::*;
pub use events::*;

/// `BudgetStatus`: today's STT budget of the effective stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatusBody {
    pub daily_limit_ms: i64,
    pub used_ms: i64,
    pub remaining_ms: i64,
    pub exhausted: bool,
    pub resets_at: Timestamp,
}

impl From<&BudgetStatus> for BudgetStatusBody {
    fn from(b: &BudgetStatus) -> Self {
        BudgetStatusBody {
            daily_limit_ms: b.daily_limit_ms,
            used_ms: b.used_ms,
            remaining_ms: b.remaining_ms,
            exhausted: b.exhausted,
            resets_at: b.resets_at,
        }
    }
}

/// `Decision`: `GET /v1/users/{uid}/decision`, and `decision` of the admin's user view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionBody {
    pub stage: Stage,
    pub effective_stage: Stage,
    pub stt_allowed: bool,
    pub sync_allowed: bool,
    pub stt_model_tier: String,
    pub stt_budget: Option<BudgetStatusBody>,
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

impl From<&Decision> for DecisionBody {
    fn from(d: &Decision) -> Self {
        DecisionBody::from(d.clone())
    }
}

/// The decision route answers with the decision it just made: moved, not copied (the copy was
/// the strings and both maps of every decision again).
impl From<Decision> for DecisionBody {
    fn from(d: Decision) -> Self {
        DecisionBody {
            stage: d.stage,
            effective_stage: d.effective_stage,
            stt_allowed: d.stt_allowed,
            sync_allowed: d.sync_allowed,
            stt_model_tier: d.stt_model_tier,
            stt_budget: d.stt_budget.as_ref().map(BudgetStatusBody::from),
            windows: d.windows,
            caps: d.caps,
            plan: d.plan,
            triggered: d.triggered,
            ceiling_exceeded: d.ceiling_exceeded,
            retry_after_s: d.retry_after_s,
            reasons: d.reasons,
            shadow: d.shadow,
            case_ref: d.case_ref,
        }
    }
}

/// `RecordOutcome`: what recording one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordOutcomeBody {
    pub speech_added_ms: i64,
    pub stt_added_ms: i64,
    pub duplicate: bool,
}

impl From<&RecordOutcome> for RecordOutcomeBody {
    fn from(r: &RecordOutcome) -> Self {
        RecordOutcomeBody { speech_added_ms: r.speech_added_ms, stt_added_ms: r.stt_added_ms, duplicate: r.duplicate }
    }
}

/// `UsageAccepted`: `POST /v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageAcceptedBody {
    pub accepted: usize,
    pub duplicates: usize,
    pub metered: bool,
    pub results: Vec<RecordOutcomeBody>,
}

impl From<&UsageAccepted> for UsageAcceptedBody {
    fn from(u: &UsageAccepted) -> Self {
        UsageAcceptedBody {
            accepted: u.accepted,
            duplicates: u.duplicates,
            metered: u.metered,
            results: u.results.iter().map(RecordOutcomeBody::from).collect(),
        }
    }
}

/// `PlanResult`: `PUT /v1/users/{uid}/plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanResultBody {
    pub uid: String,
    pub plan: Option<String>,
    pub credits_exhausted: bool,
    pub stage: Stage,
}

impl PlanResultBody {
    pub fn new(uid: &str, state: &EnforcementState) -> Self {
        PlanResultBody {
            uid: uid.to_owned(),
            plan: state.plan.clone(),
            credits_exhausted: state.credits_exhausted,
            stage: state.stage,
        }
    }
}

/// `ConversationsResult`: `POST /v1/users/{uid}/conversations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversationsResultBody {
    pub uid: String,
    pub upserted: usize,
}

/// `Recovery`: a window over its cap, and when it falls back under it if the user stops now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryBody {
    pub window: String,
    pub total_ms: i64,
    pub cap_ms: i64,
    pub under_cap_at: Option<Timestamp>,
}

/// `UserStatus`: `GET /v1/fair-use/status`, the caller's own status as Omi's app reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserStatusBody {
    pub uid: String,
    pub stage: Stage,
    pub effective_stage: Stage,
    pub case_ref: Option<CaseRef>,
    pub stage_until: Option<Timestamp>,
    pub plan: String,
    /// Soft caps in hours, keyed `<window>_hours` (Omi's `daily_hours`, `three_day_hours`, ...).
    pub limits: BTreeMap<String, f64>,
    /// Percent of each capped window's cap used, keyed by window name.
    pub usage_pct: BTreeMap<String, f64>,
    pub stt_budget: Option<BudgetStatusBody>,
    /// Omi's legacy name, kept because Omi's app reads it (documented in `openapi.json`): always
    /// an object, `stt_budget` where a budget applies, else the restrict stage's budget with
    /// `exhausted: false` (see the handler).
    pub dg_budget: BudgetStatusBody,
    pub stt_allowed: bool,
    pub message: String,
    pub recovery: Vec<RecoveryBody>,
    /// Speech per window in hours, as top-level `speech_hours_<name>` fields (Omi's names
    /// `today`, `3day`, `weekly` for the default windows): one field per configured window.
    #[serde(flatten)]
    pub speech_hours: BTreeMap<String, f64>,
}

/// `CaseStatus`: `GET /v1/fair-use/case/{case_ref}/status`, public.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseStatusBody {
    pub case_ref: CaseRef,
    pub stage: Stage,
    pub message: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub support_contact: String,
    /// Omi's legacy name of `support_contact`, kept because Omi's clients read it (documented in
    /// `openapi.json`); always the same value.
    pub support_email: String,
}
