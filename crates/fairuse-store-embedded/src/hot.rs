//! STT budgets and locks (in SQLite) and rate limits (in memory).
//!
//! Budgets are written through: SQLite holds them, and [`BudgetCache`] holds each (user, day) the
//! process has read or written, filled only by the writer thread in commit order, so a decision's
//! `used` is a map lookup.
//!
//! Locks are persisted because the classifier lock *is* the classifier cooldown (12 h by default):
//! forgetting it on restart would classify users again at once, and every qualifying verdict moves
//! the ladder, so a restart could escalate a user sooner than the policy says.
//!
//! Rate-limit counters stay in memory: the embedded mode is one process, so there is nothing to
//! share, and a restart that resets a window lets a client through at most one extra window's
//! worth of requests, which is the nature of fixed windows anyway. Writing every request to disk
//! would cost more than the limit protects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::store::{BudgetStore, LockStore, RateLimitOutcome, RateLimitStore};
use fairuse_domain::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::EmbeddedStore;
use crate::error::{Effect, store_error};

fn changed(conn: &Connection, action: &str, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(|e| store_error(action, Effect::NotApplied, e))
}

/// A budget day as stored: forwarded ms, and whether `budget_exhausted` was noted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BudgetDay {
    used_ms: i64,
    exhausted_noted: bool,
}

/// Each (user, UTC day) budget row the process has seen, absent rows included (as zero). Kept by
/// day, then user, so a lookup borrows the uid instead of building a key.
#[derive(Default)]
pub(crate) struct BudgetCache {
    days: Mutex<HashMap<i64, HashMap<Uid, BudgetDay>>>,
}

impl BudgetCache {
    fn map(&self) -> MutexGuard<'_, HashMap<i64, HashMap<Uid, BudgetDay>>> {
        // Every critical section is one map operation: poisoning carries no information.
        self.days.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, uid: &Uid, day: i64) -> Option<BudgetDay> {
        self.map().get(&day)?.get(uid).copied()
    }

    /// Only on the writer thread, so puts happen in commit order.
    fn put(&self, uid: Uid, day: i64, value: BudgetDay) {
        self.map().entry(day).or_default().insert(uid, value);
    }

    pub(crate) fn clear(&self) {
        self.map().clear();
    }

    /// Drops days before yesterday (UTC): decisions read today's. Returns how many (user, day)
    /// entries went.
    pub(crate) fn evict_old(&self, now: Timestamp) -> u64 {
        let mut map = self.map();
        let yesterday = now.utc_day() - 1;
        let mut evicted = 0;
        map.retain(|day, users| {
            let keep = *day >= yesterday;
            if !keep {
                evicted += users.len() as u64;
            }
            keep
        });
        evicted
    }
}

fn read_budget(conn: &Connection, uid: &str, day: i64) -> Result<BudgetDay, StoreError> {
    conn.prepare_cached("SELECT used_ms, exhausted_noted FROM budgets WHERE uid = ?1 AND day = ?2")
        .and_then(|mut s| {
            s.query_row(params![uid, day], |r| Ok(BudgetDay { used_ms: r.get(0)?, exhausted_noted: r.get(1)? }))
                .optional()
        })
        .map(Option::unwrap_or_default)
        .map_err(|e| store_error("read the budget", Effect::NotApplied, e))
}

#[async_trait]
impl BudgetStore for EmbeddedStore {
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        const ACTION: &str = "add forwarded audio to the budget";
        let owned = uid.as_str().to_owned();
        let (budgets, uid) = (Arc::clone(&self.budgets), uid.clone());
        let stored = self
            .writer
            .write_then(
                ACTION,
                move |conn| {
                    conn.prepare_cached(
                        "INSERT INTO budgets (uid, day, used_ms, exhausted_noted) VALUES (?1, ?2, ?3, 0)
                         ON CONFLICT (uid, day) DO UPDATE SET used_ms = used_ms + excluded.used_ms
                         RETURNING used_ms, exhausted_noted",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![owned, day, ms], |r| {
                            Ok(BudgetDay { used_ms: r.get(0)?, exhausted_noted: r.get(1)? })
                        })
                    })
                    .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
                },
                move |stored| budgets.put(uid, day, *stored),
            )
            .await?;
        Ok(stored.used_ms)
    }

    async fn used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        if let Some(cached) = self.budgets.get(uid, day) {
            return Ok(cached.used_ms);
        }
        // Loaded through the writer, behind the commits already queued: see the module docs.
        let (budgets, uid) = (Arc::clone(&self.budgets), uid.clone());
        let stored = self
            .writer
            .write("read the budget", move |conn| {
                if let Some(cached) = budgets.get(&uid, day) {
                    return Ok(cached);
                }
                let stored = read_budget(conn, uid.as_str(), day)?;
                budgets.put(uid, day, stored);
                Ok(stored)
            })
            .await?;
        Ok(stored.used_ms)
    }

    async fn note_exhausted_once(&self, uid: &Uid, day: i64) -> Result<bool, StoreError> {
        const ACTION: &str = "note the exhausted budget";
        if self.budgets.get(uid, day).is_some_and(|b| b.exhausted_noted) {
            return Ok(false);
        }
        let owned = uid.as_str().to_owned();
        let (budgets, uid) = (Arc::clone(&self.budgets), uid.clone());
        // The upsert changes a row only the first time: inserted, or flipped from 0 to 1.
        let (first, _) = self
            .writer
            .write_then(
                ACTION,
                move |conn| {
                    let rows = changed(
                        conn,
                        ACTION,
                        "INSERT INTO budgets (uid, day, used_ms, exhausted_noted) VALUES (?1, ?2, 0, 1)
                         ON CONFLICT (uid, day) DO UPDATE SET exhausted_noted = 1 WHERE exhausted_noted = 0",
                        params![owned, day],
                    )?;
                    Ok((rows == 1, read_budget(conn, &owned, day)?))
                },
                move |(_, stored)| budgets.put(uid, day, *stored),
            )
            .await?;
        Ok(first)
    }
}

