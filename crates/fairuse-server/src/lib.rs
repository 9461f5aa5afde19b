//! fairuse-server: the HTTP service. Axum routers, one per audience (`http::{service, user,
//! admin, public}`, the streaming `gateway`, the `dashboard`) merged by `http::router`; auth
//! extractors (`http::extract`), the error table, and the background workers. It takes every
//! store as `Arc<dyn Trait>`: no SQL and no Redis commands live here.
#![forbid(unsafe_code)]

pub mod clock;
pub mod dashboard;
pub mod error;
pub mod gateway;
pub mod http;
pub mod service;
pub mod strict_json;
pub mod workers;
