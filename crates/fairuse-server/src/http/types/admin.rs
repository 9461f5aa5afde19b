//! Bodies of the admin API: who is asking, flagged users, usage series, cases and their actions.

use std::collections::BTreeMap;

use fairuse_domain::classifier::UsageType;
use fairuse_domain::engine::{EnforcementState, Event};
use fairuse_domain::ids::CaseRef;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use serde::Serialize;

use super::*;

/// `AdminWhoami`: who the presented admin key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminWhoamiBody {
    pub name: String,
    pub role: &'static str,
}

/// `FlaggedUser`: one row of the flagged list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedUserBody {
    pub uid: String,
    pub stage: Stage,
    pub stage_until: Option<Timestamp>,
    pub manual: bool,
    pub stage_since: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub last_case_ref: Option<CaseRef>,
    pub last_usage_type: Option<UsageType>,
    pub last_score: Option<f64>,
    pub plan: Option<String>,
    pub exempt: bool,
}

impl FlaggedUserBody {
    pub fn new(uid: &str, s: &EnforcementState) -> Self {
        FlaggedUserBody {
            uid: uid.to_owned(),
            stage: s.stage,
            stage_until: s.stage_until,
            manual: s.manual,
            stage_since: s.stage_since,
            updated_at: s.updated_at,
            last_case_ref: s.last_case_ref.clone(),
            last_usage_type: s.last_usage_type,
            last_score: s.last_score,
            plan: s.plan.clone(),
            exempt: s.exempt,
        }
    }
}

/// `FlaggedList`: `GET /v1/admin/fair-use/flagged`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedListBody {
    pub users: Vec<FlaggedUserBody>,
    pub fair_use_enabled: bool,
}

/// `usage` of the admin's user view: per lane, `(unix minute, ms)` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageSeriesBody {
    pub unit: &'static str,
    pub lanes: BTreeMap<&'static str, Vec<(i64, i64)>>,
}

impl UsageSeriesBody {
    pub fn new(lanes: BTreeMap<&'static str, Vec<(i64, i64)>>) -> Self {
        UsageSeriesBody { unit: "unix_minute_and_ms", lanes }
    }
}

/// `AdminUser`: `GET /v1/admin/fair-use/user/{uid}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminUserBody {
    pub uid: String,
    pub state: EnforcementStateBody,
    pub events: Vec<OmiEventBody>,
    pub windows: BTreeMap<String, i64>,
    pub caps: BTreeMap<String, i64>,
    pub ceiling_ms: i64,
    /// Omi's name of `windows`, kept for Omi's clients (README, Omi compatibility; documented
    /// in `openapi.json` as the same as `windows`).
    pub current_speech_ms: BTreeMap<String, i64>,
    /// `decision.stt_budget`, at the top level where Omi's answer has it.
    pub budget: Option<BudgetStatusBody>,
    pub decision: DecisionBody,
    pub usage: UsageSeriesBody,
}

/// `AdminCase`: `GET /v1/admin/fair-use/case/{case_ref}`, Omi's answer: the event's fields in
/// Omi's shape, and the same event as `event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminCaseBody {
    #[serde(flatten)]
    pub fields: OmiEventBody,
    pub event: OmiEventBody,
}

impl From<&Event> for AdminCaseBody {
    fn from(e: &Event) -> Self {
        let event = OmiEventBody::from(e);
        AdminCaseBody { fields: event.clone(), event }
    }
}

/// `ResolveResult`: the resolved event and the audit event of the resolution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolveResultBody {
    pub status: &'static str,
    pub event: EventBody,
    pub audit: EventBody,
}

/// `ResetResult`: the state after the reset and its audit event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetResultBody {
    pub status: &'static str,
    pub state: EnforcementStateBody,
    pub audit: EventBody,
}

/// `SetStageResult`: the stage set, the state after it and its audit event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetStageResultBody {
    pub status: &'static str,
    pub stage: Stage,
    pub state: EnforcementStateBody,
    pub audit: EventBody,
}

/// `ExemptStatus` (`GET`) and, with `audit`, `ExemptCleared` (`DELETE`): whether the user is
/// exempt, and by which source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExemptStatusBody {
    pub uid: String,
    /// Exempt by either source.
    pub exempt: bool,
    /// Exempt through the admin API.
    pub dynamic: bool,
    /// Exempt in the policy file.
    pub in_config: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<EventBody>,
}

/// `ExemptSet`: `PUT /v1/admin/fair-use/exempt/{uid}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExemptSetBody {
    pub uid: String,
    pub exempt: bool,
    pub audit: EventBody,
}

/// `AppealResult`: `POST /v1/fair-use/case/{case_ref}/appeal`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppealResultBody {
    pub status: &'static str,
    pub case_ref: String,
    pub appeal: EventBody,
}
