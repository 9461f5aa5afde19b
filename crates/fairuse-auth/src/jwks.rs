//! A cached JSON Web Key Set fetched over HTTP (Google's securetoken keys, or any OIDC provider).
//!
//! Policy, in one place:
//! - keys are cached for the response's `Cache-Control: max-age` (1 h when absent), clamped to
//!   [`MIN_CACHE_SECS`, `MAX_CACHE_SECS`] so a `max-age=0` provider cannot make us fetch per request;
//! - a token whose `kid` is not in a fresh cache triggers one refetch, at most once per
//!   [`MIN_REFETCH_INTERVAL_SECS`], which picks up rotated keys without letting a stream of
//!   made-up `kid`s hammer the provider;
//! - a failed fetch keeps the last good key set (stale keys beat refusing every user during a
//!   provider blip); with nothing cached it is `Unavailable` (503), retried at most every
//!   [`RETRY_WITHOUT_CACHE_SECS`];
//! - concurrent misses share one fetch (single flight), and every fetch has a timeout (set on the
//!   client) and a body size limit.
//!
//! Time is the caller's `now_unix`, the same clock that validates tokens, so freshness and rate
//! limits are testable without sleeping.
//!
//! Only asymmetric signing keys are kept (RSA for RS256, P-256 for ES256): a symmetric `oct` key
//! in a JWKS is ignored, which closes one road to algorithm confusion.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::header::CACHE_CONTROL;

use crate::error::AuthError;

pub(crate) const DEFAULT_CACHE_SECS: u64 = 3600;
pub(crate) const MIN_CACHE_SECS: u64 = 60;
pub(crate) const MAX_CACHE_SECS: u64 = 24 * 3600;
pub(crate) const MIN_REFETCH_INTERVAL_SECS: u64 = 30;
pub(crate) const RETRY_WITHOUT_CACHE_SECS: u64 = 5;
/// Real key sets are a few KiB; anything far larger is not a key set we want to parse.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The key types we can verify with, each tied to exactly one algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
}

/// One usable verification key from the set.
pub(crate) struct JwksKey {
    pub(crate) decoding: DecodingKey,
    kind: KeyKind,
    /// The key's own `alg`, when the provider pins one.
    pinned_alg: Option<Algorithm>,
}

impl JwksKey {
    /// Whether a token signed with `alg` may be verified with this key: the algorithm must match
    /// the key type, and the key's pinned `alg` when it has one.
    pub(crate) fn allows(&self, alg: Algorithm) -> bool {
        let kind_ok =
            matches!((self.kind, alg), (KeyKind::Rsa, Algorithm::RS256) | (KeyKind::EcP256, Algorithm::ES256));
        kind_ok && self.pinned_alg.is_none_or(|pinned| pinned == alg)
    }

    fn from_jwk(jwk: &Jwk) -> Option<JwksKey> {
        if let Some(key_use) = &jwk.common.public_key_use
            && *key_use != PublicKeyUse::Signature
        {
            return None;
        }
        // A pinned alg we do not know (e.g. RSA-OAEP, an encryption key) disqualifies the key.
        let pinned_alg = match jwk.common.key_algorithm {
            Some(alg) => Some(Algorithm::try_from(alg).ok()?),
            None => None,
        };
        let (kind, decoding) = match &jwk.algorithm {
            AlgorithmParameters::RSA(params) => {
                (KeyKind::Rsa, DecodingKey::from_rsa_components(&params.n, &params.e).ok()?)
            }
            AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
                (KeyKind::EcP256, DecodingKey::from_ec_components(&params.x, &params.y).ok()?)
            }
            _ => return None,
        };
        Some(JwksKey { decoding, kind, pinned_alg })
    }
}

struct KeySet {
    by_kid: HashMap<String, Arc<JwksKey>>,
}

#[derive(Default)]
struct CacheState {
    /// The last key set fetched successfully, kept even when stale.
    keys: Option<Arc<KeySet>>,
    /// When `keys` stops being fresh (unix seconds).
    fresh_until: u64,
    /// When the last fetch was attempted, successful or not.
    last_attempt: Option<u64>,
    /// Bumped on every attempt; lets a task that waited for the fetch lock see that another task
    /// already fetched on its behalf.
    generation: u64,
    /// Why the last attempt failed, for the 503 message and logs.
    last_error: Option<String>,
}

