//! A backtest must be what production does: one trace (caps crossed gradually and in one batch,
//! timers, budgets, a reset, a manual stage, the free tier) replayed through `simulate` and through
//! the HTTP service on a virtual clock, and every event compared.
//!
//! The service side is the real router and `Service` on the embedded store (SQLite in a temporary
//! directory), with a manual clock. Its workers are driven by hand at each trace instant: the timer
//! sweep and the job queue (due evaluations and classifier jobs) are run before each line, as the
//! simulator applies timers and due evaluations before it, and the job queue again after it, as the
//! simulator classifies at once. Both sides use the heuristic classifier.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fairuse::sim::{SimClassifier, Simulator};
use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::engine::{Event, EventKind};
use fairuse_domain::ids::Uid;
use fairuse_domain::policy::Policy;
use fairuse_domain::time::{MS_PER_HOUR, MS_PER_MINUTE, ManualClock, Timestamp};
use fairuse_server::http::{AppState, HttpSettings, router};
use fairuse_server::service::{Notifications, Service, Stores};
use fairuse_store_embedded::EmbeddedStore;
use serde_json::{Value, json};
use tower::ServiceExt;

const SERVICE_KEY: &str = "replay-service-key-0123456789";
const OPERATOR_KEY: &str = "replay-operator-key-0123456789";
/// 2026-03-02T00:00:00Z, a Monday.
const T0: i64 = 1_772_409_600_000;
const MINUTES: i64 = 80 * 60;
/// 55 s of speech a minute from minute 0 goes over the 2 h daily cap with the report of minute
/// 130 (judged then); the cooldown ends 720 minutes later. The last report comes a minute before.
const LULL_FIRST_JUDGED: i64 = 130;
const LULL_LAST_REPORT: i64 = LULL_FIRST_JUDGED + 720 - 1;
/// Like the lull's listener, but the stream stops at minute 840 and one last report comes at 848:
/// its evaluation takes the slot (to 853) and finds the user cooling down (to 850), so the
/// re-judgement due at 851 finds the slot taken and must try again when it is free.
const DUSK_STREAM_END: i64 = 840;
const DUSK_LAST_REPORT: i64 = 848;

fn at(minute: i64) -> String {
    Timestamp::from_millis(T0 + minute * MS_PER_MINUTE).to_rfc3339()
}

fn usage(minute: i64, uid: &str, speech_ms: i64, stt_ms: i64) -> Value {
    json!({"t": at(minute), "type": "usage", "uid": uid, "lane": "realtime", "speech_ms": speech_ms, "stt_ms": stt_ms})
}

fn conversation(minute: i64, uid: &str, id: String, title: String, overview: &str, minutes: i64) -> Value {
    json!({"t": at(minute), "type": "conversation", "uid": uid, "conversation": {
        "conversation_id": id, "title": title, "overview": overview, "category": "",
        "started_at": at(minute - minutes), "finished_at": at(minute), "source": "omi"}})
}

