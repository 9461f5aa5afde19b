//! The `Authenticator` as the server uses it: configured from environment variables, fed raw
//! header values, answering identities or errors that carry their HTTP status.

use std::collections::HashMap;

use fairuse_auth::{AdminIdentity, AuthConfigError, AuthError, Authenticator, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

const NOW: u64 = 1_800_000_000;
const HS_SECRET: &str = "authenticator-test-secret-32-bytes";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn hs256_token(sub: &str) -> String {
    let claims = json!({ "sub": sub, "iat": NOW, "exp": NOW + 600 });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(HS_SECRET.as_bytes()))
        .expect("sign")
}

fn full_env() -> HashMap<String, String> {
    let hashed = format!("sha256:{}", hex::encode(Sha256::digest(b"hashed-service-key-0002")));
    env(&[
        ("FAIRUSE_SERVICE_KEYS", &format!("plain-service-key-00001,{hashed}")),
        ("FAIRUSE_ADMIN_KEYS", "viv:viewer:viewer-admin-key-0001,otto:operator:operator-admin-key-01"),
        ("FAIRUSE_JWT_HS256_SECRET", HS_SECRET),
    ])
}

#[tokio::test]
async fn not_configured_modes_answer_503_naming_the_variables() {
    let auth = Authenticator::from_env_map(&HashMap::new()).expect("empty config is valid");

    let service = auth.service(Some("Bearer anything")).expect_err("not configured");
    assert_eq!(service, AuthError::NotConfigured("service routes are not configured: set FAIRUSE_SERVICE_KEYS".into()));

    let admin = auth.admin(Some("anything")).expect_err("not configured");
    assert!(admin.to_string().contains("FAIRUSE_ADMIN_KEYS"), "{admin}");

    let user = auth.user(Some(&format!("Bearer {}", hs256_token("u"))), NOW).await.expect_err("not configured");
    for var in ["FAIRUSE_JWT_HS256_SECRET", "FAIRUSE_FIREBASE_PROJECT_ID", "FAIRUSE_OIDC_JWKS_URL"] {
        assert!(user.to_string().contains(var), "{user}");
    }

    for err in [service, admin, user] {
        assert_eq!(err.status(), 503);
        assert_eq!(err.code(), "auth_not_configured");
    }
}

#[tokio::test]
async fn blank_variables_count_as_unset_and_stay_closed() {
    let auth = Authenticator::from_env_map(&env(&[
        ("FAIRUSE_SERVICE_KEYS", "  "),
        ("FAIRUSE_ADMIN_KEYS", ""),
        ("FAIRUSE_JWT_HS256_SECRET", ""),
    ]))
    .expect("blank config is valid");
    assert!(matches!(auth.service(Some("Bearer x")), Err(AuthError::NotConfigured(_))));
    assert!(matches!(auth.admin(Some("x")), Err(AuthError::NotConfigured(_))));
    assert!(matches!(auth.user(Some("Bearer x"), NOW).await, Err(AuthError::NotConfigured(_))));
}

#[test]
fn service_keys_from_env_accept_plain_and_sha256_forms_through_the_bearer_header() {
    let auth = Authenticator::from_env_map(&full_env()).expect("valid config");
    assert_eq!(auth.service(Some("Bearer plain-service-key-00001")), Ok(()));
    assert_eq!(auth.service(Some("  bearer   hashed-service-key-0002 ")), Ok(()));
}

#[test]
fn wrong_or_missing_service_key_is_401() {
    let auth = Authenticator::from_env_map(&full_env()).expect("valid config");
    assert_eq!(
        auth.service(Some("Bearer wrong-service-key-00001")),
        Err(AuthError::Invalid("invalid service key".into()))
    );
    assert_eq!(auth.service(None), Err(AuthError::Missing));
    assert_eq!(auth.service(Some("Bearer ")), Err(AuthError::Missing));
    let basic = auth.service(Some("Basic cGxhaW4tc2VydmljZS1rZXktMDAwMDE=")).expect_err("not bearer");
    assert!(matches!(basic, AuthError::Invalid(_)));
    // An admin key is not a service key.
    assert!(auth.service(Some("Bearer operator-admin-key-01")).is_err());
    for err in [AuthError::Missing, basic] {
        assert_eq!(err.status(), 401);
        assert_eq!(err.code(), "unauthorized");
    }
}

#[test]
fn admin_key_yields_the_named_identity_and_viewer_is_forbidden_to_write() {
    let auth = Authenticator::from_env_map(&full_env()).expect("valid config");

    let viewer = auth.admin(Some(" viewer-admin-key-0001 ")).expect("viewer key");
    assert_eq!(viewer, AdminIdentity { name: "viv".into(), role: Role::Viewer });
    let forbidden = viewer.require_write().expect_err("viewer cannot write");
    assert_eq!((forbidden.status(), forbidden.code()), (403, "forbidden"));

    let operator = auth.admin(Some("operator-admin-key-01")).expect("operator key");
    assert_eq!(operator.name, "otto");
    assert_eq!(operator.require_write(), Ok(()));

    assert_eq!(auth.admin(Some("plain-service-key-00001")), Err(AuthError::Invalid("invalid admin key".into())));
    assert_eq!(auth.admin(None), Err(AuthError::Missing));
    assert_eq!(auth.admin(Some("")), Err(AuthError::Missing));
}

#[tokio::test]
async fn user_route_with_hs256_from_env_returns_the_uid() {
    let auth = Authenticator::from_env_map(&full_env()).expect("valid config");
    let header = format!("BEARER {}", hs256_token("uid-from-token"));
    assert_eq!(auth.user(Some(&header), NOW).await, Ok("uid-from-token".to_owned()));
    assert_eq!(auth.user(None, NOW).await, Err(AuthError::Missing));
    let expired = auth.user(Some(&header), NOW + 3600).await.expect_err("expired");
    assert_eq!(expired, AuthError::Invalid("token expired".into()));
    assert_eq!(expired.status(), 401);
}

#[test]
fn bad_admin_keys_in_env_fail_at_startup_naming_the_entry() {
    let err =
        Authenticator::from_env_map(&env(&[("FAIRUSE_ADMIN_KEYS", "ok:viewer:key-one-0001,root:superuser:hunter2")]))
            .expect_err("bad role");
    assert!(matches!(err, AuthConfigError::BadEntry { var: "FAIRUSE_ADMIN_KEYS", position: 2, .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn oidc_settings_without_a_jwks_url_fail_at_startup() {
    let err = Authenticator::from_env_map(&env(&[("FAIRUSE_OIDC_AUDIENCE", "api")])).expect_err("no url");
    assert!(err.to_string().contains("FAIRUSE_OIDC_JWKS_URL"), "{err}");
}

#[test]
fn authenticator_debug_prints_no_secrets() {
    let auth = Authenticator::from_env_map(&full_env()).expect("valid config");
    let debug = format!("{auth:?}");
    for secret in ["plain-service-key", "viewer-admin-key", "operator-admin-key", HS_SECRET] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(debug.contains("otto"), "{debug}");
}

#[test]
fn every_error_maps_to_its_status_and_code() {
    let table = [
        (AuthError::Missing, 401, "unauthorized"),
        (AuthError::Invalid("x".into()), 401, "unauthorized"),
        (AuthError::Forbidden, 403, "forbidden"),
        (AuthError::NotConfigured("x".into()), 503, "auth_not_configured"),
        (AuthError::Unavailable("x".into()), 503, "auth_unavailable"),
    ];
    for (err, status, code) in table {
        assert_eq!((err.status(), err.code()), (status, code), "{err:?}");
    }
}
