//! fairuse-store-embedded: every store port of `fairuse-domain` for a single-process deployment,
//! durable in the data directory.
//!
//! [`EmbeddedStore`] keeps everything that must survive a restart in one SQLite database,
//! `<data_dir>/fairuse.db` (WAL mode): enforcement state, events, the webhook outbox, classifier
//! jobs, conversations, minute buckets with their idempotency keys and session maxima, STT budgets
//! and locks. Every write goes to one writer thread that group-commits whatever is waiting (see
//! [`db`]): a report is committed to SQLite before it is acknowledged, and concurrent reports share
//! one commit. What a decision reads is cached in memory and written through, so a decision
//! touches no SQLite: each user's `UserMeter` (window totals come from the domain's own window
//! math), enforcement state and STT budget day. The caches are filled only by the writer thread,
//! in commit order, so they never run behind the database. Only rate-limit counters live in memory
//! alone (see [`hot`]).
//!
//! It must not depend on the server, HTTP, Redis or PostgreSQL crates: it implements the domain's
//! traits and nothing else. Driver errors become `StoreError`s in one function ([`error`]).
#![forbid(unsafe_code)]

mod db;
mod durable;
mod error;
mod hot;
mod meter;
mod prints;
mod queues;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fairuse_domain::error::StoreError;
use fairuse_domain::time::{MS_PER_MINUTE, Timestamp};

use crate::error::{Effect, store_error};

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "fairuse.db";
/// The lock file that keeps a second process out of the same data directory.
pub const LOCK_FILE_NAME: &str = "fairuse.lock";

/// All store ports over one SQLite database plus in-memory caches. Share it as `Arc<EmbeddedStore>`
/// (or as `Arc<dyn Trait>` per port); only one process may open a data directory at a time, since
/// the caches assume it is the only writer.
pub struct EmbeddedStore {
    writer: Arc<db::Writer>,
    readers: Arc<db::Readers>,
    db_path: PathBuf,
    meters: Arc<meter::MeterCache>,
    states: Arc<durable::StateCache>,
    budgets: Arc<hot::BudgetCache>,
    rates: hot::RateWindows,
    /// An exclusive lock on `fairuse.lock` in the data directory, held while the store is open:
    /// the caches assume it is the only writer, so a second process must not open the
    /// same directory (use the distributed mode for several replicas).
    dir_lock: std::sync::Mutex<Option<std::fs::File>>,
}

/// What one [`EmbeddedStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub buckets: u64,
    pub idempotency_keys: u64,
    pub sessions: u64,
    pub budget_days: u64,
    pub expired_locks: u64,
    pub cached_meters: u64,
    pub cached_states: u64,
    pub cached_budget_days: u64,
    pub rate_windows: u64,
}

