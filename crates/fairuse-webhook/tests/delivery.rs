//! Delivery against a local receiver on 127.0.0.1:0 that records every request and can answer
//! 500 for its first N requests, stall, or wait for N concurrent requests. Time for backoff and
//! give-up comes from a `ManualClock`; only the timeout test waits on real time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use fairuse_domain::engine::EnforcementState;
use fairuse_domain::ids::Uid;
use fairuse_domain::store::{EnforcementStore, MemoryStore, OutboxMessage, OutboxStore};
use fairuse_domain::time::{Clock, MS_PER_HOUR, ManualClock, Timestamp};
use fairuse_webhook::{
    DeliveryReport, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookConfig, WebhookDeliverer, backoff,
    verify_signature,
};
use tokio::sync::{Barrier, watch};

const SECRET: &[u8] = b"whsec_test_secret";
const T0: Timestamp = Timestamp::from_millis(1_773_993_600_000); // 2026-03-20T08:00:00Z

#[derive(Debug, Clone)]
struct Recorded {
    headers: HeaderMap,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

#[derive(Default)]
struct Behaviour {
    fail_first: usize,
    stall: Option<Duration>,
    /// Every request waits until this many requests are in flight at once.
    concurrent: Option<usize>,
}

struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Receiver {
    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

struct ReceiverState {
    behaviour: Behaviour,
    requests: Arc<Mutex<Vec<Recorded>>>,
    barrier: Option<Barrier>,
}

async fn hook(State(s): State<Arc<ReceiverState>>, headers: HeaderMap, body: String) -> StatusCode {
    let seen = {
        let mut requests = s.requests.lock().unwrap();
        requests.push(Recorded { headers, body });
        requests.len()
    };
    if let Some(barrier) = &s.barrier {
        barrier.wait().await;
    }
    if let Some(stall) = s.behaviour.stall {
        tokio::time::sleep(stall).await;
    }
    if seen <= s.behaviour.fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

async fn spawn_receiver(behaviour: Behaviour) -> Receiver {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let barrier = behaviour.concurrent.map(Barrier::new);
    let state = Arc::new(ReceiverState { behaviour, requests: Arc::clone(&requests), barrier });
    let app = Router::new().route("/hook", post(hook)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url: format!("http://{addr}/hook"), requests }
}

fn config(url: &str) -> WebhookConfig {
    WebhookConfig::new(url, SECRET.to_vec())
}

fn message(id: &str, created_at: Timestamp) -> OutboxMessage {
    OutboxMessage {
        id: id.into(),
        body: format!(r#"{{"id":"{id}","type":"fair_use.stage_changed"}}"#),
        attempts: 0,
        next_attempt_at: created_at,
        created_at,
        last_error: None,
    }
}

/// Enqueues through the store's commit, as the server does, under a user of its own.
async fn enqueue(store: &MemoryStore, msgs: &[OutboxMessage]) {
    let uid = Uid::parse(&format!("u-{}", msgs[0].id)).unwrap();
    store.commit(&uid, &EnforcementState::default(), 0, &[], msgs).await.unwrap();
}

struct Harness {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    deliverer: Arc<WebhookDeliverer>,
}

fn harness(cfg: WebhookConfig) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(T0));
    let deliverer = Arc::new(WebhookDeliverer::new(cfg, store.clone(), clock.clone()).unwrap());
    Harness { store, clock, deliverer }
}

fn report(delivered: usize, failed: usize, gave_up: usize) -> DeliveryReport {
    DeliveryReport { delivered, failed, gave_up }
}

#[tokio::test]
async fn delivered_message_carries_event_id_timestamp_and_a_verifiable_signature() {
    let rx = spawn_receiver(Behaviour::default()).await;
    let h = harness(config(&rx.url));
    let msg = message("ev-1", T0);
    enqueue(&h.store, std::slice::from_ref(&msg)).await;
    h.clock.advance_ms(1_500);

    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(1, 0, 0));

    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.body, msg.body);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header(EVENT_ID_HEADER), "ev-1");
    let ts: i64 = r.header(TIMESTAMP_HEADER).parse().unwrap();
    assert_eq!(ts, h.clock.now().secs(), "the timestamp is the send time in unix seconds");
    let sig = r.header(SIGNATURE_HEADER);
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
    assert!(verify_signature(SECRET, ts, &r.body, sig));
    assert!(!verify_signature(b"another secret", ts, &r.body, sig));
    assert!(!verify_signature(SECRET, ts, &r.body.replace("ev-1", "ev-2"), sig));
    assert!(!verify_signature(SECRET, ts + 1, &r.body, sig));
    assert_eq!(h.store.pending().await.unwrap(), 0, "a 2xx removes the message");
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 0, 0));
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn receiver_answering_500_gets_the_same_event_again_after_the_backoff() {
    let rx = spawn_receiver(Behaviour { fail_first: 1, ..Behaviour::default() }).await;
    let cfg = config(&rx.url);
    let delay = backoff("ev-retry", 1, &cfg);
    let h = harness(cfg);
    enqueue(&h.store, &[message("ev-retry", T0)]).await;

    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 1, 0));
    assert_eq!(h.store.pending().await.unwrap(), 1);

    // Not due before the backoff has passed, whatever the lease says.
    h.clock.advance_ms(delay.as_millis() as i64 - 1);
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 0, 0));
    assert_eq!(rx.requests().len(), 1);

    h.clock.advance_ms(1);
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(1, 0, 0));

    let requests = rx.requests();
    assert_eq!(requests.len(), 2, "exactly one retry");
    assert!(requests.iter().all(|r| r.header(EVENT_ID_HEADER) == "ev-retry"));
    assert_eq!(requests[0].body, requests[1].body);
    let retry_ts: i64 = requests[1].header(TIMESTAMP_HEADER).parse().unwrap();
    assert_eq!(retry_ts, h.clock.now().secs(), "a retry is signed with its own send time");
    assert!(verify_signature(SECRET, retry_ts, &requests[1].body, requests[1].header(SIGNATURE_HEADER)));
    assert_eq!(h.store.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn failure_is_stored_with_the_status_and_the_attempt_count_but_never_the_secret() {
    let rx = spawn_receiver(Behaviour { fail_first: usize::MAX, ..Behaviour::default() }).await;
    let h = harness(config(&rx.url));
    enqueue(&h.store, &[message("ev-err", T0)]).await;
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 1, 0));

    h.clock.advance_ms(MS_PER_HOUR);
    let again = h.store.claim_due(h.clock.now(), 10, 1_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    let error = again[0].last_error.as_deref().unwrap();
    assert_eq!(error, "http status 500");
    assert!(!error.contains(std::str::from_utf8(SECRET).unwrap()));
}

