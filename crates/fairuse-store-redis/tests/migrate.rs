//! The meter layout upgrade (`RedisHotStore::migrate_meter_layout`, run by `fairuse migrate`)
//! against real Redis servers: meters written by the OLD code (the fu1 record script, kept as a
//! fixture in `tests/fu1/`, with the old key names spelled out here rather than taken from the
//! crate), then converted, then read by the new store, which must answer exactly as the domain's
//! `UserMeter` fed the same reports (and as the old store did before the upgrade).
//!
//! Servers: a standalone Redis on 127.0.0.1:6379 and a three-master Redis Cluster on
//! 127.0.0.1:7001-7003 (`scripts/cluster.sh start`), as for `tests/contract.rs`. Every test uses
//! its own key prefix and deletes its keys when it passes.

mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fairuse_domain::classifier::UsageShape;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::UsageMeterStore;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{RecordOutcome, SpeechAmount, UsageReport, UserMeter, WindowTotals, recovery_at};
use fairuse_store_redis::{MeterLayoutCheck, MeterMigration, RedisHotStore, RedisOptions};
use redis::AsyncCommands;
use redis::aio::ConnectionLike;
use traffic::{Rng, random_report};

const STANDALONE: &str = "127.0.0.1:6379";
const STANDALONE_URL: &str = "redis://127.0.0.1:6379";
const CLUSTER_NODES: [&str; 3] = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
const CLUSTER_URL: &str = "redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";
const STANDALONE_DOWN: &str = "Redis is not reachable on 127.0.0.1:6379; start it with: \
     redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no";
const CLUSTER_DOWN: &str = "the Redis Cluster is not reachable on 127.0.0.1:7001-7003; start it with: \
     bash crates/fairuse-store-redis/scripts/cluster.sh start";

/// 2026-03-20T00:00:00Z, a UTC midnight.
const T0: Timestamp = Timestamp::from_millis(1_773_964_800_000);

// ---------------------------------------------------------------------------------------------
// The old layout, written and read by the old scripts.

/// The fu1 meter: the old record and totals scripts, and the key names the old `KeyLayout`
/// built (state, capped minutes/hours/days, one minute hash per lane in `Lane::ALL` order).
struct OldMeter {
    prefix: String,
    record: redis::Script,
    totals: redis::Script,
}

impl OldMeter {
    fn new(prefix: &str) -> OldMeter {
        OldMeter {
            prefix: prefix.to_owned(),
            record: redis::Script::new(concat!(include_str!("fu1/windows.lua"), include_str!("fu1/record.lua"))),
            totals: redis::Script::new(concat!(include_str!("fu1/windows.lua"), include_str!("fu1/totals.lua"))),
        }
    }

    fn key(&self, uid: &Uid, rest: &str) -> String {
        format!("{{{}:{}}}:fu1:{rest}", self.prefix, uid.as_str())
    }

    fn meter_keys(&self, uid: &Uid) -> Vec<String> {
        let mut keys = vec![
            self.key(uid, "meter"),
            self.key(uid, "capped:m"),
            self.key(uid, "capped:h"),
            self.key(uid, "capped:d"),
        ];
        keys.extend(
            ["realtime", "sync_fresh", "sync_backfill", "custom_stt"].map(|l| self.key(uid, &format!("lane:{l}"))),
        );
        keys
    }

    /// The old `record_and_read`: outcomes and capped totals. The window plan argument is `0`,
    /// which makes the old script cut the windows itself (its fallback path, same totals).
    async fn record(
        &self,
        conn: &mut impl ConnectionLike,
        uid: &Uid,
        reports: &[UsageReport],
        policy: &Policy,
        now: Timestamp,
    ) -> (Vec<RecordOutcome>, WindowTotals) {
        let retention = policy.metering.retention.ms();
        let windows = policy.window_minutes();
        let mut keys = self.meter_keys(uid);
        let mut args = vec![
            now.millis().to_string(),
            retention.to_string(),
            (retention + MS_PER_HOUR).to_string(),
            "360".to_owned(),
            windows.len().to_string(),
        ];
        args.extend(windows.iter().map(i64::to_string));
        args.push("0".to_owned());
        for report in reports {
            let (amount, session) = match &report.amount {
                SpeechAmount::Delta(ms) => (*ms, 0),
                SpeechAmount::Cumulative { session_id, total_ms } => {
                    keys.push(self.key(uid, &format!("session:{session_id}")));
                    (*total_ms, keys.len())
                }
            };
            let idempotency = match &report.idempotency_key {
                Some(key) => {
                    keys.push(self.key(uid, &format!("idem:{}:{key}", report.lane.as_str())));
                    keys.len()
                }
                None => 0,
            };
            args.push((5 + report.lane.index()).to_string());
            args.push(if report.lane.is_capped() { "1" } else { "0" }.to_owned());
            args.push(amount.to_string());
            args.push(report.stt_ms.to_string());
            args.push(report.at.map(|at| at.minute().to_string()).unwrap_or_default());
            args.push(idempotency.to_string());
            args.push(session.to_string());
        }
        let mut invocation = self.record.prepare_invoke();
        invocation.key(keys).arg(args);
        let reply: Vec<i64> = invocation.invoke_async(conn).await.expect("the old record script runs");
        let (outcomes, rest) = reply.split_at(3 * reports.len());
        let outcomes = outcomes
            .chunks_exact(3)
            .map(|o| RecordOutcome { speech_added_ms: o[0], stt_added_ms: o[1], duplicate: o[2] == 1 })
            .collect();
        (outcomes, WindowTotals::new(policy, rest[..windows.len()].to_vec()))
    }

