//! The JSON shapes of the response bodies (`fairuse_server::http::types`), pinned by golden files
//! in `tests/fixtures/responses/`: one per body, built from fixed domain values. The bodies keep
//! the API apart from the domain types; these files keep the bodies honest. A change here is an
//! API change for the app's backend, Omi's clients and the dashboard: document it in
//! `openapi.json` and the README before rewriting a fixture (delete it and run the test to write
//! it again, then review the diff).

use std::collections::BTreeMap;
use std::path::PathBuf;

use fairuse_domain::classifier::{Evidence, EvidenceKind, Recipe, UsageType, Verdict};
use fairuse_domain::engine::{
    BudgetSnapshot, BudgetStatus, Decision, EnforcementState, Event, EventKind, Outcome, Resolution, Trigger,
    VerdictRecord, WindowCheck,
};
use fairuse_domain::ids::CaseRef;
use fairuse_domain::prints::AudioMatch;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use fairuse_domain::windows::RecordOutcome;
use fairuse_server::error::{ErrorBody, ErrorDetail};
use fairuse_server::http::types::{
    AdminCaseBody, AdminUserBody, AdminWhoamiBody, AppealResultBody, BudgetStatusBody, CaseStatusBody,
    ConversationsResultBody, DecisionBody, EnforcementStateBody, EventBody, ExemptSetBody, ExemptStatusBody,
    FlaggedListBody, FlaggedUserBody, OmiEventBody, PlanResultBody, ProbeBody, RecoveryBody, ResetResultBody,
    ResolveResultBody, SetStageResultBody, UsageAcceptedBody, UsageSeriesBody, UserStatusBody,
};
use fairuse_server::service::UsageAccepted;
use serde::Serialize;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/responses").join(name)
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("a valid timestamp in the test")
}

fn case_ref(text: &str) -> CaseRef {
    CaseRef::parse(text).expect("a valid case reference in the test")
}

/// `body` serializes to the fixture `name`, byte for byte (pretty, with a final newline). A
/// missing fixture is written and the test fails: review it, commit it and run again.
fn assert_shape<T: Serialize>(name: &str, body: &T) {
    let actual = serde_json::to_string_pretty(body).expect("response bodies serialize") + "\n";
    let path = fixture_path(name);
    let Ok(expected) = std::fs::read_to_string(&path) else {
        std::fs::create_dir_all(path.parent().expect("fixtures have a folder")).expect("create the fixture folder");
        std::fs::write(&path, &actual).expect("write the fixture");
        panic!("{} did not exist and was written: review it, commit it and run again", path.display());
    };
    assert_eq!(actual, expected, "{name}: the response body's JSON changed");
}

fn budget() -> BudgetStatus {
    BudgetStatus {
        daily_limit_ms: 1_800_000,
        used_ms: 1_200_000,
        remaining_ms: 600_000,
        exhausted: false,
        resets_at: at("2025-03-02T00:00:00Z"),
    }
}

fn decision() -> Decision {
    Decision {
        stage: Stage::Restrict,
        effective_stage: Stage::Restrict,
        stt_allowed: true,
        sync_allowed: false,
        stt_model_tier: "economy".into(),
        stt_budget: Some(budget()),
        windows: BTreeMap::from([
            ("daily_ms".into(), 30_000_000),
            ("three_day_ms".into(), 40_000_000),
            ("weekly_ms".into(), 60_000_000),
        ]),
        caps: BTreeMap::from([("daily_ms".into(), 28_800_000), ("three_day_ms".into(), 72_000_000)]),
        plan: "pro".into(),
        triggered: vec!["daily".into()],
        ceiling_exceeded: false,
        retry_after_s: Some(3_600),
        reasons: vec!["daily speech 30000000 ms is over the pro cap of 28800000 ms".into()],
        shadow: false,
        case_ref: Some(case_ref("FU-00000000002A")),
    }
}

fn state() -> EnforcementState {
    EnforcementState {
        stage: Stage::Restrict,
        stage_until: Some(at("2025-03-08T09:30:00Z")),
        manual: false,
        stage_since: Some(at("2025-03-01T09:30:00Z")),
        period_start: Some(at("2025-02-01T00:00:00Z")),
        qualifying: vec![VerdictRecord {
            event_id: "ev-2".into(),
            at: at("2025-03-01T09:30:00Z"),
            overturned: false,
            usage_type: UsageType::Audiobook,
            measured: false,
        }],
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
                WindowCheck { window: "three_day".into(), total_ms: 40_000_000, cap_ms: Some(72_000_000), over: false },
                WindowCheck { window: "weekly".into(), total_ms: 60_000_000, cap_ms: None, over: false },
            ],
            ceiling_ms: 86_400_000,
        }),
        verdict: Some(Verdict {
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
            demoted: Some("cited none of the conversations".into()),
        }),
        previous_stage: Stage::Throttle,
        new_stage: Stage::Restrict,
        stage_until: Some(at("2025-03-08T09:30:00Z")),
        actor: "system".into(),
        shadow: false,
        session_id: Some("session-9".into()),
        notes: None,
        budget: Some(BudgetSnapshot { used_ms: 1_200_000, limit_ms: 1_800_000 }),
        resolution: Some(Resolution {
            outcome: Outcome::Upheld,
            notes: "an audiobook".into(),
            resolved_by: "alice".into(),
            resolved_at: at("2025-03-02T08:00:00Z"),
        }),
        evidence_redacted_at: None,
    }
}

