//! The routes anyone may call, without credentials: a case's status (the reference a user
//! was given, looked up by anyone holding it; rate-limited per client), the probes, the metrics
//! and the OpenAPI document.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fairuse_domain::ids::Uid;
use fairuse_domain::policy::MessageContext;

use super::extract::{ApiPath, PeerAddr};
use super::omi::omi;
use super::state::AppState;
use super::types::{CaseStatusBody, ProbeBody};
use crate::error::{ApiError, ApiResult};
use crate::service::ServiceError;

/// The public routes, for [`router`](super::router) to merge.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/fair-use/case/{case_ref}/status", omi(get(get_case_status)))
        .route("/healthz", get(|| async { Json(ProbeBody { status: "ok" }) }))
        .route("/readyz", get(get_readyz))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(get_openapi))
}

fn client_key(st: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    if let Some(h) = &st.settings.trusted_proxy_header
        && let Some(v) = headers.get(h.as_str()).and_then(|v| v.to_str().ok())
    {
        // The right-most address is the one our own proxy saw; earlier ones are client-supplied.
        if let Some(last) = v.rsplit(',').map(str::trim).find(|s| !s.is_empty()) {
            return last.to_owned();
        }
    }
    peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string())
}

async fn get_case_status(
    State(st): State<AppState>,
    headers: HeaderMap,
    PeerAddr(peer): PeerAddr,
    ApiPath(case_ref): ApiPath<String>,
) -> ApiResult<Json<CaseStatusBody>> {
    let key = client_key(&st, &headers, peer);
    st.service.case_lookup_allowed(&key, st.settings.case_lookups_per_minute).await?;
    // Omi answers 404 "Case not found" for a reference that is malformed as for one that is not
    // there; so does this Omi path.
    let event = match st.service.case_event(&case_ref).await {
        Err(ServiceError::Input(_) | ServiceError::NotFound(_)) => {
            return Err(ApiError::NotFound("Case not found".into()));
        }
        other => other?,
    };
    let uid = Uid::parse(&event.uid)?;
    let state = st.service.current_state(&uid).await?;
    let policy = st.service.policy();
    let message = match policy.stage_policy(state.stage) {
        Some(sp) => policy
            .render(&sp.body, &MessageContext { case_ref: Some(event.case_ref.as_str()), ..state.message_context() }),
        None => policy.messages.none.clone(),
    };
    let updated_at = event.resolution.as_ref().map(|r| r.resolved_at).unwrap_or(event.created_at);
    Ok(Json(CaseStatusBody {
        case_ref: event.case_ref,
        stage: state.stage,
        message,
        created_at: event.created_at,
        updated_at,
        support_contact: policy.messages.support_contact.clone(),
        support_email: policy.messages.support_contact.clone(),
    }))
}

async fn get_readyz(State(st): State<AppState>) -> Response {
    match (st.ready)().await {
        Ok(()) => Json(ProbeBody { status: "ready" }).into_response(),
        Err(e) => ApiError::Unavailable(format!("stores not reachable: {e}")).into_response(),
    }
}

async fn get_metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => ApiError::Unavailable("metrics recorder is not installed".into()).into_response(),
    }
}

pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

async fn get_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
