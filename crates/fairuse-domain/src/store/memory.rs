//! The in-memory reference store: every port of [`super`] over maps behind mutexes, lost at exit.
//! Used by tests and by the library mode; the embedded, Redis and PostgreSQL adapters must agree
//! with it (the contract suites run against all of them).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    BudgetStore, ConversationStore, EnforcementStore, Job, JobStore, LockStore, OutboxMessage, OutboxStore, PrintStore,
    RateLimitOutcome, RateLimitStore, UsageMeterStore, Versioned,
};
use crate::classifier::{Conversation, UsageShape};
use crate::engine::{EnforcementState, Event};
use crate::error::StoreError;
use crate::ids::{Lane, Uid};
use crate::policy::Policy;
use crate::prints::Print;
use crate::sessions::StreamSession;
use crate::stage::Stage;
use crate::time::Timestamp;
use crate::windows::{RecordOutcome, UsageReport, UserMeter, WindowTotals, recovery_at};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way later
    // readers would misread (every update is a single insert), so poisoning is safe to ignore.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything in process memory; lost at exit.
#[derive(Default)]
pub struct MemoryStore {
    meters: Mutex<HashMap<Uid, UserMeter>>,
    budgets: Mutex<HashMap<(Uid, i64), BudgetDayEntry>>,
    locks: Mutex<HashMap<String, HeldLock>>,
    rates: Mutex<HashMap<String, RateWindow>>,
    states: Mutex<HashMap<Uid, Versioned<EnforcementState>>>,
    events: Mutex<Vec<Event>>,
    conversations: Mutex<HashMap<Uid, Vec<Conversation>>>,
    stream_sessions: Mutex<HashMap<Uid, HashMap<String, StreamSession>>>,
    /// key -> prints in the order added.
    prints: Mutex<HashMap<u32, Vec<Print>>>,
    /// In the order enqueued.
    outbox: Mutex<Vec<OutboxEntry>>,
    /// In the order enqueued.
    jobs: Mutex<Vec<QueuedJob>>,
}

/// One user's STT budget for one UTC day.
#[derive(Default)]
struct BudgetDayEntry {
    forwarded_ms: i64,
    exhausted_noted: bool,
}

struct HeldLock {
    token: String,
    expires_at_ms: i64,
}

/// A fixed-window rate-limit counter: hits in window number `window` (`now / window_ms`).
struct RateWindow {
    window: i64,
    hits: u32,
}

struct OutboxEntry {
    message: OutboxMessage,
    /// Claimed by a worker until then (0: not leased).
    leased_until_ms: i64,
    /// Given up on: kept for inspection, never claimed again.
    dead: bool,
}

