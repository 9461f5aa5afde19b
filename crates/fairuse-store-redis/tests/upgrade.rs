//! The in-place upgrade of the meter hash's state (`lua/meter.lua`): meters written by the
//! previous record script (state in fields of its own: hz pm mx ma ex v w<M>; kept as a fixture in
//! `tests/fu2_fields/`) are read by the new scripts as they are, and turned into the one state
//! field `s` by the user's next report; a previous script that writes again after that (an old
//! replica during a rolling upgrade) loses nothing. Every answer must be the domain's
//! `UserMeter` fed the same reports.
//!
//! Server: a standalone Redis on 127.0.0.1:6379. Every test uses its own key prefix and deletes
//! its keys when it passes.

mod traffic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fairuse_domain::ids::Uid;
use fairuse_domain::policy::Policy;
use fairuse_domain::store::UsageMeterStore;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{SpeechAmount, UsageReport, UserMeter};
use fairuse_store_redis::{RedisHotStore, RedisOptions};
use redis::AsyncCommands;
use traffic::{Rng, random_report};

const STANDALONE: &str = "redis://127.0.0.1:6379";
const DOWN: &str = "these tests need a Redis on 127.0.0.1:6379 (scripts/test starts one)";
/// 2026-03-20T00:00:00Z, a UTC midnight.
const T0: Timestamp = Timestamp::from_millis(1_773_964_800_000);
/// The state fields of the previous layout, for the default policy's windows.
const OLD_STATE_FIELDS: [&str; 9] = ["hz", "pm", "mx", "ma", "ex", "v", "w1440", "w4320", "w10080"];

fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("u{}-{:x}-{}-{tag}", std::process::id(), nanos, NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn store(prefix: &str) -> RedisHotStore {
    let opts = RedisOptions {
        key_prefix: prefix.to_owned(),
        command_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    };
    RedisHotStore::connect(STANDALONE, opts).await.unwrap_or_else(|e| panic!("{DOWN}\n(connect failed: {e})"))
}

/// One test's user, on a key prefix of its own, with a plain connection to look into the hash.
struct Case {
    prefix: String,
    store: RedisHotStore,
    conn: redis::aio::MultiplexedConnection,
    policy: Policy,
    retention: i64,
    uid: Uid,
    /// The user's meter hash.
    key: String,
}

async fn case(tag: &str) -> Case {
    let prefix = unique(tag);
    let store = store(&prefix).await;
    let client = redis::Client::open(STANDALONE).expect("a valid url");
    let conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{DOWN}\n({e})"));
    let policy = Policy::default();
    let retention = policy.metering.retention.ms();
    let uid = Uid::parse(&format!("{prefix}.user")).expect("a valid uid");
    let key = store.layout().meter(&uid);
    Case { prefix, store, conn, policy, retention, uid, key }
}

/// The previous `record_and_read` (same keys and arguments as the store's, `src/meter.rs`); its
/// reply is not looked at: only what it leaves in the hash.
async fn old_record(
    conn: &mut redis::aio::MultiplexedConnection,
    store: &RedisHotStore,
    uid: &Uid,
    reports: &[UsageReport],
    policy: &Policy,
    now: Timestamp,
) {
    let script =
        redis::Script::new(concat!(include_str!("fu2_fields/meter.lua"), include_str!("fu2_fields/record.lua")));
    let layout = store.layout();
    let retention = policy.metering.retention.ms();
    let windows = policy.window_minutes();
    let mut keys = vec![layout.meter(uid)];
    let gc_ttl = retention + MS_PER_HOUR;
    let mut args = vec![
        now.millis().to_string(),
        retention.to_string(),
        gc_ttl.to_string(),
        (gc_ttl + MS_PER_HOUR).to_string(),
        MS_PER_HOUR.to_string(),
        "48".to_owned(),
        "6".to_owned(),
        windows.len().to_string(),
    ];
    args.extend(windows.iter().map(i64::to_string));
    for report in reports {
        let (amount, session) = match &report.amount {
            SpeechAmount::Delta(ms) => (*ms, 0),
            SpeechAmount::Cumulative { session_id, total_ms } => {
                keys.push(layout.session(uid, session_id));
                (*total_ms, keys.len())
            }
        };
        let idempotency = match &report.idempotency_key {
            Some(key) => {
                keys.push(layout.idempotency(uid, report.lane, key));
                keys.len()
            }
            None => 0,
        };
        args.push(report.lane.index().to_string());
        args.push(if report.lane.is_capped() { "1" } else { "0" }.to_owned());
        args.push(amount.to_string());
        args.push(report.stt_ms.to_string());
        args.push(report.at.map(|at| at.minute().to_string()).unwrap_or_default());
        args.push(idempotency.to_string());
        args.push(session.to_string());
    }
    let mut invocation = script.prepare_invoke();
    invocation.key(keys).arg(args);
    let _: Vec<i64> = invocation.invoke_async(conn).await.expect("the previous record script runs");
}

async fn fields(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    let mut names: Vec<String> = conn.hkeys(key).await.expect("HKEYS");
    names.sort();
    names
}

async fn purge(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = conn.keys(format!("*{prefix}*")).await.expect("KEYS");
    for key in keys {
        let _: () = conn.del(&key).await.expect("DEL");
    }
}

/// Every read the store offers, against the domain's meter.
async fn assert_reads_match(store: &RedisHotStore, uid: &Uid, model: &UserMeter, policy: &Policy, now: Timestamp) {
    for later in [0, 1, 61, 1_441] {
        let at = now.plus_ms(later * MS_PER_MINUTE);
        let totals = store.read_totals(uid, policy, at).await.expect("read_totals");
        assert_eq!(totals, model.capped_totals(policy, at), "read_totals {later} minutes later");
    }
    let from = now.minute() - 8 * 1_440;
    for lane in fairuse_domain::ids::Lane::ALL {
        let series = store.minute_series(uid, lane, from, now.minute() + 10).await.expect("minute_series");
        let want: Vec<(i64, i64)> = model.lane(lane).minutes().filter(|&(m, _)| m >= from).collect();
        assert_eq!(series, want, "minute_series of {lane:?}");
    }
}

#[tokio::test]
async fn a_meter_of_the_previous_state_fields_is_read_as_is_and_upgraded_by_the_next_report() {
    let Case { prefix, store, mut conn, policy, retention, uid, key } = case("lazy").await;

    // Four days of random traffic through the previous script.
    let mut rng = Rng(0x5EED_0012);
    let mut sessions = BTreeMap::new();
    let mut model = UserMeter::default();
    let mut now = T0.plus_ms(9 * MS_PER_DAY);
    for _ in 0..200 {
        now = now.plus_ms(rng.range(0, 40) * MS_PER_MINUTE);
        let batch: Vec<UsageReport> =
            (0..rng.range(1, 3)).map(|_| random_report(&mut rng, &policy, now, &mut sessions)).collect();
        old_record(&mut conn, &store, &uid, &batch, &policy, now).await;
        for report in &batch {
            model.record(report, retention, now);
        }
    }
    let before = fields(&mut conn, &key).await;
    for name in OLD_STATE_FIELDS {
        assert!(before.iter().any(|f| f == name), "the previous script wrote {name}: {before:?}");
    }
    assert!(!before.iter().any(|f| f == "s"), "{before:?}");

    // Read as it is (read-only: nothing is upgraded by a read) ...
    assert_reads_match(&store, &uid, &model, &policy, now).await;
    assert_eq!(fields(&mut conn, &key).await, before, "reads change nothing");
    let users = store.users_since(now.minute() - 1_440).await.expect("users_since");
    assert_eq!(users, vec![uid.clone()], "users_since reads the previous state");

    // ... and upgraded by the next report, which answers as the domain does.
    now = now.plus_ms(3 * MS_PER_MINUTE);
    let report = UsageReport::delta(fairuse_domain::ids::Lane::Realtime, 42_000);
    let (outcomes, totals) =
        store.record_and_read(&uid, std::slice::from_ref(&report), &policy, now).await.expect("record");
    assert_eq!(outcomes, vec![model.record(&report, retention, now)]);
    assert_eq!(totals, model.capped_totals(&policy, now));
    let after = fields(&mut conn, &key).await;
    assert!(after.iter().any(|f| f == "s"), "{after:?}");
    for name in OLD_STATE_FIELDS {
        assert!(!after.iter().any(|f| f == name), "{name} is replaced by s: {after:?}");
    }
    assert_reads_match(&store, &uid, &model, &policy, now).await;

    // More random traffic on the upgraded meter.
    for _ in 0..100 {
        now = now.plus_ms(rng.range(0, 40) * MS_PER_MINUTE);
        let batch: Vec<UsageReport> =
            (0..rng.range(1, 3)).map(|_| random_report(&mut rng, &policy, now, &mut sessions)).collect();
        let (outcomes, totals) = store.record_and_read(&uid, &batch, &policy, now).await.expect("record");
        let want: Vec<_> = batch.iter().map(|r| model.record(r, retention, now)).collect();
        assert_eq!(outcomes, want);
        assert_eq!(totals, model.capped_totals(&policy, now));
    }
    assert_reads_match(&store, &uid, &model, &policy, now).await;
    purge(&mut conn, &prefix).await;
}

#[tokio::test]
async fn reports_the_previous_script_records_after_the_upgrade_still_count() {
    let Case { prefix, store, mut conn, policy, retention, uid, key } = case("mixed").await;

    // Old and new replicas taking turns on one user, as during a rolling upgrade.
    let mut rng = Rng(0x5EED_0013);
    let mut sessions = BTreeMap::new();
    let mut model = UserMeter::default();
    let mut now = T0.plus_ms(9 * MS_PER_DAY);
    for round in 0..150 {
        now = now.plus_ms(rng.range(0, 30) * MS_PER_MINUTE);
        let batch: Vec<UsageReport> =
            (0..rng.range(1, 3)).map(|_| random_report(&mut rng, &policy, now, &mut sessions)).collect();
        if round % 3 == 1 {
            old_record(&mut conn, &store, &uid, &batch, &policy, now).await;
            for report in &batch {
                model.record(report, retention, now);
            }
        } else {
            let (outcomes, totals) = store.record_and_read(&uid, &batch, &policy, now).await.expect("record");
            let want: Vec<_> = batch.iter().map(|r| model.record(r, retention, now)).collect();
            assert_eq!(outcomes, want, "round {round}");
            assert_eq!(totals, model.capped_totals(&policy, now), "round {round}");
            if outcomes.iter().any(|o| !o.duplicate) {
                // (A batch of duplicates only records nothing, so it writes nothing either.)
                let names = fields(&mut conn, &key).await;
                assert!(!names.iter().any(|f| f == "hz"), "a recording call leaves no old state field: {names:?}");
            }
        }
    }
    assert_reads_match(&store, &uid, &model, &policy, now).await;
    purge(&mut conn, &prefix).await;
}
