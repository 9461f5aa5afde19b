//! What the embedded store promises beyond the trait contracts: everything survives closing and
//! reopening the data directory (so a restart or a kill -9 loses nothing acknowledged), pruning
//! removes only what retention no longer needs, and failures are reported as certain or unknown.

use std::sync::Arc;

use fairuse_domain::classifier::Conversation;
use fairuse_domain::engine::{EnforcementState, Event, EventKind};
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::{CaseRef, Lane, Uid};
use fairuse_domain::policy::Policy;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{
    BudgetStore, ConversationStore, EnforcementStore, Job, JobStore, LockStore, OutboxMessage, OutboxStore,
    UsageMeterStore, Versioned,
};
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::{RecordOutcome, SpeechAmount, UsageReport};
use fairuse_store_embedded::{DB_FILE_NAME, EmbeddedStore};

/// 2026-03-20T00:00:00Z
const T0: Timestamp = Timestamp::from_millis(1_773_964_800_000);

fn uid(text: &str) -> Uid {
    Uid::parse(text).expect("valid uid")
}

fn keyed(lane: Lane, ms: i64, key: &str) -> UsageReport {
    UsageReport { idempotency_key: Some(key.into()), ..UsageReport::delta(lane, ms) }
}

fn session(total_ms: i64, stt_ms: i64) -> UsageReport {
    UsageReport {
        lane: Lane::Realtime,
        amount: SpeechAmount::Cumulative { session_id: "stream-1".into(), total_ms },
        at: None,
        idempotency_key: None,
        stt_ms,
    }
}

fn added(speech: i64, stt: i64) -> RecordOutcome {
    RecordOutcome { speech_added_ms: speech, stt_added_ms: stt, duplicate: false }
}

fn event(uid: &Uid, n: u64, at: Timestamp) -> Event {
    Event {
        event_id: format!("ev-{n}"),
        case_ref: CaseRef::from_bits(n),
        uid: uid.to_string(),
        created_at: at,
        kind: EventKind::StageChanged,
        trigger: None,
        verdict: None,
        previous_stage: Stage::None,
        new_stage: Stage::Warning,
        stage_until: Some(at.plus_ms(30 * MS_PER_DAY)),
        actor: "system".into(),
        shadow: false,
        session_id: None,
        notes: None,
        budget: None,
        resolution: None,
        evidence_redacted_at: None,
    }
}

#[tokio::test]
async fn usage_survives_reopening_and_duplicates_stay_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::default();
    let who = uid("reopen-usage");
    let now = T0.plus_ms(10 * MS_PER_HOUR);
    let an_hour_ago = UsageReport { at: Some(now.minus_ms(MS_PER_HOUR)), ..UsageReport::delta(Lane::SyncFresh, 7_000) };
    let reports = [
        keyed(Lane::Realtime, 60_000, "chunk-1"),
        session(90_000, 100_000),
        an_hour_ago,
        UsageReport::delta(Lane::CustomStt, 5_000),
    ];

    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    let (_, before) = store.record_and_read(&who, &reports, &policy, now).await.expect("record");
    assert_eq!(before, vec![157_000; 3]);
    let series_before = store.minute_series(&who, Lane::Realtime, 0, i64::MAX).await.expect("series");
    let shape_before = store.usage_shape(&who, 7 * MS_PER_DAY, now).await.expect("shape");
    store.close().await;

    let store = EmbeddedStore::open(dir.path()).await.expect("reopen");
    assert_eq!(store.read_totals(&who, &policy, now).await.expect("totals"), before, "totals after reopening");
    assert_eq!(store.minute_series(&who, Lane::Realtime, 0, i64::MAX).await.expect("series"), series_before);
    assert_eq!(store.usage_shape(&who, 7 * MS_PER_DAY, now).await.expect("shape"), shape_before);

    let later = now.plus_ms(MS_PER_MINUTE);
    let retries = [keyed(Lane::Realtime, 60_000, "chunk-1"), session(90_000, 100_000), session(120_000, 110_000)];
    let (outcomes, totals) = store.record_and_read(&who, &retries, &policy, later).await.expect("record");
    assert_eq!(
        outcomes,
        vec![RecordOutcome { duplicate: true, ..RecordOutcome::default() }, added(0, 0), added(30_000, 10_000)],
        "idempotency keys and session maxima survive a restart"
    );
    assert_eq!(totals, vec![187_000; 3]);
    store.close().await;

    let store = EmbeddedStore::open(dir.path()).await.expect("reopen again");
    assert_eq!(store.read_totals(&who, &policy, later).await.expect("totals"), vec![187_000; 3]);
}

