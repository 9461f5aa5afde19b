//! The upgrade of the meter layout from `fu1` (a state hash and seven hashes per user) to `fu2`
//! (one hash per user with running window sums, `lua/meter.lua`), run by `fairuse migrate`.
//!
//! Users are found by `SCAN` (on a Cluster, on every master: a cursor does not span nodes), one
//! batch at a time, so memory stays bounded whatever the number of users. Each user is converted
//! by one script (`lua/migrate_fu1.lua`) that declares the user's old and new keys (one hash tag,
//! one slot), writes the new hash and deletes the old keys atomically: a crash leaves every user
//! either converted or untouched, and a re-run converts only what is left. Once a full pass is
//! done a marker key records the layout, so `fairuse serve` checks the upgrade with one GET.
//!
//! There is no conversion on first touch: it would declare the eight old keys on every report,
//! forever, for a one-time upgrade, and idle users would stay invisible to `users_since` and the
//! admin reads until they came back.

use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::policy::Policy;
use fairuse_domain::time::Timestamp;

use crate::RedisHotStore;
use crate::conn::ScanTarget;
use crate::error::{Effect, Failure};
use crate::keys::METER_LAYOUT_VERSION;
use crate::meter::{EXPIRY_REFRESH_MS, GC_GRACE_MS};

/// Keys asked for per `SCAN` call: a hint to Redis, and the bound of one batch in memory.
const SCAN_COUNT: u64 = 1_000;

/// What [`RedisHotStore::migrate_meter_layout`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeterMigration {
    /// Users whose old-layout meter was converted (merged ones included).
    pub users_converted: u64,
    /// Of those, users who already had a new-layout meter: the two were added bucket to bucket.
    pub users_merged: u64,
    /// Old-layout keys deleted.
    pub keys_removed: u64,
    /// Minute fields (capped and per lane) carried into the new layout.
    pub minutes_carried: u64,
    /// Minute fields left below the old meter's horizon (already outside every window, not yet
    /// pruned by the old script) and dropped.
    pub minutes_dropped: u64,
    /// Servers scanned (1 standalone, or the Cluster's masters).
    pub servers_scanned: u64,
}

impl std::fmt::Display for MeterMigration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Redis meter layout {METER_LAYOUT_VERSION}: {} users converted from fu1 ({} merged into an existing meter), ",
            self.users_converted, self.users_merged
        )?;
        write!(
            f,
            "{} old keys removed, {} minute buckets carried over, {} below the horizon dropped ({} servers scanned)",
            self.keys_removed, self.minutes_carried, self.minutes_dropped, self.servers_scanned
        )
    }
}

/// What [`RedisHotStore::check_meter_layout`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterLayoutCheck {
    /// Every meter is in the layout this build reads.
    Current,
    /// At least this user still has an old-layout (`fu1`) meter: `fairuse migrate` has not run
    /// (or an old replica recorded after it ran).
    OldMeters { example: Uid },
    /// The marker names a layout this build does not know (a newer build migrated this Redis).
    Unknown { layout: String },
}

