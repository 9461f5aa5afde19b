//! User tokens (JWTs): HS256 with a shared secret for self-hosting, Firebase ID tokens verified
//! against Google's JWKS, or any OIDC provider's JWKS. The uid is always the token's `sub`.
//!
//! Algorithm choice is never the token's to make. We read the header's `alg` only to pick a path,
//! and each path accepts exactly one kind of key:
//! - `HS256` is verified with the configured secret, and only when one is configured;
//! - `RS256`/`ES256` are verified with a JWKS key of the matching type (RSA / P-256), selected by
//!   `kid`; symmetric keys in a JWKS are ignored;
//! - everything else, `none` first of all, is refused.
//!
//! So an HS256 token "signed" with an RSA public key never meets that key as an HMAC secret.
//!
//! Time claims are checked here against the caller's `now_unix`, not by jsonwebtoken (which reads
//! the system clock): `exp` is required, `nbf` and `iat` may not be in the future, each with
//! [`CLOCK_SKEW_LEEWAY_SECS`] of leeway for clocks that disagree a little.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::error::{AuthConfigError, AuthError};
use crate::jwks::JwksCache;

/// Where Firebase ID token signing keys are published.
pub const GOOGLE_SECURETOKEN_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
/// How far apart our clock and the issuer's may be before `exp`, `nbf` and `iat` fail.
pub const CLOCK_SKEW_LEEWAY_SECS: u64 = 60;
/// The default timeout for one JWKS fetch (connect and whole request).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Real tokens are a few KiB at most; a longer one is refused before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// HMAC-SHA256 secrets shorter than the hash output weaken it; we warn rather than refuse so
/// tests and demos still work.
const RECOMMENDED_HS256_SECRET_BYTES: usize = 32;
const MAX_UID_LEN: usize = 128;

pub(crate) const HS256_SECRET_VAR: &str = "FAIRUSE_JWT_HS256_SECRET";
pub(crate) const FIREBASE_PROJECT_VAR: &str = "FAIRUSE_FIREBASE_PROJECT_ID";
pub(crate) const OIDC_JWKS_URL_VAR: &str = "FAIRUSE_OIDC_JWKS_URL";
pub(crate) const OIDC_ISSUER_VAR: &str = "FAIRUSE_OIDC_ISSUER";
pub(crate) const OIDC_AUDIENCE_VAR: &str = "FAIRUSE_OIDC_AUDIENCE";

pub(crate) fn users_not_configured() -> AuthError {
    AuthError::NotConfigured(format!(
        "user tokens are not configured: set {HS256_SECRET_VAR}, {FIREBASE_PROJECT_VAR} or {OIDC_JWKS_URL_VAR}"
    ))
}

/// How user tokens are verified. Any combination of the three modes may be enabled at once.
#[derive(Clone)]
pub struct UserAuthConfig {
    /// `FAIRUSE_JWT_HS256_SECRET`: the raw bytes of this string are the HMAC key.
    pub hs256_secret: Option<String>,
    /// `FAIRUSE_FIREBASE_PROJECT_ID`: accept Firebase ID tokens of this project.
    pub firebase_project_id: Option<String>,
    /// `FAIRUSE_OIDC_JWKS_URL`: accept tokens signed by keys from this JWKS.
    pub oidc_jwks_url: Option<String>,
    /// `FAIRUSE_OIDC_ISSUER`: when set, OIDC tokens must carry exactly this `iss`.
    pub oidc_issuer: Option<String>,
    /// `FAIRUSE_OIDC_AUDIENCE`: when set, OIDC tokens must list this `aud`.
    pub oidc_audience: Option<String>,
    /// Google's JWKS for Firebase; only tests point it elsewhere.
    pub google_jwks_url: String,
    /// Timeout of each JWKS fetch.
    pub http_timeout: Duration,
}

