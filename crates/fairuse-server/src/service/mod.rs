//! The service layer: each API operation as stores + the domain's pure functions. Handlers call
//! these and only translate HTTP; workers call them too. No SQL and no Redis commands here: the
//! stores are `Arc<dyn Trait>` chosen by the composition root. Failures are `ServiceError`, which
//! names no HTTP status: `error.rs` maps it to the HTTP table in one place.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arc_swap::ArcSwap;
use fairuse_domain::classifier::{Classifier, ClassifierInput, Conversation, Verdict};
use fairuse_domain::engine::{self, CapCheck, ClassifyGate, Ctx, Decision, EnforcementState, Event, Outcome};
use fairuse_domain::ids::{CaseRef, IdSource, Lane, Uid};
use fairuse_domain::pipeline::{self, AfterReport, DecisionWithHealth, Judgement};
use fairuse_domain::policy::{Mode, Policy};
use fairuse_domain::prints::{POSTING_LIMIT, Print, print_key};
use fairuse_domain::sessions::{HashSample, StreamSession};
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{
    BudgetStore, ConversationStore, EnforcementStore, Job, JobStore, LockStore, OutboxMessage, OutboxStore, PrintStore,
    RateLimitStore, UsageMeterStore,
};
use fairuse_domain::time::{Clock, Timestamp};
use fairuse_domain::windows::{RecordOutcome, UsageReport, WindowTotals};
use fairuse_domain::{InputError, StoreError};
use futures_util::FutureExt;
use serde::Serialize;
use tokio::sync::Notify;

use crate::clock::RandomIds;

/// Why a [`Service`] operation failed, in the service's terms: no HTTP status here. The one
/// mapping to the HTTP table is `From<ServiceError> for ApiError` in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request's data is invalid (names the field).
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{0}")]
    NotFound(String),
    /// Concurrent writers kept the change from committing; the caller may retry.
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests; retry in {retry_after_s} s")]
    RateLimited { retry_after_s: i64 },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("fair use is not available: {0}")]
    Unavailable(String),
}

/// What a [`Service`] operation answers.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Every store the service uses, as ports.
#[derive(Clone)]
pub struct Stores {
    pub meter: Arc<dyn UsageMeterStore>,
    pub budget: Arc<dyn BudgetStore>,
    pub locks: Arc<dyn LockStore>,
    pub rates: Arc<dyn RateLimitStore>,
    pub durable: Arc<dyn EnforcementStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub outbox: Arc<dyn OutboxStore>,
    pub jobs: Arc<dyn JobStore>,
    /// The gateway's print index (acoustic fingerprints, issue 11): the durable store.
    pub prints: Arc<dyn PrintStore>,
}

impl Stores {
    /// All roles served by one backend (the embedded store, or memory in tests).
    pub fn single<T>(store: Arc<T>) -> Stores
    where
        T: UsageMeterStore
            + BudgetStore
            + LockStore
            + RateLimitStore
            + EnforcementStore
            + ConversationStore
            + OutboxStore
            + JobStore
            + PrintStore
            + 'static,
    {
        Stores {
            meter: store.clone(),
            budget: store.clone(),
            locks: store.clone(),
            rates: store.clone(),
            durable: store.clone(),
            conversations: store.clone(),
            outbox: store.clone(),
            jobs: store.clone(),
            prints: store,
        }
    }
}

/// Webhook settings the service needs to fill the outbox (delivery lives in `fairuse-webhook`).
#[derive(Clone, Debug, Default)]
pub struct Notifications {
    /// Whether a webhook URL is configured; without one nothing is queued.
    pub enabled: bool,
}

/// The live policy, swapped whole on reload.
type PolicyCell = ArcSwap<Policy>;

/// The API's operations over the stores. Built by [`Service::new`]; its stores, policy cell and
/// process-local caches are private, so handlers, workers and the gateway go through methods
/// (tests and tools reach the stores through [`Service::stores`]).
pub struct Service {
    stores: Stores,
    policy: PolicyCell,
    clock: Arc<dyn Clock>,
    classifier: Arc<dyn Classifier>,
    notifications: Notifications,
    /// Wakes the classifier worker when a job is queued.
    jobs_ready: Notify,
    /// When this process last evaluated each user: a local filter in front of the shared
    /// evaluation lock, so most reports skip a store write. The shared lock still decides.
    recent_evaluations: RecentEvaluations,
    /// Opens when the durable store fails, so the hot path stops waiting on it for a while.
    durable_breaker: Breaker,
    /// The last stage this process read for each user, so budgets of throttled and restricted
    /// users still apply while the durable store is unavailable.
    known_stages: KnownStages,
}

/// The last enforcement state read per user (a bounded process-local cache; losing it only
/// means failing open for that user during an outage).
#[derive(Default)]
struct KnownStages(std::sync::Mutex<std::collections::HashMap<Uid, EnforcementState>>);

const KNOWN_STAGES_MAX: usize = 100_000;

