//! Distributed mode with real servers: two `fairuse serve` replicas on one Redis and one
//! PostgreSQL, and what happens when either server goes away.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn drop_schema(schema: &str) {
    // Best effort: the schema only holds this test's rows.
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c"])
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_classify_once_share_the_rate_limit_and_see_each_others_admin_actions() {
    require_servers();
    let (prefix, schema) = (unique("fut"), unique("fu_t_"));
    // Evaluate at most once a second (Omi's variable), so the test need not wait five minutes.
    let mut env = distributed_env(REDIS_URL, DATABASE_URL, &prefix, &schema);
    env.push(("FAIR_USE_CHECK_INTERVAL_SECONDS".into(), "1".into()));
    let a = TestServer::start_with(env.clone());
    let b = TestServer::start_with(env);
    // The six chapters end about 12 minutes ago (conversations may not end in the future).
    let start = now_s() - 6 * 3600;
    a.post_chapter_conversations("paul", "Dune", start).await;
    // Both replicas receive usage at once; together it crosses the 2 h daily cap.
    let mut sends = Vec::new();
    for i in 0..40 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (client, url) = (server.client.clone(), server.url("/v1/usage"));
        let at = fairuse_domain::time::Timestamp::from_secs(now_s() - 4 * 3600 + i * 300).to_rfc3339();
        let body = json!({"uid": "paul", "lane": "realtime", "speech_ms": 300_000, "at": at});
        sends.push(tokio::spawn(async move {
            client.post(url).bearer_auth(SERVICE_KEY).json(&body).send().await.unwrap().status()
        }));
    }
    for t in sends {
        assert_eq!(t.await.unwrap(), 200);
    }
    // One more report to each replica at the same moment, past the check interval: both evaluate
    // a user over the cap, and only one may win the classifier lock.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let both: Vec<_> = [&a, &b]
        .iter()
        .map(|server| {
            let (client, url) = (server.client.clone(), server.url("/v1/usage"));
            tokio::spawn(async move {
                let body = json!({"uid": "paul", "lane": "realtime", "speech_ms": 0});
                client.post(url).bearer_auth(SERVICE_KEY).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    for t in both {
        assert_eq!(t.await.unwrap(), 200);
    }
    let stage = eventually(Duration::from_secs(30), || async {
        let d = b.decision("paul").await;
        (d["stage"] != "none").then(|| d["stage"].clone())
    })
    .await
    .expect("paul was classified by one of the replicas");
    assert_eq!(stage, "warning");
    assert_eq!(a.decision("paul").await["windows"]["daily_ms"], 40 * 300_000, "both replicas meter into one Redis");
    // Give the other replica's worker time to (wrongly) run a second job, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let user: Value = a.admin_get("/v1/admin/fair-use/user/paul", VIEWER_KEY).await.json().await.unwrap();
    let classified = user["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "classified").count();
    assert_eq!(classified, 1, "exactly one classifier run and one event across both replicas: {user}");
    // The public lookup's limit holds across replicas: 6 on one, 4 on the other, the 11th refused.
    let case = user["state"]["last_case_ref"].as_str().unwrap().to_owned();
    for i in 0..10 {
        let s = if i < 6 { &a } else { &b };
        let r = s.client.get(s.url(&format!("/v1/fair-use/case/{case}/status"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "lookup {}", i + 1);
    }
    let r = a.client.get(a.url(&format!("/v1/fair-use/case/{case}/status"))).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let r = b.client.get(b.url(&format!("/v1/fair-use/case/{case}/status"))).send().await.unwrap();
    assert_eq!(r.status(), 429);
    // An admin reset on one replica is seen by the other (state is read from PostgreSQL).
    let r = a.admin_post("/v1/admin/fair-use/user/paul/reset", OPERATOR_KEY, json!({"reason": "test"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(b.decision("paul").await["stage"], "none");
    drop(a);
    drop(b);
    drop_schema(&schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_decisions_answer_nothing_accepted_is_lost_and_it_recovers() {
    require_servers();
    let redis = CuttableProxy::start("127.0.0.1:6379").await;
    let (prefix, schema) = (unique("fuf"), unique("fu_f_"));
    let env = distributed_env(&format!("redis://127.0.0.1:{}", redis.port), DATABASE_URL, &prefix, &schema);
    let s = TestServer::start_with(env);
    let mut accepted = 0i64;
    let report =
        |n: i64| json!({"uid": "rita", "lane": "realtime", "speech_ms": 1000 + n, "idempotency_key": format!("k{n}")});
    for n in 0..20 {
        if s.post_usage(report(n)).await.status() == 200 {
            accepted += 1000 + n;
        }
    }
    redis.down().await;
    let (mut decisions_5xx, mut usage_refused) = (0, 0);
    for n in 20..60 {
        let r = s.client.get(s.url("/v1/users/rita/decision")).bearer_auth(SERVICE_KEY).send().await.unwrap();
        if r.status().is_server_error() {
            decisions_5xx += 1;
        } else {
            let d: Value = r.json().await.unwrap();
            assert!(d["reasons"].to_string().contains("unavailable"), "the decision says it is degraded: {d}");
        }
        let r = s.post_usage(report(n)).await;
        match r.status().as_u16() {
            200 => accepted += 1000 + n,
            503 => usage_refused += 1,
            other => panic!("usage answered {other} while Redis was down"),
        }
    }
    assert_eq!(decisions_5xx, 0, "decisions keep answering while Redis is down");
    assert!(usage_refused > 0, "reports that cannot be stored are refused (503), not acknowledged and lost");
    redis.up().await;
    let recovered = eventually(Duration::from_secs(30), || async {
        let r = s.post_usage(report(100)).await;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(recovered.is_some(), "usage is accepted again once Redis is back");
    accepted += 1100;
    // The host retries what was refused; idempotency keys make that safe.
    for n in 20..60 {
        assert_eq!(s.post_usage(report(n)).await.status(), 200, "a retry is accepted (or a duplicate)");
    }
    let total = s.decision("rita").await["windows"]["daily_ms"].as_i64().unwrap();
    let all: i64 = (0..60).map(|n| 1000 + n).sum::<i64>() + 1100;
    assert!(total >= accepted, "every acknowledged report is counted: {total} < {accepted}");
    assert_eq!(total, all, "after the retries every report is counted exactly once");
    drop(s);
    drop_schema(&schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_admin_routes_answer_503_and_the_hot_path_keeps_deciding() {
    require_servers();
    let pg = CuttableProxy::start("127.0.0.1:5432").await;
    let (prefix, schema) = (unique("fup"), unique("fu_p_"));
    let url = format!("postgres://postgres@127.0.0.1:{}/test", pg.port);
    let mut env = distributed_env(REDIS_URL, &url, &prefix, &schema);
    env.push(("FAIRUSE__STORE__DATABASE_TIMEOUT".into(), "1s".into()));
    let s = TestServer::start_with(env);
    assert_eq!(s.post_usage(json!({"uid": "sam", "lane": "realtime", "speech_ms": 5000})).await.status(), 200);
    // A restricted user whose 30 minutes of STT are used up today.
    let r = s.admin_post("/v1/admin/fair-use/user/tess/set-stage", OPERATOR_KEY, json!({"stage": "restrict"})).await;
    assert_eq!(r.status(), 200);
    s.post_usage(json!({"uid": "tess", "lane": "realtime", "speech_ms": 1000, "stt_ms": 31 * 60_000})).await;
    assert_eq!(s.decision("tess").await["stt_allowed"], false);
    pg.down().await;
    let r = s.admin_get("/v1/admin/fair-use/flagged", VIEWER_KEY).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let r = s.admin_post("/v1/admin/fair-use/user/sam/reset", OPERATOR_KEY, json!({})).await;
    assert_eq!(r.status(), 503);
    for _ in 0..10 {
        let d = s.decision("sam").await;
        assert_eq!(d["stt_allowed"], true, "metering and caps fail open: {d}");
        assert!(d["reasons"].to_string().contains("enforcement state unavailable"), "{d}");
    }
    assert_eq!(
        s.post_usage(json!({"uid": "sam", "lane": "realtime", "speech_ms": 5000})).await.status(),
        200,
        "metering goes on"
    );
    let d = s.decision("tess").await;
    assert_eq!(d["stt_allowed"], false, "a restricted user's budget still applies (fails closed): {d}");
    assert_eq!(s.client.get(s.url("/readyz")).send().await.unwrap().status(), 503, "not ready without PostgreSQL");
    pg.up().await;
    let back = eventually(Duration::from_secs(30), || async {
        (s.admin_get("/v1/admin/fair-use/flagged", VIEWER_KEY).await.status() == 200).then_some(())
    })
    .await;
    assert!(back.is_some(), "admin routes recover with PostgreSQL");
    assert_eq!(s.decision("sam").await["windows"]["daily_ms"], 10_000);
    drop(s);
    drop_schema(&schema);
}

/// Runs `redis-cli` against the shared Redis and returns its output; fails on an error reply.
fn redis_cli(args: &[String]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools) is needed to write old-layout keys");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && !text.starts_with("ERR"), "redis-cli {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_old_layout_meters_and_fairuse_migrate_keeps_their_usage() {
    require_servers();
    let (prefix, schema) = (unique("fum"), unique("fu_m_"));
    let env = distributed_env(REDIS_URL, DATABASE_URL, &prefix, &schema);
    // Paul's meter as the previous release's record script left it (layout fu1): 10 min of
    // realtime two hours ago, 5 min of sync_fresh 30 minutes ago (capped), and 100 s of
    // sync_backfill (uncapped), with the roll-ups, the state and the expiry it set.
    let now_min = now_s() / 60;
    let retention_min = 8 * 1_440;
    let key = |rest: &str| format!("{{{prefix}:paul}}:fu1:{rest}");
    let capped = [(now_min - 120, 600_000i64, "realtime"), (now_min - 30, 300_000, "sync_fresh")];
    let mut hours: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut days: std::collections::BTreeMap<i64, i64> = Default::default();
    for (minute, ms, lane) in capped {
        redis_cli(&["HINCRBY".into(), key("capped:m"), minute.to_string(), ms.to_string()]);
        redis_cli(&["HINCRBY".into(), key(&format!("lane:{lane}")), minute.to_string(), ms.to_string()]);
        *hours.entry(minute.div_euclid(60)).or_default() += ms;
        *days.entry(minute.div_euclid(1_440)).or_default() += ms;
    }
    for (hour, ms) in hours {
        redis_cli(&["HSET".into(), key("capped:h"), hour.to_string(), ms.to_string()]);
    }
    for (day, ms) in days {
        redis_cli(&["HSET".into(), key("capped:d"), day.to_string(), ms.to_string()]);
    }
    redis_cli(&["HSET".into(), key("lane:sync_backfill"), (now_min - 10).to_string(), "100000".into()]);
    let horizon = (now_min - retention_min + 1).to_string();
    redis_cli(&["HSET".into(), key("meter"), "hz".into(), horizon.clone(), "pm".into(), horizon]);
    let old_keys =
        ["meter", "capped:m", "capped:h", "capped:d", "lane:realtime", "lane:sync_fresh", "lane:sync_backfill"];
    for rest in old_keys {
        redis_cli(&["PEXPIRE".into(), key(rest), ((retention_min + 60) * 60_000).to_string()]);
    }

    // A new replica will not serve that Redis (its windows would start from zero), even with
    // migrate_on_start (old replicas may still be recording).
    let refused = run_fairuse(&["serve", "--listen", "127.0.0.1:0"], &env);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "serve started on old-layout meters: {stderr}");
    assert!(stderr.contains("fairuse migrate") && stderr.contains("paul"), "the refusal says what to do: {stderr}");

    let migrated = run_fairuse(&["migrate"], &env);
    let stdout = String::from_utf8_lossy(&migrated.stdout);
    assert!(migrated.status.success(), "fairuse migrate failed: {}", String::from_utf8_lossy(&migrated.stderr));
    assert!(stdout.contains("1 users converted") && stdout.contains("7 old keys removed"), "{stdout}");
    let left = redis_cli(&["--scan".into(), "--pattern".into(), format!("*{prefix}*:fu1:*")]);
    assert_eq!(left.trim(), "", "no old-layout key is left");

    let s = TestServer::start_with(env.clone());
    let d = s.decision("paul").await;
    assert_eq!(d["windows"]["daily_ms"], 900_000, "the usage recorded before the upgrade still counts: {d}");
    let again = run_fairuse(&["migrate"], &env);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 users converted"), "a second run is a no-op");
    drop(s);
    for k in redis_cli(&["--scan".into(), "--pattern".into(), format!("*{prefix}*")]).lines() {
        redis_cli(&["DEL".into(), k.to_owned()]);
    }
    drop_schema(&schema);
}