/// The trace, one line per value, in time order (lines of one minute in the order pushed).
fn trace() -> Vec<Value> {
    let mut by_minute: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    let mut push = |minute: i64, v: Value| by_minute.entry(minute).or_default().push(v);
    push(0, json!({"t": at(0), "type": "plan", "uid": "batch", "plan": "unlimited", "credits_exhausted": false}));
    push(0, json!({"t": at(0), "type": "plan", "uid": "freebie", "plan": "free", "credits_exhausted": true}));
    for m in 0..MINUTES {
        let hour_of_day = (m / 60) % 24;
        // Two listeners of audiobooks, 20 hours a day, a chapter an hour; one of them is reset.
        for who in ["reader", "resetme"] {
            if hour_of_day < 20 {
                push(m, usage(m, who, 55_000, 60_000));
                if m % 60 == 59 {
                    let n = m / 60 + 1;
                    let title = format!("The Silent Harbor - Chapter {n}");
                    push(m, conversation(m, who, format!("{who}-{n}"), title, "The narrator reads on.", 60));
                }
            }
        }
        // A manager in meetings 09:00-17:00: over the 2 h cap every day, honestly.
        if (9..17).contains(&hour_of_day) {
            push(m, usage(m, "manager", 40_000, 60_000));
            if m % 60 == 59 {
                let title = "Weekly planning meeting with the design team".to_owned();
                push(m, conversation(m, "manager", format!("mgr-{m}"), title, "Team sync on the roadmap.", 60));
            }
        }
        // An admin throttles someone for five hours, during which they forward 4 h: the budget runs
        // out, then the timer steps them down.
        if (120..420).contains(&m) {
            push(m, usage(m, "manual", 20_000, 60_000));
        }
        // A free user with no credits left, three hours of speech.
        if (600..780).contains(&m) {
            push(m, usage(m, "freebie", 45_000, 60_000));
        }
        // A listener whose classifier cooldown (12 h) runs out a minute after their last report:
        // only the due evaluation that report queued can judge them again.
        if m <= LULL_LAST_REPORT {
            push(m, usage(m, "lull", 55_000, 0));
            if m % 60 == 59 {
                let title = format!("Tales of the North - Chapter {}", m / 60 + 1);
                push(m, conversation(m, "lull", format!("lull-{m}"), title, "The narrator reads.", 60));
            }
        }
        if m < DUSK_STREAM_END || m == DUSK_LAST_REPORT {
            push(m, usage(m, "dusk", 55_000, 0));
            if m % 60 == 59 {
                let title = format!("Songs of the Delta - Chapter {}", m / 60 + 1);
                push(m, conversation(m, "dusk", format!("dusk-{m}"), title, "The narrator reads.", 60));
            }
        }
        push(m, json!({"t": at(m), "type": "tick"}));
    }
    push(
        119,
        json!({"t": at(119), "type": "admin", "uid": "manual", "action": "set_stage", "stage": "throttle",
        "until": at(119 + 300), "reason": "support ticket"}),
    );
    push(30 * 60, json!({"t": at(30 * 60), "type": "admin", "uid": "resetme", "action": "reset"}));
    // Conversations first, then one big sync batch under the unlimited cap (4 h is not over 4 h),
    // and a second a minute later that crosses it: judged at once, with nothing after it.
    for n in 1..=3 {
        let title = format!("Midnight Library - Chapter {n}");
        push(200 + n, conversation(200 + n, "batch", format!("batch-{n}"), title, "The narrator reads.", 60));
    }
    push(240, usage(240, "batch", 4 * MS_PER_HOUR, 0));
    push(241, usage(241, "batch", 4 * MS_PER_HOUR, 0));
    // Gradual: a user under the cap for a while, then minutes of speech until over it.
    for m in 300..460 {
        push(m, usage(m, "gradual", 50_000, 0));
    }
    for n in 1..=2 {
        let title = format!("Ocean Tales Podcast - Episode {n}");
        push(300 + 60 * n, conversation(300 + 60 * n, "gradual", format!("g-{n}"), title, "The host talks.", 60));
    }
    let mut lines = Vec::new();
    for (m, mut vs) in by_minute {
        // Ticks last within a minute, admin and plan lines first, so both sides see one order.
        vs.sort_by_key(|v| match v["type"].as_str() {
            Some("plan" | "admin") => 0,
            Some("tick") => 2,
            _ => 1,
        });
        debug_assert!(vs.iter().all(|v| v["t"] == at(m)));
        lines.extend(vs);
    }
    lines
}

/// A comparable view of one outcome line: everything but the case reference (random in the
/// service, sequential in the simulator) and the budget's `used_ms` (the simulator holds audio back
/// at the budget as the gateway does; a host reports what it forwarded, so the service's count may
/// run past the limit).
fn comparable(mut line: Value) -> Value {
    let o = line.as_object_mut().expect("an object");
    o.remove("case_ref");
    o.remove("used_ms");
    line
}

