//! Speech metering in trailing windows, exact to the minute (SPEC section 3).
//!
//! Usage is kept per lane as minute buckets plus hour roll-ups, both sorted by time. A window of
//! `M` minutes at `now` is the sum of buckets `m_now - M < m <= m_now`. Buckets are kept as running
//! totals, so a window is two binary searches and a subtraction however many minutes are active
//! (Omi read up to 10,080 entries per check).
//! Idempotency keys and per-session cumulative totals (merged by max) are handled here too, so that
//! a retried or replayed report is never counted twice.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::ids::Lane;
use crate::policy::{Policy, WindowDef};
use crate::time::{MS_PER_MINUTE, Timestamp};

/// A user's capped speech total (realtime and sync_fresh lanes) in each window of the policy,
/// in milliseconds: exactly one total per [`Policy::windows`] entry, in that order. Entry `i` is
/// the window the policy's index `i` names ([`Policy::ceiling_window`], [`Policy::caps`] and the
/// `triggered` indexes of a cap check all use the same indexes). Built only against a policy, so
/// the length matches the policy it was read with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowTotals(Vec<i64>);

impl WindowTotals {
    /// Totals already computed in the policy's window order (a store that sums its own buckets).
    pub fn new(policy: &Policy, ms: Vec<i64>) -> Self {
        debug_assert_eq!(ms.len(), policy.windows.len(), "one total per window of the policy");
        WindowTotals(ms)
    }

    /// Nothing spoken in any window: a user the meter has never seen.
    pub fn zeros(policy: &Policy) -> Self {
        WindowTotals(vec![0; policy.windows.len()])
    }

    /// The total of every window of the policy, from its length in minutes.
    pub fn from_minutes(policy: &Policy, total_of: impl FnMut(i64) -> i64) -> Self {
        WindowTotals(policy.window_minutes().iter().copied().map(total_of).collect())
    }

    /// The total of the window at `index` in [`Policy::windows`].
    pub fn get(&self, index: usize) -> Option<i64> {
        self.0.get(index).copied()
    }

    /// The total of the window named `name` in the policy (`daily`, `weekly`, ...).
    pub fn named(&self, policy: &Policy, name: &str) -> Option<i64> {
        policy.windows.iter().position(|w| w.name == name).and_then(|i| self.get(i))
    }

    /// The total of the policy's ceiling window.
    pub fn ceiling_window(&self, policy: &Policy) -> Option<i64> {
        self.get(policy.ceiling_window())
    }

    /// Whether the ceiling window is at or over the policy's ceiling.
    pub fn at_ceiling(&self, policy: &Policy) -> bool {
        self.ceiling_window(policy).is_some_and(|t| policy.at_ceiling(t))
    }

    /// The totals in window order.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().copied()
    }

    /// Each window of the policy with its total.
    pub fn with_windows<'a>(&'a self, policy: &'a Policy) -> impl Iterator<Item = (&'a WindowDef, i64)> + 'a {
        debug_assert_eq!(self.0.len(), policy.windows.len(), "totals read with another policy");
        policy.windows.iter().zip(self.iter())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }

    /// The plain list, for wire formats that carry the totals positionally (the classifier input).
    pub fn into_vec(self) -> Vec<i64> {
        self.0
    }
}

impl std::ops::Index<usize> for WindowTotals {
    type Output = i64;

    /// The total of the window at `index` in [`Policy::windows`]; panics past the last window.
    fn index(&self, index: usize) -> &i64 {
        &self.0[index]
    }
}

impl<'a> IntoIterator for &'a WindowTotals {
    type Item = &'a i64;
    type IntoIter = std::slice::Iter<'a, i64>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for WindowTotals {
    type Item = i64;
    type IntoIter = std::vec::IntoIter<i64>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Literal expectations in tests: `assert_eq!(totals, vec![60_000; 3])`.
impl PartialEq<Vec<i64>> for WindowTotals {
    fn eq(&self, other: &Vec<i64>) -> bool {
        &self.0 == other
    }
}

impl<const N: usize> PartialEq<[i64; N]> for WindowTotals {
    fn eq(&self, other: &[i64; N]) -> bool {
        self.0 == other
    }
}

/// How much speech a report carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpeechAmount {
    /// A delta: this many ms of speech.
    Delta(i64),
    /// A streaming session's running total; only the increase over the largest value seen counts.
    /// `stt_ms` of such a report is cumulative for the session too.
    Cumulative { session_id: String, total_ms: i64 },
}

