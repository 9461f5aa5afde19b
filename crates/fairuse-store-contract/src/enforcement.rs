//! The enforcement store contract: versioned state, append-only events and the admin queries.

use fairuse_domain::classifier::redact;
use fairuse_domain::engine::{EnforcementState, Event, EventKind, Outcome, Resolution};
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::Uid;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{EnforcementStore, Versioned};
use fairuse_domain::time::Timestamp;

use crate::support::{Ids, T0, check_prefix, days, event, hours, is_mine, state, uid};

async fn commit_ok(store: &dyn EnforcementStore, step: &str, uid: &Uid, s: &EnforcementState, v: u64, e: &[Event]) {
    let got = store.commit(uid, s, v, e, &[]).await.unwrap_or_else(|err| panic!("{step}: commit failed: {err}"));
    assert_eq!(got, v + 1, "{step}: commit returns the new version, expected + 1");
}

async fn events_of(store: &dyn EnforcementStore, uid: &Uid) -> Vec<Event> {
    store.events(uid, 1_000).await.expect("events")
}

/// `commit` writes only over the expected version (0 for a new user) and is all or nothing.
pub async fn enforcement_commit_is_versioned_and_atomic(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    let mut ids = Ids::new(&format!("{prefix}.commit"));
    let who = uid(prefix, "commit");
    assert_eq!(store.load(&who).await.expect("load"), None, "an unknown user has no state");

    let first = state(Stage::Warning, Some(T0), Some(T0.plus_ms(days(30))));
    let e1 = event(&mut ids, &who, T0);
    commit_ok(store, "first commit", &who, &first, 0, std::slice::from_ref(&e1)).await;
    let loaded = store.load(&who).await.expect("load");
    assert_eq!(loaded, Some(Versioned { value: first.clone(), version: 1 }), "the state round-trips exactly");

    let stale = state(Stage::Restrict, Some(T0.plus_ms(1)), None);
    let lost = event(&mut ids, &who, T0.plus_ms(1));
    let refused = store.commit(&who, &stale, 0, std::slice::from_ref(&lost), &[]).await;
    assert_eq!(refused, Err(StoreError::Conflict), "expected version 0 for an existing user is a conflict");
    let refused = store.commit(&who, &stale, 7, std::slice::from_ref(&lost), &[]).await;
    assert_eq!(refused, Err(StoreError::Conflict), "a version from the future is a conflict");
    assert_eq!(
        store.load(&who).await.expect("load"),
        Some(Versioned { value: first.clone(), version: 1 }),
        "a conflicting commit writes no state"
    );
    assert_eq!(events_of(store, &who).await, vec![e1.clone()], "a conflicting commit appends no event");
    assert_eq!(store.event_by_case_ref(lost.case_ref.as_str()).await.expect("by case ref"), None);

    let second = state(Stage::Throttle, Some(T0.plus_ms(hours(1))), Some(T0.plus_ms(days(7))));
    commit_ok(store, "second commit", &who, &second, 1, &[]).await;
    assert_eq!(store.load(&who).await.expect("load"), Some(Versioned { value: second, version: 2 }));

    let other = uid(prefix, "commit-other");
    assert_eq!(store.load(&other).await.expect("load"), None, "state is per user");
    let fresh = state(Stage::None, None, None);
    commit_ok(store, "another user's first commit", &other, &fresh, 0, &[]).await;
    assert_eq!(store.commit(&other, &fresh, 2, &[], &[]).await, Err(StoreError::Conflict), "versions are per user");
}

