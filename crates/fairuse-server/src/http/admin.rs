//! The admins' routes, each with a named admin key: any role reads ([`Admin`]), an operator
//! also changes things ([`Operator`]). Omi's `fair_use_admin` paths answer as Omi's do
//! ([`omi`]), and resolve-event and set-stage also take their parameters in the query, as
//! Omi's do; `whoami` and the exemption routes are ours.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use fairuse_domain::engine::Outcome;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use serde::Deserialize;

use super::extract::{Admin, ApiPath, Operator, OptionalJson, uid_param};
use super::omi::omi;
use super::state::AppState;
use super::types::{
    AdminCaseBody, AdminUserBody, AdminWhoamiBody, BudgetStatusBody, DecisionBody, EnforcementStateBody, EventBody,
    ExemptSetBody, ExemptStatusBody, FlaggedListBody, FlaggedUserBody, OmiEventBody, ResetResultBody,
    ResolveResultBody, SetStageResultBody, UsageSeriesBody,
};
use crate::error::{ApiError, ApiResult};
use crate::service::ServiceError;

/// The admins' routes, for [`router`](super::router) to merge.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/fair-use/whoami", get(get_whoami))
        .route("/v1/admin/fair-use/flagged", omi(get(get_flagged)))
        .route("/v1/admin/fair-use/user/{uid}", omi(get(get_admin_user)))
        .route("/v1/admin/fair-use/case/{case_ref}", omi(get(get_admin_case)))
        .route("/v1/admin/fair-use/user/{uid}/resolve-event/{event_id}", omi(post(post_resolve)))
        .route("/v1/admin/fair-use/user/{uid}/reset", omi(post(post_reset)))
        .route("/v1/admin/fair-use/user/{uid}/set-stage", omi(post(post_set_stage)))
        .route("/v1/admin/fair-use/exempt/{uid}", get(get_exempt).put(put_exempt).delete(delete_exempt))
}

/// Who the presented admin key belongs to (any role): the dashboard's sign-in.
async fn get_whoami(Admin(admin): Admin) -> Json<AdminWhoamiBody> {
    Json(AdminWhoamiBody { name: admin.name, role: admin.role.as_str() })
}

#[derive(Deserialize)]
struct FlaggedQuery {
    stage: Option<String>,
    limit: Option<String>,
}

async fn get_flagged(
    State(st): State<AppState>,
    _: Admin,
    Query(q): Query<FlaggedQuery>,
) -> ApiResult<Json<FlaggedListBody>> {
    let stage = match q.stage.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(Stage::parse(s)?),
        None => None,
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => {
                return Err(fairuse_domain::InputError::new(
                    "limit",
                    format!("must be a number from 1 to 200, got {l:?}"),
                )
                .into());
            }
        },
    };
    let rows = st.service.flagged(stage, limit).await?;
    let users = rows.iter().map(|(uid, s)| FlaggedUserBody::new(uid, s)).collect();
    Ok(Json(FlaggedListBody { users, fair_use_enabled: st.service.policy().switches.enabled }))
}

