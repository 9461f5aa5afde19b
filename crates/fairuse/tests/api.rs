//! API tests: the real binary on port 0, spoken to over HTTP, asserting on responses and on the
//! state the API then shows.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn status_of(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (s, body)
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_answer() {
    let s = TestServer::start();
    for path in ["/healthz", "/readyz"] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let doc: Value = s.client.get(s.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/v1/usage"]["post"].is_object(), "openapi covers /v1/usage");
    s.post_usage(json!({"uid": "m1", "lane": "realtime", "speech_ms": 1000})).await;
    s.decision("m1").await;
    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in ["fairuse_usage_reports_total", "fairuse_decisions_total", "fairuse_http_request_duration_seconds"] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn usage_is_metered_and_the_decision_shows_windows_caps_and_budget() {
    let s = TestServer::start();
    let (code, body) = status_of(
        s.post_usage(json!({"reports": [
            {"uid": "alice", "lane": "realtime", "speech_ms": 60000, "idempotency_key": "k1"},
            {"uid": "alice", "lane": "realtime", "speech_ms": 60000, "idempotency_key": "k1"},
            {"uid": "alice", "lane": "sync_backfill", "speech_ms": 5000},
            {"uid": "alice", "lane": "realtime", "session_id": "s1", "cumulative_speech_ms": 30000},
            {"uid": "alice", "lane": "realtime", "session_id": "s1", "cumulative_speech_ms": 20000}
        ]}))
        .await,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["accepted"], 5);
    assert_eq!(body["duplicates"], 1);
    let d = s.decision("alice").await;
    assert_eq!(d["windows"]["daily_ms"], 90000, "duplicate key and the lower cumulative total not counted: {d}");
    assert_eq!(d["caps"]["daily_ms"], 7_200_000);
    assert_eq!(d["stage"], "none");
    assert_eq!(d["stt_allowed"], true);
    assert!(d["stt_budget"].is_null());
    assert_eq!(d["triggered"], json!([]));
}

#[tokio::test]
async fn bad_input_gets_a_4xx_that_names_the_field_and_changes_nothing() {
    let s = TestServer::start();
    s.post_usage(json!({"uid": "bob", "lane": "realtime", "speech_ms": 1000})).await;
    let future = fairuse_domain::time::Timestamp::from_secs(now_s() + 3600).to_rfc3339();
    let old = fairuse_domain::time::Timestamp::from_secs(now_s() - 9 * 86400).to_rfc3339();
    let cases = [
        (json!({"uid": "bad uid!", "lane": "realtime", "speech_ms": 1}), "uid"),
        (json!({"uid": "bob", "lane": "television", "speech_ms": 1}), "lane"),
        (json!({"uid": "bob", "lane": "realtime", "speech_ms": -5}), "speech_ms"),
        (json!({"uid": "bob", "lane": "realtime", "speech_ms": 999_999_999_999i64}), "speech_ms"),
        (json!({"uid": "bob", "lane": "realtime", "speech_ms": 1, "at": future}), "at"),
        (json!({"uid": "bob", "lane": "realtime", "speech_ms": 1, "at": old}), "at"),
        (json!({"uid": "bob", "lane": "realtime", "speech_ms": 1, "at": "tomorrow"}), "at"),
        (json!({"uid": "bob", "lane": "realtime"}), "speech_ms"),
        (json!({"uid": "bob", "lane": "realtime", "speech_ms": "ten"}), "speech_ms"),
        (
            json!({"reports": [{"uid": "bob", "lane": "realtime", "speech_ms": 1}, {"uid": "bob", "lane": "x", "speech_ms": 1}]}),
            "reports[1].lane",
        ),
    ];
    for (body, field) in cases {
        let (code, err) = status_of(s.post_usage(body.clone()).await).await;
        assert_eq!(code, 400, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "invalid_request");
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(field), "{body}: message {msg:?} should name {field}");
    }
    let big = json!({"uid": "bob", "lane": "realtime", "speech_ms": 1, "idempotency_key": "x".repeat(1_100_000)});
    let (code, err) = status_of(s.post_usage(big).await).await;
    assert_eq!(code, 413, "{err}");
    assert_eq!(err["error"]["code"], "payload_too_large");
    let r = s.client.get(s.url("/v1/users/bad%20uid/decision")).bearer_auth(SERVICE_KEY).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let d = s.decision("bob").await;
    assert_eq!(d["windows"]["daily_ms"], 1000, "nothing from the refused requests was recorded");
}

#[tokio::test]
async fn an_admin_key_in_the_query_string_does_not_authenticate() {
    let s = TestServer::start();
    for q in
        [format!("?admin_key={OPERATOR_KEY}"), format!("?x-admin-key={OPERATOR_KEY}"), format!("?key={OPERATOR_KEY}")]
    {
        let r = s.client.get(s.url(&format!("/v1/admin/fair-use/flagged{q}"))).send().await.unwrap();
        assert_eq!(r.status(), 401, "{q}");
    }
    assert_eq!(s.admin_get("/v1/admin/fair-use/flagged", OPERATOR_KEY).await.status(), 200);
    // A wrong key on Omi's admin path is Omi's 403; on our own admin paths it is 401.
    assert_eq!(s.admin_get("/v1/admin/fair-use/flagged", "wrong").await.status(), 403);
    assert_eq!(s.admin_get("/v1/admin/fair-use/whoami", "wrong").await.status(), 401);
}

#[tokio::test]
async fn a_viewer_can_read_but_cannot_reset_or_set_a_stage_and_admin_names_are_recorded() {
    let s = TestServer::start();
    let r = s.admin_post("/v1/admin/fair-use/user/carol/reset", VIEWER_KEY, json!({})).await;
    assert_eq!(r.status(), 403);
    let r = s.admin_post("/v1/admin/fair-use/user/carol/set-stage", VIEWER_KEY, json!({"stage": "restrict"})).await;
    assert_eq!(r.status(), 403);
    let r =
        s.client.put(s.url("/v1/admin/fair-use/exempt/carol")).header("X-Admin-Key", VIEWER_KEY).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (code, body) = status_of(
        s.admin_post(
            "/v1/admin/fair-use/user/carol/set-stage",
            OPERATOR_KEY,
            json!({"stage": "throttle", "reason": "test"}),
        )
        .await,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["audit"]["actor"], "olga");
    let (code, user) = status_of(s.admin_get("/v1/admin/fair-use/user/carol", VIEWER_KEY).await).await;
    assert_eq!(code, 200);
    assert_eq!(user["state"]["stage"], "throttle");
    assert_eq!(user["events"][0]["kind"], "admin_set_stage");
    assert_eq!(user["events"][0]["actor"], "olga");
    let (_, flagged) =
        status_of(s.admin_get("/v1/admin/fair-use/flagged?stage=throttle&limit=10", VIEWER_KEY).await).await;
    assert_eq!(flagged["users"][0]["uid"], "carol");
    assert_eq!(s.admin_get("/v1/admin/fair-use/flagged?limit=500", VIEWER_KEY).await.status(), 400);
    assert_eq!(s.admin_get("/v1/admin/fair-use/flagged?stage=banned", VIEWER_KEY).await.status(), 400);
}

#[tokio::test]
async fn a_user_token_for_alice_can_never_read_bobs_status() {
    let s = TestServer::start();
    s.post_usage(json!({"uid": "bob", "lane": "realtime", "speech_ms": 3_600_000})).await;
    s.post_usage(json!({"uid": "alice", "lane": "realtime", "speech_ms": 60_000})).await;
    let token = hs256_token("alice", json!({}));
    for path in ["/v1/fair-use/status", "/v1/fair-use/status?uid=bob", "/v1/fair-use/status?user_id=bob"] {
        let r = s.client.get(s.url(path)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["uid"], "alice", "{path}");
        assert_eq!(body["speech_hours_today"], 0.02, "{path}: alice's own usage, never bob's");
    }
}

#[tokio::test]
async fn forged_expired_not_yet_valid_and_alg_none_tokens_are_refused() {
    let s = TestServer::start();
    let forged = {
        let t = hs256_token("alice", json!({}));
        let (head, _) = t.rsplit_once('.').unwrap();
        format!("{head}.c2lnbmF0dXJlLW1hZGUtdXA")
    };
    let other_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "alice", "exp": now_s() + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret"),
    )
    .unwrap();
    let tokens = [
        ("forged signature", forged),
        ("other secret", other_secret),
        ("expired", hs256_token("alice", json!({"exp": now_s() - 3600, "iat": now_s() - 7200}))),
        ("not yet valid", hs256_token("alice", json!({"nbf": now_s() + 3600}))),
        ("alg none", alg_none_token("alice")),
        ("garbage", "not-a-token".to_owned()),
    ];
    for (what, t) in tokens {
        let r = s.client.get(s.url("/v1/fair-use/status")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }
    let r = s.client.get(s.url("/v1/fair-use/status")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
}

#[tokio::test]
async fn rs256_tokens_are_verified_against_a_jwks_from_a_local_server_with_issuer_and_audience() {
    let key = rsa_key("k1");
    let jwks = jwks_server(json!({"keys": [key.jwk.clone()]})).await;
    let mut env = default_env();
    env.retain(|(k, _)| k != "FAIRUSE_JWT_HS256_SECRET");
    env.push(("FAIRUSE_OIDC_JWKS_URL".into(), format!("{}/jwks.json", jwks.base)));
    env.push(("FAIRUSE_OIDC_ISSUER".into(), "https://issuer.test".into()));
    env.push(("FAIRUSE_OIDC_AUDIENCE".into(), "fairuse-app".into()));
    let s = TestServer::start_with(env);
    let claims =
        |aud: &str, iss: &str| json!({"sub": "dora", "aud": aud, "iss": iss, "iat": now_s(), "exp": now_s() + 600});
    let good = rs256_token(&key, "k1", claims("fairuse-app", "https://issuer.test"));
    let r = s.client.get(s.url("/v1/fair-use/status")).bearer_auth(&good).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["uid"], "dora");
    for (what, t) in [
        ("wrong audience", rs256_token(&key, "k1", claims("another-app", "https://issuer.test"))),
        ("wrong issuer", rs256_token(&key, "k1", claims("fairuse-app", "https://evil.test"))),
        ("unknown key", rs256_token(&rsa_key("k2"), "k2", claims("fairuse-app", "https://issuer.test"))),
        (
            "algorithm confusion",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims("fairuse-app", "https://issuer.test"),
                &jsonwebtoken::EncodingKey::from_secret(&key.public_pem),
            )
            .unwrap(),
        ),
    ] {
        let r = s.client.get(s.url("/v1/fair-use/status")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
    }
}

#[tokio::test]
async fn auth_modes_that_are_not_configured_answer_503_saying_what_to_set() {
    let s = TestServer::start_with(vec![
        ("FAIRUSE_LOG".into(), "error".into()),
        ("FAIRUSE__SERVER__GENERATE_KEYS".into(), "false".into()),
    ]);
    let checks = [
        (s.client.get(s.url("/v1/users/u/decision")).bearer_auth("x"), "FAIRUSE_SERVICE_KEYS"),
        (s.client.get(s.url("/v1/admin/fair-use/flagged")).header("X-Admin-Key", "x"), "FAIRUSE_ADMIN_KEYS"),
        (s.client.get(s.url("/v1/fair-use/status")).bearer_auth("x"), "FAIRUSE_JWT_HS256_SECRET"),
    ];
    for (req, var) in checks {
        let (code, body) = status_of(req.send().await.unwrap()).await;
        assert_eq!(code, 503, "{body}");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains(var), "{body} should name {var}");
    }
}