impl EmbeddedStore {
    /// Creates `data_dir` if needed, opens (or creates) `fairuse.db` in WAL mode and applies
    /// pending migrations.
    pub async fn open(data_dir: &Path) -> Result<EmbeddedStore, StoreError> {
        tokio::fs::create_dir_all(data_dir).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot create the data directory {}: {e}", data_dir.display()))
        })?;
        let lock_path = data_dir.join(LOCK_FILE_NAME);
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display())))?;
        lock_file.try_lock().map_err(|_| {
            StoreError::Unavailable(format!(
                "the data directory {} is in use by another fairuse process; one embedded store per directory",
                data_dir.display()
            ))
        })?;
        let db_path = data_dir.join(DB_FILE_NAME);
        let meters = Arc::new(meter::MeterCache::default());
        let states = Arc::new(durable::StateCache::default());
        let budgets = Arc::new(hot::BudgetCache::default());
        let on_failed_commit: db::FailedCommitHook = {
            let (meters, states, budgets) = (Arc::clone(&meters), Arc::clone(&states), Arc::clone(&budgets));
            Box::new(move || {
                meters.invalidate_all();
                states.clear();
                budgets.clear();
            })
        };
        let opening = db_path.clone();
        let (writer, readers) = tokio::task::spawn_blocking(move || db::open(&opening, on_failed_commit))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the database did not finish: {e}")))??;
        tracing::info!(path = %db_path.display(), "opened the embedded store");
        Ok(EmbeddedStore {
            writer: Arc::new(writer),
            readers: Arc::new(readers),
            db_path,
            meters,
            states,
            budgets,
            rates: hot::RateWindows::default(),
            dir_lock: std::sync::Mutex::new(Some(lock_file)),
        })
    }

    /// The database file, for backups: copy it with `sqlite3 fairuse.db ".backup out.db"` (or
    /// `VACUUM INTO`) while the service runs; a plain file copy also needs the `-wal` file.
    pub fn db_path(&self) -> PathBuf {
        self.db_path.clone()
    }

    /// Readiness: the writer thread runs and its connection answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        const ACTION: &str = "ping the database";
        self.writer
            .write(ACTION, |conn| {
                conn.query_row("SELECT 1", [], |_| Ok(())).map_err(|e| store_error(ACTION, Effect::NotApplied, e))
            })
            .await
    }

    /// Stops the writer after the writes in flight and closes the readers. Later calls fail with
    /// `Unavailable`.
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close();
        // Dropping the file releases the directory lock.
        self.dir_lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Removes what the retention period no longer needs: minute buckets, idempotency keys and
    /// session maxima older than `retention_ms`, budget days before it, expired locks, rate-limit
    /// windows that ended, cached meters and states of users idle for an hour and cached budget
    /// days before yesterday (all reloaded on demand). The
    /// service calls it periodically; the meter also prunes on its own every few thousand writes,
    /// so the database and the caches stay bounded without it.
    pub async fn prune(&self, now: Timestamp, retention_ms: i64) -> Result<PruneReport, StoreError> {
        let mut report = prune_sql(&self.writer, now, retention_ms).await?;
        report.cached_meters = self.meters.evict_idle(now);
        report.cached_states = self.states.evict_idle();
        report.cached_budget_days = self.budgets.evict_old(now);
        report.rate_windows = self.rates.prune(now);
        Ok(report)
    }
}

/// Deleted in batches, each its own write request, so reports are never kept waiting for long.
const PRUNE_BATCH: i64 = 5_000;

