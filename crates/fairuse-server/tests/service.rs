//! The service layer with the in-memory store and a manual clock: what happens after usage
//! (evaluation, the classifier job and its lock), webhooks queued with stage changes, budgets.

use std::sync::Arc;

use async_trait::async_trait;
use fairuse_domain::classifier::{
    Classifier, ClassifierError, ClassifierInput, Conversation, Evidence, ScriptedClassifier, UsageType, Verdict,
};
use fairuse_domain::engine::EventKind;
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::{Mode, Policy};
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{BudgetStore, ConversationStore, EnforcementStore, LockStore, MemoryStore, OutboxStore};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_MINUTE, ManualClock, Timestamp};
use fairuse_domain::windows::{SpeechAmount, UsageReport};
use fairuse_server::service::{
    MAX_CLASSIFIER_JOB_ATTEMPTS, Notifications, Service, ServiceError, Stores, UserReport, classifier_lock_key,
};

struct Fixed(Result<Verdict, ClassifierError>);

#[async_trait]
impl Classifier for Fixed {
    /// The fixed answer, citing every conversation it was shown (a verdict must cite evidence).
    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        let mut v = self.0.clone()?;
        v.evidence = input
            .conversations
            .iter()
            .map(|c| Evidence::conversation(c.conversation_id.clone(), c.title.clone(), "fixed"))
            .collect();
        Ok(v)
    }
    fn name(&self) -> &str {
        "fixed"
    }
}

mod support;
use support::{T0, heard, uid};

/// Remembers every input it was asked about; answers "not misuse".
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<ClassifierInput>>);

#[async_trait]
impl Classifier for Recording {
    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        self.0.lock().unwrap().push(input.clone());
        Ok(ScriptedClassifier::scripted(0.0, UsageType::None))
    }
    fn name(&self) -> &str {
        "recording"
    }
}

fn service(
    policy: Policy,
    verdict: Result<Verdict, ClassifierError>,
    webhooks: bool,
) -> (Arc<Service>, Arc<MemoryStore>, Arc<ManualClock>) {
    service_with(policy, Arc::new(Fixed(verdict)), webhooks)
}

fn service_with(
    policy: Policy,
    classifier: Arc<dyn Classifier>,
    webhooks: bool,
) -> (Arc<Service>, Arc<MemoryStore>, Arc<ManualClock>) {
    service_custom(policy, classifier, webhooks, |_, _| {})
}

/// [`service_with`], with a chance to replace some of the stores.
fn service_custom(
    policy: Policy,
    classifier: Arc<dyn Classifier>,
    webhooks: bool,
    customize: impl FnOnce(&mut Stores, &Arc<MemoryStore>),
) -> (Arc<Service>, Arc<MemoryStore>, Arc<ManualClock>) {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let mut stores = Stores::single(store.clone());
    customize(&mut stores, &store);
    let svc = Arc::new(Service::new(stores, policy, clock.clone(), classifier, Notifications { enabled: webhooks }));
    (svc, store, clock)
}

/// Three hours of speech in one report (over the 2 h daily cap of the default free plan).
fn over_cap(u: &str) -> Vec<UserReport> {
    vec![UserReport {
        uid: uid(u),
        report: UsageReport { stt_ms: 0, ..UsageReport::delta(Lane::Realtime, 3 * 3_600_000) },
    }]
}

/// Runs the jobs due now (classifier runs and due evaluations) and returns how many classifier
/// jobs ran.
async fn run_jobs(svc: &Service) -> usize {
    let jobs = svc.claim_jobs(svc.now(), 100, 60_000).await.unwrap();
    for j in &jobs {
        svc.run_job(j).await.unwrap();
    }
    jobs.iter().filter(|j| !j.is_due_evaluation()).count()
}

