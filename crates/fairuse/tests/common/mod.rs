//! Test support, the one harness of this crate's tests: the real `fairuse` binary on port 0 with
//! its own data directory (`TestServer`) and one-shot runs of it (`run_fairuse`), both started by
//! `binary`; local stand-ins for what cannot be reached from here (a JWKS endpoint, a webhook
//! receiver); and token minting.
#![allow(dead_code)]

pub mod binary;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use binary::ServeProcess;
use serde_json::{Value, json};

pub const SERVICE_KEY: &str = "svc-test-key-0123456789";
pub const OPERATOR_KEY: &str = "op-test-key-0123456789";
pub const VIEWER_KEY: &str = "view-test-key-0123456789";
pub const HS256_SECRET: &str = "hs256-test-secret-that-is-long-enough";

/// The `fairuse` binary cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_fairuse"))
}

/// `fairuse` with a clean environment (no inherited `FAIRUSE*` variable), for one-shot commands.
pub fn fairuse_command() -> Command {
    binary::command(bin())
}

/// Runs `fairuse <args>` with only `env` and waits for it to exit (at most 60 s).
pub fn run_fairuse(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    binary::run(bin(), args, env)
}

/// The real binary serving on 127.0.0.1:0 with its own data directory. Killed on drop; what it
/// logged is shown when the test fails.
pub struct TestServer {
    process: Option<ServeProcess>,
    pub base: String,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
    pub client: reqwest::Client,
}

/// The environment every test server gets unless a test overrides or removes a variable.
pub fn default_env() -> Vec<(String, String)> {
    vec![
        ("FAIRUSE_SERVICE_KEYS".into(), SERVICE_KEY.into()),
        ("FAIRUSE_ADMIN_KEYS".into(), format!("olga:operator:{OPERATOR_KEY},victor:viewer:{VIEWER_KEY}")),
        ("FAIRUSE_JWT_HS256_SECRET".into(), HS256_SECRET.into()),
        ("FAIRUSE_LOG".into(), "warn".into()),
    ]
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(default_env())
    }

    /// With exactly `env` (start from [`default_env`] to keep the test keys).
    pub fn start_with(env: Vec<(String, String)>) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Self::start_on(data_dir, Some(dir), env)
    }

    /// On a data directory the test keeps (to start several servers on it, one after the other).
    pub fn start_in(data_dir: &Path, env: Vec<(String, String)>) -> TestServer {
        Self::start_on(data_dir.to_owned(), None, env)
    }

    fn start_on(data_dir: PathBuf, dir: Option<tempfile::TempDir>, env: Vec<(String, String)>) -> TestServer {
        let mut s = TestServer { process: None, base: String::new(), data_dir, _dir: dir, env, client: client() };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let process = ServeProcess::start(bin(), &self.data_dir, &self.env);
        self.base = process.base.clone();
        self.process = Some(process);
    }

    /// SIGKILL (no chance to flush anything) and start again on the same data directory.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
        self.spawn();
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.process.as_mut()?.terminate()
    }

    /// What the server printed on stdout (the listening line and the start-up block after it),
    /// once it has printed nothing for a second.
    pub fn printed(&self) -> Vec<String> {
        self.process.as_ref().map(|p| p.printed(Duration::from_secs(1))).unwrap_or_default()
    }

    /// What the server logged on stderr so far.
    pub fn logged(&self) -> String {
        self.process.as_ref().map(ServeProcess::stderr).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub async fn post_usage(&self, body: Value) -> reqwest::Response {
        self.client.post(self.url("/v1/usage")).bearer_auth(SERVICE_KEY).json(&body).send().await.expect("request")
    }

    pub async fn decision(&self, uid: &str) -> Value {
        let r = self
            .client
            .get(self.url(&format!("/v1/users/{uid}/decision")))
            .bearer_auth(SERVICE_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "decision for {uid}");
        r.json().await.unwrap()
    }

    pub async fn admin_get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client.get(self.url(path)).header("X-Admin-Key", key).send().await.unwrap()
    }

    pub async fn admin_post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).header("X-Admin-Key", key).json(&body).send().await.unwrap()
    }
}