impl Default for UserAuthConfig {
    fn default() -> Self {
        UserAuthConfig {
            hs256_secret: None,
            firebase_project_id: None,
            oidc_jwks_url: None,
            oidc_issuer: None,
            oidc_audience: None,
            google_jwks_url: GOOGLE_SECURETOKEN_JWKS_URL.to_owned(),
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        }
    }
}

impl UserAuthConfig {
    /// Reads the variables of SPEC section 7 from `env`. Blank values count as unset, so `VAR=`
    /// in a compose file disables a mode instead of configuring an empty secret.
    pub fn from_env_map<S: std::hash::BuildHasher>(env: &std::collections::HashMap<String, String, S>) -> Self {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
        UserAuthConfig {
            hs256_secret: get(HS256_SECRET_VAR),
            firebase_project_id: get(FIREBASE_PROJECT_VAR),
            oidc_jwks_url: get(OIDC_JWKS_URL_VAR),
            oidc_issuer: get(OIDC_ISSUER_VAR),
            oidc_audience: get(OIDC_AUDIENCE_VAR),
            ..UserAuthConfig::default()
        }
    }

    /// Whether at least one verification mode is set.
    pub fn is_configured(&self) -> bool {
        self.hs256_secret.is_some() || self.firebase_project_id.is_some() || self.oidc_jwks_url.is_some()
    }
}

impl fmt::Debug for UserAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAuthConfig")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("firebase_project_id", &self.firebase_project_id)
            .field("oidc_jwks_url", &self.oidc_jwks_url)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_audience", &self.oidc_audience)
            .field("google_jwks_url", &self.google_jwks_url)
            .field("http_timeout", &self.http_timeout)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProviderKind {
    Firebase,
    Oidc,
}

/// A JWKS-backed token issuer and the claim rules its tokens must satisfy.
struct JwksProvider {
    kind: ProviderKind,
    issuer: Option<String>,
    audience: Option<String>,
    jwks: JwksCache,
}

impl JwksProvider {
    fn rules(&self) -> ClaimRules<'_> {
        ClaimRules {
            issuer: self.issuer.as_deref(),
            audience: self.audience.as_deref(),
            firebase: self.kind == ProviderKind::Firebase,
        }
    }
}

/// Verifies user tokens and returns the uid (`sub`). Cheap to share behind an `Arc`; the JWKS
/// caches inside are shared by all callers.
pub struct UserTokenVerifier {
    /// Kept only as a jsonwebtoken key; the secret string itself is dropped after construction.
    hs256: Option<DecodingKey>,
    firebase: Option<JwksProvider>,
    oidc: Option<JwksProvider>,
}

impl fmt::Debug for UserTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let provider = |p: &Option<JwksProvider>| {
            p.as_ref().map(|p| format!("issuer={:?} audience={:?} jwks={}", p.issuer, p.audience, p.jwks.url()))
        };
        f.debug_struct("UserTokenVerifier")
            .field("hs256", &self.hs256.as_ref().map(|_| "<configured>"))
            .field("firebase", &provider(&self.firebase))
            .field("oidc", &provider(&self.oidc))
            .finish()
    }
}

fn check_http_url(var: &'static str, url: &str) -> Result<(), AuthConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| AuthConfigError::BadSetting { var, reason: format!("not a valid URL ({e})") })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            // Allowed for local providers and tests, but keys fetched in clear can be swapped.
            if !matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) {
                tracing::warn!(var, "jwks url uses plain http; keys could be tampered with in transit");
            }
            Ok(())
        }
        _ => Err(AuthConfigError::BadSetting { var, reason: "must be an http(s) URL".to_owned() }),
    }
}

fn valid_firebase_project_id(id: &str) -> bool {
    // Google project ids are lowercase letters, digits and hyphens; legacy ones may carry a
    // `domain:` prefix. Anything else would make a nonsense issuer string.
    !id.is_empty()
        && id.len() <= 100
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':'))
}

