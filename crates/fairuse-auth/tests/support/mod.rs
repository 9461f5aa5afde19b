//! Test support: signing keys from `tests/fixtures` and a local JWKS server on 127.0.0.1:0
//! standing in for Google's and an OIDC provider's key endpoints.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fairuse_auth::{UserAuthConfig, UserTokenVerifier};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A fixed "now" (2027-01-15) so tests never depend on the wall clock.
pub const NOW: u64 = 1_800_000_000;
pub const PROJECT: &str = "demo-fairuse";
pub const FIREBASE_ISSUER: &str = "https://securetoken.google.com/demo-fairuse";
pub const OIDC_ISSUER: &str = "https://id.example.test";
pub const OIDC_AUDIENCE: &str = "fairuse-api";

pub const RSA_A_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa_a_private.pem");
pub const RSA_A_PUBLIC: &[u8] = include_bytes!("../fixtures/rsa_a_public.pem");
pub const RSA_B_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa_b_private.pem");
pub const EC_P256_PRIVATE: &[u8] = include_bytes!("../fixtures/ec_p256_private.pem");

/// A private key that signs test tokens, with the public JWK a provider would publish for it.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
}

impl SigningKey {
    pub fn rsa(kid: &str, pem: &[u8]) -> Self {
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem).expect("rsa pem"),
        }
    }

    pub fn ec(kid: &str, pem: &[u8]) -> Self {
        SigningKey { kid: kid.into(), alg: Algorithm::ES256, encoding: EncodingKey::from_ec_pem(pem).expect("ec pem") }
    }

    /// The public JWK, as Google publishes it: `kid`, `alg`, `use: sig`, and the public numbers.
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("public jwk");
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(jwk).expect("jwk json")
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as_kid(&self.kid, claims)
    }

    /// Signs with this key but names another `kid` (an unpublished key, or someone else's).
    pub fn sign_as_kid(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

pub fn sign_hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign hs256")
}

/// Builds a token by hand: any header, any payload, any signature segment.
pub fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    format!("{}.{}.{}", enc(header), enc(claims), signature)
}

pub fn firebase_claims(sub: &str) -> Value {
    json!({
        "iss": FIREBASE_ISSUER,
        "aud": PROJECT,
        "sub": sub,
        "user_id": sub,
        "iat": NOW - 10,
        "auth_time": NOW - 10,
        "exp": NOW + 3600,
    })
}

pub fn oidc_claims(sub: &str) -> Value {
    json!({ "iss": OIDC_ISSUER, "aud": OIDC_AUDIENCE, "sub": sub, "iat": NOW - 10, "exp": NOW + 3600 })
}

struct ServerState {
    keys: Mutex<Vec<Value>>,
    cache_control: Mutex<Option<String>>,
    failing: AtomicBool,
    fetches: AtomicUsize,
}

/// A JWKS endpoint that counts its fetches and can rotate keys or fail on demand.
pub struct JwksServer {
    pub url: String,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve_jwks(State(state): State<Arc<ServerState>>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let keys = state.keys.lock().expect("keys lock").clone();
    let mut response = axum::Json(json!({ "keys": keys })).into_response();
    if let Some(cache_control) = state.cache_control.lock().expect("cache-control lock").as_deref() {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_str(cache_control).expect("header"));
    }
    response
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>, cache_control: Option<&str>) -> Self {
        let state = Arc::new(ServerState {
            keys: Mutex::new(keys),
            cache_control: Mutex::new(cache_control.map(str::to_owned)),
            failing: AtomicBool::new(false),
            fetches: AtomicUsize::new(0),
        });
        let app = Router::new().route("/jwks", get(serve_jwks)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        JwksServer { url, state, task }
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().expect("keys lock") = keys;
    }

    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A URL where nothing listens: bind a port, then free it.
pub async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/jwks")
}

/// A server that accepts connections and never answers, to exercise the fetch timeout.
pub async fn silent_url() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}/jwks"), task)
}

pub fn firebase_verifier(jwks_url: &str) -> UserTokenVerifier {
    UserTokenVerifier::new(UserAuthConfig {
        firebase_project_id: Some(PROJECT.into()),
        google_jwks_url: jwks_url.into(),
        http_timeout: Duration::from_secs(5),
        ..UserAuthConfig::default()
    })
    .expect("firebase config")
}

pub fn oidc_verifier(jwks_url: &str) -> UserTokenVerifier {
    UserTokenVerifier::new(UserAuthConfig {
        oidc_jwks_url: Some(jwks_url.into()),
        oidc_issuer: Some(OIDC_ISSUER.into()),
        oidc_audience: Some(OIDC_AUDIENCE.into()),
        http_timeout: Duration::from_secs(5),
        ..UserAuthConfig::default()
    })
    .expect("oidc config")
}
