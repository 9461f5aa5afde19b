//! Validated identifiers: user ids, lanes, case references.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// A user id: 1–128 characters of `[A-Za-z0-9_.:@-]` (SPEC section 3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Uid(String);

impl Uid {
    pub fn parse(text: &str) -> Result<Uid, InputError> {
        Self::check(text)?;
        Ok(Uid(text.to_owned()))
    }

    /// Validates without allocating; the simulator's hot path uses it.
    pub fn check(text: &str) -> Result<(), InputError> {
        check_id("uid", text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Uid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Uid::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks an identifier by the uid rules of SPEC section 3 (1–128 characters of
/// `[A-Za-z0-9_.:@-]`, not `.` or `..`); errors name `field`. Other ids that may end up in a URL
/// path or a log line (the gateway's stream session ids) follow the same rules.
pub fn check_id(field: &str, text: &str) -> Result<(), InputError> {
    if text.is_empty() || text.len() > 128 {
        return Err(InputError::new(field, format!("must be 1-128 characters, got {}", text.len())));
    }
    if text == "." || text == ".." {
        // Allowed by the character set, but no URL path can carry them (`/users/../plan`).
        return Err(InputError::new(field, "must not be \".\" or \"..\""));
    }
    if let Some(bad) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.:@-".contains(*c))) {
        return Err(InputError::new(field, format!("may only contain A-Z a-z 0-9 _ . : @ -, found {bad:?}")));
    }
    Ok(())
}

/// Where usage came from. Caps and the ceiling count `realtime + sync_fresh` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Realtime,
    SyncFresh,
    SyncBackfill,
    CustomStt,
}

impl Lane {
    pub const ALL: [Lane; 4] = [Lane::Realtime, Lane::SyncFresh, Lane::SyncBackfill, Lane::CustomStt];

    pub fn parse(text: &str) -> Result<Lane, InputError> {
        match text {
            "realtime" => Ok(Lane::Realtime),
            "sync_fresh" => Ok(Lane::SyncFresh),
            "sync_backfill" => Ok(Lane::SyncBackfill),
            "custom_stt" => Ok(Lane::CustomStt),
            other => Err(InputError::new(
                "lane",
                format!("unknown lane {other:?}; expected realtime, sync_fresh, sync_backfill or custom_stt"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Realtime => "realtime",
            Lane::SyncFresh => "sync_fresh",
            Lane::SyncBackfill => "sync_backfill",
            Lane::CustomStt => "custom_stt",
        }
    }

    /// Whether this lane counts toward the soft caps and the ceiling.
    pub fn is_capped(self) -> bool {
        matches!(self, Lane::Realtime | Lane::SyncFresh)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A case reference: `FU-` and 12 upper-case hex digits (48 bits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CaseRef(String);

impl CaseRef {
    pub fn from_bits(bits: u64) -> CaseRef {
        CaseRef(format!("FU-{:012X}", bits & CASE_REF_MASK))
    }

    pub fn parse(text: &str) -> Result<CaseRef, InputError> {
        let ok = text.len() == 15
            && text.starts_with("FU-")
            && text[3..].bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        if ok {
            Ok(CaseRef(text.to_owned()))
        } else {
            Err(InputError::new("case_ref", "must be FU- followed by 12 upper-case hex digits"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CaseRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        CaseRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

const CASE_REF_MASK: u64 = (1 << 48) - 1;

/// A bijection on 48-bit integers: xor-shifts and an odd multiplier, each invertible mod 2^48.
/// Feeding it a counter gives references that look random but can never repeat, which is what
/// the simulator needs (deterministic and unique) and what a store can seed with a random start.
pub fn scramble48(x: u64) -> u64 {
    let mut v = x & CASE_REF_MASK;
    v ^= v >> 23;
    v = v.wrapping_mul(0x9E37_79B9_7F4B) & CASE_REF_MASK; // odd, so invertible mod 2^48
    v ^= v >> 29;
    v = v.wrapping_mul(0xBF58_476D_1CE5) & CASE_REF_MASK;
    v ^= v >> 21;
    v
}

/// Where new event ids and case references come from. The service draws them at random (and
/// the durable store enforces uniqueness); the simulator counts, so its output is reproducible.
pub trait IdSource {
    fn event_id(&mut self) -> String;
    fn case_ref(&mut self) -> CaseRef;
}

/// Deterministic ids: a counter through [`scramble48`], unique for 2^48 draws.
#[derive(Debug, Clone)]
pub struct SequentialIds {
    next: u64,
    seed: u64,
}

impl SequentialIds {
    pub fn new(seed: u64) -> Self {
        SequentialIds { next: 0, seed }
    }
}

impl IdSource for SequentialIds {
    fn event_id(&mut self) -> String {
        format!("ev-{:012x}", scramble48(self.next.wrapping_add(self.seed)))
    }

    fn case_ref(&mut self) -> CaseRef {
        let r = CaseRef::from_bits(scramble48(self.next.wrapping_add(self.seed)));
        self.next += 1;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uid_rules_name_the_field() {
        assert!(Uid::parse("user_1.a:b@c-d").is_ok());
        let e = Uid::parse("bad uid").unwrap_err();
        assert_eq!(e.field, "uid");
        assert!(Uid::parse("").is_err());
        assert!(Uid::parse(&"a".repeat(129)).is_err());
        assert!(Uid::parse(&"a".repeat(128)).is_ok());
        assert!(Uid::parse("ünï").is_err());
        assert!(Uid::parse(".").is_err() && Uid::parse("..").is_err() && Uid::parse("...").is_ok());
    }

    #[test]
    fn unknown_lane_is_an_error_that_names_lane() {
        assert_eq!(Lane::parse("sync_fresh").unwrap(), Lane::SyncFresh);
        assert_eq!(Lane::parse("video").unwrap_err().field, "lane");
    }

    #[test]
    fn case_refs_have_the_spec_shape_and_never_repeat() {
        let mut ids = SequentialIds::new(7);
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let r = ids.case_ref();
            assert!(CaseRef::parse(r.as_str()).is_ok(), "{r}");
            assert!(seen.insert(r));
        }
        assert!(CaseRef::parse("FU-abcdefabcdef").is_err());
    }
}
