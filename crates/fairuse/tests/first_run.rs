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

/// Starts `fairuse serve` on `data_dir` with only `env` (no inherited FAIRUSE variables) and
/// returns the process, its base URL and the lines it printed up to and after the listening line.
fn spawn(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fairuse"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("FAIRUSE") || k.starts_with("FAIR_USE") {
            cmd.env_remove(k);
        }
    }
    cmd.env("FAIRUSE_LOG", "error").envs(env.iter().copied());
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn fairuse");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut base = String::new();
    // The start-up block is printed at once after the listening line.
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(if base.is_empty() { 60 } else { 1 })) {
        if let Some(url) = line.strip_prefix("fairuse listening on ") {
            base = url.trim().to_owned();
        }
        lines.push(line);
    }
    assert!(!base.is_empty(), "fairuse did not start: {lines:?}");
    (child, base, lines)
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

    let (mut first, base, lines) = spawn(&data, &[]);
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
    first.kill().unwrap();
    first.wait().unwrap();

    // A later start reuses the keys and does not print them again.
    let (mut second, base, lines) = spawn(&data, &[]);
    assert_eq!(printed(&lines, "FAIRUSE_SERVICE_KEYS"), None, "keys are printed only once: {lines:?}");
    assert!(!lines.iter().any(|l| l.contains(&service)), "{lines:?}");
    assert_eq!(decision_status(&base, &service).await, 200, "the same key works after a restart");
    second.kill().unwrap();
    second.wait().unwrap();

    // An explicit variable wins: the generated service key no longer opens anything.
    let (mut third, base, _) = spawn(&data, &[("FAIRUSE_SERVICE_KEYS", "explicit-service-key-0123456789")]);
    assert_eq!(decision_status(&base, "explicit-service-key-0123456789").await, 200);
    assert_eq!(decision_status(&base, &service).await, 401);
    third.kill().unwrap();
    third.wait().unwrap();
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