/// Service events as the simulator writes them.
fn outcome_lines(e: &Event, qualify: f64) -> Vec<Value> {
    let base = |kind: &str| json!({"t": e.created_at.to_rfc3339(), "type": kind, "uid": e.uid});
    let stage_line = |kind: &str| {
        let mut v = base(kind);
        v["from"] = json!(e.previous_stage);
        v["to"] = json!(e.new_stage);
        v
    };
    match e.kind {
        EventKind::Classified => {
            let score = e.verdict.as_ref().map_or(0.0, |v| v.misuse_score);
            let mut v = base("classified");
            v["misuse_score"] = json!(score);
            v["usage_type"] = json!(e.verdict.as_ref().map(|v| v.usage_type.as_str()));
            v["qualifies"] = json!(score >= qualify);
            let mut out = vec![v];
            if e.changes_stage() {
                out.push(stage_line("stage_changed"));
            }
            out
        }
        EventKind::BudgetExhausted => {
            let mut v = base("budget_exhausted");
            v["limit_ms"] = json!(e.budget.as_ref().map(|b| b.limit_ms));
            vec![v]
        }
        kind => vec![stage_line(kind.as_str())],
    }
}

struct Side {
    app: Router,
    service: Arc<Service>,
    clock: Arc<ManualClock>,
}

impl Side {
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

    /// The workers, by hand: timers, then every job due now (a due evaluation may queue a job).
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

    async fn line(&self, v: &Value) {
        let t = Timestamp::parse_rfc3339(v["t"].as_str().expect("t")).expect("t");
        self.clock.set(t);
        self.run_workers().await;
        let uid = v["uid"].as_str().unwrap_or_default();
        match v["type"].as_str().expect("type") {
            "usage" => {
                let mut report = v.clone();
                let o = report.as_object_mut().expect("object");
                o.remove("t");
                o.remove("type");
                self.call("POST", "/v1/usage", report, false).await;
            }
            "plan" => {
                let body = json!({"plan": v["plan"], "credits_exhausted": v["credits_exhausted"]});
                self.call("PUT", &format!("/v1/users/{uid}/plan"), body, false).await;
            }
            "conversation" => {
                self.call("POST", &format!("/v1/users/{uid}/conversations"), v["conversation"].clone(), false).await;
            }
            "admin" if v["action"] == "reset" => {
                let path = format!("/v1/admin/fair-use/user/{uid}/reset");
                self.call("POST", &path, json!({}), true).await;
            }
            "admin" => {
                let body = json!({"stage": v["stage"], "until": v["until"], "reason": v["reason"]});
                self.call("POST", &format!("/v1/admin/fair-use/user/{uid}/set-stage"), body, true).await;
            }
            _ => {}
        }
        self.run_workers().await;
    }
}