/// Events read back newest first, per user, and by case reference or id.
pub async fn enforcement_events_read_back(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    let mut ids = Ids::new(&format!("{prefix}.events"));
    let who = uid(prefix, "events");
    let other = uid(prefix, "events-other");
    assert!(events_of(store, &who).await.is_empty(), "no events yet");

    let e1 = event(&mut ids, &who, T0);
    let mut e2 = event(&mut ids, &who, T0.plus_ms(hours(1)));
    e2.kind = EventKind::TimerExpired;
    e2.verdict = None;
    e2.trigger = None;
    let mut e3 = event(&mut ids, &who, T0.plus_ms(hours(1)));
    e3.kind = EventKind::AdminSetStage;
    e3.actor = "alice".into();
    let s = state(Stage::Warning, Some(T0), None);
    commit_ok(store, "e1", &who, &s, 0, std::slice::from_ref(&e1)).await;
    commit_ok(store, "e2 and e3", &who, &s, 1, &[e2.clone(), e3.clone()]).await;
    let o1 = event(&mut ids, &other, T0.plus_ms(hours(2)));
    commit_ok(store, "other user's event", &other, &s, 0, std::slice::from_ref(&o1)).await;

    assert_eq!(
        events_of(store, &who).await,
        vec![e3.clone(), e2.clone(), e1.clone()],
        "events are newest first (later-appended first at the same instant), only this user's, unchanged"
    );
    assert_eq!(store.events(&who, 2).await.expect("events"), vec![e3.clone(), e2.clone()], "limit keeps the newest");
    assert_eq!(store.events(&who, 0).await.expect("events"), vec![], "limit 0");
    assert_eq!(events_of(store, &other).await, vec![o1.clone()], "events are per user");

    let by_ref = store.event_by_case_ref(e2.case_ref.as_str()).await.expect("event_by_case_ref");
    assert_eq!(by_ref, Some(e2.clone()), "event_by_case_ref");
    let unknown_ref = Ids::new(&format!("{prefix}.never")).next().1;
    assert_eq!(store.event_by_case_ref(unknown_ref.as_str()).await.expect("event_by_case_ref"), None);

    assert_eq!(store.event_by_id(&who, &e1.event_id).await.expect("event_by_id"), Some(e1.clone()), "event_by_id");
    assert_eq!(
        store.event_by_id(&other, &e1.event_id).await.expect("event_by_id"),
        None,
        "event_by_id is scoped to the uid: another user's event is not found"
    );
    assert_eq!(store.event_by_id(&who, "no-such-event").await.expect("event_by_id"), None);
}

/// A commit with a case reference (or event id) already used is refused and writes nothing.
pub async fn enforcement_duplicate_case_ref_is_refused(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    let mut ids = Ids::new(&format!("{prefix}.dup"));
    let who = uid(prefix, "dup");
    let s1 = state(Stage::Warning, Some(T0), None);
    let e1 = event(&mut ids, &who, T0);
    commit_ok(store, "original", &who, &s1, 0, std::slice::from_ref(&e1)).await;

    let s2 = state(Stage::Throttle, Some(T0.plus_ms(1)), None);
    let fine = event(&mut ids, &who, T0.plus_ms(1));
    let mut same_ref = event(&mut ids, &who, T0.plus_ms(2));
    same_ref.case_ref = e1.case_ref.clone();
    let refused = store.commit(&who, &s2, 1, &[fine.clone(), same_ref], &[]).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "a reused case reference is refused: {refused:?}");

    let mut same_id = event(&mut ids, &who, T0.plus_ms(3));
    same_id.event_id = e1.event_id.clone();
    let refused = store.commit(&who, &s2, 1, &[fine.clone(), same_id], &[]).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "a reused event id is refused: {refused:?}");

    assert_eq!(
        store.load(&who).await.expect("load"),
        Some(Versioned { value: s1, version: 1 }),
        "a refused commit writes no state"
    );
    assert_eq!(events_of(store, &who).await, vec![e1], "a refused commit appends none of its events");
    assert_eq!(store.event_by_case_ref(fine.case_ref.as_str()).await.expect("by case ref"), None);
}

