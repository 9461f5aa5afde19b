//! The streaming gateway, `GET /v1/listen` (SPEC section 5): the protocol layer. It speaks the
//! Deepgram live protocol to the client, forwards audio to a configured upstream STT vendor
//! while the user's budget allows, relays the vendor's results unchanged, meters every stream
//! and reports cumulative session totals, and caps concurrent streams per user.
//!
//! Speech detection is not here: the gateway takes a [`MeterFactory`] (the VAD crate provides
//! the real one), so this module depends on no VAD and no store; it calls the
//! [`Service`](crate::service::Service).
//!
//! The composition root attaches the gateway to the router as an extension:
//! `http::router(state).layer(axum::Extension(Arc::new(Gateway::new(settings, factory))))`.
//! Without it `/v1/listen` answers 503 saying so (never open by default).

mod meter;
mod protocol;
mod stream;
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use fairuse_domain::ids::Uid;

use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;

pub use meter::{MeterFactory, StreamMeter};
pub use upstream::Upstream;

use protocol::parse_format;
use stream::Stream;
use upstream::READ_BUFFER_BYTES;

/// Sampled codes waiting for the print index: at most this many (about 40 minutes of speech at one
/// code in four); while the index cannot be reached, newer codes are dropped rather than held.
pub const MAX_PENDING_HASHES: usize = 5_000;

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub upstream: Upstream,
    /// How often a stream reports its cumulative totals and re-reads the decision (60 s).
    pub flush_interval: Duration,
    /// Open streams per user in this process; the next one is refused.
    pub max_streams_per_user: usize,
    /// Larger client frames are refused with an error message on the stream.
    pub max_frame_bytes: usize,
    /// Timeout of every outbound call: connecting upstream, sending to it, reporting usage.
    pub outbound_timeout: Duration,
    /// After `CloseStream`, how long to wait for the upstream's last results.
    pub close_timeout: Duration,
    /// A stream with no message from its client (audio, `KeepAlive`, ping) for this long is
    /// closed, so a dead connection does not hold a stream slot. Deepgram's own limit is 10 s
    /// without audio or `KeepAlive`; SDKs send `KeepAlive` every few seconds when idle.
    pub idle_timeout: Duration,
}

pub const DEFAULT_MAX_STREAMS_PER_USER: usize = 4;

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            upstream: Upstream::None,
            flush_interval: Duration::from_secs(60),
            max_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            max_frame_bytes: 1 << 20,
            outbound_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The gateway: settings, the meter factory and the open-stream counts.
pub struct Gateway {
    pub(super) settings: GatewaySettings,
    pub(super) meters: Arc<dyn MeterFactory>,
    pub(super) open: Arc<Mutex<HashMap<Uid, usize>>>,
}

impl Gateway {
    pub fn new(settings: GatewaySettings, meters: Arc<dyn MeterFactory>) -> Gateway {
        Gateway { settings, meters, open: Arc::default() }
    }

    /// Open streams of `uid` in this process.
    pub fn open_streams(&self, uid: &Uid) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).get(uid).copied().unwrap_or(0)
    }

    fn acquire(&self, uid: &Uid) -> ApiResult<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(uid.clone()).or_insert(0);
        if *n >= self.settings.max_streams_per_user {
            return Err(ApiError::Conflict(format!(
                "too many concurrent streams: {} are open for this user and the limit is {}",
                n, self.settings.max_streams_per_user
            )));
        }
        *n += 1;
        Ok(StreamSlot { open: self.open.clone(), uid: uid.clone() })
    }
}

/// One counted stream; dropping it frees the slot, however the stream ends.
struct StreamSlot {
    open: Arc<Mutex<HashMap<Uid, usize>>>,
    uid: Uid,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

/// The user's JWT, as `Authorization: Bearer <jwt>`, as Deepgram SDKs send it
/// (`Authorization: Token <jwt>`), or, for browsers, which cannot set headers on a WebSocket, as
/// Deepgram accepts it there: `Sec-WebSocket-Protocol: token, <jwt>`. The same verifier checks
/// it and the uid comes from the token.
async fn authenticate(st: &AppState, headers: &HeaderMap) -> ApiResult<Uid> {
    let from_protocol = subprotocol_token(headers).map(|t| format!("Token {t}"));
    let raw = headers.get("authorization").and_then(|v| v.to_str().ok()).or(from_protocol.as_deref());
    let normalized = raw.map(|v| {
        let t = v.trim();
        match t.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("token") => format!("Bearer {}", rest.trim()),
            _ => t.to_owned(),
        }
    });
    let now_s = st.service.now().secs().max(0) as u64;
    let uid = st.auth.user(normalized.as_deref(), now_s).await?;
    Ok(Uid::parse(&uid)?)
}

/// The token of `Sec-WebSocket-Protocol: token, <jwt>` (or `bearer, <jwt>`).
fn subprotocol_token(headers: &HeaderMap) -> Option<String> {
    let offered = headers.get("sec-websocket-protocol")?.to_str().ok()?;
    let mut parts = offered.split(',').map(str::trim);
    let scheme = parts.next()?;
    let token = parts.next().filter(|t| !t.is_empty())?;
    // Exactly as offered: the handshake must echo the scheme back byte for byte, and axum selects
    // a protocol by exact match.
    matches!(scheme, "token" | "bearer").then(|| token.to_owned())
}

/// The gateway's one route, for [`crate::http::router`] to merge.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/listen", get(listen))
}

/// `GET /v1/listen`: checks the token, the format and the stream cap before upgrading, so a
/// refusal is an ordinary HTTP error the client can read.
pub async fn listen(
    State(st): State<AppState>,
    gateway: Option<Extension<Arc<Gateway>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let Some(Extension(gateway)) = gateway else {
        return Err(ApiError::Unavailable(
            "the streaming gateway is not configured (set FAIRUSE_UPSTREAM_STT_URL, or `none` to meter only)".into(),
        ));
    };
    let uid = authenticate(&st, &headers).await?;
    let query = query.unwrap_or_default();
    let format = parse_format(&query)?;
    let ws = ws.map_err(|e| ApiError::BadRequest(format!("/v1/listen is a WebSocket endpoint: {e}")))?;
    let slot = gateway.acquire(&uid)?;
    let service = st.service.clone();
    // Frames a little over the limit still arrive, so the refusal is a message on the stream,
    // not a dropped connection; far larger ones are cut by the WebSocket layer itself.
    let ws = ws.max_message_size(gateway.settings.max_frame_bytes.saturating_mul(4));
    // tungstenite zero-fills the free part of its read buffer before every read, including reads
    // that find nothing: at the default 128 KiB that memset was a third of the server's CPU per
    // audio frame. Frames are a few KiB; a larger one still arrives, over several reads.
    let ws = ws.read_buffer_size(READ_BUFFER_BYTES);
    // A browser that offered `token, <jwt>` needs the server to select `token` (never the JWT).
    let ws = ws.protocols(["token", "bearer"]);
    Ok(ws.on_upgrade(move |socket| async move {
        let stream = Stream::new(gateway, service, uid, format, query);
        stream.run(socket).await;
        drop(slot);
    }))
}
