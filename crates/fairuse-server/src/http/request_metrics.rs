//! Request latency and count per route, for `/metrics`, and one `tracing` span per request.
//! Labelled by the route's template, not the path, so a uid in a path does not make a new series;
//! a request no route matched is labelled `unmatched`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The two metrics of one (route, method, status) series.
struct Series {
    method: Method,
    status: u16,
    duration: metrics::Histogram,
    requests: metrics::Counter,
}

/// The handles of every series this router has answered, by route template. Registering a
/// labelled metric builds its key (the labels as owned strings) and looks it up in the recorder's
/// registry; doing that twice per request was most of this middleware's cost, so each series is
/// registered once, on its first request, and its handles are reused. One per router: handles
/// come from the recorder installed when the series is first seen.
#[derive(Clone, Default)]
pub(crate) struct RequestMetrics(Arc<RwLock<HashMap<String, Vec<Series>>>>);

impl RequestMetrics {
    fn record(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let found = |series: &Series| series.method == *method && series.status == status;
        {
            // Recording is atomic per handle: a read lock is enough, and is all a known series takes.
            let map = self.0.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = map.get(route).and_then(|all| all.iter().find(|s| found(s))) {
                s.duration.record(seconds);
                s.requests.increment(1);
                return;
            }
        }
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        let all = map.entry(route.to_owned()).or_default();
        let at = match all.iter().position(found) {
            Some(at) => at,
            None => {
                let labels = [
                    ("route", route.to_owned()),
                    ("method", method.as_str().to_owned()),
                    ("status", status.to_string()),
                ];
                all.push(Series {
                    method: method.clone(),
                    status,
                    duration: metrics::histogram!("fairuse_http_request_duration_seconds", &labels),
                    requests: metrics::counter!("fairuse_http_requests_total", &labels),
                });
                all.len() - 1
            }
        };
        all[at].duration.record(seconds);
        all[at].requests.increment(1);
    }
}

/// Request latency and count per route, for `/metrics`; everything logged while the request is
/// handled (store failures, errors) is inside a `request` span naming its method and route, and
/// the span records the status when the answer leaves.
pub(crate) async fn track_requests(State(series): State<RequestMetrics>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let started = Instant::now();
    let span = tracing::info_span!("request", method = %method, route = %route, status = tracing::field::Empty);
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.record("status", status);
    series.record(route, &method, status, started.elapsed().as_secs_f64());
    resp
}