#[tokio::test]
async fn state_events_queues_conversations_and_stream_sessions_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let who = uid("reopen-state");
    let state = EnforcementState {
        stage: Stage::Warning,
        stage_since: Some(T0),
        stage_until: Some(T0.plus_ms(30 * MS_PER_DAY)),
        last_score: Some(0.8125),
        ..EnforcementState::default()
    };
    let events = [event(&who, 1, T0), event(&who, 2, T0.plus_ms(1))];
    let message = OutboxMessage {
        id: "ev-2".into(),
        body: "{}".into(),
        attempts: 0,
        next_attempt_at: T0,
        created_at: T0,
        last_error: None,
    };
    let job = Job {
        id: "job-1".into(),
        uid: who.to_string(),
        lock_token: "tok".into(),
        session_id: None,
        attempts: 0,
        created_at: T0,
    };
    let conversation = Conversation {
        conversation_id: "c-1".into(),
        title: "Chapter 1".into(),
        overview: String::new(),
        category: "education".into(),
        started_at: T0,
        finished_at: T0.plus_ms(MS_PER_HOUR),
        source: "omi".into(),
        speaker_count: None,
        word_count: Some(8_000),
    };

    let stream =
        StreamSession { duration_ms: 90_000, speech_ms: 40_000, closed: true, ..StreamSession::open("s-1", T0) };

    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    store.commit(&who, &state, 0, &events, std::slice::from_ref(&message)).await.expect("commit");
    store.enqueue(&job, T0).await.expect("enqueue");
    store.upsert(&who, &conversation).await.expect("upsert");
    store.upsert_stream_session(&who, &stream).await.expect("upsert_stream_session");
    store.close().await;

    let store = EmbeddedStore::open(dir.path()).await.expect("reopen");
    assert_eq!(store.load(&who).await.expect("load"), Some(Versioned { value: state.clone(), version: 1 }));
    assert_eq!(store.events(&who, 10).await.expect("events"), vec![events[1].clone(), events[0].clone()]);
    assert_eq!(store.event_by_case_ref(events[0].case_ref.as_str()).await.expect("by ref"), Some(events[0].clone()));
    assert_eq!(store.flagged(None, 10).await.expect("flagged"), vec![(who.to_string(), state.clone())]);
    assert_eq!(store.due_timers(T0.plus_ms(30 * MS_PER_DAY), 10).await.expect("due"), vec![who.to_string()]);
    assert_eq!(store.pending().await.expect("pending"), 1);
    assert_eq!(store.claim_due(T0, 10, 60_000).await.expect("claim"), vec![message]);
    assert_eq!(store.claim(T0, 10, 60_000).await.expect("claim"), vec![job]);
    assert_eq!(store.since(&who, T0, 10).await.expect("since"), vec![conversation]);
    assert_eq!(store.stream_sessions_since(&who, T0, 10).await.expect("stream sessions"), vec![stream.clone()]);
    assert_eq!(store.commit(&who, &state, 0, &[], &[]).await, Err(StoreError::Conflict), "the version survives");
    let reopened = StreamSession { closed: false, duration_ms: 100_000, ..stream.clone() };
    store.upsert_stream_session(&who, &reopened).await.expect("upsert_stream_session");
    assert_eq!(store.stream_sessions_since(&who, T0, 10).await.expect("stream sessions"), vec![stream], "still closed");
}

/// A data directory written by a build with schema version 1 (before stream sessions) is
/// upgraded in place at open: its data stays, and stream sessions work.
#[tokio::test]
async fn a_version_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).expect("create a version 1 database");
    conn.execute_batch(
        "CREATE TABLE schema_migrations (
             version INTEGER PRIMARY KEY NOT NULL, description TEXT NOT NULL, applied_at INTEGER NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 'initial schema', 0);",
    )
    .expect("bookkeeping");
    conn.execute_batch(include_str!("../migrations/0001_initial.sql")).expect("version 1");
    conn.execute(
        "INSERT INTO conversations (uid, conversation_id, started_at, body) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![
            "old-user",
            "c-1",
            T0.millis(),
            r#"{"conversation_id":"c-1","title":"Kept","started_at":"2026-03-20T00:00:00Z","finished_at":"2026-03-20T01:00:00Z"}"#
        ],
    )
    .expect("a version 1 row");
    drop(conn);

    let store = EmbeddedStore::open(dir.path()).await.expect("open upgrades");
    let who = uid("old-user");
    let kept = store.since(&who, T0, 10).await.expect("since");
    assert_eq!(kept.iter().map(|c| c.title.as_str()).collect::<Vec<_>>(), ["Kept"]);
    let stream = StreamSession { duration_ms: 1_000, ..StreamSession::open("s-1", T0) };
    store.upsert_stream_session(&who, &stream).await.expect("upsert_stream_session");
    assert_eq!(store.stream_sessions_since(&who, T0, 10).await.expect("stream sessions"), vec![stream]);
}

