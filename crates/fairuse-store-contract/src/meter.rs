//! The usage meter contract: every answer must equal what the domain's `UserMeter` computes from
//! the same reports (the reference model), and a few literal totals pin the model itself down.

use fairuse_domain::classifier::UsageShape;
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::policy::Policy;
use fairuse_domain::store::UsageMeterStore;
use fairuse_domain::time::{MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{RecordOutcome, SpeechAmount, UsageReport, UserMeter, WindowTotals, recovery_at};

use crate::support::{T0, check_prefix, days, hours, is_mine, uid};

fn minutes(m: i64) -> i64 {
    m * MS_PER_MINUTE
}

fn delta(lane: Lane, ms: i64, at: Option<Timestamp>) -> UsageReport {
    UsageReport { at, ..UsageReport::delta(lane, ms) }
}

fn keyed(lane: Lane, ms: i64, key: &str) -> UsageReport {
    UsageReport { idempotency_key: Some(key.into()), ..UsageReport::delta(lane, ms) }
}

fn session(session_id: &str, total_ms: i64, stt_ms: i64) -> UsageReport {
    UsageReport {
        lane: Lane::Realtime,
        amount: SpeechAmount::Cumulative { session_id: session_id.into(), total_ms },
        at: None,
        idempotency_key: None,
        stt_ms,
    }
}

fn added(speech: i64, stt: i64) -> RecordOutcome {
    RecordOutcome { speech_added_ms: speech, stt_added_ms: stt, duplicate: false }
}

const DUPLICATE: RecordOutcome = RecordOutcome { speech_added_ms: 0, stt_added_ms: 0, duplicate: true };

/// The store under test beside a `UserMeter` fed the same reports at the same instants.
struct Mirror<'a> {
    store: &'a dyn UsageMeterStore,
    uid: Uid,
    model: UserMeter,
    policy: Policy,
}

impl<'a> Mirror<'a> {
    fn new(store: &'a dyn UsageMeterStore, uid: Uid) -> Self {
        Mirror { store, uid, model: UserMeter::default(), policy: Policy::default() }
    }

    /// Records through the store and the model; asserts outcomes and totals agree. Returns both.
    async fn record(
        &mut self,
        step: &str,
        reports: &[UsageReport],
        now: Timestamp,
    ) -> (Vec<RecordOutcome>, WindowTotals) {
        for r in reports {
            if let Err(e) = r.validate(&self.policy, now) {
                panic!("{step}: the contract itself sent an invalid report: {e}");
            }
        }
        let got = self
            .store
            .record_and_read(&self.uid, reports, &self.policy, now)
            .await
            .unwrap_or_else(|e| panic!("{step}: record_and_read failed: {e}"));
        let retention = self.policy.metering.retention.ms();
        let want: Vec<RecordOutcome> = reports.iter().map(|r| self.model.record(r, retention, now)).collect();
        assert_eq!(got.0, want, "{step}: record_and_read must return one outcome per report, in order");
        assert_eq!(
            got.1,
            self.model.capped_totals(&self.policy, now),
            "{step}: record_and_read must return the capped window totals after the reports"
        );
        got
    }

    async fn totals(&self, step: &str, now: Timestamp) -> WindowTotals {
        let got = self
            .store
            .read_totals(&self.uid, &self.policy, now)
            .await
            .unwrap_or_else(|e| panic!("{step}: read_totals failed: {e}"));
        assert_eq!(got, self.model.capped_totals(&self.policy, now), "{step}: read_totals");
        got
    }
}

/// A user the store never saw reads as zero everywhere.
pub async fn meter_unknown_user_reads_zero(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let policy = Policy::default();
    let who = uid(prefix, "never-seen");
    let now = T0.plus_ms(hours(1));
    let zeros = vec![0; policy.windows.len()];
    assert_eq!(store.read_totals(&who, &policy, now).await.expect("read_totals"), zeros, "unknown user totals");
    assert_eq!(store.recovery_at(&who, 1440, 0, now).await.expect("recovery_at"), None, "unknown user recovery");
    let m = now.minute();
    let series = store.minute_series(&who, Lane::Realtime, m - 100, m).await.expect("minute_series");
    assert!(series.is_empty(), "unknown user minute series: {series:?}");
    let shape = store.usage_shape(&who, days(7), now).await.expect("usage_shape");
    assert_eq!(shape, UsageShape::default(), "unknown user usage shape");
    let (outcomes, totals) = store.record_and_read(&who, &[], &policy, now).await.expect("record_and_read of nothing");
    assert!(outcomes.is_empty(), "no reports, no outcomes");
    assert_eq!(totals, zeros, "no reports, zero totals");
}

