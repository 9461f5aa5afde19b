//! Opening `fairuse.db`: connection settings, the two pools and the schema migrations.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fairuse_domain::error::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};

use crate::error::{Effect, store_error};

/// How long a statement waits for SQLite's own file lock (only an outside process such as a
/// backup tool can hold it, since every write of ours goes through one connection).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a pooled connection; this bounds every call of the store.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Readers run concurrently with the writer in WAL mode.
const READER_CONNECTIONS: u32 = 4;

/// Ordered migrations: (version, description, SQL). Append only; never edit a shipped one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial schema", include_str!("../migrations/0001_initial.sql")),
    (2, "stream sessions", include_str!("../migrations/0002_stream_sessions.sql")),
];

/// The writer pool has exactly one connection, so writes are serialized in process and never
/// meet SQLITE_BUSY from each other; the reader pool serves everything else in parallel.
pub(crate) struct Pools {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

pub(crate) async fn open(db_path: &Path) -> Result<Pools, StoreError> {
    // WAL with synchronous=NORMAL: a commit is appended to the WAL without an fsync. The pages are
    // in the OS page cache once `COMMIT` returns, so a kill -9 (or any crash of this process) loses
    // nothing acknowledged; only an OS crash or power cut may lose the last transactions, and even
    // then the database stays consistent. FULL would fsync on every usage report.
    let options = SqliteConnectOptions::new()
        .filename(db_path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(|e| store_error(&format!("open {}", db_path.display()), Effect::NotApplied, e))?;
    migrate(&writer).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(READER_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.create_if_missing(false))
        .await
        .map_err(|e| store_error(&format!("open {} for reading", db_path.display()), Effect::NotApplied, e))?;
    Ok(Pools { writer, reader })
}

/// Starts a write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so an
/// outside writer makes us wait (busy timeout) at the start instead of failing halfway.
pub(crate) async fn begin(writer: &SqlitePool, action: &str) -> Result<Transaction<'static, Sqlite>, StoreError> {
    writer.begin_with("BEGIN IMMEDIATE").await.map_err(|e| store_error(action, Effect::NotApplied, e))
}

pub(crate) async fn commit(tx: Transaction<'static, Sqlite>, action: &str) -> Result<(), StoreError> {
    tx.commit().await.map_err(|e| store_error(action, Effect::MaybeApplied, e))
}

/// Applies the migrations this database has not seen, each in its own transaction. A database
/// written by a newer build is refused rather than misread.
async fn migrate(writer: &SqlitePool) -> Result<(), StoreError> {
    const ACTION: &str = "migrate the database";
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY NOT NULL,
             description TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .execute(writer)
    .await
    .map_err(|e| store_error(ACTION, Effect::MaybeApplied, e))?;
    let current: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
        .fetch_one(writer)
        .await
        .map_err(|e| store_error(ACTION, Effect::NotApplied, e))?;
    let current = current.unwrap_or(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {current}, newer than this build's {latest}; use a newer fairuse"
        )));
    }
    for &(version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let mut tx = begin(writer, ACTION).await?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| store_error(&format!("apply migration {version} ({description})"), Effect::NotApplied, e))?;
        sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)")
            .bind(version)
            .bind(description)
            .bind(wall_clock_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| store_error(ACTION, Effect::NotApplied, e))?;
        commit(tx, ACTION).await?;
        tracing::info!(version, description, "applied database migration");
    }
    Ok(())
}

/// Only for the `applied_at` column, which is for people reading the database; no decision
/// depends on it, so it does not come from the injected clock.
fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