impl RedisHotStore {
    /// Converts every old-layout (`fu1`) meter of this prefix into the current layout, then marks
    /// the layout current. `policy` gives the window lengths whose running sums are stored (as
    /// the next report would) and the retention; `now` is the caller's clock, as for reports.
    ///
    /// Safe to re-run (a converted user has no old key left) and to run while new replicas
    /// serve. Old replicas still running keep writing old keys, which a later run merges.
    pub async fn migrate_meter_layout(&self, policy: &Policy, now: Timestamp) -> Result<MeterMigration, StoreError> {
        let retention = policy.metering.retention.ms();
        let meter_ttl = retention.saturating_add(GC_GRACE_MS).saturating_add(EXPIRY_REFRESH_MS);
        let windows = policy.window_minutes();
        let mut args = Vec::with_capacity(4 + windows.len());
        args.push(now.millis().to_string());
        args.push(retention.to_string());
        args.push(meter_ttl.to_string());
        args.push(windows.len().to_string());
        args.extend(windows.iter().map(i64::to_string));

        let mut done = MeterMigration::default();
        let targets = self.scan_targets("migrate the meter layout").await?;
        done.servers_scanned = targets.len() as u64;
        for target in &targets {
            let mut cursor = 0u64;
            loop {
                let (next, batch) = self.scan_old_meters(target, cursor).await?;
                for key in batch {
                    let Some(uid) = self.layout.uid_of_old_meter_state(&key) else { continue };
                    self.migrate_user(&uid, &args, &mut done).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let mut mark = redis::cmd("SET");
        mark.arg(self.layout.meter_layout_marker()).arg(METER_LAYOUT_VERSION);
        self.conn.query::<()>(&mark).await.map_err(Self::failed("mark the meter layout", Effect::Write))?;
        Ok(done)
    }

    async fn migrate_user(&self, uid: &Uid, args: &[String], done: &mut MeterMigration) -> Result<(), StoreError> {
        let mut keys = vec![self.layout.meter(uid)];
        keys.extend(self.layout.old_meter_keys(uid));
        let action = format!("migrate the meter of {uid}");
        let reply: Vec<i64> = self
            .conn
            .eval(&self.scripts.migrate_fu1, &keys, args)
            .await
            .map_err(Self::failed(&action, Effect::Write))?;
        let [removed, merged, carried, dropped] = reply[..] else {
            let why = format!("{} values, expected 4", reply.len());
            return Err(Self::failed(&action, Effect::Write)(Failure::Reply(why)));
        };
        if removed > 0 {
            done.users_converted += 1;
            done.users_merged += u64::from(merged > 0);
            done.keys_removed += removed as u64;
            done.minutes_carried += carried as u64;
            done.minutes_dropped += dropped as u64;
            tracing::debug!(%uid, removed, merged, carried, dropped, "meter converted to {METER_LAYOUT_VERSION}");
        }
        Ok(())
    }

    /// Whether every meter of this prefix is in the current layout: one GET when `fairuse
    /// migrate` (or an earlier check) wrote the marker. Without the marker it scans for old
    /// meters, stopping at the first, and when there are none (a fresh Redis) writes the marker
    /// itself, so the full scan is paid once.
    pub async fn check_meter_layout(&self) -> Result<MeterLayoutCheck, StoreError> {
        const ACTION: &str = "check the meter layout";
        let mut get = redis::cmd("GET");
        get.arg(self.layout.meter_layout_marker());
        let marker: Option<String> = self.conn.query(&get).await.map_err(Self::failed(ACTION, Effect::Read))?;
        match marker {
            Some(layout) if layout == METER_LAYOUT_VERSION => return Ok(MeterLayoutCheck::Current),
            Some(layout) => return Ok(MeterLayoutCheck::Unknown { layout }),
            None => {}
        }
        for target in &self.scan_targets(ACTION).await? {
            let mut cursor = 0u64;
            loop {
                let (next, batch) = self.scan_old_meters(target, cursor).await?;
                if let Some(example) = batch.iter().find_map(|k| self.layout.uid_of_old_meter_state(k)) {
                    return Ok(MeterLayoutCheck::OldMeters { example });
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let mut mark = redis::cmd("SET");
        mark.arg(self.layout.meter_layout_marker()).arg(METER_LAYOUT_VERSION).arg("NX");
        self.conn.query::<Option<String>>(&mark).await.map_err(Self::failed(ACTION, Effect::Write))?;
        Ok(MeterLayoutCheck::Current)
    }

    async fn scan_targets(&self, action: &str) -> Result<Vec<ScanTarget>, StoreError> {
        self.conn.scan_targets().await.map_err(Self::failed(action, Effect::Read))
    }

    /// One `SCAN` step on `target` for old-layout meter state keys: the next cursor and a batch.
    async fn scan_old_meters(&self, target: &ScanTarget, cursor: u64) -> Result<(u64, Vec<String>), StoreError> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(self.layout.old_meter_state_pattern()).arg("COUNT").arg(SCAN_COUNT);
        let action = format!("scan {target} for old-layout meters");
        self.conn.query_at(target, &scan).await.map_err(Self::failed(&action, Effect::Read))
    }
}
