//! The usage meter: minute buckets, idempotency keys and session maxima written through to
//! SQLite, with each user's `UserMeter` cached in memory so reads use the domain's window math.
//!
//! SQLite is the source of truth; the cache is a copy that is only trusted while nothing went
//! wrong. A user's cached meter is taken out of its slot for the duration of a write and put back
//! only after the transaction committed, so a failed write, a cancelled call or an unknown outcome
//! leaves the slot empty and the next call reloads the user from SQLite. Loads go through the
//! writer thread, behind every write already queued (a cancelled call's write included), so a
//! reload never misses a write that is still to commit. A batch whose commit fails bumps the
//! cache's epoch, which empties every slot at its next use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use fairuse_domain::classifier::UsageShape;
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::UsageMeterStore;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{RecordOutcome, SpeechAmount, UsageReport, UserMeter, WindowTotals, recovery_at};
use rusqlite::Connection;

use crate::error::{Effect, store_error};
use crate::{EmbeddedStore, prune_sql};

/// SPEC section 3; replaced by the policy's value as soon as a call carries the policy.
const DEFAULT_RETENTION_MS: i64 = 8 * MS_PER_DAY;
/// Cached meters untouched for this long are dropped by `prune` (and reloaded when needed).
const CACHE_IDLE_MS: i64 = MS_PER_HOUR;
/// SQLite is pruned in the background once per this many metered writes.
const PRUNE_EVERY_WRITES: u64 = 4_096;

#[derive(Default)]
struct Slot {
    /// `None` until loaded, and while a write is in flight or after one failed.
    meter: Option<UserMeter>,
    last_used_ms: i64,
    /// The cache's epoch when `meter` was loaded; an older one means the meter may be wrong.
    epoch: u64,
}

/// Per-user meters. The map lock is held only to find a slot; the slot's async lock serializes
/// one user's calls (including the SQLite write) without blocking other users.
pub(crate) struct MeterCache {
    slots: Mutex<HashMap<Uid, Arc<tokio::sync::Mutex<Slot>>>>,
    retention_ms: AtomicI64,
    writes: AtomicU64,
    epoch: AtomicU64,
}

impl Default for MeterCache {
    fn default() -> Self {
        MeterCache {
            slots: Mutex::default(),
            retention_ms: AtomicI64::new(DEFAULT_RETENTION_MS),
            writes: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
        }
    }
}

impl MeterCache {
    fn map(&self) -> MutexGuard<'_, HashMap<Uid, Arc<tokio::sync::Mutex<Slot>>>> {
        // Every critical section is a single map operation, so a panic elsewhere cannot leave the
        // map half-updated: poisoning carries no information here.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, uid: &Uid) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut map = self.map();
        // A known user's slot is found by the borrowed uid: no key is built for it.
        if let Some(slot) = map.get(uid) {
            return Arc::clone(slot);
        }
        Arc::clone(map.entry(uid.clone()).or_default())
    }

    /// Distrusts every cached meter: called when a commit failed, since a meter loaded inside
    /// that batch may have seen writes that are not in the database.
    pub(crate) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The slot's meter if it can be trusted; takes it out of the slot.
    fn take_trusted(&self, slot: &mut Slot) -> Option<UserMeter> {
        let meter = slot.meter.take();
        meter.filter(|_| slot.epoch == self.epoch.load(Ordering::Acquire))
    }

    /// The retention to use where the trait gives no policy (recovery, usage shape).
    fn retention(&self) -> i64 {
        self.retention_ms.load(Ordering::Relaxed)
    }

    fn note_retention(&self, retention_ms: i64) {
        self.retention_ms.store(retention_ms, Ordering::Relaxed);
    }

    /// Drops meters idle since `now - CACHE_IDLE_MS` that nobody is using; returns how many.
    pub(crate) fn evict_idle(&self, now: Timestamp) -> u64 {
        let idle_before = now.millis() - CACHE_IDLE_MS;
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, slot| {
            // Another holder of the Arc is about to use the slot; a busy slot is in use.
            if Arc::strong_count(slot) > 1 {
                return true;
            }
            slot.try_lock().map_or(true, |s| s.last_used_ms >= idle_before)
        });
        (before - map.len()) as u64
    }
}