#[async_trait]
impl LockStore for EmbeddedStore {
    async fn try_acquire(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError> {
        const ACTION: &str = "acquire a lock";
        let (key, token) = (key.to_owned(), token.to_owned());
        // Insert, or take over a lock that has expired by `now`; a held lock changes no row.
        let rows = self
            .writer
            .write(ACTION, move |conn| {
                changed(
                    conn,
                    ACTION,
                    "INSERT INTO locks (key, token, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
                     WHERE locks.expires_at <= ?4",
                    params![key, token, now.millis().saturating_add(ttl_ms), now.millis()],
                )
            })
            .await?;
        Ok(rows == 1)
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        const ACTION: &str = "release a lock";
        let (key, token) = (key.to_owned(), token.to_owned());
        let rows = self
            .writer
            .write(ACTION, move |conn| {
                changed(conn, ACTION, "DELETE FROM locks WHERE key = ?1 AND token = ?2", params![key, token])
            })
            .await?;
        Ok(rows == 1)
    }

    async fn renew(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError> {
        const ACTION: &str = "renew a lock";
        let (key, token) = (key.to_owned(), token.to_owned());
        let rows = self
            .writer
            .write(ACTION, move |conn| {
                changed(
                    conn,
                    ACTION,
                    "UPDATE locks SET expires_at = ?1 WHERE key = ?2 AND token = ?3 AND expires_at > ?4",
                    params![now.millis().saturating_add(ttl_ms), key, token, now.millis()],
                )
            })
            .await?;
        Ok(rows == 1)
    }
}

struct RateWindow {
    /// `now / window_ms` of the window being counted.
    index: i64,
    ends_at_ms: i64,
    hits: u32,
}

/// Fixed-window counters, aligned to multiples of the window length since the epoch.
#[derive(Default)]
pub(crate) struct RateWindows {
    windows: Mutex<HashMap<String, RateWindow>>,
}

impl RateWindows {
    fn map(&self) -> MutexGuard<'_, HashMap<String, RateWindow>> {
        // Each critical section is one lookup and a few assignments: poisoning carries nothing.
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets windows that have ended; returns how many.
    pub(crate) fn prune(&self, now: Timestamp) -> u64 {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, w| w.ends_at_ms > now.millis());
        (before - map.len()) as u64
    }
}

#[async_trait]
impl RateLimitStore for EmbeddedStore {
    async fn hit(&self, key: &str, limit: u32, window_ms: i64, now: Timestamp) -> Result<RateLimitOutcome, StoreError> {
        if window_ms <= 0 {
            return Err(StoreError::Invalid(format!("rate-limit window must be positive, got {window_ms} ms")));
        }
        let index = now.millis().div_euclid(window_ms);
        let ends_at_ms = (index + 1).saturating_mul(window_ms);
        let mut map = self.rates.map();
        let window = map.entry(key.to_owned()).or_insert(RateWindow { index, ends_at_ms, hits: 0 });
        if window.index != index {
            *window = RateWindow { index, ends_at_ms, hits: 0 };
        }
        window.hits = window.hits.saturating_add(1);
        let allowed = window.hits <= limit;
        Ok(RateLimitOutcome {
            allowed,
            remaining: limit.saturating_sub(window.hits),
            retry_after_ms: if allowed { 0 } else { ends_at_ms - now.millis() },
        })
    }
}
