//! The SPEC payload, which events notify, and the retry schedule.

use std::collections::BTreeSet;
use std::time::Duration;

use fairuse_domain::engine::{Event, EventKind};
use fairuse_domain::ids::CaseRef;
use fairuse_domain::stage::Stage;
use fairuse_domain::time::Timestamp;
use fairuse_webhook::{WebhookConfig, WebhookKind, backoff, outbox_message, payload, webhook_kind};
use serde_json::Value;

fn event(kind: EventKind, previous: Stage, new: Stage) -> Event {
    Event {
        event_id: "ev-0123456789ab".into(),
        case_ref: CaseRef::parse("FU-00000000ABCD").unwrap(),
        uid: "user-1".into(),
        created_at: Timestamp::parse_rfc3339("2026-03-20T08:00:00Z").unwrap(),
        kind,
        trigger: None,
        verdict: None,
        previous_stage: previous,
        new_stage: new,
        stage_until: None,
        actor: "system".into(),
        shadow: false,
        session_id: None,
        notes: Some("internal notes never leave the service".into()),
        budget: None,
        resolution: None,
        evidence_redacted_at: None,
    }
}

#[test]
fn payload_has_exactly_the_spec_fields_in_the_spec_order() {
    let e = event(EventKind::Classified, Stage::Warning, Stage::Throttle);
    let text = payload(&e, WebhookKind::StageChanged, "Slow down", "Your transcription is throttled.");
    let json: Value = serde_json::from_str(&text).unwrap();
    let keys: BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    let spec: BTreeSet<&str> =
        ["id", "type", "uid", "case_ref", "stage", "previous_stage", "shadow", "title", "body", "created_at"].into();
    assert_eq!(keys, spec);
    assert_eq!(json["id"], "ev-0123456789ab");
    assert_eq!(json["type"], "fair_use.stage_changed");
    assert_eq!(json["uid"], "user-1");
    assert_eq!(json["case_ref"], "FU-00000000ABCD");
    assert_eq!(json["stage"], "throttle");
    assert_eq!(json["previous_stage"], "warning");
    assert_eq!(json["shadow"], false);
    assert_eq!(json["title"], "Slow down");
    assert_eq!(json["body"], "Your transcription is throttled.");
    assert_eq!(json["created_at"], "2026-03-20T08:00:00Z");
    assert!(text.starts_with(r#"{"id":"ev-0123456789ab","type":"fair_use.stage_changed","uid":"user-1","#), "{text}");
    assert!(text.ends_with(r#""created_at":"2026-03-20T08:00:00Z"}"#), "{text}");
}

#[test]
fn payload_escapes_user_facing_text() {
    let e = event(EventKind::AdminReset, Stage::Restrict, Stage::None);
    let text = payload(&e, WebhookKind::RestrictionLifted, "\"Back\" to normal", "line 1\nline 2 \u{1F600}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["type"], "fair_use.restriction_lifted");
    assert_eq!(json["title"], "\"Back\" to normal");
    assert_eq!(json["body"], "line 1\nline 2 \u{1F600}");
    assert_eq!(json["stage"], "none");
}

#[test]
fn outbox_message_uses_the_event_id_and_counts_its_age_from_enqueueing() {
    let e = event(EventKind::TimerExpired, Stage::Warning, Stage::None);
    let now = Timestamp::parse_rfc3339("2026-03-23T08:00:00Z").unwrap();
    let m = outbox_message(&e, WebhookKind::RestrictionLifted, "t", "b", now);
    assert_eq!(m.id, e.event_id);
    assert_eq!(m.body, payload(&e, WebhookKind::RestrictionLifted, "t", "b"));
    assert_eq!((m.attempts, m.next_attempt_at, m.created_at, m.last_error), (0, now, now, None));
}

#[test]
fn budget_exhausted_events_notify_as_budget_exhausted() {
    let e = event(EventKind::BudgetExhausted, Stage::Throttle, Stage::Throttle);
    assert_eq!(webhook_kind(&e), Some(WebhookKind::BudgetExhausted));
    let json: Value = serde_json::from_str(&payload(&e, WebhookKind::BudgetExhausted, "t", "b")).unwrap();
    assert_eq!(json["type"], "fair_use.budget_exhausted");
}

#[test]
fn returning_to_none_from_any_stage_lifts_the_restriction() {
    for kind in [EventKind::TimerExpired, EventKind::AdminReset, EventKind::StageChanged, EventKind::AdminSetStage] {
        for from in [Stage::Warning, Stage::Throttle, Stage::Restrict] {
            assert_eq!(webhook_kind(&event(kind, from, Stage::None)), Some(WebhookKind::RestrictionLifted), "{kind:?}");
        }
    }
}

#[test]
fn other_stage_changes_notify_as_stage_changed() {
    let cases = [
        (EventKind::Classified, Stage::None, Stage::Warning),
        (EventKind::Classified, Stage::Warning, Stage::Throttle),
        (EventKind::Classified, Stage::Throttle, Stage::Restrict),
        (EventKind::TimerExpired, Stage::Restrict, Stage::Throttle),
        (EventKind::TimerExpired, Stage::Throttle, Stage::Warning),
        (EventKind::AdminSetStage, Stage::None, Stage::Restrict),
        (EventKind::AdminSetStage, Stage::Restrict, Stage::Warning),
    ];
    for (kind, from, to) in cases {
        assert_eq!(webhook_kind(&event(kind, from, to)), Some(WebhookKind::StageChanged), "{kind:?} {from}->{to}");
    }
}

#[test]
fn events_that_leave_the_stage_alone_do_not_notify() {
    let cases = [
        (EventKind::Classified, Stage::Warning),
        (EventKind::Classified, Stage::None),
        (EventKind::AdminResolve, Stage::Throttle),
        (EventKind::AdminExempt, Stage::Restrict),
        (EventKind::AdminUnexempt, Stage::None),
        (EventKind::Appeal, Stage::Restrict),
        (EventKind::AdminSetStage, Stage::Throttle),
        (EventKind::AdminReset, Stage::None),
    ];
    for (kind, stage) in cases {
        assert_eq!(webhook_kind(&event(kind, stage, stage)), None, "{kind:?} at {stage}");
    }
}

#[test]
fn shadow_events_never_notify() {
    let cases = [
        (EventKind::BudgetExhausted, Stage::Warning, Stage::Warning),
        (EventKind::Classified, Stage::None, Stage::Warning),
        (EventKind::TimerExpired, Stage::Warning, Stage::None),
        (EventKind::AdminReset, Stage::Restrict, Stage::None),
    ];
    for (kind, from, to) in cases {
        let mut e = event(kind, from, to);
        e.shadow = true;
        assert_eq!(webhook_kind(&e), None, "{kind:?} {from}->{to}");
    }
}

fn schedule_cfg() -> WebhookConfig {
    let mut cfg = WebhookConfig::new("http://127.0.0.1:9/hook", b"k".to_vec());
    cfg.base_backoff = Duration::from_secs(5);
    cfg.max_backoff = Duration::from_secs(30 * 60);
    cfg
}

#[test]
fn backoff_grows_until_the_cap_and_never_exceeds_it() {
    let cfg = schedule_cfg();
    for id in ["ev-1", "ev-2", "ev-0123456789ab", ""] {
        let delays: Vec<Duration> = (1..=30).map(|n| backoff(id, n, &cfg)).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = (cfg.base_backoff * 2u32.saturating_pow(i as u32)).min(cfg.max_backoff);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "{id} attempt {}: {d:?} vs ceiling {ceiling:?}", i + 1);
        }
        // Before the cap each delay is at least the previous one: the floor of the next ceiling
        // is the previous ceiling.
        for pair in delays[..8].windows(2) {
            assert!(pair[1] >= pair[0], "{id}: {delays:?}");
        }
        assert!(delays[0] < Duration::from_secs(6));
        assert!(delays[29] <= cfg.max_backoff && delays[29] >= cfg.max_backoff / 2);
    }
}

#[test]
fn backoff_is_reproducible_per_message_and_spread_across_messages() {
    let cfg = schedule_cfg();
    assert_eq!(backoff("ev-1", 4, &cfg), backoff("ev-1", 4, &cfg));
    let distinct: BTreeSet<Duration> = (0..50).map(|i| backoff(&format!("ev-{i}"), 4, &cfg)).collect();
    assert!(distinct.len() > 40, "jitter spreads retries of messages that failed together: {}", distinct.len());
}

#[test]
fn a_day_of_failures_fits_in_the_retry_period() {
    // The sum of worst-case delays over the attempts made in 24 h stays below max_age, so at
    // least one attempt happens after the 24 h mark (SPEC: retried for at least 24 hours).
    let cfg = WebhookConfig::new("http://127.0.0.1:9/hook", b"k".to_vec());
    let mut elapsed = Duration::ZERO;
    let mut attempts = 0;
    while elapsed < Duration::from_secs(24 * 3600) {
        attempts += 1;
        elapsed += backoff("ev-x", attempts, &cfg);
    }
    assert!(elapsed < cfg.max_age, "{elapsed:?}");
}
