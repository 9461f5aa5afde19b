//! fairuse-server: the HTTP service. Axum routers (service, user, admin, public), auth
//! extractors, the error table, and the background workers. It takes every store as
//! `Arc<dyn Trait>`: no SQL and no Redis commands live here.
#![forbid(unsafe_code)]

pub mod clock;
pub mod dashboard;
pub mod error;
pub mod gateway;
pub mod http;
pub mod service;
pub mod strict_json;
pub mod workers;
