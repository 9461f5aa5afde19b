//! fairuse-store-contract: one contract test suite per store trait, run against every backend.
//!
//! The domain documents what each store port promises (`fairuse_domain::store`); this crate turns
//! those promises into executable checks, so the in-memory store, the embedded SQLite store and
//! the Redis and PostgreSQL adapters are held to exactly the same behaviour. Each contract is a
//! `pub async fn` taking the store as a trait object and a *prefix*: every uid, key, event id,
//! case reference, job and message id a contract creates is derived from it, so several contracts
//! (and several backends) can share one server and run in parallel.
//!
//! The functions panic with a message naming the broken promise; call them from `#[tokio::test]`
//! functions in the adapter crates. This crate must not depend on any adapter (no sqlx, no redis):
//! adapters depend on it as a dev-dependency, never the other way round.
//!
//! Shared state: the enforcement queries `flagged`, `due_timers` and `redact_evidence_before`
//! read every user, so their checks only look at this prefix's users and use time ranges no other
//! contract touches; still, redaction is one global call, so two runs of
//! [`enforcement_redacts_evidence`] must not overlap on one store (its count would be shared). The
//! outbox and the job queue are global queues: claiming takes whatever is due, whoever enqueued
//! it, so [`outbox_contract`] and [`job_contract`] need a store whose outbox and job queue no other
//! test uses at the same time (a fresh database, schema or key space per test).
#![forbid(unsafe_code)]

mod conversation;
mod enforcement;
mod hot;
mod meter;
mod prints;
mod queues;
mod stream_session;
mod support;

use fairuse_domain::store::{
    BudgetStore, ConversationStore, EnforcementStore, JobStore, LockStore, OutboxStore, RateLimitStore, UsageMeterStore,
};

pub use conversation::conversation_contract;
pub use enforcement::{
    enforcement_commit_is_versioned_and_atomic, enforcement_contract, enforcement_due_timers,
    enforcement_duplicate_case_ref_is_refused, enforcement_events_read_back, enforcement_events_since,
    enforcement_flagged, enforcement_redacts_evidence, enforcement_update_event_changes_only_the_resolution,
};
pub use hot::{budget_contract, lock_contract, rate_limit_contract};
pub use meter::{
    meter_contract, meter_counts_idempotency_keys_once, meter_counts_only_session_increases,
    meter_lists_users_with_usage_since, meter_minute_series, meter_records_and_reads_capped_windows, meter_recovery_at,
    meter_stays_exact_over_random_sequences, meter_unknown_user_reads_zero, meter_usage_shape,
};
pub use prints::print_contract;
pub use queues::{job_contract, outbox_contract};
pub use stream_session::stream_session_contract;

/// Every store port of one backend, borrowed. A backend that implements all of them in one type
/// builds it with [`Stores::of`]; a split backend (hot store and durable store) fills the fields.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub meter: &'a dyn UsageMeterStore,
    pub budget: &'a dyn BudgetStore,
    pub lock: &'a dyn LockStore,
    pub rate_limit: &'a dyn RateLimitStore,
    pub enforcement: &'a dyn EnforcementStore,
    pub conversation: &'a dyn ConversationStore,
    pub outbox: &'a dyn OutboxStore,
    pub job: &'a dyn JobStore,
}

impl<'a> Stores<'a> {
    /// All ports from one value that implements every trait.
    pub fn of<S>(store: &'a S) -> Stores<'a>
    where
        S: UsageMeterStore
            + BudgetStore
            + LockStore
            + RateLimitStore
            + EnforcementStore
            + ConversationStore
            + OutboxStore
            + JobStore
            + 'a,
    {
        Stores {
            meter: store,
            budget: store,
            lock: store,
            rate_limit: store,
            enforcement: store,
            conversation: store,
            outbox: store,
            job: store,
        }
    }
}

/// Runs every contract, one after another (the queue contracts must not overlap each other), each
/// with its own sub-prefix of `prefix`.
pub async fn all(stores: &Stores<'_>, prefix: &str) {
    meter_contract(stores.meter, &format!("{prefix}.meter")).await;
    budget_contract(stores.budget, &format!("{prefix}.budget")).await;
    lock_contract(stores.lock, &format!("{prefix}.lock")).await;
    rate_limit_contract(stores.rate_limit, &format!("{prefix}.rate")).await;
    enforcement_contract(stores.enforcement, &format!("{prefix}.enf")).await;
    conversation_contract(stores.conversation, &format!("{prefix}.conv")).await;
    stream_session_contract(stores.conversation, &format!("{prefix}.stream")).await;
    outbox_contract(stores.enforcement, stores.outbox, &format!("{prefix}.outbox")).await;
    job_contract(stores.job, &format!("{prefix}.job")).await;
}
