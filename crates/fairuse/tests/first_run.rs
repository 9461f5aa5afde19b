//! The real binary's start-up: where its policy comes from, and what a first run on a fresh
//! machine gives an operator.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn fairuse_policy_names_the_policy_file_serve_uses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let text = fairuse_domain::policy::DEFAULT_POLICY_TOML.replace(
        r#"caps = { daily = "2h", three_day = "8h", weekly = "10h" }"#,
        r#"caps = { daily = "1h", three_day = "8h", weekly = "10h" }"#,
    );
    assert_ne!(text, fairuse_domain::policy::DEFAULT_POLICY_TOML);
    std::fs::write(&path, text).unwrap();
    let mut env = default_env();
    env.push(("FAIRUSE_POLICY".into(), path.display().to_string()));
    let s = TestServer::start_with(env);
    let r = s.post_usage(json!({"uid": "pia", "lane": "realtime", "speech_ms": 1000})).await;
    assert_eq!(r.status(), 200);
    let d = s.decision("pia").await;
    assert_eq!(d["caps"]["daily_ms"], 3_600_000, "the cap of FAIRUSE_POLICY's file: {d}");
}

/// `fairuse serve` on `data_dir` with only `env` (none of the test keys) and what it printed on
/// stdout: the listening line and the start-up block after it.
fn start(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (TestServer, Vec<String>) {
    let mut all = vec![("FAIRUSE_LOG".to_owned(), "error".to_owned())];
    all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let s = TestServer::start_in(data_dir, all);
    let lines = s.printed();
    (s, lines)
}

fn printed(lines: &[String], var: &str) -> Option<String> {
    lines.iter().find_map(|l| l.trim().strip_prefix(&format!("{var}=")).map(str::to_owned))
}

async fn decision_status(base: &str, key: &str) -> u16 {
    client().get(format!("{base}/v1/users/u1/decision")).bearer_auth(key).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_first_run_generates_keys_prints_them_once_and_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let (first, lines) = start(&data, &[]);
    let base = first.base.clone();
    let service = printed(&lines, "FAIRUSE_SERVICE_KEYS").expect("the service key is printed on the first run");
    let admin = printed(&lines, "FAIRUSE_ADMIN_KEYS").expect("admin key printed");
    let jwt = printed(&lines, "FAIRUSE_JWT_HS256_SECRET").expect("jwt secret printed");
    assert!(lines.iter().any(|l| l.contains(&format!("{base}/admin/"))), "the dashboard URL: {lines:?}");
    let file = data.join(fairuse::first_run::FILE_NAME);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(decision_status(&base, &service).await, 200, "the printed service key works");
    let admin_key = admin.strip_prefix("admin:operator:").expect("an operator key named admin");
    let r =
        client().get(format!("{base}/v1/admin/fair-use/whoami")).header("X-Admin-Key", admin_key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let token = {
        let claims = serde_json::json!({"sub": "u1", "exp": now_s() + 3600});
        jsonwebtoken::encode(&Default::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(jwt.as_bytes()))
            .unwrap()
    };
    let r = client().get(format!("{base}/v1/fair-use/status")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200, "the printed JWT secret verifies user tokens");
    drop(first);

    // A later start reuses the keys and does not print them again.
    let (second, lines) = start(&data, &[]);
    let base = second.base.clone();
    assert_eq!(printed(&lines, "FAIRUSE_SERVICE_KEYS"), None, "keys are printed only once: {lines:?}");
    assert!(!lines.iter().any(|l| l.contains(&service)), "{lines:?}");
    assert_eq!(decision_status(&base, &service).await, 200, "the same key works after a restart");
    drop(second);

    // An explicit variable wins: the generated service key no longer opens anything.
    let (third, _) = start(&data, &[("FAIRUSE_SERVICE_KEYS", "explicit-service-key-0123456789")]);
    let base = third.base.clone();
    assert_eq!(decision_status(&base, "explicit-service-key-0123456789").await, 200);
    assert_eq!(decision_status(&base, &service).await, 401);
    drop(third);
}

#[tokio::test]
async fn serve_migrates_an_empty_postgresql_schema_at_start() {
    require_servers();
    let schema = unique("fresh_");
    let mut env = default_env();
    env.push(("FAIRUSE_DATABASE_URL".into(), DATABASE_URL.into()));
    env.push(("FAIRUSE__STORE__DATABASE_SCHEMA".into(), schema.clone()));
    // No migrate_on_start and no `fairuse migrate`: a fresh database must still start.
    let s = TestServer::start_with(env);
    let (status, body) = {
        let r = s
            .client
            .post(s.url("/v1/admin/fair-use/user/pam/set-stage"))
            .header("X-Admin-Key", OPERATOR_KEY)
            .json(&json!({"stage": "warning"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, 200, "the durable store works: {body}");
    assert_eq!(s.decision("pam").await["stage"], "warning");
}
