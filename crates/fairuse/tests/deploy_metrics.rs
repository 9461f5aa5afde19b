//! The Grafana dashboard and the Prometheus alerts against the real `/metrics`: the binary is
//! started on port 0 with a webhook receiver and the metering-only gateway, driven through a
//! classification, a webhook delivery and a stream, and scraped. Every metric the dashboard or an
//! alert queries must be in that scrape, and every metric the README lists must be on the
//! dashboard.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const SPEECH_WAV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fairuse-vad/tests/fixtures/speech_16k.wav");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every `fairuse_*` metric name in `text` (series names as exported: `_bucket`, `_count` kept).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("fairuse_") {
        let preceded_by_word = text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let name: String =
            text[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        if !preceded_by_word {
            names.insert(name);
        }
    }
    names
}

/// The `(series, value)` lines of a Prometheus text exposition.
fn samples(scrape: &str) -> Vec<(String, f64)> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every one of `labels` (`key="value"`).
fn total(scrape: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    scrape
        .iter()
        .filter(|(s, _)| s == name || s.starts_with(&format!("{name}{{")))
        .filter(|(s, _)| labels.iter().all(|l| s.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

/// The 16-bit PCM bytes of the VAD fixture (a canonical WAV: samples follow the `data` tag).
fn speech_pcm() -> Vec<u8> {
    let bytes = std::fs::read(SPEECH_WAV).expect("fixture");
    let data = bytes.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    bytes[data..].to_vec()
}

/// A user over the free plan's 2 h daily cap whose conversations are audiobook chapters: the
/// heuristic warns them, which writes events and a webhook.
async fn drive_a_classification(s: &TestServer, uid: &str) {
    s.post_chapter_conversations(uid, "The Hobbit", now_s() - 6 * 3600).await;
    let reports: Vec<Value> = (0..180)
        .map(|m| {
            let at = fairuse_domain::time::Timestamp::from_secs(now_s() - 4 * 3600 + m * 60).to_rfc3339();
            json!({"uid": uid, "lane": "realtime", "speech_ms": 60_000, "at": at})
        })
        .collect();
    assert_eq!(s.post_usage(json!({"reports": reports})).await.status(), 200);
    let warned = eventually(Duration::from_secs(30), || async {
        let d = s.decision(uid).await;
        (d["stage"] == "warning").then_some(())
    })
    .await;
    assert!(warned.is_some(), "{uid} was warned: {}", s.decision(uid).await);
}

/// One stream through the metering-only gateway, closed by the client.
async fn drive_a_stream(s: &TestServer, uid: &str) {
    let url = s.url("/v1/listen?encoding=linear16&sample_rate=16000&channels=1").replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", hs256_token(uid, json!({}))).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("the gateway accepts the stream");
    for chunk in speech_pcm().chunks(640) {
        ws.send(Message::Binary(chunk.to_vec().into())).await.unwrap();
    }
    ws.send(Message::Text(r#"{"type":"CloseStream"}"#.into())).await.unwrap();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
        if matches!(msg, Message::Close(_)) {
            break;
        }
    }
}

async fn scrape(s: &TestServer) -> String {
    let r = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported_by_a_running_service() {
    let receiver = webhook_receiver(0).await;
    let mut env = default_env();
    env.push(("FAIRUSE_WEBHOOK_URL".into(), format!("{}/hook", receiver.base)));
    env.push(("FAIRUSE_WEBHOOK_SECRET".into(), "whsec-deploy-metrics-test".into()));
    env.push(("FAIRUSE_UPSTREAM_STT_URL".into(), "none".into()));
    env.push(("FAIRUSE__GATEWAY__FLUSH_INTERVAL".into(), "200ms".into()));
    let s = TestServer::start_with(env);

    let at_start = samples(&scrape(&s).await);
    assert_eq!(total(&at_start, "fairuse_gateway_streams", &[]), 0.0, "no stream is open yet");
    assert!(
        at_start.iter().any(|(series, _)| series == r#"fairuse_store_errors_total{op="request",kind="unknown"}"#),
        "the series alerts watch are exported at 0 from start-up"
    );

    drive_a_classification(&s, "hank").await;
    drive_a_stream(&s, "quinn").await;
    let delivered =
        eventually(Duration::from_secs(30), || async { (!receiver.received.lock().unwrap().is_empty()).then_some(()) })
            .await;
    assert!(delivered.is_some(), "the stage change reached the webhook receiver");
    // The stream's session snapshot and the delivery are counted after they finish: wait for both.
    let text = eventually(Duration::from_secs(30), || async {
        let text = scrape(&s).await;
        let now = samples(&text);
        let done = total(&now, "fairuse_webhook_deliveries_total", &[r#"outcome="delivered""#]) >= 1.0
            && total(&now, "fairuse_stream_sessions_recorded_total", &[r#"closed="true""#]) >= 1.0;
        done.then_some(text)
    })
    .await
    .expect("the delivery and the closed stream session were counted");
    let now = samples(&text);
    let exported: BTreeSet<String> =
        now.iter().map(|(series, _)| series.split(['{', ' ']).next().unwrap_or_default().to_owned()).collect();

    // The traffic above went through the real emitting code under the names the dashboard reads.
    for (name, labels) in [
        ("fairuse_usage_reports_total", &[][..]),
        ("fairuse_decisions_total", &[][..]),
        ("fairuse_stage_transitions_total", &[r#"from="none""#, r#"to="warning""#][..]),
        ("fairuse_events_total", &[r#"kind="classified""#][..]),
        ("fairuse_classifier_runs_total", &[r#"outcome="ok""#][..]),
        ("fairuse_classifier_seconds_count", &[][..]),
        ("fairuse_webhook_delivery_seconds_count", &[][..]),
        ("fairuse_http_requests_total", &[r#"route="/v1/usage""#, r#"status="200""#][..]),
        ("fairuse_http_request_duration_seconds_count", &[r#"route="/v1/users/{uid}/decision""#][..]),
    ] {
        assert!(total(&now, name, labels) >= 1.0, "{name}{labels:?} counted the traffic:\n{text}");
    }
    assert_eq!(total(&now, "fairuse_gateway_streams", &[]), 0.0, "the stream closed, the gauge came back to 0");
    assert_eq!(total(&now, "fairuse_store_errors_total", &[]), 0.0, "a healthy run has no store errors");

    let dashboard_text = read("deploy/grafana/fairuse.json");
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10), "the dashboard has its panels");
    let queried = metric_names(&dashboard_text);
    let missing: Vec<&String> = queried.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics /metrics does not export: {missing:?}\n{text}");

    let rules: serde_yaml::Value = serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml");
    let exprs: Vec<&str> = rules["groups"]
        .as_sequence()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .map(|r| r["expr"].as_str().expect("every rule has an expr"))
        .collect();
    let alerted = metric_names(&exprs.join("\n"));
    assert!(alerted.len() >= 6, "the alert rules name their metrics: {alerted:?}");
    let missing: Vec<&String> = alerted.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(missing.is_empty(), "alerts.yml watches metrics /metrics does not export: {missing:?}\n{text}");

    // The README's metrics list, as far as its bullet goes: each is on the dashboard.
    let readme = read("README.md");
    let start = readme.find("- **Metrics** (`/metrics`)").expect("the README's metrics list");
    let end = start + readme[start..].find("\n- **").expect("the bullet after the metrics list");
    let listed = metric_names(&readme[start..end]);
    assert!(listed.len() >= 15, "the README lists the metrics: {listed:?}");
    let shown: BTreeSet<String> =
        queried.iter().map(|m| m.trim_end_matches("_bucket").trim_end_matches("_count").to_owned()).collect();
    let not_shown: Vec<&String> = listed.iter().filter(|m| !shown.contains(*m)).collect();
    assert!(not_shown.is_empty(), "metrics the README lists but the dashboard does not show: {not_shown:?}");
}
