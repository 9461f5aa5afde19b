//! Enforcement state with its events and outbox messages, conversation metadata and the gateway's
//! stream sessions.
//!
//! Every decision loads the user's enforcement state, so loads are answered from [`StateCache`]:
//! a copy of `user_state` rows (absent users included) that only the writer thread fills, in
//! commit order. A miss is loaded through the writer thread too, behind the commits already
//! queued, so a load can never put an older state over a newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fairuse_domain::classifier::{Conversation, redact};
use fairuse_domain::engine::{EnforcementState, Event};
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{ConversationStore, EnforcementStore, OutboxMessage, Versioned};
use fairuse_domain::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::EmbeddedStore;
use crate::error::{Effect, from_json, sql_limit, store_error, to_json};

/// Events redacted per write request, so the writer is never held for long.
const REDACT_BATCH: i64 = 500;
/// Cached states untouched for this long are dropped by `prune` (and reloaded when needed).
const STATE_IDLE: Duration = Duration::from_secs(3_600);

struct CachedState {
    value: Option<Versioned<EnforcementState>>,
    /// For eviction only; no decision depends on it, so it is the process's monotonic clock.
    last_used: Instant,
}

/// Each user's stored enforcement state (or its absence), as committed.
#[derive(Default)]
pub(crate) struct StateCache {
    states: Mutex<HashMap<Uid, CachedState>>,
}

impl StateCache {
    fn map(&self) -> MutexGuard<'_, HashMap<Uid, CachedState>> {
        // Every critical section is one map operation: poisoning carries no information.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, uid: &Uid) -> Option<Option<Versioned<EnforcementState>>> {
        let mut map = self.map();
        let cached = map.get_mut(uid)?;
        cached.last_used = Instant::now();
        Some(cached.value.clone())
    }

    /// Only on the writer thread, so puts happen in commit order.
    fn put(&self, uid: Uid, value: Option<Versioned<EnforcementState>>) {
        self.map().insert(uid, CachedState { value, last_used: Instant::now() });
    }

    pub(crate) fn clear(&self) {
        self.map().clear();
    }

    /// Drops states unused for [`STATE_IDLE`]; returns how many.
    pub(crate) fn evict_idle(&self) -> u64 {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, cached| cached.last_used.elapsed() < STATE_IDLE);
        (before - map.len()) as u64
    }
}

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Invalid(format!("state version {version} is out of range")))
}

fn events_from_rows(rows: Vec<String>) -> Result<Vec<Event>, StoreError> {
    rows.iter().map(|body| from_json("event", body)).collect()
}