/// Deltas land in the minute of `at` (or now); only realtime and sync_fresh count toward caps;
/// a window of M minutes is exactly the buckets `m_now - M < m <= m_now`.
pub async fn meter_records_and_reads_capped_windows(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mut user = Mirror::new(store, uid(prefix, "windows"));
    assert_eq!(
        user.policy.window_minutes(),
        &[1440, 4320, 10080],
        "the contract assumes the shipped windows (daily, three_day, weekly)"
    );
    let now = T0.plus_ms(hours(10) + 30_000);

    let (_, totals) = user.record("realtime now", &[delta(Lane::Realtime, 60_000, None)], now).await;
    assert_eq!(totals, vec![60_000; 3]);
    let thirty_min_ago = Some(now.minus_ms(minutes(30)));
    let (_, totals) = user.record("sync_fresh", &[delta(Lane::SyncFresh, 30_000, thirty_min_ago)], now).await;
    assert_eq!(totals, vec![90_000; 3], "sync_fresh counts toward caps");

    let uncapped = [delta(Lane::SyncBackfill, 500_000, None), delta(Lane::CustomStt, 700_000, None)];
    let (outcomes, totals) = user.record("uncapped lanes", &uncapped, now).await;
    assert_eq!(outcomes, vec![added(500_000, 0), added(700_000, 0)], "uncapped lanes are still metered");
    assert_eq!(totals, vec![90_000; 3], "sync_backfill and custom_stt never count toward caps");

    let edges = [
        delta(Lane::Realtime, 1_000, Some(now.minus_ms(minutes(1440)))),
        delta(Lane::Realtime, 2_000, Some(now.minus_ms(minutes(1439)))),
        delta(Lane::SyncFresh, 4_000, Some(now.minus_ms(minutes(4320)))),
        delta(Lane::Realtime, 8_000, Some(now.minus_ms(minutes(4319)))),
        delta(Lane::Realtime, 16_000, Some(now.minus_ms(minutes(10080)))),
        delta(Lane::Realtime, 32_000, Some(now.minus_ms(minutes(10079)))),
    ];
    let (_, totals) = user.record("window edges", &edges, now).await;
    assert_eq!(
        totals,
        vec![92_000, 101_000, 137_000],
        "a window of M minutes holds m_now - M < m <= m_now: the left edge minute is out, the next one in"
    );

    let (outcomes, _) = user.record("zero speech", &[delta(Lane::Realtime, 0, None)], now).await;
    assert_eq!(outcomes, vec![added(0, 0)]);

    let ahead = now.plus_ms(minutes(3));
    let (_, totals) = user.record("future-stamped", &[delta(Lane::Realtime, 64_000, Some(ahead))], now).await;
    assert_eq!(totals, vec![92_000, 101_000, 137_000], "speech stamped in the future is not in today's window yet");
    let later = user.totals("the future minute arrives", ahead).await;
    assert_eq!(
        later[0],
        90_000 + 64_000,
        "three minutes on, the future-stamped minute is in the daily window and minute m-1439 has left it"
    );

    user.totals("one day later", now.plus_ms(days(1))).await;
    user.totals("four days later", now.plus_ms(days(4))).await;
    let gone = user.totals("eight days later", now.plus_ms(days(8))).await;
    assert_eq!(gone, vec![0; 3], "everything has left every window after eight days");

    let other = Mirror::new(store, uid(prefix, "windows-other"));
    let untouched = other.totals("another user", now).await;
    assert_eq!(untouched, vec![0; 3], "usage is per user");
}

