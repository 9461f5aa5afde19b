//! Instants, the injected clock, minute buckets and RFC 3339 text.
//!
//! Domain code never reads the system clock: every decision takes `now` from a [`Clock`] that the
//! composition root (or a test, or the simulator's virtual clock) provides.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_MINUTE: i64 = 60_000;
pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s * MS_PER_SECOND)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded down (also for instants before the epoch).
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(MS_PER_SECOND)
    }

    /// The minute bucket of SPEC section 3: `floor(unix_seconds / 60)`.
    pub const fn minute(self) -> i64 {
        self.0.div_euclid(MS_PER_MINUTE)
    }

    /// The UTC day number (days since the epoch) this instant falls in.
    pub const fn utc_day(self) -> i64 {
        self.0.div_euclid(MS_PER_DAY)
    }

    /// The next UTC midnight strictly after this instant.
    pub const fn next_utc_midnight(self) -> Timestamp {
        Timestamp((self.utc_day() + 1) * MS_PER_DAY)
    }

    pub const fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    pub const fn minus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_sub(ms))
    }

    /// Parses RFC 3339 text (any offset); the instant is kept in UTC milliseconds.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimeParseError> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| TimeParseError { input: text.chars().take(64).collect(), reason: e.to_string() })?;
        // Years 0001-9999 in UTC: everything fairuse stores prints back as the same instant.
        let year = parsed.checked_to_offset(time::UtcOffset::UTC).map(|d| d.year());
        if !year.is_some_and(|y| (1..=9999).contains(&y)) {
            return Err(TimeParseError {
                input: text.chars().take(64).collect(),
                reason: "outside the years 0001-9999 (UTC)".into(),
            });
        }
        let ms = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(ms)
            .map(Timestamp)
            .map_err(|_| TimeParseError { input: text.chars().take(64).collect(), reason: "out of range".into() })
    }

    /// RFC 3339 in UTC with a `Z` suffix: seconds precision when the instant is on a whole
    /// second, milliseconds otherwise. Never `+00:00Z` (one of Omi's bugs).
    pub fn to_rfc3339(self) -> String {
        let secs = self.secs();
        let millis = self.0.rem_euclid(MS_PER_SECOND);
        // Unix seconds in the range `time` supports; clamp instead of panicking on absurd values.
        let dt = OffsetDateTime::from_unix_timestamp(secs.clamp(-377_705_116_800, 253_402_300_799))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let (y, mo, d) = (dt.year(), dt.month() as u8, dt.day());
        let (h, mi, s) = (dt.hour(), dt.minute(), dt.second());
        if millis == 0 {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        } else {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp ({reason}): {input:?}")]
pub struct TimeParseError {
    pub input: String,
    pub reason: String,
}

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// A clock that only moves when told to: the simulator's virtual clock and the tests' clock.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(AtomicI64::new(at.0))
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Milliseconds with a human form in configuration: `"2h"`, `"90m"`, `"7d"`, `"500ms"`, or a
/// plain integer of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct DurationMs(pub i64);

impl DurationMs {
    pub const fn hours(h: i64) -> Self {
        DurationMs(h * MS_PER_HOUR)
    }
    pub const fn minutes(m: i64) -> Self {
        DurationMs(m * MS_PER_MINUTE)
    }
    pub const fn seconds(s: i64) -> Self {
        DurationMs(s * MS_PER_SECOND)
    }
    pub const fn days(d: i64) -> Self {
        DurationMs(d * MS_PER_DAY)
    }
    pub const fn ms(self) -> i64 {
        self.0
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if let Ok(n) = trimmed.parse::<i64>() {
            return if n >= 0 { Ok(DurationMs(n)) } else { Err(format!("negative duration {n}")) };
        }
        let d = humantime::parse_duration(trimmed)
            .map_err(|e| format!("not a duration like \"2h\", \"90m\" or \"7d\" ({e}): {trimmed:?}"))?;
        i64::try_from(d.as_millis()).map(DurationMs).map_err(|_| format!("duration too large: {trimmed:?}"))
    }

    /// The short human form used when printing the effective policy.
    pub fn human(self) -> String {
        let ms = self.0;
        for (unit, size) in [("d", MS_PER_DAY), ("h", MS_PER_HOUR), ("m", MS_PER_MINUTE), ("s", MS_PER_SECOND)] {
            if ms != 0 && ms % size == 0 {
                return format!("{}{unit}", ms / size);
            }
        }
        // A plain number of milliseconds: it parses back whatever its size.
        ms.to_string()
    }
}

impl Serialize for DurationMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.human())
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if n >= 0 => Ok(DurationMs(n)),
            Raw::Int(n) => Err(serde::de::Error::custom(format!("negative duration {n}"))),
            Raw::Text(t) => DurationMs::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_bucket_floors_negative_and_positive_instants() {
        assert_eq!(Timestamp::from_secs(59).minute(), 0);
        assert_eq!(Timestamp::from_secs(60).minute(), 1);
        assert_eq!(Timestamp::from_millis(-1).minute(), -1);
    }

    #[test]
    fn rfc3339_round_trips_and_ends_in_z() {
        let t = Timestamp::parse_rfc3339("2026-03-20T10:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-20T08:00:00Z");
        let t2 = Timestamp::parse_rfc3339("2026-03-20T08:00:00.250Z").unwrap();
        assert_eq!(t2.millis() - t.millis(), 250);
        assert_eq!(t2.to_rfc3339(), "2026-03-20T08:00:00.250Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn next_utc_midnight_is_strictly_after() {
        let t = Timestamp::parse_rfc3339("2026-03-20T00:00:00Z").unwrap();
        assert_eq!(t.next_utc_midnight().to_rfc3339(), "2026-03-21T00:00:00Z");
    }

    #[test]
    fn durations_parse_in_human_units_and_plain_milliseconds() {
        assert_eq!(DurationMs::parse("2h").unwrap(), DurationMs::hours(2));
        assert_eq!(DurationMs::parse("90m").unwrap(), DurationMs::minutes(90));
        assert_eq!(DurationMs::parse("7d").unwrap(), DurationMs::days(7));
        assert_eq!(DurationMs::parse("1500").unwrap(), DurationMs(1500));
        assert!(DurationMs::parse("-5").is_err());
        assert!(DurationMs::parse("soon").is_err());
        assert_eq!(DurationMs::hours(30).human(), "30h");
        assert_eq!(DurationMs::days(7).human(), "7d");
    }
}
