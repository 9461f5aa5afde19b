//! Process-local state in front of the stores: the last stage read per user, the durable store's
//! circuit breaker, and who was evaluated lately. Each is a cache: losing it costs a store round
//! trip or, during an outage, fails open for a user.

use fairuse_domain::engine::EnforcementState;
use fairuse_domain::ids::Uid;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;

/// The last enforcement state read per user (a bounded process-local cache; losing it only
/// means failing open for that user during an outage).
#[derive(Default)]
pub(super) struct KnownStages(std::sync::Mutex<std::collections::HashMap<Uid, EnforcementState>>);

const KNOWN_STAGES_MAX: usize = 100_000;

impl KnownStages {
    pub(super) fn remember(&self, uid: &Uid, state: &EnforcementState) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if state.stage == Stage::None {
            map.remove(uid); // nothing to enforce: no need to remember
            return;
        }
        if map.len() >= KNOWN_STAGES_MAX && !map.contains_key(uid) {
            map.clear(); // crude but bounded; it refills from the next reads
        }
        map.insert(uid.clone(), state.clone());
    }

    pub(super) fn get(&self, uid: &Uid) -> Option<EnforcementState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(uid).cloned()
    }
}

/// A circuit breaker: after a failure the caller skips the store until `open_until` (a few
/// seconds), then tries again. Decisions meanwhile fail open at once instead of each waiting
/// out a timeout.
#[derive(Default)]
pub(super) struct Breaker(std::sync::atomic::AtomicI64);

/// How long the breaker stays open after a failure.
const BREAKER_OPEN_MS: i64 = 3_000;

impl Breaker {
    pub(super) fn is_open(&self, now: Timestamp) -> bool {
        now.millis() < self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn trip(&self, now: Timestamp) {
        self.0.store(now.millis() + BREAKER_OPEN_MS, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Users this process evaluated within the check interval (a cache: losing it only costs a
/// store round trip).
#[derive(Default)]
pub(super) struct RecentEvaluations(std::sync::Mutex<(std::collections::HashMap<Uid, Timestamp>, usize)>);

impl RecentEvaluations {
    /// True when this process evaluated `uid` less than `interval_ms` before `now`.
    pub(super) fn recently(&self, uid: &Uid, interval_ms: i64, now: Timestamp) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.0.get(uid).is_some_and(|at| now.millis() - at.millis() < interval_ms)
    }

    pub(super) fn note(&self, uid: &Uid, interval_ms: i64, now: Timestamp) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (map, swept) = &mut *guard;
        map.insert(uid.clone(), now);
        // Forget stale entries whenever the map doubles, so it stays bounded by active users.
        if map.len() > 1024 && map.len() > 2 * *swept {
            map.retain(|_, at| now.millis() - at.millis() < interval_ms);
            *swept = map.len();
        }
    }
}