#[tokio::test]
async fn crossing_a_cap_queues_one_classifier_job_and_a_qualifying_verdict_warns_with_a_webhook() {
    let (svc, store, _) = service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), true);
    heard(&svc, "ann").await;
    svc.record_usage(over_cap("ann")).await.unwrap();
    svc.record_usage(over_cap("ann")).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 1, "evaluated once per check interval, classified once");
    let events = store.events(&uid("ann"), 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Classified);
    assert_eq!((events[0].previous_stage, events[0].new_stage), (Stage::None, Stage::Warning));
    let outbox = store.claim_due(Timestamp::from_millis(T0 + 1), 10, 1000).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].id, events[0].event_id);
    assert!(outbox[0].body.contains("\"type\":\"fair_use.stage_changed\"") && outbox[0].body.contains("\"title\""));
}

#[tokio::test]
async fn concurrent_reports_that_cross_a_cap_run_the_classifier_exactly_once() {
    let (svc, store, clock) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Podcast)), false);
    heard(&svc, "bo").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move { svc.record_usage(over_cap("bo")).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Even after the check interval passes and more usage arrives, the cooldown lock holds.
    clock.advance_ms(600_000);
    svc.record_usage(over_cap("bo")).await.unwrap();
    let mut runs = 0;
    for _ in 0..3 {
        runs += run_jobs(&svc).await;
    }
    assert_eq!(runs, 1);
    let classified =
        store.events(&uid("bo"), 50).await.unwrap().into_iter().filter(|e| e.kind == EventKind::Classified).count();
    assert_eq!(classified, 1);
}

#[tokio::test]
async fn a_failing_classifier_gives_no_verdict_and_releases_the_lock() {
    let (svc, store, _) = service(Policy::default(), Err(ClassifierError::Timeout), true);
    heard(&svc, "cy").await;
    svc.record_usage(over_cap("cy")).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 1);
    assert!(store.events(&uid("cy"), 10).await.unwrap().is_empty(), "fail open: no verdict, no event");
    assert_eq!(store.load(&uid("cy")).await.unwrap().map(|v| v.value.stage).unwrap_or_default(), Stage::None);
    let free = store.try_acquire(&classifier_lock_key(&uid("cy")), "probe", 1000, svc.now()).await.unwrap();
    assert!(free, "the lock was released so the next check may try again");
}

#[tokio::test]
async fn users_in_restrict_are_not_classified() {
    let (svc, store, _) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    svc.set_stage(&uid("di"), Stage::Restrict, None, "ops", None).await.unwrap();
    svc.record_usage(over_cap("di")).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 0, "no job is queued for a restricted user");
    let kinds: Vec<EventKind> = store.events(&uid("di"), 10).await.unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::AdminSetStage]);
}

#[tokio::test]
async fn shadow_mode_records_the_escalation_but_queues_no_webhook() {
    let mut policy = Policy::default();
    policy.switches.mode = Mode::Shadow;
    policy.validate().unwrap();
    let (svc, store, _) = service(policy, Ok(ScriptedClassifier::scripted(0.95, UsageType::TvMovie)), true);
    heard(&svc, "ed").await;
    svc.record_usage(over_cap("ed")).await.unwrap();
    run_jobs(&svc).await;
    let events = store.events(&uid("ed"), 10).await.unwrap();
    assert_eq!(events[0].new_stage, Stage::Warning);
    assert!(events[0].shadow);
    assert_eq!(store.pending().await.unwrap(), 0, "nothing is sent to users in shadow mode");
    let d = svc.decision(&uid("ed")).await.unwrap();
    assert_eq!((d.stage, d.effective_stage, d.stt_allowed), (Stage::Warning, Stage::None, true));
}