impl TestServer {
    /// Posts six conversations titled "<book> - Chapter N", 48 minutes each, starting at
    /// `start_s`: what an audiobook looks like to the classifier.
    pub async fn post_chapter_conversations(&self, uid: &str, book: &str, start_s: i64) {
        let conversations: Vec<Value> = (1..=6)
            .map(|i| {
                let st = start_s + i * 3000;
                json!({"conversation_id": format!("c{i}"), "title": format!("{book} - Chapter {i}"),
                       "category": "entertainment", "source": "omi",
                       "started_at": fairuse_domain::time::Timestamp::from_secs(st).to_rfc3339(),
                       "finished_at": fairuse_domain::time::Timestamp::from_secs(st + 2900).to_rfc3339()})
            })
            .collect();
        let r = self
            .client
            .post(self.url(&format!("/v1/users/{uid}/conversations")))
            .bearer_auth(SERVICE_KEY)
            .json(&json!({"conversations": conversations}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "conversations accepted");
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn hs256_token(sub: &str, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "iat": now_s(), "exp": now_s() + 3600});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
    .unwrap()
}

/// An unsigned token: `{"alg":"none"}` with an empty signature.
pub fn alg_none_token(sub: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(json!({"sub": sub, "exp": now_s() + 3600}).to_string());
    format!("{header}.{claims}.")
}

/// An RSA key made with openssl for this test run, and its JWK.
pub struct RsaKey {
    pub pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub jwk: Value,
}

pub fn rsa_key(kid: &str) -> RsaKey {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let ok = Command::new("openssl").args(["genrsa", "-out"]).arg(&key).arg("2048").stderr(Stdio::null()).status();
    assert!(ok.map(|s| s.success()).unwrap_or(false), "openssl genrsa failed: openssl is needed to make a test key");
    let modulus = Command::new("openssl").args(["rsa", "-noout", "-modulus", "-in"]).arg(&key).output().unwrap();
    let text = String::from_utf8(modulus.stdout).unwrap();
    let hexmod = text.trim().strip_prefix("Modulus=").expect("modulus");
    let n = hex::decode(hexmod).unwrap();
    let public = Command::new("openssl").args(["rsa", "-pubout", "-in"]).arg(&key).output().unwrap();
    RsaKey {
        pem: std::fs::read(&key).unwrap(),
        public_pem: public.stdout,
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"}),
    }
}

pub fn rs256_token(key: &RsaKey, kid: &str, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(&key.pem).unwrap()).unwrap()
}

/// A local HTTP server on 127.0.0.1:0: serves a JWKS, or records webhooks.
pub struct LocalServer {
    pub base: String,
    pub received: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    _task: tokio::task::JoinHandle<()>,
}

pub async fn jwks_server(jwks: Value) -> LocalServer {
    let body = jwks.to_string();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json"), ("cache-control", "max-age=300")], body) }
        }),
    );
    serve_local(app, Arc::new(Mutex::new(Vec::new()))).await
}

/// Records every POST; answers 500 to the first `fail_first` requests, then 200.
pub async fn webhook_receiver(fail_first: usize) -> LocalServer {
    let received: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let rec = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let rec = rec.clone();
            async move {
                let n = {
                    let mut r = rec.lock().unwrap();
                    r.push((headers, body));
                    r.len()
                };
                if n <= fail_first { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK }
            }
        }),
    );
    serve_local(app, received).await
}

async fn serve_local(app: axum::Router, received: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) -> LocalServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    LocalServer { base, received, _task: task }
}

/// Polls `check` every 100 ms until it returns Some or `limit` passes (not a timing assertion:
/// the limit only bounds how long a broken build takes to fail).
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The proxy's accept loop and the connections it opened, while it is up.
type ProxyRunning = (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<tokio::task::AbortHandle>>>);

/// A TCP proxy the test can cut: while down it closes every connection and refuses new ones,
/// which is what a crashed or unreachable server looks like to fairuse.
pub struct CuttableProxy {
    pub port: u16,
    upstream: String,
    state: Arc<tokio::sync::Mutex<Option<ProxyRunning>>>,
}

impl CuttableProxy {
    pub async fn start(upstream: &str) -> CuttableProxy {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let p = CuttableProxy { port, upstream: upstream.to_owned(), state: Arc::new(tokio::sync::Mutex::new(None)) };
        p.up().await;
        p
    }

    pub async fn up(&self) {
        let mut state = self.state.lock().await;
        if state.is_some() {
            return;
        }
        let listener = loop {
            // The port may linger briefly after a cut; retry until it can be bound again.
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::new(Mutex::new(Vec::new()));
        let upstream = self.upstream.clone();
        let tracked = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        *state = Some((accept, conns));
    }

    pub async fn down(&self) {
        if let Some((accept, conns)) = self.state.lock().await.take() {
            accept.abort();
            let _ = accept.await;
            for c in conns.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }
}

/// A short random name for isolating a test's keys and schema.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}{:x}{:x}", std::process::id(), n & 0xffff_ffff)
}

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Fails with how to start them when the shared servers are not up.
pub fn require_servers() {
    for (port, what, how) in [
        (6379, "Redis", "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no"),
        (5432, "PostgreSQL", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"),
    ] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "{what} is not reachable on 127.0.0.1:{port}; start it with: {how}"
        );
    }
}

/// The environment of a replica in distributed mode, isolated by its own key prefix and schema.
pub fn distributed_env(redis_url: &str, database_url: &str, prefix: &str, schema: &str) -> Vec<(String, String)> {
    let mut env = default_env();
    env.push(("FAIRUSE_REDIS_URL".into(), redis_url.into()));
    env.push(("FAIRUSE_DATABASE_URL".into(), database_url.into()));
    env.push(("FAIRUSE__STORE__REDIS_PREFIX".into(), prefix.into()));
    env.push(("FAIRUSE__STORE__DATABASE_SCHEMA".into(), schema.into()));
    env.push(("FAIRUSE__STORE__MIGRATE_ON_START".into(), "true".into()));
    env
}
