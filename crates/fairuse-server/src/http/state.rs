//! What every handler can reach: the service, the authenticator, the process settings, the
//! metrics handle and the readiness check. A leaf: it imports no handler and no router, so the
//! gateway, the dashboard and every audience module share it without importing each other.

use std::sync::Arc;

use fairuse_auth::Authenticator;

use crate::service::Service;

/// Process settings the routes need.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Public case lookups per client per minute.
    pub case_lookups_per_minute: u32,
    /// Appeals per user per rolling day, counted before the case is looked up (so a user cannot
    /// flood the review queue or probe case references through it).
    pub appeals_per_day: u32,
    /// A proxy header that carries the client address (e.g. `x-forwarded-for`); none by default,
    /// so a client cannot choose its own rate-limit key.
    pub trusted_proxy_header: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { case_lookups_per_minute: 10, appeals_per_day: 5, trusted_proxy_header: None }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub auth: Arc<Authenticator>,
    pub settings: HttpSettings,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub ready: Arc<dyn Fn() -> futures_ready::ReadyFuture + Send + Sync>,
}

/// Readiness probe type: an async check of the stores.
pub mod futures_ready {
    use std::future::Future;
    use std::pin::Pin;
    pub type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}
