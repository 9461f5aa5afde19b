//! Request latency and count per route, for `/metrics`, and one `tracing` span per request.
//! Labelled by the route's template, not the path, so a uid in a path does not make a new series;
//! a request no route matched is labelled `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Request latency and count per route, for `/metrics`; everything logged while the request is
/// handled (store failures, errors) is inside a `request` span naming its method and route, and
/// the span records the status when the answer leaves.
pub(crate) async fn track_requests(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("request", method = %method, route = %route, status = tracing::field::Empty);
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("status", resp.status().as_u16());
    let status = resp.status().as_u16().to_string();
    metrics::histogram!("fairuse_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone(), "status" => status.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("fairuse_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    resp
}
