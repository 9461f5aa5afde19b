//! The routes of the app's backend, each with a service key ([`ServiceCaller`]): usage reports,
//! and a user's decision, plan and conversations.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fairuse_domain::classifier::Conversation;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::time::Timestamp;
use fairuse_domain::windows::{SpeechAmount, UsageReport};
use serde::Deserialize;
use serde_json::Value;

use super::extract::{ApiPath, BodyBytes, JsonBody, ServiceCaller, parse_json, uid_param};
use super::state::AppState;
use super::types::{ConversationsResultBody, DecisionBody, PlanResultBody, UsageAcceptedBody};
use crate::error::{ApiError, ApiResult};
use crate::service::UserReport;

/// The backend's routes, for [`router`](super::router) to merge.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/usage", post(post_usage))
        .route("/v1/users/{uid}/decision", get(get_decision))
        .route("/v1/users/{uid}/plan", put(put_plan))
        .route("/v1/users/{uid}/conversations", post(post_conversations))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageIn {
    uid: String,
    lane: String,
    #[serde(default)]
    speech_ms: Option<i64>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    cumulative_speech_ms: Option<i64>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    stt_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageBatch {
    reports: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UsageBody {
    Batch(UsageBatch),
    One(Value),
}

/// An error about entry `i` of a list in the body names it: `reports[3].lane`, or `reports[3]`
/// when the entry itself is not an object.
fn index_error(e: ApiError, list: &str, i: usize) -> ApiError {
    match e {
        ApiError::Input(ie) => ApiError::Input(ie.at_index(list, i)),
        ApiError::BadRequest(msg) => ApiError::Input(fairuse_domain::InputError::new(format!("{list}[{i}]"), msg)),
        other => other,
    }
}

fn usage_report(raw: Value) -> ApiResult<UserReport> {
    usage_report_of(parse_json(raw.to_string().as_bytes())?)
}

fn usage_report_of(r: UsageIn) -> ApiResult<UserReport> {
    let uid = Uid::parse(&r.uid)?;
    let lane = Lane::parse(&r.lane)?;
    let amount = match (r.speech_ms, &r.session_id, r.cumulative_speech_ms) {
        (Some(ms), None, None) => SpeechAmount::Delta(ms),
        (None, Some(s), Some(total)) => SpeechAmount::Cumulative { session_id: s.clone(), total_ms: total },
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(fairuse_domain::InputError::new(
                "speech_ms",
                "give either speech_ms, or session_id with cumulative_speech_ms, not both",
            )
            .into());
        }
        (None, None, _) => {
            return Err(fairuse_domain::InputError::new(
                "speech_ms",
                "missing: give speech_ms, or session_id with cumulative_speech_ms",
            )
            .into());
        }
        (None, Some(_), None) => {
            return Err(fairuse_domain::InputError::new("cumulative_speech_ms", "missing for a session report").into());
        }
    };
    let at = match &r.at {
        Some(a) => Some(Timestamp::parse_rfc3339(a).map_err(|e| fairuse_domain::InputError::new("at", e.to_string()))?),
        None => None,
    };
    let report = UsageReport { lane, amount, at, idempotency_key: r.idempotency_key, stt_ms: r.stt_ms.unwrap_or(0) };
    Ok(UserReport { uid, report })
}

async fn post_usage(
    State(st): State<AppState>,
    _: ServiceCaller,
    BodyBytes(bytes): BodyBytes,
) -> ApiResult<Json<UsageAcceptedBody>> {
    // One report, the usual body, is read straight into its fields. Any other body (a batch, or
    // one that is not valid) takes the general path, which also names what is wrong.
    if let Some(one) = crate::strict_json::try_parse::<UsageIn>(&bytes) {
        let accepted = st.service.record_usage(vec![usage_report_of(one)?]).await?;
        return Ok(Json(UsageAcceptedBody::from(&accepted)));
    }
    let body: UsageBody = parse_json(&bytes)?;
    let batch = matches!(body, UsageBody::Batch(_));
    let raw = match body {
        UsageBody::Batch(UsageBatch { reports }) => {
            if reports.is_empty() || reports.len() > 1000 {
                return Err(fairuse_domain::InputError::new(
                    "reports",
                    format!("must hold 1-1000 reports, got {}", reports.len()),
                )
                .into());
            }
            reports
        }
        UsageBody::One(v) => vec![v],
    };
    let mut reports = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        reports.push(usage_report(v).map_err(|e| if batch { index_error(e, "reports", i) } else { e })?);
    }
    let accepted = st.service.record_usage(reports).await?;
    Ok(Json(UsageAcceptedBody::from(&accepted)))
}

async fn get_decision(
    State(st): State<AppState>,
    _: ServiceCaller,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<DecisionBody>> {
    let uid = uid_param(&uid)?;
    let d = st.service.decision(&uid).await?;
    // Serialized straight from a struct: going through a `serde_json::Value` first built and
    // sorted a map per request, a tenth of the decision's CPU under load.
    Ok(Json(DecisionBody::from(d)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanIn {
    plan: String,
    #[serde(default)]
    credits_exhausted: bool,
}

async fn put_plan(
    State(st): State<AppState>,
    _: ServiceCaller,
    ApiPath(uid): ApiPath<String>,
    JsonBody(body): JsonBody<PlanIn>,
) -> ApiResult<Json<PlanResultBody>> {
    let uid = uid_param(&uid)?;
    let state = st.service.set_plan(&uid, &body.plan, body.credits_exhausted).await?;
    Ok(Json(PlanResultBody::new(uid.as_str(), &state)))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ConversationsBody {
    Many { conversations: Vec<Value> },
    One(Value),
}

async fn post_conversations(
    State(st): State<AppState>,
    _: ServiceCaller,
    ApiPath(uid): ApiPath<String>,
    JsonBody(body): JsonBody<ConversationsBody>,
) -> ApiResult<Json<ConversationsResultBody>> {
    let uid = uid_param(&uid)?;
    let many = matches!(body, ConversationsBody::Many { .. });
    let raw = match body {
        ConversationsBody::Many { conversations } => conversations,
        ConversationsBody::One(v) => vec![v],
    };
    if raw.is_empty() || raw.len() > 500 {
        return Err(fairuse_domain::InputError::new("conversations", "must hold 1-500 conversations").into());
    }
    let mut parsed = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let c: Conversation = parse_json(v.to_string().as_bytes())
            .map_err(|e| if many { index_error(e, "conversations", i) } else { e })?;
        fairuse_domain::pipeline::validate_conversation(&c, &st.service.policy(), st.service.now())
            .map_err(|e| if many { e.at_index("conversations", i) } else { e })?;
        parsed.push(c);
    }
    for c in &parsed {
        st.service.upsert_conversation(&uid, c).await?;
    }
    Ok(Json(ConversationsResultBody { uid: uid.to_string(), upserted: parsed.len() }))
}
