//! Backtesting on recorded history: real traffic goes through the HTTP service on a virtual clock,
//! `export-trace` writes what the stores kept, and `backtest` replays it under two policies.
//!
//! The service is the real router and `Service` (embedded store, or Redis and PostgreSQL chosen by
//! the configuration as `serve` chooses them) with a manual clock; its timer sweep and job queue
//! are run by hand at every minute, as in `tests/replay.rs`. Every report is sent at the start of
//! its minute, where the exported bucket puts it, so the simulator sees what the service saw.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fairuse::backtest::{ByStage, Report, Side as PolicySide, backtest};
use fairuse::export::{ExportOptions, export_trace};
use fairuse::sim::SimClassifier;
use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::ids::Uid;
use fairuse_domain::policy::Policy;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, ManualClock, Timestamp};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use fairuse_store_embedded::EmbeddedStore;
use serde_json::{Value, json};
use tower::ServiceExt;

const SERVICE_KEY: &str = "backtest-service-key-0123456789";
const OPERATOR_KEY: &str = "backtest-operator-key-0123456789";
const PSEUDONYM_KEY: &[u8] = b"a-key-of-at-least-16-bytes";

/// Three UTC days before the wall clock, at midnight: recent enough for `export-trace` run as a
/// binary (it reads history back from the wall clock's now), and a whole number of days so the
/// hours of the day are the same on every run.
fn start() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    (now / MS_PER_DAY - 3) * MS_PER_DAY
}

const READ: &str = "The narrator reads on.";

