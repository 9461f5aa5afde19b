//! The JSON the SQL stores keep in their columns (SQLite and PostgreSQL alike): enforcement
//! states, events (and, in PostgreSQL, an event's resolution on its own), conversations and
//! stream sessions are the domain types serialized with serde. Renaming or retyping a field of
//! one of them is therefore a data migration, not a refactor; these golden files catch it.
//!
//! Each type has a fixture in `tests/fixtures/stored/` written by the code of its day, checked
//! both ways: the file deserializes into the value below, and the value serializes to the file
//! byte for byte. The `*.before_*.json` files are rows written before a field existed; they must
//! keep loading (`#[serde(default)]`). When a test here fails, do not rewrite the fixture: keep
//! it loading (serde defaults or aliases), or migrate the stored rows, and add a new fixture.

use std::path::PathBuf;

use fairuse_domain::classifier::{Conversation, Evidence, EvidenceKind, Recipe, UsageType, Verdict};
use fairuse_domain::engine::{
    BudgetSnapshot, EnforcementState, Event, EventKind, Outcome, Resolution, Trigger, VerdictRecord, WindowCheck,
};
use fairuse_domain::ids::CaseRef;
use fairuse_domain::prints::AudioMatch;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stored").join(name)
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("a valid timestamp in the test")
}

fn case_ref(text: &str) -> CaseRef {
    CaseRef::parse(text).expect("a valid case reference in the test")
}

/// Pretty JSON with a final newline, the form the fixtures are kept in.
fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("domain types serialize") + "\n"
}

/// The fixture `name` holds `value`: it reads back as `value`, and `value` writes it exactly. A
/// missing fixture is written (review and commit it) and the test fails, so that a fixture is
/// never silently replaced.
fn assert_stored_format<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let path = fixture_path(name);
    let Ok(stored) = std::fs::read_to_string(&path) else {
        std::fs::create_dir_all(path.parent().expect("fixtures have a folder")).expect("create the fixture folder");
        std::fs::write(&path, pretty(value)).expect("write the fixture");
        panic!("{} did not exist and was written: review it, commit it and run again", path.display());
    };
    let read: T = serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{name} no longer deserializes: {e}"));
    assert_eq!(&read, value, "{name} deserializes to other values");
    assert_eq!(pretty(value), stored, "{name}: today's code writes other JSON than stored rows hold");
}

/// A fixture written before some fields existed still loads, as `value`.
fn assert_still_loads<T: DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let stored = std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let read: T = serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{name} no longer deserializes: {e}"));
    assert_eq!(&read, value, "{name} deserializes to other values");
}

fn restricted_state() -> EnforcementState {
    EnforcementState {
        stage: Stage::Restrict,
        stage_until: Some(at("2025-03-08T09:30:00Z")),
        manual: false,
        stage_since: Some(at("2025-03-01T09:30:00Z")),
        period_start: Some(at("2025-02-01T00:00:00Z")),
        qualifying: vec![
            VerdictRecord {
                event_id: "ev-1".into(),
                at: at("2025-02-20T12:00:00Z"),
                overturned: true,
                usage_type: UsageType::Podcast,
                measured: false,
            },
            VerdictRecord {
                event_id: "ev-2".into(),
                at: at("2025-03-01T09:30:00Z"),
                overturned: false,
                usage_type: UsageType::Audiobook,
                measured: false,
            },
        ],
        last_case_ref: Some(case_ref("FU-00000000002A")),
        last_usage_type: Some(UsageType::Audiobook),
        last_score: Some(0.875),
        plan: Some("pro".into()),
        credits_exhausted: false,
        exempt: false,
        last_job_id: Some("job-7".into()),
        updated_at: Some(at("2025-03-01T09:30:00.250Z")),
    }
}

fn verdict() -> Verdict {
    Verdict {
        misuse_score: 0.875,
        usage_type: UsageType::Audiobook,
        confidence: 0.75,
        evidence: vec![
            Evidence::conversation("conv-1", "Chapter 12", "a narrator reads a novel aloud"),
            Evidence {
                conversation_id: "session-9".into(),
                title: "stream session-9".into(),
                reason: "repeats audio heard before".into(),
                kind: EvidenceKind::DuplicateAudio,
                matches: vec![AudioMatch {
                    session_id: "session-3".into(),
                    uid: "someone-else".into(),
                    own: false,
                    shift_ms: -3_600_000,
                    shared_ms: 540_000,
                }],
            },
        ],
        model: "gpt-4o-mini".into(),
        prompt_version: "v3".into(),
        recipes: vec![Recipe::Audiobook],
        demoted: None,
    }
}