/// All rows of a one-column query.
fn strings(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<String>, rusqlite::Error> {
    conn.prepare_cached(sql)?.query_map(params, |r| r.get(0))?.collect()
}

/// The stored state of one user, as the trait answers it.
pub(crate) fn load_state(conn: &Connection, uid: &str) -> Result<Option<Versioned<EnforcementState>>, StoreError> {
    let row: Option<(String, i64)> = conn
        .prepare_cached("SELECT state, version FROM user_state WHERE uid = ?1")
        .and_then(|mut s| s.query_row([uid], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(|e| store_error("load the enforcement state", Effect::NotApplied, e))?;
    row.map(|(state, version)| {
        let version = u64::try_from(version)
            .map_err(|_| StoreError::Unavailable(format!("stored state of {uid} has version {version}")))?;
        Ok(Versioned { value: from_json("enforcement state", &state)?, version })
    })
    .transpose()
}

/// One enforcement commit, inside the writer's transaction (a failure rolls back to its savepoint).
fn write_state(
    conn: &Connection,
    uid: &str,
    state: &EnforcementState,
    expected: u64,
    new_version: u64,
    events: &[Event],
    outbox: &[OutboxMessage],
) -> Result<(), StoreError> {
    const ACTION: &str = "commit the enforcement state";
    let failed = |e| store_error(ACTION, Effect::NotApplied, e);
    let state_json = to_json("enforcement state", state)?;
    let columns = (
        uid,
        version_to_sql(new_version)?,
        state.stage.as_str(),
        state.stage_until.map(Timestamp::millis),
        state.stage_since.map(Timestamp::millis),
        state.updated_at.map(Timestamp::millis),
        &state_json,
    );
    let expected_sql = version_to_sql(expected)?;
    let written = if expected == 0 {
        conn.prepare_cached(
            "INSERT INTO user_state (uid, version, stage, stage_until, stage_since, updated_at, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (uid) DO NOTHING",
        )
        .and_then(|mut s| s.execute(columns))
    } else {
        let (a, b, c, d, e, f, g) = columns;
        conn.prepare_cached(
            "UPDATE user_state SET version = ?2, stage = ?3, stage_until = ?4, stage_since = ?5,
                 updated_at = ?6, state = ?7
             WHERE uid = ?1 AND version = ?8",
        )
        .and_then(|mut s| s.execute(params![a, b, c, d, e, f, g, expected_sql]))
    }
    .map_err(failed)?;
    if written == 0 {
        // The writer rolls back to the savepoint; nothing was written anyway.
        return Err(StoreError::Conflict);
    }
    for event in events {
        let body = to_json("event", event)?;
        conn.prepare_cached(
            "INSERT INTO events (event_id, case_ref, uid, created_at, kind, evidence_redacted_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                event.event_id,
                event.case_ref.as_str(),
                event.uid,
                event.created_at.millis(),
                event.kind.as_str(),
                event.evidence_redacted_at.map(Timestamp::millis),
                body,
            ])
        })
        .map_err(|e| match store_error(ACTION, Effect::NotApplied, e) {
            StoreError::Invalid(_) => StoreError::Invalid(format!(
                "duplicate event id {} or case reference {}",
                event.event_id, event.case_ref
            )),
            other => other,
        })?;
    }
    for m in outbox {
        conn.prepare_cached(
            "INSERT INTO outbox (id, body, attempts, next_attempt_at, created_at, last_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                m.id,
                m.body,
                i64::from(m.attempts),
                m.next_attempt_at.millis(),
                m.created_at.millis(),
                m.last_error
            ])
        })
        .map_err(failed)?;
    }
    Ok(())
}