/// The same idempotency key per uid and lane counts once within the retention period.
pub async fn meter_counts_idempotency_keys_once(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mut user = Mirror::new(store, uid(prefix, "idem"));
    let now = T0.plus_ms(hours(5));
    let (outcomes, totals) = user.record("first k1", &[keyed(Lane::Realtime, 10_000, "k1")], now).await;
    assert_eq!(outcomes, vec![added(10_000, 0)]);
    assert_eq!(totals, vec![10_000; 3]);
    let (outcomes, totals) = user.record("k1 again", &[keyed(Lane::Realtime, 10_000, "k1")], now).await;
    assert_eq!(outcomes, vec![DUPLICATE], "a repeated key is a duplicate");
    assert_eq!(totals, vec![10_000; 3], "a duplicate adds nothing");

    let batch = [keyed(Lane::Realtime, 5_000, "k2"), keyed(Lane::Realtime, 5_000, "k2")];
    let (outcomes, _) = user.record("k2 twice in one call", &batch, now).await;
    assert_eq!(outcomes, vec![added(5_000, 0), DUPLICATE], "reports of one call are applied in order");

    let (outcomes, totals) = user.record("k1 on another lane", &[keyed(Lane::SyncFresh, 7_000, "k1")], now).await;
    assert_eq!(outcomes, vec![added(7_000, 0)], "keys are per lane");
    assert_eq!(totals, vec![22_000; 3]);

    let hour_later = now.plus_ms(hours(1));
    let (outcomes, _) = user.record("k1 an hour later", &[keyed(Lane::Realtime, 10_000, "k1")], hour_later).await;
    assert_eq!(outcomes, vec![DUPLICATE], "keys are remembered across calls");

    let mut other = Mirror::new(store, uid(prefix, "idem-other"));
    let (outcomes, _) = other.record("k1 for another user", &[keyed(Lane::Realtime, 10_000, "k1")], now).await;
    assert_eq!(outcomes, vec![added(10_000, 0)], "keys are per user");

    let retention = user.policy.metering.retention.ms();
    let edge = now.plus_ms(retention - 1);
    let (outcomes, _) = user.record("k1 just inside retention", &[keyed(Lane::Realtime, 1_000, "k1")], edge).await;
    assert_eq!(outcomes, vec![DUPLICATE], "a key is remembered for the whole retention period");
    let after = now.plus_ms(retention);
    let (outcomes, _) = user.record("k1 after retention", &[keyed(Lane::Realtime, 1_000, "k1")], after).await;
    assert_eq!(outcomes, vec![added(1_000, 0)], "a key older than the retention period counts again");
}

/// Cumulative session reports count only the increase over the largest total seen, for speech
/// and for STT ms; a duplicate (by idempotency key) does not move the session's maximum.
pub async fn meter_counts_only_session_increases(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mut user = Mirror::new(store, uid(prefix, "sess"));
    let now = T0.plus_ms(hours(2));
    let (o, _) = user.record("s1 starts", &[session("s1", 60_000, 70_000)], now).await;
    assert_eq!(o, vec![added(60_000, 70_000)]);
    let (o, _) = user.record("s1 grows", &[session("s1", 90_000, 100_000)], now).await;
    assert_eq!(o, vec![added(30_000, 30_000)], "only the increase counts");
    let (o, _) = user.record("s1 stale retry", &[session("s1", 80_000, 90_000)], now).await;
    assert_eq!(o, vec![added(0, 0)], "a smaller total (a late retry) adds nothing and is not a duplicate");
    let (o, _) = user.record("s1 same total", &[session("s1", 90_000, 100_000)], now).await;
    assert_eq!(o, vec![added(0, 0)]);
    let (o, _) = user.record("s2 is separate", &[session("s2", 10_000, 10_000)], now).await;
    assert_eq!(o, vec![added(10_000, 10_000)]);

    let with_key = |total, stt| UsageReport { idempotency_key: Some("k".into()), ..session("s1", total, stt) };
    let (o, _) = user.record("s1 with key", &[with_key(120_000, 130_000)], now).await;
    assert_eq!(o, vec![added(30_000, 30_000)]);
    let (o, _) = user.record("s1 duplicate key", &[with_key(130_000, 140_000)], now).await;
    assert_eq!(o, vec![DUPLICATE]);
    let (o, _) = user.record("s1 after the duplicate", &[session("s1", 125_000, 135_000)], now).await;
    assert_eq!(o, vec![added(5_000, 5_000)], "a duplicate report must not raise the session maximum");

    let ten_min_later = now.plus_ms(minutes(10));
    let (o, totals) = user.record("s1 ten minutes later", &[session("s1", 185_000, 195_000)], ten_min_later).await;
    assert_eq!(o, vec![added(60_000, 60_000)]);
    assert_eq!(totals, vec![195_000; 3], "sessions add their increases to the capped windows");
    let m = ten_min_later.minute();
    let series = store.minute_series(&user.uid, Lane::Realtime, m, m).await.expect("minute_series");
    assert_eq!(series, vec![(m, 60_000)], "a session's increase lands in the minute it was reported");

    let mut other = Mirror::new(store, uid(prefix, "sess-other"));
    let (o, _) = other.record("s1 for another user", &[session("s1", 1_000, 1_000)], now).await;
    assert_eq!(o, vec![added(1_000, 1_000)], "sessions are per user");
}