#[tokio::test]
async fn unreachable_receiver_is_a_failure_with_the_error_kind_and_no_url() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = harness(config(&format!("http://127.0.0.1:{port}/hook?token=abc")));
    enqueue(&h.store, &[message("ev-down", T0)]).await;
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 1, 0));

    h.clock.advance_ms(MS_PER_HOUR);
    let again = h.store.claim_due(h.clock.now(), 10, 1_000).await.unwrap();
    let error = again[0].last_error.as_deref().unwrap();
    assert!(error.starts_with("connect error"), "{error}");
    assert!(!error.contains("token=abc"), "{error}");
}

#[tokio::test]
async fn stalled_receiver_counts_as_a_failure_after_the_timeout() {
    let rx = spawn_receiver(Behaviour { stall: Some(Duration::from_secs(5)), ..Behaviour::default() }).await;
    let mut cfg = config(&rx.url);
    cfg.timeout = Duration::from_millis(300);
    let h = harness(cfg);
    enqueue(&h.store, &[message("ev-slow", T0)]).await;

    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 1, 0));
    assert_eq!(rx.requests().len(), 1, "the request reached the receiver, which never answered");

    h.clock.advance_ms(MS_PER_HOUR);
    let again = h.store.claim_due(h.clock.now(), 10, 1_000).await.unwrap();
    assert_eq!(again[0].last_error.as_deref(), Some("timeout: no answer within 300 ms"));
}

#[tokio::test]
async fn message_failing_after_max_age_gives_up_and_is_never_sent_again() {
    let rx = spawn_receiver(Behaviour { fail_first: usize::MAX, ..Behaviour::default() }).await;
    let h = harness(config(&rx.url));
    enqueue(&h.store, &[message("ev-old", T0.minus_ms(27 * MS_PER_HOUR)), message("ev-young", T0)]).await;

    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 1, 1));
    assert_eq!(h.store.pending().await.unwrap(), 2, "the dead letter is kept, not deleted");

    h.clock.advance_ms(48 * MS_PER_HOUR);
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 0, 1), "ev-young is now past max_age");
    h.clock.advance_ms(48 * MS_PER_HOUR);
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(0, 0, 0));
    let ids: Vec<String> = rx.requests().iter().map(|r| r.header(EVENT_ID_HEADER).to_owned()).collect();
    assert_eq!(ids.iter().filter(|id| *id == "ev-old").count(), 1);
    assert_eq!(ids.iter().filter(|id| *id == "ev-young").count(), 2);
}