#[tokio::test]
async fn a_restricted_user_over_budget_gets_one_budget_event_a_day_and_a_denied_decision() {
    let (svc, store, clock) = service(Policy::default(), Ok(ScriptedClassifier::scripted(0.1, UsageType::None)), true);
    svc.set_stage(&uid("fay"), Stage::Restrict, None, "ops", None).await.unwrap();
    let stt = |ms: i64| {
        vec![UserReport {
            uid: uid("fay"),
            report: UsageReport { stt_ms: ms, ..UsageReport::delta(Lane::Realtime, 1000) },
        }]
    };
    svc.record_usage(stt(20 * 60_000)).await.unwrap();
    assert!(svc.decision(&uid("fay")).await.unwrap().stt_allowed);
    svc.record_usage(stt(10 * 60_000)).await.unwrap();
    svc.record_usage(stt(60_000)).await.unwrap();
    let d = svc.decision(&uid("fay")).await.unwrap();
    assert!(!d.stt_allowed);
    let b = d.stt_budget.unwrap();
    assert!(b.exhausted && b.used_ms >= 1_800_000 && b.daily_limit_ms == 1_800_000);
    assert!(d.retry_after_s.unwrap() > 0);
    let budget_events = |events: Vec<fairuse_domain::engine::Event>| {
        events.iter().filter(|e| e.kind == EventKind::BudgetExhausted).count()
    };
    assert_eq!(budget_events(store.events(&uid("fay"), 50).await.unwrap()), 1);
    clock.advance_ms(86_400_000);
    assert!(svc.decision(&uid("fay")).await.unwrap().stt_allowed, "a new UTC day, a new budget");
    svc.record_usage(stt(31 * 60_000)).await.unwrap();
    assert_eq!(budget_events(store.events(&uid("fay"), 50).await.unwrap()), 2);
}

#[tokio::test]
async fn a_timer_that_ran_out_is_applied_by_the_sweep_with_a_restriction_lifted_webhook() {
    let (svc, store, clock) = service(Policy::default(), Ok(ScriptedClassifier::scripted(0.1, UsageType::None)), true);
    let until = Timestamp::from_millis(T0 + 3_600_000);
    svc.set_stage(&uid("gus"), Stage::Warning, Some(until), "ops", None).await.unwrap();
    clock.advance_ms(3_600_001);
    assert_eq!(svc.apply_due_timers(10).await.unwrap(), 1);
    let events = store.events(&uid("gus"), 10).await.unwrap();
    assert_eq!(events[0].kind, EventKind::TimerExpired);
    assert_eq!((events[0].previous_stage, events[0].new_stage), (Stage::Warning, Stage::None));
    assert_eq!(events[0].created_at, until, "stepped down at the expiry instant");
    let lifted = store.claim_due(Timestamp::from_millis(T0 + 10_000_000), 10, 1000).await.unwrap();
    assert!(lifted.iter().any(|m| m.body.contains("fair_use.restriction_lifted")));
    assert_eq!(svc.apply_due_timers(10).await.unwrap(), 0);
}

#[tokio::test]
async fn a_job_run_twice_by_two_workers_is_applied_once() {
    let (svc, store, _) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    heard(&svc, "hal").await;
    svc.record_usage(over_cap("hal")).await.unwrap();
    let jobs = svc.claim_jobs(svc.now(), 10, 60_000).await.unwrap();
    assert_eq!(jobs.len(), 1);
    // Two workers hold the same job (a lease ran out while the first was still classifying).
    svc.run_classifier_job(&jobs[0]).await.unwrap();
    svc.run_classifier_job(&jobs[0]).await.unwrap();
    let classified =
        store.events(&uid("hal"), 10).await.unwrap().iter().filter(|e| e.kind == EventKind::Classified).count();
    assert_eq!(classified, 1);
    assert_eq!(store.load(&uid("hal")).await.unwrap().unwrap().value.qualifying.len(), 1, "prior counts it once");
}