impl KnownStages {
    fn remember(&self, uid: &Uid, state: &EnforcementState) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if state.stage == Stage::None {
            map.remove(uid); // nothing to enforce: no need to remember
            return;
        }
        if map.len() >= KNOWN_STAGES_MAX && !map.contains_key(uid) {
            map.clear(); // crude but bounded; it refills from the next reads
        }
        map.insert(uid.clone(), state.clone());
    }

    fn get(&self, uid: &Uid) -> Option<EnforcementState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(uid).cloned()
    }
}

/// A circuit breaker: after a failure the caller skips the store until `open_until` (a few
/// seconds), then tries again. Decisions meanwhile fail open at once instead of each waiting
/// out a timeout.
#[derive(Default)]
struct Breaker(std::sync::atomic::AtomicI64);

/// How long the breaker stays open after a failure.
const BREAKER_OPEN_MS: i64 = 3_000;

impl Breaker {
    fn is_open(&self, now: Timestamp) -> bool {
        now.millis() < self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn trip(&self, now: Timestamp) {
        self.0.store(now.millis() + BREAKER_OPEN_MS, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Users this process evaluated within the check interval (a cache: losing it only costs a
/// store round trip).
#[derive(Default)]
struct RecentEvaluations(std::sync::Mutex<(std::collections::HashMap<Uid, Timestamp>, usize)>);

impl RecentEvaluations {
    /// True when this process evaluated `uid` less than `interval_ms` before `now`.
    fn recently(&self, uid: &Uid, interval_ms: i64, now: Timestamp) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.0.get(uid).is_some_and(|at| now.millis() - at.millis() < interval_ms)
    }

    fn note(&self, uid: &Uid, interval_ms: i64, now: Timestamp) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (map, swept) = &mut *guard;
        map.insert(uid.clone(), now);
        // Forget stale entries whenever the map doubles, so it stays bounded by active users.
        if map.len() > 1024 && map.len() > 2 * *swept {
            map.retain(|_, at| now.millis() - at.millis() < interval_ms);
            *swept = map.len();
        }
    }
}

/// What `POST /v1/usage` answers.
#[derive(Debug, Serialize)]
pub struct UsageAccepted {
    pub accepted: usize,
    pub duplicates: usize,
    pub metered: bool,
    pub results: Vec<RecordOutcome>,
}

const MAX_COMMIT_ATTEMPTS: usize = 6;

fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Service {
    /// A service with fresh process-local state (caches, breaker, job wake-up).
    pub fn new(
        stores: Stores,
        policy: Policy,
        clock: Arc<dyn Clock>,
        classifier: Arc<dyn Classifier>,
        notifications: Notifications,
    ) -> Service {
        Service {
            stores,
            policy: PolicyCell::from_pointee(policy),
            clock,
            classifier,
            notifications,
            jobs_ready: Notify::new(),
            recent_evaluations: RecentEvaluations::default(),
            durable_breaker: Breaker::default(),
            known_stages: KnownStages::default(),
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Webhook messages for events that notify users (never in shadow mode).
    fn outbox_for(
        &self,
        policy: &Policy,
        state: &EnforcementState,
        events: &[Event],
        now: Timestamp,
    ) -> Vec<OutboxMessage> {
        if !self.notifications.enabled {
            return Vec::new();
        }
        events
            .iter()
            .filter_map(|e| {
                let kind = fairuse_webhook::webhook_kind(e)?;
                let ctx = e.message_context(state);
                let (title, body) = match kind {
                    fairuse_webhook::WebhookKind::BudgetExhausted => policy.budget_notification(&ctx),
                    _ => policy.notification(&ctx),
                };
                Some(fairuse_webhook::outbox_message(e, kind, &title, &body, now))
            })
            .collect()
    }

    /// Loads a user's state, applies `change` (after any timers that ran out), and commits state,
    /// events and webhooks atomically; on a version conflict it reloads and tries again, so two
    /// writers never lose an escalation or an admin action.
    pub async fn update<F>(&self, uid: &Uid, mut change: F) -> ServiceResult<(EnforcementState, Vec<Event>)>
    where
        F: FnMut(&mut EnforcementState, &mut Ctx<'_>) -> ServiceResult<Vec<Event>>,
    {
        let policy = self.policy();
        let mut invalid_retried = false;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let loaded = self.stores.durable.load(uid).await?;
            let (original, version) = loaded.map(|v| (v.value, v.version)).unwrap_or_default();
            let mut state = original.clone();
            let now = self.now();
            // The context borrows a non-Send id source: keep it out of scope at the await below.
            let events = {
                let mut ids = RandomIds;
                let mut ctx = Ctx { policy: &policy, now, uid: uid.as_str(), ids: &mut ids as &mut dyn IdSource };
                let mut events = engine::apply_timers(&mut state, &mut ctx);
                events.extend(change(&mut state, &mut ctx)?);
                events
            };
            if events.is_empty() && state == original {
                return Ok((state, events));
            }
            let outbox = self.outbox_for(&policy, &state, &events, now);
            match self.stores.durable.commit(uid, &state, version, &events, &outbox).await {
                Ok(_) => {
                    record_event_metrics(&events);
                    return Ok((state, events));
                }
                // A concurrent writer: reload and apply the change again.
                Err(StoreError::Conflict) => continue,
                // A repeated random case reference is astronomically rare: one retry with fresh
                // ids; a second refusal is about the data itself (a 400, not a conflict).
                Err(StoreError::Invalid(_)) if !invalid_retried => invalid_retried = true,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("too many concurrent updates of {uid}; retry")))
    }

    /// The state with timers applied (and persisted when they changed it).
    pub async fn current_state(&self, uid: &Uid) -> ServiceResult<EnforcementState> {
        let state = self.update(uid, |_, _| Ok(Vec::new())).await?.0;
        self.known_stages.remember(uid, &state);
        Ok(state)
    }

    /// [`Service::current_state`] for the hot path: a store failure opens the breaker, so the
    /// next requests do not each wait out the same timeout.
    async fn current_state_tripping(&self, uid: &Uid) -> ServiceResult<EnforcementState> {
        let r = self.current_state(uid).await;
        if let Err(ServiceError::Store(e)) = &r
            && matches!(e, StoreError::Unavailable(_) | StoreError::Unknown(_))
        {
            self.durable_breaker.trip(self.now());
        }
        r
    }

    /// Records validated reports; evaluates each user at most once per check interval.
    pub async fn record_usage(&self, reports: Vec<(Uid, UsageReport, Option<String>)>) -> ServiceResult<UsageAccepted> {
        let policy = self.policy();
        if !policy.switches.enabled {
            return Ok(UsageAccepted { accepted: reports.len(), duplicates: 0, metered: false, results: vec![] });
        }
        let now = self.now();
        for (i, (_, r, _)) in reports.iter().enumerate() {
            r.validate(&policy, now).map_err(|e| if reports.len() > 1 { e.at_index("reports", i) } else { e })?;
        }
        // Group by user, keeping each user's reports in order.
        let mut by_user: BTreeMap<Uid, Vec<(usize, UsageReport, Option<String>)>> = BTreeMap::new();
        for (i, (uid, r, session)) in reports.into_iter().enumerate() {
            by_user.entry(uid).or_default().push((i, r, session));
        }
        let total = by_user.values().map(Vec::len).sum();
        let mut results = vec![RecordOutcome::default(); total];
        for (uid, items) in by_user {
            let batch: Vec<UsageReport> = items.iter().map(|(_, r, _)| r.clone()).collect();
            let (outcomes, totals) = self.stores.meter.record_and_read(&uid, &batch, &policy, now).await?;
            metrics::counter!("fairuse_usage_reports_total").increment(batch.len() as u64);
            let stt: i64 = outcomes.iter().map(|o| o.stt_added_ms).sum();
            for ((i, _, _), o) in items.iter().zip(&outcomes) {
                results[*i] = *o;
            }
            let session = items.iter().rev().find_map(|(_, _, s)| s.clone());
            // Metering is acknowledged; what follows must not fail the request (fail open).
            if let Err(e) = self.after_usage(&uid, stt, totals, session, &policy, now).await {
                tracing::warn!(%uid, error = %e, "evaluation after usage failed; metering was recorded");
                metrics::counter!("fairuse_store_errors_total", "op" => "after_usage").increment(1);
            }
        }
        let duplicates = results.iter().filter(|o| o.duplicate).count();
        Ok(UsageAccepted { accepted: total, duplicates, metered: true, results })
    }

    /// Adds forwarded audio to the day's STT budget. The meter has already recorded the report,
    /// so a repeat of it will be a duplicate that adds nothing: this call is the budget's only
    /// chance. A failure that certainly did not apply is retried twice (50 ms, then 200 ms); an
    /// unknown outcome is not, since it may have counted. What is finally not added is counted in
    /// `fairuse_budget_unrecorded_ms_total` so an operator can see it.
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        let mut delay = std::time::Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match self.stores.budget.add_forwarded(uid, day, ms).await {
                Err(StoreError::Unavailable(_)) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(e) => {
                    metrics::counter!("fairuse_budget_unrecorded_ms_total").increment(ms.unsigned_abs());
                    tracing::warn!(%uid, ms, error = %e, "forwarded audio not added to the STT budget");
                    return Err(e);
                }
                Ok(used) => return Ok(used),
            }
        }
    }

    /// What follows a recorded report: the STT budget, then judging. A budget failure does not
    /// keep the report from being judged.
    async fn after_usage(
        &self,
        uid: &Uid,
        stt_ms: i64,
        totals: WindowTotals,
        session: Option<String>,
        policy: &Policy,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let budget = if stt_ms > 0 { self.count_forwarded(uid, stt_ms, &totals, policy, now).await } else { Ok(()) };
        let judged = self.judge_if_over(uid, &totals, session, policy, now).await;
        budget.and(judged)
    }

    /// Adds forwarded audio to the day's budget and records `budget_exhausted` the first time the
    /// budget of the user's stage runs out that day.
    async fn count_forwarded(
        &self,
        uid: &Uid,
        stt_ms: i64,
        totals: &WindowTotals,
        policy: &Policy,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let used = self.add_forwarded(uid, now.utc_day(), stt_ms).await?;
        if self.durable_breaker.is_open(now) {
            return Ok(()); // counted; the exhaustion event waits until the durable store answers
        }
        let state = self.current_state_tripping(uid).await?;
        let ceiling = totals.at_ceiling(policy);
        let fwd = engine::forwarding(&state, uid.as_str(), ceiling, policy);
        if let Some(limit) = fwd.budget_limit_ms.or(fwd.recorded_budget_limit_ms)
            && used >= limit
            && self.stores.budget.note_exhausted_once(uid, now.utc_day()).await?
        {
            self.update(uid, |s, ctx| {
                let mut day = engine::BudgetDay { day: ctx.now.utc_day(), used_ms: used, exhausted_noted: false };
                Ok(engine::record_stt(s, &mut day, 0, &fwd, ctx).event.into_iter().collect())
            })
            .await?;
        }
        Ok(())
    }

    /// Steps 1 and 2 of [`pipeline`]: a report under every cap of every plan needs nothing more;
    /// over the caps of the user's plan the user is judged now if their evaluation slot is free,
    /// and otherwise a due evaluation is queued, so the crossing is judged within the check
    /// interval even if no later report comes. An evaluation that cannot run now (the durable
    /// store is failing) is queued as due too.
    async fn judge_if_over(
        &self,
        uid: &Uid,
        totals: &WindowTotals,
        session: Option<String>,
        policy: &Policy,
        now: Timestamp,
    ) -> ServiceResult<()> {
        if !pipeline::may_trigger(totals, policy) {
            return Ok(());
        }
        let due = |session: Option<String>| pipeline::due_evaluation_job(uid.as_str(), session, now);
        let due_at = now.plus_ms(policy.metering.check_interval.ms());
        if self.durable_breaker.is_open(now) {
            // Metering is recorded; the judgement waits until the durable store answers.
            return self.queue_due_evaluation(&due(session), due_at).await;
        }
        let state = match self.stores.durable.load(uid).await {
            Ok(v) => v.map(|v| v.value).unwrap_or_default(),
            Err(e) => {
                self.durable_breaker.trip(self.now());
                self.queue_due_evaluation(&due(session), due_at).await.ok();
                return Err(e.into());
            }
        };
        let check = engine::check_caps(totals.clone(), state.plan_id(policy), policy);
        let AfterReport::Judge { due_at } = pipeline::after_report(&check, policy, now) else {
            return Ok(());
        };
        let interval = policy.metering.check_interval.ms();
        if self.recent_evaluations.recently(uid, interval, now) {
            // Judged here less than a check interval ago, before this report: judge again when due.
            return self.queue_due_evaluation(&due(session), due_at).await;
        }
        let acquired = self.stores.locks.try_acquire(&eval_key(uid), &token(), interval, now).await?;
        self.recent_evaluations.note(uid, interval, now);
        if !acquired {
            return self.queue_due_evaluation(&due(session), due_at).await;
        }
        self.evaluate(uid, session, policy, now).await
    }

    /// Records that `uid` must be judged at `due_at` (one pending per user: the job id is theirs).
    async fn queue_due_evaluation(&self, job: &Job, due_at: Timestamp) -> ServiceResult<()> {
        self.stores.jobs.enqueue(job, due_at).await?;
        metrics::counter!("fairuse_due_evaluations_queued_total").increment(1);
        Ok(())
    }

    /// Step 3: the gate as of now, then the classifier lock (the cooldown), then a job.
    async fn evaluate(&self, uid: &Uid, session: Option<String>, policy: &Policy, now: Timestamp) -> ServiceResult<()> {
        let state = self.current_state_tripping(uid).await?;
        let totals = self.stores.meter.read_totals(uid, policy, now).await?;
        let check = engine::check_caps(totals, state.plan_id(policy), policy);
        let exempt = state.exempt || policy.is_exempt_in_config(uid.as_str());
        if engine::classify_gate(&state, &check, exempt, true, policy) != ClassifyGate::Run {
            return Ok(());
        }
        let lock_token = token();
        let lock_key = classifier_lock_key(uid);
        if !self.stores.locks.try_acquire(&lock_key, &lock_token, policy.classifier.cooldown.ms(), now).await? {
            // Classified within the cooldown, or running elsewhere. A user on the ladder who is
            // still over a cap is judged again when the cooldown ends, whether or not they report.
            if let Some(at) = pipeline::rejudge_at(&state, policy, now) {
                self.queue_due_evaluation(&pipeline::rejudge_job(uid.as_str(), session, now), at).await?;
            }
            return Ok(());
        }
        let job =
            Job { id: token(), uid: uid.to_string(), lock_token, session_id: session, attempts: 0, created_at: now };
        if let Err(e) = self.stores.jobs.enqueue(&job, now).await {
            self.stores.locks.release(&lock_key, &job.lock_token).await.ok();
            return Err(e.into());
        }
        self.jobs_ready.notify_one();
        Ok(())
    }

    /// Runs a due evaluation: takes the user's evaluation slot like a report would. If the slot is
    /// taken, the user was judged after the report that queued this, and nothing is left to do.
    pub async fn run_due_evaluation(&self, job: &Job) -> ServiceResult<()> {
        let uid = Uid::parse(&job.uid)?;
        let policy = self.policy();
        let now = self.now();
        let interval = policy.metering.check_interval.ms();
        if self.stores.locks.try_acquire(&eval_key(&uid), &token(), interval, now).await? {
            self.recent_evaluations.note(&uid, interval, now);
            self.evaluate(&uid, job.session_id.clone(), &policy, now).await?;
        }
        metrics::counter!("fairuse_due_evaluations_run_total").increment(1);
        self.stores.jobs.complete(&job.id).await?;
        Ok(())
    }

    /// Runs one job from the queue: a due evaluation or a classifier run.
    pub async fn run_job(&self, job: &Job) -> ServiceResult<()> {
        if job.is_due_evaluation() { self.run_due_evaluation(job).await } else { self.run_classifier_job(job).await }
    }

    /// Runs one classifier job (step 4 of [`pipeline`]). A classifier failure gives no verdict,
    /// is recorded, and releases the lock so the next check may try again (fail open).
    pub async fn run_classifier_job(&self, job: &Job) -> ServiceResult<()> {
        let uid = Uid::parse(&job.uid)?;
        let policy = self.policy();
        let now = self.now();
        let state = self.current_state(&uid).await?;
        let plan = state.plan_id(&policy);
        let totals = self.stores.meter.read_totals(&uid, &policy, now).await?;
        let check = engine::check_caps(totals, plan, &policy);
        let exempt = state.exempt || policy.is_exempt_in_config(uid.as_str());
        if !pipeline::job_still_wanted(&state, &check, exempt, &job.id, &policy) {
            self.stores.jobs.complete(&job.id).await?;
            return Ok(());
        }
        let lookback = policy.classifier.lookback.ms();
        let from = now.minus_ms(lookback);
        let stored = self.stores.conversations.since(&uid, from, pipeline::CLASSIFIER_CONVERSATIONS).await?;
        // Sessions updated in the lookback, so a stream that started before it still counts.
        let sessions =
            self.stores.conversations.stream_sessions_since(&uid, from, pipeline::CLASSIFIER_STREAM_SESSIONS).await?;
        let shape = self.stores.meter.usage_shape(&uid, lookback, now).await?;
        let input = ClassifierInput {
            uid: uid.to_string(),
            plan: policy.plan_name(plan).to_owned(),
            conversations: pipeline::select_conversations(stored, &policy, now),
            shape,
            window_totals_ms: check.totals.as_slice().to_vec(),
            sessions,
        };
        let verdict: Result<Verdict, String> = match pipeline::judgement(&state, &input, &policy) {
            Judgement::Given(v) => Ok(v),
            Judgement::Ask => {
                let started = std::time::Instant::now();
                // Awaited here, on the worker's runtime. A classifier that panics is a failed run
                // like any other (no verdict, lock released), not a dead job worker.
                let r = AssertUnwindSafe(self.classifier.classify(&input))
                    .catch_unwind()
                    .await
                    .map_err(|panic| format!("classifier panicked: {}", panic_message(panic.as_ref())))
                    .and_then(|r| r.map_err(|e| e.to_string()));
                metrics::histogram!("fairuse_classifier_seconds").record(started.elapsed().as_secs_f64());
                r.map(|v| pipeline::admit(v.clamped(), &input, &policy))
            }
        };
        let verdict = match verdict {
            Ok(v) => v,
            Err(reason) => {
                metrics::counter!("fairuse_classifier_runs_total", "outcome" => "failed").increment(1);
                tracing::warn!(%uid, %reason, "classifier failed; no verdict, lock released");
                self.stores.locks.release(&classifier_lock_key(&uid), &job.lock_token).await?;
                self.stores.jobs.complete(&job.id).await?;
                return Ok(());
            }
        };
        let outcome = if verdict.demoted.is_some() { "demoted" } else { "ok" };
        metrics::counter!("fairuse_classifier_runs_total", "outcome" => outcome).increment(1);
        let trigger = check.trigger("soft_cap", plan, &policy);
        self.update(&uid, |s, ctx| Ok(pipeline::apply_job_verdict(s, job, verdict.clone(), trigger.clone(), ctx)))
            .await?;
        let hold = pipeline::lock_hold(&verdict, pipeline::repeats_earlier_audio(&input), &policy);
        if hold.ms() < policy.classifier.cooldown.ms() {
            self.stores.locks.renew(&classifier_lock_key(&uid), &job.lock_token, hold.ms(), now).await?;
        }
        self.stores.jobs.complete(&job.id).await?;
        Ok(())
    }

    /// After a failed run of `job`: retry it later (30 s more per attempt, at most 10 min), or
    /// after [`MAX_CLASSIFIER_JOB_ATTEMPTS`] abandon it and release its lock. Store errors here
    /// are logged; the job's lease runs out and it is claimed again.
    pub async fn classifier_job_failed(&self, job: &Job, error: &str) {
        let attempts = job.attempts + 1;
        let outcome = if attempts >= MAX_CLASSIFIER_JOB_ATTEMPTS {
            tracing::error!(uid = %job.uid, attempts, error, "classifier job abandoned after repeated failures");
            metrics::counter!("fairuse_classifier_runs_total", "outcome" => "abandoned").increment(1);
            let released = match Uid::parse(&job.uid) {
                Ok(uid) => self.stores.locks.release(&classifier_lock_key(&uid), &job.lock_token).await.map(|_| ()),
                Err(_) => Ok(()),
            };
            released.and(self.stores.jobs.complete(&job.id).await)
        } else {
            tracing::warn!(uid = %job.uid, attempts, error, "classifier job failed; will retry");
            let retry_at = self.now().plus_ms(30_000 * i64::from(attempts).min(20));
            self.stores.jobs.retry(&job.id, retry_at).await
        };
        if let Err(e) = outcome {
            tracing::warn!(uid = %job.uid, error = %e, "could not record the classifier job's failure");
        }
    }

    /// The decision for the host before it forwards audio. Stores that fail make it fail open,
    /// except the STT budget of users already throttled or restricted (policy switch).
    pub async fn decision(&self, uid: &Uid) -> ServiceResult<Decision> {
        self.decision_with_health(uid).await.map(|h| h.decision)
    }

    /// [`Self::decision`], and whether a denial is only the budget store failing closed: the
    /// gateway holds such a stream rather than stopping it ([`pipeline::lease`]).
    pub async fn decision_with_health(&self, uid: &Uid) -> ServiceResult<DecisionWithHealth> {
        let policy = self.policy();
        let now = self.now();
        let mut degraded = Vec::new();
        // While the durable store is unavailable, the last stage this process read still sets
        // the budget (fail closed for throttle/restrict); a user never read here fails open.
        let fallback = |why: String, degraded: &mut Vec<String>| match self.known_stages.get(uid) {
            Some(known) => {
                degraded.push(format!("enforcement state unavailable ({why}); using the last stage read here"));
                known
            }
            None => {
                degraded.push(format!("enforcement state unavailable ({why}); failing open"));
                EnforcementState::default()
            }
        };
        let state = if self.durable_breaker.is_open(now) {
            fallback("store recently failed".into(), &mut degraded)
        } else {
            match self.current_state(uid).await {
                Ok(s) => s,
                Err(e) => {
                    if matches!(e, ServiceError::Store(ref se) if !matches!(se, StoreError::Conflict | StoreError::Invalid(_) | StoreError::NotFound(_)))
                    {
                        self.durable_breaker.trip(self.now());
                    }
                    fallback(e.to_string(), &mut degraded)
                }
            }
        };
        let totals = match self.stores.meter.read_totals(uid, &policy, now).await {
            Ok(t) => t,
            Err(e) => {
                degraded.push(format!("usage meter unavailable ({e}); caps not applied"));
                WindowTotals::zeros(&policy)
            }
        };
        let check = engine::check_caps(totals, state.plan_id(&policy), &policy);
        let (used, budget_down) = match self.stores.budget.used(uid, now.utc_day()).await {
            Ok(u) => (u, false),
            Err(_) => (0, true),
        };
        let recoveries = self.recoveries(uid, &check, &state, &policy, now).await;
        let mut d = engine::decide(&state, uid.as_str(), &check, used, &policy, now, &|w, cap| {
            recoveries.get(&(w, cap)).copied().flatten()
        });
        let budget_unavailable = budget_down && d.stt_budget.is_some() && policy.budget.fail_closed_when_store_down;
        if budget_unavailable {
            d.stt_allowed = false;
            d.reasons.push("STT budget store unavailable; failing closed for this stage".into());
        }
        d.reasons.extend(degraded);
        let outcome = if d.stt_allowed { "allowed" } else { "denied" };
        metrics::counter!("fairuse_decisions_total", "outcome" => outcome, "stage" => d.effective_stage.as_str())
            .increment(1);
        Ok(DecisionWithHealth { decision: d, budget_unavailable })
    }

    async fn recoveries(
        &self,
        uid: &Uid,
        check: &CapCheck,
        state: &EnforcementState,
        policy: &Policy,
        now: Timestamp,
    ) -> BTreeMap<(usize, i64), Option<Timestamp>> {
        let caps = policy.caps(state.plan_id(policy));
        let mut wanted: Vec<(usize, i64)> =
            check.triggered.iter().filter_map(|&i| caps.get(i).copied().flatten().map(|c| (i, c))).collect();
        if let Some(limit) = policy.ceiling_limit_ms().filter(|_| check.ceiling_exceeded) {
            wanted.push((policy.ceiling_window(), limit - 1));
        }
        let mut out = BTreeMap::new();
        for (w, cap) in wanted {
            let minutes = policy.window_minutes()[w];
            let r = self.stores.meter.recovery_at(uid, minutes, cap, now).await.ok().flatten();
            out.insert((w, cap), r);
        }
        out
    }

    pub async fn set_plan(&self, uid: &Uid, plan: &str, credits_exhausted: bool) -> ServiceResult<EnforcementState> {
        let policy = self.policy();
        let plan = policy.plan_or_error(plan)?;
        Ok(self.update(uid, |s, ctx| Ok(engine::plan_changed(s, plan, credits_exhausted, ctx))).await?.0)
    }

    pub async fn upsert_conversation(&self, uid: &Uid, c: &Conversation) -> ServiceResult<()> {
        pipeline::validate_conversation(c, &self.policy(), self.now())?;
        self.stores.conversations.upsert(uid, &c.for_classifier()).await?;
        Ok(())
    }

    /// One batch of a gateway stream's sampled fingerprint codes: looks their keys up in the print
    /// index (prints heard within the policy's `[fingerprint] retention`, at most
    /// [`POSTING_LIMIT`] per key), then adds the batch, and answers what was found for the
    /// stream's duplicate tracker. Nothing is looked up or stored while fair use is switched off.
    pub async fn match_prints(
        &self,
        uid: &Uid,
        session_id: &str,
        started_at: Timestamp,
        batch: &[HashSample],
    ) -> Result<Vec<Print>, StoreError> {
        let policy = self.policy();
        if !policy.switches.enabled || batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let keys: Vec<u32> = batch.iter().map(|h| print_key(h.code)).collect();
        let since = now.minus_ms(policy.fingerprint.retention.ms());
        let found = self.stores.prints.lookup_prints(&keys, since, POSTING_LIMIT).await?;
        let prints: Vec<Print> = batch
            .iter()
            .map(|h| Print {
                uid: uid.as_str().to_owned(),
                session_id: session_id.to_owned(),
                heard_at: started_at.plus_ms(h.offset_ms),
                code: h.code,
            })
            .collect();
        self.stores.prints.add_prints(&prints).await?;
        metrics::counter!("fairuse_print_codes_indexed_total").increment(prints.len() as u64);
        Ok(found)
    }

    /// Records the streaming gateway's summary of one stream for the classifier: validated (a
    /// 400 naming the field), then upserted by `(uid, session_id)`. The store keeps the newest
    /// snapshot: an update that would reopen a closed session or lower a total is ignored, so the
    /// gateway may send the same or an older snapshot again without harm (see
    /// `ConversationStore::upsert_stream_session`). Nothing is stored while fair use is switched
    /// off (`enabled = false`), like usage.
    pub async fn record_stream_session(&self, uid: &Uid, session: StreamSession) -> ServiceResult<()> {
        if !self.policy().switches.enabled {
            return Ok(());
        }
        session.validate()?;
        self.stores.conversations.upsert_stream_session(uid, &session).await?;
        metrics::counter!("fairuse_stream_sessions_recorded_total", "closed" => if session.closed { "true" } else { "false" })
            .increment(1);
        Ok(())
    }

    /// The public case lookup, rate-limited per client across replicas through the hot store.
    pub async fn case_lookup_allowed(&self, client: &str, limit_per_minute: u32) -> ServiceResult<()> {
        let r = self.stores.rates.hit(&format!("case-lookup:{client}"), limit_per_minute, 60_000, self.now()).await?;
        if r.allowed {
            Ok(())
        } else {
            Err(ServiceError::RateLimited { retry_after_s: (r.retry_after_ms + 999) / 1000 })
        }
    }

    /// Appeals per user: `limit_per_day` in a fixed day-long window shared by every replica.
    pub async fn appeal_allowed(&self, uid: &Uid, limit_per_day: u32) -> ServiceResult<()> {
        let r = self.stores.rates.hit(&format!("appeal:{uid}"), limit_per_day, 86_400_000, self.now()).await?;
        if r.allowed {
            Ok(())
        } else {
            Err(ServiceError::RateLimited { retry_after_s: (r.retry_after_ms + 999) / 1000 })
        }
    }

    pub async fn case_event(&self, case_ref: &str) -> ServiceResult<Event> {
        let case = CaseRef::parse(case_ref)?;
        self.stores
            .durable
            .event_by_case_ref(case.as_str())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("case {case} not found")))
    }

    pub async fn appeal(&self, uid: &Uid, case_ref: &str, text: &str) -> ServiceResult<Event> {
        let event = self.case_event(case_ref).await?;
        if event.uid != uid.as_str() {
            // The same answer as a case that does not exist: owners only, and no probing.
            return Err(ServiceError::NotFound(format!("case {case_ref} not found")));
        }
        let (_, events) = self.update(uid, |s, ctx| Ok(vec![engine::appeal(s, &event.case_ref, text, ctx)?])).await?;
        events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("appeal was not recorded".into()))
    }

