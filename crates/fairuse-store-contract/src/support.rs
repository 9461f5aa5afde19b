//! Fixtures shared by the contracts: a fixed clock origin, prefixed names, unique case references
//! and fully populated states and events (so a round trip that drops a field is caught).

use fairuse_domain::classifier::{Evidence, Recipe, UsageType, Verdict};
use fairuse_domain::engine::{
    BudgetSnapshot, EnforcementState, Event, EventKind, SYSTEM_ACTOR, Trigger, VerdictRecord, WindowCheck,
};
use fairuse_domain::ids::{CaseRef, Uid};
use fairuse_domain::stage::Stage;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, Timestamp};

/// 2026-03-20T00:00:00Z: a UTC midnight, so minutes, hours and days all start here.
pub(crate) const T0: Timestamp = Timestamp::from_millis(1_773_964_800_000);

pub(crate) fn hours(h: i64) -> i64 {
    h * MS_PER_HOUR
}

pub(crate) fn days(d: i64) -> i64 {
    d * MS_PER_DAY
}

/// Panics unless `prefix` can start a uid, so a bad prefix fails loudly at the first line.
pub(crate) fn check_prefix(prefix: &str) {
    if let Err(e) = Uid::check(&format!("{prefix}.x")) {
        panic!("contract prefix {prefix:?} must be made of uid characters: {e}");
    }
}

/// `{prefix}.{name}` as a uid.
pub(crate) fn uid(prefix: &str, name: &str) -> Uid {
    let text = format!("{prefix}.{name}");
    Uid::parse(&text).unwrap_or_else(|e| panic!("contract uid {text:?} is not valid: {e}"))
}

/// `{prefix}.{name}`, for lock keys, rate-limit keys, message and job ids.
pub(crate) fn name(prefix: &str, name: &str) -> String {
    format!("{prefix}.{name}")
}

/// Whether a uid or an id was made by this prefix.
pub(crate) fn is_mine(prefix: &str, id: &str) -> bool {
    id.starts_with(&format!("{prefix}."))
}

/// Event ids and case references unique to one prefix: case references are global in every
/// store, so they carry 24 bits of a hash of the prefix and a 24-bit counter.
pub(crate) struct Ids {
    prefix: String,
    salt: u64,
    next: u64,
}

impl Ids {
    pub(crate) fn new(prefix: &str) -> Ids {
        // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in prefix.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ids { prefix: prefix.to_owned(), salt: (hash ^ (hash >> 24) ^ (hash >> 48)) & 0xFF_FFFF, next: 0 }
    }

    /// A fresh (event id, case reference) pair.
    pub(crate) fn next(&mut self) -> (String, CaseRef) {
        self.next += 1;
        let case_ref = CaseRef::from_bits((self.salt << 24) | (self.next & 0xFF_FFFF));
        (format!("{}.ev{}", self.prefix, self.next), case_ref)
    }
}

pub(crate) fn verdict() -> Verdict {
    Verdict {
        misuse_score: 0.75,
        usage_type: UsageType::Audiobook,
        confidence: 0.5,
        evidence: vec![
            Evidence::conversation("c-1", "Harry Potter - Chapter 12", "a numbered chapter of a book"),
            Evidence::conversation("c-2", "Harry Potter - Chapter 13", "the next chapter, an hour later"),
        ],
        model: "heuristic".into(),
        prompt_version: "heuristic-v1".into(),
        recipes: vec![Recipe::Audiobook, Recipe::Podcast],
        demoted: None,
    }
}

/// An event with every optional part filled in.
pub(crate) fn event(ids: &mut Ids, uid: &Uid, created_at: Timestamp) -> Event {
    let (event_id, case_ref) = ids.next();
    Event {
        event_id,
        case_ref,
        uid: uid.to_string(),
        created_at,
        kind: EventKind::Classified,
        trigger: Some(Trigger {
            reason: "soft_cap".into(),
            plan: "free".into(),
            windows: vec![
                WindowCheck { window: "daily".into(), total_ms: hours(3), cap_ms: Some(hours(2)), over: true },
                WindowCheck { window: "weekly".into(), total_ms: hours(3), cap_ms: None, over: false },
            ],
            ceiling_ms: hours(30),
        }),
        verdict: Some(verdict()),
        previous_stage: Stage::None,
        new_stage: Stage::Warning,
        stage_until: Some(created_at.plus_ms(days(30))),
        actor: SYSTEM_ACTOR.into(),
        shadow: false,
        session_id: Some("session-1".into()),
        notes: Some("first warning".into()),
        budget: Some(BudgetSnapshot { used_ms: 1_000, limit_ms: hours(4) }),
        resolution: None,
        evidence_redacted_at: None,
    }
}

/// A state with every field set, in `stage` since `since` until `until`.
pub(crate) fn state(stage: Stage, since: Option<Timestamp>, until: Option<Timestamp>) -> EnforcementState {
    EnforcementState {
        stage,
        stage_until: until,
        manual: false,
        stage_since: since,
        period_start: Some(T0.minus_ms(days(3))),
        qualifying: vec![VerdictRecord {
            event_id: "ev-prior".into(),
            at: T0.minus_ms(days(1)),
            overturned: false,
            usage_type: UsageType::Podcast,
            measured: false,
        }],
        last_case_ref: Some(CaseRef::from_bits(0xABC)),
        last_usage_type: Some(UsageType::Podcast),
        last_score: Some(0.75),
        plan: Some("paid".into()),
        credits_exhausted: true,
        exempt: false,
        last_job_id: None,
        updated_at: since,
    }
}