/// One usage report, validated by [`UsageReport::validate`] before it reaches a meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub lane: Lane,
    pub amount: SpeechAmount,
    /// When the speech happened; `None` means now.
    pub at: Option<Timestamp>,
    pub idempotency_key: Option<String>,
    /// Audio forwarded to the STT vendor, silence included.
    pub stt_ms: i64,
}

impl UsageReport {
    pub fn delta(lane: Lane, speech_ms: i64) -> Self {
        UsageReport { lane, amount: SpeechAmount::Delta(speech_ms), at: None, idempotency_key: None, stt_ms: 0 }
    }

    /// Checks the bounds of SPEC section 3; every error names its field.
    pub fn validate(&self, policy: &Policy, now: Timestamp) -> Result<(), InputError> {
        let max = policy.metering.max_report_speech.ms();
        match &self.amount {
            SpeechAmount::Delta(ms) => {
                if *ms < 0 {
                    return Err(InputError::new("speech_ms", format!("must not be negative, got {ms}")));
                }
                if *ms > max {
                    return Err(InputError::new(
                        "speech_ms",
                        format!("{ms} ms in one report is more than the {max} ms allowed"),
                    ));
                }
            }
            SpeechAmount::Cumulative { session_id, total_ms } => {
                if session_id.is_empty() || session_id.len() > 128 {
                    return Err(InputError::new("session_id", "must be 1-128 characters"));
                }
                let retention = policy.metering.retention.ms();
                if *total_ms < 0 || *total_ms > retention {
                    return Err(InputError::new(
                        "cumulative_speech_ms",
                        format!("must be between 0 and {retention}, got {total_ms}"),
                    ));
                }
            }
        }
        let stt_max = match &self.amount {
            SpeechAmount::Delta(_) => max,
            SpeechAmount::Cumulative { .. } => policy.metering.retention.ms(),
        };
        if self.stt_ms < 0 || self.stt_ms > stt_max {
            return Err(InputError::new("stt_ms", format!("must be between 0 and {stt_max}, got {}", self.stt_ms)));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 200)
        {
            return Err(InputError::new("idempotency_key", "must be 1-200 characters"));
        }
        if let Some(at) = self.at {
            let retention_minutes = policy.metering.retention.ms() / MS_PER_MINUTE;
            if at.minute() <= now.minute() - retention_minutes {
                return Err(InputError::new(
                    "at",
                    format!("{at} is older than the retention period ({})", policy.metering.retention.human()),
                ));
            }
            let skew = policy.metering.max_future_skew.ms();
            if at.millis() > now.millis().saturating_add(skew) {
                return Err(InputError::new(
                    "at",
                    format!("{at} is more than {} in the future", policy.metering.max_future_skew.human()),
                ));
            }
        }
        Ok(())
    }
}

/// What recording a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RecordOutcome {
    pub speech_added_ms: i64,
    pub stt_added_ms: i64,
    pub duplicate: bool,
}

/// Buckets of one lane as running totals: each entry is `(minute, total of every bucket up to
/// and including that minute)`, ascending. Any window is then two binary searches and one
/// subtraction, whatever the number of active minutes; appending (the common case) is O(1), and
/// a report stamped in the past shifts the totals after it (rare, and bounded by the retention).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneSeries {
    cumulative: VecDeque<(i64, i64)>,
    /// The running total just before the first kept entry (what pruning removed).
    base: i64,
}

impl LaneSeries {
    pub fn add(&mut self, minute: i64, ms: i64) {
        if ms == 0 {
            return;
        }
        match self.cumulative.back_mut() {
            Some(last) if last.0 == minute => last.1 += ms,
            Some(last) if last.0 < minute => {
                let total = last.1 + ms;
                self.cumulative.push_back((minute, total));
            }
            None => self.cumulative.push_back((minute, self.base + ms)),
            Some(_) => {
                let pos = self.cumulative.partition_point(|&(m, _)| m < minute);
                if self.cumulative.get(pos).is_some_and(|&(m, _)| m == minute) {
                    self.cumulative.range_mut(pos..).for_each(|e| e.1 += ms);
                } else {
                    let before = if pos == 0 { self.base } else { self.cumulative[pos - 1].1 };
                    self.cumulative.insert(pos, (minute, before + ms));
                    self.cumulative.range_mut(pos + 1..).for_each(|e| e.1 += ms);
                }
            }
        }
    }

