//! A classifier that panics is a failed run, not a dead job worker: the failure is logged, the
//! job ends as any classifier failure does (no verdict, lock released, job done), and the same
//! worker goes on to classify the next user.
//!
//! This test has a binary of its own, with the subscriber installed globally before anything logs
//! (see `request_span.rs` for why `set_default` in a shared binary is unreliable).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fairuse_domain::classifier::{
    Classifier, ClassifierError, ClassifierInput, Evidence, ScriptedClassifier, UsageType, Verdict,
};
use fairuse_domain::engine::EventKind;
use fairuse_domain::ids::Lane;
use fairuse_domain::policy::Policy;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{EnforcementStore, LockStore, MemoryStore};
use fairuse_domain::time::{ManualClock, Timestamp};
use fairuse_domain::windows::UsageReport;
use fairuse_server::service::{Notifications, Service, Stores, UserReport, classifier_lock_key};
use fairuse_server::workers::spawn_classifier_worker;

mod support;
use support::{Captured, T0, heard, uid};

/// Panics when asked about `victim`; otherwise a qualifying verdict citing what it was shown.
struct PanicsFor(&'static str);

#[async_trait]
impl Classifier for PanicsFor {
    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        // An await first, so the panic happens inside a polled future, as a backend's would.
        tokio::task::yield_now().await;
        if input.uid == self.0 {
            panic!("classifier bug while judging {}", input.uid);
        }
        let mut v = ScriptedClassifier::scripted(0.9, UsageType::Audiobook);
        v.evidence = input
            .conversations
            .iter()
            .map(|c| Evidence::conversation(c.conversation_id.clone(), c.title.clone(), "narration"))
            .collect();
        Ok(v)
    }
    fn name(&self) -> &str {
        "panics-for"
    }
}

async fn heard_then_over_cap(svc: &Service, u: &str) {
    heard(svc, u).await;
    let report = UsageReport { stt_ms: 0, ..UsageReport::delta(Lane::Realtime, 3 * 3_600_000) };
    svc.record_usage(vec![UserReport { uid: uid(u), report }]).await.unwrap();
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_classifier_is_a_logged_failed_run_and_the_worker_keeps_serving() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber in this binary");

    let store = Arc::new(MemoryStore::new());
    let svc = Arc::new(Service::new(
        Stores::single(store.clone()),
        Policy::default(),
        Arc::new(ManualClock::new(Timestamp::from_millis(T0))),
        Arc::new(PanicsFor("pat")),
        Notifications::default(),
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let worker = spawn_classifier_worker(svc.clone(), shutdown);

    // The classifier panics on pat's job: logged as a failed run, as any classifier failure is.
    heard_then_over_cap(&svc, "pat").await;
    eventually("the failed run to be logged", async || captured.text().contains("classifier failed")).await;
    let log = captured.text();
    let line = log.lines().find(|l| l.contains("classifier failed")).unwrap();
    assert!(line.contains("classifier panicked: classifier bug while judging pat"), "{line}");
    assert!(line.contains("WARN"), "{line}");
    // No verdict, the lock released so the next check may try again, and the job done (a
    // classifier failure is not a job failure: nothing is left to retry or abandon).
    assert!(store.events(&uid("pat"), 10).await.unwrap().is_empty(), "fail open: no verdict, no event");
    eventually("pat's lock to be released", async || {
        store.try_acquire(&classifier_lock_key(&uid("pat")), "probe", 1000, svc.now()).await.unwrap()
    })
    .await;
    assert!(svc.claim_jobs(svc.now(), 10, 1000).await.unwrap().is_empty(), "the job was completed");
    assert!(!log.contains("classifier job failed") && !log.contains("abandoned"), "{log}");

    // The same worker serves the next user.
    assert!(!worker.is_finished(), "the job worker survived the panic");
    heard_then_over_cap(&svc, "quinn").await;
    eventually("quinn's verdict", async || !store.events(&uid("quinn"), 10).await.unwrap().is_empty()).await;
    let events = store.events(&uid("quinn"), 10).await.unwrap();
    assert_eq!((events[0].kind, events[0].new_stage), (EventKind::Classified, Stage::Warning));

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("the worker stops").expect("and never panicked");
}