/// `recovery_at` is when the capped total falls back to the cap if the user stops now.
pub async fn meter_recovery_at(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mut user = Mirror::new(store, uid(prefix, "recovery"));
    let now = T0.plus_ms(hours(12));
    let m = now.minute();
    let at = |min_ago: i64| Some(now.minus_ms(minutes(min_ago)));
    let reports = [
        delta(Lane::Realtime, 60_000, at(100)),
        delta(Lane::SyncFresh, 60_000, at(50)),
        delta(Lane::SyncBackfill, 600_000, at(110)),
        delta(Lane::Realtime, 30_000, at(10)),
    ];
    user.record("usage", &reports, now).await;
    let minute_start = |minute: i64| Some(Timestamp::from_millis(minute * MS_PER_MINUTE));
    let cases = [
        (120, 90_000, minute_start(m - 100 + 120)),
        (120, 150_000, None),
        (120, 149_999, minute_start(m - 100 + 120)),
        (120, 20_000, minute_start(m - 10 + 120)),
        (30, 0, minute_start(m - 10 + 30)),
        (30, 30_000, None),
    ];
    for (window, cap, want) in cases {
        let got = store.recovery_at(&user.uid, window, cap, now).await.expect("recovery_at");
        assert_eq!(got, want, "recovery_at(window {window} min, cap {cap} ms)");
        assert_eq!(got, recovery_at(&user.model, window, cap, now), "recovery_at must match the domain's");
    }

    let mut ahead = Mirror::new(store, uid(prefix, "recovery-ahead"));
    let reports = [delta(Lane::Realtime, 60_000, at(30)), delta(Lane::Realtime, 60_000, Some(now.plus_ms(minutes(3))))];
    ahead.record("usage stamped in the future", &reports, now).await;
    let got = store.recovery_at(&ahead.uid, 60, 30_000, now).await.expect("recovery_at");
    assert_eq!(
        got,
        minute_start(m + 3 + 60),
        "recovery waits until speech stamped in the future has left the window too"
    );
    assert_eq!(got, recovery_at(&ahead.model, 60, 30_000, now), "recovery_at must match the domain's");
}

/// `minute_series` is one lane's `(minute, ms)` in `from..=to`, ascending.
pub async fn meter_minute_series(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mut user = Mirror::new(store, uid(prefix, "series"));
    let now = T0.plus_ms(hours(3));
    let m = now.minute();
    let at = |minute: i64| Some(Timestamp::from_millis(minute * MS_PER_MINUTE + 5_000));
    let reports = [
        delta(Lane::Realtime, 1_000, at(m - 5)),
        delta(Lane::Realtime, 2_000, at(m - 3)),
        delta(Lane::Realtime, 500, at(m - 3)),
        delta(Lane::Realtime, 4_000, None),
        delta(Lane::SyncFresh, 7_000, at(m - 3)),
        delta(Lane::SyncBackfill, 9_000, at(m - 4)),
        keyed(Lane::Realtime, 100, "once"),
        keyed(Lane::Realtime, 100, "once"),
    ];
    user.record("usage", &reports, now).await;
    let cases = [
        (Lane::Realtime, m - 5, m - 3, vec![(m - 5, 1_000), (m - 3, 2_500)]),
        (Lane::Realtime, m - 4, m, vec![(m - 3, 2_500), (m, 4_100)]),
        (Lane::Realtime, m - 2, m - 1, vec![]),
        (Lane::Realtime, m, m - 5, vec![]),
        (Lane::SyncFresh, m - 10, m, vec![(m - 3, 7_000)]),
        (Lane::SyncBackfill, m - 10, m, vec![(m - 4, 9_000)]),
        (Lane::CustomStt, m - 10, m, vec![]),
    ];
    for (lane, from, to, want) in cases {
        let got = store.minute_series(&user.uid, lane, from, to).await.expect("minute_series");
        assert_eq!(got, want, "minute_series({}, {from}..={to}) relative to m_now = {m}", lane.as_str());
    }
}

