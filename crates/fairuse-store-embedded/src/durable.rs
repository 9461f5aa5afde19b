//! Enforcement state with its events and outbox messages, conversation metadata and the gateway's
//! stream sessions.

use async_trait::async_trait;
use fairuse_domain::classifier::{Conversation, redact};
use fairuse_domain::engine::{EnforcementState, Event};
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{ConversationStore, EnforcementStore, OutboxMessage, Versioned};
use fairuse_domain::time::Timestamp;

use crate::EmbeddedStore;
use crate::db::{begin, commit};
use crate::error::{Effect, from_json, sql_limit, store_error, to_json};

/// Events redacted per transaction, so the writer is never held for long.
const REDACT_BATCH: i64 = 500;

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Invalid(format!("state version {version} is out of range")))
}

fn events_from_rows(rows: Vec<String>) -> Result<Vec<Event>, StoreError> {
    rows.iter().map(|body| from_json("event", body)).collect()
}

#[async_trait]
impl EnforcementStore for EmbeddedStore {
    async fn load(&self, uid: &Uid) -> Result<Option<Versioned<EnforcementState>>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as("SELECT state, version FROM user_state WHERE uid = ?1")
            .bind(uid.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| store_error("load the enforcement state", Effect::NotApplied, e))?;
        row.map(|(state, version)| {
            let version = u64::try_from(version)
                .map_err(|_| StoreError::Unavailable(format!("stored state of {uid} has version {version}")))?;
            Ok(Versioned { value: from_json("enforcement state", &state)?, version })
        })
        .transpose()
    }

    async fn commit(
        &self,
        uid: &Uid,
        state: &EnforcementState,
        expected: u64,
        events: &[Event],
        outbox: &[OutboxMessage],
    ) -> Result<u64, StoreError> {
        const ACTION: &str = "commit the enforcement state";
        let failed = |e| store_error(ACTION, Effect::NotApplied, e);
        let new_version = expected
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid(format!("state version {expected} is out of range")))?;
        let state_json = to_json("enforcement state", state)?;
        let event_rows: Vec<(&Event, String)> =
            events.iter().map(|e| Ok((e, to_json("event", e)?))).collect::<Result<_, StoreError>>()?;

        let mut tx = begin(&self.writer, ACTION).await?;
        let statement = if expected == 0 {
            sqlx::query(
                "INSERT INTO user_state (uid, version, stage, stage_until, stage_since, updated_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (uid) DO NOTHING",
            )
        } else {
            sqlx::query(
                "UPDATE user_state SET version = ?2, stage = ?3, stage_until = ?4, stage_since = ?5,
                     updated_at = ?6, state = ?7
                 WHERE uid = ?1 AND version = ?8",
            )
        };
        let statement = statement
            .bind(uid.as_str())
            .bind(version_to_sql(new_version)?)
            .bind(state.stage.as_str())
            .bind(state.stage_until.map(Timestamp::millis))
            .bind(state.stage_since.map(Timestamp::millis))
            .bind(state.updated_at.map(Timestamp::millis))
            .bind(&state_json);
        let statement = if expected == 0 { statement } else { statement.bind(version_to_sql(expected)?) };
        let written = statement.execute(&mut *tx).await.map_err(failed)?.rows_affected();
        if written == 0 {
            // Dropping the transaction rolls it back; nothing was written anyway.
            return Err(StoreError::Conflict);
        }
        for (event, body) in &event_rows {
            sqlx::query(
                "INSERT INTO events (event_id, case_ref, uid, created_at, kind, evidence_redacted_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(&event.event_id)
            .bind(event.case_ref.as_str())
            .bind(&event.uid)
            .bind(event.created_at.millis())
            .bind(event.kind.as_str())
            .bind(event.evidence_redacted_at.map(Timestamp::millis))
            .bind(body)
            .execute(&mut *tx)
            .await
            .map_err(|e| match store_error(ACTION, Effect::NotApplied, e) {
                StoreError::Invalid(_) => StoreError::Invalid(format!(
                    "duplicate event id {} or case reference {}",
                    event.event_id, event.case_ref
                )),
                other => other,
            })?;
        }
        for m in outbox {
            sqlx::query(
                "INSERT INTO outbox (id, body, attempts, next_attempt_at, created_at, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&m.id)
            .bind(&m.body)
            .bind(i64::from(m.attempts))
            .bind(m.next_attempt_at.millis())
            .bind(m.created_at.millis())
            .bind(&m.last_error)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        }
        commit(tx, ACTION).await?;
        Ok(new_version)
    }

    async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError> {
        // Newest by creation time; among events of the same instant, the later appended first.
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT body FROM events WHERE uid = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2")
                .bind(uid.as_str())
                .bind(sql_limit(limit))
                .fetch_all(&self.reader)
                .await
                .map_err(|e| store_error("read events", Effect::NotApplied, e))?;
        events_from_rows(rows)
    }

    async fn event_by_case_ref(&self, case_ref: &str) -> Result<Option<Event>, StoreError> {
        let row: Option<String> = sqlx::query_scalar("SELECT body FROM events WHERE case_ref = ?1")
            .bind(case_ref)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| store_error("read an event by case reference", Effect::NotApplied, e))?;
        row.map(|body| from_json("event", &body)).transpose()
    }

    async fn event_by_id(&self, uid: &Uid, event_id: &str) -> Result<Option<Event>, StoreError> {
        let row: Option<String> = sqlx::query_scalar("SELECT body FROM events WHERE event_id = ?1 AND uid = ?2")
            .bind(event_id)
            .bind(uid.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| store_error("read an event", Effect::NotApplied, e))?;
        row.map(|body| from_json("event", &body)).transpose()
    }

    async fn update_event(&self, event: &Event) -> Result<(), StoreError> {
        const ACTION: &str = "update an event's resolution";
        let failed = |e| store_error(ACTION, Effect::NotApplied, e);
        let mut tx = begin(&self.writer, ACTION).await?;
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM events WHERE event_id = ?1")
            .bind(&event.event_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        let Some(body) = body else {
            return Err(StoreError::NotFound(format!("event {}", event.event_id)));
        };
        // Events are append-only: the stored event stays, only its resolution is replaced.
        let mut stored: Event = from_json("event", &body)?;
        stored.resolution = event.resolution.clone();
        sqlx::query("UPDATE events SET body = ?2 WHERE event_id = ?1")
            .bind(&event.event_id)
            .bind(to_json("event", &stored)?)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        commit(tx, ACTION).await
    }

    async fn flagged(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<(String, EnforcementState)>, StoreError> {
        // SQLite sorts NULL first ascending, so users without a stage_since come last here.
        let query = match stage {
            Some(stage) => sqlx::query_as(
                "SELECT uid, state FROM user_state WHERE stage = ?1
                 ORDER BY stage_since DESC, uid ASC LIMIT ?2",
            )
            .bind(stage.as_str()),
            None => sqlx::query_as(
                "SELECT uid, state FROM user_state WHERE stage != ?1
                 ORDER BY stage_since DESC, uid ASC LIMIT ?2",
            )
            .bind(Stage::None.as_str()),
        };
        let rows: Vec<(String, String)> = query
            .bind(sql_limit(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(|e| store_error("list flagged users", Effect::NotApplied, e))?;
        rows.into_iter().map(|(uid, state)| Ok((uid, from_json("enforcement state", &state)?))).collect()
    }

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        // Oldest expiry first, so a worker with a small limit serves the longest-waiting users.
        sqlx::query_scalar(
            "SELECT uid FROM user_state WHERE stage != 'none' AND stage_until <= ?1
             ORDER BY stage_until, uid LIMIT ?2",
        )
        .bind(now.millis())
        .bind(sql_limit(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| store_error("list due timers", Effect::NotApplied, e))
    }

    async fn redact_evidence_before(&self, cutoff: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        const ACTION: &str = "redact old evidence";
        let failed = |e| store_error(ACTION, Effect::NotApplied, e);
        let mut changed = 0u64;
        loop {
            let mut tx = begin(&self.writer, ACTION).await?;
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT event_id, body FROM events WHERE evidence_redacted_at IS NULL AND created_at < ?1
                 ORDER BY created_at LIMIT ?2",
            )
            .bind(cutoff.millis())
            .bind(REDACT_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
            let batch = rows.len();
            for (event_id, body) in rows {
                let mut event: Event = from_json("event", &body)?;
                if let Some(verdict) = event.verdict.as_mut() {
                    redact(verdict);
                }
                event.evidence_redacted_at = Some(now);
                sqlx::query("UPDATE events SET body = ?2, evidence_redacted_at = ?3 WHERE event_id = ?1")
                    .bind(&event_id)
                    .bind(to_json("event", &event)?)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            commit(tx, ACTION).await?;
            changed += batch as u64;
            if (batch as i64) < REDACT_BATCH {
                return Ok(changed);
            }
        }
    }

    async fn users_with_events_since(&self, from: Timestamp) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT DISTINCT uid FROM events WHERE created_at >= ?1 ORDER BY uid")
            .bind(from.millis())
            .fetch_all(&self.reader)
            .await
            .map_err(|e| store_error("list users with events", Effect::NotApplied, e))
    }

    async fn events_since(&self, uid: &Uid, from: Timestamp) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM events WHERE uid = ?1 AND created_at >= ?2 ORDER BY created_at, rowid",
        )
        .bind(uid.as_str())
        .bind(from.millis())
        .fetch_all(&self.reader)
        .await
        .map_err(|e| store_error("read events since", Effect::NotApplied, e))?;
        events_from_rows(rows)
    }
}

#[async_trait]
impl ConversationStore for EmbeddedStore {
    async fn upsert(&self, uid: &Uid, conversation: &Conversation) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversations (uid, conversation_id, started_at, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (uid, conversation_id) DO UPDATE SET started_at = excluded.started_at, body = excluded.body",
        )
        .bind(uid.as_str())
        .bind(&conversation.conversation_id)
        .bind(conversation.started_at.millis())
        .bind(to_json("conversation", conversation)?)
        .execute(&self.writer)
        .await
        .map(|_| ())
        .map_err(|e| store_error("store a conversation", Effect::MaybeApplied, e))
    }

    async fn since(&self, uid: &Uid, from: Timestamp, limit: usize) -> Result<Vec<Conversation>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM (SELECT body, started_at, conversation_id FROM conversations
                 WHERE uid = ?1 AND started_at >= ?2
                 ORDER BY started_at DESC, conversation_id DESC LIMIT ?3)
             ORDER BY started_at, conversation_id",
        )
        .bind(uid.as_str())
        .bind(from.millis())
        .bind(sql_limit(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| store_error("read conversations", Effect::NotApplied, e))?;
        rows.iter().map(|body| from_json("conversation", body)).collect()
    }

    async fn upsert_stream_session(&self, uid: &Uid, session: &StreamSession) -> Result<(), StoreError> {
        // The WHERE of the upsert is `StreamSession::is_behind` negated: an update that would
        // reopen the session or lower a total leaves the stored row as it is.
        sqlx::query(
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
        .bind(uid.as_str())
        .bind(&session.session_id)
        .bind(session.started_at.millis())
        .bind(session.updated_at.millis())
        .bind(session.closed)
        .bind(session.duration_ms)
        .bind(session.speech_ms)
        .bind(session.stt_ms)
        .bind(to_json("stream session", session)?)
        .execute(&self.writer)
        .await
        .map(|_| ())
        .map_err(|e| store_error("store a stream session", Effect::MaybeApplied, e))
    }

    async fn stream_sessions_since(
        &self,
        uid: &Uid,
        from: Timestamp,
        limit: usize,
    ) -> Result<Vec<StreamSession>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM (SELECT body, started_at, session_id FROM stream_sessions
                               WHERE uid = ?1 AND updated_at >= ?2
                               ORDER BY started_at DESC, session_id DESC LIMIT ?3)
             ORDER BY started_at, session_id",
        )
        .bind(uid.as_str())
        .bind(from.millis())
        .bind(sql_limit(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| store_error("read stream sessions", Effect::NotApplied, e))?;
        rows.iter().map(|body| from_json("stream session", body)).collect()
    }
}
