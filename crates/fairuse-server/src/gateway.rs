//! The streaming gateway, `GET /v1/listen` (SPEC section 5): the protocol layer. It speaks the
//! Deepgram live protocol to the client, forwards audio to a configured upstream STT vendor
//! while the user's budget allows, relays the vendor's results unchanged, meters every stream
//! and reports cumulative session totals, and caps concurrent streams per user.
//!
//! Speech detection is not here: the gateway takes a [`MeterFactory`] (the VAD crate provides
//! the real one), so this module depends on no VAD and no store; it calls the [`Service`].
//!
//! The composition root attaches the gateway to the router as an extension:
//! `http::router(state).layer(axum::Extension(Arc::new(Gateway::new(settings, factory))))`.
//! Without it `/v1/listen` answers 503 saying so (never open by default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::pipeline;
use fairuse_domain::prints::DuplicateTracker;
use fairuse_domain::sessions::{DEFAULT_BRIDGE_MS, HashSample, SpeechRuns, StreamSession};

use fairuse_domain::windows::{SpeechAmount, UsageReport};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::service::{Service, ServiceResult, UsageAccepted};

/// Per-stream speech metering: fed every whole PCM frame (interleaved when stereo), asked for
/// the running total. Implementations keep their own state per stream.
pub trait StreamMeter: Send {
    /// Feeds samples; calls `on_window(is_speech)` for every detection window completed, in
    /// order (the gateway builds the session's speech runs and pauses from them).
    fn push(&mut self, pcm: &[i16], on_window: &mut dyn FnMut(bool));
    fn speech_ms(&self) -> i64;
    /// The length of one detection window (32 ms for Silero).
    fn window_ms(&self) -> i64;
    /// Appends the sampled fingerprint codes of this stream's speech completed since the last
    /// call (policy `[fingerprint]`). A meter that does not fingerprint appends nothing.
    fn take_hashes(&mut self, _out: &mut Vec<HashSample>) {}
}

/// Makes one [`StreamMeter`] per stream.
pub trait MeterFactory: Send + Sync {
    fn new_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter>;
    /// A meter that also fingerprints the stream's speech, used while the policy's
    /// `[fingerprint] enabled` is on; a factory that cannot fingerprint returns a plain meter.
    fn new_fingerprinting_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter> {
        self.new_meter(sample_rate, channels)
    }
}

/// Sampled codes waiting for the print index: at most this many (about 40 minutes of speech at one
/// code in four); while the index cannot be reached, newer codes are dropped rather than held.
pub const MAX_PENDING_HASHES: usize = 5_000;

/// Where audio goes.
#[derive(Clone)]
pub enum Upstream {
    /// Meter only: nothing is forwarded (`FAIRUSE_UPSTREAM_STT_URL=none`).
    None,
    /// A Deepgram-compatible live endpoint (`ws://` or `wss://`); the key is sent as
    /// `Authorization: Token <key>` and never reaches the client. A `wss://` endpoint is verified
    /// against the system's root certificates (plus any added with [`Upstream::with_extra_roots`]).
    Url { url: String, api_key: Option<String>, tls: Option<Arc<rustls::ClientConfig>> },
}

impl std::fmt::Debug for Upstream {
    // The key is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::None => f.write_str("Upstream::None"),
            Upstream::Url { url, api_key, tls } => f
                .debug_struct("Upstream::Url")
                .field("url", url)
                .field("api_key", &api_key.as_ref().map(|_| "<redacted>"))
                .field("tls", &tls.is_some())
                .finish(),
        }
    }
}

impl Upstream {
    /// From `FAIRUSE_UPSTREAM_STT_URL` and `FAIRUSE_UPSTREAM_STT_API_KEY`: `none` (any case)
    /// meters only; anything else must be a `ws://` or `wss://` URL. For `wss://` the system's
    /// root certificates are loaded here, once.
    pub fn from_config(url: &str, api_key: Option<&str>) -> Result<Upstream, String> {
        let url = url.trim();
        if url.eq_ignore_ascii_case("none") {
            return Ok(Upstream::None);
        }
        let tls = if url.starts_with("wss://") {
            Some(Arc::new(tls_config(Vec::new())?))
        } else if url.starts_with("ws://") {
            None
        } else {
            return Err(format!("FAIRUSE_UPSTREAM_STT_URL must be a ws:// or wss:// URL or `none`, got {url:?}"));
        };
        let api_key = api_key.map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned);
        Ok(Upstream::Url { url: url.to_owned(), api_key, tls })
    }

    /// Also trusts the certificates of the PEM file at `path` for a `wss://` upstream (a private
    /// CA, or a test server's own certificate). Refused for `ws://` and `none`, where it would
    /// do nothing.
    pub fn with_extra_roots(self, path: &std::path::Path) -> Result<Upstream, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let Upstream::Url { url, api_key, tls: Some(_) } = self else {
            return Err("gateway.upstream_ca_file is set but the upstream is not a wss:// URL".into());
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("gateway.upstream_ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("gateway.upstream_ca_file {}: no certificate in the file", path.display()));
        }
        Ok(Upstream::Url { url, api_key, tls: Some(Arc::new(tls_config(certs)?)) })
    }
}