/// `usage_shape` equals the domain's `UsageShape::measure` of the same buckets.
pub async fn meter_usage_shape(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mut user = Mirror::new(store, uid(prefix, "shape"));
    let now = T0.plus_ms(days(1) + hours(12));
    let day_start = T0.plus_ms(days(1));
    let mut reports: Vec<UsageReport> =
        (0..30).map(|i| delta(Lane::Realtime, 60_000, Some(day_start.plus_ms(hours(1) + minutes(i))))).collect();
    reports.extend((0..5).map(|i| delta(Lane::SyncFresh, 30_000, Some(day_start.plus_ms(hours(5) + minutes(2 * i))))));
    reports.push(delta(Lane::SyncBackfill, 60_000, Some(day_start.plus_ms(hours(8)))));
    reports.push(delta(Lane::Realtime, 20_000, Some(now.minus_ms(days(7) + minutes(30)))));
    user.record("usage", &reports, now).await;

    let shape = store.usage_shape(&user.uid, days(7), now).await.expect("usage_shape");
    let want = UsageShape {
        speech_ms: 30 * 60_000 + 5 * 30_000,
        active_minutes: 35,
        longest_run_minutes: 30,
        hours_of_day_active: 2,
        mean_density_ms: (30 * 60_000 + 5 * 30_000) / 35,
    };
    assert_eq!(shape, want, "usage shape over seven days (backfill and older speech excluded)");
    assert_eq!(shape, UsageShape::measure(&user.model, days(7), now), "usage_shape must match the domain's");
    for lookback in [hours(1), hours(8), days(8)] {
        let got = store.usage_shape(&user.uid, lookback, now).await.expect("usage_shape");
        assert_eq!(got, UsageShape::measure(&user.model, lookback, now), "usage_shape with lookback {lookback} ms");
    }
}

/// A store that keeps window totals incrementally (running sums, amortised pruning) must give
/// the model's answers on every path its shortcuts take: reports every minute, pauses of minutes,
/// hours, days and longer than the retention, `now` on both sides of UTC midnights and hour
/// boundaries, reports stamped at the oldest minute still allowed and in the future, checks at
/// an earlier `now` than the last report, and windows that are not whole hours or days.
/// Deterministic (xorshift), so a failure replays; three seeds, 250 steps each.
pub async fn meter_stays_exact_over_random_sequences(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mut policy = Policy::default();
    for (name, length) in [("one_minute", 1), ("odd", 97), ("day_and_a_bit", 1_501)] {
        policy.windows.push(fairuse_domain::policy::WindowDef {
            name: name.into(),
            length: fairuse_domain::time::DurationMs::minutes(length),
        });
    }
    policy.validate().unwrap_or_else(|e| panic!("the contract's policy is invalid: {e}"));
    let retention = policy.metering.retention.ms();
    let retention_minutes = retention / MS_PER_MINUTE;
    for seed in [0x9E37_79B9_7F4A_7C15u64, 0xD1B5_4A32_D192_ED03, 0x2545_F491_4F6C_DD1D] {
        let mut rng = seed;
        let mut next = move |lo: i64, hi: i64| -> i64 {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            lo + (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % (hi - lo + 1) as u64) as i64
        };
        let mut user = Mirror::new(store, uid(prefix, &format!("exact-{seed:x}")));
        user.policy = policy.clone();
        let mut now = T0.plus_ms(days(10) + minutes(next(0, 1_439)) + next(0, 59_999));
        // Reports are never stamped below the newest `now - retention` seen: the horizon. (With a
        // clock that steps back, a store may drop such a bucket where the model keeps it until
        // its next prune; it is outside every window either way.)
        let mut newest_now = now;
        for step in 0..250 {
            now = match next(0, 19) {
                0 => now.plus_ms(days(next(1, 3)) + minutes(next(0, 1_439))),
                1 => now.plus_ms(retention + minutes(next(0, 3_000))),
                2 => Timestamp::from_millis((now.utc_day() + 1) * days(1) - minutes(next(0, 2)) + next(0, 59_999)),
                3 => now.plus_ms(hours(next(1, 30))),
                4 => now.minus_ms(minutes(next(1, 5))),
                _ => now.plus_ms(minutes(next(0, 2)) + next(0, 999)),
            };
            if now.millis() > newest_now.millis() {
                newest_now = now;
            }
            let floor = newest_now.minute() - retention_minutes + 1;
            let reports: Vec<UsageReport> = (0..next(0, 3))
                .map(|_| {
                    let lane = Lane::ALL[next(0, 3) as usize];
                    let at = match next(0, 5) {
                        0 => Some(Timestamp::from_millis(
                            floor.max(now.minute() - retention_minutes + 1) * MS_PER_MINUTE,
                        )),
                        1 => Some(now.plus_ms(minutes(next(1, 4)))),
                        2 => Some(now.minus_ms(minutes(next(0, 2_000)))),
                        _ => None,
                    };
                    let at = at.filter(|t| t.minute() >= floor);
                    let ms = [1, 999, 30_000, 60_000][next(0, 3) as usize];
                    let key = (next(0, 4) == 0).then(|| format!("k{}", next(0, 5)));
                    UsageReport { at, idempotency_key: key, ..UsageReport::delta(lane, ms) }
                })
                .collect();
            user.record(&format!("seed {seed:x} step {step}"), &reports, now).await;
            let later = now.plus_ms(minutes(next(0, 90)));
            user.totals(&format!("seed {seed:x} step {step}, a little later"), later).await;
            let earlier = now.minus_ms(minutes(next(0, 3)));
            if earlier.millis() >= newest_now.millis() - minutes(3) {
                user.totals(&format!("seed {seed:x} step {step}, a little earlier"), earlier).await;
            }
        }
    }
}