impl UserTokenVerifier {
    /// Validates the configuration and prepares the verifiers. With no mode configured the
    /// verifier is still built but refuses everything with `NotConfigured`.
    pub fn new(config: UserAuthConfig) -> Result<Self, AuthConfigError> {
        let hs256 = match config.hs256_secret.as_deref() {
            None => None,
            Some("") => {
                return Err(AuthConfigError::BadSetting { var: HS256_SECRET_VAR, reason: "is empty".to_owned() });
            }
            Some(secret) => {
                if secret.len() < RECOMMENDED_HS256_SECRET_BYTES {
                    tracing::warn!(
                        min_bytes = RECOMMENDED_HS256_SECRET_BYTES,
                        "the hs256 secret is short; use at least 32 random bytes"
                    );
                }
                Some(DecodingKey::from_secret(secret.as_bytes()))
            }
        };

        if config.oidc_jwks_url.is_none() {
            for (var, value) in [(OIDC_ISSUER_VAR, &config.oidc_issuer), (OIDC_AUDIENCE_VAR, &config.oidc_audience)] {
                if value.is_some() {
                    return Err(AuthConfigError::BadSetting {
                        var,
                        reason: format!("is set but {OIDC_JWKS_URL_VAR} is not"),
                    });
                }
            }
        }

        let needs_http = config.firebase_project_id.is_some() || config.oidc_jwks_url.is_some();
        let client = if needs_http {
            Some(
                reqwest::Client::builder()
                    .timeout(config.http_timeout)
                    .connect_timeout(config.http_timeout)
                    .user_agent(concat!("fairuse-auth/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| AuthConfigError::HttpClient(e.to_string()))?,
            )
        } else {
            None
        };

        let firebase = match (&config.firebase_project_id, &client) {
            (Some(project), Some(client)) => {
                if !valid_firebase_project_id(project) {
                    return Err(AuthConfigError::BadSetting {
                        var: FIREBASE_PROJECT_VAR,
                        reason: "must be a Google project id (lowercase letters, digits, hyphens)".to_owned(),
                    });
                }
                check_http_url("google_jwks_url", &config.google_jwks_url)?;
                Some(JwksProvider {
                    kind: ProviderKind::Firebase,
                    issuer: Some(format!("https://securetoken.google.com/{project}")),
                    audience: Some(project.clone()),
                    jwks: JwksCache::new(config.google_jwks_url.clone(), client.clone()),
                })
            }
            _ => None,
        };

        let oidc = match (&config.oidc_jwks_url, &client) {
            (Some(url), Some(client)) => {
                check_http_url(OIDC_JWKS_URL_VAR, url)?;
                if config.oidc_audience.is_none() {
                    tracing::warn!(
                        "no {OIDC_AUDIENCE_VAR} set: tokens the provider issued for other applications are accepted"
                    );
                }
                Some(JwksProvider {
                    kind: ProviderKind::Oidc,
                    issuer: config.oidc_issuer.clone(),
                    audience: config.oidc_audience.clone(),
                    jwks: JwksCache::new(url.clone(), client.clone()),
                })
            }
            _ => None,
        };

        Ok(UserTokenVerifier { hs256, firebase, oidc })
    }

    /// Whether at least one mode can verify tokens.
    pub fn is_configured(&self) -> bool {
        self.hs256.is_some() || self.firebase.is_some() || self.oidc.is_some()
    }

    /// Verifies `token` at time `now_unix` (seconds) and returns the uid (`sub`).
    ///
    /// `now_unix` also drives JWKS cache freshness and refetch rate limits, so one injected
    /// clock controls every time-dependent decision.
    pub async fn verify(&self, token: &str, now_unix: u64) -> Result<String, AuthError> {
        if !self.is_configured() {
            return Err(users_not_configured());
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::invalid("token too long"));
        }
        let segments = TokenSegments::split(token)?;
        let header = segments.header()?;

        match header.alg.as_str() {
            "HS256" => {
                let key = self.hs256.as_ref().ok_or_else(|| unsupported_algorithm(&header.alg))?;
                let claims = decode_verified(token, key, Algorithm::HS256)?;
                check_claims(&claims, &ClaimRules { issuer: None, audience: None, firebase: false }, now_unix)
            }
            "RS256" | "ES256" => {
                let alg = if header.alg == "RS256" { Algorithm::RS256 } else { Algorithm::ES256 };
                let provider = self.route(&segments).ok_or_else(|| unsupported_algorithm(&header.alg))?;
                let kid = header
                    .kid
                    .filter(|kid| !kid.is_empty())
                    .ok_or_else(|| AuthError::invalid("token has no key id"))?;
                let key = provider.jwks.key(&kid, now_unix).await?;
                if !key.allows(alg) {
                    return Err(AuthError::invalid(format!("algorithm {} is not allowed for this key", header.alg)));
                }
                let claims = decode_verified(token, &key.decoding, alg)?;
                check_claims(&claims, &provider.rules(), now_unix)
            }
            other => Err(unsupported_algorithm(other)),
        }
    }

    /// Picks the JWKS provider for a token. With both Firebase and OIDC configured, the (not yet
    /// verified) `iss` chooses; that is safe because the chosen provider then verifies the
    /// signature with its own keys and checks `iss` again.
    fn route(&self, segments: &TokenSegments<'_>) -> Option<&JwksProvider> {
        match (&self.firebase, &self.oidc) {
            (Some(firebase), Some(oidc)) => {
                let is_firebase = segments.unverified_issuer().as_deref() == firebase.issuer.as_deref();
                Some(if is_firebase { firebase } else { oidc })
            }
            (Some(only), None) | (None, Some(only)) => Some(only),
            (None, None) => None,
        }
    }
}

/// The message names the algorithm only when it looks like one, so an attacker cannot put
/// arbitrary text into our responses and logs.
fn unsupported_algorithm(alg: &str) -> AuthError {
    if alg.eq_ignore_ascii_case("none") {
        AuthError::invalid("unsupported algorithm none")
    } else if !alg.is_empty() && alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
        AuthError::invalid(format!("unsupported algorithm {alg}"))
    } else {
        AuthError::invalid("unsupported algorithm")
    }
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515: a recipient must refuse critical extensions it does not understand, and we
    /// understand none.
    #[serde(default)]
    crit: Option<Value>,
}

