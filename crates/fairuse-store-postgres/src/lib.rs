//! fairuse-store-postgres: the durable store ports of `fairuse-domain` on PostgreSQL 15+, for
//! deployments with several `fairuse serve` replicas sharing one database.
//!
//! [`PostgresStore`] implements [`EnforcementStore`](fairuse_domain::store::EnforcementStore)
//! (versioned state, append-only events, admin queries),
//! [`ConversationStore`](fairuse_domain::store::ConversationStore),
//! [`OutboxStore`](fairuse_domain::store::OutboxStore) and
//! [`JobStore`](fairuse_domain::store::JobStore). Everything lives in one schema (default
//! `fairuse`, set as every connection's `search_path`), created and upgraded by
//! [`PostgresStore::migrate`]. What makes several replicas safe:
//!
//! - `commit` is one transaction whose state write is a compare-and-set on the row's version, so
//!   two replicas acting on the same user cannot both win; the loser writes nothing.
//! - the outbox and the job queue are claimed with `FOR UPDATE SKIP LOCKED` and a lease, so no
//!   two workers take the same row at once.
//! - migrations are serialized by an advisory lock, so replicas may start together.
//!
//! Every connection has a server-side `statement_timeout`, and every call a client-side
//! deadline, so no call waits forever on a lost server. Driver errors become `StoreError`s in one
//! function (`error.rs`), which says whether a failure is certain or may have written.
//!
//! It must not depend on the server, axum, HTTP or Redis crates: it implements the domain's traits
//! and nothing else.
#![forbid(unsafe_code)]

mod enforcement;
mod error;
mod migrate;
mod prints;
mod queues;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fairuse_domain::error::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{Phase, deadline_error, store_error};

pub use crate::migrate::LATEST_VERSION;

/// Connection settings of a [`PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// The schema holding every table; a lowercase SQL identifier (`[a-z_][a-z0-9_]*`, at most 63
    /// bytes, not starting with `pg_`), so it never needs quoting in a `search_path`.
    pub schema: String,
    /// The pool's size per process: each replica opens at most this many connections.
    pub max_connections: u32,
    /// How long a call waits for a pooled connection (including opening one).
    pub acquire_timeout: Duration,
    /// The server-side limit of each statement (`statement_timeout`, whole milliseconds).
    pub statement_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "fairuse";

/// How long a session may sit idle inside a transaction before the server ends it. Our
/// transactions never wait on anything but the database, so only a stuck or partitioned client
/// reaches this; it bounds how long such a client can hold a user's row lock.
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The durable store on PostgreSQL. Cheap to share: wrap it in an `Arc` (or hand out
/// `Arc<dyn Trait>` per port); the pool inside is shared by every call.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    schema: String,
    /// The client-side deadline of one call (one transaction).
    call_timeout: Duration,
}

/// What a call that runs past its deadline may have done.
#[derive(Clone, Copy)]
pub(crate) enum OnTimeout<'a> {
    /// Nothing: it only reads.
    Read,
    /// Possibly written: one autocommit write.
    Write,
    /// Written only if `COMMIT` was already sent, which the call records in the flag.
    Transaction(&'a AtomicBool),
}

impl PostgresStore {
    /// Opens a pool to `url` (`postgres://user:password@host:port/database?...`) and checks that
    /// one connection can be made. Every connection gets `search_path = <schema>`, the statement
    /// timeout and an idle-in-transaction timeout as startup parameters (so they hold for every
    /// statement, including the first, with no extra round trip). Does not create or migrate
    /// anything: call [`PostgresStore::migrate`].
    ///
    /// Startup parameters need a direct connection or a pooler in session mode; a pooler in
    /// transaction mode (PgBouncer's default for many setups) would drop them.
    pub async fn connect(url: &str, opts: PgOptions) -> Result<Self, StoreError> {
        check_schema_name(&opts.schema)?;
        if opts.max_connections == 0 {
            return Err(StoreError::Invalid("max_connections must be at least 1".into()));
        }
        let statement_timeout_ms = opts.statement_timeout.as_millis();
        if statement_timeout_ms == 0 {
            // 0 would mean "no timeout" to PostgreSQL, the opposite of what a caller meant.
            return Err(StoreError::Invalid("statement_timeout must be at least 1 ms".into()));
        }
        // The URL is never put into a message: it may carry a password.
        let connect_options: PgConnectOptions =
            url.parse().map_err(|e| StoreError::Invalid(format!("the PostgreSQL URL is not valid: {e}")))?;
        let connect_options = connect_options.application_name("fairuse").options([
            ("search_path", opts.schema.clone()),
            ("statement_timeout", statement_timeout_ms.to_string()),
            ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT.as_millis().to_string()),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(|e| store_error("connect to PostgreSQL", Phase::NoEffect, e))?;
        // Long enough that the server's statement_timeout answers first for any one statement;
        // the deadline is for a server that stopped answering without the connection noticing.
        let call_timeout = opts.acquire_timeout.saturating_add(opts.statement_timeout.saturating_mul(2));
        tracing::info!(schema = %opts.schema, max_connections = opts.max_connections, "connected to postgresql");
        Ok(PostgresStore { pool, schema: opts.schema, call_timeout })
    }

    /// Creates the schema if needed and applies the migrations this database has not seen, each
    /// in its own transaction under an advisory lock, so several replicas may call it at once.
    /// A database migrated by a newer build (a recorded version this build does not know) is
    /// refused with [`StoreError::Unavailable`] and left untouched.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.pool, &self.schema, self.call_timeout).await
    }

    /// The highest migration recorded in the schema, `None` before the first [`migrate`].
    ///
    /// [`migrate`]: PostgresStore::migrate
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        migrate::recorded_version(&self.pool, &self.schema, self.call_timeout).await
    }

    /// Readiness: a pooled connection answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded("ping PostgreSQL", OnTimeout::Read, async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(|e| store_error("ping PostgreSQL", Phase::NoEffect, e))
        })
        .await
    }

    /// The schema this store uses.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection pool, for diagnostics and tests. Its connections have the store's
    /// `search_path` and timeouts; writing the store's tables through it bypasses the store's
    /// rules (versions, leases), so don't.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for calls in flight. Later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs one call under the client-side deadline.
    pub(crate) async fn bounded<T>(
        &self,
        action: &str,
        on_timeout: OnTimeout<'_>,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(result) => result,
            Err(_) => {
                let sent_write = match on_timeout {
                    OnTimeout::Read => false,
                    OnTimeout::Write => true,
                    OnTimeout::Transaction(committing) => committing.load(Ordering::SeqCst),
                };
                Err(deadline_error(action, self.call_timeout, sent_write))
            }
        }
    }
}

/// Accepts only names that are safe to splice into SQL and into a `search_path` unquoted.
pub(crate) fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    // 63 bytes is PostgreSQL's identifier limit; longer names would be truncated silently.
    if !first_ok || !rest_ok || schema.len() > 63 || schema.starts_with("pg_") {
        return Err(StoreError::Invalid(format!(
            "schema {schema:?} is not a valid name: use 1-63 of [a-z0-9_], starting with a letter or _, not pg_"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["fairuse", "fu_test_0123abcd", "_x", "a1"] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Fairuse", "1abc", "fair-use", "a\"b", "pg_temp", "a b", &"x".repeat(64)] {
            assert!(matches!(check_schema_name(bad), Err(StoreError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn default_options_use_the_fairuse_schema() {
        let opts = PgOptions::default();
        assert_eq!(opts.schema, "fairuse");
        assert!(check_schema_name(&opts.schema).is_ok());
    }
}