    /// The running total of every bucket at or before `minute`. Windows end at `now`, at or
    /// after the newest bucket, and start within the last week, so the search gallops from the
    /// back: a few probes near the end instead of a bisection across the whole series.
    fn total_through(&self, minute: i64) -> i64 {
        let len = self.cumulative.len();
        let Some(&(last_minute, last_total)) = self.cumulative.back() else { return self.base };
        if last_minute <= minute {
            return last_total;
        }
        // Find a step from the back whose entry is at or before `minute`, doubling the step.
        let mut step = 1;
        let mut hi = len - 1; // known: entry at hi is after `minute`
        let lo = loop {
            if step >= len || hi < step {
                break 0;
            }
            let probe = len - 1 - step;
            if self.cumulative[probe].0 <= minute {
                break probe;
            }
            hi = probe;
            step *= 2;
        };
        // Bisect [lo, hi): every entry before lo is at or before `minute`, every one from hi on after.
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if self.cumulative[mid].0 <= minute {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        match a {
            0 => self.base,
            n => self.cumulative[n - 1].1,
        }
    }

    /// Sum of minutes `lo..=hi`.
    pub fn sum(&self, lo: i64, hi: i64) -> i64 {
        if lo > hi || self.cumulative.is_empty() {
            return 0;
        }
        self.total_through(hi) - self.total_through(lo - 1)
    }

    /// Drops buckets before `oldest_kept_minute`.
    pub fn prune(&mut self, oldest_kept_minute: i64) {
        while let Some(&(m, total)) = self.cumulative.front() {
            if m >= oldest_kept_minute {
                break;
            }
            self.base = total;
            self.cumulative.pop_front();
        }
    }

    /// `(minute, ms)` of every kept bucket, ascending.
    pub fn minutes(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let mut previous = self.base;
        self.cumulative.iter().map(move |&(m, total)| {
            let ms = total - previous;
            previous = total;
            (m, ms)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }
}

/// One user's meter: all lanes, idempotency keys and session totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserMeter {
    lanes: [LaneSeries; 4],
    /// `(lane, key)` -> when first seen.
    idempotency: HashMap<(Lane, String), Timestamp>,
    /// session id -> (largest cumulative speech ms, largest cumulative stt ms, last seen).
    sessions: HashMap<String, (i64, i64, Timestamp)>,
    /// Size of the key maps after the last sweep; they are swept again when they double.
    swept_len: usize,
}

impl UserMeter {
    /// Records a report already checked by [`UsageReport::validate`].
    pub fn record(&mut self, report: &UsageReport, retention_ms: i64, now: Timestamp) -> RecordOutcome {
        if let Some(key) = &report.idempotency_key {
            let entry = (report.lane, key.clone());
            match self.idempotency.get(&entry) {
                Some(seen) if now.millis() - seen.millis() < retention_ms => {
                    return RecordOutcome { duplicate: true, ..RecordOutcome::default() };
                }
                _ => {
                    self.idempotency.insert(entry, now);
                }
            }
        }
        let (speech, stt) = match &report.amount {
            SpeechAmount::Delta(ms) => (*ms, report.stt_ms),
            SpeechAmount::Cumulative { session_id, total_ms } => {
                // Look up before inserting: a known session (the common case) costs no allocation.
                if !self.sessions.contains_key(session_id) {
                    self.sessions.insert(session_id.clone(), (0, 0, now));
                }
                let Some(slot) = self.sessions.get_mut(session_id) else {
                    return RecordOutcome::default(); // inserted just above; unreachable
                };
                // A session silent for longer than the retention is forgotten, whether or not a
                // sweep has removed it yet: the same report always counts the same.
                if now.millis() - slot.2.millis() >= retention_ms {
                    *slot = (0, 0, now);
                }
                let speech = (*total_ms - slot.0).max(0);
                let stt = (report.stt_ms - slot.1).max(0);
                slot.0 = slot.0.max(*total_ms);
                slot.1 = slot.1.max(report.stt_ms);
                slot.2 = now;
                (speech, stt)
            }
        };
        let minute = report.at.unwrap_or(now).minute();
        self.lanes[report.lane.index()].add(minute, speech);
        self.prune(retention_ms, now);
        RecordOutcome { speech_added_ms: speech, stt_added_ms: stt, duplicate: false }
    }

    fn prune(&mut self, retention_ms: i64, now: Timestamp) {
        let oldest_kept = now.minute() - retention_ms / MS_PER_MINUTE + 1;
        for lane in &mut self.lanes {
            lane.prune(oldest_kept);
        }
        let keys = self.idempotency.len() + self.sessions.len();
        if keys > 64 && keys > 2 * self.swept_len {
            self.idempotency.retain(|_, seen| now.millis() - seen.millis() < retention_ms);
            self.sessions.retain(|_, s| now.millis() - s.2.millis() < retention_ms);
            self.swept_len = self.idempotency.len() + self.sessions.len();
        }
    }

    /// The total of the lanes that count toward caps for a window of `minutes` ending at `now`.
    pub fn capped_total(&self, minutes: i64, now: Timestamp) -> i64 {
        let hi = now.minute();
        let lo = hi - minutes + 1;
        self.lanes[Lane::Realtime.index()].sum(lo, hi) + self.lanes[Lane::SyncFresh.index()].sum(lo, hi)
    }

    /// Capped totals for every window of the policy.
    pub fn capped_totals(&self, policy: &Policy, now: Timestamp) -> WindowTotals {
        WindowTotals::from_minutes(policy, |m| self.capped_total(m, now))
    }

    pub fn lane_total(&self, lane: Lane, minutes: i64, now: Timestamp) -> i64 {
        let hi = now.minute();
        self.lanes[lane.index()].sum(hi - minutes + 1, hi)
    }

    pub fn lane(&self, lane: Lane) -> &LaneSeries {
        &self.lanes[lane.index()]
    }
}

/// When a window total falls back to `cap` or below, for good, if the user stops now: the first
/// minute boundary from which the total stays at or under the cap. Speech stamped in the future
/// (allowed up to the skew limit) still enters the window later, so it is taken into account.
/// `None` when the total is not over the cap now.
pub fn recovery_at(meter: &UserMeter, window_minutes: i64, cap_ms: i64, now: Timestamp) -> Option<Timestamp> {
    let hi = now.minute();
    if meter.capped_total(window_minutes, now) <= cap_ms {
        return None;
    }
    let lo = hi - window_minutes + 1;
    // Every capped bucket that is or will be in a window from now on, merged across lanes.
    let mut buckets: Vec<(i64, i64)> = [Lane::Realtime, Lane::SyncFresh]
        .iter()
        .flat_map(|l| meter.lane(*l).minutes().filter(|&(m, _)| m >= lo))
        .collect();
    buckets.sort_unstable();
    let last_bucket = buckets.last().map_or(hi, |b| b.0);
    // Slide the window one minute at a time: bucket m is inside at minute t when t-M < m <= t.
    let (mut enter, mut leave) = (0usize, 0usize);
    let mut total = 0i64;
    let mut last_over = hi;
    for t in hi..=last_bucket.max(hi) + window_minutes {
        while enter < buckets.len() && buckets[enter].0 <= t {
            total += buckets[enter].1;
            enter += 1;
        }
        while leave < enter && buckets[leave].0 <= t - window_minutes {
            total -= buckets[leave].1;
            leave += 1;
        }
        if total > cap_ms {
            last_over = t;
        }
    }
    Some(Timestamp::from_millis((last_over + 1) * MS_PER_MINUTE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> Timestamp {
        Timestamp::from_millis(min * MS_PER_MINUTE)
    }

    const RET: i64 = 8 * 24 * 60 * MS_PER_MINUTE;

    #[test]
    fn window_totals_name_each_window_of_the_policy_in_its_order() {
        let policy = Policy::default();
        let mut m = UserMeter::default();
        let now = at(10_000);
        m.record(&UsageReport { at: Some(at(10_000 - 2000)), ..UsageReport::delta(Lane::Realtime, 3000) }, RET, now);
        m.record(&UsageReport::delta(Lane::SyncFresh, 1000), RET, now);
        let totals = m.capped_totals(&policy, now);
        assert_eq!(totals.len(), policy.windows.len());
        let named: Vec<(&str, i64)> = totals.with_windows(&policy).map(|(w, t)| (w.name.as_str(), t)).collect();
        for (i, (name, t)) in named.iter().enumerate() {
            assert_eq!(policy.windows[i].name, *name);
            assert_eq!(totals.named(&policy, name), Some(*t));
            assert_eq!(totals.get(i), Some(*t));
            assert_eq!(*t, m.capped_total(policy.window_minutes()[i], now));
        }
        assert_eq!(totals.get(policy.windows.len()), None);
        assert_eq!(totals.named(&policy, "no such window"), None);
        assert_eq!(totals.ceiling_window(&policy), totals.get(policy.ceiling_window()));
        assert_eq!(WindowTotals::zeros(&policy), vec![0; policy.windows.len()]);
    }

    #[test]
    fn window_includes_now_and_excludes_its_left_edge() {
        let mut m = UserMeter::default();
        let now = at(10_000);
        for minute in [10_000 - 1440, 10_000 - 1439, 10_000] {
            let r = UsageReport { at: Some(at(minute)), ..UsageReport::delta(Lane::Realtime, 1000) };
            m.record(&r, RET, now);
        }
        assert_eq!(m.capped_total(1440, now), 2000);
        assert_eq!(m.capped_total(1441, now), 3000);
    }

    #[test]
    fn backfill_and_custom_lanes_are_metered_but_not_capped() {
        let mut m = UserMeter::default();
        let now = at(500);
        m.record(&UsageReport::delta(Lane::SyncBackfill, 5000), RET, now);
        m.record(&UsageReport::delta(Lane::CustomStt, 7000), RET, now);
        m.record(&UsageReport::delta(Lane::SyncFresh, 11), RET, now);
        assert_eq!(m.capped_total(1440, now), 11);
        assert_eq!(m.lane_total(Lane::CustomStt, 1440, now), 7000);
    }

    #[test]
    fn recovery_is_when_the_oldest_speech_leaves_the_window() {
        let mut m = UserMeter::default();
        let now = at(1000);
        m.record(&UsageReport { at: Some(at(900)), ..UsageReport::delta(Lane::Realtime, 60_000) }, RET, now);
        m.record(&UsageReport { at: Some(at(950)), ..UsageReport::delta(Lane::Realtime, 60_000) }, RET, now);
        // A 200-minute window with a 1-minute cap: drop the minute-900 bucket and it is at the cap.
        assert_eq!(recovery_at(&m, 200, 60_000, now), Some(at(1100)));
        assert_eq!(recovery_at(&m, 200, 120_000, now), None);
    }

    #[test]
    fn recovery_waits_for_speech_stamped_in_the_future() {
        let mut m = UserMeter::default();
        let now = at(10_000);
        m.record(&UsageReport { at: Some(at(9_970)), ..UsageReport::delta(Lane::Realtime, 60_000) }, RET, now);
        m.record(&UsageReport { at: Some(at(10_003)), ..UsageReport::delta(Lane::Realtime, 60_000) }, RET, now);
        let t = recovery_at(&m, 60, 30_000, now).unwrap();
        assert_eq!(t, at(10_063), "the future-stamped minute leaves the 60-minute window at 10,063");
        assert!(m.capped_total(60, t) <= 30_000);
        assert!(m.capped_total(60, at(10_062)) > 30_000);
    }

    #[test]
    fn an_idle_session_is_forgotten_the_same_way_whatever_other_keys_exist() {
        let cumulative = |t: i64| UsageReport {
            lane: Lane::Realtime,
            amount: SpeechAmount::Cumulative { session_id: "s".into(), total_ms: t },
            at: None,
            idempotency_key: None,
            stt_ms: 0,
        };
        let run = |extra_keys: usize| {
            let mut m = UserMeter::default();
            m.record(&cumulative(3_600_000), RET, at(0));
            let later = at(RET / MS_PER_MINUTE + 1440);
            for i in 0..extra_keys {
                let keyed =
                    UsageReport { idempotency_key: Some(format!("k{i}")), ..UsageReport::delta(Lane::Realtime, 0) };
                m.record(&keyed, RET, later);
            }
            m.record(&cumulative(3_660_000), RET, later).speech_added_ms
        };
        assert_eq!(run(10), run(100));
    }
}
