//! Enforcement state with its events and outbox messages, conversation metadata and the gateway's
//! stream sessions.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use fairuse_domain::classifier::{Conversation, redact};
use fairuse_domain::engine::{EnforcementState, Event};
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{ConversationStore, EnforcementStore, OutboxMessage, Versioned};
use fairuse_domain::time::Timestamp;

use crate::error::{Phase, from_json, sql_limit, store_error, to_json};
use crate::{OnTimeout, PostgresStore};

/// Events redacted per transaction, so no transaction holds many row locks for long.
const REDACT_BATCH: i64 = 500;

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Invalid(format!("state version {version} is out of range")))
}

fn events_from_rows(rows: &[String]) -> Result<Vec<Event>, StoreError> {
    rows.iter().map(|body| from_json("event", body)).collect()
}

/// The columns of the events of one commit, as arrays for one `INSERT ... SELECT FROM UNNEST`.
#[derive(Default)]
struct EventColumns {
    event_id: Vec<String>,
    case_ref: Vec<String>,
    uid: Vec<String>,
    created_at: Vec<i64>,
    kind: Vec<String>,
    evidence_redacted_at: Vec<Option<i64>>,
    body: Vec<String>,
}

impl EventColumns {
    fn of(events: &[Event]) -> Result<EventColumns, StoreError> {
        let mut c = EventColumns::default();
        for e in events {
            c.event_id.push(e.event_id.clone());
            c.case_ref.push(e.case_ref.as_str().to_owned());
            c.uid.push(e.uid.clone());
            c.created_at.push(e.created_at.millis());
            c.kind.push(e.kind.as_str().to_owned());
            c.evidence_redacted_at.push(e.evidence_redacted_at.map(Timestamp::millis));
            c.body.push(to_json("event", e)?);
        }
        Ok(c)
    }
}

/// The outbox messages of one commit, as arrays.
#[derive(Default)]
struct OutboxColumns {
    id: Vec<String>,
    body: Vec<String>,
    attempts: Vec<i64>,
    next_attempt_at: Vec<i64>,
    created_at: Vec<i64>,
    last_error: Vec<Option<String>>,
}

impl OutboxColumns {
    fn of(messages: &[OutboxMessage]) -> OutboxColumns {
        let mut c = OutboxColumns::default();
        for m in messages {
            c.id.push(m.id.clone());
            c.body.push(m.body.clone());
            c.attempts.push(i64::from(m.attempts));
            c.next_attempt_at.push(m.next_attempt_at.millis());
            c.created_at.push(m.created_at.millis());
            c.last_error.push(m.last_error.clone());
        }
        c
    }
}