#[tokio::test]
async fn a_job_queued_before_a_reset_or_the_kill_switch_does_not_escalate() {
    let (svc, store, clock) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    heard(&svc, "ivy").await;
    svc.record_usage(over_cap("ivy")).await.unwrap();
    let jobs = svc.claim_jobs(svc.now(), 10, 60_000).await.unwrap();
    clock.advance_ms(1000);
    svc.reset(&uid("ivy"), "ops", None).await.unwrap();
    svc.run_classifier_job(&jobs[0]).await.unwrap();
    assert_eq!(
        store.load(&uid("ivy")).await.unwrap().unwrap().value.stage,
        Stage::None,
        "the verdict belongs to the old period"
    );

    let (svc, store, _) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    heard(&svc, "jo").await;
    svc.record_usage(over_cap("jo")).await.unwrap();
    let mut killed = Policy::default();
    killed.switches.kill_switch = true;
    killed.validate().unwrap();
    svc.set_policy(killed);
    assert_eq!(run_jobs(&svc).await, 1);
    assert!(store.events(&uid("jo"), 10).await.unwrap().is_empty(), "no new detections under the kill switch");
}

/// A closed stream session that started `start_ms` after T0 and ran `minutes`.
fn stream(id: &str, start_ms: i64, minutes: i64) -> StreamSession {
    let mut s = StreamSession::open(id, Timestamp::from_millis(T0 + start_ms));
    s.updated_at = s.started_at.plus_ms(minutes * MS_PER_MINUTE);
    s.duration_ms = minutes * MS_PER_MINUTE;
    s.speech_ms = minutes * MS_PER_MINUTE / 2;
    s.stt_ms = s.duration_ms;
    s.closed = true;
    s
}

#[tokio::test]
async fn stream_sessions_are_validated_then_stored_and_skipped_while_fair_use_is_off() {
    let (svc, store, _) = service(Policy::default(), Ok(ScriptedClassifier::scripted(0.0, UsageType::None)), false);
    let who = uid("gia");
    let s = stream("3b7e0c1a-5f0e-4c1e-9a57-0d0f2a1b2c3d", 0, 30);
    svc.record_stream_session(&who, s.clone()).await.unwrap();
    assert_eq!(store.stream_sessions_since(&who, Timestamp::from_millis(T0), 10).await.unwrap(), vec![s.clone()]);

    let bad = StreamSession { speech_ms: -1, ..stream("s2", 0, 5) };
    match svc.record_stream_session(&who, bad).await {
        Err(ServiceError::Input(e)) => assert_eq!(e.field, "speech_ms"),
        other => panic!("a negative total is a 400 naming the field, got {other:?}"),
    }
    match svc.record_stream_session(&who, stream("not a session id", 0, 5)).await {
        Err(ServiceError::Input(e)) => assert_eq!(e.field, "session_id"),
        other => panic!("a bad session id is a 400 naming the field, got {other:?}"),
    }
    // An older snapshot of a stored session is accepted and changes nothing.
    svc.record_stream_session(&who, StreamSession { closed: false, ..stream(&s.session_id, 0, 10) }).await.unwrap();
    assert_eq!(store.stream_sessions_since(&who, Timestamp::from_millis(T0), 10).await.unwrap(), vec![s]);

    let mut off = Policy::default();
    off.switches.enabled = false;
    let (svc, store, _) = service(off, Ok(ScriptedClassifier::scripted(0.0, UsageType::None)), false);
    svc.record_stream_session(&who, stream("s3", 0, 5)).await.unwrap();
    let bad = StreamSession { speech_ms: -1, ..stream("s4", 0, 5) };
    svc.record_stream_session(&who, bad).await.expect("switched off, nothing is looked at");
    assert!(store.stream_sessions_since(&who, Timestamp::from_millis(0), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_classifier_sees_the_stream_sessions_updated_in_its_lookback() {
    let recording = Arc::new(Recording::default());
    let (svc, _, _) = service_with(Policy::default(), recording.clone(), false);
    let who = uid("hal");
    let lookback = Policy::default().classifier.lookback.ms();
    assert_eq!(lookback, 7 * MS_PER_DAY);
    // Ended before the lookback; started before it but still streaming inside it; recent.
    let gone = stream("gone", -lookback - MS_PER_DAY, 60);
    let long = stream("long", -lookback - 10 * MS_PER_MINUTE, 70);
    let recent = stream("recent", -MS_PER_DAY, 45);
    for s in [&recent, &gone, &long] {
        svc.record_stream_session(&who, s.clone()).await.unwrap();
    }
    svc.record_stream_session(&uid("someone-else"), stream("theirs", -MS_PER_DAY, 45)).await.unwrap();
    heard(&svc, "hal").await;
    svc.record_usage(over_cap("hal")).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 1);
    let inputs = recording.0.lock().unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].sessions, vec![long, recent], "updated in the lookback, oldest started first");
}