    /// The old `read_totals`.
    async fn totals(&self, conn: &mut impl ConnectionLike, uid: &Uid, policy: &Policy, now: Timestamp) -> WindowTotals {
        let windows = policy.window_minutes();
        let mut args = vec![now.millis().to_string(), windows.len().to_string()];
        args.extend(windows.iter().map(i64::to_string));
        args.push("0".to_owned());
        let mut invocation = self.totals.prepare_invoke();
        invocation.key(&self.meter_keys(uid)[..4]).arg(args);
        let mut reply: Vec<i64> = invocation.invoke_async(conn).await.expect("the old totals script runs");
        reply.pop();
        WindowTotals::new(policy, reply)
    }
}

// ---------------------------------------------------------------------------------------------
// Servers and keys (as in tests/contract.rs).

fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("m{}-{:x}-{}-{tag}", std::process::id(), nanos, NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn store(url: &str, down: &str, prefix: &str) -> RedisHotStore {
    let opts = RedisOptions {
        key_prefix: prefix.to_owned(),
        command_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    };
    RedisHotStore::connect(url, opts).await.unwrap_or_else(|e| panic!("{down}\n(connect failed: {e})"))
}

async fn node(addr: &str, down: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}")).expect("a valid url");
    match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("{down}\n(connect to {addr} failed: {e})"),
        Err(_) => panic!("{down}\n(connect to {addr} timed out)"),
    }
}

async fn cluster_conn() -> redis::cluster_async::ClusterConnection {
    let nodes: Vec<String> = CLUSTER_NODES.iter().map(|a| format!("redis://{a}")).collect();
    let client = redis::cluster::ClusterClient::new(nodes).expect("cluster client");
    client.get_async_connection().await.unwrap_or_else(|e| panic!("{CLUSTER_DOWN}\n({e})"))
}

async fn keys_with(addr: &str, down: &str, pattern: &str) -> Vec<String> {
    let mut conn = node(addr, down).await;
    let (mut found, mut cursor) = (Vec::new(), 0u64);
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        found.extend(batch);
        if next == 0 {
            found.sort();
            return found;
        }
        cursor = next;
    }
}

/// The old-layout meter keys (not idempotency, session or budget keys) of `prefix` on `addrs`.
async fn old_meter_keys(addrs: &[&str], down: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for addr in addrs {
        for key in keys_with(addr, down, &format!("*{prefix}*:fu1:*")).await {
            let kind = key.rsplit("}:fu1:").next().unwrap_or_default();
            if kind == "meter" || kind.starts_with("capped:") || kind.starts_with("lane:") {
                out.push(key);
            }
        }
    }
    out
}

async fn purge(addrs: &[&str], down: &str, prefix: &str) {
    for addr in addrs {
        let mut conn = node(addr, down).await;
        for key in keys_with(addr, down, &format!("*{prefix}*")).await {
            let _: () = conn.del(&key).await.expect("DEL");
        }
    }
}

fn uid(prefix: &str, name: &str) -> Uid {
    Uid::parse(&format!("{prefix}.{name}")).expect("a valid uid")
}

// ---------------------------------------------------------------------------------------------
// Traffic.

