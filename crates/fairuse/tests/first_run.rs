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