#[tokio::test]
async fn the_eleventh_public_case_lookup_in_a_minute_gets_429_with_retry_after() {
    let s = TestServer::start();
    let (_, body) = status_of(
        s.admin_post("/v1/admin/fair-use/user/erin/set-stage", OPERATOR_KEY, json!({"stage": "warning"})).await,
    )
    .await;
    let case = body["audit"]["case_ref"].as_str().unwrap().to_owned();
    for i in 0..10 {
        let r = s.client.get(s.url(&format!("/v1/fair-use/case/{case}/status"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "lookup {}", i + 1);
        if i == 0 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["stage"], "warning");
            assert_eq!(v["case_ref"], case.as_str());
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert!(!keys.iter().any(|k| k.contains("uid") || k.contains("hours") || k.contains("ms")), "{v}");
        }
    }
    let r = s.client.get(s.url(&format!("/v1/fair-use/case/{case}/status"))).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let r = s.client.get(s.url("/v1/fair-use/case/FU-ZZZ/status")).send().await.unwrap();
    assert_eq!(r.status(), 429, "the limit is per client, whatever the case reference");
}

#[tokio::test]
async fn reports_accepted_before_sigkill_are_all_there_after_restart() {
    let mut s = TestServer::start();
    for i in 0..50 {
        let r = s
            .post_usage(
                json!({"uid": "frank", "lane": "realtime", "speech_ms": 1000 + i, "idempotency_key": format!("k{i}")}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    s.post_usage(json!({"uid": "frank", "lane": "realtime", "session_id": "s", "cumulative_speech_ms": 40_000})).await;
    let before = s.decision("frank").await;
    s.kill_and_restart();
    let after = s.decision("frank").await;
    assert_eq!(before["windows"], after["windows"]);
    assert_eq!(after["windows"]["daily_ms"], 50 * 1000 + (0..50).sum::<i64>() + 40_000);
    // Dedup state survived too: replays change nothing.
    let (_, body) = status_of(
        s.post_usage(json!({"uid": "frank", "lane": "realtime", "speech_ms": 1000, "idempotency_key": "k0"})).await,
    )
    .await;
    assert_eq!(body["duplicates"], 1);
    s.post_usage(json!({"uid": "frank", "lane": "realtime", "session_id": "s", "cumulative_speech_ms": 40_000})).await;
    assert_eq!(s.decision("frank").await["windows"], after["windows"]);
}

/// Many reports in flight at once share the writer's group commits; each is acknowledged only
/// after the commit that holds it, so every acknowledged one survives a SIGKILL right after.
#[tokio::test]
async fn concurrent_reports_acknowledged_before_sigkill_are_all_there_after_restart() {
    const USERS: i64 = 8;
    const REPORTS_PER_USER: i64 = 40;
    let mut s = TestServer::start();
    let mut in_flight = Vec::new();
    for i in 0..USERS * REPORTS_PER_USER {
        let (client, url) = (s.client.clone(), s.url("/v1/usage"));
        let body = json!({
            "uid": format!("crowd{}", i % USERS),
            "lane": "realtime",
            "speech_ms": 1_000 + i,
            "idempotency_key": format!("k{i}"),
        });
        in_flight.push(tokio::spawn(async move {
            client.post(url).bearer_auth(SERVICE_KEY).json(&body).send().await.expect("request").status().as_u16()
        }));
    }
    for request in in_flight {
        assert_eq!(request.await.expect("task"), 200);
    }
    s.kill_and_restart();
    for u in 0..USERS {
        let expected: i64 = (0..REPORTS_PER_USER).map(|n| 1_000 + n * USERS + u).sum();
        let after = s.decision(&format!("crowd{u}")).await;
        assert_eq!(after["windows"]["daily_ms"], expected, "crowd{u}: every acknowledged report survived");
    }
    let (_, body) = status_of(
        s.post_usage(json!({"uid": "crowd0", "lane": "realtime", "speech_ms": 1_000, "idempotency_key": "k0"})).await,
    )
    .await;
    assert_eq!(body["duplicates"], 1, "the idempotency keys were committed with the reports");
}

fn verify_webhook(headers: &axum::http::HeaderMap, body: &str, secret: &str) -> bool {
    let ts: i64 = headers["x-fairuse-timestamp"].to_str().unwrap().parse().unwrap();
    fairuse_webhook::verify_signature(secret.as_bytes(), ts, body, headers["x-fairuse-signature"].to_str().unwrap())
}

#[tokio::test]
async fn a_stage_change_reaches_the_webhook_signed_and_again_after_a_500() {
    let receiver = webhook_receiver(1).await;
    let mut env = default_env();
    env.push(("FAIRUSE_WEBHOOK_URL".into(), format!("{}/hook", receiver.base)));
    env.push(("FAIRUSE_WEBHOOK_SECRET".into(), "whsec-test".into()));
    env.push(("FAIRUSE__WEBHOOK__BASE_BACKOFF".into(), "200ms".into()));
    let s = TestServer::start_with(env);
    let (_, body) = status_of(
        s.admin_post("/v1/admin/fair-use/user/gina/set-stage", OPERATOR_KEY, json!({"stage": "restrict"})).await,
    )
    .await;
    let event_id = body["audit"]["event_id"].as_str().unwrap().to_owned();
    let got = eventually(Duration::from_secs(30), || async {
        let r = receiver.received.lock().unwrap();
        (r.len() >= 2).then(|| r.clone())
    })
    .await
    .expect("the webhook was delivered twice (a 500, then a success)");
    for (headers, raw) in &got[..2] {
        assert_eq!(headers["x-fairuse-event-id"].to_str().unwrap(), event_id);
        assert!(verify_webhook(headers, raw, "whsec-test"), "signature verifies with the secret");
        assert!(!verify_webhook(headers, raw, "another-secret"));
        let v: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(v["type"], "fair_use.stage_changed");
        assert_eq!(v["uid"], "gina");
        assert_eq!(v["stage"], "restrict");
        assert_eq!(v["previous_stage"], "none");
        assert!(v["title"].as_str().unwrap().len() > 5 && v["body"].as_str().unwrap().contains("30 minutes"));
    }
}

#[tokio::test]
async fn a_user_over_the_cap_with_chapter_titles_is_classified_warned_and_can_appeal() {
    let s = TestServer::start();
    let start = now_s() - 6 * 3600;
    s.post_chapter_conversations("hank", "The Hobbit", start).await;
    // 3 h of speech over the last few hours: over the 2 h daily cap of the free plan.
    let reports: Vec<Value> = (0..180)
        .map(|m| json!({"uid": "hank", "lane": "realtime", "speech_ms": 60_000, "at": fairuse_domain::time::Timestamp::from_secs(now_s() - 4 * 3600 + m * 60).to_rfc3339()}))
        .collect();
    let r = s.post_usage(json!({"reports": reports})).await;
    assert_eq!(r.status(), 200);
    let stage = eventually(Duration::from_secs(30), || async {
        let d = s.decision("hank").await;
        (d["stage"] != "none").then(|| d["stage"].clone())
    })
    .await
    .expect("hank was classified");
    assert_eq!(stage, "warning");
    let (_, user) = status_of(s.admin_get("/v1/admin/fair-use/user/hank", VIEWER_KEY).await).await;
    let classified = user["events"].as_array().unwrap().iter().find(|e| e["kind"] == "classified").unwrap().clone();
    assert_eq!(classified["verdict"]["usage_type"], "audiobook");
    assert!(classified["verdict"]["evidence"].as_array().unwrap().iter().any(|e| e["conversation_id"] == "c1"));
    assert_eq!(classified["trigger_detail"]["windows"][0]["cap_ms"], 7_200_000);
    assert_eq!(classified["trigger"], "daily", "Omi's trigger name on Omi's route");
    let case = classified["case_ref"].as_str().unwrap().to_owned();
    let token = hs256_token("hank", json!({}));
    let (code, status) =
        status_of(s.client.get(s.url("/v1/fair-use/status")).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(status["stage"], "warning");
    assert_eq!(status["case_ref"], case.as_str());
    assert!(status["recovery"][0]["under_cap_at"].is_string(), "{status}");
    let appeal = async |token: &str, text: &str| {
        s.client
            .post(s.url(&format!("/v1/fair-use/case/{case}/appeal")))
            .bearer_auth(token)
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(appeal(&token, "I listen to my own lectures").await.status(), 201);
    let other = hs256_token("ivan", json!({}));
    assert_eq!(appeal(&other, "not mine").await.status(), 404, "only the owner of a case may appeal it");
    // Five appeals a day per user: the sixth is refused and says when to come back.
    for i in 2..=5 {
        assert_eq!(appeal(&token, &format!("appeal {i}")).await.status(), 201, "appeal {i}");
    }
    let r = appeal(&token, "appeal 6").await;
    assert_eq!(r.status(), 429, "the sixth appeal of the day is refused");
    assert!(r.headers().get("retry-after").is_some());
    // Overturn the verdict, then reset: back to none, and the audit trail shows both admins' actions.
    let event_id = classified["event_id"].as_str().unwrap();
    let (code, resolved) = status_of(
        s.admin_post(
            &format!("/v1/admin/fair-use/user/hank/resolve-event/{event_id}"),
            OPERATOR_KEY,
            json!({"outcome": "overturned", "notes": "own lectures"}),
        )
        .await,
    )
    .await;
    assert_eq!(code, 200, "{resolved}");
    assert_eq!(resolved["event"]["resolution"]["outcome"], "overturned");
    assert_eq!(resolved["event"]["resolution"]["resolved_by"], "olga");
    let (code, _) = status_of(
        s.admin_post("/v1/admin/fair-use/user/hank/reset", OPERATOR_KEY, json!({"reason": "appeal upheld"})).await,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(s.decision("hank").await["stage"], "none");
    let (_, case_view) = status_of(s.admin_get(&format!("/v1/admin/fair-use/case/{case}"), VIEWER_KEY).await).await;
    assert_eq!(case_view["uid"], "hank");
    let r = s
        .admin_post(
            "/v1/admin/fair-use/user/hank/resolve-event/no-such-event",
            OPERATOR_KEY,
            json!({"outcome": "upheld"}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn exemptions_and_plans_are_managed_through_the_api() {
    let s = TestServer::start();
    let r =
        s.client.put(s.url("/v1/admin/fair-use/exempt/jill")).header("X-Admin-Key", OPERATOR_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, v) = status_of(s.admin_get("/v1/admin/fair-use/exempt/jill", VIEWER_KEY).await).await;
    assert_eq!(v["exempt"], true);
    s.admin_post("/v1/admin/fair-use/user/jill/set-stage", OPERATOR_KEY, json!({"stage": "restrict"})).await;
    let d = s.decision("jill").await;
    assert_eq!(d["effective_stage"], "none", "an exempt user is never budgeted: {d}");
    let r = s
        .client
        .delete(s.url("/v1/admin/fair-use/exempt/jill"))
        .header("X-Admin-Key", OPERATOR_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.decision("jill").await["effective_stage"], "restrict");
    let r = s
        .client
        .put(s.url("/v1/users/jill/plan"))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"plan": "unlimited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.decision("jill").await["caps"]["daily_ms"], 14_400_000);
    let r = s
        .client
        .put(s.url("/v1/users/jill/plan"))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"plan": "gold"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let until = fairuse_domain::time::Timestamp::from_secs(now_s() - 10).to_rfc3339();
    let r = s
        .admin_post("/v1/admin/fair-use/user/jill/set-stage", OPERATOR_KEY, json!({"stage": "warning", "until": until}))
        .await;
    assert_eq!(r.status(), 400, "an expiry in the past is refused");
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let mut s = TestServer::start();
    s.post_usage(json!({"uid": "kim", "lane": "realtime", "speech_ms": 1000})).await;
    let status = s.terminate().expect("fairuse exited after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_policy_file_is_hot_reloaded_and_a_bad_one_keeps_the_last_good_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, fairuse_domain::policy::DEFAULT_POLICY_TOML).unwrap();
    let mut env = default_env();
    env.push(("FAIRUSE__SERVER__POLICY".into(), policy.display().to_string()));
    env.push(("FAIRUSE__WORKERS__POLICY_RELOAD_INTERVAL".into(), "100ms".into()));
    let s = TestServer::start_with(env);
    s.post_usage(json!({"uid": "lena", "lane": "realtime", "speech_ms": 1000})).await;
    assert!(!s.decision("lena").await["reasons"].to_string().contains("kill switch"));
    let killed = fairuse_domain::policy::DEFAULT_POLICY_TOML.replace("kill_switch = false", "kill_switch = true");
    std::fs::write(&policy, &killed).unwrap();
    let reloaded = eventually(Duration::from_secs(20), || async {
        s.decision("lena").await["reasons"].to_string().contains("kill switch").then_some(())
    })
    .await;
    assert!(reloaded.is_some(), "the kill switch from the edited file took effect");
    std::fs::write(&policy, killed.replace("qualify_score = 0.7", "qualify_score = 7")).unwrap();
    let refused = eventually(Duration::from_secs(20), || async {
        let m = s.client.get(s.url("/metrics")).send().await.ok()?.text().await.ok()?;
        m.lines().any(|l| l.starts_with("fairuse_policy_reloads_total") && l.contains("refused")).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the bad file was refused");
    assert!(s.decision("lena").await["reasons"].to_string().contains("kill switch"), "the last good policy stays");
}

/// A local stand-in for an OpenAI-compatible endpoint: every completion is the same verdict.
async fn chat_completions_server(verdict: Value) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let answer = json!({
        "id": "cmpl-test", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": verdict.to_string()}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    });
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::Json<Value>| {
            let answer = answer.clone();
            async move {
                assert!(body["response_format"]["json_schema"].is_object(), "structured output requested");
                axum::Json(answer)
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (base, task)
}

#[tokio::test]
async fn the_openai_backend_classifies_through_an_openai_compatible_endpoint() {
    let verdict = json!({"reasoning": "sequential chapters", "misuse_score": 0.92, "usage_type": "audiobook",
                         "confidence": 0.8, "evidence": [{"conversation_id": "c2", "title": "x", "reason": "chapter 2 of a book"}]});
    let (base, _server) = chat_completions_server(verdict).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        fairuse_domain::policy::DEFAULT_POLICY_TOML.replace("backend = \"heuristic\"", "backend = \"openai\""),
    )
    .unwrap();
    let mut env = default_env();
    env.push(("FAIRUSE__SERVER__POLICY".into(), policy.display().to_string()));
    env.push(("FAIRUSE_LLM_BASE_URL".into(), base));
    env.push(("FAIRUSE_LLM_API_KEY".into(), "sk-test-not-a-real-key".into()));
    let s = TestServer::start_with(env);
    s.post_chapter_conversations("nora", "Emma", now_s() - 6 * 3600).await;
    let reports: Vec<Value> = (0..180)
        .map(|m| json!({"uid": "nora", "lane": "realtime", "speech_ms": 60_000, "at": fairuse_domain::time::Timestamp::from_secs(now_s() - 4 * 3600 + m * 60).to_rfc3339()}))
        .collect();
    assert_eq!(s.post_usage(json!({"reports": reports})).await.status(), 200);
    let stage = eventually(Duration::from_secs(30), || async {
        let d = s.decision("nora").await;
        (d["stage"] != "none").then(|| d["stage"].clone())
    })
    .await
    .expect("nora was classified by the model");
    assert_eq!(stage, "warning");
    let user: Value = s.admin_get("/v1/admin/fair-use/user/nora", VIEWER_KEY).await.json().await.unwrap();
    let v = &user["events"].as_array().unwrap().iter().find(|e| e["kind"] == "classified").unwrap()["verdict"];
    assert_eq!(v["model"], "test-model");
    assert_eq!(v["prompt_version"], fairuse_llm::PROMPT_VERSION);
    assert_eq!(v["evidence"][0]["conversation_id"], "c2");
    assert_eq!(v["evidence"][0]["title"], "Emma - Chapter 2", "the host's own title, not the model's");
}
