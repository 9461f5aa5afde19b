//! The service layer: each API operation as stores + the domain's pure functions. Handlers call
//! these and only translate HTTP; workers call them too. No SQL and no Redis commands here: the
//! stores are `Arc<dyn Trait>` chosen by the composition root. Failures are `ServiceError`, which
//! names no HTTP status: `error.rs` maps it to the HTTP table in one place.
//!
//! This file holds the [`Service`] itself, its constructor and the state update every operation
//! shares; the operations live beside it, one job per file: `usage` (reports, the STT budget,
//! judging), `classifier` (evaluations, classifier jobs and verdicts), `decision` (the decision
//! and the reads behind it), `inputs` (plans, conversations, stream summaries, prints), `admin`
//! (cases, appeals, admin actions and reads), `sweeps` (the periodic workers' steps) and `caches`
//! (process-local state in front of the stores).

use std::sync::Arc;

use arc_swap::ArcSwap;
use fairuse_domain::classifier::Classifier;
use fairuse_domain::engine::{self, Ctx, EnforcementState, Event};
use fairuse_domain::ids::{IdSource, Uid};
use fairuse_domain::policy::{Mode, Policy};
use fairuse_domain::store::{
    BudgetStore, ConversationStore, EnforcementStore, JobStore, LockStore, OutboxMessage, OutboxStore, PrintStore,
    RateLimitStore, UsageMeterStore,
};
use fairuse_domain::time::{Clock, Timestamp};
use fairuse_domain::{InputError, StoreError};
use tokio::sync::Notify;

use crate::clock::RandomIds;

mod admin;
mod caches;
mod classifier;
mod decision;
mod inputs;
mod sweeps;
mod usage;

use caches::{Breaker, KnownStages, RecentEvaluations};
pub use classifier::{MAX_CLASSIFIER_JOB_ATTEMPTS, classifier_lock_key};
pub use usage::{UsageAccepted, UserReport};

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
    /// The decision counter's handles, one per outcome and stage.
    decision_counters: decision::DecisionCounters,
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
            decision_counters: decision::DecisionCounters::default(),
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

    pub fn shadow(&self) -> bool {
        self.policy().switches.mode == Mode::Shadow
    }

    /// Replaces the live policy (the reload worker, after the new file parsed and validated).
    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// The stores themselves, for tests and tools that check or seed stored state directly.
    /// Handlers and workers go through the service's methods instead.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }
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
