//! fairuse-store-redis: the distributed hot store on Redis 7, standalone or Cluster.
//!
//! [`RedisHotStore`] implements the domain's hot-store ports: `UsageMeterStore` (minute buckets,
//! idempotency keys, session maxima), `BudgetStore` (STT ms per UTC day), `LockStore` and
//! `RateLimitStore` (see `fairuse_domain::store`). Any number of `fairuse serve` replicas can
//! share one Redis.
//!
//! - One round trip per record-and-check: a Lua script records a batch of one user's reports and
//!   returns the outcomes and the capped window totals (`src/lua/record.lua`).
//! - Little work per report, whatever the history: a user's meter is one hash; window totals are
//!   running sums whose edges move with `now`, so a report reads the minutes that left or
//!   entered each window (one per window for a user reporting every minute) and writes with one
//!   HSET; expiry is refreshed once an hour and old minutes are swept by whole hours (see
//!   `src/lua/meter.lua` and `src/lua/record.lua`).
//! - Cluster-safe: every key of one user shares the hash tag `{<prefix>:<uid>}` ([`KeyLayout`]).
//! - Time is the caller's: windows, idempotency, session expiry, lock expiry and rate-limit
//!   windows use the `now` passed in, exactly like the embedded and in-memory stores; Redis TTLs
//!   (a little longer) only collect garbage.
//! - Every command has a timeout, and failures say whether they certainly had no effect
//!   (`StoreError::Unavailable`) or may have (`StoreError::Unknown`); see `error.rs`.
//!
//! This crate implements domain ports only: it must not depend on axum, the server or any other
//! adapter, and holds no policy decisions.
#![forbid(unsafe_code)]

mod conn;
mod error;
mod hot;
mod keys;
mod meter;
mod migrate;
mod scripts;

use std::time::Duration;

use fairuse_domain::error::StoreError;

pub use keys::{KeyLayout, LAYOUT_VERSION, METER_LAYOUT_VERSION};
pub use migrate::{MeterLayoutCheck, MeterMigration};

use crate::conn::Connection;
use crate::error::{Effect, Failure, store_error};
use crate::scripts::Scripts;

/// How to talk to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Starts every key (1-64 characters of `[A-Za-z0-9_.-]`): deployments and tests sharing one
    /// Redis keep apart by it.
    pub key_prefix: String,
    /// The longest any one command may take before it fails (`Unknown` for writes).
    pub command_timeout: Duration,
    /// The longest connecting (or reconnecting) may take.
    pub connect_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: "fairuse".into(),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// The Redis hot store. Cheap to share (`Arc` it); all calls go over one multiplexed connection
/// (standalone) or one connection per cluster node.
pub struct RedisHotStore {
    conn: Connection,
    layout: KeyLayout,
    scripts: Scripts,
}

impl RedisHotStore {
    /// Connects to `redis://host:port[/db]` (standalone) or
    /// `redis+cluster://host1:port,host2:port,...` (Cluster; the hosts are seed nodes).
    ///
    /// Fails with `Invalid` for a bad URL or prefix and `Unavailable` when Redis cannot be
    /// reached within `connect_timeout`. Afterwards the connection is re-established by itself.
    pub async fn connect(url: &str, opts: RedisOptions) -> Result<RedisHotStore, StoreError> {
        let layout = KeyLayout::new(&opts.key_prefix)?;
        let conn = Connection::open(url, opts.command_timeout, opts.connect_timeout).await?;
        Ok(RedisHotStore { conn, layout, scripts: Scripts::new() })
    }

    /// Readiness: one PING within the command timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .query::<redis::Value>(&redis::cmd("PING"))
            .await
            .map(|_| ())
            .map_err(|f| store_error("ping", Effect::Read, f))
    }

    /// The key names this store uses.
    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// Commands sent to Redis by this store since it connected: each is one round trip (a script
    /// runs server-side as one command). For metrics and for tests that count round trips.
    pub fn commands_sent(&self) -> u64 {
        self.conn.commands_sent()
    }

    pub(crate) fn failed(action: &str, effect: Effect) -> impl FnOnce(Failure) -> StoreError + '_ {
        move |failure| store_error(action, effect, failure)
    }
}