/// What happens at one minute, in order.
enum Act {
    Usage(&'static str, i64),
    /// uid, id, title, overview, minutes long.
    Conversation(&'static str, String, String, &'static str, i64),
    Plan(&'static str, &'static str, bool),
    SetStage(&'static str, Stage, i64),
    /// The gateway's record of a stream: uid, session id, minutes long (closed now).
    Session(&'static str, String, i64),
}

/// The traffic of `hours` hours, by minute.
///
/// - `reader` listens to audiobooks 20 h a day, a chapter an hour: staged under any policy;
/// - `moderate` listens two hours a day without a pause, two 60-minute chapters (110 minutes of
///   speech): under the shipped 2 h daily cap, over a 1 h one;
/// - `manager` is in meetings 09:00-17:00: over the caps, honestly, never staged;
/// - `pro` listens 3 h a day on the unlimited plan (4 h cap): staged only if the plan were lost;
/// - `freebie` has used up a free plan's credits: the synthetic verdict warns them;
/// - `manual` is throttled by an admin for five hours, then steps down;
/// - `light` speaks 20 minutes a day.
fn traffic(hours: i64) -> BTreeMap<i64, Vec<Act>> {
    let mut by_minute: BTreeMap<i64, Vec<Act>> = BTreeMap::new();
    let mut push = |m: i64, a: Act| by_minute.entry(m).or_default().push(a);
    push(0, Act::Plan("pro", "unlimited", false));
    push(0, Act::Plan("freebie", "free", true));
    push(120, Act::SetStage("manual", Stage::Throttle, 120 + 300));
    for m in 0..hours * 60 {
        let minute_of_day = m % (24 * 60);
        let hour_of_day = minute_of_day / 60;
        if hour_of_day < 20 {
            if m % 60 == 0 && m > 0 {
                let n = m / 60;
                push(
                    m,
                    Act::Conversation(
                        "reader",
                        format!("reader-{n}"),
                        format!("The Silent Harbor - Chapter {n}"),
                        READ,
                        60,
                    ),
                );
                push(m, Act::Session("reader", format!("gw-reader-{n}"), 60));
            }
            push(m, Act::Usage("reader", 55_000));
        }
        if (600..720).contains(&minute_of_day) {
            push(m, Act::Usage("moderate", 55_000));
        }
        if minute_of_day == 660 || minute_of_day == 720 {
            let n = m / 60;
            let title = format!("The Long Road - Chapter {n}");
            push(m, Act::Conversation("moderate", format!("moderate-{n}"), title, READ, 60));
        }
        if (9..17).contains(&hour_of_day) {
            if m % 60 == 0 && hour_of_day > 9 {
                let title = "Weekly planning meeting with the design team".to_owned();
                push(m, Act::Conversation("manager", format!("mgr-{m}"), title, "Team sync on the roadmap.", 60));
            }
            push(m, Act::Usage("manager", 40_000));
        }
        if (300..480).contains(&minute_of_day) {
            if minute_of_day % 60 == 0 && minute_of_day > 300 {
                let n = m / 60;
                push(m, Act::Conversation("pro", format!("pro-{n}"), format!("Ocean Tales - Chapter {n}"), READ, 60));
            }
            push(m, Act::Usage("pro", 58_000));
        }
        if (600..780).contains(&m) {
            push(m, Act::Usage("freebie", 45_000));
        }
        if (120..420).contains(&m) {
            push(m, Act::Usage("manual", 20_000));
        }
        if (1000..1020).contains(&minute_of_day) {
            push(m, Act::Usage("light", 60_000));
        }
    }
    by_minute
}

struct Driven {
    app: Router,
    service: Arc<Service>,
    clock: Arc<ManualClock>,
}

impl Driven {
    fn new(stores: Stores, t0: i64) -> Driven {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(t0)));
        let service = Arc::new(Service::new(
            stores,
            Policy::default(),
            clock.clone(),
            Arc::new(HeuristicClassifier),
            Notifications::default(),
        ));
        let env = HashMap::from([
            ("FAIRUSE_SERVICE_KEYS".to_string(), SERVICE_KEY.to_string()),
            ("FAIRUSE_ADMIN_KEYS".into(), format!("ops:operator:{OPERATOR_KEY}")),
        ]);
        let auth = fairuse_auth::Authenticator::from_env_map(&env).expect("keys");
        let app = router(AppState {
            service: service.clone(),
            auth: Arc::new(auth),
            settings: HttpSettings::default(),
            metrics: None,
            ready: Arc::new(|| Box::pin(async { Ok(()) })),
        });
        Driven { app, service, clock }
    }

    async fn call(&self, method: &str, path: &str, body: Value, admin: bool) {
        let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
        req = if admin {
            req.header("x-admin-key", OPERATOR_KEY)
        } else {
            req.header("authorization", format!("Bearer {SERVICE_KEY}"))
        };
        let resp =
            self.app.clone().oneshot(req.body(Body::from(body.to_string())).expect("request")).await.expect("answer");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        assert_eq!(status, StatusCode::OK, "{method} {path} {body}: {}", String::from_utf8_lossy(&bytes));
    }

    /// The workers, by hand: timers, then every job due now.
    async fn run_workers(&self) {
        self.service.apply_due_timers(1000).await.expect("timer sweep");
        loop {
            let jobs = self.service.claim_jobs(self.service.now(), 100, 60_000).await.expect("claim");
            if jobs.is_empty() {
                break;
            }
            for job in &jobs {
                self.service.run_job(job).await.expect("job");
            }
        }
    }

    async fn drive(&self, t0: i64, traffic: &BTreeMap<i64, Vec<Act>>) {
        let at = |m: i64| Timestamp::from_millis(t0 + m * MS_PER_MINUTE).to_rfc3339();
        for (&m, acts) in traffic {
            self.clock.set(Timestamp::from_millis(t0 + m * MS_PER_MINUTE));
            self.run_workers().await;
            for act in acts {
                match act {
                    Act::Usage(uid, ms) => {
                        let body = json!({"uid": uid, "lane": "realtime", "speech_ms": ms, "stt_ms": 60_000});
                        self.call("POST", "/v1/usage", body, false).await;
                    }
                    Act::Conversation(uid, id, title, overview, minutes) => {
                        let body = json!({"conversation_id": id, "title": title, "overview": overview,
                            "category": "", "started_at": at(m - minutes), "finished_at": at(m), "source": "omi"});
                        self.call("POST", &format!("/v1/users/{uid}/conversations"), body, false).await;
                    }
                    Act::Plan(uid, plan, credits) => {
                        let body = json!({"plan": plan, "credits_exhausted": credits});
                        self.call("PUT", &format!("/v1/users/{uid}/plan"), body, false).await;
                    }
                    Act::SetStage(uid, stage, until) => {
                        let body = json!({"stage": stage, "until": at(*until), "reason": "support ticket 42"});
                        self.call("POST", &format!("/v1/admin/fair-use/user/{uid}/set-stage"), body, true).await;
                    }
                    Act::Session(uid, id, minutes) => {
                        let now = Timestamp::from_millis(t0 + m * MS_PER_MINUTE);
                        let mut s = StreamSession::open(id.clone(), now.minus_ms(minutes * MS_PER_MINUTE));
                        (s.updated_at, s.duration_ms, s.closed) = (now, minutes * MS_PER_MINUTE, true);
                        (s.speech_ms, s.stt_ms) = (minutes * 55_000, minutes * 60_000);
                        let uid = Uid::parse(uid).expect("uid");
                        self.service.record_stream_session(&uid, s).await.expect("stream session");
                    }
                }
            }
            self.run_workers().await;
        }
    }

    /// Each user's stage now and the highest stage the service's events ever moved them to.
    async fn stages(&self, uids: &[&str]) -> BTreeMap<String, (Stage, Stage)> {
        let mut out = BTreeMap::new();
        for uid in uids {
            let u = Uid::parse(uid).expect("uid");
            let now = self.service.current_state(&u).await.expect("state").stage;
            let events = self.service.events(&u, 10_000).await.expect("events");
            let highest = events.iter().map(|e| e.new_stage).max().unwrap_or(Stage::None).max(now);
            out.insert(uid.to_string(), (now, highest));
        }
        out
    }
}

const UIDS: [&str; 7] = ["freebie", "light", "manager", "manual", "moderate", "pro", "reader"];

fn live() -> PolicySide<'static> {
    static LIVE: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    PolicySide { name: "live".into(), policy: LIVE.get_or_init(Policy::default), classifier: SimClassifier::Heuristic }
}