/// A rustls client configuration trusting the system's roots and `extra`.
fn tls_config(extra: Vec<rustls::pki_types::CertificateDer<'static>>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "a system root certificate could not be loaded");
    }
    let (_, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "system root certificates rustls could not parse were skipped");
    }
    for cert in extra {
        roots.add(cert).map_err(|e| format!("gateway.upstream_ca_file: unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        // Not fatal here: gateway.upstream_ca_file may be about to add the one root needed.
        tracing::warn!(
            "no system root certificates: a wss:// upstream can only be verified with gateway.upstream_ca_file \
             (or install the system's CA certificates; Debian: ca-certificates)"
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

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
    settings: GatewaySettings,
    meters: Arc<dyn MeterFactory>,
    open: Arc<Mutex<HashMap<Uid, usize>>>,
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

/// The audio format of a stream, from the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Format {
    sample_rate: u32,
    channels: u16,
}

fn parse_format(query: &str) -> ApiResult<Format> {
    let mut encoding = None;
    let mut sample_rate = None;
    let mut channels = None;
    for (k, v) in form_pairs(query) {
        match k.as_str() {
            "encoding" => encoding = Some(v),
            "sample_rate" => sample_rate = Some(v),
            "channels" => channels = Some(v),
            _ => {}
        }
    }
    let bad = |field: &str, msg: String| ApiError::Input(fairuse_domain::InputError::new(field, msg));
    match encoding.as_deref() {
        Some("linear16") => {}
        Some(other) => return Err(bad("encoding", format!("only linear16 is supported, got {other:?}"))),
        None => return Err(bad("encoding", "is required and must be linear16".into())),
    }
    let sample_rate = match sample_rate.as_deref() {
        None => return Err(bad("sample_rate", "is required (8000-48000)".into())),
        Some(s) => match s.parse::<u32>() {
            Ok(r) if (8000..=48000).contains(&r) => r,
            _ => return Err(bad("sample_rate", format!("must be a number from 8000 to 48000, got {s:?}"))),
        },
    };
    let channels = match channels.as_deref() {
        None => 1,
        Some("1") => 1,
        Some("2") => 2,
        Some(c) => return Err(bad("channels", format!("must be 1 or 2, got {c:?}"))),
    };
    Ok(Format { sample_rate, channels })
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Read buffer of each WebSocket, client and upstream (see `listen`).
const READ_BUFFER_BYTES: usize = 8 * 1024;

type UpstreamSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_upstream(
    url: &str,
    api_key: Option<&str>,
    tls: Option<Arc<rustls::ClientConfig>>,
    query: &str,
    timeout: Duration,
) -> Result<UpstreamSocket, String> {
    let full = if query.is_empty() {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&{query}")
    } else {
        format!("{url}?{query}")
    };
    let mut request = full.as_str().into_client_request().map_err(|e| format!("upstream URL is not valid: {e}"))?;
    if let Some(key) = api_key {
        let value = tungstenite::http::HeaderValue::from_str(&format!("Token {key}"))
            .map_err(|_| "upstream API key is not a valid header value".to_owned())?;
        request.headers_mut().insert("authorization", value);
    }
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let config = tungstenite::protocol::WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, Some(config), false, connector);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(format!("could not connect to the upstream: {e}")),
        Err(_) => Err(format!("the upstream did not answer within {} s", timeout.as_secs())),
    }
}

/// A control message from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    KeepAlive,
    Finalize,
    CloseStream,
}

fn parse_control(text: &str) -> Result<Control, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("text frame is not JSON: {e}"))?;
    match v.get("type").and_then(Value::as_str) {
        Some("KeepAlive") => Ok(Control::KeepAlive),
        Some("Finalize") => Ok(Control::Finalize),
        Some("CloseStream") => Ok(Control::CloseStream),
        Some(other) => Err(format!("unknown message type {other:?}; expected KeepAlive, Finalize or CloseStream")),
        None => Err("text frame has no \"type\"; expected KeepAlive, Finalize or CloseStream".into()),
    }
}

