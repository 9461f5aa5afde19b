//! The routes of end users, each with the user's own token ([`User`]): the fair-use status, as
//! Omi's app reads it, and appeals against a case.

use axum::extract::State;
use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use fairuse_domain::engine;
use fairuse_domain::time::MS_PER_HOUR;
use serde::Deserialize;

use super::extract::{ApiPath, JsonBody, User};
use super::omi::omi;
use super::state::AppState;
use super::types::{AppealResultBody, BudgetStatusBody, EventBody, RecoveryBody, UserStatusBody};
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

async fn get_user_status(State(st): State<AppState>, User(uid): User) -> ApiResult<Json<UserStatusBody>> {
    let policy = st.service.policy();
    let d = st.service.decision(&uid).await?;
    let state = st.service.current_state(&uid).await.unwrap_or_default();
    let now = st.service.now();
    let mut limits = BTreeMap::new();
    let mut usage_pct = BTreeMap::new();
    let mut speech_hours = BTreeMap::new();
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
        speech_hours.insert(format!("speech_hours_{}", omi.0), hours(total));
        if let Some(cap) = caps.get(i).copied().flatten() {
            limits.insert(format!("{}_hours", omi.1), hours(cap));
            usage_pct.insert(omi.1.to_owned(), (total as f64 / cap as f64 * 1000.0).round() / 10.0);
            if total > cap {
                let at = st.service.recovery_at(&uid, w.minutes(), cap, now).await.ok().flatten();
                recovery.push(RecoveryBody { window: w.name.clone(), total_ms: total, cap_ms: cap, under_cap_at: at });
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
    let stt_budget = d.stt_budget.as_ref().map(BudgetStatusBody::from);
    let dg_budget = match &stt_budget {
        Some(b) => b.clone(),
        None => {
            let limit = policy.stages.restrict.stt_daily_budget.map_or(0, |b| b.ms());
            let used = st.service.budget_used(&uid, now.utc_day()).await.unwrap_or(0);
            BudgetStatusBody { exhausted: false, ..BudgetStatusBody::from(&engine::budget_status(limit, used, now)) }
        }
    };
    Ok(Json(UserStatusBody {
        uid: uid.to_string(),
        stage: d.stage,
        effective_stage: d.effective_stage,
        case_ref: state.last_case_ref,
        stage_until: state.stage_until,
        plan: d.plan,
        limits,
        usage_pct,
        stt_budget,
        dg_budget,
        stt_allowed: d.stt_allowed,
        message,
        recovery,
        speech_hours,
    }))
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
) -> ApiResult<(StatusCode, Json<AppealResultBody>)> {
    // Only an appeal that can be accepted counts toward the day's quota: a refused text or a
    // malformed reference says nothing about which cases exist. An unknown but well-formed
    // reference does count, so the quota still bounds probing.
    fairuse_domain::engine::check_appeal_text(&body.text)?;
    fairuse_domain::ids::CaseRef::parse(&case_ref)?;
    st.service.appeal_allowed(&uid, st.settings.appeals_per_day).await?;
    let event = st.service.appeal(&uid, &case_ref, &body.text).await?;
    Ok((StatusCode::CREATED, Json(AppealResultBody { status: "received", case_ref, appeal: EventBody::from(&event) })))
}