async fn get_admin_user(
    State(st): State<AppState>,
    _: Admin,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<AdminUserBody>> {
    let uid = uid_param(&uid)?;
    let state = st.service.current_state(&uid).await?;
    let events = st.service.events(&uid, 50).await?;
    let decision = st.service.decision(&uid).await?;
    let usage = st.service.usage_series(&uid, 7).await?;
    Ok(Json(AdminUserBody {
        uid: uid.to_string(),
        state: EnforcementStateBody::from(&state),
        events: events.iter().map(OmiEventBody::from).collect(),
        windows: decision.windows.clone(),
        caps: decision.caps.clone(),
        ceiling_ms: st.service.policy().ceiling.limit.ms(),
        current_speech_ms: decision.windows.clone(),
        budget: decision.stt_budget.as_ref().map(BudgetStatusBody::from),
        decision: DecisionBody::from(&decision),
        usage: UsageSeriesBody::new(usage),
    }))
}

async fn get_admin_case(
    State(st): State<AppState>,
    _: Admin,
    ApiPath(case_ref): ApiPath<String>,
) -> ApiResult<Json<AdminCaseBody>> {
    let event = match st.service.case_event(&case_ref).await {
        Err(ServiceError::Input(_) | ServiceError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("Case {case_ref} not found")));
        }
        other => other?,
    };
    Ok(Json(AdminCaseBody::from(&event)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolveIn {
    outcome: Option<String>,
    notes: Option<String>,
}

async fn post_resolve(
    State(st): State<AppState>,
    Operator(admin): Operator,
    ApiPath((uid, event_id)): ApiPath<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    OptionalJson(body): OptionalJson<ResolveIn>,
) -> ApiResult<Json<ResolveResultBody>> {
    let uid = uid_param(&uid)?;
    let outcome = body.outcome.or_else(|| q.get("outcome").cloned()).unwrap_or_else(|| "upheld".into());
    let outcome = match outcome.as_str() {
        "upheld" => Outcome::Upheld,
        "overturned" => Outcome::Overturned,
        other => {
            return Err(fairuse_domain::InputError::new(
                "outcome",
                format!("must be upheld or overturned, got {other:?}"),
            )
            .into());
        }
    };
    let notes = body.notes.or_else(|| q.get("notes").cloned()).unwrap_or_default();
    let (event, audit) = st.service.resolve(&uid, &event_id, outcome, notes, &admin.name).await?;
    Ok(Json(ResolveResultBody { status: "resolved", event: EventBody::from(&event), audit: EventBody::from(&audit) }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetIn {
    reason: Option<String>,
}

async fn post_reset(
    State(st): State<AppState>,
    Operator(admin): Operator,
    ApiPath(uid): ApiPath<String>,
    OptionalJson(body): OptionalJson<ResetIn>,
) -> ApiResult<Json<ResetResultBody>> {
    let uid = uid_param(&uid)?;
    let (state, audit) = st.service.reset(&uid, &admin.name, body.reason).await?;
    Ok(Json(ResetResultBody {
        status: "reset",
        state: EnforcementStateBody::from(&state),
        audit: EventBody::from(&audit),
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SetStageIn {
    stage: Option<String>,
    until: Option<String>,
    reason: Option<String>,
}

async fn post_set_stage(
    State(st): State<AppState>,
    Operator(admin): Operator,
    ApiPath(uid): ApiPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
    OptionalJson(body): OptionalJson<SetStageIn>,
) -> ApiResult<Json<SetStageResultBody>> {
    let uid = uid_param(&uid)?;
    let stage = body
        .stage
        .or_else(|| q.get("stage").cloned())
        .ok_or_else(|| fairuse_domain::InputError::new("stage", "missing"))?;
    let stage = Stage::parse(&stage)?;
    let until = match body.until.or_else(|| q.get("until").cloned()) {
        Some(u) => {
            Some(Timestamp::parse_rfc3339(&u).map_err(|e| fairuse_domain::InputError::new("until", e.to_string()))?)
        }
        None => None,
    };
    let reason = body.reason.or_else(|| q.get("reason").cloned());
    let (state, audit) = st.service.set_stage(&uid, stage, until, &admin.name, reason).await?;
    Ok(Json(SetStageResultBody {
        status: "updated",
        stage: state.stage,
        state: EnforcementStateBody::from(&state),
        audit: EventBody::from(&audit),
    }))
}

async fn get_exempt(
    State(st): State<AppState>,
    _: Admin,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<ExemptStatusBody>> {
    let uid = uid_param(&uid)?;
    let state = st.service.current_state(&uid).await?;
    let in_config = st.service.policy().is_exempt_in_config(uid.as_str());
    Ok(Json(ExemptStatusBody {
        uid: uid.to_string(),
        exempt: state.exempt || in_config,
        dynamic: state.exempt,
        in_config,
        audit: None,
    }))
}

async fn put_exempt(
    State(st): State<AppState>,
    Operator(admin): Operator,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<ExemptSetBody>> {
    let uid = uid_param(&uid)?;
    let (state, audit) = st.service.set_exempt(&uid, true, &admin.name).await?;
    Ok(Json(ExemptSetBody { uid: uid.to_string(), exempt: state.exempt, audit: EventBody::from(&audit) }))
}

async fn delete_exempt(
    State(st): State<AppState>,
    Operator(admin): Operator,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<ExemptStatusBody>> {
    let uid = uid_param(&uid)?;
    let in_config = st.service.policy().is_exempt_in_config(uid.as_str());
    let (state, audit) = st.service.set_exempt(&uid, false, &admin.name).await?;
    Ok(Json(ExemptStatusBody {
        uid: uid.to_string(),
        exempt: state.exempt || in_config,
        dynamic: state.exempt,
        in_config,
        audit: Some(EventBody::from(&audit)),
    }))
}