fn resolution() -> Resolution {
    Resolution {
        outcome: Outcome::Overturned,
        notes: "a language course, not an audiobook".into(),
        resolved_by: "alice".into(),
        resolved_at: at("2025-03-02T08:00:00Z"),
    }
}

fn classified_event() -> Event {
    Event {
        event_id: "ev-2".into(),
        case_ref: case_ref("FU-00000000002A"),
        uid: "user-1".into(),
        created_at: at("2025-03-01T09:30:00Z"),
        kind: EventKind::Classified,
        trigger: Some(Trigger {
            reason: "daily speech over the cap".into(),
            plan: "pro".into(),
            windows: vec![
                WindowCheck { window: "daily".into(), total_ms: 30_000_000, cap_ms: Some(28_800_000), over: true },
                WindowCheck { window: "weekly".into(), total_ms: 60_000_000, cap_ms: None, over: false },
            ],
            ceiling_ms: 86_400_000,
        }),
        verdict: Some(verdict()),
        previous_stage: Stage::Throttle,
        new_stage: Stage::Restrict,
        stage_until: Some(at("2025-03-08T09:30:00Z")),
        actor: "system".into(),
        shadow: false,
        session_id: Some("session-9".into()),
        notes: None,
        budget: Some(BudgetSnapshot { used_ms: 1_200_000, limit_ms: 1_800_000 }),
        resolution: Some(resolution()),
        evidence_redacted_at: Some(at("2025-04-01T00:00:00Z")),
    }
}

fn conversation() -> Conversation {
    Conversation {
        conversation_id: "conv-1".into(),
        title: "Chapter 12".into(),
        overview: "A narrator reads chapter twelve.".into(),
        category: "entertainment".into(),
        started_at: at("2025-03-01T08:00:00Z"),
        finished_at: at("2025-03-01T09:00:00Z"),
        source: "omi".into(),
        speaker_count: Some(1),
        word_count: Some(9_000),
    }
}

fn stream_session() -> StreamSession {
    StreamSession {
        session_id: "session-9".into(),
        started_at: at("2025-03-01T08:00:00Z"),
        updated_at: at("2025-03-01T09:00:00Z"),
        duration_ms: 3_600_000,
        speech_ms: 3_000_000,
        stt_ms: 2_900_000,
        longest_speech_ms: 600_000,
        pause_count: 40,
        pause_mean_ms: 900,
        pause_median_ms: 700,
        longest_pause_ms: 4_000,
        closed: true,
        duplicate_own_ms: 60_000,
        duplicate_other_ms: 540_000,
        duplicate_of: vec![AudioMatch {
            session_id: "session-3".into(),
            uid: "someone-else".into(),
            own: false,
            shift_ms: -3_600_000,
            shared_ms: 540_000,
        }],
    }
}

#[test]
fn stored_enforcement_state_keeps_its_json() {
    assert_stored_format("enforcement_state.json", &restricted_state());
    assert_stored_format("enforcement_state.default.json", &EnforcementState::default());
}

#[test]
fn enforcement_state_stored_before_job_ids_and_usage_types_still_loads() {
    let mut expected = restricted_state();
    expected.last_job_id = None;
    for v in &mut expected.qualifying {
        v.usage_type = UsageType::None;
    }
    assert_still_loads("enforcement_state.before_last_job_id.json", &expected);
}

#[test]
fn stored_event_keeps_its_json() {
    assert_stored_format("event.classified.json", &classified_event());
    let admin = Event {
        kind: EventKind::AdminSetStage,
        trigger: None,
        verdict: None,
        actor: "alice".into(),
        session_id: None,
        notes: Some("manual restriction".into()),
        budget: None,
        resolution: None,
        evidence_redacted_at: None,
        ..classified_event()
    };
    assert_stored_format("event.admin_set_stage.json", &admin);
}

#[test]
fn event_stored_before_evidence_kinds_still_loads() {
    let mut expected = classified_event();
    if let Some(v) = &mut expected.verdict {
        v.evidence.truncate(1);
    }
    assert_still_loads("event.before_evidence_kind.json", &expected);
}

#[test]
fn stored_resolution_column_keeps_its_json() {
    assert_stored_format("resolution.json", &Some(resolution()));
    assert_stored_format("resolution.none.json", &None::<Resolution>);
}

#[test]
fn stored_conversation_keeps_its_json() {
    assert_stored_format("conversation.json", &conversation());
}

#[test]
fn stored_stream_session_keeps_its_json() {
    assert_stored_format("stream_session.json", &stream_session());
}

#[test]
fn stream_session_stored_before_fingerprints_still_loads() {
    let expected =
        StreamSession { duplicate_own_ms: 0, duplicate_other_ms: 0, duplicate_of: Vec::new(), ..stream_session() };
    assert_still_loads("stream_session.before_fingerprints.json", &expected);
}
