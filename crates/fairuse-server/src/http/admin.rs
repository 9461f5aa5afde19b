//! The admins' routes, each with a named admin key: any role reads ([`Admin`]), an operator
//! also changes things ([`Operator`]). Omi's `fair_use_admin` paths answer as Omi's do
//! ([`omi`]), and resolve-event and set-stage also take their parameters in the query, as
//! Omi's do; `whoami` and the exemption routes are ours.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use fairuse_domain::engine::{EnforcementState, Outcome};
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Admin, ApiPath, Operator, OptionalJson, uid_param};
use super::omi::{omi, omi_event};
use super::state::AppState;
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
async fn get_whoami(Admin(admin): Admin) -> Json<Value> {
    Json(json!({"name": admin.name, "role": admin.role.as_str()}))
}

#[derive(Deserialize)]
struct FlaggedQuery {
    stage: Option<String>,
    limit: Option<String>,
}

fn flagged_row(uid: &str, s: &EnforcementState) -> Value {
    json!({
        "uid": uid, "stage": s.stage, "stage_until": s.stage_until, "manual": s.manual, "stage_since": s.stage_since,
        "updated_at": s.updated_at, "last_case_ref": s.last_case_ref, "last_usage_type": s.last_usage_type,
        "last_score": s.last_score, "plan": s.plan, "exempt": s.exempt,
    })
}

async fn get_flagged(State(st): State<AppState>, _: Admin, Query(q): Query<FlaggedQuery>) -> ApiResult<Json<Value>> {
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
    let users: Vec<Value> = rows.iter().map(|(uid, s)| flagged_row(uid, s)).collect();
    Ok(Json(json!({"users": users, "fair_use_enabled": st.service.policy().switches.enabled})))
}

async fn get_admin_user(State(st): State<AppState>, _: Admin, ApiPath(uid): ApiPath<String>) -> ApiResult<Json<Value>> {
    let uid = uid_param(&uid)?;
    let state = st.service.current_state(&uid).await?;
    let events = st.service.events(&uid, 50).await?;
    let decision = st.service.decision(&uid).await?;
    let usage = st.service.usage_series(&uid, 7).await?;
    let current_speech_ms: BTreeMap<String, i64> = decision.windows.clone();
    let events: Vec<Value> = events.iter().map(omi_event).collect();
    Ok(Json(json!({
        "uid": uid,
        "state": state,
        "events": events,
        "windows": decision.windows,
        "caps": decision.caps,
        "ceiling_ms": st.service.policy().ceiling.limit.ms(),
        "current_speech_ms": current_speech_ms,
        "budget": decision.stt_budget,
        "decision": decision,
        "usage": {"unit": "unix_minute_and_ms", "lanes": usage},
    })))
}

async fn get_admin_case(
    State(st): State<AppState>,
    _: Admin,
    ApiPath(case_ref): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let event = match st.service.case_event(&case_ref).await {
        Err(ServiceError::Input(_) | ServiceError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("Case {case_ref} not found")));
        }
        other => other?,
    };
    // Omi's answer is the event's fields with `uid` and `event_id`; `event` is ours.
    let mut body = omi_event(&event);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("event_id".into(), json!(event.event_id));
        obj.insert("event".into(), omi_event(&event));
    }
    Ok(Json(body))
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
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({"status": "resolved", "event": event, "audit": audit})))
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
) -> ApiResult<Json<Value>> {
    let uid = uid_param(&uid)?;
    let (state, audit) = st.service.reset(&uid, &admin.name, body.reason).await?;
    Ok(Json(json!({"status": "reset", "state": state, "audit": audit})))
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
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({"status": "updated", "stage": state.stage, "state": state, "audit": audit})))
}

async fn get_exempt(State(st): State<AppState>, _: Admin, ApiPath(uid): ApiPath<String>) -> ApiResult<Json<Value>> {
    let uid = uid_param(&uid)?;
    let state = st.service.current_state(&uid).await?;
    let in_config = st.service.policy().is_exempt_in_config(uid.as_str());
    Ok(Json(json!({"uid": uid, "exempt": state.exempt || in_config, "dynamic": state.exempt, "in_config": in_config})))
}

async fn put_exempt(
    State(st): State<AppState>,
    Operator(admin): Operator,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let uid = uid_param(&uid)?;
    let (state, audit) = st.service.set_exempt(&uid, true, &admin.name).await?;
    Ok(Json(json!({"uid": uid, "exempt": state.exempt, "audit": audit})))
}

async fn delete_exempt(
    State(st): State<AppState>,
    Operator(admin): Operator,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let uid = uid_param(&uid)?;
    let in_config = st.service.policy().is_exempt_in_config(uid.as_str());
    let (state, audit) = st.service.set_exempt(&uid, false, &admin.name).await?;
    Ok(Json(
        json!({"uid": uid, "exempt": state.exempt || in_config, "dynamic": state.exempt, "in_config": in_config, "audit": audit}),
    ))
}
