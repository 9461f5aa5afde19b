//! The admin dashboard end to end: the real binary with seeded data, and `e2e/dashboard.mjs`
//! driving Debian's Chromium (headless, through playwright-core) through it: sign in, find a
//! flagged user, open the page, see the chart and the evidence, overturn the verdict, set a
//! stage, exempt and un-exempt, reset; a viewer sees no actions and cannot reset. The script
//! saves its screenshots under `target/e2e-screenshots/` (with `FAIRUSE_UPDATE_DOCS=1`, in `docs/`,
//! which is how the README's pictures are refreshed). Afterwards this test checks the outcome
//! through the API.
//!
//! Needs node, /usr/bin/chromium and `e2e/node_modules`; `bash scripts/test` installs them. When
//! one is missing the test fails and says so: it never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fairuse_domain::time::Timestamp;
use serde_json::{Value, json};

const UID: &str = "hank";
const OTHER_UID: &str = "tina";
const THIRD_UID: &str = "rex";
const CHROMIUM: &str = "/usr/bin/chromium";
const E2E_LIMIT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// Fails (never skips) with what to run when the browser tooling is missing.
fn require_browser_tools(root: &Path) {
    let how = "run `bash scripts/test` (it installs Debian's chromium and runs `npm ci --prefix e2e`)";
    let node = Command::new("node").arg("--version").output();
    assert!(node.is_ok_and(|o| o.status.success()), "node is not installed or does not run; {how}");
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing; {how}");
    assert!(
        root.join("e2e/node_modules/playwright-core/package.json").exists(),
        "e2e/node_modules/playwright-core is missing; {how}"
    );
}

