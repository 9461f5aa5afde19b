//! The HTTP edge (SPEC section 4): thin handlers that parse, authenticate and call the service,
//! one module per audience. Omi's paths and field names are kept (and Omi's query-parameter forms
//! of the admin actions are accepted) so Omi's clients can point here.
//!
//! - [`state`]: what every handler can reach ([`AppState`], [`HttpSettings`]).
//! - [`extract`]: bodies, path parameters, and who is calling.
//! - [`omi`]: Omi's route marker and its error shape.
//! - [`types`]: the response bodies, apart from the domain types (Omi's event fields among them).
//! - `request_metrics`: latency and count per route, for `/metrics`.
//! - `service`, `user`, `admin`, `public`: the routes of one audience each (the app's backend
//!   with a service key, end users with their token, admins with an admin key, anyone), each
//!   with its `routes()`.
//! - `app`: [`router`], which merges those with [`crate::gateway::routes`] (`/v1/listen`) and
//!   [`crate::dashboard::routes`] (`/admin/`).
//!
//! Imports point one way: the audience modules, the gateway and the dashboard import `state`,
//! `extract`, `omi` and `types`, which import none of them; only `app` knows them all.

mod admin;
mod app;
pub mod extract;
pub mod omi;
mod public;
mod request_metrics;
mod service;
pub mod state;
pub mod types;
mod user;

pub use app::router;
pub use extract::{
    Admin, ApiPath, JsonBody, MAX_BODY_BYTES, Operator, OptionalJson, PeerAddr, ServiceCaller, User, parse_json,
};
pub use omi::OmiRoute;
pub use public::OPENAPI_JSON;
pub use state::{AppState, HttpSettings, futures_ready};