/// `update_event` replaces the resolution and nothing else.
pub async fn enforcement_update_event_changes_only_the_resolution(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    let mut ids = Ids::new(&format!("{prefix}.resolve"));
    let who = uid(prefix, "resolve");
    let original = event(&mut ids, &who, T0);
    let s = state(Stage::Warning, Some(T0), None);
    commit_ok(store, "event to resolve", &who, &s, 0, std::slice::from_ref(&original)).await;

    let resolution = Resolution {
        outcome: Outcome::Overturned,
        notes: "the user reads to their children".into(),
        resolved_by: "alice".into(),
        resolved_at: T0.plus_ms(days(1)),
    };
    let mut edited = original.clone();
    edited.resolution = Some(resolution.clone());
    // Everything else an admin handler might (wrongly) have changed must be ignored.
    edited.notes = Some("rewritten".into());
    edited.new_stage = Stage::Restrict;
    edited.created_at = T0.plus_ms(days(2));
    edited.evidence_redacted_at = Some(T0.plus_ms(days(3)));
    edited.verdict = None;
    store.update_event(&edited).await.expect("update_event");

    let want = Event { resolution: Some(resolution), ..original.clone() };
    assert_eq!(
        store.event_by_id(&who, &original.event_id).await.expect("event_by_id"),
        Some(want.clone()),
        "update_event changes the resolution only"
    );
    assert_eq!(store.event_by_case_ref(original.case_ref.as_str()).await.expect("by case ref"), Some(want.clone()));
    assert_eq!(events_of(store, &who).await, vec![want.clone()], "the event list shows the resolution");

    let cleared = Event { resolution: None, ..want };
    store.update_event(&cleared).await.expect("update_event");
    assert_eq!(
        store.event_by_id(&who, &original.event_id).await.expect("event_by_id"),
        Some(original.clone()),
        "the resolution can be replaced again"
    );

    let (missing_id, missing_ref) = Ids::new(&format!("{prefix}.resolve-missing")).next();
    let missing = Event { event_id: missing_id, case_ref: missing_ref, ..original };
    let got = store.update_event(&missing).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "updating an unknown event: {got:?}");
}

/// `flagged`: users not in `none` (or in the given stage), most recently changed first.
pub async fn enforcement_flagged(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    // Its own group: the other checks of this contract leave users in stages too.
    let group = format!("{prefix}.flagged");
    let prefix = group.as_str();
    let users = [
        ("flag-a", Stage::Warning, hours(1)),
        ("flag-b", Stage::Throttle, hours(3)),
        ("flag-c", Stage::Restrict, hours(2)),
        ("flag-d", Stage::None, hours(4)),
        ("flag-f", Stage::Warning, hours(1)),
    ];
    for (name, stage, since) in users {
        let s = state(stage, Some(T0.plus_ms(since)), None);
        commit_ok(store, name, &uid(prefix, name), &s, 0, &[]).await;
    }
    let mine = |list: Vec<(String, EnforcementState)>| -> Vec<(String, Stage)> {
        list.into_iter().filter(|(u, _)| is_mine(prefix, u)).map(|(u, s)| (u, s.stage)).collect()
    };
    let named = |names: &[(&str, Stage)]| -> Vec<(String, Stage)> {
        names.iter().map(|(n, s)| (uid(prefix, n).to_string(), *s)).collect()
    };
    let all = mine(store.flagged(None, 100_000).await.expect("flagged"));
    assert_eq!(
        all,
        named(&[
            ("flag-b", Stage::Throttle),
            ("flag-c", Stage::Restrict),
            ("flag-a", Stage::Warning),
            ("flag-f", Stage::Warning)
        ]),
        "flagged(None): every user not in none, most recent stage change first, ties by uid"
    );
    let warning = mine(store.flagged(Some(Stage::Warning), 100_000).await.expect("flagged"));
    assert_eq!(warning, named(&[("flag-a", Stage::Warning), ("flag-f", Stage::Warning)]), "flagged(warning)");
    let none = mine(store.flagged(Some(Stage::None), 100_000).await.expect("flagged"));
    assert_eq!(none, named(&[("flag-d", Stage::None)]), "flagged(Some(none)) lists users in none");
    assert_eq!(store.flagged(None, 1).await.expect("flagged").len(), 1, "limit");
    assert_eq!(store.flagged(Some(Stage::Warning), 1).await.expect("flagged").len(), 1, "limit with a stage");

    let full = store.flagged(Some(Stage::Restrict), 100_000).await.expect("flagged");
    let restrict = full.into_iter().find(|(u, _)| *u == uid(prefix, "flag-c").to_string());
    let want = state(Stage::Restrict, Some(T0.plus_ms(hours(2))), None);
    assert_eq!(restrict.map(|(_, s)| s), Some(want), "flagged returns the whole state");
}