/// The whole usage meter contract.
/// `users_since` lists every user with a bucket of any lane from a minute on, once each, sorted;
/// a report that added no speech leaves no bucket and lists nobody.
pub async fn meter_lists_users_with_usage_since(store: &dyn UsageMeterStore, prefix: &str) {
    check_prefix(prefix);
    let mine_owned = format!("{prefix}.since");
    let mine = mine_owned.as_str();
    let early = uid(mine, "x-early");
    let late = uid(mine, "m-late");
    let silent = uid(mine, "a-silent");
    let policy = Policy::default();
    let listed = |from: i64| async move {
        let all = store.users_since(from).await.unwrap_or_else(|e| panic!("users_since({from}) failed: {e}"));
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(all, sorted, "users_since answers each user once, sorted by uid");
        all.into_iter().filter(|u| is_mine(mine, u.as_str())).collect::<Vec<Uid>>()
    };
    assert_eq!(listed(0).await, Vec::<Uid>::new(), "no usage recorded yet");

    let t_early = T0.plus_ms(hours(1));
    let reports =
        [delta(Lane::Realtime, 30_000, None), delta(Lane::SyncBackfill, 5_000, Some(t_early.minus_ms(minutes(3))))];
    store.record_and_read(&early, &reports, &policy, t_early).await.expect("record the early user");
    let t_late = T0.plus_ms(hours(3));
    // Only a lane that caps do not count: metered all the same, so listed.
    store.record_and_read(&late, &[delta(Lane::CustomStt, 1_000, None)], &policy, t_late).await.expect("record");
    let no_speech = UsageReport { stt_ms: 5_000, ..delta(Lane::Realtime, 0, None) };
    store.record_and_read(&silent, &[no_speech], &policy, t_late).await.expect("record a report without speech");

    let m_early = t_early.minute();
    assert_eq!(listed(m_early - 3).await, vec![late.clone(), early.clone()], "both users, sorted by uid, once each");
    assert_eq!(listed(m_early).await, vec![late.clone(), early.clone()], "a bucket at the minute itself counts");
    assert_eq!(listed(m_early + 1).await, vec![late.clone()], "the early user has nothing after their minute");
    assert_eq!(listed(t_late.minute()).await, vec![late.clone()]);
    assert_eq!(listed(t_late.minute() + 1).await, Vec::<Uid>::new(), "nothing from the next minute on");
}

pub async fn meter_contract(store: &dyn UsageMeterStore, prefix: &str) {
    meter_unknown_user_reads_zero(store, prefix).await;
    meter_records_and_reads_capped_windows(store, prefix).await;
    meter_counts_idempotency_keys_once(store, prefix).await;
    meter_counts_only_session_increases(store, prefix).await;
    meter_recovery_at(store, prefix).await;
    meter_minute_series(store, prefix).await;
    meter_usage_shape(store, prefix).await;
    meter_lists_users_with_usage_since(store, prefix).await;
    meter_stays_exact_over_random_sequences(store, prefix).await;
}