struct QueuedJob {
    job: Job,
    /// Due at, or leased until, this instant.
    due_at_ms: i64,
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
    ) -> Result<(Vec<RecordOutcome>, WindowTotals), StoreError> {
        let mut meters = lock(&self.meters);
        let meter = meters.entry(uid.clone()).or_default();
        let outcomes = reports.iter().map(|r| meter.record(r, policy.metering.retention.ms(), now)).collect();
        Ok((outcomes, meter.capped_totals(policy, now)))
    }

    async fn read_totals(&self, uid: &Uid, policy: &Policy, now: Timestamp) -> Result<WindowTotals, StoreError> {
        let meters = lock(&self.meters);
        Ok(match meters.get(uid) {
            Some(m) => m.capped_totals(policy, now),
            None => WindowTotals::zeros(policy),
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

    async fn users_since(&self, from_minute: i64) -> Result<Vec<Uid>, StoreError> {
        let meters = lock(&self.meters);
        let mut out: Vec<Uid> = meters
            .iter()
            .filter(|(_, m)| Lane::ALL.iter().any(|&l| m.lane(l).minutes().any(|(minute, _)| minute >= from_minute)))
            .map(|(uid, _)| uid.clone())
            .collect();
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl BudgetStore for MemoryStore {
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        let mut b = lock(&self.budgets);
        let slot = b.entry((uid.clone(), day)).or_default();
        slot.forwarded_ms += ms;
        Ok(slot.forwarded_ms)
    }

    async fn used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        Ok(lock(&self.budgets).get(&(uid.clone(), day)).map_or(0, |s| s.forwarded_ms))
    }

    async fn note_exhausted_once(&self, uid: &Uid, day: i64) -> Result<bool, StoreError> {
        let mut b = lock(&self.budgets);
        let slot = b.entry((uid.clone(), day)).or_default();
        Ok(!std::mem::replace(&mut slot.exhausted_noted, true))
    }
}

#[async_trait]
impl LockStore for MemoryStore {
    async fn try_acquire(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError> {
        let mut locks = lock(&self.locks);
        match locks.get(key) {
            Some(held) if held.expires_at_ms > now.millis() => Ok(false),
            _ => {
                locks
                    .insert(key.to_owned(), HeldLock { token: token.to_owned(), expires_at_ms: now.millis() + ttl_ms });
                Ok(true)
            }
        }
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let mut locks = lock(&self.locks);
        if locks.get(key).is_some_and(|held| held.token == token) {
            locks.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn renew(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError> {
        let mut locks = lock(&self.locks);
        match locks.get_mut(key) {
            Some(held) if held.token == token && held.expires_at_ms > now.millis() => {
                held.expires_at_ms = now.millis().saturating_add(ttl_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn hit(&self, key: &str, limit: u32, window_ms: i64, now: Timestamp) -> Result<RateLimitOutcome, StoreError> {
        if window_ms <= 0 {
            return Err(StoreError::Invalid(format!("rate-limit window must be positive, got {window_ms} ms")));
        }
        let mut rates = lock(&self.rates);
        let window = now.millis().div_euclid(window_ms);
        let slot = rates.entry(key.to_owned()).or_insert(RateWindow { window, hits: 0 });
        if slot.window != window {
            *slot = RateWindow { window, hits: 0 };
        }
        slot.hits = slot.hits.saturating_add(1);
        let allowed = slot.hits <= limit;
        Ok(RateLimitOutcome {
            allowed,
            remaining: limit.saturating_sub(slot.hits),
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
        outbox: &[OutboxMessage],
    ) -> Result<u64, StoreError> {
        let mut states = lock(&self.states);
        let current = states.get(uid).map_or(0, |v| v.version);
        if current != expected {
            return Err(StoreError::Conflict);
        }
        let mut pending = std::collections::HashSet::new();
        for m in outbox {
            if !pending.insert(m.id.as_str()) || lock(&self.outbox).iter().any(|x| x.message.id == m.id) {
                return Err(StoreError::Invalid(format!("duplicate outbox message id {}", m.id)));
            }
        }
        let mut all = lock(&self.events);
        for e in events {
            if all.iter().any(|x| x.case_ref == e.case_ref || x.event_id == e.event_id) {
                return Err(StoreError::Invalid(format!("duplicate event id or case reference {}", e.case_ref)));
            }
        }
        all.extend(events.iter().cloned());
        lock(&self.outbox).extend(outbox.iter().map(|m| OutboxEntry {
            message: m.clone(),
            leased_until_ms: 0,
            dead: false,
        }));
        states.insert(uid.clone(), Versioned { value: state.clone(), version: current + 1 });
        Ok(current + 1)
    }

    async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError> {
        let all = lock(&self.events);
        let mut mine: Vec<&Event> = all.iter().rev().filter(|e| e.uid == uid.as_str()).collect();
        // Newest first by creation time; among equal times, the later append first (stable sort).
        mine.sort_by_key(|e| std::cmp::Reverse(e.created_at));
        Ok(mine.into_iter().take(limit).cloned().collect())
    }

    async fn event_by_case_ref(&self, case_ref: &str) -> Result<Option<Event>, StoreError> {
        Ok(lock(&self.events).iter().find(|e| e.case_ref.as_str() == case_ref).cloned())
    }

    async fn event_by_id(&self, uid: &Uid, event_id: &str) -> Result<Option<Event>, StoreError> {
        Ok(lock(&self.events).iter().find(|e| e.event_id == event_id && e.uid == uid.as_str()).cloned())
    }

    async fn update_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut all = lock(&self.events);
        match all.iter_mut().find(|e| e.event_id == event.event_id) {
            Some(e) => {
                e.resolution = event.resolution.clone();
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

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        let states = lock(&self.states);
        let mut due: Vec<String> = states
            .iter()
            .filter(|(_, v)| v.value.stage != Stage::None && v.value.stage_until.is_some_and(|u| u <= now))
            .map(|(uid, _)| uid.to_string())
            .collect();
        due.sort();
        due.truncate(limit);
        Ok(due)
    }

    async fn redact_evidence_before(&self, cutoff: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        let mut n = 0;
        for e in lock(&self.events).iter_mut() {
            if e.created_at < cutoff && e.evidence_redacted_at.is_none() {
                if let Some(v) = e.verdict.as_mut() {
                    crate::classifier::redact(v);
                }
                e.evidence_redacted_at = Some(now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn users_with_events_since(&self, from: Timestamp) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> =
            lock(&self.events).iter().filter(|e| e.created_at >= from).map(|e| e.uid.clone()).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn events_since(&self, uid: &Uid, from: Timestamp) -> Result<Vec<Event>, StoreError> {
        let mut mine: Vec<Event> =
            lock(&self.events).iter().filter(|e| e.uid == uid.as_str() && e.created_at >= from).cloned().collect();
        // Stable: among equal instants, append order stays.
        mine.sort_by_key(|e| e.created_at);
        Ok(mine)
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn claim_due(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut all = lock(&self.outbox);
        let mut out = Vec::new();
        for entry in all.iter_mut() {
            if out.len() >= limit {
                break;
            }
            if !entry.dead && entry.message.next_attempt_at <= now && entry.leased_until_ms <= now.millis() {
                entry.leased_until_ms = now.millis() + lease_ms;
                out.push(entry.message.clone());
            }
        }
        Ok(out)
    }

    async fn delivered(&self, id: &str, _now: Timestamp) -> Result<(), StoreError> {
        lock(&self.outbox).retain(|e| e.message.id != id);
        Ok(())
    }

    async fn failed(&self, id: &str, next_attempt_at: Timestamp, error: &str, give_up: bool) -> Result<(), StoreError> {
        let mut all = lock(&self.outbox);
        let entry = all
            .iter_mut()
            .find(|e| e.message.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("outbox message {id}")))?;
        entry.message.attempts += 1;
        entry.message.next_attempt_at = next_attempt_at;
        entry.message.last_error = Some(error.to_owned());
        entry.leased_until_ms = 0;
        entry.dead = give_up;
        Ok(())
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.outbox).len() as u64)
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.outbox).iter().filter(|e| !e.dead).count() as u64)
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn enqueue(&self, job: &Job, now: Timestamp) -> Result<(), StoreError> {
        let mut jobs = lock(&self.jobs);
        // Enqueueing the same job twice is one job (a retried request must not classify twice).
        if !jobs.iter().any(|q| q.job.id == job.id) {
            jobs.push(QueuedJob { job: job.clone(), due_at_ms: now.millis() });
        }
        Ok(())
    }

    async fn claim(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<Job>, StoreError> {
        let mut jobs = lock(&self.jobs);
        let mut out = Vec::new();
        for queued in jobs.iter_mut() {
            if out.len() >= limit {
                break;
            }
            if queued.due_at_ms <= now.millis() {
                queued.due_at_ms = now.millis() + lease_ms;
                out.push(queued.job.clone());
            }
        }
        Ok(out)
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        lock(&self.jobs).retain(|q| q.job.id != id);
        Ok(())
    }

    async fn retry(&self, id: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        let mut jobs = lock(&self.jobs);
        let queued =
            jobs.iter_mut().find(|q| q.job.id == id).ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
        queued.job.attempts += 1;
        queued.due_at_ms = retry_at.millis();
        Ok(())
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
            .map(|l| {
                let recent: Vec<Conversation> = l.iter().filter(|c| c.started_at >= from).cloned().collect();
                recent[recent.len().saturating_sub(limit)..].to_vec()
            })
            .unwrap_or_default())
    }

    async fn upsert_stream_session(&self, uid: &Uid, session: &StreamSession) -> Result<(), StoreError> {
        let mut all = lock(&self.stream_sessions);
        let mine = all.entry(uid.clone()).or_default();
        match mine.get_mut(&session.session_id) {
            Some(stored) if session.is_behind(stored) => {}
            Some(stored) => *stored = session.clone(),
            None => {
                mine.insert(session.session_id.clone(), session.clone());
            }
        }
        Ok(())
    }

    async fn stream_sessions_since(
        &self,
        uid: &Uid,
        from: Timestamp,
        limit: usize,
    ) -> Result<Vec<StreamSession>, StoreError> {
        let all = lock(&self.stream_sessions);
        let sessions = all.get(uid).map(|m| m.values().cloned().collect::<Vec<_>>()).unwrap_or_default();
        Ok(crate::pipeline::select_stream_sessions(sessions, from, limit))
    }
}

#[async_trait]
impl PrintStore for MemoryStore {
    async fn add_prints(&self, prints: &[Print]) -> Result<(), StoreError> {
        let mut all = lock(&self.prints);
        for p in prints {
            all.entry(crate::prints::print_key(p.code)).or_default().push(p.clone());
        }
        Ok(())
    }

    async fn lookup_prints(&self, keys: &[u32], since: Timestamp, per_key: usize) -> Result<Vec<Print>, StoreError> {
        let all = lock(&self.prints);
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for key in keys.iter().filter(|k| seen.insert(**k)) {
            let Some(list) = all.get(key) else { continue };
            let mut recent: Vec<&Print> = list.iter().filter(|p| p.heard_at >= since).collect();
            recent.sort_by_key(|p| std::cmp::Reverse(p.heard_at));
            out.extend(recent.into_iter().take(per_key).cloned());
        }
        Ok(out)
    }

    async fn prune_prints(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut all = lock(&self.prints);
        let mut removed = 0u64;
        all.retain(|_, list| {
            let n = list.len();
            list.retain(|p| p.heard_at >= before);
            removed += (n - list.len()) as u64;
            !list.is_empty()
        });
        Ok(removed)
    }
}
