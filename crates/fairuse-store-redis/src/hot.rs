//! STT budgets, locks and rate limits on Redis.
//!
//! Locks and rate-limit windows follow the caller's `now`, as in every other backend (the lock
//! contract moves `now` forward to expire a lock): the lock's expiry instant is stored in its
//! value and compared inside a script, and the rate-limit window is named by `now / window`.
//! Redis TTLs are set a little longer than that and only collect garbage.

use async_trait::async_trait;
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::store::{BudgetStore, LockStore, RateLimitOutcome, RateLimitStore};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_MINUTE, Timestamp};

use crate::RedisHotStore;
use crate::error::Effect;
use crate::meter::GC_GRACE_MS;

/// A day's budget counter is read during that UTC day only; two days covers any clock skew.
const BUDGET_TTL_MS: i64 = 2 * MS_PER_DAY;

/// Slack on a rate-limit counter's TTL beyond its window, for skew between the replicas' clocks
/// and Redis's. Kept short: rate-limit keys can be numerous (one per client per window).
const RATE_LIMIT_GRACE_MS: i64 = MS_PER_MINUTE;

#[async_trait]
impl BudgetStore for RedisHotStore {
    async fn add_forwarded(&self, uid: &Uid, day: i64, ms: i64) -> Result<i64, StoreError> {
        let keys = [self.layout.stt_budget(uid, day)];
        let args = [ms.to_string(), BUDGET_TTL_MS.to_string()];
        self.conn
            .eval(&self.scripts.budget_add, &keys, &args)
            .await
            .map_err(Self::failed("add forwarded audio to the budget", Effect::Write))
    }

    async fn used(&self, uid: &Uid, day: i64) -> Result<i64, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(self.layout.stt_budget(uid, day));
        let used: Option<i64> = self.conn.query(&get).await.map_err(Self::failed("read the budget", Effect::Read))?;
        Ok(used.unwrap_or(0))
    }

    async fn note_exhausted_once(&self, uid: &Uid, day: i64) -> Result<bool, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.layout.stt_exhausted(uid, day)).arg(1).arg("NX").arg("PX").arg(BUDGET_TTL_MS);
        // SET NX answers OK when it set the key and nil when the key was there.
        let reply: Option<String> =
            self.conn.query(&set).await.map_err(Self::failed("note the exhausted budget", Effect::Write))?;
        Ok(reply.is_some())
    }
}

#[async_trait]
impl LockStore for RedisHotStore {
    async fn try_acquire(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError> {
        let keys = [self.layout.lock(key)];
        let expires_at = now.millis().saturating_add(ttl_ms);
        let gc_ttl = ttl_ms.max(0).saturating_add(GC_GRACE_MS);
        let args = [now.millis().to_string(), expires_at.to_string(), token.to_owned(), gc_ttl.to_string()];
        let acquired: i64 = self
            .conn
            .eval(&self.scripts.lock_acquire, &keys, &args)
            .await
            .map_err(Self::failed("acquire a lock", Effect::Write))?;
        Ok(acquired == 1)
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let keys = [self.layout.lock(key)];
        let args = [token.to_owned()];
        let released: i64 = self
            .conn
            .eval(&self.scripts.lock_release, &keys, &args)
            .await
            .map_err(Self::failed("release a lock", Effect::Write))?;
        Ok(released == 1)
    }

    async fn renew(&self, key: &str, token: &str, ttl_ms: i64, now: Timestamp) -> Result<bool, StoreError> {
        let keys = [self.layout.lock(key)];
        let expires_at = now.millis().saturating_add(ttl_ms);
        let gc_ttl = ttl_ms.max(0).saturating_add(GC_GRACE_MS);
        let args = [now.millis().to_string(), expires_at.to_string(), token.to_owned(), gc_ttl.to_string()];
        let renewed: i64 = self
            .conn
            .eval(&self.scripts.lock_renew, &keys, &args)
            .await
            .map_err(Self::failed("renew a lock", Effect::Write))?;
        Ok(renewed == 1)
    }
}

#[async_trait]
impl RateLimitStore for RedisHotStore {
    async fn hit(&self, key: &str, limit: u32, window_ms: i64, now: Timestamp) -> Result<RateLimitOutcome, StoreError> {
        if window_ms <= 0 {
            return Err(StoreError::Invalid(format!("rate-limit window must be positive, got {window_ms} ms")));
        }
        let window = now.millis().div_euclid(window_ms);
        let keys = [self.layout.rate_limit(key, window)];
        let args = [window_ms.saturating_add(RATE_LIMIT_GRACE_MS).to_string()];
        let count: i64 = self
            .conn
            .eval(&self.scripts.rate_hit, &keys, &args)
            .await
            .map_err(Self::failed("count a rate-limited request", Effect::Write))?;
        let count = u32::try_from(count.max(0)).unwrap_or(u32::MAX);
        let allowed = count <= limit;
        Ok(RateLimitOutcome {
            allowed,
            remaining: limit.saturating_sub(count),
            retry_after_ms: if allowed { 0 } else { (window + 1) * window_ms - now.millis() },
        })
    }
}