#[async_trait]
impl EnforcementStore for PostgresStore {
    async fn load(&self, uid: &Uid) -> Result<Option<Versioned<EnforcementState>>, StoreError> {
        const ACTION: &str = "load the enforcement state";
        self.bounded(ACTION, OnTimeout::Read, async {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT state::text, version FROM user_state WHERE uid = $1")
                    .bind(uid.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            row.map(|(state, version)| {
                let version = u64::try_from(version)
                    .map_err(|_| StoreError::Unavailable(format!("stored state of {uid} has version {version}")))?;
                Ok(Versioned { value: from_json("enforcement state", &state)?, version })
            })
            .transpose()
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
        const ACTION: &str = "commit the enforcement state";
        let failed = |e| store_error(ACTION, Phase::NoEffect, e);
        let new_version = expected
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid(format!("state version {expected} is out of range")))?;
        // Checked here so that `expected + 1` cannot overflow BIGINT in SQL either.
        version_to_sql(new_version)?;
        let expected_sql = version_to_sql(expected)?;
        let state_json = to_json("enforcement state", state)?;
        let event_columns = EventColumns::of(events)?;
        let outbox_columns = OutboxColumns::of(outbox);
        let committing = AtomicBool::new(false);

        self.bounded(ACTION, OnTimeout::Transaction(&committing), async {
            let mut tx = self.pool.begin().await.map_err(failed)?;
            // The compare-and-set: an INSERT that only a first writer wins, or an UPDATE of the
            // expected version. The UPDATE takes the row lock, so a concurrent commit of the same
            // user waits here, then re-checks the version against the winner's row and matches
            // nothing. That lock also orders one user's events by `seq`.
            let statement = if expected == 0 {
                sqlx::query(
                    "INSERT INTO user_state (uid, version, stage, stage_until, stage_since, updated_at, state)
                     VALUES ($1, $2 + 1, $3, $4, $5, $6, $7::jsonb)
                     ON CONFLICT (uid) DO NOTHING",
                )
            } else {
                sqlx::query(
                    "UPDATE user_state SET version = version + 1, stage = $3, stage_until = $4, stage_since = $5,
                         updated_at = $6, state = $7::jsonb
                     WHERE uid = $1 AND version = $2",
                )
            };
            let written = statement
                .bind(uid.as_str())
                .bind(expected_sql)
                .bind(state.stage.as_str())
                .bind(state.stage_until.map(Timestamp::millis))
                .bind(state.stage_since.map(Timestamp::millis))
                .bind(state.updated_at.map(Timestamp::millis))
                .bind(&state_json)
                .execute(&mut *tx)
                .await
                .map_err(failed)?
                .rows_affected();
            if written == 0 {
                // Nothing was written; roll back now rather than when the connection is reused.
                // A failed rollback changes nothing either: the transaction never commits.
                let _ = tx.rollback().await;
                return Err(StoreError::Conflict);
            }
            if !events.is_empty() {
                // One statement for every event, in slice order, so `seq` follows the append order.
                let c = &event_columns;
                sqlx::query(
                    "INSERT INTO events (event_id, case_ref, uid, created_at, kind, evidence_redacted_at, body)
                     SELECT event_id, case_ref, uid, created_at, kind, evidence_redacted_at, body::jsonb
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::text[])
                          WITH ORDINALITY AS e(event_id, case_ref, uid, created_at, kind, evidence_redacted_at, body, n)
                     ORDER BY n",
                )
                .bind(&c.event_id)
                .bind(&c.case_ref)
                .bind(&c.uid)
                .bind(&c.created_at)
                .bind(&c.kind)
                .bind(&c.evidence_redacted_at)
                .bind(&c.body)
                .execute(&mut *tx)
                .await
                // A reused event id or case reference is a unique violation: Invalid, and the
                // dropped transaction takes the state write with it.
                .map_err(failed)?;
            }
            if !outbox.is_empty() {
                let c = &outbox_columns;
                sqlx::query(
                    "INSERT INTO outbox (id, body, attempts, next_attempt_at, created_at, last_error)
                     SELECT id, body, attempts, next_attempt_at, created_at, last_error
                     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[])
                          WITH ORDINALITY AS m(id, body, attempts, next_attempt_at, created_at, last_error, n)
                     ORDER BY n",
                )
                .bind(&c.id)
                .bind(&c.body)
                .bind(&c.attempts)
                .bind(&c.next_attempt_at)
                .bind(&c.created_at)
                .bind(&c.last_error)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            }
            committing.store(true, Ordering::SeqCst);
            tx.commit().await.map_err(|e| store_error(ACTION, Phase::Commit, e))?;
            Ok(new_version)
        })
        .await
    }

