//! User token verification end to end: HS256, OIDC and Firebase tokens against a local JWKS
//! server, the attacks we must refuse, and the JWKS cache policy (rotation, max-age, outages).

mod support;

use std::time::Duration;

use fairuse_auth::{AuthError, UserAuthConfig, UserTokenVerifier};
use serde_json::{Value, json};
use support::*;

const HS_SECRET: &[u8] = b"a-test-hs256-secret-of-32-bytes!!";

fn hs256_verifier() -> UserTokenVerifier {
    UserTokenVerifier::new(UserAuthConfig {
        hs256_secret: Some(String::from_utf8(HS_SECRET.to_vec()).expect("utf8")),
        ..UserAuthConfig::default()
    })
    .expect("hs256 config")
}

fn hs_claims(sub: &str) -> Value {
    json!({ "sub": sub, "iat": NOW - 5, "exp": NOW + 3600 })
}

fn invalid_reason(result: Result<String, AuthError>) -> String {
    match result {
        Err(AuthError::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

// ---------------------------------------------------------------- HS256

#[tokio::test]
async fn hs256_good_token_is_accepted_and_uid_is_sub() {
    let token = sign_hs256(HS_SECRET, None, &hs_claims("user-42"));
    assert_eq!(hs256_verifier().verify(&token, NOW).await, Ok("user-42".to_owned()));
}

#[tokio::test]
async fn hs256_token_with_forged_signature_is_refused() {
    let forged = sign_hs256(b"not-the-configured-secret-at-all!", None, &hs_claims("user-42"));
    assert_eq!(invalid_reason(hs256_verifier().verify(&forged, NOW).await), "invalid signature");

    // A valid signature over another payload does not carry over to a swapped payload.
    let genuine = sign_hs256(HS_SECRET, None, &hs_claims("user-42"));
    let other = sign_hs256(HS_SECRET, None, &hs_claims("admin"));
    let mut parts: Vec<&str> = genuine.split('.').collect();
    parts[1] = other.split('.').nth(1).expect("payload");
    assert_eq!(invalid_reason(hs256_verifier().verify(&parts.join("."), NOW).await), "invalid signature");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let token = sign_hs256(HS_SECRET, None, &json!({ "sub": "u", "iat": NOW - 7200, "exp": NOW - 3600 }));
    assert_eq!(invalid_reason(hs256_verifier().verify(&token, NOW).await), "token expired");
    // The same token was fine when it was issued: expiry is judged against the injected now.
    assert!(hs256_verifier().verify(&token, NOW - 7000).await.is_ok());
}

#[tokio::test]
async fn token_with_nbf_in_the_future_is_refused() {
    let token = sign_hs256(HS_SECRET, None, &json!({ "sub": "u", "nbf": NOW + 600, "exp": NOW + 3600 }));
    assert_eq!(invalid_reason(hs256_verifier().verify(&token, NOW).await), "token not yet valid");
    assert!(hs256_verifier().verify(&token, NOW + 600).await.is_ok());
}

#[tokio::test]
async fn token_issued_in_the_future_beyond_leeway_is_refused() {
    let token = sign_hs256(HS_SECRET, None, &json!({ "sub": "u", "iat": NOW + 120, "exp": NOW + 3600 }));
    assert_eq!(invalid_reason(hs256_verifier().verify(&token, NOW).await), "token issued in the future");
}

#[tokio::test]
async fn token_without_expiry_is_refused() {
    let token = sign_hs256(HS_SECRET, None, &json!({ "sub": "u" }));
    assert_eq!(invalid_reason(hs256_verifier().verify(&token, NOW).await), "token has no expiry");
}

#[tokio::test]
async fn alg_none_token_is_refused() {
    for alg in ["none", "None", "NONE"] {
        let token = raw_token(&json!({ "alg": alg, "typ": "JWT" }), &hs_claims("u"), "");
        assert_eq!(invalid_reason(hs256_verifier().verify(&token, NOW).await), "unsupported algorithm none");
    }
}

#[tokio::test]
async fn garbage_tokens_are_refused_as_malformed() {
    let verifier = hs256_verifier();
    for token in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!"] {
        let reason = invalid_reason(verifier.verify(token, NOW).await);
        assert!(reason.starts_with("malformed"), "{token:?}: {reason}");
    }
    let too_long = "a".repeat(20_000);
    assert_eq!(invalid_reason(verifier.verify(&too_long, NOW).await), "token too long");
}

#[tokio::test]
async fn rs256_token_is_refused_when_only_hs256_is_configured() {
    let key = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let token = key.sign(&hs_claims("u"));
    assert_eq!(invalid_reason(hs256_verifier().verify(&token, NOW).await), "unsupported algorithm RS256");
}

#[tokio::test]
async fn hs384_token_is_refused_even_with_the_right_secret() {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384);
    header.kid = None;
    let token = jsonwebtoken::encode(&header, &hs_claims("u"), &jsonwebtoken::EncodingKey::from_secret(HS_SECRET))
        .expect("sign");
    assert_eq!(invalid_reason(hs256_verifier().verify(&token, NOW).await), "unsupported algorithm HS384");
}

// ---------------------------------------------------------------- algorithm confusion

#[tokio::test]
async fn hs256_token_signed_with_the_rsa_public_key_is_refused_by_a_jwks_verifier() {
    let key = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    // The classic attack: HMAC "signed" with the public key, hoping the verifier uses the PEM as a secret.
    let forged = sign_hs256(RSA_A_PUBLIC, Some("rsa-a"), &oidc_claims("attacker"));

    let verifier = oidc_verifier(&server.url);
    assert_eq!(invalid_reason(verifier.verify(&forged, NOW).await), "unsupported algorithm HS256");

    // Also with an HS256 secret configured next to the JWKS: the public key is never that secret.
    let both = UserTokenVerifier::new(UserAuthConfig {
        hs256_secret: Some("the-real-hs256-secret-0123456789".into()),
        oidc_jwks_url: Some(server.url.clone()),
        ..UserAuthConfig::default()
    })
    .expect("config");
    assert_eq!(invalid_reason(both.verify(&forged, NOW).await), "invalid signature");
    // The forged token never caused a key fetch: it was refused on its algorithm alone.
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn token_whose_algorithm_does_not_match_its_key_is_refused() {
    let rsa = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let ec = SigningKey::ec("ec-1", EC_P256_PRIVATE);
    let server = JwksServer::start(vec![rsa.jwk(), ec.jwk()], None).await;
    // ES256 header naming the RSA key.
    let token = ec.sign_as_kid("rsa-a", &oidc_claims("u"));
    assert_eq!(
        invalid_reason(oidc_verifier(&server.url).verify(&token, NOW).await),
        "algorithm ES256 is not allowed for this key"
    );
}

// ---------------------------------------------------------------- OIDC via JWKS

#[tokio::test]
async fn rs256_token_is_verified_against_a_local_jwks() {
    let key = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let token = key.sign(&oidc_claims("oidc-user"));
    assert_eq!(oidc_verifier(&server.url).verify(&token, NOW).await, Ok("oidc-user".to_owned()));
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn es256_token_is_verified_against_a_local_jwks() {
    let key = SigningKey::ec("ec-1", EC_P256_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let token = key.sign(&oidc_claims("ec-user"));
    assert_eq!(oidc_verifier(&server.url).verify(&token, NOW).await, Ok("ec-user".to_owned()));
}

#[tokio::test]
async fn rs256_token_signed_by_an_unpublished_key_is_refused() {
    let published = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let attacker = SigningKey::rsa("rsa-a", RSA_B_PRIVATE);
    let server = JwksServer::start(vec![published.jwk()], None).await;
    let token = attacker.sign(&oidc_claims("u"));
    assert_eq!(invalid_reason(oidc_verifier(&server.url).verify(&token, NOW).await), "invalid signature");
}

#[tokio::test]
async fn oidc_token_with_wrong_audience_or_issuer_is_refused() {
    let key = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let verifier = oidc_verifier(&server.url);

    let mut wrong_aud = oidc_claims("u");
    wrong_aud["aud"] = json!("another-app");
    assert_eq!(invalid_reason(verifier.verify(&key.sign(&wrong_aud), NOW).await), "wrong audience");

    let mut aud_list = oidc_claims("u");
    aud_list["aud"] = json!(["another-app", OIDC_AUDIENCE]);
    assert_eq!(verifier.verify(&key.sign(&aud_list), NOW).await, Ok("u".to_owned()));

    let mut wrong_iss = oidc_claims("u");
    wrong_iss["iss"] = json!("https://evil.example.test");
    assert_eq!(invalid_reason(verifier.verify(&key.sign(&wrong_iss), NOW).await), "wrong issuer");
}

#[tokio::test]
async fn oidc_without_issuer_or_audience_configured_checks_only_signature_and_time() {
    let key = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let verifier =
        UserTokenVerifier::new(UserAuthConfig { oidc_jwks_url: Some(server.url.clone()), ..UserAuthConfig::default() })
            .expect("config");
    let token = key.sign(&json!({ "iss": "anyone", "aud": "anything", "sub": "u", "exp": NOW + 60 }));
    assert_eq!(verifier.verify(&token, NOW).await, Ok("u".to_owned()));
    let expired = key.sign(&json!({ "sub": "u", "exp": NOW - 3600 }));
    assert_eq!(invalid_reason(verifier.verify(&expired, NOW).await), "token expired");
}

#[tokio::test]
async fn jwks_token_without_kid_is_refused() {
    let key = SigningKey::rsa("rsa-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    let token = jsonwebtoken::encode(
        &header,
        &oidc_claims("u"),
        &jsonwebtoken::EncodingKey::from_rsa_pem(RSA_A_PRIVATE).expect("pem"),
    )
    .expect("sign");
    assert_eq!(invalid_reason(oidc_verifier(&server.url).verify(&token, NOW).await), "token has no key id");
}

// ---------------------------------------------------------------- Firebase

#[tokio::test]
async fn firebase_token_of_the_project_is_accepted_and_uid_is_sub() {
    let key = SigningKey::rsa("google-1", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], Some("public, max-age=21600, must-revalidate")).await;
    let token = key.sign(&firebase_claims("fbUid123"));
    assert_eq!(firebase_verifier(&server.url).verify(&token, NOW).await, Ok("fbUid123".to_owned()));
}

#[tokio::test]
async fn firebase_token_with_wrong_audience_is_refused() {
    let key = SigningKey::rsa("google-1", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let mut claims = firebase_claims("u");
    claims["aud"] = json!("someone-elses-project");
    assert_eq!(invalid_reason(firebase_verifier(&server.url).verify(&key.sign(&claims), NOW).await), "wrong audience");
}

#[tokio::test]
async fn firebase_token_with_wrong_issuer_is_refused() {
    let key = SigningKey::rsa("google-1", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let verifier = firebase_verifier(&server.url);
    for iss in ["https://securetoken.google.com/someone-elses-project", "https://securetoken.google.com/demo-fairuse/"]
    {
        let mut claims = firebase_claims("u");
        claims["iss"] = json!(iss);
        assert_eq!(invalid_reason(verifier.verify(&key.sign(&claims), NOW).await), "wrong issuer", "{iss}");
    }
    let mut claims = firebase_claims("u");
    claims.as_object_mut().expect("object").remove("iss");
    assert_eq!(invalid_reason(verifier.verify(&key.sign(&claims), NOW).await), "token has no issuer");
}

#[tokio::test]
async fn firebase_token_whose_subject_is_not_a_valid_uid_is_refused() {
    let key = SigningKey::rsa("google-1", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let verifier = firebase_verifier(&server.url);
    for sub in [String::new(), "x".repeat(129), "has space".to_owned(), "slash/uid".to_owned()] {
        let reason = invalid_reason(verifier.verify(&key.sign(&firebase_claims(&sub)), NOW).await);
        assert!(reason.contains("not a valid uid"), "{sub:?}: {reason}");
    }
    let longest = "u".repeat(128);
    assert_eq!(verifier.verify(&key.sign(&firebase_claims(&longest)), NOW).await, Ok(longest));
}

#[tokio::test]
async fn firebase_and_oidc_together_route_tokens_by_issuer() {
    let google = SigningKey::rsa("google-1", RSA_A_PRIVATE);
    let provider = SigningKey::rsa("idp-1", RSA_B_PRIVATE);
    let google_server = JwksServer::start(vec![google.jwk()], None).await;
    let idp_server = JwksServer::start(vec![provider.jwk()], None).await;
    let verifier = UserTokenVerifier::new(UserAuthConfig {
        firebase_project_id: Some(PROJECT.into()),
        google_jwks_url: google_server.url.clone(),
        oidc_jwks_url: Some(idp_server.url.clone()),
        oidc_issuer: Some(OIDC_ISSUER.into()),
        oidc_audience: Some(OIDC_AUDIENCE.into()),
        ..UserAuthConfig::default()
    })
    .expect("config");

    assert_eq!(verifier.verify(&google.sign(&firebase_claims("fb")), NOW).await, Ok("fb".to_owned()));
    assert_eq!(verifier.verify(&provider.sign(&oidc_claims("oidc")), NOW).await, Ok("oidc".to_owned()));
    // An OIDC-provider key cannot vouch for a Firebase-issued token: it is checked with Google's keys.
    let cross = provider.sign_as_kid("google-1", &firebase_claims("fb"));
    assert_eq!(invalid_reason(verifier.verify(&cross, NOW).await), "invalid signature");
}

// ---------------------------------------------------------------- JWKS cache policy

#[tokio::test]
async fn rotated_key_is_accepted_after_one_refetch() {
    let old = SigningKey::rsa("key-old", RSA_A_PRIVATE);
    let new = SigningKey::rsa("key-new", RSA_B_PRIVATE);
    let server = JwksServer::start(vec![old.jwk()], Some("max-age=3600")).await;
    let verifier = firebase_verifier(&server.url);

    assert!(verifier.verify(&old.sign(&firebase_claims("u")), NOW).await.is_ok());
    assert_eq!(server.fetches(), 1);

    server.set_keys(vec![old.jwk(), new.jwk()]);
    let later = NOW + 31; // past the refetch rate limit, well within max-age
    assert_eq!(verifier.verify(&new.sign(&firebase_claims("u")), later).await, Ok("u".to_owned()));
    assert_eq!(server.fetches(), 2, "the unknown kid caused exactly one refetch");

    // Both keys now come from the cache.
    assert!(verifier.verify(&old.sign(&firebase_claims("u")), later).await.is_ok());
    assert!(verifier.verify(&new.sign(&firebase_claims("u")), later + 1).await.is_ok());
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn unknown_kids_trigger_at_most_one_refetch_per_interval() {
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], Some("max-age=3600")).await;
    let verifier = firebase_verifier(&server.url);
    assert!(verifier.verify(&key.sign(&firebase_claims("u")), NOW).await.is_ok());
    assert_eq!(server.fetches(), 1);

    let unknown = key.sign_as_kid("made-up", &firebase_claims("u"));
    // Right after a fetch: refused from the cache, no refetch.
    assert_eq!(invalid_reason(verifier.verify(&unknown, NOW + 5).await), "unknown signing key");
    assert_eq!(server.fetches(), 1);
    // Past the interval: one refetch, then rate-limited again however many tokens arrive.
    for offset in [40, 41, 50, 60] {
        assert_eq!(invalid_reason(verifier.verify(&unknown, NOW + offset).await), "unknown signing key");
    }
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn keys_are_cached_for_max_age() {
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], Some("public, max-age=600")).await;
    let verifier = firebase_verifier(&server.url);
    let token = key.sign(&firebase_claims("u"));

    assert!(verifier.verify(&token, NOW).await.is_ok());
    assert!(verifier.verify(&token, NOW + 599).await.is_ok());
    assert_eq!(server.fetches(), 1, "two verifications within max-age, one fetch");

    assert!(verifier.verify(&token, NOW + 600).await.is_ok());
    assert_eq!(server.fetches(), 2, "max-age elapsed, keys refreshed");
}

#[tokio::test]
async fn keys_without_cache_control_are_cached_for_one_hour() {
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let verifier = oidc_verifier(&server.url);
    let claims = json!({ "iss": OIDC_ISSUER, "aud": OIDC_AUDIENCE, "sub": "u", "exp": NOW + 7200 });
    let token = key.sign(&claims);

    assert!(verifier.verify(&token, NOW).await.is_ok());
    assert!(verifier.verify(&token, NOW + 3599).await.is_ok());
    assert_eq!(server.fetches(), 1);
    assert!(verifier.verify(&token, NOW + 3600).await.is_ok());
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn concurrent_first_verifications_share_one_fetch() {
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    let verifier = firebase_verifier(&server.url);
    let token = key.sign(&firebase_claims("u"));
    // Eight verifications polled together on one runtime: all miss the empty cache at once.
    let v = || verifier.verify(&token, NOW);
    let (a, b, c, d, e, f, g, h) = tokio::join!(v(), v(), v(), v(), v(), v(), v(), v());
    for result in [a, b, c, d, e, f, g, h] {
        assert_eq!(result, Ok("u".to_owned()));
    }
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn jwks_server_down_with_nothing_cached_is_unavailable() {
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let verifier = firebase_verifier(&dead_url().await);
    let err = verifier.verify(&key.sign(&firebase_claims("u")), NOW).await.expect_err("no keys");
    assert!(matches!(err, AuthError::Unavailable(_)), "{err:?}");
    assert_eq!(err.status(), 503);
    assert_eq!(err.code(), "auth_unavailable");
}

#[tokio::test]
async fn jwks_error_status_with_nothing_cached_is_unavailable() {
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], None).await;
    server.set_failing(true);
    let err = oidc_verifier(&server.url).verify(&key.sign(&oidc_claims("u")), NOW).await.expect_err("no keys");
    assert_eq!(err, AuthError::Unavailable("signing keys are unavailable: jwks endpoint answered HTTP 500".into()));
}

#[tokio::test]
async fn failed_refresh_keeps_using_cached_keys() {
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let server = JwksServer::start(vec![key.jwk()], Some("max-age=600")).await;
    let verifier = firebase_verifier(&server.url);
    let mut claims = firebase_claims("u");
    claims["exp"] = json!(NOW + 86_400);
    let token = key.sign(&claims);
    assert!(verifier.verify(&token, NOW).await.is_ok());

    server.set_failing(true);
    // Stale and the refresh fails: the cached key still verifies.
    assert_eq!(verifier.verify(&token, NOW + 700).await, Ok("u".to_owned()));
    assert_eq!(server.fetches(), 2);
    // And a failed refresh is not retried on every request.
    assert!(verifier.verify(&token, NOW + 710).await.is_ok());
    assert_eq!(server.fetches(), 2);

    server.set_failing(false);
    assert!(verifier.verify(&token, NOW + 740).await.is_ok());
    assert_eq!(server.fetches(), 3, "retried after the interval and recovered");
}

#[tokio::test]
async fn jwks_fetch_times_out() {
    let (url, _silent) = silent_url().await;
    let verifier = UserTokenVerifier::new(UserAuthConfig {
        oidc_jwks_url: Some(url),
        http_timeout: Duration::from_millis(200),
        ..UserAuthConfig::default()
    })
    .expect("config");
    let key = SigningKey::rsa("key-a", RSA_A_PRIVATE);
    let started = std::time::Instant::now();
    let err = verifier.verify(&key.sign(&oidc_claims("u")), NOW).await.expect_err("timeout");
    assert_eq!(err, AuthError::Unavailable("signing keys are unavailable: jwks request failed: timed out".into()));
    // Generous bound: this guards against "no timeout at all", not against slowness.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn verification_future_is_send_so_axum_handlers_can_await_it() {
    fn assert_send<T: Send>(_: &T) {}
    let verifier = hs256_verifier();
    let future = verifier.verify("x", NOW);
    assert_send(&future);
}
