//! The streaming gateway (`/v1/listen`) end to end: the real router served on a local port, a
//! real WebSocket client, and a local upstream test server speaking a Deepgram-like live
//! protocol. Speech is measured by a test double (samples louder than a threshold), because
//! the gateway's job here is the protocol, the metering reports and the budget, not the VAD.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::classifier::UsageShape;
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Lane;
use fairuse_domain::ids::Uid;
use fairuse_domain::policy::Policy;
use fairuse_domain::prints::print_key;
use fairuse_domain::sessions::{HashSample, StreamSession};
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{BudgetStore, MemoryStore, UsageMeterStore};
use fairuse_domain::time::DurationMs;
use fairuse_domain::time::{Clock, ManualClock, Timestamp};
use fairuse_domain::windows::{RecordOutcome, UsageReport, WindowTotals};
use fairuse_server::gateway::{Gateway, GatewaySettings, MeterFactory, StreamMeter, Upstream};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores, UserReport};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request as HsRequest, Response as HsResponse};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const SECRET: &str = "gateway-test-secret-at-least-32-bytes";
const VENDOR_KEY: &str = "vendor-key-never-shown-0123456789";
const RATE: u32 = 16_000;
const LOUD: i16 = 8_000;

// ---- the meter test double ------------------------------------------------------------------

/// Counts samples louder than a threshold as speech: a test double, not a VAD. Its detection
/// windows are 10 ms, speech when most of their samples are loud. When fingerprinting, each speech
/// window in five gives one "code" (a hash of its window index), as a stand-in for the real
/// fingerprint's sampled codes: the same audio sent again gives the same codes at the same offsets.
struct LoudSamples {
    loud: u64,
    per_second: u64,
    window_samples: u64,
    in_window: u64,
    loud_in_window: u64,
    fingerprinting: bool,
    windows: u32,
    codes: Vec<HashSample>,
}

impl StreamMeter for LoudSamples {
    fn push(&mut self, pcm: &[i16], on_window: &mut dyn FnMut(bool)) {
        for s in pcm {
            let loud = s.unsigned_abs() > 1_000;
            self.loud += u64::from(loud);
            self.loud_in_window += u64::from(loud);
            self.in_window += 1;
            if self.in_window == self.window_samples {
                let speech = self.loud_in_window * 2 > self.window_samples;
                on_window(speech);
                // One window in five keeps a code, as the real meter keeps one code in four.
                if speech && self.fingerprinting && self.windows.is_multiple_of(5) {
                    self.codes
                        .push(HashSample { offset_ms: i64::from(self.windows) * 10, code: code_of(self.windows) });
                }
                self.windows += 1;
                (self.in_window, self.loud_in_window) = (0, 0);
            }
        }
    }
    fn speech_ms(&self) -> i64 {
        (self.loud * 1000 / self.per_second) as i64
    }
    fn window_ms(&self) -> i64 {
        10
    }
    fn take_hashes(&mut self, out: &mut Vec<HashSample>) {
        out.append(&mut self.codes);
    }
}

/// The test meter's "fingerprint code" of window `w`: 32 well-mixed bits.
fn code_of(w: u32) -> u32 {
    let mut x = w.wrapping_add(1).wrapping_mul(0x9E37_79B1);
    x ^= x >> 15;
    x = x.wrapping_mul(0x2C1B_3C6D);
    x ^ (x >> 12)
}

struct LoudSamplesFactory;

impl LoudSamplesFactory {
    fn meter(sample_rate: u32, channels: u16, fingerprinting: bool) -> Box<dyn StreamMeter> {
        let per_second = u64::from(sample_rate) * u64::from(channels);
        Box::new(LoudSamples {
            loud: 0,
            per_second,
            window_samples: per_second / 100,
            in_window: 0,
            loud_in_window: 0,
            fingerprinting,
            windows: 0,
            codes: Vec::new(),
        })
    }
}

impl MeterFactory for LoudSamplesFactory {
    fn new_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter> {
        LoudSamplesFactory::meter(sample_rate, channels, false)
    }
    fn new_fingerprinting_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter> {
        LoudSamplesFactory::meter(sample_rate, channels, true)
    }
}

// ---- a usage meter that can be cut ----------------------------------------------------------

/// A switch a test flips to cut a store: while it is down every call is refused.
#[derive(Clone, Default)]
struct Cut(Arc<std::sync::atomic::AtomicBool>);

impl Cut {
    fn set(&self, down: bool) {
        self.0.store(down, std::sync::atomic::Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StoreError::Unavailable("test: the store is cut".into()))
        } else {
            Ok(())
        }
    }
}

/// The in-memory meter behind a [`Cut`] (a hot store outage).
struct CuttableMeter {
    inner: Arc<MemoryStore>,
    down: Cut,
}

#[async_trait::async_trait]
impl UsageMeterStore for CuttableMeter {
    async fn record_and_read(
        &self,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(Vec<RecordOutcome>, WindowTotals), StoreError> {
        self.down.check()?;
        self.inner.record_and_read(uid, reports, policy, now).await
    }
    async fn read_totals(&self, uid: &Uid, policy: &Policy, now: Timestamp) -> Result<WindowTotals, StoreError> {
        self.down.check()?;
        self.inner.read_totals(uid, policy, now).await
    }
    async fn recovery_at(&self, uid: &Uid, w: i64, cap: i64, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.down.check()?;
        self.inner.recovery_at(uid, w, cap, now).await
    }
    async fn minute_series(&self, uid: &Uid, lane: Lane, from: i64, to: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        self.down.check()?;
        self.inner.minute_series(uid, lane, from, to).await
    }
    async fn usage_shape(&self, uid: &Uid, lookback_ms: i64, now: Timestamp) -> Result<UsageShape, StoreError> {
        self.down.check()?;
        self.inner.usage_shape(uid, lookback_ms, now).await
    }
    async fn users_since(&self, from_minute: i64) -> Result<Vec<Uid>, StoreError> {
        self.down.check()?;
        self.inner.users_since(from_minute).await
    }
}

/// The in-memory budget behind a [`Cut`].
struct CuttableBudget {
    inner: Arc<MemoryStore>,
    down: Cut,
}

#[async_trait::async_trait]
impl BudgetStore for CuttableBudget {
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        self.down.check()?;
        self.inner.add_forwarded(uid, day, ms).await
    }
    async fn used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        self.down.check()?;
        self.inner.used(uid, day).await
    }
    async fn note_exhausted_once(&self, uid: &Uid, day: i64) -> Result<bool, StoreError> {
        self.down.check()?;
        self.inner.note_exhausted_once(uid, day).await
    }
}