/// An error in Deepgram's shape (`variant`, `description`), so Deepgram SDKs parse it; `message`
/// repeats the description for clients that read that field.
fn error_message(variant: &str, description: &str) -> Message {
    let v = json!({"type": "Error", "variant": variant, "description": description, "message": description});
    Message::Text(v.to_string().into())
}

/// One stream's state.
struct Stream {
    gateway: Arc<Gateway>,
    service: Arc<Service>,
    uid: Uid,
    format: Format,
    query: String,
    session_id: String,
    meter: Box<dyn StreamMeter>,
    /// Speech runs and pauses of this stream, for the session summary.
    runs: SpeechRuns,
    /// The session summary as last sent to the store.
    summary: StreamSession,
    /// Sampled fingerprint codes not yet looked up in the print index (policy `[fingerprint]`).
    hashes: Vec<HashSample>,
    /// What this stream's codes found in the print index: its duplicate audio. None when the
    /// stream is not fingerprinted.
    duplicates: Option<DuplicateTracker>,
    /// Sample frames received from the client.
    received_frames: u64,
    /// Bytes of an incomplete sample frame, joined with the next binary frame.
    carry: Vec<u8>,
    /// The current frame's samples (scratch, kept to avoid an allocation per frame).
    pcm: Vec<i16>,
    /// Sample frames (one sample per channel) forwarded upstream.
    forwarded_frames: u64,
    forwarding: bool,
    /// Forwarding is leased in slices of budget: frames up to this count may go upstream before
    /// the stream reports its totals and reads the decision again (0: no lease yet).
    lease_end_frames: u64,
    /// While forwarding is held (a lease could not be granted safely), no new lease is asked for
    /// before this instant; the audio meanwhile is metered, not forwarded.
    lease_retry_at: Option<tokio::time::Instant>,
    /// The last decision read carried an STT budget (throttle/restrict).
    budgeted: bool,
    /// When something last went upstream; a held stream sends `KeepAlive` so the vendor does not
    /// close it for silence.
    last_upstream_send: tokio::time::Instant,
    /// A usage report still running after its timeout, with the totals it carries: no second
    /// report starts until it ends (a hanging store must not collect a pile of them).
    report_in_flight: Option<(ReportTask, (i64, i64))>,
    exhausted_sent: bool,
    /// The last totals reported, to skip reports that would change nothing.
    reported: Option<(i64, i64)>,
}

enum Next {
    Continue,
    /// The client asked to close: wait for the upstream to finish, then end.
    Closing,
    End,
}

impl Stream {
    fn new(gateway: Arc<Gateway>, service: Arc<Service>, uid: Uid, format: Format, query: String) -> Stream {
        // The switch is read when the stream opens: a policy change applies to new streams.
        let fingerprinting = service.policy().fingerprint.enabled;
        let meter = if fingerprinting {
            gateway.meters.new_fingerprinting_meter(format.sample_rate, format.channels)
        } else {
            gateway.meters.new_meter(format.sample_rate, format.channels)
        };
        let runs = SpeechRuns::new(meter.window_ms(), DEFAULT_BRIDGE_MS);
        let session_id = uuid::Uuid::new_v4().to_string();
        let summary = StreamSession::open(session_id.clone(), service.now());
        let duplicates = fingerprinting.then(|| DuplicateTracker::new(uid.as_str(), summary.started_at));
        Stream {
            gateway,
            service,
            uid,
            format,
            query,
            session_id,
            meter,
            runs,
            summary,
            hashes: Vec::new(),
            duplicates,
            received_frames: 0,
            carry: Vec::new(),
            pcm: Vec::new(),
            forwarded_frames: 0,
            forwarding: true,
            lease_end_frames: 0,
            lease_retry_at: None,
            budgeted: false,
            last_upstream_send: tokio::time::Instant::now(),
            report_in_flight: None,
            exhausted_sent: false,
            reported: None,
        }
    }

    fn settings(&self) -> &GatewaySettings {
        &self.gateway.settings
    }