/// The shipped policy with the default (free) plan's daily cap at 1 h instead of 2 h.
fn stricter_toml() -> String {
    let text = Policy::default().to_toml_string();
    let stricter = text.replacen("[plans.free.caps]\ndaily = \"2h\"", "[plans.free.caps]\ndaily = \"1h\"", 1);
    assert_ne!(text, stricter, "the shipped policy's free plan has a 2 h daily cap to tighten");
    stricter
}

fn changed_stage(r: &Report) -> Vec<&str> {
    r.per_user.iter().filter(|u| u.current.highest_stage != u.new.highest_stage).map(|u| u.uid.as_str()).collect()
}

async fn export(stores: &Stores, options: &ExportOptions, now: Timestamp) -> String {
    let mut out = Vec::new();
    let summary = export_trace(stores, &Policy::default(), options, now, &mut out).await.expect("export");
    assert!(summary.usage_lines > 0 && summary.users > 0, "{summary:?}");
    String::from_utf8(out).expect("utf-8")
}

fn options(since_ms: i64) -> ExportOptions {
    ExportOptions { since_ms, uids: None, pseudonymise_key: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_traffic_backtests_to_no_change_under_the_live_policy_and_a_stricter_cap_warns_exactly_the_moderate_listener()
 {
    let t0 = start();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).await.expect("embedded store"));
    let driven = Driven::new(Stores::single(store.clone()), t0);
    driven.drive(t0, &traffic(40)).await;
    let served = driven.stages(&UIDS).await;
    let now = driven.service.now();

    // The stricter cap's premise: what the service did with the traffic.
    assert_eq!(served["reader"].1, Stage::Restrict, "the all-day listener is restricted: {served:?}");
    assert_eq!(served["moderate"].1, Stage::None, "110 minutes of speech a day is under the 2 h cap: {served:?}");
    assert_eq!(served["manager"].1, Stage::None, "meetings are not abuse: {served:?}");
    assert_eq!(served["pro"].1, Stage::None, "3 h is under the unlimited plan's cap: {served:?}");
    assert_eq!(served["freebie"].1, Stage::Warning, "{served:?}");
    assert_eq!(served["manual"], (Stage::Warning, Stage::Throttle), "throttled by hand, stepped down: {served:?}");

    // Export through the library, history back from the virtual clock.
    let trace = export(&Stores::single(store.clone()), &options(4 * MS_PER_DAY), now).await;
    let kinds = |ty: &str| trace.lines().filter(|l| l.contains(&format!("\"type\":\"{ty}\""))).count();
    for ty in ["usage", "plan", "conversation", "stream_session", "verdict", "admin"] {
        assert!(kinds(ty) > 0, "the trace has {ty} lines");
    }
    assert_eq!(kinds("plan"), 2, "the unlimited plan and the exhausted free plan; the default is not stated");
    let stt: i64 = trace
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter_map(|v| v["stt_ms"].as_i64())
        .sum();
    let reports = traffic(40).values().flatten().filter(|a| matches!(a, Act::Usage(..))).count() as i64;
    assert_eq!(stt, reports * 60_000, "every forwarded millisecond is in the trace, spread over the day's minutes");

    // The live policy on the exported trace does what the service did, user by user.
    let same = backtest(&trace, &live(), &live()).expect("backtest");
    for row in &same.per_user {
        let (now_stage, highest) = served[&row.uid];
        assert_eq!((row.current.final_stage, row.current.highest_stage), (now_stage, highest), "{}", row.uid);
    }
    assert_eq!(same.users, UIDS.len() as u64);
    assert_eq!(same.changed_users, 0, "the live policy against itself changes nothing: {same:#?}");
    assert!(same.newly.warning.is_empty() && same.spared.warning.is_empty(), "{same:#?}");
    assert_eq!(same.current, same.new);
    assert_eq!((same.classifier_runs_difference, same.stt_hours_saved_difference), (0, 0.0));
    assert!(same.current.classifier_runs > 0 && same.current.stt_ms_saved > 0, "budgets and runs were exercised");

    // A stricter cap warns the moderate listener, and nobody else newly. The all-day listener
    // crosses the lower cap sooner: judged after one hour, on one chapter, the verdict misses the
    // line by little, the 1 h close re-check judges again on two chapters, and they are warned
    // 5 minutes earlier than under the live policy, then throttled and restricted on the same
    // 12 h steps.
    let strict_policy = Policy::from_toml_str(&stricter_toml()).expect("stricter policy");
    let strict = PolicySide { name: "stricter".into(), policy: &strict_policy, classifier: SimClassifier::Heuristic };
    let report = backtest(&trace, &strict, &live()).expect("backtest");
    assert_eq!(report.newly, ByStage { warning: vec!["moderate".into()], ..ByStage::default() }, "{report:#?}");
    assert_eq!(report.spared, ByStage::default(), "{report:#?}");
    assert_eq!(changed_stage(&report), vec!["moderate"], "{report:#?}");
    let reader = report.per_user.iter().find(|u| u.uid == "reader").expect("reader");
    let warned_at = |o: &fairuse::backtest::Outcome| o.first_reached.get(&Stage::Warning).cloned();
    let hour = |m: i64| Some(Timestamp::from_millis(t0 + m * MS_PER_MINUTE).to_rfc3339());
    assert_eq!((warned_at(&reader.current), warned_at(&reader.new)), (hour(130), hour(125)), "{reader:#?}");
    assert_eq!(reader.new.highest_stage, Stage::Restrict, "{reader:#?}");
    assert!(report.new.stt_ms_saved >= report.current.stt_ms_saved, "an earlier ladder saves no less STT");
    assert!(report.classifier_runs_difference > 0, "a lower cap asks the classifier more often: {report:#?}");
    // And the other way round, the moderate listener is the one spared.
    let back = backtest(&trace, &live(), &strict).expect("backtest");
    assert_eq!(back.spared.warning, vec!["moderate"], "{back:#?}");
    assert_eq!(back.newly, ByStage::default(), "{back:#?}");

    // Pseudonymised: no uid or conversation id left, the same results under other names.
    let key = ExportOptions { pseudonymise_key: Some(PSEUDONYM_KEY.to_vec()), ..options(4 * MS_PER_DAY) };
    let hidden = export(&Stores::single(store.clone()), &key, now).await;
    assert_eq!(hidden.lines().count(), trace.lines().count());
    for uid in UIDS {
        assert!(!hidden.contains(&format!("\"{uid}\"")), "{uid} appears in the pseudonymised trace");
    }
    assert!(!hidden.contains("\"reader-1\""), "conversation ids are pseudonymised too");
    assert!(!hidden.contains("gw-reader-"), "stream session ids are pseudonymised too");
    assert_eq!(hidden.matches("\"stream_session\"").count(), kinds("stream_session"));
    let pseudo = backtest(&hidden, &strict, &live()).expect("backtest");
    let moderate = fairuse::export::pseudonym_of_uid(PSEUDONYM_KEY, "moderate").expect("pseudonym");
    assert_eq!(pseudo.newly.warning, vec![moderate]);
    assert_eq!((pseudo.current.clone(), pseudo.new.clone()), (report.current.clone(), report.new.clone()));

    // The binaries: export-trace on the data directory (the service closed, since the embedded
    // store is one process's), then backtest as a tool would run it.
    store.close().await;
    let out_dir = tempfile::tempdir().expect("temp dir");
    let trace_path = out_dir.path().join("trace.jsonl");
    let run = common::fairuse_command()
        .args(["export-trace", "--since", "9d", "--out"])
        .arg(&trace_path)
        .arg("--data-dir")
        .arg(dir.path())
        .env("FAIRUSE_LOG", "warn")
        .output()
        .expect("run export-trace");
    assert!(run.status.success(), "export-trace: {}", String::from_utf8_lossy(&run.stderr));
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(said.contains("warning: --since 9d is longer than the retention (8d)"), "{said}");
    assert!(said.contains("for 7 users"), "{said}");
    let from_binary = std::fs::read_to_string(&trace_path).expect("trace");
    assert_eq!(
        from_binary.lines().filter(|l| !l.contains("\"conversation\"")).collect::<Vec<_>>(),
        trace.lines().filter(|l| !l.contains("\"conversation\"")).collect::<Vec<_>>(),
        "the binary exports the same usage, plans, verdicts and admin actions"
    );
    let policy_path = out_dir.path().join("stricter.toml");
    std::fs::write(&policy_path, stricter_toml()).expect("write policy");
    let run = common::fairuse_command()
        .args(["backtest", "--json", "--policy"])
        .arg(&policy_path)
        .arg("--trace")
        .arg(&trace_path)
        .output()
        .expect("run backtest");
    assert!(run.status.success(), "backtest: {}", String::from_utf8_lossy(&run.stderr));
    let json: Value = serde_json::from_slice(&run.stdout).expect("json report");
    assert_eq!(json["newly"]["warning"], json!(["moderate"]), "{json:#}");
    assert_eq!(json["against"], "the shipped default policy");
    assert_eq!(json["per_user"].as_array().map(Vec::len), Some(UIDS.len()));
    let text = common::fairuse_command()
        .args(["backtest", "--policy"])
        .arg(&policy_path)
        .arg("--trace")
        .arg(&trace_path)
        .output()
        .expect("run backtest");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("newly warned (1): moderate"), "{text}");
    assert!(text.contains("spared: nobody"), "{text}");
    assert!(text.contains("users warned                         3           4        +1"), "{text}");
}

