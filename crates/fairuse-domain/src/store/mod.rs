//! Store ports: what the service needs from its hot store (buckets, budgets, locks, rate limits)
//! and its durable store (state, events, conversations and stream sessions). The in-memory
//! reference implementation, used by tests and by the library mode, is [`MemoryStore`]
//! (`store/memory.rs`); the embedded, Redis and PostgreSQL adapters implement the same traits in
//! their own crates.

use async_trait::async_trait;

use crate::classifier::{Conversation, UsageShape};
use crate::engine::{EnforcementState, Event};
use crate::error::StoreError;
use crate::ids::{Lane, Uid};
use crate::policy::Policy;
use crate::prints::Print;
use crate::sessions::StreamSession;
use crate::stage::Stage;
use crate::time::Timestamp;
use crate::windows::{RecordOutcome, UsageReport, WindowTotals};

mod memory;

pub use memory::MemoryStore;

/// Minute buckets per user and lane.
#[async_trait]
pub trait UsageMeterStore: Send + Sync {
    /// Records validated reports and returns their outcomes and the capped window totals after
    /// them, one per window of `policy`: one step, so a check never needs a second read.
    async fn record_and_read(
        &self,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(Vec<RecordOutcome>, WindowTotals), StoreError>;
    async fn read_totals(&self, uid: &Uid, policy: &Policy, now: Timestamp) -> Result<WindowTotals, StoreError>;
    /// When the capped total of a window falls back to `cap_ms` if the user stops now.
    async fn recovery_at(
        &self,
        uid: &Uid,
        window_minutes: i64,
        cap_ms: i64,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// `(minute, ms)` of one lane in `from..=to` minutes, for charts.
    async fn minute_series(
        &self,
        uid: &Uid,
        lane: Lane,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError>;
    async fn usage_shape(&self, uid: &Uid, lookback_ms: i64, now: Timestamp) -> Result<UsageShape, StoreError>;
    /// Every user with a bucket of any lane at or after `from_minute`, each once, sorted by uid:
    /// whose history `export-trace` reads. A scan of the whole meter, for operators' tools, never
    /// for a request path.
    async fn users_since(&self, from_minute: i64) -> Result<Vec<Uid>, StoreError>;
}

/// STT audio forwarded per user and UTC day.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Adds forwarded ms to the day's counter and returns the new total.
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError>;
    async fn used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError>;
    /// True the first time it is called for `(uid, day)`: one `budget_exhausted` event a day.
    async fn note_exhausted_once(&self, uid: &Uid, day: i64) -> Result<bool, StoreError>;
}

/// Locks with a token and a time to live (the classifier lock is also its cooldown).
#[async_trait]
pub trait LockStore: Send + Sync {
    async fn try_acquire(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError>;
    /// Compare-and-delete: releases only if `token` still holds the lock.
    async fn release(&self, key: &str, token: &str) -> Result<bool, StoreError>;
    /// Compare-and-set of the expiry: if `token` holds the lock at `now`, it is held until
    /// `now + ttl_ms` instead (shorter or longer). False, and nothing changes, otherwise.
    async fn renew(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitOutcome {
    pub allowed: bool,
    pub remaining: u32,
    pub retry_after_ms: i64,
}

/// Fixed-window counters shared by every replica.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    async fn hit(&self, key: &str, limit: u32, window_ms: i64, now: Timestamp) -> Result<RateLimitOutcome, StoreError>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Enforcement state with optimistic concurrency, and the append-only events.
#[async_trait]
pub trait EnforcementStore: Send + Sync {
    async fn load(&self, uid: &Uid) -> Result<Option<Versioned<EnforcementState>>, StoreError>;
    /// Writes the state if its version is still `expected` (0 for a new user), appends the events
    /// and enqueues the outbox messages, atomically. Returns the new version, or
    /// [`StoreError::Conflict`] (nothing written).
    async fn commit(
        &self,
        uid: &Uid,
        state: &EnforcementState,
        expected: u64,
        events: &[Event],
        outbox: &[OutboxMessage],
    ) -> Result<u64, StoreError>;
    /// Newest first: by `created_at` descending, and among equal instants the later append first.
    async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError>;
    async fn event_by_case_ref(&self, case_ref: &str) -> Result<Option<Event>, StoreError>;
    async fn event_by_id(&self, uid: &Uid, event_id: &str) -> Result<Option<Event>, StoreError>;
    /// Replaces an event's resolution: the only part of an event this changes.
    async fn update_event(&self, event: &Event) -> Result<(), StoreError>;
    /// Users not in `none` (or in `stage`), most recently changed first.
    async fn flagged(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<(String, EnforcementState)>, StoreError>;
    /// Users whose stage timer has run out by `now` (for the timer worker), at most `limit`.
    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Removes evidence text from verdicts of events created before `cutoff` and stamps
    /// `evidence_redacted_at = now`. Returns how many events changed.
    async fn redact_evidence_before(&self, cutoff: Timestamp, now: Timestamp) -> Result<u64, StoreError>;
    /// Every uid with an event created at or after `from`, each once, sorted: with
    /// [`EnforcementStore::events_since`], what `export-trace` reads of admin actions and verdicts.
    async fn users_with_events_since(&self, from: Timestamp) -> Result<Vec<String>, StoreError>;
    /// A user's events created at or after `from`, oldest first (among equal instants, in append
    /// order): the reverse of [`EnforcementStore::events`], without a limit.
    async fn events_since(&self, uid: &Uid, from: Timestamp) -> Result<Vec<Event>, StoreError>;
}

/// A webhook waiting for delivery. `id` is the event id the receiver deduplicates on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: String,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub last_error: Option<String>,
}

/// The durable webhook outbox: at least once delivery.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Messages due by `now`, leased to the caller until `now + lease_ms` so no other worker or
    /// replica takes them meanwhile (a crash before `delivered` makes them due again).
    async fn claim_due(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<OutboxMessage>, StoreError>;
    async fn delivered(&self, id: &str, now: Timestamp) -> Result<(), StoreError>;
    /// Schedules another attempt; `give_up` moves the message to the dead letters instead.
    async fn failed(&self, id: &str, next_attempt_at: Timestamp, error: &str, give_up: bool) -> Result<(), StoreError>;
    /// Messages not yet delivered (pending, leased and dead).
    async fn pending(&self) -> Result<u64, StoreError>;
    /// Messages still to be delivered (pending and leased, not the dead letters): the webhook
    /// backlog an operator alerts on. Dead letters stay in the outbox for inspection, so counting
    /// them would make the backlog only ever grow.
    async fn backlog(&self) -> Result<u64, StoreError>;
}

/// A durable classifier job: the user to classify and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub uid: String,
    pub lock_token: String,
    pub session_id: Option<String>,
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// Durable jobs (the classifier queue): a job survives a restart until it is completed.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Enqueues a job; a job with the same id already queued is left as it is.
    async fn enqueue(&self, job: &Job, now: Timestamp) -> Result<(), StoreError>;
    /// Jobs not completed and not leased by someone else, leased until `now + lease_ms`.
    async fn claim(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<Job>, StoreError>;
    async fn complete(&self, id: &str) -> Result<(), StoreError>;
    /// Makes a job due again at `retry_at` with its attempt count raised.
    async fn retry(&self, id: &str, retry_at: Timestamp) -> Result<(), StoreError>;
}

/// What the classifier reads about a user: the host's conversation metadata and the gateway's
/// stream sessions.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    async fn upsert(&self, uid: &Uid, conversation: &Conversation) -> Result<(), StoreError>;
    /// Conversations that started at or after `from`, oldest first; over `limit`, the most
    /// recently started are kept (many early conversations cannot hide the later ones).
    async fn since(&self, uid: &Uid, from: Timestamp, limit: usize) -> Result<Vec<Conversation>, StoreError>;
    /// Stores a gateway stream session by `(uid, session_id)`. A later snapshot replaces the
    /// stored one whole, unless it is behind it ([`StreamSession::is_behind`]: it would reopen a
    /// closed session or lower its received, speech or forwarded audio); such an update is ignored
    /// and still answers `Ok`, since late retries and out-of-order flushes are normal. Every store
    /// applies the rule atomically, so concurrent writers cannot undo it either.
    async fn upsert_stream_session(&self, uid: &Uid, session: &StreamSession) -> Result<(), StoreError>;
    /// Stream sessions updated at or after `from` (so a long stream that started earlier still
    /// counts), oldest started first (ties by session id). Over `limit`, the most recently started
    /// are kept: a user cannot push their recent sessions out of the classifier's view by opening
    /// many streams early in the lookback.
    async fn stream_sessions_since(
        &self,
        uid: &Uid,
        from: Timestamp,
        limit: usize,
    ) -> Result<Vec<StreamSession>, StoreError>;
}

/// The print index (issue 11): sampled acoustic fingerprint codes of gateway sessions, keyed by
/// [`crate::prints::print_key`], so a new session finds earlier ones that heard the same audio.
#[async_trait]
pub trait PrintStore: Send + Sync {
    /// Adds one batch of a session's sampled codes. Adding the same batch again (a retry) may store
    /// it twice; the tracker counts a run once however many prints it finds at one offset.
    async fn add_prints(&self, prints: &[Print]) -> Result<(), StoreError>;
    /// The prints whose key is one of `keys`, heard at or after `since`: per key at most `per_key`,
    /// the most recently heard first (bounded work whatever the number of users). In no order.
    async fn lookup_prints(&self, keys: &[u32], since: Timestamp, per_key: usize) -> Result<Vec<Print>, StoreError>;
    /// Deletes prints heard before `before` (the retention); returns how many.
    async fn prune_prints(&self, before: Timestamp) -> Result<u64, StoreError>;
}
