//! Property tests of `UserMeter` (minute buckets, hour roll-ups, pruning, idempotency keys and
//! cumulative session totals) against a naive reference model: a plain list of accepted
//! `(lane, minute, ms)` entries summed by brute force, its own idempotency-key map and its own
//! per-session maxima. The reference decides acceptance from the SPEC section 3 rules by itself
//! and must agree with `UsageReport::validate`.

use std::collections::HashMap;

use fairuse_domain::ids::Lane;
use fairuse_domain::policy::Policy;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{RecordOutcome, SpeechAmount, UsageReport, UserMeter, recovery_at};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// 2026-03-20T00:00:00Z, plus a random offset per case.
const T0_MS: i64 = 1_773_964_800_000;
/// The retention and limits of the shipped default policy (checked against the policy below).
const RETENTION_MS: i64 = 8 * MS_PER_DAY;
const RETENTION_MINUTES: i64 = 8 * 1440;
const SKEW_MS: i64 = 5 * MS_PER_MINUTE;
const MAX_REPORT_MS: i64 = MS_PER_DAY;
/// Windows that sit on the meter's internal edges: the hour roll-up starts at 120 minutes.
const EDGE_WINDOWS: [i64; 9] = [1, 2, 59, 60, 61, 119, 120, 121, RETENTION_MINUTES];
const SESSIONS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];

fn config(cases: u32) -> Config {
    // No regression files: a failure prints its minimal input, and this crate's tests/ is the
    // only place these tests may write to.
    Config { cases, failure_persistence: None, ..Config::default() }
}

#[derive(Debug, Clone)]
enum At {
    Absent,
    /// `ms` into the oldest minute that is still accepted.
    RetentionEdge(i64),
    /// `ms` into the minute just before it: always refused.
    BeyondRetention(i64),
    /// Exactly `now + 5 min`.
    SkewEdge,
    /// `now + 5 min + 1 ms`.
    BeyondSkew,
    Past(i64),
    Future(i64),
}

#[derive(Debug, Clone)]
enum Key {
    Absent,
    Pool(usize),
    /// 200 characters: the longest accepted key.
    Longest,
    Empty,
    TooLong,
}

#[derive(Debug, Clone)]
enum Amount {
    Delta(i64),
    /// `session` indexes [`SESSIONS`]; 4 is the empty id and 5 one of 129 characters.
    Cumulative {
        session: usize,
        total_ms: i64,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Advance(i64),
    Report {
        lane: Lane,
        amount: Amount,
        at: At,
        key: Key,
        stt_ms: i64,
    },
    /// Sends an earlier report again, byte for byte (a client retry).
    Replay(Index),
    /// Sends an earlier report again on another lane: same key, different lane.
    ReplayOnLane(Index, Lane),
    /// Moves `now` to `first_seen + retention + delta` of a key the reference knows.
    AdvanceToKeyExpiry(Index, i64),
}

fn lane() -> impl Strategy<Value = Lane> {
    prop::sample::select(Lane::ALL.to_vec())
}

fn advance() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0i64..=120_000,
        3 => (0i64..=1440).prop_map(|m| m * MS_PER_MINUTE),
        1 => (0i64..=3 * 1440).prop_map(|m| m * MS_PER_MINUTE),
        1 => 0i64..=3 * MS_PER_DAY,
    ]
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        4 => Just(At::Absent),
        2 => (0..MS_PER_MINUTE).prop_map(At::RetentionEdge),
        2 => (0..MS_PER_MINUTE).prop_map(At::BeyondRetention),
        1 => Just(At::SkewEdge),
        1 => Just(At::BeyondSkew),
        3 => (0..=RETENTION_MS + MS_PER_MINUTE).prop_map(At::Past),
        2 => (0..=3 * MS_PER_MINUTE).prop_map(At::Past),
        2 => (0..=SKEW_MS).prop_map(At::Future),
    ]
}

fn key(pool: usize) -> impl Strategy<Value = Key> {
    prop_oneof![
        4 => Just(Key::Absent),
        5 => (0..pool).prop_map(Key::Pool),
        1 => Just(Key::Longest),
        1 => Just(Key::Empty),
        1 => Just(Key::TooLong),
    ]
}