/// `due_timers`: users not in `none` whose `stage_until` is at or before `now`.
pub async fn enforcement_due_timers(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    let group = format!("{prefix}.due");
    let prefix = group.as_str();
    let users = [
        ("due-p", Stage::Throttle, Some(hours(1))),
        ("due-q", Stage::Warning, Some(hours(2))),
        ("due-r", Stage::Restrict, Some(hours(3))),
        ("due-s", Stage::None, Some(0)),
        ("due-t", Stage::Warning, None),
    ];
    for (name, stage, until) in users {
        let mut s = state(stage, Some(T0.minus_ms(days(1))), until.map(|u| T0.plus_ms(u)));
        s.manual = until.is_none();
        commit_ok(store, name, &uid(prefix, name), &s, 0, &[]).await;
    }
    let due = |now: Timestamp, limit: usize| async move {
        let mut mine: Vec<String> = store
            .due_timers(now, limit)
            .await
            .expect("due_timers")
            .into_iter()
            .filter(|u| is_mine(prefix, u))
            .collect();
        mine.sort();
        mine
    };
    let names = |n: &[&str]| -> Vec<String> { n.iter().map(|n| uid(prefix, n).to_string()).collect() };
    assert_eq!(due(T0.plus_ms(hours(1) - 1), 100_000).await, names(&[]), "nothing is due before its timer");
    assert_eq!(due(T0.plus_ms(hours(1)), 100_000).await, names(&["due-p"]), "due exactly at stage_until");
    assert_eq!(
        due(T0.plus_ms(days(365)), 100_000).await,
        names(&["due-p", "due-q", "due-r"]),
        "users in none and manual stages without expiry are never due"
    );
    assert_eq!(store.due_timers(T0.plus_ms(days(365)), 2).await.expect("due_timers").len(), 2, "limit");
}

/// `redact_evidence_before` redacts the verdict evidence of older events, stamps them once, and
/// leaves newer events alone. The call is global, so its count is only checked exactly when no
/// other run of this check uses the same store at the same time.
pub async fn enforcement_redacts_evidence(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    let mut ids = Ids::new(&format!("{prefix}.redact"));
    let who = uid(prefix, "redact");
    // Events from 1970: no other contract writes events that old, so this cutoff touches only ours.
    let cutoff = Timestamp::from_millis(2_000_000);
    let old = event(&mut ids, &who, Timestamp::from_millis(1_000_000));
    let mut old_plain = event(&mut ids, &who, Timestamp::from_millis(1_500_000));
    old_plain.verdict = None;
    let at_cutoff = event(&mut ids, &who, cutoff);
    let recent = event(&mut ids, &who, T0);
    let s = state(Stage::Warning, Some(T0), None);
    let all = [old.clone(), old_plain.clone(), at_cutoff.clone(), recent.clone()];
    commit_ok(store, "events to redact", &who, &s, 0, &all).await;

    let changed = store.redact_evidence_before(cutoff, T0).await.expect("redact_evidence_before");
    assert!(changed >= 2, "both events before the cutoff changed, got {changed}");

    let mut redacted = old.clone();
    if let Some(v) = redacted.verdict.as_mut() {
        redact(v);
    }
    redacted.evidence_redacted_at = Some(T0);
    let got = store.event_by_id(&who, &old.event_id).await.expect("event_by_id");
    assert_eq!(got, Some(redacted.clone()), "evidence text is redacted, conversation ids and the rest kept");
    let plain = Event { evidence_redacted_at: Some(T0), ..old_plain.clone() };
    let got = store.event_by_id(&who, &old_plain.event_id).await.expect("event_by_id");
    assert_eq!(got, Some(plain.clone()), "an old event without a verdict is stamped too");
    let got = store.event_by_id(&who, &at_cutoff.event_id).await.expect("event_by_id");
    assert_eq!(got, Some(at_cutoff.clone()), "an event created at the cutoff is kept (strictly before)");
    let got = store.event_by_id(&who, &recent.event_id).await.expect("event_by_id");
    assert_eq!(got, Some(recent.clone()), "recent events are untouched");

    store.redact_evidence_before(cutoff, T0.plus_ms(days(1))).await.expect("redact_evidence_before");
    let got = store.event_by_id(&who, &old.event_id).await.expect("event_by_id");
    assert_eq!(got, Some(redacted), "a redacted event keeps its first redaction stamp");
    assert_eq!(
        events_of(store, &who).await,
        vec![recent, at_cutoff, plain, got.unwrap_or_else(|| panic!("the redacted event vanished"))],
        "redaction changes no other event and no order"
    );
}

