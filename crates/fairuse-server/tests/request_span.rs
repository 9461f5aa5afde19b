//! What a request logs is inside a `request` span naming its method and route.
//!
//! This test has a binary of its own, with the subscriber installed globally before any request:
//! `tracing` caches per call site whether anyone listens, and a test in a shared binary that
//! registers the span's call site on another thread at the wrong moment leaves it switched off for
//! a subscriber set with `set_default` (it made CI fail once).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::policy::Policy;
use fairuse_domain::store::MemoryStore;
use fairuse_domain::time::{ManualClock, Timestamp};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use serde_json::Value;
use tower::ServiceExt;

mod support;
use support::Captured;

#[tokio::test]
async fn what_a_request_logs_is_inside_a_request_span_naming_its_route_and_status() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber in this binary");

    let service = Arc::new(Service::new(
        Stores::single(Arc::new(MemoryStore::new())),
        Policy::default(),
        Arc::new(ManualClock::new(Timestamp(1_774_000_000_000))),
        Arc::new(HeuristicClassifier),
        Notifications::default(),
    ));
    let env = HashMap::from([("FAIRUSE_SERVICE_KEYS".to_string(), "span-test-service-key-0123".to_string())]);
    let auth = fairuse_auth::Authenticator::from_env_map(&env).expect("test keys are valid");
    let app = router(AppState {
        service,
        auth: Arc::new(auth),
        settings: HttpSettings::default(),
        metrics: None,
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    });

    // No metrics recorder in this app: /metrics answers 503, which logs "request failed".
    let req = Request::builder().method("GET").uri("/metrics").body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);

    let text = captured.text();
    let line = text.lines().find(|l| l.contains("request failed")).unwrap_or_else(|| panic!("no log line: {text}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["span"]["name"], "request", "{v}");
    assert_eq!((v["span"]["method"].as_str(), v["span"]["route"].as_str()), (Some("GET"), Some("/metrics")), "{v}");
}