#[test]
fn bad_input_to_the_new_commands_names_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trace = dir.path().join("t.jsonl");
    std::fs::write(
        &trace,
        "{\"t\":\"2026-03-02T00:01:00Z\",\"type\":\"tick\"}\n{\"t\":\"2026-03-02T00:00:00Z\",\"type\":\"usage\",\"uid\":\"a\",\"speech_ms\":1}\n",
    )
    .expect("write");
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "default_plan = \"gold\"\n").expect("write");
    let run = |args: &[&str]| {
        let out = common::fairuse_command().args(args).env("FAIRUSE_LOG", "warn").output().expect("run");
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let t = trace.to_str().expect("path");
    let p = policy.to_str().expect("path");
    let d = dir.path().join("data");
    let d = d.to_str().expect("path");
    assert!(run(&["backtest", "--policy", "/nonexistent.toml", "--trace", t]).contains("--policy: reading"));
    assert!(run(&["backtest", "--policy", p, "--trace", t]).contains("--policy: policy file"));
    let good = dir.path().join("good.toml");
    std::fs::write(&good, Policy::default().to_toml_string()).expect("write");
    let g = good.to_str().expect("path");
    let e = run(&["backtest", "--policy", g, "--trace", t]);
    assert!(e.contains("--trace: line 2: t:") && e.contains("time order"), "{e}");
    assert!(run(&["backtest", "--policy", g, "--against", p, "--trace", t]).contains("--against: policy file"));
    let e = run(&["export-trace", "--since", "a week", "--out", "-", "--data-dir", d]);
    assert!(e.contains("--since:"), "{e}");
    let e = run(&["export-trace", "--uids", "ok,not ok", "--out", "-", "--data-dir", d]);
    assert!(e.contains("--uids: \"not ok\""), "{e}");
    let e = run(&["export-trace", "--pseudonymise-key", "short", "--out", "-", "--data-dir", d]);
    assert!(e.contains("--pseudonymise-key: at least 16 bytes"), "{e}");
}

