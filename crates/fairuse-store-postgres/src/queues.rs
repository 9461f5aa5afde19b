//! The webhook outbox and the classifier job queue, shared by every replica.
//!
//! A claim is one statement, `UPDATE ... WHERE id = ANY (ARRAY(SELECT ... LIMIT n FOR UPDATE SKIP
//! LOCKED)) RETURNING ...`: the inner select locks the rows it picks and skips rows another claim
//! holds, and the update sets the lease before the locks are released. A row picked from an older
//! snapshot is re-checked against its newest version when locked (READ COMMITTED), so a row another
//! claim has just leased drops out. Two workers therefore never hold the same row at once, and
//! neither waits for the other.
//!
//! `= ANY (ARRAY(...))` rather than `IN (SELECT ...)`: the array is computed once, up front, and
//! the update then finds its rows by primary key. With `IN`, the generic plan PostgreSQL settles
//! on for a prepared statement (it cannot see the limit) hash-joins against a scan of the whole
//! table, dead letters included, on every claim.

use async_trait::async_trait;
use fairuse_domain::error::StoreError;
use fairuse_domain::store::{Job, JobStore, OutboxMessage, OutboxStore};
use fairuse_domain::time::Timestamp;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};

use crate::error::{Phase, sql_limit, store_error, to_u32};
use crate::{OnTimeout, PostgresStore};

/// A claimed outbox row, read by column name. `seq` orders messages enqueued at the same due time.
struct OutboxRow {
    seq: i64,
    message: OutboxMessage,
}

impl<'r> FromRow<'r, PgRow> for OutboxRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(OutboxRow {
            seq: row.try_get("seq")?,
            message: OutboxMessage {
                id: row.try_get("id")?,
                body: row.try_get("body")?,
                attempts: to_u32(row.try_get("attempts")?),
                next_attempt_at: Timestamp::from_millis(row.try_get("next_attempt_at")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                last_error: row.try_get("last_error")?,
            },
        })
    }
}

/// A claimed job row, read by column name. `seq` is the enqueue order.
struct JobRow {
    seq: i64,
    job: Job,
}

impl<'r> FromRow<'r, PgRow> for JobRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(JobRow {
            seq: row.try_get("seq")?,
            job: Job {
                id: row.try_get("id")?,
                uid: row.try_get("uid")?,
                lock_token: row.try_get("lock_token")?,
                session_id: row.try_get("session_id")?,
                attempts: to_u32(row.try_get("attempts")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
            },
        })
    }
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn claim_due(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        const ACTION: &str = "claim outbox messages";
        let rows: Vec<OutboxRow> = self
            .bounded(ACTION, OnTimeout::Write, async {
                sqlx::query_as(
                    "UPDATE outbox SET leased_until = $1
                     WHERE id = ANY (ARRAY(SELECT id FROM outbox
                                           WHERE NOT dead AND next_attempt_at <= $2 AND leased_until <= $2
                                           ORDER BY next_attempt_at, seq LIMIT $3
                                           FOR UPDATE SKIP LOCKED))
                     RETURNING seq, id, body, attempts, next_attempt_at, created_at, last_error",
                )
                .bind(now.millis().saturating_add(lease_ms))
                .bind(now.millis())
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await
                // A lost answer leaves the batch leased but unsent: it is due again when the
                // lease ends, which at-least-once delivery allows.
                .map_err(|e| store_error(ACTION, Phase::Write, e))
            })
            .await?;
        let mut rows = rows;
        // RETURNING has no defined order; hand them out oldest due first, then in enqueue order.
        rows.sort_by_key(|r| (r.message.next_attempt_at, r.seq));
        Ok(rows.into_iter().map(|r| r.message).collect())
    }

    async fn delivered(&self, id: &str, _now: Timestamp) -> Result<(), StoreError> {
        const ACTION: &str = "mark an outbox message delivered";
        self.bounded(ACTION, OnTimeout::Write, async {
            // The events table is the audit trail; a delivered webhook has nothing left to keep.
            sqlx::query("DELETE FROM outbox WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(|e| store_error(ACTION, Phase::Write, e))
        })
        .await
    }

    async fn failed(&self, id: &str, next_attempt_at: Timestamp, error: &str, give_up: bool) -> Result<(), StoreError> {
        const ACTION: &str = "record a failed delivery";
        self.bounded(ACTION, OnTimeout::Write, async {
            let changed = sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3,
                     leased_until = 0, dead = $4
                 WHERE id = $1",
            )
            .bind(id)
            .bind(next_attempt_at.millis())
            .bind(error)
            .bind(give_up)
            .execute(&self.pool)
            .await
            .map_err(|e| store_error(ACTION, Phase::Write, e))?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound(format!("outbox message {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        const ACTION: &str = "count outbox messages";
        self.bounded(ACTION, OnTimeout::Read, async {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            Ok(count.unsigned_abs())
        })
        .await
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        const ACTION: &str = "count the outbox backlog";
        self.bounded(ACTION, OnTimeout::Read, async {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE NOT dead")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
            Ok(count.unsigned_abs())
        })
        .await
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn enqueue(&self, job: &Job, now: Timestamp) -> Result<(), StoreError> {
        const ACTION: &str = "enqueue a job";
        self.bounded(ACTION, OnTimeout::Write, async {
            // Enqueueing the same job id twice (a retried call) keeps one job, as it was.
            sqlx::query(
                "INSERT INTO jobs (id, uid, lock_token, session_id, attempts, created_at, due_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&job.id)
            .bind(&job.uid)
            .bind(&job.lock_token)
            .bind(&job.session_id)
            .bind(i64::from(job.attempts))
            .bind(job.created_at.millis())
            .bind(now.millis())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| store_error(ACTION, Phase::Write, e))
        })
        .await
    }

    async fn claim(&self, now: Timestamp, limit: usize, lease_ms: i64) -> Result<Vec<Job>, StoreError> {
        const ACTION: &str = "claim jobs";
        // A claimed job is due again when its lease ends, so a crashed worker's job is retried.
        let rows: Vec<JobRow> = self
            .bounded(ACTION, OnTimeout::Write, async {
                sqlx::query_as(
                    "UPDATE jobs SET due_at = $1
                     WHERE id = ANY (ARRAY(SELECT id FROM jobs WHERE due_at <= $2
                                           ORDER BY due_at, seq LIMIT $3
                                           FOR UPDATE SKIP LOCKED))
                     RETURNING seq, id, uid, lock_token, session_id, attempts, created_at",
                )
                .bind(now.millis().saturating_add(lease_ms))
                .bind(now.millis())
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::Write, e))
            })
            .await?;
        let mut rows = rows;
        // RETURNING has no defined order; hand them out in enqueue order.
        rows.sort_by_key(|r| r.seq);
        Ok(rows.into_iter().map(|r| r.job).collect())
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        const ACTION: &str = "complete a job";
        self.bounded(ACTION, OnTimeout::Write, async {
            sqlx::query("DELETE FROM jobs WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(|e| store_error(ACTION, Phase::Write, e))
        })
        .await
    }

    async fn retry(&self, id: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        const ACTION: &str = "retry a job";
        self.bounded(ACTION, OnTimeout::Write, async {
            let changed = sqlx::query("UPDATE jobs SET attempts = attempts + 1, due_at = $2 WHERE id = $1")
                .bind(id)
                .bind(retry_at.millis())
                .execute(&self.pool)
                .await
                .map_err(|e| store_error(ACTION, Phase::Write, e))?
                .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound(format!("job {id}")));
            }
            Ok(())
        })
        .await
    }
}
