//! The HTTP API through the real router in process, on the memory store and a manual clock:
//! how bodies are parsed (trailing data, duplicate keys, missing fields), what decisions report
//! when nothing is enforced, and the Omi-compatible routes' shapes and status codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::policy::Policy;
use fairuse_domain::store::MemoryStore;
use fairuse_domain::time::{ManualClock, Timestamp};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use serde_json::{Value, json};
use tower::ServiceExt;

const SERVICE_KEY: &str = "http-test-service-key-0123";
const OPERATOR_KEY: &str = "http-test-operator-key-0123";
const VIEWER_KEY: &str = "http-test-viewer-key-0123";
const JWT_SECRET: &str = "http-test-jwt-secret-long-enough-0123";
const T0: i64 = 1_774_000_000_000; // 2026-03-20T09:46:40Z

struct App {
    router: Router,
    service: Arc<Service>,
}

fn app() -> App {
    app_with(Policy::default(), HttpSettings::default())
}

fn app_with(policy: Policy, settings: HttpSettings) -> App {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let service = Arc::new(Service::new(
        Stores::single(Arc::new(MemoryStore::new())),
        policy,
        clock.clone(),
        Arc::new(HeuristicClassifier),
        Notifications::default(),
    ));
    let env = HashMap::from([
        ("FAIRUSE_SERVICE_KEYS".to_string(), SERVICE_KEY.to_string()),
        ("FAIRUSE_ADMIN_KEYS".into(), format!("olga:operator:{OPERATOR_KEY},vic:viewer:{VIEWER_KEY}")),
        ("FAIRUSE_JWT_HS256_SECRET".into(), JWT_SECRET.into()),
    ]);
    let auth = fairuse_auth::Authenticator::from_env_map(&env).expect("test keys are valid");
    let router = router(AppState {
        service: service.clone(),
        auth: Arc::new(auth),
        settings,
        metrics: None,
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    });
    App { router, service }
}

fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "exp": T0 / 1000 + 3600, "iat": T0 / 1000});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("token")
}

#[derive(Clone, Copy)]
enum As<'a> {
    Service,
    Admin(&'a str),
    User(&'a str),
    Nobody,
}

impl App {
    async fn call(&self, method: &str, uri: &str, who: As<'_>, body: &str) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        req = match who {
            As::Service => req.header("authorization", format!("Bearer {SERVICE_KEY}")),
            As::Admin(key) => req.header("x-admin-key", key),
            As::User(uid) => req.header("authorization", format!("Bearer {}", token(uid))),
            As::Nobody => req,
        };
        let resp = self.router.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let v =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn daily_ms(&self, uid: &str) -> i64 {
        let (status, d) = self.call("GET", &format!("/v1/users/{uid}/decision"), As::Service, "").await;
        assert_eq!(status, StatusCode::OK, "{d}");
        d["windows"]["daily_ms"].as_i64().expect("daily_ms")
    }
}

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("(no field)")
}

// ---- bodies ---------------------------------------------------------------------------------

#[tokio::test]
async fn two_usage_reports_back_to_back_are_refused_and_neither_is_stored() {
    let app = app();
    let body = r#"{"uid":"u1","lane":"realtime","speech_ms":1000}{"uid":"u1","lane":"realtime","speech_ms":2000}"#;
    let (status, v) = app.call("POST", "/v1/usage", As::Service, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field(&v), "body", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("trailing"), "{v}");
    assert_eq!(app.daily_ms("u1").await, 0, "a refused body stores nothing");
}