fn amount(cumulative: bool) -> BoxedStrategy<Amount> {
    let delta = prop_oneof![
        6 => (0i64..=300_000).prop_map(Amount::Delta),
        1 => prop::sample::select(vec![-1, 0, MAX_REPORT_MS, MAX_REPORT_MS + 1]).prop_map(Amount::Delta),
    ];
    if !cumulative {
        return delta.boxed();
    }
    prop_oneof![
        5 => delta,
        // Coarse totals from a small range, so a session's reports often arrive out of order.
        5 => (0..SESSIONS.len(), 0i64..=60).prop_map(|(session, t)| Amount::Cumulative { session, total_ms: t * 10_000 }),
        1 => (0usize..6, prop::sample::select(vec![-1, 0, RETENTION_MS, RETENTION_MS + 1]))
            .prop_map(|(session, total_ms)| Amount::Cumulative { session, total_ms }),
    ]
    .boxed()
}

fn stt_ms() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => (0i64..=60).prop_map(|t| t * 10_000),
        1 => prop::sample::select(vec![-1, MAX_REPORT_MS, MAX_REPORT_MS + 1, RETENTION_MS, RETENTION_MS + 1]),
    ]
}

fn ops(max_len: usize, key_pool: usize, cumulative: bool) -> impl Strategy<Value = Vec<Op>> {
    let report = (lane(), amount(cumulative), at(), key(key_pool), stt_ms())
        .prop_map(|(lane, amount, at, key, stt_ms)| Op::Report { lane, amount, at, key, stt_ms });
    let op = prop_oneof![
        3 => advance().prop_map(Op::Advance),
        8 => report,
        2 => any::<Index>().prop_map(Op::Replay),
        1 => (any::<Index>(), lane()).prop_map(|(i, l)| Op::ReplayOnLane(i, l)),
        1 => (any::<Index>(), -1i64..=1).prop_map(|(i, d)| Op::AdvanceToKeyExpiry(i, d)),
    ];
    prop::collection::vec(op, 1..=max_len)
}

/// Mostly keyed delta reports from a large key pool, so the meter's key map grows past the 64
/// entries at which it starts sweeping expired keys.
fn keyed_ops(len: std::ops::RangeInclusive<usize>, key_pool: usize) -> impl Strategy<Value = Vec<Op>> {
    let report = (
        lane(),
        0i64..=120_000,
        prop_oneof![3 => Just(At::Absent), 1 => (0..=3 * MS_PER_MINUTE).prop_map(At::Past)],
        0..key_pool,
    )
        .prop_map(|(lane, ms, at, k)| Op::Report {
            lane,
            amount: Amount::Delta(ms),
            at,
            key: Key::Pool(k),
            stt_ms: 0,
        });
    let op = prop_oneof![
        12 => report,
        1 => (0i64..=3 * 1440).prop_map(|m| Op::Advance(m * MS_PER_MINUTE)),
        3 => any::<Index>().prop_map(Op::Replay),
        1 => (any::<Index>(), lane()).prop_map(|(i, l)| Op::ReplayOnLane(i, l)),
        2 => (any::<Index>(), -1i64..=1).prop_map(|(i, d)| Op::AdvanceToKeyExpiry(i, d)),
    ];
    prop::collection::vec(op, len)
}

fn key_text(key: &Key, key_names: &[String]) -> Option<String> {
    match key {
        Key::Absent => None,
        Key::Pool(i) => Some(key_names[*i].clone()),
        Key::Longest => Some("L".repeat(200)),
        Key::Empty => Some(String::new()),
        Key::TooLong => Some("T".repeat(201)),
    }
}