/// `tests/fixtures/sqlx-build/fairuse.db` was written by the sqlx-based store (commit 57efe6d),
/// before this crate moved to rusqlite: at 10:00 on 2026-03-20 user `legacy-user` reported a keyed
/// minute of realtime speech, a stream session at 90 s of speech and 100 s of STT, and 7 s of
/// sync-fresh speech an hour earlier; forwarded 100 s of STT with the exhaustion noted; took the
/// classifier lock for 12 h; moved to warning with one event and one outbox message; and stored a
/// job, a conversation and a closed stream session. This build must read all of it.
#[tokio::test]
async fn a_data_directory_written_by_the_sqlx_build_opens_with_everything_in_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sqlx-build").join(DB_FILE_NAME);
    std::fs::copy(&fixture, dir.path().join(DB_FILE_NAME)).expect("copy the fixture");
    let store = EmbeddedStore::open(dir.path()).await.expect("open a database of the sqlx build");
    let (who, policy, now) = (uid("legacy-user"), Policy::default(), T0.plus_ms(10 * MS_PER_HOUR));

    assert_eq!(store.read_totals(&who, &policy, now).await.expect("totals"), vec![157_000; 3]);
    let (outcomes, _) = store
        .record_and_read(&who, &[keyed(Lane::Realtime, 60_000, "chunk-1"), session(90_000, 100_000)], &policy, now)
        .await
        .expect("record");
    assert!(outcomes[0].duplicate, "its idempotency key is known");
    assert_eq!(outcomes[1], added(0, 0), "its session maximum is known");
    assert_eq!(store.used(&who, now.utc_day()).await.expect("used"), 100_000);
    assert!(!store.note_exhausted_once(&who, now.utc_day()).await.expect("note"), "noted once already");
    assert!(!store.try_acquire("classify:legacy-user", "other", MS_PER_HOUR, now).await.expect("lock"));
    let state = store.load(&who).await.expect("load").expect("a stored state");
    assert_eq!((state.value.stage, state.version), (Stage::Warning, 1));
    assert_eq!(store.events(&who, 10).await.expect("events").len(), 1);
    assert_eq!(store.pending().await.expect("pending"), 1);
    assert_eq!(store.claim(T0, 10, 60_000).await.expect("claim").len(), 1);
    assert_eq!(store.since(&who, T0, 10).await.expect("since")[0].title, "Chapter 1");
    assert_eq!(store.stream_sessions_since(&who, T0, 10).await.expect("stream sessions")[0].speech_ms, 40_000);
    assert_eq!(store.commit(&who, &state.value, 1, &[], &[]).await.expect("commit"), 2, "and it takes writes");
}

#[tokio::test]
async fn budgets_and_locks_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let who = uid("reopen-budget");
    let day = T0.utc_day();

    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    store.add_forwarded(&who, day, 60_000).await.expect("add");
    assert!(store.note_exhausted_once(&who, day).await.expect("note"));
    assert!(store.try_acquire("classify:reopen-budget", "tok", 12 * MS_PER_HOUR, T0).await.expect("lock"));
    store.close().await;

    let store = EmbeddedStore::open(dir.path()).await.expect("reopen");
    assert_eq!(store.used(&who, day).await.expect("used"), 60_000);
    assert!(!store.note_exhausted_once(&who, day).await.expect("note"), "one budget_exhausted a day, restarts too");
    assert!(
        !store
            .try_acquire("classify:reopen-budget", "other", MS_PER_HOUR, T0.plus_ms(MS_PER_HOUR))
            .await
            .expect("lock"),
        "the classifier cooldown lock survives a restart"
    );
    assert!(store.release("classify:reopen-budget", "tok").await.expect("release"));
}