/// The next `now`: mostly minutes apart, sometimes hours or days (the old horizon then jumps
/// ahead of its lazy pruning, leaving stale buckets below it).
fn advance(rng: &mut Rng, now: Timestamp) -> Timestamp {
    now.plus_ms(match rng.range(0, 20) {
        0 => rng.range(1, 4) * MS_PER_DAY + rng.range(0, MS_PER_DAY),
        1..=3 => rng.range(1, 600) * MS_PER_MINUTE,
        _ => rng.range(0, 3 * MS_PER_MINUTE),
    })
}

/// Every read of the meter port at `now` and around it, against the model.
async fn assert_reads_match(
    store: &RedisHotStore,
    user: &Uid,
    model: &UserMeter,
    policy: &Policy,
    now: Timestamp,
    what: &str,
) {
    let retention = policy.metering.retention.ms();
    for offset in
        [-90 * MS_PER_MINUTE, -MS_PER_MINUTE, 0, MS_PER_MINUTE, 59 * MS_PER_MINUTE, MS_PER_DAY, 7 * MS_PER_DAY]
    {
        let at = now.plus_ms(offset);
        let totals = store.read_totals(user, policy, at).await.expect("read_totals");
        assert_eq!(totals, model.capped_totals(policy, at), "{what}: window totals at now {offset:+} ms");
    }
    for lane in Lane::ALL {
        let from = now.minute() - retention / MS_PER_MINUTE - 10;
        let series = store.minute_series(user, lane, from, now.minute() + 10).await.expect("minute_series");
        let want: Vec<(i64, i64)> = model.lane(lane).minutes().filter(|&(m, _)| m >= from).collect();
        assert_eq!(series, want, "{what}: minute buckets of {lane:?}");
    }
    for (window, cap) in [(1_440, 3_600_000), (10_080, 7_200_000), (60, 60_000)] {
        let got = store.recovery_at(user, window, cap, now).await.expect("recovery_at");
        assert_eq!(got, recovery_at(model, window, cap, now), "{what}: recovery_at({window}, {cap})");
    }
    for lookback in [MS_PER_DAY, retention] {
        let shape = store.usage_shape(user, lookback, now).await.expect("usage_shape");
        assert_eq!(shape, UsageShape::measure(model, lookback, now), "{what}: usage_shape({lookback})");
    }
}

/// A run of random traffic: its seed, its number of batches and where its clock starts.
struct Traffic {
    seed: u64,
    steps: usize,
    from: Timestamp,
}

/// Feeds a run of random batches to the old meter and to the model; returns the last `now`.
async fn old_traffic(
    old: &OldMeter,
    conn: &mut impl ConnectionLike,
    user: &Uid,
    model: &mut UserMeter,
    policy: &Policy,
    Traffic { seed, steps, from }: Traffic,
) -> Timestamp {
    let mut now = from;
    let retention = policy.metering.retention.ms();
    let mut rng = Rng(seed);
    let mut sessions = BTreeMap::new();
    for step in 0..steps {
        now = advance(&mut rng, now);
        let batch: Vec<UsageReport> =
            (0..rng.range(0, 6)).map(|_| random_report(&mut rng, policy, now, &mut sessions)).collect();
        let (outcomes, totals) = old.record(conn, user, &batch, policy, now).await;
        let want: Vec<_> = batch.iter().map(|r| model.record(r, retention, now)).collect();
        // The fixture is the old store: it must agree with the domain, or the test proves nothing.
        assert_eq!(outcomes, want, "step {step}: the old script's outcomes");
        assert_eq!(totals, model.capped_totals(policy, now), "step {step}: the old script's totals");
    }
    now
}

