//! Schema migrations: ordered SQL files embedded in the binary, recorded in `schema_migrations`
//! inside the store's schema, each applied in its own transaction.
//!
//! Every migration transaction first takes `pg_advisory_xact_lock(MIGRATION_LOCK_CLASS,
//! hashtext(schema))` and then re-reads what is recorded, so replicas starting together apply
//! each migration exactly once (the others wait, then see it recorded) and a replica of an older
//! build refuses a schema a newer build has already moved on.

use std::time::Duration;

use fairuse_domain::error::StoreError;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use crate::error::{Phase, deadline_error, store_error};

struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Ordered migrations. Append only; never edit one that has shipped.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, description: "initial schema", sql: include_str!("../migrations/0001_initial.sql") },
    Migration {
        version: 2,
        description: "stream sessions",
        sql: include_str!("../migrations/0002_stream_sessions.sql"),
    },
    Migration { version: 3, description: "print index", sql: include_str!("../migrations/0003_prints.sql") },
];

/// The newest schema version this build knows.
pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The first key of the advisory lock (ASCII "fu"); the second is a hash of the schema name, so
/// stores in different schemas of one database never wait for each other.
pub(crate) const MIGRATION_LOCK_CLASS: i32 = 0x6675;

/// Migrations may rewrite large tables, which the per-connection statement timeout (meant for
/// request paths) would cut short; they get this much instead, per statement.
const MIGRATION_STATEMENT_TIMEOUT: &str = "600s";
const MIGRATION_CALL_TIMEOUT: Duration = Duration::from_secs(620);

const ACTION: &str = "migrate the database";

pub(crate) async fn run(pool: &PgPool, schema: &str, call_timeout: Duration) -> Result<(), StoreError> {
    let limit = MIGRATION_CALL_TIMEOUT.saturating_add(call_timeout);
    // Phase 1: the schema and the bookkeeping table; refuse a newer database before touching it.
    let applied = bounded(limit, prepare(pool, schema)).await?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        bounded(limit, apply(pool, schema, migration)).await?;
    }
    Ok(())
}

/// The highest recorded version, or `None` if the schema or its bookkeeping table is missing.
pub(crate) async fn recorded_version(
    pool: &PgPool,
    schema: &str,
    call_timeout: Duration,
) -> Result<Option<i64>, StoreError> {
    const READ: &str = "read the schema version";
    let query = async {
        let table = format!("{schema}.schema_migrations");
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(pool)
            .await
            .map_err(|e| store_error(READ, Phase::NoEffect, e))?;
        if !exists {
            return Ok(None);
        }
        // `schema` passed `check_schema_name`: plain lowercase identifier characters only.
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT max(version) FROM {schema}.schema_migrations")))
            .fetch_one(pool)
            .await
            .map_err(|e| store_error(READ, Phase::NoEffect, e))
    };
    match tokio::time::timeout(call_timeout, query).await {
        Ok(result) => result,
        Err(_) => Err(deadline_error(READ, call_timeout, false)),
    }
}

async fn bounded<T>(limit: Duration, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    // A migration that outlives its deadline may be committing: say so.
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| Err(deadline_error(ACTION, limit, true)))
}

/// Starts a transaction with the migration statement timeout and the schema's advisory lock.
async fn locked(pool: &PgPool, schema: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
    let failed = |e| store_error(ACTION, Phase::NoEffect, e);
    let mut tx = pool.begin().await.map_err(failed)?;
    sqlx::query(AssertSqlSafe(format!("SET LOCAL statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'")))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(MIGRATION_LOCK_CLASS)
        .bind(schema)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    Ok(tx)
}

/// The versions recorded so far, after refusing any this build does not know.
async fn applied_versions(tx: &mut Transaction<'static, Postgres>, schema: &str) -> Result<Vec<i64>, StoreError> {
    let applied: Vec<i64> =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT version FROM {schema}.schema_migrations ORDER BY version")))
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| store_error(ACTION, Phase::NoEffect, e))?;
    if let Some(unknown) = applied.iter().find(|v| !MIGRATIONS.iter().any(|m| m.version == **v)) {
        return Err(StoreError::Unavailable(format!(
            "the PostgreSQL schema {schema:?} has migration {unknown}, which this build does not know (it knows \
             up to {LATEST_VERSION}): it was migrated by a newer fairuse; run that version, or restore a backup \
             taken before the upgrade"
        )));
    }
    Ok(applied)
}

async fn prepare(pool: &PgPool, schema: &str) -> Result<Vec<i64>, StoreError> {
    let failed = |e| store_error(ACTION, Phase::NoEffect, e);
    let mut tx = locked(pool, schema).await?;
    // Checked first so that a schema created by an administrator works for a role without the
    // CREATE privilege on the database (CREATE SCHEMA IF NOT EXISTS checks that privilege first).
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?;
    if !exists {
        // `schema` passed `check_schema_name`: plain lowercase identifier characters only.
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut *tx).await.map_err(failed)?;
        tracing::info!(schema, "created the postgresql schema");
    }
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version      BIGINT PRIMARY KEY,
             description  TEXT NOT NULL,
             applied_at   TIMESTAMPTZ NOT NULL DEFAULT now()
         )"
    )))
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let applied = applied_versions(&mut tx, schema).await?;
    tx.commit().await.map_err(|e| store_error(ACTION, Phase::Commit, e))?;
    Ok(applied)
}

async fn apply(pool: &PgPool, schema: &str, migration: &Migration) -> Result<(), StoreError> {
    let Migration { version, description, sql } = *migration;
    let action = format!("apply migration {version} ({description}) to schema {schema}");
    let failed = |e| store_error(&action, Phase::NoEffect, e);
    let mut tx = locked(pool, schema).await?;
    // Another replica may have applied it while we waited for the lock.
    if applied_versions(&mut tx, schema).await?.contains(&version) {
        return Ok(());
    }
    // The migration files use unqualified names: pin them to this schema whatever the connection
    // was configured with.
    sqlx::query(AssertSqlSafe(format!("SET LOCAL search_path TO {schema}"))).execute(&mut *tx).await.map_err(failed)?;
    sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(failed)?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {schema}.schema_migrations (version, description) VALUES ($1, $2)"
    )))
    .bind(version)
    .bind(description)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(|e| store_error(&action, Phase::Commit, e))?;
    tracing::info!(schema, version, description, "applied postgresql migration");
    Ok(())
}