    pub async fn resolve(
        &self,
        uid: &Uid,
        event_id: &str,
        outcome: Outcome,
        notes: String,
        actor: &str,
    ) -> ServiceResult<(Event, Event)> {
        let mut target = self
            .stores
            .durable
            .event_by_id(uid, event_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("event {event_id} of user {uid} not found")))?;
        let (_, events) = self
            .update(uid, |s, ctx| Ok(engine::resolve_event(s, &mut target, outcome, notes.clone(), actor, ctx)))
            .await?;
        self.stores.durable.update_event(&target).await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("resolution was not recorded".into()))?;
        Ok((target, audit))
    }

    pub async fn reset(
        &self,
        uid: &Uid,
        actor: &str,
        reason: Option<String>,
    ) -> ServiceResult<(EnforcementState, Event)> {
        let (state, events) = self.update(uid, |s, ctx| Ok(engine::admin_reset(s, actor, reason.clone(), ctx))).await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("reset was not recorded".into()))?;
        // A reset also lifts the classifier cooldown's effect on the new counting period only
        // through the ladder; the lock itself is left to expire.
        Ok((state, audit))
    }

    pub async fn set_stage(
        &self,
        uid: &Uid,
        stage: Stage,
        until: Option<Timestamp>,
        actor: &str,
        reason: Option<String>,
    ) -> ServiceResult<(EnforcementState, Event)> {
        let (state, events) = self
            .update(uid, |s, ctx| Ok(engine::admin_set_stage(s, stage, until, actor, reason.clone(), ctx)?))
            .await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("stage was not recorded".into()))?;
        Ok((state, audit))
    }

    pub async fn set_exempt(&self, uid: &Uid, exempt: bool, actor: &str) -> ServiceResult<(EnforcementState, Event)> {
        let (state, events) = self.update(uid, |s, ctx| Ok(engine::set_exempt(s, exempt, actor, ctx))).await?;
        let audit =
            events.into_iter().last().ok_or_else(|| ServiceError::Unavailable("exemption was not recorded".into()))?;
        Ok((state, audit))
    }

    /// Minute-level usage of the last `days` per lane, for the admin charts: `(unix minute, ms)`.
    pub async fn usage_series(&self, uid: &Uid, days: i64) -> ServiceResult<BTreeMap<&'static str, Vec<(i64, i64)>>> {
        let now = self.now();
        let to = now.minute();
        let from = to - days * 1440 + 1;
        let mut out = BTreeMap::new();
        for lane in Lane::ALL {
            out.insert(lane.as_str(), self.stores.meter.minute_series(uid, lane, from, to).await?);
        }
        Ok(out)
    }

    /// Timer worker step: applies timers that ran out (and sends their webhooks).
    pub async fn apply_due_timers(&self, limit: usize) -> ServiceResult<usize> {
        let due = self.stores.durable.due_timers(self.now(), limit).await?;
        let mut applied = 0;
        for raw in &due {
            let Ok(uid) = Uid::parse(raw) else { continue };
            // One user's failure must not hold back everyone else's timers and webhooks.
            match self.current_state(&uid).await {
                Ok(_) => applied += 1,
                Err(e) => {
                    tracing::warn!(%uid, error = %e, "applying an expired timer failed; will retry");
                    metrics::counter!("fairuse_store_errors_total", "op" => "timer_sweep").increment(1);
                }
            }
        }
        Ok(applied)
    }

    pub fn shadow(&self) -> bool {
        self.policy().switches.mode == Mode::Shadow
    }

    /// Replaces the live policy (the reload worker, after the new file parsed and validated).
    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// The stores themselves, for tests and tools that check or seed stored state directly.
    /// Handlers and workers go through the methods above instead.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// A user's newest `limit` events, newest first (the admin user page).
    pub async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.stores.durable.events(uid, limit).await
    }

    /// Users not at stage none (or at `stage`), most recently changed first: the admin list.
    pub async fn flagged(
        &self,
        stage: Option<Stage>,
        limit: usize,
    ) -> Result<Vec<(String, EnforcementState)>, StoreError> {
        self.stores.durable.flagged(stage, limit).await
    }

    /// When a window's capped total falls back to `cap_ms` if the user stops now.
    pub async fn recovery_at(
        &self,
        uid: &Uid,
        window_minutes: i64,
        cap_ms: i64,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.stores.meter.recovery_at(uid, window_minutes, cap_ms, now).await
    }

    /// Forwarded audio counted against the STT budget on UTC day `day`.
    pub async fn budget_used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        self.stores.budget.used(uid, day).await
    }

    /// Claims up to `limit` due classifier jobs for `lease_ms` (the classifier worker).
    pub async fn claim_jobs(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<Job>, StoreError> {
        self.stores.jobs.claim(now, limit, lease_ms).await
    }

    /// Resolves when a classifier job was queued in this process since the last wake-up (one
    /// stored permit, so a job queued while the worker is busy is not missed).
    pub async fn job_queued(&self) {
        self.jobs_ready.notified().await
    }

    /// Redacts evidence text of events recorded before `cutoff`; answers how many were redacted.
    pub async fn redact_evidence_before(&self, cutoff: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.stores.durable.redact_evidence_before(cutoff, now).await
    }

    /// Deletes fingerprint prints heard before `before`; answers how many were deleted.
    pub async fn prune_prints(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.stores.prints.prune_prints(before).await
    }
}

/// A classifier job whose run failed (a store error: classifier failures are verdict-less runs,
/// not failures) is run this many times in all, 30 s more apart each time (about 25 minutes), then
/// abandoned: its lock is released so the next evaluation can queue a fresh job.
pub const MAX_CLASSIFIER_JOB_ATTEMPTS: u32 = 10;

/// The user's evaluation slot: held for one check interval by whoever judges the user.
fn eval_key(uid: &Uid) -> String {
    format!("eval:{uid}")
}

pub fn classifier_lock_key(uid: &Uid) -> String {
    format!("classifier:{uid}")
}

/// The text a panic was raised with (`panic!` with a literal or a format string), for the log.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

fn record_event_metrics(events: &[Event]) {
    for e in events {
        metrics::counter!("fairuse_events_total", "kind" => e.kind.as_str()).increment(1);
        if e.changes_stage() {
            metrics::counter!("fairuse_stage_transitions_total", "from" => e.previous_stage.as_str(), "to" => e.new_stage.as_str())
                .increment(1);
        }
    }
}