/// What one recorded (non-duplicate) report changes in SQLite.
struct MeterWrite {
    lane: Lane,
    minute: i64,
    outcome: RecordOutcome,
    key: Option<String>,
    session: Option<(String, i64, i64)>,
}

impl MeterWrite {
    fn of(report: &UsageReport, outcome: RecordOutcome, now: Timestamp) -> Option<MeterWrite> {
        if outcome.duplicate {
            return None;
        }
        let session = match &report.amount {
            SpeechAmount::Delta(_) => None,
            SpeechAmount::Cumulative { session_id, total_ms } => Some((session_id.clone(), *total_ms, report.stt_ms)),
        };
        let write = MeterWrite {
            lane: report.lane,
            minute: report.at.unwrap_or(now).minute(),
            outcome,
            key: report.idempotency_key.clone(),
            session,
        };
        let changes_nothing = write.outcome.speech_added_ms == 0 && write.key.is_none() && write.session.is_none();
        (!changes_nothing).then_some(write)
    }
}

/// Writes the rows of one `record_and_read` call; the writer commits them with its batch.
fn persist(
    conn: &Connection,
    uid: &str,
    writes: &[MeterWrite],
    retention_ms: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    const ACTION: &str = "record usage";
    let failed = |e| store_error(ACTION, Effect::NotApplied, e);
    for w in writes {
        if let Some(key) = &w.key {
            // A key seen again after the retention period counts again, from now: overwrite.
            conn.prepare_cached(
                "INSERT INTO meter_idempotency (uid, lane, key, seen_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (uid, lane, key) DO UPDATE SET seen_at = excluded.seen_at",
            )
            .and_then(|mut s| s.execute(rusqlite::params![uid, w.lane.as_str(), key, now.millis()]))
            .map_err(failed)?;
        }
        if let Some((session_id, total_ms, stt_ms)) = &w.session {
            // The meter's rule: a session silent for the whole retention period starts again from
            // zero; otherwise its maxima only grow.
            conn.prepare_cached(
                "INSERT INTO meter_sessions (uid, session_id, speech_max, stt_max, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (uid, session_id) DO UPDATE SET
                     speech_max = CASE WHEN excluded.last_seen - last_seen >= ?6 THEN excluded.speech_max
                                       ELSE max(speech_max, excluded.speech_max) END,
                     stt_max = CASE WHEN excluded.last_seen - last_seen >= ?6 THEN excluded.stt_max
                                    ELSE max(stt_max, excluded.stt_max) END,
                     last_seen = excluded.last_seen",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![uid, session_id, total_ms, stt_ms, now.millis(), retention_ms])
            })
            .map_err(failed)?;
        }
        if w.outcome.speech_added_ms > 0 {
            conn.prepare_cached(
                "INSERT INTO meter_buckets (uid, lane, minute, ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (uid, lane, minute) DO UPDATE SET ms = ms + excluded.ms",
            )
            .and_then(|mut s| s.execute(rusqlite::params![uid, w.lane.as_str(), w.minute, w.outcome.speech_added_ms]))
            .map_err(failed)?;
        }
    }
    Ok(())
}

/// Rows of one user as stored.
#[derive(Debug, Default)]
struct StoredMeter {
    /// (lane, key, first seen ms)
    keys: Vec<(Lane, String, i64)>,
    /// (session id, largest speech total, largest stt total, last seen ms)
    sessions: Vec<(String, i64, i64, i64)>,
    /// (lane, minute, ms)
    buckets: Vec<(Lane, i64, i64)>,
}

fn parse_lane(text: &str) -> Result<Lane, StoreError> {
    Lane::parse(text).map_err(|e| StoreError::Unavailable(format!("stored meter row has a bad lane: {e}")))
}

