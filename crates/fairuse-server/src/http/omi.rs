//! Omi's routes (its `fair_use_admin` router and the user's status and case paths) answer as Omi
//! does, so Omi's clients and scripts can point here: `omi()` marks such a route and gives its
//! errors FastAPI's `detail`; an event with Omi's field names beside ours is
//! [`OmiEventBody`](super::types::OmiEventBody).
//! Imports only the state and the domain: both the extractors and the audience modules use it.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::Value;

use super::state::AppState;

/// Marks a request to one of Omi's paths (see `omi_compat`): such a route answers with Omi's
/// status codes and error shape where they differ from ours.
#[derive(Clone, Copy, Debug)]
pub struct OmiRoute;

/// One of Omi's routes: see [`omi_compat`].
pub(crate) fn omi(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer(middleware::from_fn(omi_compat))
}

/// Omi's routes: marks the request ([`OmiRoute`]) and gives every error FastAPI's `detail`
/// beside our `error` object, so a client of either reads its own field.
async fn omi_compat(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(OmiRoute);
    let resp = next.run(req).await;
    if !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Error bodies are small JSON objects built by `ApiError`; the limit only guards the buffer.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, parts.headers).into_response();
    };
    let mut v: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    if let Some(message) = v["error"]["message"].as_str().map(str::to_owned)
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("detail".into(), Value::String(message));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(v.to_string()))
}