struct TokenSegments<'a> {
    header: &'a str,
    payload: &'a str,
}

impl<'a> TokenSegments<'a> {
    fn split(token: &'a str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(header), Some(payload), Some(_signature), None) => Ok(TokenSegments { header, payload }),
            _ => Err(AuthError::invalid("malformed token")),
        }
    }

    fn header(&self) -> Result<RawHeader, AuthError> {
        let bytes = URL_SAFE_NO_PAD.decode(self.header).map_err(|_| AuthError::invalid("malformed token header"))?;
        let header: RawHeader =
            serde_json::from_slice(&bytes).map_err(|_| AuthError::invalid("malformed token header"))?;
        if header.crit.is_some() {
            return Err(AuthError::invalid("unsupported critical header"));
        }
        Ok(header)
    }

    /// For routing only; never trusted for anything else.
    fn unverified_issuer(&self) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(self.payload).ok()?;
        let payload: Value = serde_json::from_slice(&bytes).ok()?;
        payload.get("iss")?.as_str().map(str::to_owned)
    }
}

/// Checks the signature (and that the header's alg is exactly `alg`) and returns the claims.
/// jsonwebtoken's own time, audience and required-claim checks are switched off because
/// `check_claims` does them against the injected clock.
fn decode_verified(token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Map<String, Value>, AuthError> {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map(|data| data.claims).map_err(|e| {
        AuthError::invalid(match e.kind() {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidKeyFormat => "invalid signature",
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => "algorithm not allowed for this key",
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                "malformed token"
            }
            _ => "invalid token",
        })
    })
}