#[tokio::test]
async fn a_report_followed_by_garbage_is_refused() {
    let app = app();
    for tail in ["garbage", ",", "]", "{", " 1", "\"x\""] {
        let body = format!(r#"{{"uid":"u1","lane":"realtime","speech_ms":1000}}{tail}"#);
        let (status, v) = app.call("POST", "/v1/usage", As::Service, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "tail {tail:?}: {v}");
    }
    // Trailing whitespace is not data.
    let (status, v) = app
        .call("POST", "/v1/usage", As::Service, "{\"uid\":\"u1\",\"lane\":\"realtime\",\"speech_ms\":1000}\n \t")
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(app.daily_ms("u1").await, 1000);
}

#[tokio::test]
async fn a_duplicate_key_is_refused_naming_the_field() {
    let app = app();
    let (status, v) = app
        .call("POST", "/v1/usage", As::Service, r#"{"uid":"u1","lane":"realtime","speech_ms":1,"speech_ms":86400000}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field(&v), "speech_ms", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("duplicate"), "{v}");

    let batch = r#"{"reports":[{"uid":"u1","lane":"realtime","speech_ms":1},
        {"uid":"u1","lane":"realtime","lane":"sync_backfill","speech_ms":1}]}"#;
    let (status, v) = app.call("POST", "/v1/usage", As::Service, batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field(&v), "reports[1].lane", "{v}");

    let (status, v) = app.call("PUT", "/v1/users/u1/plan", As::Service, r#"{"plan":"unlimited","plan":"free"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field(&v), "plan", "{v}");

    let (status, v) = app
        .call(
            "POST",
            "/v1/admin/fair-use/user/u1/set-stage",
            As::Admin(OPERATOR_KEY),
            r#"{"stage":"none","stage":"restrict"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field(&v), "stage", "{v}");
    assert_eq!(app.daily_ms("u1").await, 0, "nothing of the refused bodies was stored");
}

#[tokio::test]
async fn a_missing_required_field_is_named() {
    let app = app();
    let now = Timestamp(T0);
    let cases: Vec<(&str, String, String, &str)> = vec![
        ("POST", "/v1/usage".into(), r#"{"lane":"realtime","speech_ms":1}"#.into(), "uid"),
        ("POST", "/v1/usage".into(), r#"{"uid":"u1","speech_ms":1}"#.into(), "lane"),
        (
            "POST",
            "/v1/usage".into(),
            r#"{"reports":[{"uid":"u1","lane":"realtime","speech_ms":1},{"uid":"u1","speech_ms":1}]}"#.into(),
            "reports[1].lane",
        ),
        ("PUT", "/v1/users/u1/plan".into(), r#"{"credits_exhausted":true}"#.into(), "plan"),
        (
            "POST",
            "/v1/users/u1/conversations".into(),
            format!(
                r#"{{"title":"t","started_at":"{}","finished_at":"{}"}}"#,
                now.minus_ms(60_000),
                now.minus_ms(1000)
            ),
            "conversation_id",
        ),
        (
            "POST",
            "/v1/users/u1/conversations".into(),
            format!(r#"{{"conversation_id":"c1","finished_at":"{}"}}"#, now.minus_ms(1000)),
            "started_at",
        ),
        (
            "POST",
            "/v1/users/u1/conversations".into(),
            format!(r#"{{"conversations":[{{"conversation_id":"c1","started_at":"{}"}}]}}"#, now.minus_ms(1000)),
            "conversations[0].finished_at",
        ),
    ];
    for (method, uri, body, want) in cases {
        let (status, v) = app.call(method, &uri, As::Service, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(field(&v), want, "{body}: {v}");
    }
    let (status, v) = app.call("POST", "/v1/fair-use/case/FU-000000000001/appeal", As::User("u1"), "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field(&v), "text", "{v}");
}

#[tokio::test]
async fn a_conversation_source_too_long_names_source() {
    let app = app();
    let now = Timestamp(T0);
    let body = json!({"conversation_id": "c1", "category": "work", "source": "s".repeat(101),
        "started_at": now.minus_ms(60_000).to_rfc3339(), "finished_at": now.minus_ms(1000).to_rfc3339()});
    let (status, v) = app.call("POST", "/v1/users/u1/conversations", As::Service, &body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field(&v), "source", "{v}");
}

/// A case of `uid` (an admin-set warning), by its reference.
async fn warned_case(app: &App, uid: &str) -> String {
    let (status, v) = app
        .call(
            "POST",
            &format!("/v1/admin/fair-use/user/{uid}/set-stage"),
            As::Admin(OPERATOR_KEY),
            r#"{"stage":"warning","reason":"test"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["audit"]["case_ref"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refused_appeals_do_not_use_up_the_daily_quota_but_unknown_cases_do() {
    let app = app_with(Policy::default(), HttpSettings { appeals_per_day: 2, ..HttpSettings::default() });
    let case = warned_case(&app, "u1").await;
    let appeal = |text: &'static str| {
        let uri = format!("/v1/fair-use/case/{case}/appeal");
        let app = &app;
        async move { app.call("POST", &uri, As::User("u1"), &json!({"text": text}).to_string()).await }
    };
    for _ in 0..5 {
        let (status, v) = appeal("   ").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(field(&v), "text");
    }
    let (status, v) = app.call("POST", &format!("/v1/fair-use/case/{case}/appeal"), As::User("u1"), "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = appeal("These are my own lectures.").await;
    assert_eq!(status, StatusCode::CREATED, "invalid appeals used no quota: {v}");
    // Probing unknown references still counts, so the quota still bounds enumeration.
    let (status, v) =
        app.call("POST", "/v1/fair-use/case/FU-00000000ABCD/appeal", As::User("u1"), r#"{"text":"probe"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, v) = appeal("Another one.").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
}

// ---- texts ----------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_set_throttle_is_described_as_it_is() {
    let app = app();
    let (status, v) = app
        .call(
            "POST",
            "/v1/admin/fair-use/user/u1/set-stage",
            As::Admin(OPERATOR_KEY),
            r#"{"stage":"throttle","reason":"manual review"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = app.call("GET", "/v1/fair-use/status", As::User("u1"), "").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(!message.contains("recorded media") && !message.contains("7 days"), "{message}");
    assert!(message.contains("until our team lifts it") && message.contains("economy model"), "{message}");

    let (status, v) = app
        .call(
            "POST",
            "/v1/admin/fair-use/user/u1/set-stage",
            As::Admin(OPERATOR_KEY),
            r#"{"stage":"restrict","until":"2030-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = app.call("GET", "/v1/fair-use/status", As::User("u1"), "").await;
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("until 2030-01-01 00:00 UTC") && !message.contains("30 days"), "{message}");
}

// ---- Omi's routes answer as Omi's ---------------------------------------------------------------

#[tokio::test]
async fn a_wrong_admin_key_is_403_on_omis_admin_routes_and_401_on_ours() {
    let app = app();
    let omi_routes = [
        ("GET", "/v1/admin/fair-use/flagged"),
        ("GET", "/v1/admin/fair-use/user/u1"),
        ("GET", "/v1/admin/fair-use/case/FU-000000000001"),
        ("POST", "/v1/admin/fair-use/user/u1/resolve-event/e1"),
        ("POST", "/v1/admin/fair-use/user/u1/reset"),
        ("POST", "/v1/admin/fair-use/user/u1/set-stage?stage=none"),
    ];
    for (method, uri) in omi_routes {
        let (status, v) = app.call(method, uri, As::Admin("not-a-key"), "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {v}");
        assert_eq!(v["detail"], "Invalid admin key", "{method} {uri}: FastAPI's error shape too: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
    }
    for (method, uri) in [("GET", "/v1/admin/fair-use/whoami"), ("PUT", "/v1/admin/fair-use/exempt/u1")] {
        let (status, v) = app.call(method, uri, As::Admin("not-a-key"), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: our own routes keep 401: {v}");
        assert!(v.get("detail").is_none(), "{v}");
    }
}

#[tokio::test]
async fn the_user_status_always_carries_a_dg_budget_object() {
    let app = app();
    let (status, v) = app
        .call("POST", "/v1/usage", As::Service, r#"{"uid":"u1","lane":"realtime","speech_ms":60000,"stt_ms":90000}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = app.call("GET", "/v1/fair-use/status", As::User("u1"), "").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["stage"], "none");
    assert_eq!(v["stt_budget"], Value::Null, "our field: no budget applies at stage none");
    let dg = &v["dg_budget"];
    assert_eq!(dg["daily_limit_ms"], 1_800_000, "Omi reports the restrict budget: {v}");
    assert_eq!(dg["used_ms"], 90_000, "{v}");
    assert_eq!(dg["remaining_ms"], 1_710_000, "{v}");
    assert_eq!(dg["exhausted"], false, "{v}");
    assert!(dg["resets_at"].as_str().is_some_and(|t| t.ends_with("T00:00:00Z")), "{v}");
}

#[tokio::test]
async fn a_malformed_case_reference_is_404_on_omis_case_routes_and_400_on_the_appeal() {
    let app = app();
    let (status, v) = app.call("GET", "/v1/fair-use/case/not-a-case/status", As::Nobody, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["detail"], "Case not found", "{v}");
    let (status, v) = app.call("GET", "/v1/admin/fair-use/case/fu-1", As::Admin(VIEWER_KEY), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["detail"], "Case fu-1 not found", "{v}");
    let (status, v) =
        app.call("POST", "/v1/fair-use/case/not-a-case/appeal", As::User("u1"), r#"{"text":"hello"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "our own route names the field: {v}");
    assert_eq!(field(&v), "case_ref");
}

#[tokio::test]
async fn events_on_omis_admin_routes_carry_omis_trigger_names_and_fields() {
    use fairuse_domain::classifier::{ScriptedClassifier, UsageType};
    use fairuse_domain::engine;
    use fairuse_domain::ids::Uid;
    use fairuse_domain::windows::WindowTotals;
    let app = app();
    let uid = Uid::parse("u1").unwrap();
    let (_, events) = app
        .service
        .update(&uid, |s, ctx| {
            let plan = s.plan_id(ctx.policy);
            // Over the 72 h cap only: Omi names that trigger `3day`.
            let totals = WindowTotals::new(ctx.policy, vec![3_600_000, 9 * 3_600_000, 9 * 3_600_000]);
            let check = engine::check_caps(totals, plan, ctx.policy);
            let trigger = check.trigger("soft_cap", plan, ctx.policy);
            Ok(engine::apply_verdict(
                s,
                ScriptedClassifier::scripted(0.9, UsageType::Audiobook),
                Some(trigger),
                None,
                ctx,
            ))
        })
        .await
        .unwrap();
    let case = events.last().unwrap().case_ref.to_string();
    let (status, user) = app.call("GET", "/v1/admin/fair-use/user/u1", As::Admin(VIEWER_KEY), "").await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let (status, by_case) =
        app.call("GET", &format!("/v1/admin/fair-use/case/{case}"), As::Admin(VIEWER_KEY), "").await;
    assert_eq!(status, StatusCode::OK, "{by_case}");
    for e in [&user["events"][0], &by_case] {
        assert_eq!(e["trigger"], "3day", "{e}");
        assert_eq!(e["window_speech_ms"]["three_day_ms"], 9 * 3_600_000, "{e}");
        assert_eq!(e["thresholds_ms"]["three_day"], 8 * 3_600_000, "{e}");
        assert_eq!(e["classifier"]["misuse_score"], 0.9, "{e}");
        assert_eq!(e["enforcement_action"], "warning", "{e}");
        assert_eq!(e["resolved"], false, "{e}");
        assert_eq!(e["trigger_detail"]["windows"][1]["window"], "three_day", "ours, kept beside: {e}");
    }
    assert_eq!(by_case["uid"], "u1");
    // Our own route keeps our names.
    let (_, d) = app.call("GET", "/v1/users/u1/decision", As::Service, "").await;
    assert!(d["triggered"].as_array().is_some(), "{d}");
}
