//! The usage meter on Redis: argument packing for the meter scripts and decoding of their
//! replies. The per-report logic itself lives in `lua/record.lua`, next to the layout it keeps.
//!
//! The admin and status reads (`recovery_at`, `minute_series`, `usage_shape`) fetch the minute
//! buckets they need and hand them to the domain's own functions, so they cannot drift from the
//! domain's definitions.

use async_trait::async_trait;
use fairuse_domain::classifier::UsageShape;
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::UsageMeterStore;
use fairuse_domain::time::{MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{RecordOutcome, SpeechAmount, UsageReport, UserMeter, WindowTotals, recovery_at};

use crate::RedisHotStore;
use crate::error::{Effect, Failure};

/// Hours below the horizon the record script looks at per call, and of those the hours holding
/// speech it deletes (60 minutes x up to 5 fields each). The horizon passes one hour every 60
/// minutes, so in steady state a sweep runs once an hour; a user back after days of silence
/// catches up over a few calls instead of making one call slow. Until then the horizon keeps the
/// stale fields out of every read.
const SWEEP_LOOK_HOURS: i64 = 48;
const SWEEP_ACTIVE_HOURS: i64 = 6;

/// Redis TTLs are the retention plus this, on Redis's clock. The retention itself is applied with
/// the caller's `now`; the grace keeps a skew between the two clocks from dropping a key early.
pub(crate) const GC_GRACE_MS: i64 = MS_PER_HOUR;

/// The record script sets the meter hash's expiry at most once per this much of the caller's
/// clock, and the TTL is this much longer, so the hash still outlives the last report by the
/// retention plus the grace.
pub(crate) const EXPIRY_REFRESH_MS: i64 = MS_PER_HOUR;

/// Rebuilding a meter from buckets must not prune any of them: they were already chosen.
const NO_PRUNING: i64 = i64::MAX;

/// A range end after every possible bucket (Lua reads it as a double; only compared).
const FAR_FUTURE_MINUTE: i64 = 1 << 52;

impl RedisHotStore {
    /// Like [`UsageMeterStore::read_totals`], also returning how many hash fields the script read:
    /// the per-check cost, which depends on how far `now` is from the user's last report (the
    /// minutes the running window sums have to move over), not on the user's activity.
    pub async fn read_totals_with_cost(
        &self,
        uid: &Uid,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(WindowTotals, i64), StoreError> {
        let keys = [self.layout.meter(uid)];
        let windows = policy.window_minutes();
        let mut args = Vec::with_capacity(2 + 2 * windows.len());
        args.push(now.millis().to_string());
        args.push(windows.len().to_string());
        args.extend(windows.iter().map(i64::to_string));
        args.extend(windows.iter().map(|w| now.minute().saturating_sub(*w).to_string()));
        let action = "read window totals";
        let mut reply: Vec<i64> =
            self.conn.eval(&self.scripts.totals, &keys, &args).await.map_err(Self::failed(action, Effect::Read))?;
        if reply.len() != windows.len() + 1 {
            let why = format!("{} values, expected {}", reply.len(), windows.len() + 1);
            return Err(Self::failed(action, Effect::Read)(Failure::Reply(why)));
        }
        let cost = reply.pop().unwrap_or_default();
        Ok((WindowTotals::new(policy, reply), cost))
    }

    /// `(minute, ms)` of one lane (`None`: the capped lanes together) in `lo..=hi`, ascending,
    /// skipping pruned minutes.
    async fn buckets(&self, uid: &Uid, lane: Option<Lane>, lo: i64, hi: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let keys = [self.layout.meter(uid)];
        let args = [lo.to_string(), hi.to_string(), lane.map(lane_letter).unwrap_or_default().to_owned()];
        let action = "read minute buckets";
        let flat: Vec<i64> =
            self.conn.eval(&self.scripts.range, &keys, &args).await.map_err(Self::failed(action, Effect::Read))?;
        if !flat.len().is_multiple_of(2) {
            let why = format!("{} values, expected pairs", flat.len());
            return Err(Self::failed(action, Effect::Read)(Failure::Reply(why)));
        }
        let mut pairs: Vec<(i64, i64)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        pairs.sort_unstable();
        Ok(pairs)
    }

    /// A meter holding the user's capped buckets from `lo` on, all in the realtime lane: the
    /// domain's `recovery_at` and `UsageShape::measure` only ever look at realtime + sync_fresh
    /// merged per minute, so this is the same meter as far as they can tell.
    async fn capped_meter(&self, uid: &Uid, lo: i64, hi: i64, now: Timestamp) -> Result<UserMeter, StoreError> {
        let buckets = self.buckets(uid, None, lo, hi).await?;
        let mut meter = UserMeter::default();
        for (minute, ms) in buckets {
            let at = Timestamp::from_millis(minute.saturating_mul(MS_PER_MINUTE));
            meter.record(&UsageReport { at: Some(at), ..UsageReport::delta(Lane::Realtime, ms) }, NO_PRUNING, now);
        }
        Ok(meter)
    }
}

/// The prefix of a lane's minute fields in the meter hash (`lua/meter.lua`; the record script
/// maps `Lane::index` to the same letters).
fn lane_letter(lane: Lane) -> &'static str {
    match lane {
        Lane::Realtime => "r",
        Lane::SyncFresh => "f",
        Lane::SyncBackfill => "b",
        Lane::CustomStt => "c",
    }
}

/// Appends one report's 9 script arguments (and its idempotency and session keys to `keys`). The
/// minute, hour and day are spelled out here because formatting numbers in the script is a good
/// part of its cost in Redis.
fn pack_report(
    store: &RedisHotStore,
    uid: &Uid,
    report: &UsageReport,
    now: Timestamp,
    keys: &mut Vec<String>,
    args: &mut Vec<String>,
) {
    let (amount, session_key) = match &report.amount {
        SpeechAmount::Delta(ms) => (*ms, 0),
        SpeechAmount::Cumulative { session_id, total_ms } => {
            keys.push(store.layout.session(uid, session_id));
            (*total_ms, keys.len())
        }
    };
    let idempotency_key = match &report.idempotency_key {
        Some(key) => {
            keys.push(store.layout.idempotency(uid, report.lane, key));
            keys.len()
        }
        None => 0,
    };
    args.push(report.lane.index().to_string());
    args.push(if report.lane.is_capped() { "1" } else { "0" }.to_owned());
    args.push(amount.to_string());
    args.push(report.stt_ms.to_string());
    let minute = report.at.unwrap_or(now).minute();
    args.push(minute.to_string());
    args.push(minute.div_euclid(60).to_string());
    args.push(minute.div_euclid(1_440).to_string());
    args.push(idempotency_key.to_string());
    args.push(session_key.to_string());
}

impl RedisHotStore {
    /// Like [`UsageMeterStore::record_and_read`], also returning how many hash fields the script
    /// read: the per-report cost, which for a user reporting every minute is the same whatever
    /// their history.
    pub async fn record_and_read_with_cost(
        &self,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(Vec<RecordOutcome>, WindowTotals, i64), StoreError> {
        let retention = policy.metering.retention.ms();
        let windows = policy.window_minutes();
        let mut keys = vec![self.layout.meter(uid)];
        let gc_ttl = retention.saturating_add(GC_GRACE_MS);
        let mut args = Vec::with_capacity(8 + 2 * windows.len() + 9 * reports.len());
        args.push(now.millis().to_string());
        args.push(retention.to_string());
        args.push(gc_ttl.to_string());
        args.push(gc_ttl.saturating_add(EXPIRY_REFRESH_MS).to_string());
        args.push(EXPIRY_REFRESH_MS.to_string());
        args.push(SWEEP_LOOK_HOURS.to_string());
        args.push(SWEEP_ACTIVE_HOURS.to_string());
        args.push(windows.len().to_string());
        args.extend(windows.iter().map(i64::to_string));
        args.extend(windows.iter().map(|w| now.minute().saturating_sub(*w).to_string()));
        for report in reports {
            pack_report(self, uid, report, now, &mut keys, &mut args);
        }
        let action = "record usage";
        let reply: Vec<i64> =
            self.conn.eval(&self.scripts.record, &keys, &args).await.map_err(Self::failed(action, Effect::Write))?;
        // The write happened; a reply we cannot read leaves the caller not knowing what it did.
        let expected = 3 * reports.len() + windows.len() + 1;
        if reply.len() != expected {
            let why = format!("{} values, expected {expected}", reply.len());
            return Err(Self::failed(action, Effect::Write)(Failure::Reply(why)));
        }
        let (outcomes, rest) = reply.split_at(3 * reports.len());
        let outcomes = outcomes
            .chunks_exact(3)
            .map(|o| RecordOutcome { speech_added_ms: o[0], stt_added_ms: o[1], duplicate: o[2] == 1 })
            .collect();
        Ok((outcomes, WindowTotals::new(policy, rest[..windows.len()].to_vec()), rest[windows.len()]))
    }
}

#[async_trait]
impl UsageMeterStore for RedisHotStore {
    async fn record_and_read(
        &self,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(Vec<RecordOutcome>, WindowTotals), StoreError> {
        self.record_and_read_with_cost(uid, reports, policy, now).await.map(|(outcomes, totals, _)| (outcomes, totals))
    }

    async fn read_totals(&self, uid: &Uid, policy: &Policy, now: Timestamp) -> Result<WindowTotals, StoreError> {
        self.read_totals_with_cost(uid, policy, now).await.map(|(totals, _)| totals)
    }

    async fn recovery_at(
        &self,
        uid: &Uid,
        window_minutes: i64,
        cap_ms: i64,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        // Every bucket that is or will be in the window from now on, future-stamped ones included.
        let lo = now.minute().saturating_sub(window_minutes).saturating_add(1);
        let meter = self.capped_meter(uid, lo, FAR_FUTURE_MINUTE, now).await?;
        Ok(recovery_at(&meter, window_minutes, cap_ms, now))
    }

    async fn minute_series(
        &self,
        uid: &Uid,
        lane: Lane,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        self.buckets(uid, Some(lane), from_minute, to_minute).await
    }

    async fn usage_shape(&self, uid: &Uid, lookback_ms: i64, now: Timestamp) -> Result<UsageShape, StoreError> {
        let hi = now.minute();
        let lo = hi.saturating_sub(lookback_ms / MS_PER_MINUTE).saturating_add(1);
        let meter = self.capped_meter(uid, lo, hi, now).await?;
        Ok(UsageShape::measure(&meter, lookback_ms, now))
    }

    /// Every user's keys share a hash tag, so there is no index across users to keep in the same
    /// round trip as a report: this lists the meter hashes (SCAN on a standalone server; KEYS on a
    /// Cluster, where the client asks every master and joins the answers, since a cursor does not
    /// span nodes) and keeps the users whose newest bucket of any lane (`ma`) is from
    /// `from_minute` on and not below the horizon (buckets below it no longer count).
    async fn users_since(&self, from_minute: i64) -> Result<Vec<Uid>, StoreError> {
        const ACTION: &str = "list users with usage";
        let pattern = self.layout.meter_pattern();
        let keys: Vec<String> = if self.conn.is_cluster() {
            let mut keys = redis::cmd("KEYS");
            keys.arg(&pattern);
            self.conn.query(&keys).await.map_err(Self::failed(ACTION, Effect::Read))?
        } else {
            let (mut all, mut cursor) = (Vec::new(), 0u64);
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
                let (next, batch): (u64, Vec<String>) =
                    self.conn.query(&scan).await.map_err(Self::failed(ACTION, Effect::Read))?;
                all.extend(batch);
                if next == 0 {
                    break all;
                }
                cursor = next;
            }
        };
        let mut uids: Vec<Uid> = keys.iter().filter_map(|k| self.layout.uid_of_meter(k)).collect();
        uids.sort();
        uids.dedup();
        let mut out = Vec::with_capacity(uids.len());
        for uid in uids {
            let keys = [self.layout.meter(&uid)];
            let (horizon, newest): (Option<i64>, Option<i64>) =
                self.conn.eval(&self.scripts.newest, &keys, &[]).await.map_err(Self::failed(ACTION, Effect::Read))?;
            if let (Some(horizon), Some(newest)) = (horizon, newest)
                && newest >= from_minute.max(horizon)
            {
                out.push(uid);
            }
        }
        Ok(out)
    }
}