    async fn events(&self, uid: &Uid, limit: usize) -> Result<Vec<Event>, StoreError> {
        const ACTION: &str = "read events";
        self.bounded(ACTION, OnTimeout::Read, async {
            // Newest by creation time; among events of the same instant, the later appended first.
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT body::text FROM events WHERE uid = $1 ORDER BY created_at DESC, seq DESC LIMIT $2",
            )
            .bind(uid.as_str())
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            events_from_rows(&rows)
        })
        .await
    }

    async fn event_by_case_ref(&self, case_ref: &str) -> Result<Option<Event>, StoreError> {
        const ACTION: &str = "read an event by case reference";
        self.bounded(ACTION, OnTimeout::Read, async {
            let row: Option<String> = sqlx::query_scalar("SELECT body::text FROM events WHERE case_ref = $1")
                .bind(case_ref)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            row.map(|body| from_json("event", &body)).transpose()
        })
        .await
    }

    async fn event_by_id(&self, uid: &Uid, event_id: &str) -> Result<Option<Event>, StoreError> {
        const ACTION: &str = "read an event";
        self.bounded(ACTION, OnTimeout::Read, async {
            let row: Option<String> =
                sqlx::query_scalar("SELECT body::text FROM events WHERE event_id = $1 AND uid = $2")
                    .bind(event_id)
                    .bind(uid.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            row.map(|body| from_json("event", &body)).transpose()
        })
        .await
    }

    async fn update_event(&self, event: &Event) -> Result<(), StoreError> {
        const ACTION: &str = "update an event's resolution";
        let resolution = to_json("resolution", &event.resolution)?;
        self.bounded(ACTION, OnTimeout::Write, async {
            // Events are append-only: only the resolution key of the stored body is replaced, in
            // one statement, so a concurrent redaction of the same event is never undone.
            let changed = sqlx::query(
                "UPDATE events SET body = jsonb_set(body, '{resolution}', $2::jsonb, true) WHERE event_id = $1",
            )
            .bind(&event.event_id)
            .bind(&resolution)
            .execute(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::Write, e))?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound(format!("event {}", event.event_id)));
            }
            Ok(())
        })
        .await
    }

    async fn flagged(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<(String, EnforcementState)>, StoreError> {
        const ACTION: &str = "list flagged users";
        self.bounded(ACTION, OnTimeout::Read, async {
            // `stage <> 'none'` is spelled out so the partial indexes apply to every plan, and
            // NULLS LAST matches the other backends (a user without stage_since sorts last).
            let query = match stage {
                None => sqlx::query_as(
                    "SELECT uid, state::text FROM user_state WHERE stage <> 'none'
                     ORDER BY stage_since DESC NULLS LAST, uid LIMIT $1",
                ),
                Some(Stage::None) => sqlx::query_as(
                    "SELECT uid, state::text FROM user_state WHERE stage = 'none'
                     ORDER BY stage_since DESC NULLS LAST, uid LIMIT $1",
                ),
                Some(stage) => sqlx::query_as(
                    "SELECT uid, state::text FROM user_state WHERE stage <> 'none' AND stage = $1
                     ORDER BY stage_since DESC NULLS LAST, uid LIMIT $2",
                )
                .bind(stage.as_str()),
            };
            let rows: Vec<(String, String)> = query
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            rows.into_iter().map(|(uid, state)| Ok((uid, from_json("enforcement state", &state)?))).collect()
        })
        .await
    }

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        const ACTION: &str = "list due timers";
        self.bounded(ACTION, OnTimeout::Read, async {
            // Oldest expiry first, so a worker with a small limit serves the longest-waiting users.
            sqlx::query_scalar(
                "SELECT uid FROM user_state
                 WHERE stage <> 'none' AND stage_until IS NOT NULL AND stage_until <= $1
                 ORDER BY stage_until, uid LIMIT $2",
            )
            .bind(now.millis())
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::NoEffect, e))
        })
        .await
    }

    async fn redact_evidence_before(&self, cutoff: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        const ACTION: &str = "redact old evidence";
        let mut changed = 0u64;
        loop {
            let committing = AtomicBool::new(false);
            let batch = self
                .bounded(ACTION, OnTimeout::Transaction(&committing), async {
                    let failed = |e| store_error(ACTION, Phase::NoEffect, e);
                    let mut tx = self.pool.begin().await.map_err(failed)?;
                    // SKIP LOCKED: two replicas redacting at once split the work instead of
                    // queueing on each other's rows; what one skips, the next run takes.
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT event_id, body::text FROM events
                         WHERE evidence_redacted_at IS NULL AND created_at < $1
                         ORDER BY created_at LIMIT $2
                         FOR UPDATE SKIP LOCKED",
                    )
                    .bind(cutoff.millis())
                    .bind(REDACT_BATCH)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(failed)?;
                    if rows.is_empty() {
                        return Ok(0);
                    }
                    // The domain's `redact` decides what evidence text is, so it runs here in
                    // Rust rather than as a JSON expression in SQL that could drift from it.
                    let mut ids = Vec::with_capacity(rows.len());
                    let mut bodies = Vec::with_capacity(rows.len());
                    for (event_id, body) in rows {
                        let mut event: Event = from_json("event", &body)?;
                        if let Some(verdict) = event.verdict.as_mut() {
                            redact(verdict);
                        }
                        event.evidence_redacted_at = Some(now);
                        ids.push(event_id);
                        bodies.push(to_json("event", &event)?);
                    }
                    let updated = sqlx::query(
                        "UPDATE events SET body = r.body::jsonb, evidence_redacted_at = $3
                         FROM UNNEST($1::text[], $2::text[]) AS r(event_id, body)
                         WHERE events.event_id = r.event_id",
                    )
                    .bind(&ids)
                    .bind(&bodies)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?
                    .rows_affected();
                    committing.store(true, Ordering::SeqCst);
                    tx.commit().await.map_err(|e| store_error(ACTION, Phase::Commit, e))?;
                    Ok(updated)
                })
                .await?;
            changed += batch;
            if batch < REDACT_BATCH.unsigned_abs() {
                return Ok(changed);
            }
        }
    }

    async fn users_with_events_since(&self, from: Timestamp) -> Result<Vec<String>, StoreError> {
        const ACTION: &str = "list users with events";
        self.bounded(ACTION, OnTimeout::Read, async {
            sqlx::query_scalar("SELECT DISTINCT uid FROM events WHERE created_at >= $1 ORDER BY uid")
                .bind(from.millis())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::NoEffect, e))
        })
        .await
    }

    async fn events_since(&self, uid: &Uid, from: Timestamp) -> Result<Vec<Event>, StoreError> {
        const ACTION: &str = "read events since";
        self.bounded(ACTION, OnTimeout::Read, async {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT body::text FROM events WHERE uid = $1 AND created_at >= $2 ORDER BY created_at, seq",
            )
            .bind(uid.as_str())
            .bind(from.millis())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            events_from_rows(&rows)
        })
        .await
    }
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn upsert(&self, uid: &Uid, conversation: &Conversation) -> Result<(), StoreError> {
        const ACTION: &str = "store a conversation";
        let body = to_json("conversation", conversation)?;
        self.bounded(ACTION, OnTimeout::Write, async {
            sqlx::query(
                "INSERT INTO conversations (uid, conversation_id, started_at, body) VALUES ($1, $2, $3, $4::jsonb)
                 ON CONFLICT (uid, conversation_id)
                 DO UPDATE SET started_at = EXCLUDED.started_at, body = EXCLUDED.body",
            )
            .bind(uid.as_str())
            .bind(&conversation.conversation_id)
            .bind(conversation.started_at.millis())
            .bind(&body)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| store_error(ACTION, Phase::Write, e))
        })
        .await
    }

    async fn since(&self, uid: &Uid, from: Timestamp, limit: usize) -> Result<Vec<Conversation>, StoreError> {
        const ACTION: &str = "read conversations";
        self.bounded(ACTION, OnTimeout::Read, async {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT body FROM (SELECT body::text AS body, started_at, conversation_id FROM conversations
                     WHERE uid = $1 AND started_at >= $2
                     ORDER BY started_at DESC, conversation_id DESC LIMIT $3) recent
                 ORDER BY started_at, conversation_id",
            )
            .bind(uid.as_str())
            .bind(from.millis())
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            rows.iter().map(|body| from_json("conversation", body)).collect()
        })
        .await
    }

    async fn upsert_stream_session(&self, uid: &Uid, session: &StreamSession) -> Result<(), StoreError> {
        const ACTION: &str = "store a stream session";
        let body = to_json("stream session", session)?;
        self.bounded(ACTION, OnTimeout::Write, async {
            // The WHERE of the upsert is `StreamSession::is_behind` negated, evaluated on the row
            // as locked by the conflict, so a concurrent writer cannot slip past it.
            sqlx::query(
                "INSERT INTO stream_sessions
                     (uid, session_id, started_at, updated_at, closed, duration_ms, speech_ms, stt_ms, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
                 ON CONFLICT (uid, session_id) DO UPDATE SET
                     started_at = EXCLUDED.started_at, updated_at = EXCLUDED.updated_at, closed = EXCLUDED.closed,
                     duration_ms = EXCLUDED.duration_ms, speech_ms = EXCLUDED.speech_ms, stt_ms = EXCLUDED.stt_ms,
                     body = EXCLUDED.body
                 WHERE NOT (stream_sessions.closed AND NOT EXCLUDED.closed)
                   AND EXCLUDED.duration_ms >= stream_sessions.duration_ms
                   AND EXCLUDED.speech_ms >= stream_sessions.speech_ms
                   AND EXCLUDED.stt_ms >= stream_sessions.stt_ms",
            )
            .bind(uid.as_str())
            .bind(&session.session_id)
            .bind(session.started_at.millis())
            .bind(session.updated_at.millis())
            .bind(session.closed)
            .bind(session.duration_ms)
            .bind(session.speech_ms)
            .bind(session.stt_ms)
            .bind(&body)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| store_error(ACTION, Phase::Write, e))
        })
        .await
    }

    async fn stream_sessions_since(
        &self,
        uid: &Uid,
        from: Timestamp,
        limit: usize,
    ) -> Result<Vec<StreamSession>, StoreError> {
        const ACTION: &str = "read stream sessions";
        self.bounded(ACTION, OnTimeout::Read, async {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT body::text FROM (SELECT body, started_at, session_id FROM stream_sessions
                                         WHERE uid = $1 AND updated_at >= $2
                                         ORDER BY started_at DESC, session_id DESC LIMIT $3) AS recent
                 ORDER BY started_at, session_id",
            )
            .bind(uid.as_str())
            .bind(from.millis())
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            rows.iter().map(|body| from_json("stream session", body)).collect()
        })
        .await
    }
}
