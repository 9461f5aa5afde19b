//! Store ports: what the service needs from its hot store (buckets, budgets, locks, rate limits)
//! and its durable store (state, events, conversations), and an in-memory implementation used by
//! tests and by the library mode. The embedded, Redis and PostgreSQL adapters implement the same
//! traits in their own crates.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::classifier::{Conversation, UsageShape};
use crate::engine::{EnforcementState, Event};
use crate::error::StoreError;
use crate::ids::{Lane, Uid};
use crate::policy::Policy;
use crate::stage::Stage;
use crate::time::Timestamp;
use crate::windows::{RecordOutcome, UsageReport, UserMeter, recovery_at};

/// Minute buckets per user and lane.
#[async_trait]
pub trait UsageMeterStore: Send + Sync {
    /// Records validated reports and returns their outcomes and the capped window totals after
    /// them, in the policy's window order: one step, so a check never needs a second read.
    async fn record_and_read(
        &self,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(Vec<RecordOutcome>, Vec<i64>), StoreError>;
    async fn read_totals(&self, uid: &Uid, policy: &Policy, now: Timestamp) -> Result<Vec<i64>, StoreError>;
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
    /// Writes the state if its version is still `expected` (0 for a new user) and appends the
    /// events, atomically. Returns the new version, or [`StoreError::Conflict`].
    async fn commit(
        &self,
        uid: &Uid,
        state: &EnforcementState,
        expected: u64,
        events: &[Event],
    ) -> Result<u64, StoreError>;
    /// Newest first.
    async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError>;
    async fn event_by_case_ref(&self, case_ref: &str) -> Result<Option<Event>, StoreError>;
    /// Replaces an event's resolution (the only mutable part of an event).
    async fn update_event(&self, event: &Event) -> Result<(), StoreError>;
    /// Users not in `none` (or in `stage`), most recently changed first.
    async fn flagged(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<(String, EnforcementState)>, StoreError>;
}

#[async_trait]
pub trait ConversationStore: Send + Sync {
    async fn upsert(&self, uid: &Uid, conversation: &Conversation) -> Result<(), StoreError>;
    /// Conversations that started at or after `from`, oldest first, at most `limit`.
    async fn since(&self, uid: &Uid, from: Timestamp, limit: usize) -> Result<Vec<Conversation>, StoreError>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way later
    // readers would misread (every update is a single insert), so poisoning is safe to ignore.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything in process memory; lost at exit.
#[derive(Default)]
pub struct MemoryStore {
    meters: Mutex<HashMap<Uid, UserMeter>>,
    budgets: Mutex<HashMap<(Uid, i64), (i64, bool)>>,
    locks: Mutex<HashMap<String, (String, i64)>>,
    rates: Mutex<HashMap<String, (i64, u32)>>,
    states: Mutex<HashMap<Uid, Versioned<EnforcementState>>>,
    events: Mutex<Vec<Event>>,
    conversations: Mutex<HashMap<Uid, Vec<Conversation>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UsageMeterStore for MemoryStore {
    async fn record_and_read(
        &self,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(Vec<RecordOutcome>, Vec<i64>), StoreError> {
        let mut meters = lock(&self.meters);
        let meter = meters.entry(uid.clone()).or_default();
        let outcomes = reports.iter().map(|r| meter.record(r, policy.metering.retention.ms(), now)).collect();
        Ok((outcomes, meter.capped_totals(policy, now)))
    }

    async fn read_totals(&self, uid: &Uid, policy: &Policy, now: Timestamp) -> Result<Vec<i64>, StoreError> {
        let meters = lock(&self.meters);
        Ok(match meters.get(uid) {
            Some(m) => m.capped_totals(policy, now),
            None => vec![0; policy.windows.len()],
        })
    }

    async fn recovery_at(
        &self,
        uid: &Uid,
        window_minutes: i64,
        cap_ms: i64,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        Ok(lock(&self.meters).get(uid).and_then(|m| recovery_at(m, window_minutes, cap_ms, now)))
    }

    async fn minute_series(
        &self,
        uid: &Uid,
        lane: Lane,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(lock(&self.meters)
            .get(uid)
            .map(|m| m.lane(lane).minutes().filter(|&(k, _)| k >= from_minute && k <= to_minute).collect())
            .unwrap_or_default())
    }

    async fn usage_shape(&self, uid: &Uid, lookback_ms: i64, now: Timestamp) -> Result<UsageShape, StoreError> {
        Ok(lock(&self.meters).get(uid).map(|m| UsageShape::measure(m, lookback_ms, now)).unwrap_or_default())
    }
}

#[async_trait]
impl BudgetStore for MemoryStore {
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        let mut b = lock(&self.budgets);
        let slot = b.entry((uid.clone(), day)).or_insert((0, false));
        slot.0 += ms;
        Ok(slot.0)
    }

    async fn used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        Ok(lock(&self.budgets).get(&(uid.clone(), day)).map_or(0, |s| s.0))
    }

    async fn note_exhausted_once(&self, uid: &Uid, day: i64) -> Result<bool, StoreError> {
        let mut b = lock(&self.budgets);
        let slot = b.entry((uid.clone(), day)).or_insert((0, false));
        Ok(!std::mem::replace(&mut slot.1, true))
    }
}

#[async_trait]
impl LockStore for MemoryStore {
    async fn try_acquire(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError> {
        let mut locks = lock(&self.locks);
        match locks.get(key) {
            Some((_, expires)) if *expires > now.millis() => Ok(false),
            _ => {
                locks.insert(key.to_owned(), (token.to_owned(), now.millis() + ttl_ms));
                Ok(true)
            }
        }
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let mut locks = lock(&self.locks);
        if locks.get(key).is_some_and(|(t, _)| t == token) {
            locks.remove(key);
            return Ok(true);
        }
        Ok(false)
    }
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn hit(&self, key: &str, limit: u32, window_ms: i64, now: Timestamp) -> Result<RateLimitOutcome, StoreError> {
        let mut rates = lock(&self.rates);
        let window = now.millis().div_euclid(window_ms);
        let slot = rates.entry(key.to_owned()).or_insert((window, 0));
        if slot.0 != window {
            *slot = (window, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        let allowed = slot.1 <= limit;
        Ok(RateLimitOutcome {
            allowed,
            remaining: limit.saturating_sub(slot.1),
            retry_after_ms: if allowed { 0 } else { (window + 1) * window_ms - now.millis() },
        })
    }
}

#[async_trait]
impl EnforcementStore for MemoryStore {
    async fn load(&self, uid: &Uid) -> Result<Option<Versioned<EnforcementState>>, StoreError> {
        Ok(lock(&self.states).get(uid).cloned())
    }

    async fn commit(
        &self,
        uid: &Uid,
        state: &EnforcementState,
        expected: u64,
        events: &[Event],
    ) -> Result<u64, StoreError> {
        let mut states = lock(&self.states);
        let current = states.get(uid).map_or(0, |v| v.version);
        if current != expected {
            return Err(StoreError::Conflict);
        }
        let mut all = lock(&self.events);
        for e in events {
            if all.iter().any(|x| x.case_ref == e.case_ref || x.event_id == e.event_id) {
                return Err(StoreError::Invalid(format!("duplicate event id or case reference {}", e.case_ref)));
            }
        }
        all.extend(events.iter().cloned());
        states.insert(uid.clone(), Versioned { value: state.clone(), version: current + 1 });
        Ok(current + 1)
    }

    async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError> {
        let all = lock(&self.events);
        Ok(all.iter().rev().filter(|e| e.uid == uid.as_str()).take(limit).cloned().collect())
    }

    async fn event_by_case_ref(&self, case_ref: &str) -> Result<Option<Event>, StoreError> {
        Ok(lock(&self.events).iter().find(|e| e.case_ref.as_str() == case_ref).cloned())
    }

    async fn update_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut all = lock(&self.events);
        match all.iter_mut().find(|e| e.event_id == event.event_id) {
            Some(e) => {
                e.resolution = event.resolution.clone();
                e.evidence_redacted_at = event.evidence_redacted_at;
                Ok(())
            }
            None => Err(StoreError::NotFound(format!("event {}", event.event_id))),
        }
    }

    async fn flagged(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<(String, EnforcementState)>, StoreError> {
        let states = lock(&self.states);
        let mut out: Vec<(String, EnforcementState)> = states
            .iter()
            .filter(|(_, v)| match stage {
                Some(s) => v.value.stage == s,
                None => v.value.stage != Stage::None,
            })
            .map(|(uid, v)| (uid.to_string(), v.value.clone()))
            .collect();
        out.sort_by(|a, b| b.1.stage_since.cmp(&a.1.stage_since).then_with(|| a.0.cmp(&b.0)));
        out.truncate(limit);
        Ok(out)
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn upsert(&self, uid: &Uid, conversation: &Conversation) -> Result<(), StoreError> {
        let mut all = lock(&self.conversations);
        let list = all.entry(uid.clone()).or_default();
        match list.iter_mut().find(|c| c.conversation_id == conversation.conversation_id) {
            Some(c) => *c = conversation.clone(),
            None => list.push(conversation.clone()),
        }
        list.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.conversation_id.cmp(&b.conversation_id)));
        Ok(())
    }

    async fn since(&self, uid: &Uid, from: Timestamp, limit: usize) -> Result<Vec<Conversation>, StoreError> {
        Ok(lock(&self.conversations)
            .get(uid)
            .map(|l| l.iter().filter(|c| c.started_at >= from).take(limit).cloned().collect())
            .unwrap_or_default())
    }
}