fn build_report(
    lane: Lane,
    amount: &Amount,
    at: &At,
    key: &Key,
    stt_ms: i64,
    now: Timestamp,
    key_names: &[String],
) -> UsageReport {
    let at = match at {
        At::Absent => None,
        At::RetentionEdge(ms) => {
            Some(Timestamp::from_millis((now.minute() - RETENTION_MINUTES + 1) * MS_PER_MINUTE + ms))
        }
        At::BeyondRetention(ms) => {
            Some(Timestamp::from_millis((now.minute() - RETENTION_MINUTES) * MS_PER_MINUTE + ms))
        }
        At::SkewEdge => Some(now.plus_ms(SKEW_MS)),
        At::BeyondSkew => Some(now.plus_ms(SKEW_MS + 1)),
        At::Past(ms) => Some(now.minus_ms(*ms)),
        At::Future(ms) => Some(now.plus_ms(*ms)),
    };
    let amount = match amount {
        Amount::Delta(ms) => SpeechAmount::Delta(*ms),
        Amount::Cumulative { session, total_ms } => {
            let session_id = match *session {
                i if i < SESSIONS.len() => SESSIONS[i].to_owned(),
                4 => String::new(),
                _ => "S".repeat(129),
            };
            SpeechAmount::Cumulative { session_id, total_ms: *total_ms }
        }
    };
    UsageReport { lane, amount, at, idempotency_key: key_text(key, key_names), stt_ms }
}

/// The naive model: everything accepted, kept forever, summed by brute force.
#[derive(Debug, Default)]
struct Reference {
    entries: Vec<(Lane, i64, i64)>,
    /// `(lane, key)` -> when first seen in the current retention period.
    keys: HashMap<(Lane, String), Timestamp>,
    /// session id -> (largest cumulative speech, largest cumulative stt, last report). A session
    /// silent for the whole retention period starts again from zero.
    sessions: HashMap<String, (i64, i64, Timestamp)>,
}

impl Reference {
    /// The fields a report breaks, by the rules of SPEC section 3 and the policy's limits.
    fn violations(report: &UsageReport, now: Timestamp) -> Vec<&'static str> {
        let mut bad = Vec::new();
        let stt_max = match &report.amount {
            SpeechAmount::Delta(ms) => {
                if !(0..=MAX_REPORT_MS).contains(ms) {
                    bad.push("speech_ms");
                }
                MAX_REPORT_MS
            }
            SpeechAmount::Cumulative { session_id, total_ms } => {
                if session_id.is_empty() || session_id.len() > 128 {
                    bad.push("session_id");
                }
                if !(0..=RETENTION_MS).contains(total_ms) {
                    bad.push("cumulative_speech_ms");
                }
                // A session's stt_ms is cumulative too, so it is bounded like its speech.
                RETENTION_MS
            }
        };
        if !(0..=stt_max).contains(&report.stt_ms) {
            bad.push("stt_ms");
        }
        if report.idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
            bad.push("idempotency_key");
        }
        if let Some(at) = report.at {
            let oldest_accepted_minute = now.minute() - RETENTION_MINUTES + 1;
            let latest_accepted_ms = now.millis() + SKEW_MS;
            if at.millis().div_euclid(MS_PER_MINUTE) < oldest_accepted_minute || at.millis() > latest_accepted_ms {
                bad.push("at");
            }
        }
        bad
    }

    fn record(&mut self, report: &UsageReport, now: Timestamp) -> RecordOutcome {
        if let Some(key) = &report.idempotency_key {
            let slot = (report.lane, key.clone());
            match self.keys.get(&slot) {
                Some(first) if now.millis() < first.millis() + RETENTION_MS => {
                    return RecordOutcome { speech_added_ms: 0, stt_added_ms: 0, duplicate: true };
                }
                _ => {
                    self.keys.insert(slot, now);
                }
            }
        }
        let (speech, stt) = match &report.amount {
            SpeechAmount::Delta(ms) => (*ms, report.stt_ms),
            SpeechAmount::Cumulative { session_id, total_ms } => {
                let (max_speech, max_stt) = match self.sessions.get(session_id) {
                    Some(&(speech, stt, last)) if now.millis() - last.millis() < RETENTION_MS => (speech, stt),
                    _ => (0, 0),
                };
                let speech = if *total_ms > max_speech { total_ms - max_speech } else { 0 };
                let stt = if report.stt_ms > max_stt { report.stt_ms - max_stt } else { 0 };
                self.sessions.insert(session_id.clone(), (max_speech.max(*total_ms), max_stt.max(report.stt_ms), now));
                (speech, stt)
            }
        };
        let minute = report.at.unwrap_or(now).millis().div_euclid(MS_PER_MINUTE);
        self.entries.push((report.lane, minute, speech));
        RecordOutcome { speech_added_ms: speech, stt_added_ms: stt, duplicate: false }
    }

    fn total(&self, lanes: &[Lane], minutes: i64, now: Timestamp) -> i64 {
        let m_now = now.millis().div_euclid(MS_PER_MINUTE);
        self.entries
            .iter()
            .filter(|(lane, m, _)| lanes.contains(lane) && m_now - minutes < *m && *m <= m_now)
            .map(|(_, _, ms)| ms)
            .sum()
    }

    fn capped_total(&self, minutes: i64, now: Timestamp) -> i64 {
        self.total(&[Lane::Realtime, Lane::SyncFresh], minutes, now)
    }

    /// Whether any capped speech is stamped after the minute of `now` (allowed by the skew).
    fn has_future_capped_speech(&self, now: Timestamp) -> bool {
        self.entries.iter().any(|(lane, m, ms)| lane.is_capped() && *m > now.minute() && *ms > 0)
    }
}