    fn stt_ms(&self) -> i64 {
        (self.forwarded_frames.saturating_mul(1000) / u64::from(self.format.sample_rate)) as i64
    }

    async fn run(mut self, mut client: WebSocket) {
        metrics::gauge!("fairuse_gateway_streams").increment(1.0);
        tracing::debug!(uid = %self.uid, session_id = %self.session_id, "stream opened");
        self.renew_lease(&mut client).await;
        let idle = self.settings().idle_timeout;
        let mut last_heard = tokio::time::Instant::now();
        let mut upstream = match (&self.settings().upstream, self.forwarding) {
            (Upstream::Url { url, api_key, tls }, true) => {
                let tls = tls.clone();
                match connect_upstream(url, api_key.as_deref(), tls, &self.query, self.settings().outbound_timeout)
                    .await
                {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(uid = %self.uid, error = %e, "upstream connect failed");
                        let _ = client
                            .send(error_message("UpstreamUnavailable", "the speech-to-text upstream is unavailable"))
                            .await;
                        let _ = client.send(close(1011, "upstream unavailable")).await;
                        metrics::gauge!("fairuse_gateway_streams").decrement(1.0);
                        return;
                    }
                }
            }
            _ => None,
        };
        let period = self.settings().flush_interval;
        let mut flush = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut closing_deadline: Option<tokio::time::Instant> = None;
        // One timer for the idle limit, armed for `last_heard + idle` and moved only when it
        // fires early: a frame just records when it was heard. (A fresh `sleep_until` per loop
        // pass registered and removed a timer-wheel entry for every audio frame.)
        let idle_timer = tokio::time::sleep_until(last_heard + idle);
        tokio::pin!(idle_timer);
        loop {
            let deadline = async {
                match closing_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = client.recv(), if closing_deadline.is_none() => {
                    let outcome = self.on_client(msg, &mut client, &mut upstream).await;
                    // Idle time counts from when the message was handled: waiting on the store
                    // inside the handler is the gateway's time, not the client's silence.
                    last_heard = tokio::time::Instant::now();
                    match outcome {
                        Next::Continue => {}
                        Next::Closing => {
                            if upstream.is_none() {
                                let _ = client.send(close(1000, "")).await;
                                break;
                            }
                            closing_deadline = Some(tokio::time::Instant::now() + self.settings().close_timeout);
                        }
                        Next::End => break,
                    }
                }
                msg = next_upstream(&mut upstream) => {
                    match msg {
                        Some(Ok(tungstenite::Message::Text(t))) => {
                            if client.send(Message::Text(t.as_str().into())).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(tungstenite::Message::Binary(b))) => {
                            if client.send(Message::Binary(b)).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            upstream = None;
                            if closing_deadline.is_some() {
                                let _ = client.send(close(1000, "")).await;
                                break;
                            }
                            if self.forwarding {
                                let _ = client.send(error_message("UpstreamClosed", "the speech-to-text upstream closed the stream")).await;
                                let _ = client.send(close(1011, "upstream closed")).await;
                                break;
                            }
                            // Forwarding had stopped (budget) and the upstream finished: keep metering.
                        }
                    }
                }
                _ = flush.tick() => {
                    // A stage can change mid-stream (a verdict, an admin): the lease is renewed
                    // on the clock too, not only when it runs out.
                    let began = tokio::time::Instant::now();
                    self.flush().await;
                    self.index_prints().await;
                    self.record_session(false);
                    if self.renew_lease(&mut client).await == Lease::Stopped {
                        stop_upstream(&mut upstream, self.settings().outbound_timeout).await;
                    }
                    last_heard += began.elapsed();
                }
                _ = &mut idle_timer, if closing_deadline.is_none() => {
                    if last_heard + idle > tokio::time::Instant::now() {
                        // Heard from since the timer was armed: not idle yet.
                        idle_timer.as_mut().reset(last_heard + idle);
                        continue;
                    }
                    // A client that went silent without closing (a dead connection, with no
                    // upstream to notice it) would hold a stream slot forever.
                    let why = format!("no audio or KeepAlive for {} s; closing the stream", idle.as_secs());
                    let _ = client.send(error_message("IdleTimeout", &why)).await;
                    let _ = client.send(close(1000, "idle")).await;
                    break;
                }
                _ = deadline => {
                    let _ = client.send(close(1000, "")).await;
                    break;
                }
            }
        }
        if let Some(mut up) = upstream {
            let _ = tokio::time::timeout(self.settings().outbound_timeout, up.close(None)).await;
        }
        // The last report: collect one still running (so this one is not skipped for it), then
        // report the final totals.
        if let Some((handle, carried)) = self.report_in_flight.take()
            && let Ok(done) = tokio::time::timeout(self.settings().outbound_timeout, handle).await
        {
            self.report_done(done, carried);
        }
        self.flush().await;
        self.index_prints().await;
        self.record_session(true);
        metrics::gauge!("fairuse_gateway_streams").decrement(1.0);
        tracing::debug!(uid = %self.uid, session_id = %self.session_id, speech_ms = self.meter.speech_ms(), stt_ms = self.stt_ms(), "stream closed");
    }

    async fn on_client(
        &mut self,
        msg: Option<Result<Message, axum::Error>>,
        client: &mut WebSocket,
        upstream: &mut Option<UpstreamSocket>,
    ) -> Next {
        let timeout = self.settings().outbound_timeout;
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Next::End,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Next::Continue,
            Some(Ok(Message::Binary(data))) => {
                if data.len() > self.settings().max_frame_bytes {
                    let msg = format!(
                        "audio frame of {} bytes is larger than the {} bytes allowed; it was dropped",
                        data.len(),
                        self.settings().max_frame_bytes
                    );
                    return reply(client, error_message("FrameTooLarge", &msg)).await;
                }
                let whole = self.take_whole_frames(data);
                if whole.is_empty() {
                    return Next::Continue;
                }
                self.pcm.clear();
                self.pcm.extend(whole.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                let runs = &mut self.runs;
                self.meter.push(&self.pcm, &mut |is_speech| runs.observe(is_speech));
                if self.hashes.len() < MAX_PENDING_HASHES {
                    self.meter.take_hashes(&mut self.hashes);
                    self.hashes.truncate(MAX_PENDING_HASHES);
                }
                self.received_frames += (whole.len() / self.block_align()) as u64;
                let align = self.block_align();
                // Shared, not copied: each part sent upstream is a view of the client's frame.
                let mut rest = whole;
                while self.forwarding && !rest.is_empty() && upstream.is_some() {
                    if self.forwarded_frames >= self.lease_end_frames {
                        if self.lease_retry_at.is_some_and(|t| tokio::time::Instant::now() < t) {
                            self.keep_upstream_alive(upstream).await;
                            break; // held: metered above, not forwarded
                        }
                        // The lease is used up: report what was forwarded, then lease the next
                        // slice (or stop). Audio past the lease waits for the answer.
                        self.flush().await;
                        match self.renew_lease(client).await {
                            Lease::Granted => {}
                            Lease::Held => {
                                self.keep_upstream_alive(upstream).await;
                                break;
                            }
                            Lease::Off => break,
                            Lease::Stopped => stop_upstream(upstream, timeout).await,
                        }
                        continue;
                    }
                    let room = usize::try_from(self.lease_end_frames - self.forwarded_frames).unwrap_or(usize::MAX);
                    let take = rest.len().min(room.saturating_mul(align));
                    let part = rest.split_to(take);
                    let Some(up) = upstream.as_mut() else { break };
                    if let Err(e) = send_upstream(up, tungstenite::Message::Binary(part), timeout).await {
                        tracing::warn!(uid = %self.uid, error = %e, "forwarding audio upstream failed");
                        *upstream = None;
                        let _ = client.send(error_message("UpstreamError", "the speech-to-text upstream failed")).await;
                        let _ = client.send(close(1011, "upstream failed")).await;
                        return Next::End;
                    }
                    self.forwarded_frames += (take / align) as u64;
                    self.last_upstream_send = tokio::time::Instant::now();
                }
                Next::Continue
            }
            Some(Ok(Message::Text(text))) => match parse_control(text.as_str()) {
                Err(why) => reply(client, error_message("SchemaError", &why)).await,
                Ok(control) => {
                    if let Some(up) = upstream.as_mut()
                        && let Err(e) =
                            send_upstream(up, tungstenite::Message::Text(text.as_str().into()), timeout).await
                    {
                        tracing::warn!(uid = %self.uid, error = %e, "forwarding a control message upstream failed");
                        *upstream = None;
                    }
                    if control == Control::CloseStream { Next::Closing } else { Next::Continue }
                }
            },
        }
    }

    /// While held, a `KeepAlive` when nothing went upstream for 2 s keeps the vendor from closing
    /// the stream for lack of audio (Deepgram closes after 10 s).
    async fn keep_upstream_alive(&mut self, upstream: &mut Option<UpstreamSocket>) {
        let Some(up) = upstream.as_mut() else { return };
        if self.last_upstream_send.elapsed() < Duration::from_secs(2) {
            return;
        }
        let msg = tungstenite::Message::Text(r#"{"type":"KeepAlive"}"#.into());
        if send_upstream(up, msg, self.settings().outbound_timeout).await.is_ok() {
            self.last_upstream_send = tokio::time::Instant::now();
        }
    }

    fn block_align(&self) -> usize {
        2 * usize::from(self.format.channels)
    }

    /// The whole sample frames of `carry + data`; the remainder waits for the next frame. The
    /// usual frame (nothing carried, whole samples) is returned as it came, without a copy.
    fn take_whole_frames(&mut self, data: tungstenite::Bytes) -> tungstenite::Bytes {
        let align = self.block_align();
        if self.carry.is_empty() && data.len().is_multiple_of(align) {
            return data;
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(&data);
        let whole = joined.len() - joined.len() % align;
        self.carry = joined.split_off(whole);
        joined.into()
    }

    /// Reports the cumulative totals of this session; idempotent, so a retry or a repeated
    /// flush never counts twice. A failure is logged: the next flush reports the same totals.
    async fn flush(&mut self) {
        let totals = (self.meter.speech_ms(), self.stt_ms());
        if self.reported == Some(totals) {
            return;
        }
        let report = UsageReport {
            lane: Lane::Realtime,
            amount: SpeechAmount::Cumulative { session_id: self.session_id.clone(), total_ms: totals.0 },
            at: None,
            idempotency_key: None,
            stt_ms: totals.1,
        };
        // A report still running from an earlier flush: let it finish first.
        if let Some((handle, _)) = &self.report_in_flight
            && !handle.is_finished()
        {
            return;
        }
        if let Some((handle, carried)) = self.report_in_flight.take() {
            self.report_done(handle.await, carried);
            if self.reported == Some(totals) {
                return;
            }
        }
        // Spawned, so a timeout here never cancels the report between its meter write and its
        // budget update: a slow report still completes (and is collected by a later flush), and a
        // repeat of the same cumulative totals is then a duplicate that adds nothing.
        let service = self.service.clone();
        let items = vec![(self.uid.clone(), report, Some(self.session_id.clone()))];
        let mut handle = tokio::spawn(async move { service.record_usage(items).await });
        match tokio::time::timeout(self.settings().outbound_timeout, &mut handle).await {
            Ok(done) => self.report_done(done, totals),
            Err(_) => {
                tracing::warn!(uid = %self.uid, "stream usage report timed out; collected at a later flush");
                self.report_in_flight = Some((handle, totals));
            }
        }
    }

    fn report_done(&mut self, done: Result<ServiceResult<UsageAccepted>, tokio::task::JoinError>, totals: (i64, i64)) {
        match done {
            Ok(Ok(_)) => self.reported = Some(totals),
            Ok(Err(e)) => {
                tracing::warn!(uid = %self.uid, error = %e, "stream usage report failed; retried at the next flush")
            }
            Err(e) => tracing::error!(uid = %self.uid, error = %e, "stream usage report task failed"),
        }
    }

    /// Records the session summary for the classifier (duration, speech, forwarded audio, longest
    /// continuous speech, pauses); `closed` at the end of the stream. Written in the background,
    /// off the audio path: the summary is for the classifier, and a slow store must not stall the
    /// stream. Stores keep the most advanced snapshot, so writes landing out of order are
    /// harmless; an unchanged snapshot and an empty stream are not written.
    /// Looks the codes sampled since the last call up in the print index, then adds them, and
    /// feeds what they found to the stream's duplicate tracker. A batch the index cannot take is
    /// dropped (logged and counted): the stream and its metering go on either way.
    async fn index_prints(&mut self) {
        let Some(tracker) = self.duplicates.as_mut() else { return };
        // Codes arrive only with speech, and the last ones only when the meter is finished; take
        // whatever has completed.
        self.meter.take_hashes(&mut self.hashes);
        self.hashes.truncate(MAX_PENDING_HASHES);
        if self.hashes.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.hashes);
        let started_at = self.summary.started_at;
        let call = self.service.match_prints(&self.uid, &self.session_id, started_at, &batch);
        match tokio::time::timeout(self.gateway.settings.outbound_timeout, call).await {
            Ok(Ok(found)) => tracker.add(&batch, &found),
            Ok(Err(e)) => {
                metrics::counter!("fairuse_gateway_print_batches_dropped_total").increment(1);
                tracing::warn!(uid = %self.uid, error = %e, codes = batch.len(), "fingerprint batch not indexed");
            }
            Err(_) => {
                metrics::counter!("fairuse_gateway_print_batches_dropped_total").increment(1);
                tracing::warn!(uid = %self.uid, codes = batch.len(), "fingerprint batch timed out");
            }
        }
    }

    fn record_session(&mut self, closed: bool) {
        let mut s = self.summary.clone();
        if let Some(tracker) = &self.duplicates {
            let d = tracker.summary();
            s.duplicate_own_ms = d.own_ms;
            s.duplicate_other_ms = d.other_ms;
            s.duplicate_of = d.matches;
        }
        s.updated_at = self.service.now().max(s.started_at);
        s.duration_ms = (self.received_frames.saturating_mul(1000) / u64::from(self.format.sample_rate)) as i64;
        s.speech_ms = self.meter.speech_ms();
        s.stt_ms = self.stt_ms();
        s.set_shape(&self.runs.shape());
        s.closed = closed;
        let unchanged = StreamSession { updated_at: self.summary.updated_at, ..s.clone() } == self.summary;
        if s.duration_ms == 0 || unchanged {
            return;
        }
        self.summary = s.clone();
        let (service, uid, timeout) = (self.service.clone(), self.uid.clone(), self.settings().outbound_timeout);
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, service.record_stream_session(&uid, s)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(%uid, error = %e, "stream session summary not recorded"),
                Err(_) => tracing::warn!(%uid, "stream session summary timed out"),
            }
        });
    }

    /// Reads the decision and leases the next slice of STT budget: forwarding may go on for
    /// `min(policy budget.slice, remaining budget)` of audio before the stream reports and asks
    /// again, so a stream overshoots a budget by at most one slice however fast its client sends.
    /// When STT is not allowed it stops forwarding for good and tells the client once.
    ///
    /// A lease is only as safe as the report before it: when the forwarded audio could not be
    /// reported, or the decision could not be read, a user with a budget (throttle/restrict) is
    /// held under `budget.fail_closed_when_store_down` (audio metered, not forwarded, asked again
    /// a second later), and anyone else gets one more slice (fail open: no budget to overshoot).
    async fn renew_lease(&mut self, client: &mut WebSocket) -> Lease {
        if !self.forwarding {
            return Lease::Off;
        }
        let policy = self.service.policy();
        let unreported = self.reported.map_or(0, |r| r.1) != self.stt_ms();
        let decision = if unreported {
            Err("the forwarded audio could not be reported".to_owned())
        } else {
            let call = self.service.decision(&self.uid);
            match tokio::time::timeout(self.settings().outbound_timeout, call).await {
                Ok(Ok(d)) => Ok(d),
                Ok(Err(e)) => Err(format!("decision failed: {e}")),
                Err(_) => Err("decision timed out".to_owned()),
            }
        };
        let action = pipeline::lease(decision.as_ref().ok(), self.budgeted, &policy);
        if let Ok(d) = &decision {
            self.budgeted = d.stt_budget.is_some();
        }
        match (action, &decision) {
            (pipeline::Lease::Hold, Err(why)) => {
                tracing::warn!(uid = %self.uid, %why, "budgeted stream held: nothing forwarded until the store answers");
            }
            (pipeline::Lease::Hold, Ok(_)) => tracing::warn!(uid = %self.uid, "budget store unavailable; stream held"),
            (pipeline::Lease::Grant { .. }, Err(why)) => {
                tracing::warn!(uid = %self.uid, %why, "leasing one more slice (no budget to protect)");
            }
            _ => {}
        }
        let decision = match action {
            pipeline::Lease::Hold => {
                metrics::counter!("fairuse_gateway_leases_held_total").increment(1);
                self.lease_end_frames = self.forwarded_frames;
                self.lease_retry_at = Some(tokio::time::Instant::now() + LEASE_RETRY);
                return Lease::Held;
            }
            pipeline::Lease::Grant { ms } => {
                if decision.is_ok() {
                    self.lease_retry_at = None;
                }
                self.lease(ms);
                return Lease::Granted;
            }
            pipeline::Lease::Stop => match decision {
                Ok(d) => d,
                Err(_) => return Lease::Held, // unreachable: a stop needs a decision that denies
            },
        };
        self.forwarding = false;
        if !self.exhausted_sent {
            self.exhausted_sent = true;
            let resets_at = decision.stt_budget.as_ref().map(|b| b.resets_at);
            let msg = json!({
                "type": "FairUse",
                "event": "stt_budget_exhausted",
                "resets_at": resets_at,
                "case_ref": decision.case_ref,
            });
            metrics::counter!("fairuse_gateway_budget_stops_total").increment(1);
            let _ = client.send(Message::Text(msg.to_string().into())).await;
            // Deepgram SDKs drop message types they do not know (the Python SDK 7 hands the app
            // `None` for the event above), so the same news follows as an error they can read.
            let mut notice = "transcription is paused: today's speech-to-text allowance is used up".to_owned();
            if let Some(b) = &decision.stt_budget {
                notice.push_str(&format!("; it resets at {}", b.resets_at.to_rfc3339()));
            }
            if let Some(case) = &decision.case_ref {
                notice.push_str(&format!(" (case {case})"));
            }
            notice.push_str(". Audio is still accepted and metered.");
            let _ = client.send(error_message("SttBudgetExhausted", &notice)).await;
        }
        Lease::Stopped
    }

    /// Lets `ms` more audio go upstream from here (at least one sample frame).
    fn lease(&mut self, ms: i64) {
        let frames = (ms.max(0) as u64).saturating_mul(u64::from(self.format.sample_rate)) / 1000;
        self.lease_end_frames = self.forwarded_frames.saturating_add(frames.max(1));
        metrics::counter!("fairuse_gateway_leases_total").increment(1);
    }
}

