//! The webhook outbox and the classifier job queue. A claim is one `UPDATE ... RETURNING`
//! statement, so taking and leasing a batch is atomic without a read-then-write race.

use async_trait::async_trait;
use fairuse_domain::error::StoreError;
use fairuse_domain::store::{Job, JobStore, OutboxMessage, OutboxStore};
use fairuse_domain::time::Timestamp;

use crate::EmbeddedStore;
use crate::error::{Effect, sql_limit, store_error, to_u32};

type OutboxRow = (String, String, i64, i64, i64, Option<String>);
type JobRow = (String, String, String, Option<String>, i64, i64);

#[async_trait]
impl OutboxStore for EmbeddedStore {
    async fn claim_due(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "UPDATE outbox SET leased_until = ?1
             WHERE id IN (SELECT id FROM outbox
                          WHERE dead = 0 AND next_attempt_at <= ?2 AND leased_until <= ?2
                          ORDER BY next_attempt_at, rowid LIMIT ?3)
             RETURNING id, body, attempts, next_attempt_at, created_at, last_error",
        )
        .bind(now.millis().saturating_add(lease_ms))
        .bind(now.millis())
        .bind(sql_limit(limit))
        .fetch_all(&self.writer)
        .await
        // A lost answer leaves the batch leased but unsent: it is due again when the lease ends.
        .map_err(|e| store_error("claim outbox messages", Effect::MaybeApplied, e))?;
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
        // The events table is the audit trail; a delivered webhook has nothing left to keep.
        sqlx::query("DELETE FROM outbox WHERE id = ?1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(|e| store_error("mark an outbox message delivered", Effect::MaybeApplied, e))
    }

    async fn failed(&self, id: &str, next_attempt_at: Timestamp, error: &str, give_up: bool) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3,
                 leased_until = 0, dead = ?4
             WHERE id = ?1",
        )
        .bind(id)
        .bind(next_attempt_at.millis())
        .bind(error)
        .bind(give_up)
        .execute(&self.writer)
        .await
        .map_err(|e| store_error("record a failed delivery", Effect::MaybeApplied, e))?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound(format!("outbox message {id}")));
        }
        Ok(())
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.reader)
            .await
            .map_err(|e| store_error("count outbox messages", Effect::NotApplied, e))?;
        Ok(count.unsigned_abs())
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE dead = 0")
            .fetch_one(&self.reader)
            .await
            .map_err(|e| store_error("count the outbox backlog", Effect::NotApplied, e))?;
        Ok(count.unsigned_abs())
    }
}

#[async_trait]
impl JobStore for EmbeddedStore {
    async fn enqueue(&self, job: &Job, now: Timestamp) -> Result<(), StoreError> {
        // Enqueueing the same job id twice (a retried call) keeps one job.
        sqlx::query(
            "INSERT INTO jobs (id, uid, lock_token, session_id, attempts, created_at, due_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&job.id)
        .bind(&job.uid)
        .bind(&job.lock_token)
        .bind(&job.session_id)
        .bind(i64::from(job.attempts))
        .bind(job.created_at.millis())
        .bind(now.millis())
        .execute(&self.writer)
        .await
        .map(|_| ())
        .map_err(|e| store_error("enqueue a job", Effect::MaybeApplied, e))
    }

    async fn claim(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<Job>, StoreError> {
        // A claimed job is due again when its lease ends, so a crashed worker's job is retried.
        let rows: Vec<JobRow> = sqlx::query_as(
            "UPDATE jobs SET due_at = ?1
             WHERE id IN (SELECT id FROM jobs WHERE due_at <= ?2 ORDER BY due_at, rowid LIMIT ?3)
             RETURNING id, uid, lock_token, session_id, attempts, created_at",
        )
        .bind(now.millis().saturating_add(lease_ms))
        .bind(now.millis())
        .bind(sql_limit(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(|e| store_error("claim jobs", Effect::MaybeApplied, e))?;
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
        sqlx::query("DELETE FROM jobs WHERE id = ?1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(|e| store_error("complete a job", Effect::MaybeApplied, e))
    }

    async fn retry(&self, id: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        let changed = sqlx::query("UPDATE jobs SET attempts = attempts + 1, due_at = ?2 WHERE id = ?1")
            .bind(id)
            .bind(retry_at.millis())
            .execute(&self.writer)
            .await
            .map_err(|e| store_error("retry a job", Effect::MaybeApplied, e))?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound(format!("job {id}")));
        }
        Ok(())
    }
}