fn at(secs: i64) -> String {
    Timestamp::from_secs(secs).to_rfc3339()
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// A user over the daily cap whose conversations are audiobook chapters (classified, warned),
/// with a week of history in every lane and an appeal; a user put in throttle and one in
/// restrict by an operator.
async fn seed(s: &TestServer) {
    let now = now_s();
    let start = now - 6 * 3600;
    let conversations: Vec<Value> = (1..=6)
        .map(|i| {
            let st = start + i * 3000;
            json!({"conversation_id": format!("c{i}"), "title": format!("The Hobbit - Chapter {i}"),
                   "category": "entertainment", "started_at": at(st), "finished_at": at(st + 2900), "source": "omi"})
        })
        .collect();
    let r = s
        .client
        .post(s.url(&format!("/v1/users/{UID}/conversations")))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"conversations": conversations}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // One batch (evaluation runs at most once per check interval): 3 h of realtime speech in the
    // last 4 hours, over the free plan's 2 h daily cap, and a week of lighter history.
    let mut reports: Vec<Value> = (0..180)
        .map(|m| json!({"uid": UID, "lane": "realtime", "speech_ms": 60_000, "stt_ms": 60_000, "at": at(now - 4 * 3600 + m * 60)}))
        .collect();
    for day in 1..=6i64 {
        let session = now - day * 86_400 - 3 * 3600 + day * 1800;
        reports.extend((0..50).map(|m| {
            json!({"uid": UID, "lane": "realtime", "speech_ms": 45_000, "stt_ms": 60_000, "at": at(session + m * 60)})
        }));
        reports.extend((0..20).map(
            |m| json!({"uid": UID, "lane": "sync_fresh", "speech_ms": 50_000, "at": at(session + 6 * 3600 + m * 60)}),
        ));
    }
    reports.extend((0..30).map(
        |m| json!({"uid": UID, "lane": "sync_backfill", "speech_ms": 55_000, "at": at(now - 3 * 86_400 + m * 60)}),
    ));
    reports.extend((0..15).map(
        |m| json!({"uid": UID, "lane": "custom_stt", "speech_ms": 40_000, "at": at(now - 5 * 86_400 + 7200 + m * 60)}),
    ));
    assert!(reports.len() <= 1000);
    let (code, body) = json_of(s.post_usage(json!({"reports": reports})).await).await;
    assert_eq!(code, 200, "{body}");

    let stage = eventually(Duration::from_secs(30), || async {
        let d = s.decision(UID).await;
        (d["stage"] != "none").then(|| d["stage"].clone())
    })
    .await
    .expect("the user over the cap was classified");
    assert_eq!(stage, "warning");

    let (_, user) = json_of(s.admin_get(&format!("/v1/admin/fair-use/user/{UID}"), VIEWER_KEY).await).await;
    let classified = user["events"].as_array().unwrap().iter().find(|e| e["kind"] == "classified").unwrap();
    assert_eq!(classified["verdict"]["usage_type"], "audiobook");
    let case = classified["case_ref"].as_str().unwrap();
    let token = hs256_token(UID, json!({}));
    let r = s
        .client
        .post(s.url(&format!("/v1/fair-use/case/{case}/appeal")))
        .bearer_auth(&token)
        .json(&json!({"text": "I listen to my own lectures, <b>not</b> audiobooks"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let until = at(now + 10 * 86_400);
    for (uid, body) in [
        (OTHER_UID, json!({"stage": "throttle", "until": until, "reason": "chargeback review"})),
        (THIRD_UID, json!({"stage": "restrict", "reason": "shared account reselling transcription"})),
    ] {
        let (code, body) =
            json_of(s.admin_post(&format!("/v1/admin/fair-use/user/{uid}/set-stage"), OPERATOR_KEY, body).await).await;
        assert_eq!(code, 200, "{body}");
    }
}

/// Runs the browser script; its output goes to a file (no pipe to fill) and is returned.
/// Where the screenshots go: `docs/` when refreshing the README's pictures, else under target/,
/// emptied first so only this run's files are checked.
fn screenshot_dir(root: &Path) -> std::path::PathBuf {
    if std::env::var("FAIRUSE_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        return root.join("docs");
    }
    let dir = root.join("target").join("e2e-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_e2e(root: &Path, s: &TestServer, shots: &Path) -> (std::process::ExitStatus, String) {
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("e2e.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new("node")
        .arg("e2e/dashboard.mjs")
        .current_dir(root)
        .env("FAIRUSE_E2E_BASE_URL", &s.base)
        .env("FAIRUSE_E2E_OPERATOR_KEY", OPERATOR_KEY)
        .env("FAIRUSE_E2E_OPERATOR_NAME", "olga")
        .env("FAIRUSE_E2E_VIEWER_KEY", VIEWER_KEY)
        .env("FAIRUSE_E2E_VIEWER_NAME", "victor")
        .env("FAIRUSE_E2E_UID", UID)
        .env("FAIRUSE_E2E_OTHER_UID", OTHER_UID)
        .env("FAIRUSE_E2E_SCREENSHOT_DIR", shots)
        .env("FAIRUSE_E2E_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn node");
    let deadline = Instant::now() + E2E_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            let out = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("e2e/dashboard.mjs did not finish within {E2E_LIMIT:?}:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (status, std::fs::read_to_string(&log_path).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_end_to_end_in_a_headless_browser() {
    let root = repo_root();
    require_browser_tools(&root);
    let s = TestServer::start();
    seed(&s).await;

    let shots = screenshot_dir(&root);
    let (status, out) = tokio::task::block_in_place(|| run_e2e(&root, &s, &shots));
    println!("{out}");
    assert!(status.success(), "e2e/dashboard.mjs failed ({status}):\n{out}");

    // What the browser did, seen through the API.
    let (_, user) = json_of(s.admin_get(&format!("/v1/admin/fair-use/user/{UID}"), VIEWER_KEY).await).await;
    assert_eq!(user["state"]["stage"], "none", "reset from the dashboard");
    let events = user["events"].as_array().unwrap();
    let classified = events.iter().find(|e| e["kind"] == "classified").unwrap();
    assert_eq!(classified["resolution"]["outcome"], "overturned", "{classified}");
    assert_eq!(classified["resolution"]["resolved_by"], "olga");
    assert_eq!(classified["resolution"]["notes"], "Own lectures, confirmed by support");
    let reset = events.iter().find(|e| e["kind"] == "admin_reset").expect("a reset event");
    assert_eq!(reset["actor"], "olga");
    assert_eq!(reset["notes"], "appeal accepted");
    assert_eq!(s.decision(UID).await["stage"], "none");
    // The viewer changed nothing.
    let (_, other) = json_of(s.admin_get(&format!("/v1/admin/fair-use/user/{OTHER_UID}"), VIEWER_KEY).await).await;
    assert_eq!(other["state"]["stage"], "throttle");
    assert!(other["events"].as_array().unwrap().iter().all(|e| e["actor"] != "victor"), "{other}");

    for shot in ["dashboard-flagged.png", "dashboard-user.png"] {
        let bytes = std::fs::read(shots.join(shot)).unwrap_or_else(|e| panic!("{}: {e}", shots.join(shot).display()));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "docs/{shot} is a PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), (1280, 800), "docs/{shot} is 1280x800");
    }
}

#[tokio::test]
async fn whoami_names_the_key_and_its_role_and_the_dashboard_files_are_served_strictly() {
    let s = TestServer::start();
    for (key, name, role) in [(OPERATOR_KEY, "olga", "operator"), (VIEWER_KEY, "victor", "viewer")] {
        let (code, me) = json_of(s.admin_get("/v1/admin/fair-use/whoami", key).await).await;
        assert_eq!(code, 200);
        assert_eq!(me, json!({"name": name, "role": role}));
    }
    let (code, _) = json_of(s.admin_get("/v1/admin/fair-use/whoami", "wrong-key-0123456789").await).await;
    assert_eq!(code, 401);
    let r = s.client.get(s.url(&format!("/v1/admin/fair-use/whoami?key={OPERATOR_KEY}"))).send().await.unwrap();
    assert_eq!(r.status(), 401, "a key in the query never counts");

    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(s.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "admin/");
    for (path, ty) in [
        ("/admin/", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/chart.js", "text/javascript"),
        ("/admin/style.css", "text/css"),
        ("/admin/favicon.svg", "image/svg+xml"),
    ] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(ty), "{path}: {:?}", r.headers());
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    let r = s.client.get(s.url("/admin/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s.client.get(s.url("/admin/..%2Fopenapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 404, "only embedded files are served");
}
