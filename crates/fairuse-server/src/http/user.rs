//! The routes of end users, each with the user's own token ([`User`]): the fair-use status, as
//! Omi's app reads it, and appeals against a case.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fairuse_domain::engine;
use fairuse_domain::time::MS_PER_HOUR;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiPath, JsonBody, User};
use super::omi::omi;
use super::state::AppState;
use crate::error::ApiResult;

/// The users' routes, for [`router`](super::router) to merge.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/fair-use/status", omi(get(get_user_status)))
        .route("/v1/fair-use/case/{case_ref}/appeal", post(post_appeal))
}

fn hours(ms: i64) -> f64 {
    (ms as f64 / MS_PER_HOUR as f64 * 100.0).round() / 100.0
}

async fn get_user_status(State(st): State<AppState>, User(uid): User) -> ApiResult<Json<Value>> {
    let policy = st.service.policy();
    let d = st.service.decision(&uid).await?;
    let state = st.service.current_state(&uid).await.unwrap_or_default();
    let now = st.service.now();
    let mut limits = serde_json::Map::new();
    let mut usage_pct = serde_json::Map::new();
    let mut speech = serde_json::Map::new();
    let mut recovery = Vec::new();
    let caps = policy.caps(state.plan_id(&policy));
    for (i, w) in policy.windows.iter().enumerate() {
        // Omi's names for the three default windows; other windows by their own name.
        let omi = match w.name.as_str() {
            "daily" => ("today", "daily"),
            "three_day" => ("3day", "three_day"),
            "weekly" => ("weekly", "weekly"),
            other => (other, other),
        };
        let total = d.windows.get(&format!("{}_ms", w.name)).copied().unwrap_or(0);
        speech.insert(format!("speech_hours_{}", omi.0), json!(hours(total)));
        if let Some(cap) = caps.get(i).copied().flatten() {
            limits.insert(format!("{}_hours", omi.1), json!(hours(cap)));
            usage_pct.insert(omi.1.to_owned(), json!((total as f64 / cap as f64 * 1000.0).round() / 10.0));
            if total > cap {
                let at = st.service.recovery_at(&uid, w.minutes(), cap, now).await.ok().flatten();
                recovery.push(json!({"window": w.name, "total_ms": total, "cap_ms": cap, "under_cap_at": at}));
            }
        }
    }
    let message = match policy.stage_policy(d.stage) {
        Some(sp) => policy.render(&sp.body, &state.message_context()),
        None => policy.messages.none.clone(),
    };
    // Omi returns `dg_budget` for every user: the restrict-stage budget and today's forwarded
    // audio. Where a budget applies it is that budget (throttle's too); elsewhere it is the
    // restrict budget, `exhausted: false` since nothing is held back (0 when there is none).
    let dg_budget = match &d.stt_budget {
        Some(b) => json!(b),
        None => {
            let limit = policy.stages.restrict.stt_daily_budget.map_or(0, |b| b.ms());
            let used = st.service.budget_used(&uid, now.utc_day()).await.unwrap_or(0);
            json!(engine::BudgetStatus { exhausted: false, ..engine::budget_status(limit, used, now) })
        }
    };
    let mut body = json!({
        "uid": uid,
        "stage": d.stage,
        "effective_stage": d.effective_stage,
        "case_ref": state.last_case_ref,
        "stage_until": state.stage_until,
        "plan": d.plan,
        "limits": limits,
        "usage_pct": usage_pct,
        "stt_budget": d.stt_budget,
        "dg_budget": dg_budget,
        "stt_allowed": d.stt_allowed,
        "message": message,
        "recovery": recovery,
    });
    if let Some(obj) = body.as_object_mut() {
        obj.extend(speech);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppealIn {
    text: String,
}

async fn post_appeal(
    State(st): State<AppState>,
    User(uid): User,
    ApiPath(case_ref): ApiPath<String>,
    JsonBody(body): JsonBody<AppealIn>,
) -> ApiResult<Response> {
    // Only an appeal that can be accepted counts toward the day's quota: a refused text or a
    // malformed reference says nothing about which cases exist. An unknown but well-formed
    // reference does count, so the quota still bounds probing.
    fairuse_domain::engine::check_appeal_text(&body.text)?;
    fairuse_domain::ids::CaseRef::parse(&case_ref)?;
    st.service.appeal_allowed(&uid, st.settings.appeals_per_day).await?;
    let event = st.service.appeal(&uid, &case_ref, &body.text).await?;
    Ok((StatusCode::CREATED, Json(json!({"status": "received", "case_ref": case_ref, "appeal": event})))
        .into_response())
}