/// Redis and PostgreSQL, chosen by the configuration as `serve` chooses them: the same traffic
/// exports to the same trace, byte for byte, as from the embedded store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_postgresql_export_the_same_trace_as_the_embedded_store() {
    common::require_servers();
    let t0 = start();
    let hours = 14;
    let (prefix, schema) = (common::unique("fubt"), common::unique("fu_bt_"));
    let env: BTreeMap<String, String> =
        common::distributed_env(common::REDIS_URL, common::DATABASE_URL, &prefix, &schema).into_iter().collect();
    let config = fairuse::config::Config::load(None, &env).expect("config");
    let built = fairuse::serve::build_stores(&config).await.expect("Redis and PostgreSQL stores");
    assert!(built.embedded.is_none(), "both roles distributed");
    let distributed = Driven::new(built.stores.clone(), t0);
    distributed.drive(t0, &traffic(hours)).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).await.expect("embedded store"));
    let embedded = Driven::new(Stores::single(store.clone()), t0);
    embedded.drive(t0, &traffic(hours)).await;

    let now = Timestamp::from_millis(t0 + hours * MS_PER_HOUR);
    let from_distributed = export(&built.stores, &options(2 * MS_PER_DAY), now).await;
    let from_embedded = export(&Stores::single(store.clone()), &options(2 * MS_PER_DAY), now).await;
    for ty in ["usage", "plan", "conversation", "verdict", "admin"] {
        assert!(from_distributed.contains(&format!("\"type\":\"{ty}\"")), "the trace has {ty} lines");
    }
    assert_eq!(from_distributed, from_embedded, "Redis + PostgreSQL export what the embedded store exports");
    let only = ExportOptions { uids: Some(vec![Uid::parse("manual").expect("uid")]), ..options(2 * MS_PER_DAY) };
    let manual = export(&built.stores, &only, now).await;
    assert!(manual.lines().all(|l| l.contains("\"uid\":\"manual\"")), "--uids exports only those users");
    assert!(manual.contains("\"action\":\"set_stage\",\"stage\":\"throttle\""), "{manual}");
    // Best effort: the schema only holds this test's rows.
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c"])
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .output();
}