#[tokio::test]
async fn a_failing_classifier_job_is_retried_later_and_abandoned_after_the_attempt_limit() {
    let (svc, store, clock) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    heard(&svc, "ola").await;
    svc.record_usage(over_cap("ola")).await.unwrap();
    let job = svc.claim_jobs(svc.now(), 10, 60_000).await.unwrap().remove(0);
    // A failure: due again 30 s later, not before, with its attempt counted.
    svc.classifier_job_failed(&job, "store unavailable").await;
    assert!(svc.claim_jobs(svc.now().plus_ms(29_000), 10, 60_000).await.unwrap().is_empty());
    clock.advance_ms(30_000);
    let mut job = svc.claim_jobs(svc.now(), 10, 60_000).await.unwrap().remove(0);
    assert_eq!(job.attempts, 1);
    // The lock is still held while the job is alive: no second job for the user.
    assert!(!store.try_acquire(&classifier_lock_key(&uid("ola")), "other", 1_000, svc.now()).await.unwrap());
    // The last allowed failure abandons it: never claimed again, and the lock is free for the
    // next evaluation.
    job.attempts = MAX_CLASSIFIER_JOB_ATTEMPTS - 1;
    svc.classifier_job_failed(&job, "store unavailable").await;
    clock.advance_ms(3_600_000);
    assert!(svc.claim_jobs(svc.now(), 10, 60_000).await.unwrap().is_empty(), "abandoned");
    assert!(store.try_acquire(&classifier_lock_key(&uid("ola")), "other", 1_000, svc.now()).await.unwrap());
}

/// The in-memory budget, failing `add_forwarded` with the queued errors first.
struct FlakyBudget {
    inner: Arc<MemoryStore>,
    failures: std::sync::Mutex<Vec<StoreError>>,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl BudgetStore for FlakyBudget {
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(e) = self.failures.lock().unwrap().pop() {
            return Err(e);
        }
        self.inner.add_forwarded(uid, day, ms).await
    }
    async fn used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        self.inner.used(uid, day).await
    }
    async fn note_exhausted_once(&self, uid: &Uid, day: i64) -> Result<bool, StoreError> {
        self.inner.note_exhausted_once(uid, day).await
    }
}

fn flaky_budget_service(failures: Vec<StoreError>) -> (Arc<Service>, Arc<FlakyBudget>) {
    let mut budget = None;
    let (svc, _, _) = service_custom(Policy::default(), Arc::new(Recording::default()), false, |stores, memory| {
        let flaky = Arc::new(FlakyBudget {
            inner: memory.clone(),
            failures: std::sync::Mutex::new(failures),
            calls: Default::default(),
        });
        stores.budget = flaky.clone();
        budget = Some(flaky);
    });
    (svc, budget.unwrap())
}

fn forwarded(u: &str, stt_ms: i64) -> Vec<UserReport> {
    vec![UserReport { uid: uid(u), report: UsageReport { stt_ms, ..UsageReport::delta(Lane::Realtime, 1_000) } }]
}