/// An admin's event: no trigger, verdict, budget or resolution.
fn admin_event(kind: EventKind, notes: &str) -> Event {
    Event {
        event_id: "ev-3".into(),
        case_ref: case_ref("FU-00000000002B"),
        created_at: at("2025-03-02T08:00:00Z"),
        kind,
        trigger: None,
        verdict: None,
        previous_stage: Stage::Restrict,
        new_stage: Stage::None,
        stage_until: None,
        actor: "alice".into(),
        session_id: None,
        notes: Some(notes.into()),
        budget: None,
        resolution: None,
        ..classified_event()
    }
}

#[test]
fn decision_body_keeps_its_shape() {
    assert_shape("decision.json", &DecisionBody::from(&decision()));
    let open = Decision {
        stage: Stage::None,
        effective_stage: Stage::None,
        stt_budget: None,
        caps: BTreeMap::new(),
        triggered: Vec::new(),
        retry_after_s: None,
        reasons: vec!["user is exempt".into()],
        case_ref: None,
        ..decision()
    };
    assert_shape("decision.bypassed.json", &DecisionBody::from(&open));
}

#[test]
fn usage_accepted_body_keeps_its_shape() {
    let accepted = UsageAccepted {
        accepted: 2,
        duplicates: 1,
        metered: true,
        results: vec![
            RecordOutcome { speech_added_ms: 60_000, stt_added_ms: 55_000, duplicate: false },
            RecordOutcome { speech_added_ms: 0, stt_added_ms: 0, duplicate: true },
        ],
    };
    assert_shape("usage_accepted.json", &UsageAcceptedBody::from(&accepted));
}

#[test]
fn plan_and_conversations_bodies_keep_their_shape() {
    assert_shape("plan_result.json", &PlanResultBody::new("user-1", &state()));
    assert_shape("conversations_result.json", &ConversationsResultBody { uid: "user-1".into(), upserted: 3 });
}

#[test]
fn user_status_body_keeps_omis_fields() {
    let b = BudgetStatusBody::from(&budget());
    let body = UserStatusBody {
        uid: "user-1".into(),
        stage: Stage::Restrict,
        effective_stage: Stage::Restrict,
        case_ref: Some(case_ref("FU-00000000002A")),
        stage_until: Some(at("2025-03-08T09:30:00Z")),
        plan: "pro".into(),
        limits: BTreeMap::from([("daily_hours".into(), 8.0), ("three_day_hours".into(), 20.0)]),
        usage_pct: BTreeMap::from([("daily".into(), 104.2), ("three_day".into(), 55.6)]),
        stt_budget: Some(b.clone()),
        dg_budget: b,
        stt_allowed: true,
        message: "Transcription is limited until 2025-03-08.".into(),
        recovery: vec![RecoveryBody {
            window: "daily".into(),
            total_ms: 30_000_000,
            cap_ms: 28_800_000,
            under_cap_at: Some(at("2025-03-01T20:00:00Z")),
        }],
        speech_hours: BTreeMap::from([
            ("speech_hours_today".into(), 8.33),
            ("speech_hours_3day".into(), 11.11),
            ("speech_hours_weekly".into(), 16.67),
        ]),
    };
    assert_shape("user_status.json", &body);
}

#[test]
fn case_status_body_keeps_omis_support_email() {
    let body = CaseStatusBody {
        case_ref: case_ref("FU-00000000002A"),
        stage: Stage::Restrict,
        message: "Transcription is limited. Contact support@example.com.".into(),
        created_at: at("2025-03-01T09:30:00Z"),
        updated_at: at("2025-03-02T08:00:00Z"),
        support_contact: "support@example.com".into(),
        support_email: "support@example.com".into(),
    };
    assert_shape("case_status.json", &body);
}

#[test]
fn probe_bodies_keep_their_shape() {
    assert_shape("healthz.json", &ProbeBody { status: "ok" });
    assert_shape("readyz.json", &ProbeBody { status: "ready" });
}