/// The system under test and the reference, driven by the same operations.
struct Harness {
    policy: Policy,
    meter: UserMeter,
    reference: Reference,
    now: Timestamp,
    sent: Vec<UsageReport>,
    key_names: Vec<String>,
    /// Compare the edge windows too, not only the policy's.
    edge_windows: bool,
}

impl Harness {
    fn new(start_offset_ms: i64, key_pool: usize) -> Harness {
        let policy = Policy::default();
        assert_eq!(policy.metering.retention.ms(), RETENTION_MS, "the reference assumes the default retention");
        assert_eq!(policy.metering.max_future_skew.ms(), SKEW_MS, "the reference assumes the default skew");
        assert_eq!(
            policy.metering.max_report_speech.ms(),
            MAX_REPORT_MS,
            "the reference assumes the default report limit"
        );
        let key_names =
            (0..key_pool).map(|i| KEYS.get(i).map_or_else(|| format!("key-{i}"), |k| (*k).to_owned())).collect();
        Harness {
            policy,
            meter: UserMeter::default(),
            reference: Reference::default(),
            now: Timestamp::from_millis(T0_MS + start_offset_ms),
            sent: Vec::new(),
            key_names,
            edge_windows: true,
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Advance(ms) => self.now = self.now.plus_ms(*ms),
            Op::AdvanceToKeyExpiry(pick, delta) => {
                let mut firsts: Vec<Timestamp> = self.reference.keys.values().copied().collect();
                firsts.sort();
                if !firsts.is_empty() {
                    let edge = pick.get(&firsts).plus_ms(RETENTION_MS + delta);
                    self.now = self.now.max(edge);
                }
            }
            Op::Report { lane, amount, at, key, stt_ms } => {
                let report = build_report(*lane, amount, at, key, *stt_ms, self.now, &self.key_names);
                self.send(report)?;
            }
            Op::Replay(pick) => {
                if !self.sent.is_empty() {
                    let report = pick.get(&self.sent).clone();
                    self.send(report)?;
                }
            }
            Op::ReplayOnLane(pick, lane) => {
                if !self.sent.is_empty() {
                    let report = UsageReport { lane: *lane, ..pick.get(&self.sent).clone() };
                    self.send(report)?;
                }
            }
        }
        self.compare_windows()
    }