#[tokio::test]
async fn forwarded_audio_reaches_the_budget_through_a_brief_outage_but_an_unknown_outcome_is_not_repeated() {
    // Refused twice (certainly not applied): the third try counts it.
    let refused = || StoreError::Unavailable("test: refused".into());
    let (svc, budget) = flaky_budget_service(vec![refused(), refused()]);
    svc.record_usage(forwarded("bea", 5_000)).await.unwrap();
    assert_eq!(budget.used(&uid("bea"), svc.now().utc_day()).await.unwrap(), 5_000);
    assert_eq!(budget.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    // An unknown outcome may have counted: never sent again (the report itself is still accepted).
    let (svc, budget) = flaky_budget_service(vec![StoreError::Unknown("test: timed out".into())]);
    svc.record_usage(forwarded("cal", 5_000)).await.unwrap();
    assert_eq!(budget.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Three refusals in a row: given up, and the next report's audio still counts.
    let (svc, budget) = flaky_budget_service(vec![refused(), refused(), refused()]);
    svc.record_usage(forwarded("dee", 5_000)).await.unwrap();
    assert_eq!(budget.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    svc.record_usage(forwarded("dee", 2_000)).await.unwrap();
    assert_eq!(budget.used(&uid("dee"), svc.now().utc_day()).await.unwrap(), 2_000);
}

fn speech(u: &str, ms: i64) -> Vec<UserReport> {
    vec![UserReport { uid: uid(u), report: UsageReport { stt_ms: 0, ..UsageReport::delta(Lane::Realtime, ms) } }]
}

fn classified(events: &[fairuse_domain::engine::Event]) -> usize {
    events.iter().filter(|e| e.kind == EventKind::Classified).count()
}

#[tokio::test]
async fn a_crossing_right_after_an_under_cap_report_is_judged_without_a_later_report() {
    // The unlimited plan's daily cap is 4 h: 4 h is not over it, 4 h more five seconds later is.
    for (first, second) in [(4 * 3_600_000, 4 * 3_600_000), (1_000, 8 * 3_600_000)] {
        let (svc, store, clock) =
            service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
        svc.set_plan(&uid("kim"), "unlimited", false).await.unwrap();
        heard(&svc, "kim").await;
        svc.record_usage(speech("kim", first)).await.unwrap();
        clock.advance_ms(5_000);
        svc.record_usage(speech("kim", second)).await.unwrap();
        assert_eq!(run_jobs(&svc).await, 1, "{first} ms then {second} ms: the crossing report is judged at once");
        clock.advance_ms(Policy::default().metering.check_interval.ms());
        assert_eq!(run_jobs(&svc).await, 0, "and only once");
        let events = store.events(&uid("kim"), 10).await.unwrap();
        assert_eq!(classified(&events), 1);
        assert_eq!(events[0].new_stage, Stage::Warning);
    }
}

#[tokio::test]
async fn a_crossing_while_the_slot_is_taken_falls_due_and_is_judged_within_the_check_interval() {
    let (svc, store, clock) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    heard(&svc, "lu").await;
    // Over the cap while exempt: judged (the slot is taken), nothing to classify.
    svc.set_exempt(&uid("lu"), true, "ops").await.unwrap();
    svc.record_usage(over_cap("lu")).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 0);
    // The exemption is lifted and one more report comes 10 s later, then nothing.
    clock.advance_ms(5_000);
    svc.set_exempt(&uid("lu"), false, "ops").await.unwrap();
    clock.advance_ms(5_000);
    svc.record_usage(speech("lu", 60_000)).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 0, "the slot is taken: a due evaluation is queued, not a run");
    let interval = Policy::default().metering.check_interval.ms();
    clock.advance_ms(interval - 1);
    assert_eq!(run_jobs(&svc).await, 0, "not before it is due");
    clock.advance_ms(1);
    assert_eq!(run_jobs(&svc).await, 0, "due: the evaluation runs and queues the classifier job");
    assert_eq!(run_jobs(&svc).await, 1, "which runs once");
    let events = store.events(&uid("lu"), 10).await.unwrap();
    assert_eq!(classified(&events), 1, "judged within the check interval of the report, with no later report");
    clock.advance_ms(10 * interval);
    assert_eq!(run_jobs(&svc).await, 0);
}

#[tokio::test]
async fn gradual_crossings_through_two_replicas_at_once_are_classified_exactly_once() {
    let (a, store, clock) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    // A second replica: its own process-local state, the same stores and clock.
    let b = Arc::new(Service::new(
        Stores::single(store.clone()),
        Policy::default(),
        clock.clone(),
        Arc::new(Fixed(Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)))),
        Notifications::default(),
    ));
    heard(&a, "mo").await;
    // 100 reports of 100 s (2.8 h, over the 2 h cap after the 73rd), half through each replica.
    let mut tasks = Vec::new();
    for i in 0..100 {
        let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { svc.record_usage(speech("mo", 100_000)).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut runs = run_jobs(&a).await + run_jobs(&b).await;
    for _ in 0..3 {
        clock.advance_ms(Policy::default().metering.check_interval.ms());
        runs += run_jobs(&a).await + run_jobs(&b).await;
    }
    assert_eq!(runs, 1, "one classifier run for the crossing");
    assert_eq!(classified(&store.events(&uid("mo"), 50).await.unwrap()), 1);
}

#[tokio::test]
async fn without_a_conversation_to_cite_no_classifier_is_asked_and_nothing_qualifies() {
    let recording = Arc::new(Recording::default());
    let (svc, store, _) = service_with(Policy::default(), recording.clone(), false);
    svc.record_usage(over_cap("ned")).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 1);
    assert!(recording.0.lock().unwrap().is_empty(), "no conversation in the lookback: the classifier is not asked");
    let events = store.events(&uid("ned"), 10).await.unwrap();
    assert_eq!(classified(&events), 1, "the run is still recorded");
    let v = events[0].verdict.as_ref().unwrap();
    assert_eq!((v.misuse_score, v.usage_type, v.model.as_str()), (0.0, UsageType::None, "none"));
    assert_eq!(events[0].new_stage, Stage::None);
}

