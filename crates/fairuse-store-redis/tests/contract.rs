//! The store contracts of `fairuse-store-contract` against real Redis servers, plus the checks
//! only Redis needs: one hash slot per user, one round trip per record-and-check, a per-report
//! and per-check cost that does not grow with activity, the same answers as the domain's
//! `UserMeter` on random traffic, pruning by whole hours a bounded number per call, recovery from a flushed script cache and a restarted server, and
//! the error classification of refused and timed-out calls.
//!
//! Servers: a standalone Redis on 127.0.0.1:6379 and a three-master Redis Cluster on
//! 127.0.0.1:7001-7003 (`scripts/cluster.sh start`). A missing server fails the test with the
//! command that starts it. Every test uses its own random key prefix, so they run in parallel
//! on shared servers, and deletes its keys when it passes. The restart test runs a private
//! `redis-server` on a free port, and the timeout test a fake server that never answers.

mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fairuse_domain::classifier::UsageShape;
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::{Policy, WindowDef};
use fairuse_domain::store::{BudgetStore, UsageMeterStore};
use fairuse_domain::time::{DurationMs, MS_PER_DAY, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{SpeechAmount, UsageReport, UserMeter, recovery_at};
use fairuse_store_contract as contract;
use fairuse_store_redis::{RedisHotStore, RedisOptions};
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
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

/// A name no other test (in this or a concurrent run) uses: `[A-Za-z0-9.-]` only, so it serves
/// as a key prefix and as a contract prefix (uid characters).
fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("t{}-{:x}-{}-{tag}", std::process::id(), nanos, NEXT.fetch_add(1, Ordering::Relaxed))
}

fn options(prefix: &str) -> RedisOptions {
    RedisOptions {
        key_prefix: prefix.to_owned(),
        command_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    }
}

/// A store on its own key prefix, and that prefix.
async fn store_at(url: &str, down: &str, tag: &str) -> (RedisHotStore, String) {
    let prefix = unique(tag);
    match RedisHotStore::connect(url, options(&prefix)).await {
        Ok(store) => (store, prefix),
        Err(e) => panic!("{down}\n(connect failed: {e})"),
    }
}

async fn standalone(tag: &str) -> (RedisHotStore, String) {
    store_at(STANDALONE_URL, STANDALONE_DOWN, tag).await
}

async fn cluster(tag: &str) -> (RedisHotStore, String) {
    let (store, prefix) = store_at(CLUSTER_URL, CLUSTER_DOWN, tag).await;
    assert!(store.is_cluster());
    (store, prefix)
}

/// A plain connection to one node, for inspecting what the store wrote.
async fn node(addr: &str, down: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}")).expect("a valid url");
    match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("{down}\n(connect to {addr} failed: {e})"),
        Err(_) => panic!("{down}\n(connect to {addr} timed out)"),
    }
}