pub(crate) struct JwksCache {
    url: String,
    client: reqwest::Client,
    state: RwLock<CacheState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

enum Lookup {
    Found(Arc<JwksKey>),
    /// Fetching is allowed now (nothing cached, stale, or unknown kid past the rate limit).
    ShouldFetch {
        generation: u64,
    },
    /// Fetching is rate-limited; answer from what we have.
    Settled,
}

impl JwksCache {
    pub(crate) fn new(url: String, client: reqwest::Client) -> Self {
        JwksCache { url, client, state: RwLock::new(CacheState::default()), fetch_lock: tokio::sync::Mutex::new(()) }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The key for `kid`, fetching or refetching the set when the policy above allows.
    pub(crate) async fn key(&self, kid: &str, now: u64) -> Result<Arc<JwksKey>, AuthError> {
        match self.lookup(kid, now) {
            Lookup::Found(key) => return Ok(key),
            Lookup::ShouldFetch { generation } => {
                let _single_flight = self.fetch_lock.lock().await;
                // Whoever held the lock before us may have fetched already; one fetch serves all.
                if self.read_state(|state| state.generation) == generation {
                    self.fetch_and_store(now).await;
                }
            }
            Lookup::Settled => {}
        }
        self.answer(kid)
    }

    fn read_state<T>(&self, f: impl FnOnce(&CacheState) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain data; the data
        // is still a consistent snapshot (each field is written whole), so keep serving.
        let guard = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }

    fn lookup(&self, kid: &str, now: u64) -> Lookup {
        self.read_state(|state| {
            let since_attempt = state.last_attempt.map(|at| now.saturating_sub(at));
            match &state.keys {
                None => {
                    if since_attempt.is_none_or(|elapsed| elapsed >= RETRY_WITHOUT_CACHE_SECS) {
                        Lookup::ShouldFetch { generation: state.generation }
                    } else {
                        Lookup::Settled
                    }
                }
                Some(keys) => {
                    let fresh = now < state.fresh_until;
                    match keys.by_kid.get(kid) {
                        Some(key) if fresh => Lookup::Found(Arc::clone(key)),
                        // Stale or unknown kid: refetch, unless we tried very recently.
                        _ if since_attempt.is_none_or(|elapsed| elapsed >= MIN_REFETCH_INTERVAL_SECS) => {
                            Lookup::ShouldFetch { generation: state.generation }
                        }
                        _ => Lookup::Settled,
                    }
                }
            }
        })
    }

    fn answer(&self, kid: &str) -> Result<Arc<JwksKey>, AuthError> {
        self.read_state(|state| match &state.keys {
            Some(keys) => keys.by_kid.get(kid).cloned().ok_or_else(|| AuthError::invalid("unknown signing key")),
            None => Err(AuthError::Unavailable(match &state.last_error {
                Some(error) => format!("signing keys are unavailable: {error}"),
                None => "signing keys are unavailable".to_owned(),
            })),
        })
    }

    async fn fetch_and_store(&self, now: u64) {
        let outcome = self.fetch().await;
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.last_attempt = Some(now);
        state.generation = state.generation.wrapping_add(1);
        match outcome {
            Ok((keys, max_age)) => {
                tracing::debug!(url = %self.url, keys = keys.by_kid.len(), max_age, "fetched jwks");
                state.keys = Some(Arc::new(keys));
                state.fresh_until = now.saturating_add(max_age);
                state.last_error = None;
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, have_cached_keys = state.keys.is_some(), "jwks fetch failed");
                state.last_error = Some(error);
            }
        }
    }

    /// One HTTP fetch. The error string is safe to show callers: it names what went wrong, not
    /// internals of the provider's answer.
    async fn fetch(&self) -> Result<(KeySet, u64), String> {
        let mut response = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| describe_reqwest_error("jwks request failed", e))?;
        if !response.status().is_success() {
            return Err(format!("jwks endpoint answered HTTP {}", response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(parse_max_age)
            .unwrap_or(DEFAULT_CACHE_SECS)
            .clamp(MIN_CACHE_SECS, MAX_CACHE_SECS);
        if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
            return Err("jwks response is too large".to_owned());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe_reqwest_error("jwks read failed", e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("jwks response is too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_key_set(&body)?;
        Ok((keys, max_age))
    }
}

/// The URL is stripped because this text reaches callers in 503 bodies; logs carry it separately.
fn describe_reqwest_error(what: &str, error: reqwest::Error) -> String {
    if error.is_timeout() {
        format!("{what}: timed out")
    } else if error.is_connect() {
        format!("{what}: could not connect")
    } else {
        format!("{what}: {}", error.without_url())
    }
}

/// Keeps every entry with a `kid` that is a usable signing key; skips the rest instead of failing,
/// because providers publish keys of other types and uses alongside ours.
fn parse_key_set(body: &[u8]) -> Result<KeySet, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).map_err(|_| "jwks response is not a JSON key set".to_owned())?;
    let by_kid: HashMap<String, Arc<JwksKey>> = raw
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone().filter(|kid| !kid.is_empty())?;
            JwksKey::from_jwk(&jwk).map(|key| (kid, Arc::new(key)))
        })
        .collect();
    if by_kid.is_empty() {
        return Err("jwks response has no usable signing keys".to_owned());
    }
    Ok(KeySet { by_kid })
}

/// The `max-age` directive of one `Cache-Control` header value. `no-cache`/`no-store` count as 0
/// (then clamped up to the minimum).
fn parse_max_age(header: &str) -> Option<u64> {
    header.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(0);
        }
        let value = lower.strip_prefix("max-age")?.trim_start().strip_prefix('=')?;
        value.trim().trim_matches('"').parse::<u64>().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_among_other_directives() {
        assert_eq!(parse_max_age("public, max-age=19984, must-revalidate, no-transform"), Some(19984));
        assert_eq!(parse_max_age("Max-Age = 60"), Some(60));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=soon"), None);
    }

    #[test]
    fn symmetric_and_encryption_keys_in_a_jwks_are_ignored() {
        let body = br#"{"keys":[
            {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"oaep","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"}
        ]}"#;
        assert!(parse_key_set(body).is_err());
    }

    #[test]
    fn rsa_key_allows_only_rs256() {
        let body = br#"{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}"#;
        let set = parse_key_set(body).expect("one rsa key");
        let key = set.by_kid.get("r").expect("kid r");
        assert!(key.allows(Algorithm::RS256));
        assert!(!key.allows(Algorithm::HS256));
        assert!(!key.allows(Algorithm::ES256));
        assert!(!key.allows(Algorithm::PS256));
    }

    #[test]
    fn a_key_pinned_to_another_algorithm_refuses_rs256() {
        let body = br#"{"keys":[{"kty":"RSA","kid":"r","alg":"RS512","n":"AQAB","e":"AQAB"}]}"#;
        let set = parse_key_set(body).expect("one rsa key");
        assert!(!set.by_kid.get("r").expect("kid r").allows(Algorithm::RS256));
    }
}
