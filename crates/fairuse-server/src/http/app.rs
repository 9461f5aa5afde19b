//! The service's one router: every audience's routes, the gateway's and the dashboard's, merged,
//! with what applies to all of them (the JSON 404 for any other path, the body limit, the request
//! metrics) and the state. The only module that knows every other one.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;

use super::extract::MAX_BODY_BYTES;
use super::request_metrics::{RequestMetrics, track_requests};
use super::state::AppState;
use super::{admin, public, service, user};
use crate::error::ApiError;

/// The whole HTTP service. `/v1/listen` answers 503 until the composition root layers a
/// [`crate::gateway::Gateway`] on as an extension.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(service::routes())
        .merge(user::routes())
        .merge(crate::gateway::routes())
        .merge(admin::routes())
        .merge(public::routes())
        .merge(crate::dashboard::routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(RequestMetrics::default(), track_requests))
        .with_state(state)
}