/// The whole enforcement store contract.
/// `events_since` reads one user's events from an instant on, oldest first and in append order
/// among equal instants; `users_with_events_since` lists whose, once each, sorted.
pub async fn enforcement_events_since(store: &dyn EnforcementStore, prefix: &str) {
    check_prefix(prefix);
    let mine_owned = format!("{prefix}.since");
    let mine = mine_owned.as_str();
    let mut ids = Ids::new(mine);
    let who = uid(mine, "a");
    let other = uid(mine, "b");
    let since = |u: Uid, from: Timestamp| async move {
        store.events_since(&u, from).await.unwrap_or_else(|e| panic!("events_since({u}, {from}) failed: {e}"))
    };
    let users = |from: Timestamp| async move {
        let all = store.users_with_events_since(from).await.unwrap_or_else(|e| panic!("users_with_events_since: {e}"));
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(all, sorted, "users_with_events_since answers each uid once, sorted");
        all.into_iter().filter(|u| is_mine(mine, u)).collect::<Vec<String>>()
    };
    assert!(since(who.clone(), T0).await.is_empty(), "no events yet");
    assert!(users(T0).await.is_empty(), "nobody has events yet");

    let o1 = event(&mut ids, &other, T0.plus_ms(hours(1)));
    let s = state(Stage::Warning, Some(T0), None);
    commit_ok(store, "the other user's event", &other, &s, 0, std::slice::from_ref(&o1)).await;
    let e1 = event(&mut ids, &who, T0.plus_ms(hours(2)));
    let mut e2 = event(&mut ids, &who, T0.plus_ms(hours(3)));
    e2.kind = EventKind::AdminReset;
    let mut e3 = event(&mut ids, &who, T0.plus_ms(hours(3)));
    e3.kind = EventKind::AdminSetStage;
    // Committed first, created last: reading is by creation time, not by commit.
    let e0 = event(&mut ids, &who, T0.plus_ms(hours(4)));
    commit_ok(store, "a later event", &who, &s, 0, std::slice::from_ref(&e0)).await;
    commit_ok(store, "e1", &who, &s, 1, std::slice::from_ref(&e1)).await;
    commit_ok(store, "e2 and e3 at one instant", &who, &s, 2, &[e2.clone(), e3.clone()]).await;
    let mut e4 = event(&mut ids, &who, T0.plus_ms(hours(3)));
    e4.kind = EventKind::TimerExpired;
    commit_ok(store, "e4 at the same instant, later", &who, &s, 3, std::slice::from_ref(&e4)).await;

    let all = vec![e1.clone(), e2.clone(), e3.clone(), e4.clone(), e0.clone()];
    assert_eq!(since(who.clone(), T0).await, all, "oldest first; equal instants in append order; every field");
    assert_eq!(since(who.clone(), T0.plus_ms(hours(3))).await, all[1..].to_vec(), "from an instant, inclusive");
    assert_eq!(since(who.clone(), T0.plus_ms(hours(3) + 1)).await, vec![e0], "only what was created from then on");
    assert!(since(who.clone(), T0.plus_ms(hours(5))).await.is_empty(), "nothing after the last event");
    assert_eq!(since(other.clone(), T0).await, vec![o1], "per user");

    assert_eq!(users(T0).await, vec![who.to_string(), other.to_string()], "both, once each, sorted");
    assert_eq!(users(T0.plus_ms(hours(1) + 1)).await, vec![who.to_string()], "the other's event is older");
    assert!(users(T0.plus_ms(hours(4) + 1)).await.is_empty(), "nothing from then on");
}

pub async fn enforcement_contract(store: &dyn EnforcementStore, prefix: &str) {
    enforcement_commit_is_versioned_and_atomic(store, prefix).await;
    enforcement_events_read_back(store, prefix).await;
    enforcement_duplicate_case_ref_is_refused(store, prefix).await;
    enforcement_update_event_changes_only_the_resolution(store, prefix).await;
    enforcement_flagged(store, prefix).await;
    enforcement_due_timers(store, prefix).await;
    enforcement_redacts_evidence(store, prefix).await;
    enforcement_events_since(store, prefix).await;
}
