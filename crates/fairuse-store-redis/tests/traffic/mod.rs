//! Random usage traffic for the tests that compare the Redis meter with the domain's: a seeded
//! generator (a failure replays) and reports of every lane and kind the policy allows.

use std::collections::BTreeMap;

use fairuse_domain::ids::Lane;
use fairuse_domain::policy::Policy;
use fairuse_domain::time::{MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{SpeechAmount, UsageReport};

/// xorshift64*: deterministic, so a failure replays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }
}

/// A valid report of any lane and kind, stamped anywhere the policy allows.
pub fn random_report(
    rng: &mut Rng,
    policy: &Policy,
    now: Timestamp,
    sessions: &mut BTreeMap<&'static str, i64>,
) -> UsageReport {
    let lane = rng.pick(&Lane::ALL);
    let retention_minutes = policy.metering.retention.ms() / MS_PER_MINUTE;
    let at = match rng.range(0, 5) {
        0 | 1 => None,
        2 => Some(now.plus_ms(rng.range(0, 5 * MS_PER_MINUTE))),
        3 => Some(Timestamp::from_millis((now.minute() - retention_minutes + 1) * MS_PER_MINUTE)),
        _ => Some(now.minus_ms(rng.range(0, (retention_minutes - 1) * MS_PER_MINUTE))),
    };
    let idempotency_key = (rng.range(0, 3) == 0).then(|| format!("k{}", rng.range(0, 6)));
    let amount = if rng.range(0, 2) == 0 {
        let id = rng.pick(&["s1", "s2", "s3"]);
        let total = sessions.entry(id).or_default();
        // Mostly growing, sometimes a stale retry below the maximum.
        *total = (*total + rng.range(-20_000, 90_000)).clamp(0, policy.metering.retention.ms());
        SpeechAmount::Cumulative { session_id: id.into(), total_ms: *total }
    } else {
        SpeechAmount::Delta(rng.pick(&[0, 1, 999, 60_000, 3_600_000]))
    };
    let stt_ms = match amount {
        SpeechAmount::Cumulative { total_ms, .. } => {
            (total_ms + rng.range(0, 1_000)).min(policy.metering.retention.ms())
        }
        SpeechAmount::Delta(ms) => ms / 2,
    };
    UsageReport { lane, amount, at, idempotency_key, stt_ms }
}