    fn send(&mut self, report: UsageReport) -> Result<(), TestCaseError> {
        let expected = Reference::violations(&report, self.now);
        let got = report.validate(&self.policy, self.now);
        match &got {
            Ok(()) => prop_assert!(
                expected.is_empty(),
                "validate accepted {report:?} at {} but it breaks {expected:?}",
                self.now
            ),
            Err(e) => prop_assert!(
                expected.contains(&e.field.as_str()),
                "validate refused {report:?} at {} naming {:?}; the reference expected {expected:?}",
                self.now,
                e.field
            ),
        }
        if got.is_ok() {
            let outcome = self.meter.record(&report, self.policy.metering.retention.ms(), self.now);
            let want = self.reference.record(&report, self.now);
            prop_assert_eq!(outcome, want, "record outcome of {:?} at {}", report, self.now);
        }
        self.sent.push(report);
        Ok(())
    }

    fn windows(&self, extra: &[i64]) -> Vec<i64> {
        let edges: &[i64] = if self.edge_windows { &EDGE_WINDOWS } else { &[] };
        self.policy.window_minutes().iter().chain(edges).chain(extra).copied().collect()
    }

    fn compare_windows(&self) -> Result<(), TestCaseError> {
        self.compare_windows_with(&[])
    }

    fn compare_windows_with(&self, extra: &[i64]) -> Result<(), TestCaseError> {
        let now = self.now;
        for minutes in self.windows(extra) {
            prop_assert_eq!(
                self.meter.capped_total(minutes, now),
                self.reference.capped_total(minutes, now),
                "capped total of a {}-minute window at {}",
                minutes,
                now
            );
            for lane in Lane::ALL {
                prop_assert_eq!(
                    self.meter.lane_total(lane, minutes, now),
                    self.reference.total(&[lane], minutes, now),
                    "{} total of a {}-minute window at {}",
                    lane.as_str(),
                    minutes,
                    now
                );
            }
        }
        Ok(())
    }