fn load(conn: &Connection, uid: &str, retention_ms: i64, now: Timestamp) -> Result<StoredMeter, StoreError> {
    let failed = |e| store_error("load usage", Effect::NotApplied, e);
    let oldest_minute = now.minute() - retention_ms / MS_PER_MINUTE + 1;
    let cutoff = now.millis() - retention_ms;
    let keys: Vec<(String, String, i64)> = conn
        .prepare_cached("SELECT lane, key, seen_at FROM meter_idempotency WHERE uid = ?1 AND seen_at > ?2")
        .and_then(|mut s| {
            s.query_map(rusqlite::params![uid, cutoff], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
        })
        .map_err(failed)?;
    let sessions: Vec<(String, i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT session_id, speech_max, stt_max, last_seen FROM meter_sessions WHERE uid = ?1 AND last_seen > ?2",
        )
        .and_then(|mut s| {
            s.query_map(rusqlite::params![uid, cutoff], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect()
        })
        .map_err(failed)?;
    let buckets: Vec<(String, i64, i64)> = conn
        .prepare_cached("SELECT lane, minute, ms FROM meter_buckets WHERE uid = ?1 AND minute >= ?2")
        .and_then(|mut s| {
            s.query_map(rusqlite::params![uid, oldest_minute], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
        })
        .map_err(failed)?;
    Ok(StoredMeter {
        keys: keys.into_iter().map(|(l, k, t)| Ok((parse_lane(&l)?, k, t))).collect::<Result<_, StoreError>>()?,
        sessions,
        buckets: buckets
            .into_iter()
            .map(|(l, m, ms)| Ok((parse_lane(&l)?, m, ms)))
            .collect::<Result<_, StoreError>>()?,
    })
}

/// Rebuilds a `UserMeter` from its rows through the meter's public `record`, so the cache holds
/// exactly what the domain would have built from the original reports:
/// - a key is replayed as an empty report with that key, at the instant it was first seen;
/// - a session is replayed as a cumulative report at its last-seen instant, stamped a day older
///   than the retention period so its speech lands in a bucket the same call prunes (the session
///   total must not be counted again: its increases are already in the buckets);
/// - buckets are replayed as deltas at their minute.
///
/// Keys and sessions go first, in time order, while there are no buckets the replays could prune.
fn rebuild(stored: StoredMeter, retention_ms: i64, now: Timestamp) -> UserMeter {
    enum Replay {
        Key(Lane, String),
        Session(String, i64, i64),
    }
    let mut replays: Vec<(i64, Replay)> = stored
        .keys
        .into_iter()
        .map(|(lane, key, seen)| (seen, Replay::Key(lane, key)))
        .chain(stored.sessions.into_iter().map(|(id, speech, stt, seen)| (seen, Replay::Session(id, speech, stt))))
        .collect();
    replays.sort_by_key(|(at, _)| *at);
    let mut meter = UserMeter::default();
    for (at, replay) in replays {
        let at = Timestamp::from_millis(at);
        let report = match replay {
            Replay::Key(lane, key) => UsageReport { idempotency_key: Some(key), ..UsageReport::delta(lane, 0) },
            Replay::Session(session_id, total_ms, stt_ms) => UsageReport {
                // Custom STT is never capped, shaped or charted from the cache: even if the pruning
                // rule changed, this bucket could not reach any answer of this store.
                lane: Lane::CustomStt,
                amount: SpeechAmount::Cumulative { session_id, total_ms },
                at: Some(at.minus_ms(retention_ms + MS_PER_DAY)),
                idempotency_key: None,
                stt_ms,
            },
        };
        meter.record(&report, retention_ms, at);
    }
    let mut buckets = stored.buckets;
    buckets.sort_unstable();
    for (lane, minute, ms) in buckets {
        let at = Timestamp::from_millis(minute * MS_PER_MINUTE);
        meter.record(&UsageReport { at: Some(at), ..UsageReport::delta(lane, ms) }, retention_ms, now);
    }
    meter
}

impl EmbeddedStore {
    /// Loads a user's meter through the writer thread: see the module docs for why not a reader.
    async fn load_meter(&self, uid: &Uid, retention_ms: i64, now: Timestamp) -> Result<(UserMeter, u64), StoreError> {
        // Read before the load is queued: a failure after this point bumps it, so a meter that
        // might have seen an uncommitted write is never trusted.
        let epoch = self.meters.epoch.load(Ordering::Acquire);
        let owned = uid.as_str().to_owned();
        let stored = self.writer.write("load usage", move |conn| load(conn, &owned, retention_ms, now)).await?;
        Ok((rebuild(stored, retention_ms, now), epoch))
    }

    /// Runs `read` on the user's meter, loading it first if it is not cached.
    async fn with_meter<T>(
        &self,
        uid: &Uid,
        retention_ms: i64,
        now: Timestamp,
        read: impl FnOnce(&UserMeter) -> T,
    ) -> Result<T, StoreError> {
        let slot = self.meters.slot(uid);
        let mut slot = slot.lock().await;
        slot.last_used_ms = now.millis();
        let meter = match self.meters.take_trusted(&mut slot) {
            Some(meter) => meter,
            None => {
                let (meter, epoch) = self.load_meter(uid, retention_ms, now).await?;
                slot.epoch = epoch;
                meter
            }
        };
        let answer = read(&meter);
        slot.meter = Some(meter);
        Ok(answer)
    }

    fn count_write_and_maybe_prune(&self, now: Timestamp, retention_ms: i64) {
        let n = self.meters.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(PRUNE_EVERY_WRITES) {
            return;
        }
        // The caches are pruned here too (a short pass over two maps), so memory stays bounded
        // even if the service never calls `prune`. SQLite is pruned in the background so no report
        // waits for it: its deletes queue behind the reports as write requests of their own.
        let evicted = self.meters.evict_idle(now) + self.states.evict_idle() + self.budgets.evict_old(now);
        let ended = self.rates.prune(now);
        tracing::debug!(evicted, ended, "pruned the caches and rate windows");
        let writer = Arc::clone(&self.writer);
        tokio::spawn(async move {
            match prune_sql(&writer, now, retention_ms).await {
                Ok(report) => tracing::debug!(?report, "pruned the usage meter"),
                Err(error) => tracing::warn!(%error, "pruning the usage meter failed; will retry later"),
            }
        });
    }
}

#[async_trait]
impl UsageMeterStore for EmbeddedStore {
    async fn record_and_read(
        &self,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(Vec<RecordOutcome>, WindowTotals), StoreError> {
        let retention_ms = policy.metering.retention.ms();
        self.meters.note_retention(retention_ms);
        let slot = self.meters.slot(uid);
        let mut slot = slot.lock().await;
        slot.last_used_ms = now.millis();
        // Taken out of the slot until the commit: see the module docs.
        let mut meter = match self.meters.take_trusted(&mut slot) {
            Some(meter) => meter,
            None => {
                let (meter, epoch) = self.load_meter(uid, retention_ms, now).await?;
                slot.epoch = epoch;
                meter
            }
        };
        let mut outcomes = Vec::with_capacity(reports.len());
        let mut writes = Vec::new();
        for report in reports {
            let outcome = meter.record(report, retention_ms, now);
            writes.extend(MeterWrite::of(report, outcome, now));
            outcomes.push(outcome);
        }
        let wrote = !writes.is_empty();
        if wrote {
            let owned = uid.as_str().to_owned();
            self.writer.write("record usage", move |conn| persist(conn, &owned, &writes, retention_ms, now)).await?;
        }
        let totals = meter.capped_totals(policy, now);
        slot.meter = Some(meter);
        drop(slot);
        if wrote {
            self.count_write_and_maybe_prune(now, retention_ms);
        }
        Ok((outcomes, totals))
    }

    async fn read_totals(&self, uid: &Uid, policy: &Policy, now: Timestamp) -> Result<WindowTotals, StoreError> {
        let retention_ms = policy.metering.retention.ms();
        self.meters.note_retention(retention_ms);
        self.with_meter(uid, retention_ms, now, |m| m.capped_totals(policy, now)).await
    }

    async fn recovery_at(
        &self,
        uid: &Uid,
        window_minutes: i64,
        cap_ms: i64,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.with_meter(uid, self.meters.retention(), now, |m| recovery_at(m, window_minutes, cap_ms, now)).await
    }

    /// Served from SQLite: charts are not on the hot path, and SQLite is never behind the cache.
    async fn minute_series(
        &self,
        uid: &Uid,
        lane: Lane,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let uid = uid.as_str().to_owned();
        self.readers
            .read("read the minute series", move |conn| {
                conn.prepare_cached(
                    "SELECT minute, ms FROM meter_buckets WHERE uid = ?1 AND lane = ?2 AND minute BETWEEN ?3 AND ?4
                     ORDER BY minute",
                )?
                .query_map(rusqlite::params![uid, lane.as_str(), from_minute, to_minute], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .await
    }

    async fn usage_shape(&self, uid: &Uid, lookback_ms: i64, now: Timestamp) -> Result<UsageShape, StoreError> {
        self.with_meter(uid, self.meters.retention(), now, |m| UsageShape::measure(m, lookback_ms, now)).await
    }

    async fn users_since(&self, from_minute: i64) -> Result<Vec<Uid>, StoreError> {
        let rows: Vec<String> = self
            .readers
            .read("list users with usage", move |conn| {
                conn.prepare_cached(
                    "SELECT DISTINCT uid FROM meter_buckets WHERE minute >= ?1 AND ms <> 0 ORDER BY uid",
                )?
                .query_map([from_minute], |r| r.get(0))?
                .collect()
            })
            .await?;
        rows.iter().map(|u| Uid::parse(u).map_err(|e| StoreError::Invalid(format!("stored uid {u:?}: {e}")))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETENTION: i64 = 8 * MS_PER_DAY;
    const T0: Timestamp = Timestamp::from_millis(1_773_964_800_000);

    fn cumulative(session_id: &str, total_ms: i64, stt_ms: i64) -> UsageReport {
        UsageReport {
            lane: Lane::Realtime,
            amount: SpeechAmount::Cumulative { session_id: session_id.into(), total_ms },
            at: None,
            idempotency_key: None,
            stt_ms,
        }
    }

    #[test]
    fn a_rebuilt_meter_answers_like_the_original() {
        let policy = Policy::default();
        let now = T0.plus_ms(3 * MS_PER_DAY);
        let mut original = UserMeter::default();
        let keyed = UsageReport { idempotency_key: Some("k".into()), ..UsageReport::delta(Lane::SyncFresh, 5_000) };
        original.record(&keyed, RETENTION, now.minus_ms(MS_PER_HOUR));
        original.record(&cumulative("s", 60_000, 70_000), RETENTION, now.minus_ms(2 * MS_PER_HOUR));
        let old = UsageReport { at: Some(now.minus_ms(2 * MS_PER_DAY)), ..UsageReport::delta(Lane::Realtime, 9_000) };
        original.record(&old, RETENTION, now);

        let stored = StoredMeter {
            keys: vec![(Lane::SyncFresh, "k".into(), now.minus_ms(MS_PER_HOUR).millis())],
            sessions: vec![("s".into(), 60_000, 70_000, now.minus_ms(2 * MS_PER_HOUR).millis())],
            buckets: vec![
                (Lane::SyncFresh, now.minus_ms(MS_PER_HOUR).minute(), 5_000),
                (Lane::Realtime, now.minus_ms(2 * MS_PER_HOUR).minute(), 60_000),
                (Lane::Realtime, now.minus_ms(2 * MS_PER_DAY).minute(), 9_000),
            ],
        };
        let mut rebuilt = rebuild(stored, RETENTION, now);
        assert_eq!(rebuilt.capped_totals(&policy, now), original.capped_totals(&policy, now));
        for lane in Lane::ALL {
            let a: Vec<_> = rebuilt.lane(lane).minutes().collect();
            let b: Vec<_> = original.lane(lane).minutes().collect();
            assert_eq!(a, b, "lane {} (the session replay leaves no bucket behind)", lane.as_str());
        }
        for r in [keyed.clone(), cumulative("s", 90_000, 80_000), cumulative("s", 10_000, 0)] {
            assert_eq!(rebuilt.record(&r, RETENTION, now), original.record(&r, RETENTION, now), "{r:?}");
        }
    }
}