// ---- the local upstream ---------------------------------------------------------------------

/// What the upstream saw on one connection.
#[derive(Default, Debug, Clone)]
struct UpstreamConn {
    authorization: Option<String>,
    uri: String,
    audio: Vec<u8>,
    keepalives: usize,
    finalizes: usize,
    close_streams: usize,
    sent: Vec<String>,
}

#[derive(Clone, Default)]
struct UpstreamLog(Arc<Mutex<Vec<UpstreamConn>>>);

impl UpstreamLog {
    fn conns(&self) -> Vec<UpstreamConn> {
        self.0.lock().unwrap().clone()
    }
    fn total_audio_bytes(&self) -> usize {
        self.0.lock().unwrap().iter().map(|c| c.audio.len()).sum()
    }
}

/// A Deepgram-like live endpoint: answers each audio frame with a `Results` message counting the
/// samples received so far, `Finalize` with a `from_finalize` result, and `CloseStream` with a
/// `Metadata` message and a close.
// tungstenite's handshake callback fixes its error type (an HTTP response), which is large.
#[allow(clippy::result_large_err)]
async fn spawn_upstream() -> (String, UpstreamLog) {
    spawn_upstream_with(None).await
}

/// The upstream behind TLS when `tls` is given (then the URL is `wss://localhost:…`).
async fn spawn_upstream_with(tls: Option<tokio_rustls::TlsAcceptor>) -> (String, UpstreamLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = UpstreamLog::default();
    let log2 = log.clone();
    let url = match tls {
        Some(_) => format!("wss://localhost:{}/v1/listen", addr.port()),
        None => format!("ws://{addr}/v1/listen"),
    };
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let log = log2.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve_upstream_conn(stream, log).await;
                        }
                    }
                    None => serve_upstream_conn(tcp, log).await,
                }
            });
        }
    });
    (url, log)
}

#[allow(clippy::result_large_err)]
async fn serve_upstream_conn<S>(stream: S, log: UpstreamLog)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let seen = Arc::new(Mutex::new(UpstreamConn::default()));
    let seen2 = seen.clone();
    let callback = move |req: &HsRequest, resp: HsResponse| {
        let mut s = seen2.lock().unwrap();
        s.uri = req.uri().to_string();
        s.authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let index = {
        let mut all = log.0.lock().unwrap();
        all.push(seen.lock().unwrap().clone());
        all.len() - 1
    };
    let update = |f: &mut dyn FnMut(&mut UpstreamConn)| f(&mut log.0.lock().unwrap()[index]);
    while let Some(Ok(msg)) = ws.next().await {
        let reply = match msg {
            Message::Binary(b) => {
                let mut samples = 0;
                update(&mut |c| {
                    c.audio.extend_from_slice(&b);
                    samples = c.audio.len() / 2;
                });
                Some(
                    json!({"type": "Results", "is_final": false, "samples_received": samples,
                                       "channel": {"alternatives": [{"transcript": "hello", "confidence": 0.9}]}})
                    .to_string(),
                )
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("KeepAlive") => {
                        update(&mut |c| c.keepalives += 1);
                        None
                    }
                    Some("Finalize") => {
                        update(&mut |c| c.finalizes += 1);
                        Some(json!({"type": "Results", "is_final": true, "from_finalize": true}).to_string())
                    }
                    Some("CloseStream") => {
                        update(&mut |c| c.close_streams += 1);
                        let meta = json!({"type": "Metadata", "request_id": "r-1"}).to_string();
                        update(&mut |c| c.sent.push(meta.clone()));
                        let _ = ws.send(Message::Text(meta.into())).await;
                        let _ = ws.close(None).await;
                        break;
                    }
                    _ => Some(json!({"type": "Error", "message": "upstream: unknown"}).to_string()),
                }
            }
            Message::Close(_) => break,
            _ => None,
        };
        if let Some(r) = reply {
            update(&mut |c| c.sent.push(r.clone()));
            if ws.send(Message::Text(r.into())).await.is_err() {
                break;
            }
        }
    }
}

// ---- the app --------------------------------------------------------------------------------

struct App {
    addr: std::net::SocketAddr,
    service: Arc<Service>,
    gateway: Arc<Gateway>,
}

async fn spawn_app(policy: Policy, upstream: Upstream, flush_ms: u64) -> App {
    let settings = GatewaySettings {
        upstream,
        flush_interval: Duration::from_millis(flush_ms),
        close_timeout: Duration::from_secs(5),
        ..GatewaySettings::default()
    };
    spawn_app_custom(policy, settings, Stores::single(Arc::new(MemoryStore::new()))).await
}

async fn spawn_app_custom(policy: Policy, settings: GatewaySettings, stores: Stores) -> App {
    spawn_app_clocked(policy, settings, stores, Arc::new(fairuse_server::clock::SystemClock)).await
}

