//! The webhook outbox and the classifier job queue. A claim is one `UPDATE ... RETURNING`
//! statement, so taking and leasing a batch is atomic without a read-then-write race.

use async_trait::async_trait;
use fairuse_domain::error::StoreError;
use fairuse_domain::store::{Job, JobStore, OutboxMessage, OutboxStore};
use fairuse_domain::time::Timestamp;
use rusqlite::{Connection, params};

use crate::EmbeddedStore;
use crate::error::{Effect, sql_limit, store_error, to_u32};

type OutboxRow = (String, String, i64, i64, i64, Option<String>);
type JobRow = (String, String, String, Option<String>, i64, i64);

/// Runs one write statement and returns the rows it changed.
fn changed(conn: &Connection, action: &str, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(|e| store_error(action, Effect::NotApplied, e))
}

fn count(conn: &Connection, sql: &str) -> Result<u64, rusqlite::Error> {
    conn.prepare_cached(sql)?.query_row([], |r| r.get::<_, i64>(0)).map(i64::unsigned_abs)
}

#[async_trait]
impl OutboxStore for EmbeddedStore {
    async fn claim_due(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        const ACTION: &str = "claim outbox messages";
        let rows: Vec<OutboxRow> = self
            .writer
            .write(ACTION, move |conn| {
                conn.prepare_cached(
                    "UPDATE outbox SET leased_until = ?1
                     WHERE id IN (SELECT id FROM outbox
                                  WHERE dead = 0 AND next_attempt_at <= ?2 AND leased_until <= ?2
                                  ORDER BY next_attempt_at, rowid LIMIT ?3)
                     RETURNING id, body, attempts, next_attempt_at, created_at, last_error",
                )
                .and_then(|mut s| {
                    s.query_map(params![now.millis().saturating_add(lease_ms), now.millis(), sql_limit(limit)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                    })?
                    .collect()
                })
                // A lost answer leaves the batch leased but unsent: it is due again when the lease ends.
                .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
            })
            .await?;
        let mut messages: Vec<OutboxMessage> = rows
            .into_iter()
            .map(|(id, body, attempts, next_attempt_at, created_at, last_error)| OutboxMessage {
                id,
                body,
                attempts: to_u32(attempts),
                next_attempt_at: Timestamp::from_millis(next_attempt_at),
                created_at: Timestamp::from_millis(created_at),
                last_error,
            })
            .collect();
        // RETURNING has no defined order; hand them out oldest due first.
        messages
            .sort_by(|a, b| a.next_attempt_at.cmp(&b.next_attempt_at).then_with(|| a.created_at.cmp(&b.created_at)));
        Ok(messages)
    }

    async fn delivered(&self, id: &str, _now: Timestamp) -> Result<(), StoreError> {
        const ACTION: &str = "mark an outbox message delivered";
        let id = id.to_owned();
        // The events table is the audit trail; a delivered webhook has nothing left to keep.
        self.writer.write(ACTION, move |conn| changed(conn, ACTION, "DELETE FROM outbox WHERE id = ?1", [id])).await?;
        Ok(())
    }

    async fn failed(&self, id: &str, next_attempt_at: Timestamp, error: &str, give_up: bool) -> Result<(), StoreError> {
        const ACTION: &str = "record a failed delivery";
        let (owned, error) = (id.to_owned(), error.to_owned());
        let rows = self
            .writer
            .write(ACTION, move |conn| {
                changed(
                    conn,
                    ACTION,
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3,
                         leased_until = 0, dead = ?4
                     WHERE id = ?1",
                    params![owned, next_attempt_at.millis(), error, give_up],
                )
            })
            .await?;
        if rows == 0 {
            return Err(StoreError::NotFound(format!("outbox message {id}")));
        }
        Ok(())
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        self.readers.read("count outbox messages", |conn| count(conn, "SELECT count(*) FROM outbox")).await
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        self.readers
            .read("count the outbox backlog", |conn| count(conn, "SELECT count(*) FROM outbox WHERE dead = 0"))
            .await
    }
}

#[async_trait]
impl JobStore for EmbeddedStore {
    async fn enqueue(&self, job: &Job, now: Timestamp) -> Result<(), StoreError> {
        const ACTION: &str = "enqueue a job";
        let job = job.clone();
        // Enqueueing the same job id twice (a retried call) keeps one job.
        self.writer
            .write(ACTION, move |conn| {
                changed(
                    conn,
                    ACTION,
                    "INSERT INTO jobs (id, uid, lock_token, session_id, attempts, created_at, due_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
                    params![
                        job.id,
                        job.uid,
                        job.lock_token,
                        job.session_id,
                        i64::from(job.attempts),
                        job.created_at.millis(),
                        now.millis()
                    ],
                )
            })
            .await?;
        Ok(())
    }

    async fn claim(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<Job>, StoreError> {
        const ACTION: &str = "claim jobs";
        // A claimed job is due again when its lease ends, so a crashed worker's job is retried.
        let rows: Vec<JobRow> = self
            .writer
            .write(ACTION, move |conn| {
                conn.prepare_cached(
                    "UPDATE jobs SET due_at = ?1
                     WHERE id IN (SELECT id FROM jobs WHERE due_at <= ?2 ORDER BY due_at, rowid LIMIT ?3)
                     RETURNING id, uid, lock_token, session_id, attempts, created_at",
                )
                .and_then(|mut s| {
                    s.query_map(params![now.millis().saturating_add(lease_ms), now.millis(), sql_limit(limit)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                    })?
                    .collect()
                })
                .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
            })
            .await?;
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .map(|(id, uid, lock_token, session_id, attempts, created_at)| Job {
                id,
                uid,
                lock_token,
                session_id,
                attempts: to_u32(attempts),
                created_at: Timestamp::from_millis(created_at),
            })
            .collect();
        jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(jobs)
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        const ACTION: &str = "complete a job";
        let id = id.to_owned();
        self.writer.write(ACTION, move |conn| changed(conn, ACTION, "DELETE FROM jobs WHERE id = ?1", [id])).await?;
        Ok(())
    }

    async fn retry(&self, id: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        const ACTION: &str = "retry a job";
        let owned = id.to_owned();
        let rows = self
            .writer
            .write(ACTION, move |conn| {
                changed(
                    conn,
                    ACTION,
                    "UPDATE jobs SET attempts = attempts + 1, due_at = ?2 WHERE id = ?1",
                    params![owned, retry_at.millis()],
                )
            })
            .await?;
        if rows == 0 {
            return Err(StoreError::NotFound(format!("job {id}")));
        }
        Ok(())
    }
}
