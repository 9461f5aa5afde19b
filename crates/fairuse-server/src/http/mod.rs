//! Routes of SPEC section 4 (all but `/v1/listen`): thin handlers that parse, authenticate and
//! call the service. Omi's paths and field names are kept (and Omi's query-parameter forms of
//! the admin actions are accepted) so Omi's clients can point here.
//!
//! The state ([`state`]), the extractors ([`extract`]) and Omi's route marker and shapes
//! ([`omi`]) are leaf modules: the gateway and the dashboard import them, never this module's
//! handlers, so no import goes round in a circle.

mod admin;
pub mod extract;
pub mod omi;
mod public;
mod request_metrics;
mod service;
pub mod state;
mod user;

use axum::Router;
use axum::middleware;
use axum::routing::get;

pub use extract::{
    Admin, ApiPath, JsonBody, MAX_BODY_BYTES, Operator, OptionalJson, PeerAddr, ServiceCaller, User, parse_json,
};
pub use omi::{OmiRoute, event_json, omi_event};
pub use public::OPENAPI_JSON;
pub use state::{AppState, HttpSettings, futures_ready};

use crate::error::ApiError;
use request_metrics::track_requests;

pub fn router(state: AppState) -> Router {
    // Omi's own paths (its `fair_use_admin` router) are wrapped in `omi`: Omi's clients and
    // scripts call these, so they answer with Omi's status codes and shapes where ours differ.
    Router::new()
        .merge(service::routes())
        .merge(user::routes())
        .merge(admin::routes())
        .merge(public::routes())
        .route("/v1/listen", get(crate::gateway::listen))
        // The dashboard (`crate::dashboard`), route by route so the OpenAPI test sees each path.
        .route("/admin", get(crate::dashboard::redirect_to_index))
        .route("/admin/", get(crate::dashboard::index))
        .route("/admin/{file}", get(crate::dashboard::file))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(track_requests))
        .with_state(state)
}