#[tokio::test]
async fn pruning_removes_only_what_retention_no_longer_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    let policy = Policy::default();
    let retention = policy.metering.retention.ms();
    let who = uid("prune");
    let first = T0;
    store.record_and_read(&who, &[keyed(Lane::Realtime, 1_000, "old")], &policy, first).await.expect("record");
    store.add_forwarded(&who, first.utc_day(), 1_000).await.expect("add");
    assert!(store.try_acquire("short", "tok", 1_000, first).await.expect("lock"));
    // A day past the retention period, so the first UTC day is wholly outside it too.
    let now = first.plus_ms(retention + MS_PER_DAY);
    store.record_and_read(&who, &[keyed(Lane::Realtime, 2_000, "new")], &policy, now).await.expect("record");

    let report = store.prune(now, retention).await.expect("prune");
    assert_eq!(
        (report.buckets, report.idempotency_keys, report.budget_days, report.expired_locks),
        (1, 1, 1, 1),
        "{report:?}"
    );
    let series = store.minute_series(&who, Lane::Realtime, 0, i64::MAX).await.expect("series");
    assert_eq!(series, vec![(now.minute(), 2_000)], "the old bucket is gone, the new one kept");
    assert_eq!(store.read_totals(&who, &policy, now).await.expect("totals"), vec![2_000; 3]);
    assert_eq!(store.used(&who, first.utc_day()).await.expect("used"), 0);

    let evicted = store.prune(now.plus_ms(2 * MS_PER_HOUR), retention).await.expect("prune");
    assert_eq!(evicted.cached_meters, 1, "an idle user's meter leaves the cache: {evicted:?}");
    let (outcomes, _) =
        store.record_and_read(&who, &[keyed(Lane::Realtime, 2_000, "new")], &policy, now).await.expect("record");
    assert!(outcomes[0].duplicate, "an evicted meter is reloaded with its keys");
}

#[tokio::test]
async fn concurrent_reports_are_all_counted_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).await.expect("open"));
    let policy = Arc::new(Policy::default());
    let now = T0.plus_ms(MS_PER_HOUR);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, policy) = (store.clone(), policy.clone());
        tasks.push(tokio::spawn(async move {
            let who = uid(if i % 2 == 0 { "busy-a" } else { "busy-b" });
            // Every report is sent twice; the key makes the second a duplicate.
            let report = keyed(Lane::Realtime, 1_000, &format!("k{}", i / 2));
            for _ in 0..2 {
                store.record_and_read(&who, std::slice::from_ref(&report), &policy, now).await.expect("record");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for who in ["busy-a", "busy-b"] {
        let totals = store.read_totals(&uid(who), &policy, now).await.expect("totals");
        assert_eq!(totals, vec![20_000; 3], "{who}: twenty distinct reports of one second each");
    }
}

#[tokio::test]
async fn the_database_lives_in_the_data_directory_in_wal_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("nested").join("data");
    let store = EmbeddedStore::open(&data_dir).await.expect("open creates the directory");
    assert_eq!(store.db_path(), data_dir.join(DB_FILE_NAME));
    store.ping().await.expect("ping");
    store.add_forwarded(&uid("wal"), 1, 1).await.expect("write");
    let wal = data_dir.join(format!("{DB_FILE_NAME}-wal"));
    assert!(wal.exists(), "WAL mode keeps a {} file beside the database", wal.display());
}

#[tokio::test]
async fn a_closed_store_fails_with_certain_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    store.close().await;
    let got =
        store.record_and_read(&uid("closed"), &[UsageReport::delta(Lane::Realtime, 1)], &Policy::default(), T0).await;
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    let got = store.add_forwarded(&uid("closed"), 1, 1).await;
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "never reached the database, so certain: {got:?}");
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    store.close().await;
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).expect("connect");
    conn.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (999, 'future', 0)", [])
        .expect("insert");
    drop(conn);
    match EmbeddedStore::open(dir.path()).await {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("999"), "{message}"),
        Err(other) => panic!("expected unavailable, got {other:?}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[tokio::test]
async fn a_second_store_on_the_same_data_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = fairuse_store_embedded::EmbeddedStore::open(dir.path()).await.unwrap();
    let second = fairuse_store_embedded::EmbeddedStore::open(dir.path()).await;
    match second {
        Err(fairuse_domain::StoreError::Unavailable(msg)) => assert!(msg.contains("in use"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second store opened the same directory"),
    }
    first.close().await;
    fairuse_store_embedded::EmbeddedStore::open(dir.path()).await.expect("opens once the first is closed");
}