#[tokio::test]
async fn one_trace_through_simulate_and_through_the_http_service_gives_the_same_events() {
    let lines = trace();
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    let policy = Policy::default();

    // The simulator.
    let mut out = Vec::new();
    let summary = Simulator::new(&policy, SimClassifier::Heuristic, &mut out).run(text.as_bytes()).expect("simulate");
    let mut simulated: Vec<Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| v["type"] != "summary")
        .map(comparable)
        .collect();

    // The service.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).await.expect("embedded store"));
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let service = Arc::new(Service::new(
        Stores::single(store.clone()),
        policy.clone(),
        clock.clone(),
        Arc::new(HeuristicClassifier),
        Notifications::default(),
    ));
    let env = HashMap::from([
        ("FAIRUSE_SERVICE_KEYS".to_string(), SERVICE_KEY.to_string()),
        ("FAIRUSE_ADMIN_KEYS".into(), format!("trace:operator:{OPERATOR_KEY}")),
    ]);
    let auth = fairuse_auth::Authenticator::from_env_map(&env).expect("keys");
    let app = router(AppState {
        service: service.clone(),
        auth: Arc::new(auth),
        settings: HttpSettings::default(),
        metrics: None,
        ready: Arc::new(|| Box::pin(async { Ok(()) })),
    });
    let side = Side { app, service: service.clone(), clock };
    for v in &lines {
        side.line(v).await;
    }
    let mut served = Vec::new();
    let mut uids: Vec<&str> = lines.iter().filter_map(|v| v["uid"].as_str()).collect();
    uids.sort();
    uids.dedup();
    for uid in &uids {
        let mut events = service.events(&Uid::parse(uid).expect("uid"), 10_000).await.expect("events");
        events.reverse(); // oldest first
        for e in &events {
            served.extend(outcome_lines(e, policy.classifier.qualify_score).into_iter().map(comparable));
        }
    }

    // Same events, whatever order each side interleaves users in within one instant.
    let key = |v: &Value| (v["uid"].as_str().unwrap_or("").to_owned(), v["t"].as_str().unwrap_or("").to_owned());
    simulated.sort_by_key(key);
    served.sort_by_key(key);
    let count = |vs: &[Value], ty: &str| vs.iter().filter(|v| v["type"] == ty).count();
    for ty in ["classified", "stage_changed", "budget_exhausted", "timer_expired", "admin_reset", "admin_set_stage"] {
        assert!(count(&simulated, ty) > 0, "the trace exercises {ty}: {simulated:#?}");
    }
    assert_eq!(summary.classifier_runs as usize, count(&simulated, "classified"));
    for (i, (s, v)) in simulated.iter().zip(&served).enumerate() {
        assert_eq!(s, v, "event {i} differs (simulated, served)");
    }
    assert_eq!(simulated.len(), served.len(), "as many events on both sides");
    // What the trace was written to show.
    let stage_of = |uid: &str| {
        simulated.iter().rev().find(|v| v["uid"] == uid && v["to"].is_string()).map(|v| v["to"].as_str().unwrap_or(""))
    };
    assert_eq!(stage_of("reader"), Some("restrict"), "the continuous listener is restricted");
    assert_eq!(stage_of("manager"), None, "the manager is never staged");
    assert_eq!(stage_of("batch"), Some("warning"), "the batch crossing is judged without a later report");
    assert_eq!(stage_of("gradual"), Some("warning"), "the gradual crossing is judged");
    assert_eq!(stage_of("manual"), Some("warning"), "the manual throttle timed out");
    assert_eq!(stage_of("freebie"), Some("warning"), "the free tier's synthetic verdict");
    // The free user's last report is at minute 779, inside the cooldown of the verdict at 760: they
    // are judged again when the cooldown ends (plus the grace), with no report to prompt it.
    let freebie: Vec<&str> = simulated
        .iter()
        .filter(|v| v["uid"] == "freebie" && v["type"] == "classified")
        .filter_map(|v| v["t"].as_str())
        .collect();
    assert_eq!(freebie, [at(760), at(760 + 720 + 1)], "judged at 760 and again when the cooldown ends");
    let lull: Vec<&str> = simulated
        .iter()
        .filter(|v| v["uid"] == "lull" && v["type"] == "classified")
        .filter_map(|v| v["t"].as_str())
        .collect();
    // Reports of minutes 846-849 found the slot taken (judged at 845); the first queued a due
    // evaluation for 851, after the cooldown ended at 850.
    assert_eq!(lull, vec![at(LULL_FIRST_JUDGED), at(LULL_LAST_REPORT + 2)], "judged again with no later report");
    let dusk: Vec<&str> = simulated
        .iter()
        .filter(|v| v["uid"] == "dusk" && v["type"] == "classified")
        .filter_map(|v| v["t"].as_str())
        .collect();
    // The re-judgement due at 851 found the slot taken by the evaluation of 848, which judged
    // nothing (cooling down to 850); it tried again when that slot had ended, at 856.
    assert_eq!(dusk, vec![at(LULL_FIRST_JUDGED), at(851 + 5)], "the last report's evaluation does not swallow it");
}