/// Every key on `addr` that contains `prefix`.
async fn keys_with(addr: &str, down: &str, prefix: &str) -> Vec<String> {
    let mut conn = node(addr, down).await;
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("*{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        found.extend(batch);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// Deletes what a passing test wrote (keys expire after the retention anyway).
async fn purge(addrs: &[&str], down: &str, prefix: &str) {
    for addr in addrs {
        let keys = keys_with(addr, down, prefix).await;
        let mut conn = node(addr, down).await;
        for key in keys {
            let _: () = conn.del(&key).await.expect("DEL");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The contracts, standalone and Cluster.

#[tokio::test]
async fn standalone_meter_store_meets_the_contract() {
    let (store, prefix) = standalone("meter").await;
    contract::meter_contract(&store, &prefix).await;
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

#[tokio::test]
async fn standalone_budget_store_meets_the_contract() {
    let (store, prefix) = standalone("budget").await;
    contract::budget_contract(&store, &prefix).await;
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

#[tokio::test]
async fn standalone_lock_store_meets_the_contract() {
    let (store, prefix) = standalone("lock").await;
    contract::lock_contract(&store, &prefix).await;
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

#[tokio::test]
async fn standalone_rate_limit_store_meets_the_contract() {
    let (store, prefix) = standalone("rate").await;
    contract::rate_limit_contract(&store, &prefix).await;
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

#[tokio::test]
async fn cluster_meter_store_meets_the_contract() {
    let (store, prefix) = cluster("meter").await;
    contract::meter_contract(&store, &prefix).await;
    purge(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await;
}

#[tokio::test]
async fn cluster_budget_store_meets_the_contract() {
    let (store, prefix) = cluster("budget").await;
    contract::budget_contract(&store, &prefix).await;
    purge(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await;
}

#[tokio::test]
async fn cluster_lock_store_meets_the_contract() {
    let (store, prefix) = cluster("lock").await;
    contract::lock_contract(&store, &prefix).await;
    purge(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await;
}

#[tokio::test]
async fn cluster_rate_limit_store_meets_the_contract() {
    let (store, prefix) = cluster("rate").await;
    contract::rate_limit_contract(&store, &prefix).await;
    purge(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await;
}

// ---------------------------------------------------------------------------------------------
// Layout and cost.

fn uid(prefix: &str, name: &str) -> Uid {
    Uid::parse(&format!("{prefix}.{name}")).expect("a valid uid")
}

fn delta_at(lane: Lane, ms: i64, at: Timestamp) -> UsageReport {
    UsageReport { at: Some(at), ..UsageReport::delta(lane, ms) }
}

/// Every kind of report, so that every kind of per-user key gets written.
fn every_kind_of_report(now: Timestamp) -> Vec<UsageReport> {
    let mut reports: Vec<UsageReport> = Lane::ALL.iter().map(|&lane| UsageReport::delta(lane, 1_000)).collect();
    reports.push(UsageReport { idempotency_key: Some("k{1}".into()), ..UsageReport::delta(Lane::SyncFresh, 2_000) });
    reports.push(UsageReport {
        lane: Lane::Realtime,
        amount: SpeechAmount::Cumulative { session_id: "session-1".into(), total_ms: 30_000 },
        at: Some(now.minus_ms(MS_PER_DAY)),
        idempotency_key: None,
        stt_ms: 40_000,
    });
    reports
}

#[tokio::test]
async fn every_key_of_one_user_hashes_to_one_cluster_slot() {
    let (store, prefix) = cluster("slots").await;
    let policy = Policy::default();
    let now = T0.plus_ms(MS_PER_DAY + 90 * MS_PER_MINUTE);
    let users = [uid(&prefix, "a"), uid(&prefix, "b"), uid(&prefix, "c")];
    for user in &users {
        store.record_and_read(user, &every_kind_of_report(now), &policy, now).await.expect("record");
        store.add_forwarded(user, now.utc_day(), 5_000).await.expect("add_forwarded");
        store.note_exhausted_once(user, now.utc_day()).await.expect("note_exhausted_once");
    }

    // The key names Redis actually holds, from every master, not the names a helper would build.
    let mut keys = Vec::new();
    for addr in CLUSTER_NODES {
        keys.extend(keys_with(addr, CLUSTER_DOWN, &prefix).await);
    }
    let mut slots: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut first = node(CLUSTER_NODES[0], CLUSTER_DOWN).await;
    for key in &keys {
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut first).await.expect("KEYSLOT");
        let tag = key.split('}').next().unwrap_or_default().trim_start_matches('{').to_owned();
        slots.entry(tag.clone()).or_default().insert(slot);
        // "{tag}:fu<version>:<kind>[:...]"
        let rest = key.split("}:").nth(1).unwrap_or_default();
        let (version, kind) = rest.split_once(':').unwrap_or_else(|| panic!("{key} has no version segment"));
        assert!(version == "fu1" || version == "fu2", "{key}: unknown layout version");
        let kind = kind.split(':').next().unwrap_or_default().to_owned();
        kinds.entry(tag).or_default().insert(kind);
    }
    assert_eq!(slots.len(), users.len(), "one hash tag per user: {slots:?}");
    for (tag, user_slots) in &slots {
        assert_eq!(user_slots.len(), 1, "every key of {tag} is in one slot: {user_slots:?}");
        let want: BTreeSet<String> =
            ["meter", "idem", "session", "stt", "stt-exhausted"].iter().map(|s| s.to_string()).collect();
        assert_eq!(kinds[tag], want, "{tag} has every kind of key");
    }
    let distinct: BTreeSet<i64> = slots.values().flatten().copied().collect();
    assert!(distinct.len() > 1, "different users spread over slots: {distinct:?}");
    purge(&CLUSTER_NODES, CLUSTER_DOWN, &prefix).await;
}

/// Reads MONITOR lines until one contains `marker`.
async fn monitor_until(monitor: &mut BufReader<TcpStream>, marker: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let read = async {
        loop {
            let mut line = String::new();
            if monitor.read_line(&mut line).await.expect("read MONITOR") == 0 {
                panic!("MONITOR connection closed");
            }
            if line.contains(marker) {
                return;
            }
            lines.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("MONITOR saw the marker");
    lines
}

#[tokio::test]
async fn record_and_check_is_one_round_trip() {
    let (store, prefix) = standalone("roundtrip").await;
    let policy = Policy::default();
    let user = uid(&prefix, "rt");
    let now = T0.plus_ms(MS_PER_DAY);
    // The first call may have to send the script source (NOSCRIPT, then EVAL): not steady state.
    store.record_and_read(&user, &[UsageReport::delta(Lane::Realtime, 1)], &policy, now).await.expect("warm up");

    let mut monitor = BufReader::new(TcpStream::connect(STANDALONE).await.expect(STANDALONE_DOWN));
    monitor.get_mut().write_all(b"MONITOR\r\n").await.expect("MONITOR");
    let mut ok = String::new();
    monitor.read_line(&mut ok).await.expect("MONITOR reply");
    assert_eq!(ok.trim_end(), "+OK");

    let before = store.commands_sent();
    let batch = every_kind_of_report(now);
    let (outcomes, totals) = store.record_and_read(&user, &batch, &policy, now).await.expect("record");
    assert_eq!(outcomes.len(), batch.len());
    assert_eq!(totals.len(), 3);
    let sent = store.commands_sent() - before;

    // Everything the server ran before this marker, in order, is in the MONITOR stream.
    let marker = unique("marker");
    let mut other = node(STANDALONE, STANDALONE_DOWN).await;
    let _: String = redis::cmd("ECHO").arg(&marker).query_async(&mut other).await.expect("ECHO");
    let lines = monitor_until(&mut monitor, &marker).await;
    let ours: Vec<&String> = lines.iter().filter(|l| l.contains(&prefix)).collect();
    let from_client: Vec<&&String> = ours.iter().filter(|l| !l.contains(" lua] ")).collect();
    let from_script = ours.len() - from_client.len();

    assert_eq!(sent, 1, "the store sent one command for the whole batch");
    assert_eq!(from_client.len(), 1, "the server received one command naming this user's keys: {from_client:?}");
    assert!(from_client[0].to_lowercase().contains("\"evalsha\""), "and it was EVALSHA: {}", from_client[0]);
    assert!(from_script >= 5, "the per-report work ran inside the script ({from_script} commands)");
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

/// Records `active` distinct active minutes ending at `now`, in batches.
async fn load_minutes(store: &RedisHotStore, user: &Uid, policy: &Policy, active: i64, now: Timestamp) -> UserMeter {
    let retention = policy.metering.retention.ms();
    let reports: Vec<UsageReport> = (0..active)
        .map(|i| {
            delta_at(
                if i % 3 == 0 { Lane::SyncFresh } else { Lane::Realtime },
                1_000 + i,
                now.minus_ms(i * MS_PER_MINUTE),
            )
        })
        .collect();
    let mut model = UserMeter::default();
    for batch in reports.chunks(1_000) {
        store.record_and_read(user, batch, policy, now).await.expect("record");
        for r in batch {
            model.record(r, retention, now);
        }
    }
    model
}

#[tokio::test]
async fn the_cost_of_a_report_and_a_check_does_not_grow_with_active_minutes() {
    let (store, prefix) = standalone("cost").await;
    let policy = Policy::default();
    let retention = policy.metering.retention.ms();
    // At a UTC midnight every window starts one minute after a midnight.
    let now = T0.plus_ms(8 * MS_PER_DAY);
    let mut per_size = Vec::new();
    for active in [10, 1_440, 10_080] {
        let user = uid(&prefix, &format!("active-{active}"));
        let mut model = load_minutes(&store, &user, &policy, active, now).await;
        let (totals, cost) = store.read_totals_with_cost(&user, &policy, now).await.expect("read_totals_with_cost");
        assert_eq!(totals, model.capped_totals(&policy, now), "{active} active minutes: totals");
        // The state, the old-layout marker and the minute that left each window since a minute ago.
        assert_eq!(cost, 5, "{active} active minutes: a check at the last report's minute reads the state only");
        // A live stream: one report a minute for two hours (the horizon passes two hours, so the
        // sweep runs twice). Each report reads the state (and the old-layout marker), the minute
        // that left each window, the three fields it adds to (the minute, its hour and its day)
        // and, when the horizon enters a new hour, two hour markers.
        let mut costs = Vec::new();
        for minute in 1..=120 {
            let at = now.plus_ms(minute * MS_PER_MINUTE + 17_000);
            let report = UsageReport::delta(Lane::Realtime, 30_000);
            let (outcomes, totals, cost) = store
                .record_and_read_with_cost(&user, std::slice::from_ref(&report), &policy, at)
                .await
                .expect("record_and_read_with_cost");
            assert_eq!(outcomes, vec![model.record(&report, retention, at)]);
            assert_eq!(totals, model.capped_totals(&policy, at), "{active} active minutes, minute {minute}: totals");
            costs.push(cost);
        }
        let (_, cost) = store
            .read_totals_with_cost(&user, &policy, now.plus_ms(121 * MS_PER_MINUTE))
            .await
            .expect("read_totals_with_cost");
        assert_eq!(cost, 5, "a check a minute after the last report reads one field per window, in the same HMGET");
        eprintln!("{active:>6} active minutes: fields read per report {:?}", costs.iter().collect::<BTreeSet<_>>());
        per_size.push(costs);
    }
    assert!(per_size.iter().all(|c| *c == per_size[0]), "the same cost at 10, 1,440 and 10,080 active minutes");
    assert!(per_size[0].iter().all(|&c| c <= 2 + 3 + 3 + 2), "at most 10 fields per report: {:?}", per_size[0]);
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

#[tokio::test]
async fn checks_at_an_earlier_now_than_the_horizon_allows_still_match_the_domain() {
    // When `now` goes back by more than the retention minus a window, the horizon raises that
    // window's start, and the running window sums move both edges backwards (`lua/meter.lua`).
    let (store, prefix) = standalone("earlier").await;
    let policy = Policy::default();
    let retention = policy.metering.retention.ms();
    let loaded = T0.plus_ms(8 * MS_PER_DAY + 17 * MS_PER_MINUTE + 5_000);
    let user = uid(&prefix, "earlier");
    let mut model = load_minutes(&store, &user, &policy, 11_520, loaded).await;
    // Three days later one report moves the horizon three days on, but pruning deletes only 360
    // minutes per call: buckets below the horizon remain and must not count.
    let now = loaded.plus_ms(3 * MS_PER_DAY);
    let report = delta_at(Lane::Realtime, 1_234, now);
    let (outcomes, totals) =
        store.record_and_read(&user, std::slice::from_ref(&report), &policy, now).await.expect("record");
    assert_eq!(outcomes, vec![model.record(&report, retention, now)], "a report three days later");
    assert_eq!(totals, model.capped_totals(&policy, now), "totals three days later");
    for back in [0, 30, 1_439, 1_440, 1_441, 1_500, 2 * 1_440 + 7, 3 * 1_440, 5 * 1_440 + 59] {
        let at = now.minus_ms(back * MS_PER_MINUTE);
        let read = store.read_totals(&user, &policy, at).await.expect("read_totals");
        assert_eq!(read, model.capped_totals(&policy, at), "read_totals {back} minutes back");
        let (_, totals) = store.record_and_read(&user, &[], &policy, at).await.expect("record nothing");
        assert_eq!(totals, model.capped_totals(&policy, at), "record_and_read of nothing {back} minutes back");
    }
    let at = now.minus_ms(2 * MS_PER_DAY);
    let report = delta_at(Lane::Realtime, 4_321, at);
    let (outcomes, totals) =
        store.record_and_read(&user, std::slice::from_ref(&report), &policy, at).await.expect("record");
    assert_eq!(outcomes, vec![model.record(&report, retention, at)], "a report two days back");
    assert_eq!(totals, model.capped_totals(&policy, at), "totals after a report two days back");
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

/// The meter hash's fields by kind: capped minutes (`m`), hours, days, lane minutes (by letter),
/// uncapped hour markers, window sums and state; and the smallest minute of any minute field.
async fn meter_fields(conn: &redis::aio::MultiplexedConnection, key: &str) -> (BTreeMap<String, i64>, Option<i64>) {
    let names: Vec<String> = conn.clone().hkeys(key).await.expect("HKEYS");
    let mut kinds = BTreeMap::new();
    let mut oldest: Option<i64> = None;
    for name in names {
        let (kind, number) = match name.chars().next() {
            Some(c) if c.is_ascii_digit() || c == '-' => ("m".to_owned(), name.parse::<i64>().ok()),
            Some(c @ ('r' | 'f' | 'b' | 'c')) => (c.to_string(), name[1..].parse::<i64>().ok()),
            Some(c @ ('h' | 'd' | 'u')) if name[1..].parse::<i64>().is_ok() => (c.to_string(), None),
            Some('w') => ("window".to_owned(), None),
            _ => ("state".to_owned(), None),
        };
        if let Some(m) = number {
            oldest = Some(oldest.map_or(m, |o| o.min(m)));
        }
        *kinds.entry(kind).or_default() += 1;
    }
    (kinds, oldest)
}

/// The horizon and the prune mark of a meter hash (`hz` and `pm` of the state field `s`).
async fn horizon_and_prune_mark(conn: &redis::aio::MultiplexedConnection, key: &str) -> (i64, i64) {
    let state = "local s = { cmsgpack.unpack(redis.call('HGET', KEYS[1], 's')) } return { s[1], s[2] }";
    redis::cmd("EVAL").arg(state).arg(1).arg(key).query_async(&mut conn.clone()).await.expect("EVAL of the state")
}

#[tokio::test]
async fn old_buckets_are_swept_by_whole_hours_a_bounded_number_per_call_and_idle_users_start_afresh() {
    let (store, prefix) = standalone("prune").await;
    let policy = Policy::default();
    let retention = policy.metering.retention.ms();
    let user = uid(&prefix, "pruned");
    let key = store.layout().meter(&user);
    let conn = node(STANDALONE, STANDALONE_DOWN).await;

    // A full retention of active minutes (every third one sync_fresh, the rest realtime).
    let start = T0.plus_ms(8 * MS_PER_DAY + 17 * MS_PER_MINUTE);
    let mut model = load_minutes(&store, &user, &policy, 11_520, start).await;
    let (kinds, _) = meter_fields(&conn, &key).await;
    assert_eq!(kinds["m"], 11_520, "{kinds:?}");
    assert_eq!(kinds["f"], 11_520 / 3, "{kinds:?}");
    assert!(!kinds.contains_key("r"), "realtime minutes are the capped ones minus sync_fresh's: {kinds:?}");
    let ttl: i64 = conn.clone().pttl(&key).await.expect("PTTL");
    assert!(ttl > retention && ttl <= retention + 2 * 3_600_000, "the meter expires after the retention: {ttl}");

    // Three days later: three days of minutes are below the horizon, swept by whole hours, at
    // most six hours holding speech per call.
    let back = start.plus_ms(3 * MS_PER_DAY);
    let mut previous = 11_520 + 1; // the first call adds a minute
    let mut calls = 0;
    loop {
        // Only the first call adds speech; zero speech still prunes (as in the domain).
        let report = UsageReport::delta(Lane::Realtime, if calls == 0 { 1_000 } else { 0 });
        let (outcomes, totals) =
            store.record_and_read(&user, std::slice::from_ref(&report), &policy, back).await.expect("record");
        assert_eq!(outcomes, vec![model.record(&report, retention, back)]);
        assert_eq!(totals, model.capped_totals(&policy, back), "stale buckets never count, swept or not");
        let (kinds, oldest) = meter_fields(&conn, &key).await;
        let now_fields = kinds["m"];
        assert!(previous - now_fields <= 6 * 60, "at most six hours swept per call: {previous} -> {now_fields}");
        previous = now_fields;
        calls += 1;
        let (horizon, pruned) = horizon_and_prune_mark(&conn, &key).await;
        assert!(oldest.unwrap_or(i64::MAX) >= pruned, "no minute field below the prune mark");
        if pruned == horizon.div_euclid(60) * 60 {
            assert_eq!(oldest, Some(pruned), "the sweep stops at the horizon's hour");
            break;
        }
        assert!(calls < 100, "the sweep makes progress");
    }
    eprintln!("sweeping three days below the horizon took {calls} calls");
    assert!(calls > 1, "three days of minutes are not swept in one call");
    // The model keeps the minutes from the horizon on; Redis also the (all active) minutes of the
    // horizon's hour below it, until the next sweep.
    let kept = model.lane(Lane::Realtime).minutes().chain(model.lane(Lane::SyncFresh).minutes());
    let kept = kept.map(|(m, _)| m).collect::<BTreeSet<_>>().len() as i64;
    let (horizon, pruned) = horizon_and_prune_mark(&conn, &key).await;
    assert_eq!(previous, kept + horizon - pruned, "exactly the minutes from the prune mark on are left");

    // Silent for longer than the retention: everything is below the horizon, and one report
    // starts the meter afresh instead of sweeping.
    let later = back.plus_ms(retention + 5 * MS_PER_MINUTE);
    let report = UsageReport::delta(Lane::SyncFresh, 2_000);
    let (_, totals) =
        store.record_and_read(&user, std::slice::from_ref(&report), &policy, later).await.expect("record");
    model.record(&report, retention, later);
    assert_eq!(totals, vec![2_000; 3]);
    assert_eq!(totals, model.capped_totals(&policy, later));
    let (kinds, oldest) = meter_fields(&conn, &key).await;
    assert_eq!(oldest, Some(later.minute()), "only the new minute is left: {kinds:?}");
    for (kind, count) in [("m", 1), ("f", 1), ("h", 1), ("d", 1), ("state", 1)] {
        assert_eq!(kinds.get(kind).copied().unwrap_or(0), count, "{kind} fields after a fresh start: {kinds:?}");
    }
    assert!(!kinds.contains_key("r") && !kinds.contains_key("window"), "{kinds:?}");
    let ttl: i64 = conn.clone().pttl(&key).await.expect("PTTL");
    assert!(ttl > retention, "a fresh start sets the expiry again: {ttl}");
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

// ---------------------------------------------------------------------------------------------
// The same answers as the domain on random traffic.

/// The shipped policy plus windows of odd lengths (1 minute, 97 minutes, 25 h + 1 min, the whole
/// retention), so that every path of the minute/hour/day split gets exercised.
fn policy_with_odd_windows() -> Policy {
    let mut policy = Policy::default();
    for (name, minutes) in [("one_minute", 1), ("odd", 97), ("day_and_a_bit", 1_501), ("retention", 11_520)] {
        policy.windows.push(WindowDef { name: name.into(), length: DurationMs::minutes(minutes) });
    }
    policy.validate().expect("a valid policy");
    policy
}

#[tokio::test]
async fn random_traffic_gets_the_same_answers_as_the_domain_meter() {
    let (store, prefix) = standalone("model").await;
    let policy = policy_with_odd_windows();
    let retention = policy.metering.retention.ms();
    let user = uid(&prefix, "random");
    let mut model = UserMeter::default();
    let mut rng = Rng(0x5EED_F00D_1234_5678);
    let mut sessions = BTreeMap::new();
    let mut now = T0.plus_ms(37_000);
    for step in 0..400 {
        // Mostly minutes apart, sometimes hours or days: crosses hour and day roll-ups, drives
        // the horizon forward and makes pruning catch up over several calls.
        now = now.plus_ms(match rng.range(0, 20) {
            0 => rng.range(1, 4) * MS_PER_DAY + rng.range(0, MS_PER_DAY),
            1..=3 => rng.range(1, 600) * MS_PER_MINUTE,
            _ => rng.range(0, 3 * MS_PER_MINUTE),
        });
        let batch: Vec<UsageReport> =
            (0..rng.range(0, 6)).map(|_| random_report(&mut rng, &policy, now, &mut sessions)).collect();
        for r in &batch {
            r.validate(&policy, now).unwrap_or_else(|e| panic!("step {step}: the test made an invalid report: {e}"));
        }
        let (outcomes, totals) = store.record_and_read(&user, &batch, &policy, now).await.expect("record");
        let want: Vec<_> = batch.iter().map(|r| model.record(r, retention, now)).collect();
        assert_eq!(outcomes, want, "step {step}: outcomes of {batch:?}");
        assert_eq!(totals, model.capped_totals(&policy, now), "step {step}: totals after recording");

        let later = now.plus_ms(rng.range(0, 10 * MS_PER_MINUTE));
        let read = store.read_totals(&user, &policy, later).await.expect("read_totals");
        assert_eq!(read, model.capped_totals(&policy, later), "step {step}: read_totals a little later");

        if step % 10 == 0 {
            let window = rng.pick(&[1, 60, 97, 1_440, 10_080]);
            let cap = rng.pick(&[0, 60_000, 3_600_000, 7_200_000]);
            let got = store.recovery_at(&user, window, cap, now).await.expect("recovery_at");
            assert_eq!(got, recovery_at(&model, window, cap, now), "step {step}: recovery_at({window}, {cap})");

            let lookback = rng.pick(&[MS_PER_MINUTE * 90, MS_PER_DAY, 7 * MS_PER_DAY, retention]);
            let shape = store.usage_shape(&user, lookback, now).await.expect("usage_shape");
            assert_eq!(shape, UsageShape::measure(&model, lookback, now), "step {step}: usage_shape({lookback})");

            let lane = rng.pick(&Lane::ALL);
            let to = now.minute() + rng.range(-30, 5);
            let from = to - rng.pick(&[0, 10, 255, 256, 3_000, 20_000]);
            let series = store.minute_series(&user, lane, from, to).await.expect("minute_series");
            let want: Vec<(i64, i64)> = model.lane(lane).minutes().filter(|&(m, _)| m >= from && m <= to).collect();
            assert_eq!(series, want, "step {step}: minute_series({lane:?}, {from}..={to})");
        }
    }
    purge(&[STANDALONE], STANDALONE_DOWN, &prefix).await;
}

// ---------------------------------------------------------------------------------------------
// Failures.

#[tokio::test]
async fn an_unreachable_redis_is_a_certain_failure() {
    // A port that was just free: connecting is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    for url in [format!("redis://127.0.0.1:{port}"), format!("redis+cluster://127.0.0.1:{port}")] {
        match RedisHotStore::connect(&url, options("unreachable")).await {
            Err(StoreError::Unavailable(msg)) => assert!(msg.contains("connect"), "{msg}"),
            Err(other) => panic!("{url}: expected Unavailable, got {other:?}"),
            Ok(_) => panic!("{url}: connected to nothing"),
        }
    }
    match RedisHotStore::connect("memcached://x:1", options("bad-url")).await {
        Err(StoreError::Invalid(_)) => {}
        Err(other) => panic!("a bad url is Invalid, got {other:?}"),
        Ok(_) => panic!("connected with a bad url"),
    }
}

/// A fake Redis that completes the connection handshake and then never answers a data command:
/// the store's calls time out after the command was sent.
async fn silent_redis() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Answer the handshake (CLIENT SETINFO, PING, SELECT, HELLO), nothing else.
                    while let Some((command, used)) = parse_command(&buf) {
                        buf.drain(..used);
                        let handshake = ["CLIENT", "PING", "SELECT", "HELLO"];
                        if handshake.iter().any(|h| command.eq_ignore_ascii_case(h)) {
                            let _ = socket.write_all(b"+OK\r\n").await;
                        }
                    }
                }
            });
        }
    });
    port
}

/// The name of the first complete RESP command in `buf`, and how many bytes it takes.
fn parse_command(buf: &[u8]) -> Option<(String, usize)> {
    let line = |from: usize| -> Option<(&[u8], usize)> {
        let end = buf[from..].windows(2).position(|w| w == b"\r\n")? + from;
        Some((&buf[from..end], end + 2))
    };
    let (head, mut pos) = line(0)?;
    let count: usize = std::str::from_utf8(head.strip_prefix(b"*")?).ok()?.parse().ok()?;
    let mut name = None;
    for _ in 0..count {
        let (len, next) = line(pos)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?).ok()?.parse().ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        name.get_or_insert_with(|| String::from_utf8_lossy(&buf[next..next + len]).into_owned());
        pos = next + len + 2;
    }
    Some((name?, pos))
}

#[tokio::test]
async fn a_write_that_times_out_is_unknown_and_a_read_is_unavailable() {
    let port = silent_redis().await;
    let opts = RedisOptions {
        key_prefix: "silent".into(),
        command_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(2),
    };
    let store = RedisHotStore::connect(&format!("redis://127.0.0.1:{port}"), opts).await.expect("connect");
    let user = Uid::parse("u1").expect("uid");
    let policy = Policy::default();

    let write = store.add_forwarded(&user, 1, 60_000).await;
    assert!(matches!(&write, Err(e) if e.is_unknown()), "a write that got no answer may have happened: {write:?}");
    let write = store.record_and_read(&user, &[UsageReport::delta(Lane::Realtime, 1)], &policy, T0).await;
    assert!(matches!(&write, Err(e) if e.is_unknown()), "{write:?}");
    let read = store.used(&user, 1).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "a read that got no answer changed nothing: {read:?}");
    let ping = store.ping().await;
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
}

/// A redis-server of this test's own on a free port, so it can be flushed, stopped and restarted
/// without disturbing the tests sharing the standalone server. Killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    async fn start(port: Option<u16>) -> PrivateRedis {
        let port = port.unwrap_or_else(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        });
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{STANDALONE_DOWN}\n(cannot run redis-server: {e})"));
        let server = PrivateRedis { port, child: Some(child) };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("a private redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn scripts_are_reloaded_and_connections_reopened_after_redis_restarts() {
    let mut server = PrivateRedis::start(None).await;
    let opts = RedisOptions { command_timeout: Duration::from_millis(500), ..options("restart") };
    let store = RedisHotStore::connect(&server.url(), opts).await.expect("connect");
    let policy = Policy::default();
    let user = Uid::parse("u.restart").expect("uid");
    let now = T0.plus_ms(MS_PER_DAY);
    let report = [UsageReport::delta(Lane::Realtime, 1_000)];
    store.record_and_read(&user, &report, &policy, now).await.expect("record");

    // An emptied script cache costs one refused EVALSHA and one EVAL, and applies the batch once.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut node(&format!("127.0.0.1:{}", server.port), STANDALONE_DOWN).await)
        .await
        .expect("FLUSH");
    let before = store.commands_sent();
    let (_, totals) = store.record_and_read(&user, &report, &policy, now).await.expect("record after a flush");
    assert_eq!(totals, vec![2_000; 3], "the batch was applied once");
    assert_eq!(store.commands_sent() - before, 2, "EVALSHA refused with NOSCRIPT, then EVAL");
    let before = store.commands_sent();
    store.record_and_read(&user, &report, &policy, now).await.expect("record");
    assert_eq!(store.commands_sent() - before, 1, "EVAL cached the script again");

    // Redis goes away: a write on the dead connection may be Unknown, but once reconnecting is
    // refused every call is a certain failure.
    server.stop();
    let mut refused = false;
    for _ in 0..20 {
        match store.record_and_read(&user, &report, &policy, now).await {
            Err(StoreError::Unavailable(e)) => {
                eprintln!("while redis is down: unavailable: {e}");
                refused = true;
                break;
            }
            Err(StoreError::Unknown(e)) => {
                eprintln!("while redis is down: unknown: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("Redis is down, got {other:?}"),
        }
    }
    assert!(refused, "a refused reconnect makes writes certain failures");
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));

    // Back on the same port, empty (nothing persisted) and without the scripts.
    let _server = PrivateRedis::start(Some(server.port)).await;
    let mut recovered = None;
    for _ in 0..40 {
        match store.record_and_read(&user, &report, &policy, now).await {
            Ok(answer) => {
                recovered = Some(answer);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let (_, totals) = recovered.expect("the store reconnects by itself");
    assert_eq!(totals, vec![1_000; 3], "a fresh server: only the new report, once");
}

#[tokio::test]
async fn ping_answers_on_both_deployments() {
    let (store, _) = standalone("ping").await;
    store.ping().await.expect("standalone ping");
    let (store, _) = cluster("ping").await;
    store.ping().await.expect("cluster ping");
}