/// Redacts up to [`REDACT_BATCH`] events; returns how many.
fn redact_batch(conn: &Connection, cutoff: Timestamp, now: Timestamp) -> Result<usize, StoreError> {
    const ACTION: &str = "redact old evidence";
    let failed = |e| store_error(ACTION, Effect::NotApplied, e);
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT event_id, body FROM events WHERE evidence_redacted_at IS NULL AND created_at < ?1
             ORDER BY created_at LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(params![cutoff.millis(), REDACT_BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .map_err(failed)?;
    let batch = rows.len();
    for (event_id, body) in rows {
        let mut event: Event = from_json("event", &body)?;
        if let Some(verdict) = event.verdict.as_mut() {
            redact(verdict);
        }
        event.evidence_redacted_at = Some(now);
        let body = to_json("event", &event)?;
        conn.prepare_cached("UPDATE events SET body = ?2, evidence_redacted_at = ?3 WHERE event_id = ?1")
            .and_then(|mut s| s.execute(params![event_id, body, now.millis()]))
            .map_err(failed)?;
    }
    Ok(batch)
}

#[async_trait]
impl EnforcementStore for EmbeddedStore {
    async fn load(&self, uid: &Uid) -> Result<Option<Versioned<EnforcementState>>, StoreError> {
        if let Some(cached) = self.states.get(uid) {
            return Ok(cached);
        }
        let (states, owned) = (Arc::clone(&self.states), uid.clone());
        self.writer
            .write("load the enforcement state", move |conn| {
                // Another call may have loaded it while this one was queued.
                if let Some(cached) = states.get(&owned) {
                    return Ok(cached);
                }
                let loaded = load_state(conn, owned.as_str())?;
                states.put(owned, loaded.clone());
                Ok(loaded)
            })
            .await
    }

    async fn commit(
        &self,
        uid: &Uid,
        state: &EnforcementState,
        expected: u64,
        events: &[Event],
        outbox: &[OutboxMessage],
    ) -> Result<u64, StoreError> {
        let new_version = expected
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid(format!("state version {expected} is out of range")))?;
        let (owned, state, events, outbox) = (uid.as_str().to_owned(), state.clone(), events.to_vec(), outbox.to_vec());
        let (states, cached) = (Arc::clone(&self.states), Versioned { value: state.clone(), version: new_version });
        let uid = uid.clone();
        self.writer
            .write_then(
                "commit the enforcement state",
                move |conn| write_state(conn, &owned, &state, expected, new_version, &events, &outbox),
                move |()| states.put(uid, Some(cached)),
            )
            .await?;
        Ok(new_version)
    }

    async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError> {
        // Newest by creation time; among events of the same instant, the later appended first.
        let owned = uid.as_str().to_owned();
        let rows = self
            .readers
            .read("read events", move |conn| {
                strings(
                    conn,
                    "SELECT body FROM events WHERE uid = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
                    params![owned, sql_limit(limit)],
                )
            })
            .await?;
        events_from_rows(rows)
    }

    async fn event_by_case_ref(&self, case_ref: &str) -> Result<Option<Event>, StoreError> {
        let case_ref = case_ref.to_owned();
        let rows = self
            .readers
            .read("read an event by case reference", move |conn| {
                strings(conn, "SELECT body FROM events WHERE case_ref = ?1", [case_ref])
            })
            .await?;
        rows.first().map(|body| from_json("event", body)).transpose()
    }

    async fn event_by_id(&self, uid: &Uid, event_id: &str) -> Result<Option<Event>, StoreError> {
        let (owned, event_id) = (uid.as_str().to_owned(), event_id.to_owned());
        let rows = self
            .readers
            .read("read an event", move |conn| {
                strings(conn, "SELECT body FROM events WHERE event_id = ?1 AND uid = ?2", [event_id, owned])
            })
            .await?;
        rows.first().map(|body| from_json("event", body)).transpose()
    }

    async fn update_event(&self, event: &Event) -> Result<(), StoreError> {
        const ACTION: &str = "update an event's resolution";
        let (event_id, resolution) = (event.event_id.clone(), event.resolution.clone());
        self.writer
            .write(ACTION, move |conn| {
                let failed = |e| store_error(ACTION, Effect::NotApplied, e);
                let body = strings(conn, "SELECT body FROM events WHERE event_id = ?1", [&event_id]).map_err(failed)?;
                let Some(body) = body.first() else {
                    return Err(StoreError::NotFound(format!("event {event_id}")));
                };
                // Events are append-only: the stored event stays, only its resolution is replaced.
                let mut stored: Event = from_json("event", body)?;
                stored.resolution = resolution;
                let body = to_json("event", &stored)?;
                conn.prepare_cached("UPDATE events SET body = ?2 WHERE event_id = ?1")
                    .and_then(|mut s| s.execute(params![event_id, body]))
                    .map_err(failed)?;
                Ok(())
            })
            .await
    }

    async fn flagged(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<(String, EnforcementState)>, StoreError> {
        // SQLite sorts NULL first ascending, so users without a stage_since come last here.
        let sql = if stage.is_some() {
            "SELECT uid, state FROM user_state WHERE stage = ?1 ORDER BY stage_since DESC, uid ASC LIMIT ?2"
        } else {
            "SELECT uid, state FROM user_state WHERE stage != ?1 ORDER BY stage_since DESC, uid ASC LIMIT ?2"
        };
        let stage = stage.unwrap_or(Stage::None).as_str();
        let rows: Vec<(String, String)> = self
            .readers
            .read("list flagged users", move |conn| {
                conn.prepare_cached(sql)?
                    .query_map(params![stage, sql_limit(limit)], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .await?;
        rows.into_iter().map(|(uid, state)| Ok((uid, from_json("enforcement state", &state)?))).collect()
    }

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        // Oldest expiry first, so a worker with a small limit serves the longest-waiting users.
        self.readers
            .read("list due timers", move |conn| {
                strings(
                    conn,
                    "SELECT uid FROM user_state WHERE stage != 'none' AND stage_until <= ?1
                     ORDER BY stage_until, uid LIMIT ?2",
                    params![now.millis(), sql_limit(limit)],
                )
            })
            .await
    }

    async fn redact_evidence_before(&self, cutoff: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        let mut changed = 0u64;
        loop {
            let batch = self.writer.write("redact old evidence", move |conn| redact_batch(conn, cutoff, now)).await?;
            changed += batch as u64;
            if (batch as i64) < REDACT_BATCH {
                return Ok(changed);
            }
        }
    }

    async fn users_with_events_since(&self, from: Timestamp) -> Result<Vec<String>, StoreError> {
        self.readers
            .read("list users with events", move |conn| {
                strings(conn, "SELECT DISTINCT uid FROM events WHERE created_at >= ?1 ORDER BY uid", [from.millis()])
            })
            .await
    }

    async fn events_since(&self, uid: &Uid, from: Timestamp) -> Result<Vec<Event>, StoreError> {
        let owned = uid.as_str().to_owned();
        let rows = self
            .readers
            .read("read events since", move |conn| {
                strings(
                    conn,
                    "SELECT body FROM events WHERE uid = ?1 AND created_at >= ?2 ORDER BY created_at, rowid",
                    params![owned, from.millis()],
                )
            })
            .await?;
        events_from_rows(rows)
    }
}

#[async_trait]
impl ConversationStore for EmbeddedStore {
    async fn upsert(&self, uid: &Uid, conversation: &Conversation) -> Result<(), StoreError> {
        const ACTION: &str = "store a conversation";
        let body = to_json("conversation", conversation)?;
        let row =
            (uid.as_str().to_owned(), conversation.conversation_id.clone(), conversation.started_at.millis(), body);
        self.writer
            .write(ACTION, move |conn| {
                conn.prepare_cached(
                    "INSERT INTO conversations (uid, conversation_id, started_at, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (uid, conversation_id) DO UPDATE SET
                         started_at = excluded.started_at, body = excluded.body",
                )
                .and_then(|mut s| s.execute(row))
                .map(|_| ())
                .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
            })
            .await
    }

    async fn since(&self, uid: &Uid, from: Timestamp, limit: usize) -> Result<Vec<Conversation>, StoreError> {
        let owned = uid.as_str().to_owned();
        let rows = self
            .readers
            .read("read conversations", move |conn| {
                strings(
                    conn,
                    "SELECT body FROM (SELECT body, started_at, conversation_id FROM conversations
                         WHERE uid = ?1 AND started_at >= ?2
                         ORDER BY started_at DESC, conversation_id DESC LIMIT ?3)
                     ORDER BY started_at, conversation_id",
                    params![owned, from.millis(), sql_limit(limit)],
                )
            })
            .await?;
        rows.iter().map(|body| from_json("conversation", body)).collect()
    }

    async fn upsert_stream_session(&self, uid: &Uid, session: &StreamSession) -> Result<(), StoreError> {
        const ACTION: &str = "store a stream session";
        let body = to_json("stream session", session)?;
        let (owned, s) = (uid.as_str().to_owned(), session.clone());
        // The WHERE of the upsert is `StreamSession::is_behind` negated: an update that would
        // reopen the session or lower a total leaves the stored row as it is.
        self.writer
            .write(ACTION, move |conn| {
                conn.prepare_cached(
                    "INSERT INTO stream_sessions
                         (uid, session_id, started_at, updated_at, closed, duration_ms, speech_ms, stt_ms, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (uid, session_id) DO UPDATE SET
                         started_at = excluded.started_at, updated_at = excluded.updated_at, closed = excluded.closed,
                         duration_ms = excluded.duration_ms, speech_ms = excluded.speech_ms, stt_ms = excluded.stt_ms,
                         body = excluded.body
                     WHERE NOT (stream_sessions.closed = 1 AND excluded.closed = 0)
                       AND excluded.duration_ms >= stream_sessions.duration_ms
                       AND excluded.speech_ms >= stream_sessions.speech_ms
                       AND excluded.stt_ms >= stream_sessions.stt_ms",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        owned,
                        s.session_id,
                        s.started_at.millis(),
                        s.updated_at.millis(),
                        s.closed,
                        s.duration_ms,
                        s.speech_ms,
                        s.stt_ms,
                        body
                    ])
                })
                .map(|_| ())
                .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
            })
            .await
    }

    async fn stream_sessions_since(
        &self,
        uid: &Uid,
        from: Timestamp,
        limit: usize,
    ) -> Result<Vec<StreamSession>, StoreError> {
        let owned = uid.as_str().to_owned();
        let rows = self
            .readers
            .read("read stream sessions", move |conn| {
                strings(
                    conn,
                    "SELECT body FROM (SELECT body, started_at, session_id FROM stream_sessions
                                       WHERE uid = ?1 AND updated_at >= ?2
                                       ORDER BY started_at DESC, session_id DESC LIMIT ?3)
                     ORDER BY started_at, session_id",
                    params![owned, from.millis(), sql_limit(limit)],
                )
            })
            .await?;
        rows.iter().map(|body| from_json("stream session", body)).collect()
    }
}