/// A usage report running in its own task.
type ReportTask = tokio::task::JoinHandle<ServiceResult<UsageAccepted>>;

/// What renewing a lease decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lease {
    Granted,
    /// Not granted for now (the report or the decision failed for a budgeted user).
    Held,
    /// STT is not allowed: forwarding stopped now, for the rest of the stream.
    Stopped,
    /// Forwarding had already stopped.
    Off,
}

/// How long a held stream waits before asking for a lease again.
const LEASE_RETRY: Duration = Duration::from_secs(1);

/// Forwarding stopped: ask the upstream for its last results; the stream goes on metering.
async fn stop_upstream(upstream: &mut Option<UpstreamSocket>, timeout: Duration) {
    if let Some(up) = upstream.as_mut() {
        let msg = tungstenite::Message::Text(r#"{"type":"CloseStream"}"#.into());
        let _ = send_upstream(up, msg, timeout).await;
    }
}

async fn reply(client: &mut WebSocket, msg: Message) -> Next {
    if client.send(msg).await.is_ok() { Next::Continue } else { Next::End }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

async fn next_upstream(
    upstream: &mut Option<UpstreamSocket>,
) -> Option<Result<tungstenite::Message, tungstenite::Error>> {
    match upstream.as_mut() {
        Some(up) => up.next().await,
        None => std::future::pending().await,
    }
}

async fn send_upstream(up: &mut UpstreamSocket, msg: tungstenite::Message, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, up.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no progress within {} s", timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_linear16_with_a_rate_in_range_and_one_or_two_channels_is_accepted() {
        assert_eq!(
            parse_format("encoding=linear16&sample_rate=16000&channels=2&model=nova-3").unwrap(),
            Format { sample_rate: 16000, channels: 2 }
        );
        assert!(parse_format("encoding=opus&sample_rate=16000").is_err());
        assert!(parse_format("sample_rate=16000").is_err());
        assert!(parse_format("encoding=linear16&sample_rate=7999").is_err());
        assert!(parse_format("encoding=linear16&sample_rate=48001").is_err());
        assert!(parse_format("encoding=linear16&sample_rate=16000&channels=3").is_err());
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn control_messages_are_recognised_and_others_refused() {
        assert_eq!(parse_control(r#"{"type":"KeepAlive"}"#), Ok(Control::KeepAlive));
        assert_eq!(parse_control(r#"{"type":"Finalize"}"#), Ok(Control::Finalize));
        assert_eq!(parse_control(r#"{"type":"CloseStream"}"#), Ok(Control::CloseStream));
        assert!(parse_control(r#"{"type":"Nope"}"#).is_err());
        assert!(parse_control("hello").is_err());
    }
}