    /// The recovery instant `t` for `(window, cap)` read at `at`: at `t` the window is at or
    /// under the cap, one minute earlier it was still over.
    fn check_recovery(&self, minutes: i64, cap_ms: i64, at: Timestamp) -> Result<(), TestCaseError> {
        let total_now = self.reference.capped_total(minutes, at);
        match recovery_at(&self.meter, minutes, cap_ms, at) {
            None => prop_assert!(
                total_now <= cap_ms,
                "no recovery instant for a {minutes}-minute window at {at}, but its total {total_now} is over the cap {cap_ms}"
            ),
            Some(t) => {
                prop_assert!(total_now > cap_ms, "recovery {t} for a window already at or under its cap at {at}");
                prop_assert!(t > at, "recovery instant {t} is not after {at}");
                let at_t = self.meter.capped_total(minutes, t);
                prop_assert_eq!(at_t, self.reference.capped_total(minutes, t));
                prop_assert!(
                    at_t <= cap_ms,
                    "at the recovery instant {} the {}-minute total {} is over the cap {}",
                    t,
                    minutes,
                    at_t,
                    cap_ms
                );
                let before = t.minus_ms(MS_PER_MINUTE);
                let at_before = self.meter.capped_total(minutes, before);
                prop_assert!(
                    at_before > cap_ms,
                    "one minute before the recovery instant {} the {}-minute total {} is already within the cap {}",
                    t,
                    minutes,
                    at_before,
                    cap_ms
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Every window of every lane matches the brute-force sum after every operation, and every
    /// record outcome (speech and stt added, duplicate) matches the reference.
    #[test]
    fn meter_matches_the_brute_force_reference_after_every_operation(
        start_offset_ms in 0..MS_PER_DAY,
        extra_windows in prop::collection::vec(1i64..=RETENTION_MINUTES, 4),
        ops in ops(60, KEYS.len(), true),
    ) {
        let mut h = Harness::new(start_offset_ms, KEYS.len());
        for op in &ops {
            h.apply(op)?;
            h.compare_windows_with(&extra_windows)?;
        }
    }


    /// `recovery_at` returns the first minute at which the window is back within the cap.
    #[test]
    fn recovery_instant_is_the_first_minute_back_within_the_cap(
        start_offset_ms in 0..MS_PER_DAY,
        window in prop_oneof![prop::sample::select(vec![1i64, 60, 120, 1440, 4320, 10080, RETENTION_MINUTES]), 1i64..=RETENTION_MINUTES],
        cap_fraction in 0.0f64..1.2,
        ops in ops(40, KEYS.len(), true),
    ) {
        let mut h = Harness::new(start_offset_ms, KEYS.len());
        for op in &ops {
            h.apply(op)?;
        }
        // Speech stamped up to 5 minutes ahead joins the window later; read once it is all in the
        // past, and at `now` too when nothing is stamped ahead.
        let mut reads = vec![h.now.plus_ms(SKEW_MS)];
        if !h.reference.has_future_capped_speech(h.now) {
            reads.push(h.now);
        }
        for at in reads {
            let total = h.reference.capped_total(window, at);
            let scaled = (total as f64 * cap_fraction) as i64;
            for cap in [0, scaled, total - 1, total, 7_200_000] {
                if cap >= 0 {
                    h.check_recovery(window, cap, at)?;
                }
            }
            for (&minutes, cap) in h.policy.window_minutes().iter().zip([7_200_000, 28_800_000, 36_000_000]) {
                h.check_recovery(minutes, cap, at)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Enough distinct keys to make the meter sweep its key map (more than 64 keys): the sweep
    /// must never forget a key that is still inside its retention period, nor keep one past it.
    #[test]
    fn sweeping_many_idempotency_keys_never_forgets_a_live_key(
        start_offset_ms in 0..MS_PER_DAY,
        ops in keyed_ops(100..=160, 60),
    ) {
        let mut h = Harness::new(start_offset_ms, 60);
        h.edge_windows = false;
        for op in &ops {
            h.apply(op)?;
        }
    }
}

#[test]
fn the_reference_itself_counts_a_window_exactly_to_the_minute() {
    // Guards the guard: a reference that summed nothing would agree with a meter that does too.
    let mut r = Reference::default();
    let now = Timestamp::from_millis(T0_MS + 10 * MS_PER_MINUTE + 30_000);
    for minutes_ago in [0, 9, 10] {
        let at = Timestamp::from_millis((now.minute() - minutes_ago) * MS_PER_MINUTE);
        r.record(&UsageReport { at: Some(at), ..UsageReport::delta(Lane::Realtime, 1_000) }, now);
    }
    r.record(&UsageReport::delta(Lane::SyncBackfill, 5_000), now);
    assert_eq!(r.capped_total(10, now), 2_000);
    assert_eq!(r.capped_total(11, now), 3_000);
    assert_eq!(r.total(&[Lane::SyncBackfill], 1, now), 5_000);
    let key = UsageReport { idempotency_key: Some("k".into()), ..UsageReport::delta(Lane::Realtime, 1) };
    assert!(!r.record(&key, now).duplicate);
    assert!(r.record(&key, now.plus_ms(RETENTION_MS - 1)).duplicate);
    assert!(!r.record(&key, now.plus_ms(RETENTION_MS)).duplicate);
}

#[test]
fn a_report_in_the_oldest_retained_minute_is_accepted_and_one_minute_older_is_refused() {
    let policy = Policy::default();
    let now = Timestamp::from_millis(T0_MS + 12_345);
    let edge = Timestamp::from_millis((now.minute() - RETENTION_MINUTES + 1) * MS_PER_MINUTE);
    let report = |at: Timestamp| UsageReport { at: Some(at), ..UsageReport::delta(Lane::Realtime, 1_000) };
    assert!(report(edge).validate(&policy, now).is_ok());
    let err = report(edge.minus_ms(1)).validate(&policy, now).unwrap_err();
    assert_eq!(err.field, "at");
    assert!(report(now.plus_ms(SKEW_MS)).validate(&policy, now).is_ok());
    assert_eq!(report(now.plus_ms(SKEW_MS + 1)).validate(&policy, now).unwrap_err().field, "at");
    let mut meter = UserMeter::default();
    meter.record(&report(edge), RETENTION_MS, now);
    assert_eq!(meter.capped_total(RETENTION_MINUTES, now), 1_000);
    assert_eq!(meter.capped_total(RETENTION_MINUTES - 1, now), 0);
}