async fn prune_sql(writer: &db::Writer, now: Timestamp, retention_ms: i64) -> Result<PruneReport, StoreError> {
    let oldest_kept_minute = now.minute() - retention_ms / MS_PER_MINUTE + 1;
    let cutoff = now.millis() - retention_ms;
    let oldest_kept_day = Timestamp::from_millis(cutoff).utc_day();
    let batches: [(&'static str, i64); 5] = [
        (
            "DELETE FROM meter_buckets WHERE (uid, lane, minute) IN \
             (SELECT uid, lane, minute FROM meter_buckets WHERE minute < ?1 LIMIT ?2)",
            oldest_kept_minute,
        ),
        (
            "DELETE FROM meter_idempotency WHERE (uid, lane, key) IN \
             (SELECT uid, lane, key FROM meter_idempotency WHERE seen_at <= ?1 LIMIT ?2)",
            cutoff,
        ),
        (
            "DELETE FROM meter_sessions WHERE (uid, session_id) IN \
             (SELECT uid, session_id FROM meter_sessions WHERE last_seen <= ?1 LIMIT ?2)",
            cutoff,
        ),
        (
            "DELETE FROM budgets WHERE (uid, day) IN (SELECT uid, day FROM budgets WHERE day < ?1 LIMIT ?2)",
            oldest_kept_day,
        ),
        ("DELETE FROM locks WHERE key IN (SELECT key FROM locks WHERE expires_at <= ?1 LIMIT ?2)", now.millis()),
    ];
    let mut removed = [0u64; 5];
    for (i, (sql, bound)) in batches.into_iter().enumerate() {
        loop {
            const ACTION: &str = "prune old rows";
            let done = writer
                .write(ACTION, move |conn| {
                    conn.prepare_cached(sql)
                        .and_then(|mut statement| statement.execute(rusqlite::params![bound, PRUNE_BATCH]))
                        .map_err(|e| store_error(ACTION, Effect::NotApplied, e))
                })
                .await? as u64;
            removed[i] += done;
            if done < PRUNE_BATCH.unsigned_abs() {
                break;
            }
        }
    }
    let [buckets, idempotency_keys, sessions, budget_days, expired_locks] = removed;
    Ok(PruneReport { buckets, idempotency_keys, sessions, budget_days, expired_locks, ..PruneReport::default() })
}

#[cfg(test)]
mod tests {
    use fairuse_domain::engine::EnforcementState;
    use fairuse_domain::ids::{Lane, Uid};
    use fairuse_domain::policy::Policy;
    use fairuse_domain::stage::Stage;
    use fairuse_domain::store::{BudgetStore, EnforcementStore, UsageMeterStore};
    use fairuse_domain::windows::UsageReport;

    use super::*;

    /// 2026-03-20T00:00:00Z
    const T0: Timestamp = Timestamp::from_millis(1_773_964_800_000);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_a_decision_reads_is_answered_while_the_writer_is_busy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).await.expect("open"));
        let (policy, who, day) = (Policy::default(), Uid::parse("decider").expect("uid"), T0.utc_day());
        let state = EnforcementState { stage: Stage::Warning, ..EnforcementState::default() };
        store.commit(&who, &state, 0, &[], &[]).await.expect("commit");
        store.record_and_read(&who, &[UsageReport::delta(Lane::Realtime, 60_000)], &policy, T0).await.expect("record");
        store.add_forwarded(&who, day, 5_000).await.expect("add");

        // Hold the writer thread: anything that needs it now waits until `release`.
        let (started, started_rx) = tokio::sync::oneshot::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .writer
                    .write("block", move |_| {
                        let _ = started.send(());
                        let _ = release_rx.recv();
                        Ok(())
                    })
                    .await
            }
        });
        started_rx.await.expect("the blocker runs");

        let loaded = store.load(&who).await.expect("load");
        assert_eq!(loaded.map(|v| (v.value.stage, v.version)), Some((Stage::Warning, 1)));
        assert_eq!(store.read_totals(&who, &policy, T0).await.expect("totals"), vec![60_000; 3]);
        assert_eq!(store.used(&who, day).await.expect("used"), 5_000);
        release.send(()).expect("release");
        blocker.await.expect("task").expect("blocker");
    }

    #[tokio::test]
    async fn cached_reads_follow_each_committed_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        let (who, day) = (Uid::parse("follower").expect("uid"), T0.utc_day());
        assert_eq!(store.load(&who).await.expect("load"), None, "an absent user is cached as absent");
        assert_eq!(store.used(&who, day).await.expect("used"), 0);
        let state = EnforcementState { stage: Stage::Throttle, ..EnforcementState::default() };
        store.commit(&who, &state, 0, &[], &[]).await.expect("commit");
        assert_eq!(store.load(&who).await.expect("load").map(|v| v.version), Some(1));
        assert_eq!(store.commit(&who, &state, 0, &[], &[]).await, Err(StoreError::Conflict));
        assert_eq!(
            store.load(&who).await.expect("load").map(|v| v.version),
            Some(1),
            "a refused commit changes nothing"
        );
        assert_eq!(store.add_forwarded(&who, day, 700).await.expect("add"), 700);
        assert_eq!(store.used(&who, day).await.expect("used"), 700);
        assert!(store.note_exhausted_once(&who, day).await.expect("note"));
        assert!(!store.note_exhausted_once(&who, day).await.expect("note"));
        assert_eq!(store.used(&who, day).await.expect("used"), 700, "noting keeps the amount");
    }
}
