//! Request latency and count per route, for `/metrics`. Labelled by the route's template, not
//! the path, so a uid in a path does not make a new series; a request no route matched is
//! labelled `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Request latency and count per route, for `/metrics`.
pub(crate) async fn track_requests(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!("fairuse_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone(), "status" => status.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("fairuse_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    resp
}