/// Answers a qualifying score citing conversations it was not shown (or none).
struct Uncited(Vec<&'static str>);

#[async_trait]
impl Classifier for Uncited {
    async fn classify(&self, _: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        let mut v = ScriptedClassifier::scripted(0.92, UsageType::Audiobook);
        v.evidence = self.0.iter().map(|id| Evidence::conversation(*id, "invented", "made up")).collect();
        Ok(v)
    }
    fn name(&self) -> &str {
        "uncited"
    }
}

#[tokio::test]
async fn a_qualifying_verdict_that_cites_nothing_it_was_shown_is_lowered_below_the_line() {
    for cited in [vec![], vec!["not-shown-1", "not-shown-2"]] {
        let (svc, store, _) = service_with(Policy::default(), Arc::new(Uncited(cited.clone())), false);
        heard(&svc, "oz").await;
        svc.record_usage(over_cap("oz")).await.unwrap();
        assert_eq!(run_jobs(&svc).await, 1);
        let events = store.events(&uid("oz"), 10).await.unwrap();
        let v = events[0].verdict.as_ref().unwrap();
        assert!(v.misuse_score < Policy::default().classifier.qualify_score, "cited {cited:?}: {v:?}");
        assert!(v.evidence.is_empty(), "invented evidence is dropped: {v:?}");
        assert!(v.demoted.as_deref().is_some_and(|why| why.contains("0.920")), "the reviewer sees why: {v:?}");
        assert_eq!(events[0].new_stage, Stage::None, "cited {cited:?}");
    }
}

#[tokio::test]
async fn conversations_dated_in_the_future_or_past_the_retention_are_refused_naming_the_field() {
    let (svc, store, _) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    let now = svc.now();
    let conv = |id: &str, start: Timestamp, end: Timestamp| Conversation {
        conversation_id: id.into(),
        title: "Audiobook - Chapter 1".into(),
        overview: String::new(),
        category: String::new(),
        started_at: start,
        finished_at: end,
        source: String::new(),
        speaker_count: None,
        word_count: None,
    };
    let year_9999 = Timestamp::parse_rfc3339("9999-01-01T00:00:00Z").unwrap();
    let cases = [
        (conv("future", year_9999, year_9999.plus_ms(3_600_000)), "finished_at"),
        (conv("soon", now, now.plus_ms(10 * MS_PER_MINUTE)), "finished_at"),
        (conv("old", now.minus_ms(9 * MS_PER_DAY), now.minus_ms(9 * MS_PER_DAY - 3_600_000)), "started_at"),
    ];
    for (c, field) in cases {
        match svc.upsert_conversation(&uid("pia"), &c).await {
            Err(ServiceError::Input(e)) => assert_eq!(e.field, field, "{}", c.conversation_id),
            other => panic!("{}: expected a 400 naming {field}, got {other:?}", c.conversation_id),
        }
    }
    let skewed = conv("skewed", now.minus_ms(3_600_000), now.plus_ms(2 * MS_PER_MINUTE));
    svc.upsert_conversation(&uid("pia"), &skewed).await.expect("a couple of minutes of clock skew is fine");
    let stored = store.since(&uid("pia"), Timestamp::from_millis(0), 10).await.unwrap();
    assert_eq!(stored.iter().map(|c| c.conversation_id.as_str()).collect::<Vec<_>>(), vec!["skewed"]);
}

#[tokio::test]
async fn a_verdict_that_does_not_qualify_holds_the_lock_for_the_recheck_and_a_qualifying_one_for_the_cooldown() {
    let policy = Policy::default();
    let recheck = policy.classifier.hold_after(false).ms();
    let cooldown = policy.classifier.cooldown.ms();
    assert!(recheck < cooldown, "the shipped re-check is shorter than the cooldown");
    let interval = policy.metering.check_interval.ms();
    for (score, hold) in [(0.3, recheck), (0.9, cooldown)] {
        let (svc, store, clock) =
            service(policy.clone(), Ok(ScriptedClassifier::scripted(score, UsageType::Audiobook)), false);
        heard(&svc, "ro").await;
        svc.record_usage(over_cap("ro")).await.unwrap();
        assert_eq!(run_jobs(&svc).await, 1, "score {score}: the crossing is judged");
        // Still over the cap one step before the hold ends: the lock refuses.
        clock.advance_ms(hold - 1);
        svc.record_usage(speech("ro", 60_000)).await.unwrap();
        assert_eq!(run_jobs(&svc).await, 0, "score {score}: held for {hold} ms");
        // Past the hold, once the evaluation slot taken by that report is free again.
        clock.advance_ms(interval + 1);
        svc.record_usage(speech("ro", 60_000)).await.unwrap();
        assert_eq!(run_jobs(&svc).await, 1, "score {score}: judged again after {hold} ms");
        assert_eq!(classified(&store.events(&uid("ro"), 10).await.unwrap()), 2);
    }
}

#[tokio::test]
async fn the_stream_session_whose_running_total_crosses_a_cap_is_named_on_the_classified_event() {
    let (svc, store, _) =
        service(Policy::default(), Ok(ScriptedClassifier::scripted(0.9, UsageType::Audiobook)), false);
    heard(&svc, "sam").await;
    let cumulative = |total_ms: i64| UserReport {
        uid: uid("sam"),
        report: UsageReport {
            lane: Lane::Realtime,
            amount: SpeechAmount::Cumulative { session_id: "stream-7".into(), total_ms },
            at: None,
            idempotency_key: None,
            stt_ms: 0,
        },
    };
    svc.record_usage(vec![cumulative(3 * 3_600_000)]).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 1);
    let events = store.events(&uid("sam"), 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Classified);
    assert_eq!(events[0].session_id.as_deref(), Some("stream-7"), "the session of the report that crossed");

    // A plain delta report names no session.
    heard(&svc, "dee").await;
    svc.record_usage(over_cap("dee")).await.unwrap();
    assert_eq!(run_jobs(&svc).await, 1);
    assert_eq!(store.events(&uid("dee"), 10).await.unwrap()[0].session_id, None);
}