#[test]
fn appeal_result_body_keeps_its_shape() {
    let mut appeal = admin_event(EventKind::Appeal, "appeal of FU-00000000002A: I was learning a language");
    appeal.actor = "user-1".into();
    appeal.new_stage = Stage::Restrict;
    let body =
        AppealResultBody { status: "received", case_ref: "FU-00000000002A".into(), appeal: EventBody::from(&appeal) };
    assert_shape("appeal_result.json", &body);
}

#[test]
fn admin_user_body_shows_events_in_omis_shape() {
    let d = decision();
    let body = AdminUserBody {
        uid: "user-1".into(),
        state: EnforcementStateBody::from(&state()),
        events: vec![
            OmiEventBody::from(&classified_event()),
            OmiEventBody::from(&admin_event(EventKind::AdminReset, "appeal upheld")),
        ],
        windows: d.windows.clone(),
        caps: d.caps.clone(),
        ceiling_ms: 86_400_000,
        current_speech_ms: d.windows.clone(),
        budget: d.stt_budget.as_ref().map(BudgetStatusBody::from),
        decision: DecisionBody::from(&d),
        usage: UsageSeriesBody::new(BTreeMap::from([
            ("omi", vec![(29_016_000, 60_000), (29_016_001, 45_000)]),
            ("gateway", vec![(29_016_000, 30_000)]),
        ])),
    };
    assert_shape("admin_user.json", &body);
}

#[test]
fn admin_case_body_is_the_omi_event_twice() {
    assert_shape("admin_case.json", &AdminCaseBody::from(&classified_event()));
}

#[test]
fn admin_list_and_whoami_bodies_keep_their_shape() {
    let flagged = FlaggedListBody { users: vec![FlaggedUserBody::new("user-1", &state())], fair_use_enabled: true };
    assert_shape("flagged.json", &flagged);
    assert_shape("whoami.json", &AdminWhoamiBody { name: "alice".into(), role: "operator" });
}

#[test]
fn admin_action_bodies_keep_their_shape() {
    let resolved = Event {
        resolution: Some(Resolution {
            outcome: Outcome::Overturned,
            notes: "a language course".into(),
            resolved_by: "alice".into(),
            resolved_at: at("2025-03-02T08:00:00Z"),
        }),
        ..classified_event()
    };
    let audit = admin_event(EventKind::AdminResolve, "overturned: a language course");
    assert_shape(
        "resolve_result.json",
        &ResolveResultBody { status: "resolved", event: EventBody::from(&resolved), audit: EventBody::from(&audit) },
    );
    let cleared = EnforcementState { stage: Stage::None, stage_until: None, ..state() };
    let audit = admin_event(EventKind::AdminReset, "appeal upheld");
    assert_shape(
        "reset_result.json",
        &ResetResultBody {
            status: "reset",
            state: EnforcementStateBody::from(&cleared),
            audit: EventBody::from(&audit),
        },
    );
    let manual = EnforcementState { stage: Stage::Warning, manual: true, stage_until: None, ..state() };
    let mut audit = admin_event(EventKind::AdminSetStage, "manual warning");
    audit.new_stage = Stage::Warning;
    assert_shape(
        "set_stage_result.json",
        &SetStageResultBody {
            status: "updated",
            stage: Stage::Warning,
            state: EnforcementStateBody::from(&manual),
            audit: EventBody::from(&audit),
        },
    );
}

#[test]
fn exemption_bodies_keep_their_shape() {
    let status = ExemptStatusBody { uid: "user-1".into(), exempt: true, dynamic: false, in_config: true, audit: None };
    assert_shape("exempt_status.json", &status);
    let audit = admin_event(EventKind::AdminExempt, "exempt");
    assert_shape(
        "exempt_set.json",
        &ExemptSetBody { uid: "user-1".into(), exempt: true, audit: EventBody::from(&audit) },
    );
    let audit = admin_event(EventKind::AdminUnexempt, "no longer exempt");
    let cleared = ExemptStatusBody {
        uid: "user-1".into(),
        exempt: false,
        dynamic: false,
        in_config: false,
        audit: Some(EventBody::from(&audit)),
    };
    assert_shape("exempt_cleared.json", &cleared);
}

#[test]
fn error_body_keeps_its_shape() {
    let input = ErrorDetail {
        code: "invalid_request",
        message: "reports[3].lane: unknown lane \"phone\"".into(),
        field: Some("reports[3].lane".into()),
    };
    assert_shape("error.invalid_request.json", &ErrorBody { error: input });
    let other = ErrorDetail { code: "not_found", message: "Case not found".into(), field: None };
    assert_shape("error.not_found.json", &ErrorBody { error: other });
}