async fn spawn_app_clocked(policy: Policy, settings: GatewaySettings, stores: Stores, clock: Arc<dyn Clock>) -> App {
    let service =
        Arc::new(Service::new(stores, policy, clock, Arc::new(HeuristicClassifier), Notifications::default()));
    let env = HashMap::from([("FAIRUSE_JWT_HS256_SECRET".to_string(), SECRET.to_string())]);
    let auth = fairuse_auth::Authenticator::from_env_map(&env).unwrap();
    let gateway = Arc::new(Gateway::new(settings, Arc::new(LoudSamplesFactory)));
    let app = router(AppState {
        service: service.clone(),
        auth: Arc::new(auth),
        settings: HttpSettings::default(),
        metrics: None,
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    })
    .layer(axum::Extension(gateway.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App { addr, service, gateway }
}

async fn spawn_app_with_upstream(policy: Policy, flush_ms: u64) -> (App, UpstreamLog) {
    let (url, log) = spawn_upstream().await;
    let upstream = Upstream::from_config(&url, Some(VENDOR_KEY)).unwrap();
    (spawn_app(policy, upstream, flush_ms).await, log)
}

fn token(uid: &str) -> String {
    token_at(uid, std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
}

/// A user token issued at `now` (seconds), as the service's clock reads it.
fn token_at(uid: &str, now: u64) -> String {
    let claims = json!({"sub": uid, "iat": now - 5, "exp": now + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn try_connect(app: &App, uid: &str, query: &str, scheme: &str) -> Result<Client, WsError> {
    let mut req = format!("ws://{}/v1/listen?{query}", app.addr).into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("{scheme} {}", token_at(uid, app.service.now().millis() as u64 / 1000)).parse().unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
    for (_, v) in resp.headers() {
        assert!(!v.to_str().unwrap_or_default().contains(VENDOR_KEY), "the vendor key leaked in a header");
    }
    Ok(ws)
}

async fn connect(app: &App, uid: &str) -> Client {
    try_connect(app, uid, "encoding=linear16&sample_rate=16000&channels=1", "Bearer").await.unwrap()
}

/// `ms` of audio at 16 kHz mono: loud (counted as speech by the test meter) or silent.
fn audio(ms: u32, loud: bool) -> Vec<u8> {
    let sample: i16 = if loud { LOUD } else { 0 };
    (0..RATE * ms / 1000).flat_map(|i| if i % 2 == 0 { sample } else { -sample }.to_le_bytes()).collect()
}

/// The next text message as JSON (skipping pings); `None` when the stream closed.
async fn next_json(ws: &mut Client) -> Option<(String, Value)> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no message within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                assert!(!t.as_str().contains(VENDOR_KEY), "the vendor key leaked in a message");
                let v = serde_json::from_str(t.as_str()).expect("text messages are JSON");
                return Some((t.as_str().to_owned(), v));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Reads until a message of `kind` arrives.
async fn until_type(ws: &mut Client, kind: &str) -> Value {
    loop {
        match next_json(ws).await {
            Some((_, v)) if v["type"] == kind => return v,
            Some(_) => {}
            None => panic!("stream closed before a {kind} message"),
        }
    }
}

/// Sends `CloseStream` and reads everything up to the close.
async fn close_stream(ws: &mut Client) -> Vec<Value> {
    ws.send(Message::Text(r#"{"type":"CloseStream"}"#.into())).await.unwrap();
    let mut out = Vec::new();
    while let Some((_, v)) = next_json(ws).await {
        out.push(v);
    }
    out
}

fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

async fn speech_today(app: &App, u: &str) -> i64 {
    app.service.decision(&uid(u)).await.unwrap().windows["daily_ms"]
}

async fn forwarded_today(app: &App, u: &str) -> i64 {
    app.service.budget_used(&uid(u), app.service.now().utc_day()).await.unwrap()
}

async fn wait_until<F: AsyncFnMut() -> bool>(mut ok: F) {
    for _ in 0..200 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 5 s");
}

// ---- tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn results_are_relayed_unchanged_and_the_vendor_key_stays_on_the_server() {
    let (app, log) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let mut ws =
        try_connect(&app, "ann", "encoding=linear16&sample_rate=16000&channels=1&model=nova-3&punctuate=true", "Token")
            .await
            .expect("Deepgram SDKs send `Token`; the gateway accepts the user's JWT that way too");
    ws.send(Message::Binary(audio(100, true).into())).await.unwrap();
    let (raw, v) = next_json(&mut ws).await.unwrap();
    assert_eq!(v["type"], "Results");
    let rest = close_stream(&mut ws).await;
    assert_eq!(rest.last().unwrap()["type"], "Metadata", "CloseStream closes after the upstream finished");
    let conns = log.conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(raw, conns[0].sent[0], "relayed byte for byte");
    assert_eq!(conns[0].authorization.as_deref(), Some(format!("Token {VENDOR_KEY}").as_str()));
    assert!(conns[0].uri.contains("model=nova-3") && conns[0].uri.contains("punctuate=true"), "{}", conns[0].uri);
    assert!(conns[0].uri.contains("encoding=linear16") && conns[0].uri.contains("sample_rate=16000"));
    assert_eq!(conns[0].close_streams, 1);
}

/// A TLS acceptor with a fresh self-signed certificate for `localhost`, and that certificate as
/// a PEM file.
fn self_signed_tls(dir: &std::path::Path) -> (tokio_rustls::TlsAcceptor, std::path::PathBuf) {
    use tokio_rustls::rustls;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = dir.join("upstream-ca.pem");
    std::fs::write(&pem, certified.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem)
}

#[tokio::test]
async fn a_wss_upstream_is_reached_over_tls_and_an_untrusted_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, pem) = self_signed_tls(dir.path());
    let (url, log) = spawn_upstream_with(Some(acceptor)).await;
    assert!(url.starts_with("wss://"));

    // Trusted through gateway.upstream_ca_file: audio goes over TLS, results come back.
    let upstream = Upstream::from_config(&url, Some(VENDOR_KEY)).unwrap().with_extra_roots(&pem).unwrap();
    let app = spawn_app(Policy::default(), upstream, 60_000).await;
    let mut ws = connect(&app, "tia").await;
    ws.send(Message::Binary(audio(100, true).into())).await.unwrap();
    assert_eq!(until_type(&mut ws, "Results").await["samples_received"], 1_600);
    close_stream(&mut ws).await;
    let conns = log.conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].audio.len(), 3_200);
    assert_eq!(conns[0].authorization.as_deref(), Some(format!("Token {VENDOR_KEY}").as_str()));

    // Only the system's roots: the self-signed certificate is refused, the client is told the
    // upstream is unavailable, and nothing was sent to it.
    let untrusted = spawn_app(Policy::default(), Upstream::from_config(&url, Some(VENDOR_KEY)).unwrap(), 60_000).await;
    let mut ws = connect(&untrusted, "tia").await;
    let (_, v) = next_json(&mut ws).await.expect("an error message before the close");
    assert_eq!(v["type"], "Error");
    assert!(v["message"].as_str().unwrap().contains("upstream is unavailable"), "{v}");
    assert!(next_json(&mut ws).await.is_none(), "then the stream closes");
    assert_eq!(log.conns().len(), 1, "the refused handshake never reached the WebSocket layer");
}

#[test]
fn extra_roots_are_checked_when_the_gateway_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = Upstream::from_config("wss://stt.example/listen", None).unwrap().with_extra_roots(&missing).unwrap_err();
    assert!(err.contains("gateway.upstream_ca_file") && err.contains("missing.pem"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = Upstream::from_config("wss://stt.example/listen", None).unwrap().with_extra_roots(&empty).unwrap_err();
    assert!(err.contains("no certificate"), "{err}");
    let err = Upstream::from_config("ws://stt.example/listen", None).unwrap().with_extra_roots(&empty).unwrap_err();
    assert!(err.contains("not a wss:// URL"), "{err}");
    let err = Upstream::from_config("https://stt.example/listen", None).unwrap_err();
    assert!(err.contains("ws:// or wss://"), "{err}");
}

#[tokio::test]
async fn a_browser_authenticates_with_the_token_subprotocol_and_the_server_selects_only_token() {
    let (app, log) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let url = format!("ws://{}/v1/listen?encoding=linear16&sample_rate=16000", app.addr);
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", format!("token, {}", token("uma")).parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "token", "the JWT is never echoed back");
    ws.send(Message::Binary(audio(100, true).into())).await.unwrap();
    until_type(&mut ws, "Results").await;
    close_stream(&mut ws).await;
    wait_until(async || speech_today(&app, "uma").await == 100).await;
    assert_eq!(log.conns()[0].authorization.as_deref(), Some(format!("Token {VENDOR_KEY}").as_str()));
    // A forged token in the subprotocol is refused like one in the header.
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "token, not-a-jwt".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("a forged subprotocol token was not refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn keepalive_and_finalize_are_forwarded_upstream() {
    let (app, log) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let mut ws = connect(&app, "bo").await;
    ws.send(Message::Text(r#"{"type":"KeepAlive"}"#.into())).await.unwrap();
    ws.send(Message::Text(r#"{"type":"Finalize"}"#.into())).await.unwrap();
    let v = until_type(&mut ws, "Results").await;
    assert_eq!(v["from_finalize"], true);
    close_stream(&mut ws).await;
    let c = &log.conns()[0];
    assert_eq!((c.keepalives, c.finalizes, c.close_streams), (1, 1, 1));
}

#[tokio::test]
async fn a_sample_split_across_frames_is_joined_not_dropped() {
    let (app, log) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let mut ws = connect(&app, "cy").await;
    let sent = audio(250, true);
    // Odd chunk sizes: every sample boundary falls inside some frame.
    for chunk in sent.chunks(333) {
        ws.send(Message::Binary(chunk.to_vec().into())).await.unwrap();
    }
    // The stream ends on a whole sample, so everything must arrive.
    close_stream(&mut ws).await;
    let c = &log.conns()[0];
    assert_eq!(c.audio.len(), sent.len(), "{} samples upstream, {} sent", c.audio.len() / 2, sent.len() / 2);
    assert_eq!(c.audio, sent, "the same samples, in order");
}

#[tokio::test]
async fn bad_frames_get_an_error_on_that_stream_and_the_stream_goes_on() {
    let (app, log) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let mut ws = connect(&app, "di").await;
    let mut other = connect(&app, "ed").await;
    for bad in ["hello", r#"{"type":"Nope"}"#, r#"{"no_type":1}"#, "[1,2]"] {
        ws.send(Message::Text(bad.into())).await.unwrap();
        let (_, v) = next_json(&mut ws).await.unwrap();
        assert_eq!(v["type"], "Error", "for {bad:?}");
        assert!(v["message"].as_str().unwrap().len() > 10);
    }
    ws.send(Message::Binary(vec![0u8; (1 << 20) + 2].into())).await.unwrap();
    let (_, v) = next_json(&mut ws).await.unwrap();
    assert_eq!(v["type"], "Error");
    assert!(v["message"].as_str().unwrap().contains("larger than"), "{v}");
    // The stream and its neighbour both go on.
    ws.send(Message::Binary(audio(20, true).into())).await.unwrap();
    assert_eq!(until_type(&mut ws, "Results").await["samples_received"], 320, "the oversized frame was not forwarded");
    other.send(Message::Binary(audio(20, true).into())).await.unwrap();
    until_type(&mut other, "Results").await;
    close_stream(&mut ws).await;
    close_stream(&mut other).await;
    assert_eq!(log.total_audio_bytes(), 2 * 640);
}

#[tokio::test]
async fn a_bad_query_or_a_missing_token_is_refused_before_the_upgrade() {
    let (app, _) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let status = |r: Result<Client, WsError>| match r {
        Err(WsError::Http(resp)) => {
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            (resp.status().as_u16(), body)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the stream opened"),
    };
    for (query, field) in [
        ("encoding=opus&sample_rate=16000", "encoding"),
        ("sample_rate=16000", "encoding"),
        ("encoding=linear16&sample_rate=4000", "sample_rate"),
        ("encoding=linear16&sample_rate=16000&channels=3", "channels"),
    ] {
        let (code, body) = status(try_connect(&app, "fa", query, "Bearer").await);
        assert_eq!(code, 400, "{query}");
        assert!(body.contains(field), "{query}: {body}");
    }
    let mut req =
        format!("ws://{}/v1/listen?encoding=linear16&sample_rate=16000", app.addr).into_client_request().unwrap();
    let (code, _) = status(tokio_tungstenite::connect_async(req.clone()).await.map(|(ws, _)| ws));
    assert_eq!(code, 401);
    req.headers_mut().insert("authorization", "Bearer not-a-jwt".parse().unwrap());
    let (code, _) = status(tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws));
    assert_eq!(code, 401);
}

#[tokio::test]
async fn a_plain_http_request_gets_a_json_error_and_an_unconfigured_gateway_answers_503() {
    let (app, _) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let url = format!("http://{}/v1/listen?encoding=linear16&sample_rate=16000", app.addr);
    let client = reqwest::Client::new();
    let r = client.get(&url).bearer_auth(token("max")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("WebSocket"), "{body}");
    // The same router without the gateway attached: never open by default.
    let unconfigured = router(AppState {
        service: app.service.clone(),
        auth: Arc::new(
            fairuse_auth::Authenticator::from_env_map(&HashMap::from([(
                "FAIRUSE_JWT_HS256_SECRET".to_string(),
                SECRET.to_string(),
            )]))
            .unwrap(),
        ),
        settings: HttpSettings::default(),
        metrics: None,
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, unconfigured).await.unwrap() });
    let r = client
        .get(format!("http://{addr}/v1/listen?encoding=linear16&sample_rate=16000"))
        .bearer_auth(token("max"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("FAIRUSE_UPSTREAM_STT_URL"), "{body}");
}

#[tokio::test]
async fn restricted_user_over_budget_gets_the_typed_event_and_forwarding_stops() {
    let mut policy = Policy::default();
    policy.stages.restrict.stt_daily_budget = Some(DurationMs(1_000));
    let (app, log) = spawn_app_with_upstream(policy, 100).await;
    app.service.set_stage(&uid("gus"), Stage::Restrict, None, "test", Some("test".into())).await.unwrap();
    let case_ref = app.service.current_state(&uid("gus")).await.unwrap().last_case_ref;
    let mut ws = connect(&app, "gus").await;
    // 3 s of speech in 100 ms frames, paced so several flushes happen while it streams.
    let (mut tx, mut rx) = ws.split();
    let sender = tokio::spawn(async move {
        for _ in 0..30 {
            tx.send(Message::Binary(audio(100, true).into())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tx
    });
    let fair_use = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), rx.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "FairUse" {
                break v;
            }
        }
    };
    assert_eq!(fair_use["event"], "stt_budget_exhausted");
    assert!(fair_use["resets_at"].is_string(), "{fair_use}");
    assert_eq!(fair_use["case_ref"], json!(case_ref));
    let tx = sender.await.unwrap();
    ws = tx.reunite(rx).unwrap();
    let rest = close_stream(&mut ws).await;
    assert!(rest.iter().all(|v| v["type"] != "FairUse"), "the event is sent once");
    // Forwarding stopped: the upstream got the budget plus at most what was in flight before a
    // flush saw it run out, and far less than was sent; the metering went on to the end.
    let forwarded_ms = log.total_audio_bytes() as i64 / 32;
    assert!((1_000..3_000).contains(&forwarded_ms), "{forwarded_ms} ms forwarded");
    wait_until(async || speech_today(&app, "gus").await == 3_000).await;
    assert_eq!(forwarded_today(&app, "gus").await, forwarded_ms, "stt_ms is what really went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_is_leased_in_slices_so_fast_clients_overshoot_by_at_most_one_slice_per_stream() {
    // 10 s of budget, 2 s slices, and no clock flush during the test: only the leases stop it.
    let mut policy = Policy::default();
    policy.stages.restrict.stt_daily_budget = Some(DurationMs(10_000));
    policy.budget.slice = DurationMs(2_000);
    let (app, log) = spawn_app_with_upstream(policy, 600_000).await;
    let app = Arc::new(app);
    app.service.set_stage(&uid("fay"), Stage::Restrict, None, "test", None).await.unwrap();
    // One stream sending 30 s of audio as fast as it can: the budget is leased 2 s at a time and
    // the last lease is what remains, so it forwards exactly the budget.
    let mut ws = connect(&app, "fay").await;
    for _ in 0..30 {
        ws.send(Message::Binary(audio(1_000, true).into())).await.unwrap();
    }
    let rest = close_stream(&mut ws).await;
    assert!(rest.iter().any(|v| v["event"] == "stt_budget_exhausted"), "{rest:?}");
    assert_eq!(log.total_audio_bytes() as i64 / 32, 10_000, "one stream forwards exactly the budget");
    assert_eq!(forwarded_today(&app, "fay").await, 10_000);

    // Three concurrent streams of a fresh user: each may be one slice past what the others have
    // reported, never more.
    let before = log.total_audio_bytes() as i64;
    app.service.set_stage(&uid("gil"), Stage::Restrict, None, "test", None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&app, "gil").await;
            for _ in 0..30 {
                ws.send(Message::Binary(audio(500, true).into())).await.unwrap();
            }
            close_stream(&mut ws).await.iter().any(|v| v["event"] == "stt_budget_exhausted")
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap(), "every stream is told its budget ran out");
    }
    let forwarded_ms = (log.total_audio_bytes() as i64 - before) / 32;
    assert!((10_000..=10_000 + 3 * 2_000).contains(&forwarded_ms), "{forwarded_ms} ms forwarded for a 10 s budget");
    assert_eq!(forwarded_today(&app, "gil").await, forwarded_ms, "the budget counts what went upstream");
    wait_until(async || speech_today(&app, "gil").await == 45_000).await;
}

#[tokio::test]
async fn a_budgeted_stream_whose_usage_cannot_be_reported_is_held_not_given_more_slices() {
    let mut policy = Policy::default();
    policy.stages.restrict.stt_daily_budget = Some(DurationMs(60_000));
    policy.budget.slice = DurationMs(2_000);
    let memory = Arc::new(MemoryStore::new());
    let down = Cut::default();
    let mut stores = Stores::single(memory.clone());
    stores.meter = Arc::new(CuttableMeter { inner: memory, down: down.clone() });
    let (url, log) = spawn_upstream().await;
    let settings = GatewaySettings {
        upstream: Upstream::from_config(&url, Some(VENDOR_KEY)).unwrap(),
        flush_interval: Duration::from_secs(600),
        outbound_timeout: Duration::from_secs(2),
        ..GatewaySettings::default()
    };
    let app = spawn_app_custom(policy, settings, stores).await;
    app.service.set_stage(&uid("hol"), Stage::Restrict, None, "test", None).await.unwrap();
    let mut ws = connect(&app, "hol").await;
    ws.send(Message::Binary(audio(3_000, true).into())).await.unwrap();
    wait_until(async || log.total_audio_bytes() == 3_000 * 32).await;
    // The meter is cut: the next lease cannot be backed by a report, so nothing more goes
    // upstream (the budget fails closed for a restricted user), however much is sent.
    down.set(true);
    for _ in 0..10 {
        ws.send(Message::Binary(audio(1_000, true).into())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = log.total_audio_bytes() / 32;
    assert!(held <= 4_000, "{held} ms forwarded: at most the 2 s lease in hand when the meter went down");
    // Still held 2 s later, the upstream gets a KeepAlive instead of audio, so a vendor that
    // closes silent streams (Deepgram: after 10 s) keeps this one.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    ws.send(Message::Binary(audio(200, true).into())).await.unwrap();
    wait_until(async || log.conns()[0].keepalives >= 1).await;
    assert_eq!(log.total_audio_bytes() / 32, held, "still nothing more forwarded");
    // Back up: after the retry delay the next frame reports, leases and is forwarded.
    down.set(false);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    ws.send(Message::Binary(audio(500, true).into())).await.unwrap();
    wait_until(async || log.total_audio_bytes() / 32 > held).await;
    close_stream(&mut ws).await;
    assert_eq!(forwarded_today(&app, "hol").await, log.total_audio_bytes() as i64 / 32, "all forwarded audio counted");
}

#[tokio::test]
async fn a_budget_store_outage_holds_a_budgeted_stream_without_telling_it_the_budget_is_spent() {
    let mut policy = Policy::default();
    policy.stages.restrict.stt_daily_budget = Some(DurationMs(60_000));
    let memory = Arc::new(MemoryStore::new());
    let down = Cut::default();
    let mut stores = Stores::single(memory.clone());
    stores.budget = Arc::new(CuttableBudget { inner: memory, down: down.clone() });
    let (url, log) = spawn_upstream().await;
    let settings = GatewaySettings {
        upstream: Upstream::from_config(&url, Some(VENDOR_KEY)).unwrap(),
        flush_interval: Duration::from_secs(600),
        ..GatewaySettings::default()
    };
    let app = spawn_app_custom(policy, settings, stores).await;
    app.service.set_stage(&uid("bo"), Stage::Restrict, None, "test", None).await.unwrap();
    // The budget store is down when the stream opens: the decision fails closed for a restricted
    // user, which holds the stream; it is not a spent budget, so no FairUse event.
    down.set(true);
    let mut ws = connect(&app, "bo").await;
    ws.send(Message::Binary(audio(1_000, true).into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(log.total_audio_bytes(), 0, "nothing forwarded while the budget cannot be read");
    // Back: the next frame after the retry delay is forwarded.
    down.set(false);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    ws.send(Message::Binary(audio(500, true).into())).await.unwrap();
    wait_until(async || log.total_audio_bytes() == 500 * 32).await;
    let rest = close_stream(&mut ws).await;
    assert!(rest.iter().all(|v| v["type"] != "FairUse" && v["variant"] != "SttBudgetExhausted"), "{rest:?}");
    wait_until(async || speech_today(&app, "bo").await == 1_500).await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout_and_frees_its_slot() {
    let settings = GatewaySettings {
        upstream: Upstream::from_config("none", None).unwrap(),
        idle_timeout: Duration::from_millis(300),
        ..GatewaySettings::default()
    };
    let app = spawn_app_custom(Policy::default(), settings, Stores::single(Arc::new(MemoryStore::new()))).await;
    let mut ws = connect(&app, "ida").await;
    ws.send(Message::Binary(audio(200, true).into())).await.unwrap();
    let (_, v) = next_json(&mut ws).await.expect("an error before the close");
    assert_eq!((v["type"].as_str(), v["variant"].as_str()), (Some("Error"), Some("IdleTimeout")), "{v}");
    assert!(next_json(&mut ws).await.is_none(), "then the stream closes");
    wait_until(async || app.gateway.open_streams(&uid("ida")) == 0).await;
    wait_until(async || speech_today(&app, "ida").await == 200).await;
}

#[tokio::test]
async fn a_client_heard_more_often_than_the_idle_timeout_is_never_closed_for_idleness() {
    let settings = GatewaySettings {
        upstream: Upstream::from_config("none", None).unwrap(),
        idle_timeout: Duration::from_millis(300),
        ..GatewaySettings::default()
    };
    let app = spawn_app_custom(Policy::default(), settings, Stores::single(Arc::new(MemoryStore::new()))).await;
    let mut ws = connect(&app, "ivo").await;
    // 1.2 s of frames 100 ms apart: four idle periods, none of them silent.
    for _ in 0..12 {
        ws.send(Message::Binary(audio(20, true).into())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rest = close_stream(&mut ws).await;
    assert!(rest.iter().all(|v| v["variant"] != "IdleTimeout"), "closed for idleness while heard: {rest:?}");
    wait_until(async || speech_today(&app, "ivo").await == 240).await;
}

#[tokio::test]
async fn a_user_whose_budget_is_already_spent_gets_the_event_at_once_and_nothing_is_forwarded() {
    let mut policy = Policy::default();
    policy.stages.restrict.stt_daily_budget = Some(DurationMs(1_000));
    let (app, log) = spawn_app_with_upstream(policy, 100).await;
    app.service.set_stage(&uid("hal"), Stage::Restrict, None, "test", None).await.unwrap();
    let spent = fairuse_domain::windows::UsageReport {
        stt_ms: 2_000,
        ..fairuse_domain::windows::UsageReport::delta(fairuse_domain::ids::Lane::Realtime, 0)
    };
    app.service.record_usage(vec![UserReport { uid: uid("hal"), report: spent }]).await.unwrap();
    let mut ws = connect(&app, "hal").await;
    let (_, v) = next_json(&mut ws).await.unwrap();
    assert_eq!((v["type"].as_str(), v["event"].as_str()), (Some("FairUse"), Some("stt_budget_exhausted")));
    // Then the same news in Deepgram's error shape, which SDKs that drop unknown types still show.
    let (_, e) = next_json(&mut ws).await.unwrap();
    assert_eq!((e["type"].as_str(), e["variant"].as_str()), (Some("Error"), Some("SttBudgetExhausted")), "{e}");
    let description = e["description"].as_str().unwrap();
    assert!(description.contains("resets at") && description.contains(v["resets_at"].as_str().unwrap()), "{e}");
    ws.send(Message::Binary(audio(500, true).into())).await.unwrap();
    close_stream(&mut ws).await;
    assert_eq!(log.total_audio_bytes(), 0, "no upstream audio once the budget is spent");
    wait_until(async || speech_today(&app, "hal").await == 500).await;
}

#[tokio::test]
async fn usage_is_recorded_as_cumulative_session_reports_so_repeated_flushes_never_add_up() {
    let (app, _) = spawn_app_with_upstream(Policy::default(), 50).await;
    let mut ws = connect(&app, "ivy").await;
    // 1 s of speech and 1 s of silence, over many flush intervals: each flush reports the
    // session's running total, so the day's speech is the speech, not the sum of the reports.
    for i in 0..20 {
        ws.send(Message::Binary(audio(100, i % 2 == 0).into())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    close_stream(&mut ws).await;
    wait_until(async || forwarded_today(&app, "ivy").await == 2_000).await;
    assert_eq!(speech_today(&app, "ivy").await, 1_000);
    // Meter-only gateways forward nothing: speech counts, forwarded audio does not.
    let meter_only = spawn_app(Policy::default(), Upstream::from_config("none", None).unwrap(), 50).await;
    let mut ws = connect(&meter_only, "ivy").await;
    ws.send(Message::Binary(audio(700, true).into())).await.unwrap();
    close_stream(&mut ws).await;
    wait_until(async || speech_today(&meter_only, "ivy").await == 700).await;
    assert_eq!(forwarded_today(&meter_only, "ivy").await, 0);
}

#[tokio::test]
async fn each_stream_records_a_session_summary_for_the_classifier() {
    let (app, _) = spawn_app_with_upstream(Policy::default(), 100).await;
    let start = app.service.now();
    let mut ws = connect(&app, "sam").await;
    // speech 1 s, pause 2 s, speech 1.5 s with a 300 ms gap (bridged: words have gaps), pause
    // 1 s, speech 0.5 s, then 0.7 s of trailing silence (not a pause: nothing follows it).
    let script = [(1_000, true), (2_000, false), (600, true), (300, false), (600, true), (1_000, false), (500, true)];
    for (ms, loud) in script.into_iter().chain([(700, false)]) {
        ws.send(Message::Binary(audio(ms, loud).into())).await.unwrap();
    }
    // While it is open, a flush has recorded an open session.
    let sessions =
        async || app.service.stores().conversations.stream_sessions_since(&uid("sam"), start, 10).await.unwrap();
    wait_until(async || sessions().await.first().is_some_and(|s| s.duration_ms == 6_700)).await;
    assert!(!sessions().await[0].closed, "open while the stream is");
    close_stream(&mut ws).await;
    wait_until(async || sessions().await.first().is_some_and(|s| s.closed)).await;
    let all = sessions().await;
    assert_eq!(all.len(), 1, "one summary per stream: {all:?}");
    let s = &all[0];
    assert_eq!((s.duration_ms, s.speech_ms, s.stt_ms), (6_700, 2_700, 6_700), "{s:?}");
    assert_eq!(s.longest_speech_ms, 1_500, "the 300 ms gap is bridged: {s:?}");
    assert_eq!((s.pause_count, s.longest_pause_ms, s.pause_mean_ms), (2, 2_000, 1_500), "{s:?}");
    assert!(s.started_at >= start && s.updated_at >= s.started_at, "{s:?}");
}

#[tokio::test]
async fn a_streams_fingerprint_codes_go_to_the_print_index_unless_the_policy_turns_them_off() {
    for enabled in [true, false] {
        let mut policy = Policy::default();
        assert!(policy.fingerprint.enabled, "on by default");
        policy.fingerprint.enabled = enabled;
        let (app, _) = spawn_app_with_upstream(policy, 100).await;
        let start = app.service.now();
        let mut ws = connect(&app, "fay").await;
        // 300 ms of speech, 200 ms of silence, 100 ms of speech: 40 speech windows of 10 ms.
        for (ms, loud) in [(300, true), (200, false), (100, true)] {
            ws.send(Message::Binary(audio(ms, loud).into())).await.unwrap();
        }
        close_stream(&mut ws).await;
        let sessions =
            async || app.service.stores().conversations.stream_sessions_since(&uid("fay"), start, 10).await.unwrap();
        wait_until(async || sessions().await.first().is_some_and(|s| s.closed)).await;
        let session = sessions().await.remove(0);
        let keys: Vec<u32> = (0..60).map(|w| print_key(code_of(w))).collect();
        let mut indexed = app.service.stores().prints.lookup_prints(&keys, start, 100).await.unwrap();
        if !enabled {
            assert!(indexed.is_empty(), "fingerprints off: nothing indexed");
            continue;
        }
        indexed.sort_by_key(|p| p.heard_at);
        // Speech windows 0-29 and 50-59; every fifth keeps a code: 0, 5, ..., 25, 50, 55.
        assert_eq!(indexed.len(), 8, "{indexed:?}");
        let at_500 = &indexed[6];
        assert_eq!((at_500.uid.as_str(), at_500.session_id.as_str()), ("fay", session.session_id.as_str()));
        assert_eq!(at_500.code, code_of(50));
        assert_eq!(at_500.heard_at, session.started_at.plus_ms(500), "heard at the stream's start plus its offset");
        assert_eq!((session.duplicate_own_ms, session.duplicate_other_ms), (0, 0), "nothing heard before");
    }
}

/// Streams `seconds` of the same loud "recording" as `who` and waits for the closed session.
async fn stream_recording(app: &App, who: &str, seconds: u32) -> StreamSession {
    let start = app.service.now();
    let mut ws = connect(app, who).await;
    for _ in 0..seconds {
        ws.send(Message::Binary(audio(1_000, true).into())).await.unwrap();
    }
    close_stream(&mut ws).await;
    let sessions =
        async || app.service.stores().conversations.stream_sessions_since(&uid(who), start, 10).await.unwrap();
    wait_until(async || sessions().await.iter().any(|s| s.closed && s.started_at >= start)).await;
    sessions().await.into_iter().rfind(|s| s.closed && s.started_at >= start).unwrap()
}

#[tokio::test]
async fn the_same_audio_an_hour_apart_is_duplicate_audio_and_at_the_same_moment_it_is_not() {
    let settings = || GatewaySettings {
        upstream: Upstream::None,
        flush_interval: Duration::from_millis(100),
        ..GatewaySettings::default()
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_780_000_000_000)));
    let app =
        spawn_app_clocked(Policy::default(), settings(), Stores::single(Arc::new(MemoryStore::new())), clock.clone())
            .await;
    let first = stream_recording(&app, "ann", 90).await;
    assert_eq!((first.duplicate_own_ms, first.duplicate_other_ms), (0, 0), "the first hearing repeats nothing");
    // Bob plays the same recording an hour later: all of it repeats Ann's audio.
    clock.advance_ms(3_600_000);
    let later = stream_recording(&app, "bob", 90).await;
    assert_eq!(later.duplicate_own_ms, 0);
    assert!((85_000..=91_000).contains(&later.duplicate_other_ms), "{later:?}");
    let m = &later.duplicate_of[0];
    assert_eq!((m.uid.as_str(), m.session_id.as_str(), m.own), ("ann", first.session_id.as_str(), false));
    assert!((m.shift_ms - 3_600_000).abs() <= 2_000, "{m:?}");
    // Ann plays it again the next hour: her own audio, and Bob's.
    clock.advance_ms(3_600_000);
    let again = stream_recording(&app, "ann", 90).await;
    assert!(again.duplicate_own_ms >= 85_000 && again.duplicate_other_ms >= 85_000, "{again:?}");

    // Two wearers in one room: the same audio at the same moment is never duplicate audio.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_780_000_000_000)));
    let room =
        spawn_app_clocked(Policy::default(), settings(), Stores::single(Arc::new(MemoryStore::new())), clock.clone())
            .await;
    stream_recording(&room, "cat", 90).await;
    clock.advance_ms(60_000);
    let beside = stream_recording(&room, "dan", 90).await;
    assert_eq!((beside.duplicate_own_ms, beside.duplicate_other_ms), (0, 0), "{beside:?}");
    assert!(beside.duplicate_of.is_empty());
}

#[tokio::test]
async fn a_stream_killed_midway_is_metered_up_to_its_last_flush_and_a_reconnect_never_double_counts() {
    let (app, _) = spawn_app_with_upstream(Policy::default(), 100).await;
    let mut ws = connect(&app, "jo").await;
    ws.send(Message::Binary(audio(1_000, true).into())).await.unwrap();
    // Metered by the periodic flush while the stream is still open.
    wait_until(async || speech_today(&app, "jo").await == 1_000).await;
    drop(ws); // killed: no CloseStream, no close frame
    wait_until(async || app.gateway.open_streams(&uid("jo")) == 0).await;
    let mut ws = connect(&app, "jo").await;
    ws.send(Message::Binary(audio(400, true).into())).await.unwrap();
    close_stream(&mut ws).await;
    wait_until(async || speech_today(&app, "jo").await == 1_400).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(speech_today(&app, "jo").await, 1_400, "each session counted once");
    assert_eq!(forwarded_today(&app, "jo").await, 1_400);
}

#[tokio::test]
async fn the_fifth_concurrent_stream_of_a_user_is_refused_with_a_clear_error() {
    let (app, _) = spawn_app_with_upstream(Policy::default(), 60_000).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(connect(&app, "kim").await);
    }
    match try_connect(&app, "kim", "encoding=linear16&sample_rate=16000", "Bearer").await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 409);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("too many concurrent streams") && body.contains("limit is 4"), "{body}");
        }
        other => panic!("the fifth stream was not refused: {:?}", other.map(|_| ())),
    }
    // Another user is not affected, and closing one stream frees a slot.
    let mut lee = connect(&app, "lee").await;
    close_stream(&mut lee).await;
    let mut first = open.remove(0);
    close_stream(&mut first).await;
    wait_until(async || app.gateway.open_streams(&uid("kim")) == 3).await;
    let mut again = connect(&app, "kim").await;
    close_stream(&mut again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_streams_are_relayed_and_metered() {
    let (app, log) = spawn_app_with_upstream(Policy::default(), 100).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let u = format!("user{i}");
            let mut ws = connect(&app, &u).await;
            let mut results = 0;
            for _ in 0..5 {
                ws.send(Message::Binary(audio(100, true).into())).await.unwrap();
                until_type(&mut ws, "Results").await;
                results += 1;
            }
            close_stream(&mut ws).await;
            results
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 5);
    }
    assert_eq!(log.conns().len(), 100);
    assert_eq!(log.total_audio_bytes(), 100 * 5 * 3_200);
    for i in [0, 42, 99] {
        let u = format!("user{i}");
        wait_until(async || speech_today(&app, &u).await == 500).await;
    }
}