#[tokio::test]
async fn message_past_max_age_is_still_attempted_once_and_delivered_if_the_receiver_answers() {
    let rx = spawn_receiver(Behaviour::default()).await;
    let h = harness(config(&rx.url));
    enqueue(&h.store, &[message("ev-late", T0.minus_ms(30 * MS_PER_HOUR))]).await;
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(1, 0, 0));
    assert_eq!(h.store.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn receiver_keeps_failing_for_a_day_and_is_retried_all_that_time() {
    let rx = spawn_receiver(Behaviour { fail_first: usize::MAX, ..Behaviour::default() }).await;
    let h = harness(config(&rx.url));
    enqueue(&h.store, &[message("ev-day", T0)]).await;
    let mut total = DeliveryReport::default();
    // Step the clock a minute at a time through 25 hours.
    for _ in 0..25 * 60 {
        let r = h.deliverer.deliver_due().await.unwrap();
        total.delivered += r.delivered;
        total.failed += r.failed;
        total.gave_up += r.gave_up;
        h.clock.advance_ms(60_000);
    }
    assert_eq!(total.gave_up, 0, "still retrying after 25 h");
    assert!(total.failed > 10, "retried {} times", total.failed);
    let last = rx.requests().last().map(|r| r.header(TIMESTAMP_HEADER).parse::<i64>().unwrap()).unwrap();
    assert!(last >= T0.secs() + 24 * 3600, "the last attempt is more than 24 h after enqueueing");
}

#[tokio::test]
async fn one_pass_sends_the_whole_batch_concurrently() {
    // Each request waits until three are in flight: sent one after another, the first would time
    // out alone and the pass would report failures.
    let rx = spawn_receiver(Behaviour { concurrent: Some(3), ..Behaviour::default() }).await;
    let mut cfg = config(&rx.url);
    cfg.timeout = Duration::from_secs(5);
    cfg.batch = 3;
    let h = harness(cfg);
    enqueue(&h.store, &[message("ev-a", T0), message("ev-b", T0), message("ev-c", T0)]).await;
    assert_eq!(h.deliverer.deliver_due().await.unwrap(), report(3, 0, 0));
}

#[tokio::test]
async fn drain_passes_until_nothing_is_due() {
    let rx = spawn_receiver(Behaviour::default()).await;
    let mut cfg = config(&rx.url);
    cfg.batch = 2;
    let h = harness(cfg);
    let msgs: Vec<OutboxMessage> = (0..5).map(|i| message(&format!("ev-{i}"), T0)).collect();
    enqueue(&h.store, &msgs).await;
    assert_eq!(h.deliverer.drain(Duration::from_secs(10)).await, report(5, 0, 0));
    assert_eq!(h.store.pending().await.unwrap(), 0);
    assert_eq!(rx.requests().len(), 5);
}

#[tokio::test]
async fn run_delivers_in_the_background_and_returns_on_shutdown() {
    let rx = spawn_receiver(Behaviour::default()).await;
    let h = harness(config(&rx.url));
    let (stop, shutdown) = watch::channel(false);
    let worker = tokio::spawn(Arc::clone(&h.deliverer).run(shutdown, Duration::from_millis(20)));

    enqueue(&h.store, &[message("ev-bg", T0)]).await;
    // Wait (bounded) for the worker to pick the message up on one of its idle ticks.
    tokio::time::timeout(Duration::from_secs(10), async {
        while rx.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the worker delivers within its idle interval");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("run returns on shutdown").unwrap();
    assert_eq!(h.store.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn run_drains_what_is_due_when_shut_down_before_it_starts() {
    let rx = spawn_receiver(Behaviour::default()).await;
    let h = harness(config(&rx.url));
    enqueue(&h.store, &[message("ev-last-1", T0), message("ev-last-2", T0)]).await;
    let (_stop, shutdown) = watch::channel(true);
    tokio::time::timeout(Duration::from_secs(10), Arc::clone(&h.deliverer).run(shutdown, Duration::from_secs(3600)))
        .await
        .expect("run returns at once");
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(h.store.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn run_stops_when_the_shutdown_sender_is_dropped() {
    let rx = spawn_receiver(Behaviour::default()).await;
    let h = harness(config(&rx.url));
    let (stop, shutdown) = watch::channel(false);
    let worker = tokio::spawn(Arc::clone(&h.deliverer).run(shutdown, Duration::from_secs(3600)));
    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("run returns").unwrap();
}

/// Counts every counter and histogram sample by name and labels, and keeps each gauge's value.
#[derive(Default)]
struct CountingRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<HistogramCount>>>,
    gauges: Mutex<HashMap<String, Arc<GaugeValue>>>,
}

#[derive(Default)]
struct GaugeValue(Mutex<Option<f64>>);

impl metrics::GaugeFn for GaugeValue {
    fn increment(&self, value: f64) {
        *self.0.lock().unwrap().get_or_insert(0.0) += value;
    }
    fn decrement(&self, value: f64) {
        *self.0.lock().unwrap().get_or_insert(0.0) -= value;
    }
    fn set(&self, value: f64) {
        *self.0.lock().unwrap() = Some(value);
    }
}

#[derive(Default)]
struct HistogramCount(AtomicU64);

impl metrics::HistogramFn for HistogramCount {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn key_text(key: &metrics::Key) -> String {
    let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl CountingRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.counters.lock().unwrap().get(key).map_or(0, |c| c.load(Ordering::SeqCst))
    }
    fn histogram_samples(&self, key: &str) -> u64 {
        self.histograms.lock().unwrap().get(key).map_or(0, |h| h.0.load(Ordering::SeqCst))
    }
    fn gauge(&self, key: &str) -> Option<f64> {
        self.gauges.lock().unwrap().get(key).and_then(|g| *g.0.lock().unwrap())
    }
}

impl metrics::Recorder for CountingRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let c = self.counters.lock().unwrap().entry(key_text(key)).or_default().clone();
        metrics::Counter::from_arc(c)
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let g = self.gauges.lock().unwrap().entry(key_text(key)).or_default().clone();
        metrics::Gauge::from_arc(g)
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        let h = self.histograms.lock().unwrap().entry(key_text(key)).or_default().clone();
        metrics::Histogram::from_arc(h)
    }
}

// The recorder is thread-local; the default single-threaded test runtime runs the delivery tasks
// on this same thread.
#[tokio::test(flavor = "current_thread")]
async fn outcomes_are_counted_by_label_and_every_attempt_is_timed() {
    let recorder = CountingRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let rx = spawn_receiver(Behaviour { fail_first: 1, ..Behaviour::default() }).await;
    let h = harness(config(&rx.url));
    enqueue(&h.store, &[message("ev-m1", T0), message("ev-m2", T0.minus_ms(27 * MS_PER_HOUR))]).await;
    enqueue(&h.store, &[message("ev-m3", T0)]).await;
    // The receiver fails whichever request reaches it first, and the pass sends concurrently, so
    // which message fails (and whether it is retried or given up) varies: compare with the report.
    let r = h.deliverer.deliver_due().await.unwrap();
    assert_eq!(r.attempted(), 3);
    assert_eq!(recorder.counter("fairuse_webhook_deliveries_total{outcome=delivered}"), r.delivered as u64);
    assert_eq!(recorder.counter("fairuse_webhook_deliveries_total{outcome=failed}"), r.failed as u64);
    assert_eq!(recorder.counter("fairuse_webhook_deliveries_total{outcome=gave_up}"), r.gave_up as u64);
    assert_eq!(r.delivered, 2);
    assert_eq!(recorder.histogram_samples("fairuse_webhook_delivery_seconds{}"), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn the_backlog_gauge_counts_messages_still_to_send_and_not_dead_letters() {
    let recorder = CountingRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let rx = spawn_receiver(Behaviour { fail_first: usize::MAX, ..Behaviour::default() }).await;
    let h = harness(config(&rx.url));
    // ev-b2 is 27 h old: its failure gives it up (a dead letter); ev-b1 is retried later.
    enqueue(&h.store, &[message("ev-b1", T0), message("ev-b2", T0.minus_ms(27 * MS_PER_HOUR))]).await;
    assert_eq!(h.deliverer.record_backlog().await.unwrap(), 2);
    assert_eq!(recorder.gauge("fairuse_webhook_outbox_backlog{}"), Some(2.0));
    let r = h.deliverer.deliver_due().await.unwrap();
    assert_eq!((r.failed, r.gave_up), (1, 1));
    assert_eq!(h.deliverer.record_backlog().await.unwrap(), 1);
    assert_eq!(recorder.gauge("fairuse_webhook_outbox_backlog{}"), Some(1.0), "the dead letter is not backlog");
    assert_eq!(h.store.pending().await.unwrap(), 2, "the dead letter is still kept");
}