struct ClaimRules<'a> {
    /// Exact `iss` required, when set.
    issuer: Option<&'a str>,
    /// `aud` must be (or, outside Firebase, contain) this, when set.
    audience: Option<&'a str>,
    /// Firebase's documented extra rules: `aud` is a single string, `iat` is required and
    /// `auth_time` may not be in the future.
    firebase: bool,
}

fn numeric_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    let Some(value) = claims.get(name) else { return Ok(None) };
    let seconds = match value.as_u64() {
        Some(seconds) => Some(seconds),
        // NumericDate may be fractional; whole seconds are plenty with a 60 s leeway.
        None => value.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64),
    };
    seconds.map(Some).ok_or_else(|| AuthError::invalid(format!("malformed {name} claim")))
}

fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_UID_LEN
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
}

fn check_claims(claims: &Map<String, Value>, rules: &ClaimRules<'_>, now: u64) -> Result<String, AuthError> {
    let exp = numeric_claim(claims, "exp")?.ok_or_else(|| AuthError::invalid("token has no expiry"))?;
    if now > exp.saturating_add(CLOCK_SKEW_LEEWAY_SECS) {
        return Err(AuthError::invalid("token expired"));
    }
    let not_after_now = now.saturating_add(CLOCK_SKEW_LEEWAY_SECS);
    if numeric_claim(claims, "nbf")?.is_some_and(|nbf| nbf > not_after_now) {
        return Err(AuthError::invalid("token not yet valid"));
    }
    let iat = numeric_claim(claims, "iat")?;
    if iat.is_some_and(|iat| iat > not_after_now) {
        return Err(AuthError::invalid("token issued in the future"));
    }
    if rules.firebase {
        if iat.is_none() {
            return Err(AuthError::invalid("token has no issued-at time"));
        }
        if numeric_claim(claims, "auth_time")?.is_some_and(|at| at > not_after_now) {
            return Err(AuthError::invalid("token authenticated in the future"));
        }
    }

    if let Some(expected) = rules.issuer {
        match claims.get("iss") {
            None => return Err(AuthError::invalid("token has no issuer")),
            Some(Value::String(iss)) if iss == expected => {}
            Some(_) => return Err(AuthError::invalid("wrong issuer")),
        }
    }
    if let Some(expected) = rules.audience {
        let matches = match claims.get("aud") {
            None => return Err(AuthError::invalid("token has no audience")),
            Some(Value::String(aud)) => aud == expected,
            Some(Value::Array(auds)) if !rules.firebase => auds.iter().any(|aud| aud.as_str() == Some(expected)),
            Some(_) => false,
        };
        if !matches {
            return Err(AuthError::invalid("wrong audience"));
        }
    }

    match claims.get("sub") {
        None => Err(AuthError::invalid("token has no subject")),
        Some(Value::String(sub)) if valid_uid(sub) => Ok(sub.clone()),
        Some(_) => Err(AuthError::invalid("token subject is not a valid uid (1-128 of A-Z a-z 0-9 _ . : @ -)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    const PLAIN: ClaimRules<'static> = ClaimRules { issuer: None, audience: None, firebase: false };

    #[test]
    fn expiry_allows_sixty_seconds_of_clock_skew_and_no_more() {
        let c = claims(json!({"sub": "u1", "exp": NOW - 60}));
        assert_eq!(check_claims(&c, &PLAIN, NOW), Ok("u1".to_owned()));
        let c = claims(json!({"sub": "u1", "exp": NOW - 61}));
        assert_eq!(check_claims(&c, &PLAIN, NOW), Err(AuthError::invalid("token expired")));
    }

    #[test]
    fn missing_or_malformed_expiry_is_refused() {
        let c = claims(json!({"sub": "u1"}));
        assert_eq!(check_claims(&c, &PLAIN, NOW), Err(AuthError::invalid("token has no expiry")));
        let c = claims(json!({"sub": "u1", "exp": "tomorrow"}));
        assert_eq!(check_claims(&c, &PLAIN, NOW), Err(AuthError::invalid("malformed exp claim")));
        let c = claims(json!({"sub": "u1", "exp": -5}));
        assert_eq!(check_claims(&c, &PLAIN, NOW), Err(AuthError::invalid("malformed exp claim")));
    }

    #[test]
    fn fractional_expiry_is_accepted() {
        let c = claims(json!({"sub": "u1", "exp": (NOW + 10) as f64 + 0.5}));
        assert!(check_claims(&c, &PLAIN, NOW).is_ok());
    }

    #[test]
    fn iat_in_the_future_beyond_leeway_is_refused() {
        let c = claims(json!({"sub": "u1", "exp": NOW + 3600, "iat": NOW + 60}));
        assert!(check_claims(&c, &PLAIN, NOW).is_ok());
        let c = claims(json!({"sub": "u1", "exp": NOW + 3600, "iat": NOW + 61}));
        assert_eq!(check_claims(&c, &PLAIN, NOW), Err(AuthError::invalid("token issued in the future")));
    }

    #[test]
    fn subject_must_satisfy_the_uid_rule() {
        for bad in [json!(""), json!("has space"), json!("x".repeat(129)), json!(42), json!("ü")] {
            let c = claims(json!({"sub": bad, "exp": NOW + 10}));
            let err = check_claims(&c, &PLAIN, NOW).expect_err("bad subject");
            assert!(err.to_string().contains("not a valid uid"), "{err}");
        }
        let c = claims(json!({"sub": "x".repeat(128), "exp": NOW + 10}));
        assert!(check_claims(&c, &PLAIN, NOW).is_ok());
        let c = claims(json!({"sub": "a-Z_0.9:x@y", "exp": NOW + 10}));
        assert_eq!(check_claims(&c, &PLAIN, NOW), Ok("a-Z_0.9:x@y".to_owned()));
    }

    #[test]
    fn firebase_audience_must_be_a_single_string_while_oidc_accepts_a_list() {
        let list = claims(json!({"sub": "u", "exp": NOW + 10, "iat": NOW, "aud": ["other", "proj"], "iss": "i"}));
        let oidc = ClaimRules { issuer: Some("i"), audience: Some("proj"), firebase: false };
        assert!(check_claims(&list, &oidc, NOW).is_ok());
        let firebase = ClaimRules { issuer: Some("i"), audience: Some("proj"), firebase: true };
        assert_eq!(check_claims(&list, &firebase, NOW), Err(AuthError::invalid("wrong audience")));
    }

    #[test]
    fn unsupported_algorithm_message_never_echoes_junk() {
        assert_eq!(unsupported_algorithm("NoNe").to_string(), "unsupported algorithm none");
        assert_eq!(unsupported_algorithm("PS256").to_string(), "unsupported algorithm PS256");
        assert_eq!(unsupported_algorithm("<script>").to_string(), "unsupported algorithm");
    }

    #[test]
    fn config_debug_redacts_the_hs256_secret() {
        let config = UserAuthConfig { hs256_secret: Some("hunter2-hunter2".into()), ..UserAuthConfig::default() };
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let verifier = UserTokenVerifier::new(config).expect("valid config");
        let debug = format!("{verifier:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<configured>"), "{debug}");
    }

    #[test]
    fn oidc_issuer_without_jwks_url_is_a_configuration_error() {
        let config = UserAuthConfig { oidc_issuer: Some("https://issuer".into()), ..UserAuthConfig::default() };
        let err = UserTokenVerifier::new(config).expect_err("issuer without url");
        assert!(err.to_string().contains("FAIRUSE_OIDC_ISSUER"), "{err}");
        assert!(err.to_string().contains("FAIRUSE_OIDC_JWKS_URL"), "{err}");
    }

    #[test]
    fn non_http_jwks_url_is_a_configuration_error() {
        let config = UserAuthConfig { oidc_jwks_url: Some("file:///etc/keys".into()), ..UserAuthConfig::default() };
        assert!(UserTokenVerifier::new(config).is_err());
    }
}