fn nothing_done(servers: u64) -> MeterMigration {
    MeterMigration { servers_scanned: servers, ..MeterMigration::default() }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn old_meters_are_converted_to_the_new_layout_with_the_same_answers_as_the_domain() {
    let prefix = unique("convert");
    let other_prefix = unique("other");
    let store = store(STANDALONE_URL, STANDALONE_DOWN, &prefix).await;
    let mut conn = node(STANDALONE, STANDALONE_DOWN).await;
    let policy = Policy::default();
    let retention = policy.metering.retention.ms();
    let old = OldMeter::new(&prefix);

    // An old-layout user with three weeks of random traffic, one user already on the new layout,
    // and an old-layout user of another deployment (prefix) on the same Redis.
    let user = uid(&prefix, "old");
    let mut model = UserMeter::default();
    let now = old_traffic(
        &old,
        &mut conn,
        &user,
        &mut model,
        &policy,
        Traffic { seed: 0x5EED_0001, steps: 400, from: T0.plus_ms(37_000) },
    )
    .await;
    assert_eq!(old.totals(&mut conn, &user, &policy, now).await, model.capped_totals(&policy, now));
    let old_keys = old_meter_keys(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
    assert_eq!(old_keys.len(), 8, "every old meter key of the user exists before: {old_keys:?}");
    let state: BTreeMap<String, i64> = conn.hgetall(&old.meter_keys(&user)[0]).await.expect("HGETALL");
    let stale: Vec<i64> = conn
        .hkeys::<_, Vec<i64>>(&old.meter_keys(&user)[1])
        .await
        .expect("HKEYS")
        .into_iter()
        .filter(|&m| m < state["hz"])
        .collect();
    assert!(!stale.is_empty(), "the traffic left buckets below the old horizon (the retention test needs them)");
    let old_ttl: i64 = conn.pttl(&old.meter_keys(&user)[0]).await.expect("PTTL");

    let newcomer = uid(&prefix, "new");
    let mut newcomer_model = UserMeter::default();
    let report = UsageReport::delta(Lane::Realtime, 42_000);
    store.record_and_read(&newcomer, std::slice::from_ref(&report), &policy, now).await.expect("record");
    newcomer_model.record(&report, retention, now);
    let newcomer_before: BTreeMap<String, Vec<u8>> =
        conn.hgetall(store.layout().meter(&newcomer)).await.expect("HGETALL");

    let other = OldMeter::new(&other_prefix);
    let stranger = uid(&other_prefix, "stranger");
    other.record(&mut conn, &stranger, &[UsageReport::delta(Lane::Realtime, 5_000)], &policy, now).await;

    // The upgrade.
    let done = store.migrate_meter_layout(&policy, now).await.expect("migrate");
    assert_eq!(done.users_converted, 1, "{done}");
    assert_eq!(done.users_merged, 0, "{done}");
    assert_eq!(done.keys_removed, 8, "{done}");
    assert!(done.minutes_dropped as usize >= stale.len(), "{} stale capped buckets dropped: {done}", stale.len());
    assert!(done.minutes_carried > 0, "{done}");
    assert_eq!(
        old_meter_keys(&[STANDALONE], STANDALONE_DOWN, &prefix).await,
        Vec::<String>::new(),
        "no old meter key is left"
    );
    assert_eq!(
        old_meter_keys(&[STANDALONE], STANDALONE_DOWN, &other_prefix).await.len(),
        5,
        "another prefix's old meter (state, capped minutes, hours, days, realtime) is not touched"
    );
    let newcomer_after: BTreeMap<String, Vec<u8>> =
        conn.hgetall(store.layout().meter(&newcomer)).await.expect("HGETALL");
    assert_eq!(newcomer_after, newcomer_before, "a user already on the new layout is not touched");

    // Nothing below the old horizon was carried over, and the new store answers as the domain does.
    let fields: Vec<String> = conn.hkeys(store.layout().meter(&user)).await.expect("HKEYS");
    let below: Vec<&String> = fields
        .iter()
        .filter(|f| f.trim_start_matches(['r', 'f', 'b', 'c']).parse::<i64>().is_ok_and(|m| m < state["hz"]))
        .collect();
    assert!(below.is_empty(), "minute fields below the old horizon {}: {below:?}", state["hz"]);
    assert_reads_match(&store, &user, &model, &policy, now, "after the upgrade").await;
    let (_, cost) = store.read_totals_with_cost(&user, &policy, now).await.expect("read_totals_with_cost");
    assert_eq!(cost, 5, "the running window sums were stored at `now`: a check reads the state (one HMGET) only");
    let ttl: i64 = conn.pttl(store.layout().meter(&user)).await.expect("PTTL");
    assert!(ttl > 0 && ttl <= old_ttl, "the new hash expires when the old keys would have: {ttl} vs {old_ttl}");
    let mut users = store.users_since(now.minute() - 3 * 1_440).await.expect("users_since");
    users.sort();
    let mut want = vec![user.clone(), newcomer.clone()];
    want.sort();
    assert_eq!(users, want, "users_since sees the converted user");

    // Re-running changes nothing.
    let hash_before: BTreeMap<String, Vec<u8>> = conn.hgetall(store.layout().meter(&user)).await.expect("HGETALL");
    let again = store.migrate_meter_layout(&policy, now.plus_ms(MS_PER_MINUTE)).await.expect("migrate again");
    assert_eq!(again, nothing_done(1), "a second run is a no-op");
    let hash_after: BTreeMap<String, Vec<u8>> = conn.hgetall(store.layout().meter(&user)).await.expect("HGETALL");
    assert_eq!(hash_after, hash_before, "a second run leaves the hash as it was");

    // New reports continue from the converted meter (its running sums, sweep and pruning).
    let mut rng = Rng(0x5EED_0002);
    let mut sessions = BTreeMap::new();
    let mut at = now;
    for step in 0..150 {
        at = advance(&mut rng, at);
        let batch: Vec<UsageReport> =
            (0..rng.range(0, 4)).map(|_| random_report(&mut rng, &policy, at, &mut sessions)).collect();
        let (outcomes, totals) = store.record_and_read(&user, &batch, &policy, at).await.expect("record");
        let want: Vec<_> = batch.iter().map(|r| model.record(r, retention, at)).collect();
        assert_eq!(outcomes, want, "step {step} after the upgrade: outcomes (shared idempotency and session keys)");
        assert_eq!(totals, model.capped_totals(&policy, at), "step {step} after the upgrade: totals");
    }
    assert_reads_match(&store, &user, &model, &policy, at, "after more traffic").await;
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
    purge(&[STANDALONE], STANDALONE_DOWN, &other_prefix).await;
}

#[tokio::test]
async fn a_user_on_both_layouts_gets_the_two_meters_added_bucket_to_bucket() {
    // New replicas served the user before `fairuse migrate` ran (or an old replica kept recording
    // after it ran): each report is in exactly one layout, so the usage is the sum.
    let prefix = unique("merge");
    let store = store(STANDALONE_URL, STANDALONE_DOWN, &prefix).await;
    let mut conn = node(STANDALONE, STANDALONE_DOWN).await;
    let policy = Policy::default();
    let retention = policy.metering.retention.ms();
    let old = OldMeter::new(&prefix);
    let user = uid(&prefix, "both");
    let mut model = UserMeter::default();
    let mut rng = Rng(0x5EED_0003);
    let mut sessions = BTreeMap::new();
    let mut now = T0.plus_ms(11_000);
    for step in 0..300 {
        now = advance(&mut rng, now);
        // Deltas only: a session's cumulative total is shared state that both layouts read from the
        // same fu1 session key, so it is exact too, but a delta names its layout plainly.
        let batch: Vec<UsageReport> = (0..rng.range(1, 4))
            .map(|_| random_report(&mut rng, &policy, now, &mut sessions))
            .filter(|r| matches!(r.amount, SpeechAmount::Delta(_)))
            .collect();
        let want: Vec<_> = batch.iter().map(|r| model.record(r, retention, now)).collect();
        let outcomes = if step % 3 == 0 {
            old.record(&mut conn, &user, &batch, &policy, now).await.0
        } else {
            store.record_and_read(&user, &batch, &policy, now).await.expect("record").0
        };
        assert_eq!(outcomes, want, "step {step}: outcomes");
    }
    assert!(!old_meter_keys(&[STANDALONE], STANDALONE_DOWN, &prefix).await.is_empty(), "old keys before");
    assert!(conn.exists::<_, bool>(store.layout().meter(&user)).await.expect("EXISTS"), "a new hash before");

    let done = store.migrate_meter_layout(&policy, now).await.expect("migrate");
    assert_eq!((done.users_converted, done.users_merged), (1, 1), "{done}");
    assert_reads_match(&store, &user, &model, &policy, now, "after merging").await;
    assert_eq!(store.migrate_meter_layout(&policy, now).await.expect("migrate again"), nothing_done(1));
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

#[tokio::test]
async fn users_on_every_cluster_master_are_converted() {
    let prefix = unique("cluster");
    let store = store(CLUSTER_URL, CLUSTER_DOWN, &prefix).await;
    assert!(store.is_cluster());
    let mut conn = cluster_conn().await;
    let policy = Policy::default();
    let old = OldMeter::new(&prefix);
    let mut models = Vec::new();
    let mut now = T0;
    for i in 0..12 {
        let user = uid(&prefix, &format!("u{i}"));
        let mut model = UserMeter::default();
        now = old_traffic(
            &old,
            &mut conn,
            &user,
            &mut model,
            &policy,
            Traffic { seed: 0x5EED_1000 + i, steps: 40, from: T0.plus_ms(5 * MS_PER_DAY) },
        )
        .await
        .max(now);
        models.push((user, model));
    }
    let before = old_meter_keys(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await;
    let mut masters = BTreeSet::new();
    for addr in CLUSTER_NODES {
        if !keys_with(addr, CLUSTER_DOWN, &format!("*{prefix}*:fu1:meter")).await.is_empty() {
            masters.insert(addr);
        }
    }
    assert!(masters.len() > 1, "the users are spread over masters: {masters:?}");

    let done = store.migrate_meter_layout(&policy, now).await.expect("migrate");
    assert_eq!(done.servers_scanned, 3, "{done}");
    assert_eq!(done.users_converted, 12, "{done}");
    assert_eq!(done.keys_removed as usize, before.len(), "{done}");
    assert_eq!(
        old_meter_keys(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await,
        Vec::<String>::new(),
        "no old meter key left"
    );
    for (user, model) in &models {
        for offset in [0, MS_PER_MINUTE, MS_PER_DAY] {
            let at = now.plus_ms(offset);
            let totals = store.read_totals(user, &policy, at).await.expect("read_totals");
            assert_eq!(totals, model.capped_totals(&policy, at), "{user} at now {offset:+} ms");
        }
    }
    assert_eq!(store.migrate_meter_layout(&policy, now).await.expect("migrate again"), nothing_done(3));
    assert_eq!(store.check_meter_layout().await.expect("check"), MeterLayoutCheck::Current);
    purge(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await;
}

#[tokio::test]
async fn many_users_are_converted_across_scan_batches() {
    let prefix = unique("many");
    let store = store(STANDALONE_URL, STANDALONE_DOWN, &prefix).await;
    let mut conn = node(STANDALONE, STANDALONE_DOWN).await;
    let policy = Policy::default();
    let old = OldMeter::new(&prefix);
    let now = T0.plus_ms(3 * MS_PER_DAY);
    let users = 2_500;
    for i in 0..users {
        let report = UsageReport::delta(Lane::Realtime, 1_000 + i);
        old.record(&mut conn, &uid(&prefix, &format!("u{i}")), &[report], &policy, now).await;
    }
    let done = store.migrate_meter_layout(&policy, now).await.expect("migrate");
    assert_eq!(done.users_converted, users as u64, "{done}");
    assert_eq!(done.keys_removed, 5 * users as u64, "state, capped minutes, hours, days and one lane each: {done}");
    for i in [0, 1_234, users - 1] {
        let totals = store.read_totals(&uid(&prefix, &format!("u{i}")), &policy, now).await.expect("read_totals");
        assert_eq!(totals, vec![1_000 + i; 3], "user {i}");
    }
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

#[tokio::test]
async fn the_layout_check_finds_old_meters_until_the_migration_ran() {
    let prefix = unique("check");
    let store = store(STANDALONE_URL, STANDALONE_DOWN, &prefix).await;
    let mut conn = node(STANDALONE, STANDALONE_DOWN).await;
    let policy = Policy::default();
    let marker = format!("{prefix}:meter-layout");

    // Old meters and no marker: found.
    let old = OldMeter::new(&prefix);
    let user = uid(&prefix, "old");
    old.record(&mut conn, &user, &[UsageReport::delta(Lane::SyncFresh, 9_000)], &policy, T0).await;
    assert_eq!(store.check_meter_layout().await.expect("check"), MeterLayoutCheck::OldMeters { example: user.clone() });
    assert!(!conn.exists::<_, bool>(&marker).await.expect("EXISTS"), "no marker while old meters exist");

    // After the migration: current, by the marker.
    store.migrate_meter_layout(&policy, T0).await.expect("migrate");
    assert_eq!(conn.get::<_, Option<String>>(&marker).await.expect("GET"), Some("fu2".to_owned()));
    assert_eq!(store.check_meter_layout().await.expect("check"), MeterLayoutCheck::Current);

    // A marker from a newer build.
    let _: () = conn.set(&marker, "fu3").await.expect("SET");
    assert_eq!(store.check_meter_layout().await.expect("check"), MeterLayoutCheck::Unknown { layout: "fu3".into() });

    // A fresh prefix: nothing to find, and the marker is written so the scan is paid once.
    let fresh_prefix = unique("fresh");
    let fresh = crate::store(STANDALONE_URL, STANDALONE_DOWN, &fresh_prefix).await;
    assert_eq!(fresh.check_meter_layout().await.expect("check"), MeterLayoutCheck::Current);
    let fresh_marker: Option<String> = conn.get(format!("{fresh_prefix}:meter-layout")).await.expect("GET");
    assert_eq!(fresh_marker.as_deref(), Some("fu2"), "the check recorded the layout");
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
    purge(&[STANDALONE], STANDALONE_DOWN, &fresh_prefix).await;
}
