//! Omi's routes (its `fair_use_admin` router and the user's status and case paths) answer as Omi
//! does, so Omi's clients and scripts can point here: `omi()` marks such a route and gives its
//! errors FastAPI's `detail`, and [`omi_event`] shows an event with Omi's field names beside ours.
//! Imports only the state and the domain: both the extractors and the audience modules use it.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use fairuse_domain::engine::Event;
use fairuse_domain::stage::Stage;
use serde_json::{Value, json};

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

/// Events as the admin API shows them (kept for the dashboard issue).
pub fn event_json(e: &Event) -> Value {
    serde_json::to_value(e).unwrap_or_default()
}

/// Omi's name of a window in a trigger (`3day`); other windows keep their own names.
fn omi_trigger_name(window: &str) -> &str {
    if window == "three_day" { "3day" } else { window }
}

/// An event as Omi's admin routes show it: our fields, with Omi's beside them. Omi's `trigger`
/// is the first window over its cap (`daily`, `3day`, `weekly`; `daily` when none is, as Omi
/// wrote it), so ours moves to `trigger_detail`; `window_speech_ms`, `thresholds_ms` (the caps
/// of the user's plan, where Omi used the default tier's), `classifier`, `enforcement_action`,
/// `admin_notes`, `resolved`, `resolved_at`, `resolved_by` and `id` follow Omi's event document.
pub fn omi_event(e: &Event) -> Value {
    let mut v = event_json(e);
    let Some(obj) = v.as_object_mut() else { return v };
    let trigger = obj.remove("trigger").unwrap_or(Value::Null);
    if let Some(t) = &e.trigger {
        let first_over = t.windows.iter().find(|w| w.over).map_or("daily", |w| omi_trigger_name(&w.window));
        obj.insert("trigger".into(), json!(first_over));
        let totals: serde_json::Map<String, Value> =
            t.windows.iter().map(|w| (format!("{}_ms", w.window), json!(w.total_ms))).collect();
        let caps: serde_json::Map<String, Value> =
            t.windows.iter().filter_map(|w| w.cap_ms.map(|c| (w.window.clone(), json!(c)))).collect();
        obj.insert("window_speech_ms".into(), Value::Object(totals));
        obj.insert("thresholds_ms".into(), Value::Object(caps));
    } else {
        obj.insert("trigger".into(), Value::Null);
    }
    obj.insert("trigger_detail".into(), trigger);
    obj.insert("id".into(), json!(e.event_id));
    obj.insert("classifier".into(), serde_json::to_value(&e.verdict).unwrap_or_default());
    let action = if e.changes_stage() { e.new_stage } else { Stage::None };
    obj.insert("enforcement_action".into(), json!(action));
    obj.insert("resolved".into(), json!(e.resolution.is_some()));
    obj.insert("resolved_at".into(), json!(e.resolution.as_ref().map(|r| r.resolved_at)));
    obj.insert("resolved_by".into(), json!(e.resolution.as_ref().map(|r| r.resolved_by.clone())));
    obj.insert("admin_notes".into(), json!(e.resolution.as_ref().map(|r| r.notes.clone())));
    v
}
