//! The store contracts of `fairuse-store-contract` against a real PostgreSQL, plus what only a
//! shared database can show: racing commits, racing claims from separate pools, migrations run
//! twice or by two replicas at once, a schema from a newer build, and data across reconnects.
//!
//! The server is `FAIRUSE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Every test gets its own schema `fu_test_<random hex>`, created by `migrate` and dropped at the
//! end (also when the test fails), so tests run in parallel and leave nothing behind.

use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fairuse_domain::engine::{EnforcementState, Event, EventKind, SYSTEM_ACTOR};
use fairuse_domain::error::StoreError;
use fairuse_domain::ids::{CaseRef, Uid};
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{
    ConversationStore, EnforcementStore, Job, JobStore, OutboxMessage, OutboxStore, Versioned,
};
use fairuse_domain::time::Timestamp;
use fairuse_store_contract as contract;
use fairuse_store_postgres::{LATEST_VERSION, PgOptions, PostgresStore};
use sqlx::Connection;
use tokio::sync::Barrier;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// 2026-03-20T00:00:00Z, as in the contracts.
const T0: Timestamp = Timestamp::from_millis(1_773_964_800_000);

fn database_url() -> String {
    std::env::var("FAIRUSE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `fu_test_` and 16 hex digits: a process-random hasher over the time, the pid and a counter.
fn unique_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("fu_test_{:016x}", h.finish())
}

fn options(schema: &str) -> PgOptions {
    PgOptions {
        schema: schema.to_owned(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(10),
    }
}

/// A store on `schema` (not migrated). Fails the test with how to start PostgreSQL if it is down.
async fn connect(schema: &str) -> PostgresStore {
    let url = database_url();
    PostgresStore::connect(&url, options(schema)).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}; start it with: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start ({e})"
        )
    })
}

/// Best effort: a test that cannot drop its schema still passed or failed on its own merits.
async fn drop_schema(schema: &str) {
    let Ok(mut conn) = sqlx::PgConnection::connect(&database_url()).await else { return };
    // `schema` comes from `unique_schema`: lowercase hex and underscores only.
    let _ =
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&mut conn).await;
    let _ = conn.close().await;
}

/// Runs `test` against a freshly migrated store in its own schema, then drops the schema whether
/// the test passed or panicked (the panic is re-raised afterwards).
async fn with_store<F, Fut>(test: F)
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = unique_schema();
    let store = connect(&schema).await;
    if let Err(e) = store.migrate().await {
        drop_schema(&schema).await;
        panic!("migrate {schema}: {e}");
    }
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    drop_schema(&schema).await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the test task did not finish: {e}"),
        }
    }
}

fn uid(name: &str) -> Uid {
    Uid::parse(name).unwrap_or_else(|e| panic!("uid {name:?}: {e}"))
}

fn event(uid: &Uid, n: u64, created_at: Timestamp) -> Event {
    Event {
        event_id: format!("{uid}.ev{n}"),
        case_ref: CaseRef::from_bits(n),
        uid: uid.to_string(),
        created_at,
        kind: EventKind::StageChanged,
        trigger: None,
        verdict: None,
        previous_stage: Stage::None,
        new_stage: Stage::Warning,
        stage_until: None,
        actor: SYSTEM_ACTOR.into(),
        shadow: false,
        session_id: None,
        notes: Some(format!("event {n}")),
        budget: None,
        resolution: None,
        evidence_redacted_at: None,
    }
}

fn warning_since(at: Timestamp) -> EnforcementState {
    EnforcementState {
        stage: Stage::Warning,
        stage_since: Some(at),
        updated_at: Some(at),
        ..EnforcementState::default()
    }
}

fn message(id: &str) -> OutboxMessage {
    OutboxMessage {
        id: id.to_owned(),
        body: format!(r#"{{"id":"{id}"}}"#),
        attempts: 0,
        next_attempt_at: T0,
        created_at: T0,
        last_error: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The shared contracts.

#[tokio::test]
async fn postgres_enforcement_store_meets_the_whole_contract() {
    with_store(|store| async move { contract::enforcement_contract(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_commit_is_versioned_and_atomic() {
    with_store(|store| async move { contract::enforcement_commit_is_versioned_and_atomic(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_events_read_back_newest_first() {
    with_store(|store| async move { contract::enforcement_events_read_back(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_duplicate_case_ref_is_refused() {
    with_store(|store| async move { contract::enforcement_duplicate_case_ref_is_refused(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_update_event_changes_only_the_resolution() {
    with_store(|store| async move {
        contract::enforcement_update_event_changes_only_the_resolution(&store, "pg").await;
    })
    .await;
}

#[tokio::test]
async fn postgres_flagged_lists_newest_stage_changes_first() {
    with_store(|store| async move { contract::enforcement_flagged(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_due_timers_lists_expired_stages() {
    with_store(|store| async move { contract::enforcement_due_timers(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_redacts_old_evidence() {
    with_store(|store| async move { contract::enforcement_redacts_evidence(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_conversation_store_meets_the_contract() {
    with_store(|store| async move { contract::conversation_contract(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_stream_session_store_meets_the_contract() {
    with_store(|store| async move { contract::stream_session_contract(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_print_index_meets_the_contract() {
    with_store(|store| async move { contract::print_contract(&store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_outbox_meets_the_contract() {
    with_store(|store| async move { contract::outbox_contract(&store, &store, "pg").await }).await;
}

#[tokio::test]
async fn postgres_job_store_meets_the_contract() {
    with_store(|store| async move { contract::job_contract(&store, "pg").await }).await;
}

// ---------------------------------------------------------------------------------------------
// Several replicas on one database.

/// Two replicas (separate pools) commit over the same version at the same moment, many times:
/// each time exactly one wins and the loser's state, event and outbox message never appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_with_the_same_expected_version_let_exactly_one_win() {
    with_store(|a| async move {
        let b = connect(a.schema()).await;
        let who = uid("race");
        let barrier = Arc::new(Barrier::new(2));
        const ROUNDS: u64 = 25;
        for round in 0..ROUNDS {
            let at = T0.plus_ms(i64::try_from(round).expect("small") * 1_000);
            let attempt = |store: PostgresStore, side: u64| {
                let barrier = barrier.clone();
                let who = who.clone();
                tokio::spawn(async move {
                    // Each side writes a state of its own, so the stored one shows who won.
                    let state = EnforcementState { plan: Some(format!("side-{side}")), ..warning_since(at) };
                    let ev = event(&who, round * 2 + side, at);
                    let msg = message(&format!("race.{round}.{side}"));
                    barrier.wait().await;
                    let got = store.commit(&who, &state, round, std::slice::from_ref(&ev), &[msg]).await;
                    (side, state, ev, got)
                })
            };
            let (ra, rb) = tokio::join!(attempt(a.clone(), 0), attempt(b.clone(), 1));
            let results = [ra.expect("task a"), rb.expect("task b")];
            let winners: Vec<_> = results.iter().filter(|r| r.3.is_ok()).collect();
            let losers: Vec<_> = results.iter().filter(|r| r.3.is_err()).collect();
            assert_eq!(
                winners.len(),
                1,
                "round {round}: exactly one commit wins: {:?}",
                results.iter().map(|r| &r.3).collect::<Vec<_>>()
            );
            assert_eq!(losers[0].3, Err(StoreError::Conflict), "round {round}: the other gets Conflict");
            let (_, won_state, won_event, won_version) = winners[0];
            assert_eq!(*won_version, Ok(round + 1));
            let (_, _, lost_event, _) = losers[0];
            let loaded = a.load(&who).await.expect("load");
            assert_eq!(loaded, Some(Versioned { value: won_state.clone(), version: round + 1 }), "round {round}");
            assert_eq!(
                a.event_by_case_ref(won_event.case_ref.as_str()).await.expect("by case ref"),
                Some(won_event.clone())
            );
            assert_eq!(a.event_by_case_ref(lost_event.case_ref.as_str()).await.expect("by case ref"), None);
        }
        assert_eq!(a.events(&who, 1_000).await.expect("events").len() as u64, ROUNDS, "one event per round");
        assert_eq!(a.pending().await.expect("pending"), ROUNDS, "one outbox message per round");
        b.close().await;
    })
    .await;
}

/// Two replicas race snapshots of one stream session, each sending them in its own order (one
/// oldest first, one newest first), many rounds: the upsert rule holds under the race, so the
/// stored session always ends as the newest snapshot, closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_stream_session_snapshots_from_two_replicas_keep_the_newest() {
    with_store(|a| async move {
        let b = connect(a.schema()).await;
        let who = uid("stream-race");
        let barrier = Arc::new(Barrier::new(2));
        for round in 0..20 {
            let id = format!("s{round}");
            let snapshots: Vec<StreamSession> = (1..=8)
                .map(|k| StreamSession {
                    updated_at: T0.plus_ms(k * 60_000),
                    duration_ms: k * 60_000,
                    speech_ms: k * 30_000,
                    stt_ms: k * 60_000,
                    longest_speech_ms: k * 1_000,
                    pause_count: k.unsigned_abs(),
                    closed: k == 8,
                    ..StreamSession::open(id.clone(), T0)
                })
                .collect();
            let send = |store: PostgresStore, order: Vec<StreamSession>| {
                let barrier = barrier.clone();
                let who = who.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    for s in &order {
                        store.upsert_stream_session(&who, s).await.expect("upsert_stream_session");
                    }
                })
            };
            let reversed: Vec<StreamSession> = snapshots.iter().rev().cloned().collect();
            let (ra, rb) = tokio::join!(send(a.clone(), snapshots.clone()), send(b.clone(), reversed));
            ra.expect("task a");
            rb.expect("task b");
            let stored = a.stream_sessions_since(&who, T0, 100).await.expect("stream_sessions_since");
            let mine: Vec<&StreamSession> = stored.iter().filter(|s| s.session_id == id).collect();
            assert_eq!(mine, vec![&snapshots[7]], "round {round}: the newest snapshot, closed, and only it");
        }
        b.close().await;
    })
    .await;
}

/// A commit that has to wait for another transaction's row lock re-checks the version once the
/// lock is released: when the holder moved the version on, the waiter conflicts and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_blocked_behind_a_newer_write_conflicts_instead_of_overwriting() {
    with_store(|store| async move {
        let who = uid("blocked");
        store.commit(&who, &warning_since(T0), 0, &[], &[]).await.expect("first commit");

        let mut holder = store.pool().begin().await.expect("begin");
        sqlx::query("UPDATE user_state SET version = version + 1 WHERE uid = $1")
            .bind(who.as_str())
            .execute(&mut *holder)
            .await
            .expect("lock the row");
        let waiter = {
            let store = store.clone();
            let who = who.clone();
            tokio::spawn(async move {
                let mut late = warning_since(T0.plus_ms(1));
                late.stage = Stage::Restrict;
                store.commit(&who, &late, 1, &[event(&who, 7, T0)], &[message("blocked.m")]).await
            })
        };
        // Give the waiter time to block on the row lock; the outcome does not depend on it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.commit().await.expect("commit the holder");
        assert_eq!(waiter.await.expect("waiter"), Err(StoreError::Conflict));
        let loaded = store.load(&who).await.expect("load").expect("state");
        assert_eq!((loaded.version, loaded.value.stage), (2, Stage::Warning), "the holder's write stands");
        assert_eq!(store.events(&who, 10).await.expect("events"), vec![], "the loser appended nothing");
        assert_eq!(store.pending().await.expect("pending"), 0, "the loser enqueued nothing");
    })
    .await;
}

/// Four racers on two pools claim batches (`claim_batch`) until one comes back empty; asserts no
/// id is claimed twice and returns how many were claimed in all.
async fn claim_with_four_racers<F, Fut>(stores: [&PostgresStore; 2], claim_batch: F) -> usize
where
    F: Fn(PostgresStore) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Vec<String>> + Send,
{
    let [a, b] = stores;
    let claimers: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            let claim_batch = claim_batch.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = claim_batch(store.clone()).await;
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch);
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for c in claimers {
        for id in c.await.expect("claimer") {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    seen.len()
}

/// Claims from separate pools (replicas) race over a large outbox; every message is handed out
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_outbox_claims_never_return_the_same_message() {
    with_store(|a| async move {
        const MESSAGES: usize = 300;
        let who = uid("outbox-race");
        let all: Vec<OutboxMessage> = (0..MESSAGES).map(|i| message(&format!("m{i:04}"))).collect();
        a.commit(&who, &warning_since(T0), 0, &[], &all).await.expect("enqueue");
        let b = connect(a.schema()).await;
        let total = claim_with_four_racers([&a, &b], |store| async move {
            store.claim_due(T0, 7, 3_600_000).await.expect("claim_due").into_iter().map(|m| m.id).collect()
        })
        .await;
        assert_eq!(total, MESSAGES, "every message was claimed once");
        b.close().await;
    })
    .await;
}

/// The same for classifier jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_job_claims_never_return_the_same_job() {
    with_store(|a| async move {
        const JOBS: usize = 300;
        for i in 0..JOBS {
            let job = Job {
                id: format!("j{i:04}"),
                uid: "job-user".into(),
                lock_token: format!("t{i}"),
                session_id: None,
                attempts: 0,
                created_at: T0,
            };
            a.enqueue(&job, T0).await.expect("enqueue");
        }
        let b = connect(a.schema()).await;
        let total = claim_with_four_racers([&a, &b], |store| async move {
            store.claim(T0, 7, 3_600_000).await.expect("claim").into_iter().map(|j| j.id).collect()
        })
        .await;
        assert_eq!(total, JOBS, "every job was claimed once");
        b.close().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Migrations, connections and errors.

async fn recorded_migrations(store: &PostgresStore) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT version, description FROM schema_migrations ORDER BY version")
        .fetch_all(store.pool())
        .await
        .expect("read schema_migrations")
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    with_store(|store| async move {
        let who = uid("kept");
        store.commit(&who, &warning_since(T0), 0, &[event(&who, 1, T0)], &[]).await.expect("commit");
        let before = recorded_migrations(&store).await;
        assert_eq!(before.last().map(|m| m.0), Some(LATEST_VERSION), "every migration is recorded");
        store.migrate().await.expect("second migrate");
        assert_eq!(recorded_migrations(&store).await, before, "nothing new is recorded");
        assert_eq!(store.schema_version().await.expect("schema_version"), Some(LATEST_VERSION));
        assert_eq!(store.load(&who).await.expect("load").map(|v| v.version), Some(1), "data is untouched");
        assert_eq!(store.events(&who, 10).await.expect("events").len(), 1);
    })
    .await;
}

/// Replicas starting at once on an empty schema: the advisory lock lets each migration run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_a_new_schema_at_once_both_succeed() {
    let schema = unique_schema();
    let stores = [connect(&schema).await, connect(&schema).await, connect(&schema).await];
    assert_eq!(stores[0].schema_version().await.expect("schema_version"), None, "nothing before migrate");
    let runs: Vec<_> = stores.iter().cloned().map(|s| tokio::spawn(async move { s.migrate().await })).collect();
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.expect("migrate task"));
    }
    let recorded = recorded_migrations(&stores[0]).await;
    for s in &stores {
        s.close().await;
    }
    drop_schema(&schema).await;
    assert!(outcomes.iter().all(Result::is_ok), "every replica migrates: {outcomes:?}");
    assert_eq!(recorded.len() as i64, LATEST_VERSION, "each migration recorded once: {recorded:?}");
}

#[tokio::test]
async fn a_schema_migrated_by_a_newer_build_is_refused() {
    with_store(|store| async move {
        sqlx::query("INSERT INTO schema_migrations (version, description) VALUES ($1, 'from the future')")
            .bind(LATEST_VERSION + 1)
            .execute(store.pool())
            .await
            .expect("record a newer migration");
        let refused = store.migrate().await;
        match &refused {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("newer fairuse"), "the message says why: {message}");
                assert!(message.contains(&(LATEST_VERSION + 1).to_string()), "and names the version: {message}");
            }
            other => panic!("a newer schema must be refused, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn data_survives_reconnecting() {
    with_store(|store| async move {
        let who = uid("durable");
        let state = warning_since(T0);
        let ev = event(&who, 1, T0);
        store.commit(&who, &state, 0, std::slice::from_ref(&ev), &[message("durable.m")]).await.expect("commit");
        store.close().await;
        assert!(matches!(store.load(&who).await, Err(StoreError::Unavailable(_))), "a closed store is unavailable");

        let again = connect(store.schema()).await;
        again.migrate().await.expect("migrate on restart");
        assert_eq!(again.load(&who).await.expect("load"), Some(Versioned { value: state, version: 1 }));
        assert_eq!(again.events(&who, 10).await.expect("events"), vec![ev]);
        assert_eq!(again.pending().await.expect("pending"), 1);
        again.close().await;
    })
    .await;
}

#[tokio::test]
async fn every_connection_uses_the_schema_and_the_statement_timeout() {
    with_store(|store| async move {
        let (search_path, timeout): (String, String) =
            sqlx::query_as("SELECT current_setting('search_path'), current_setting('statement_timeout')")
                .fetch_one(store.pool())
                .await
                .expect("settings");
        assert_eq!(search_path, store.schema());
        assert_eq!(timeout, "10s");
        store.ping().await.expect("ping");
    })
    .await;
}

/// JSONB stores numbers as `numeric` and prints them its own way (`1e-7` comes back as
/// `0.0000001`); the scores and confidences in states and events must still read back bit for bit.
/// (Two known exceptions outside any score's [0, 1]: `-0.0` reads back as `0.0`, since numeric has
/// no negative zero, and values near `f64::MAX` come back as 309-digit integers serde_json refuses.)
#[tokio::test]
async fn floats_round_trip_exactly_through_jsonb() {
    with_store(|store| async move {
        let awkward = [
            0.1 + 0.2,
            1e-7,
            0.123_456_789_012_345_68,
            5e-324,
            2.225_073_858_507_201e-308,
            1e-300,
            0.7,
            1.0 / 3.0,
            1e300,
        ];
        for (i, score) in awkward.into_iter().enumerate() {
            let who = uid(&format!("float{i}"));
            let state = EnforcementState { last_score: Some(score), ..warning_since(T0) };
            store.commit(&who, &state, 0, &[], &[]).await.expect("commit");
            let back =
                store.load(&who).await.unwrap_or_else(|e| panic!("{score:e}: {e}")).and_then(|v| v.value.last_score);
            assert_eq!(back.map(f64::to_bits), Some(score.to_bits()), "{score:e} read back as {back:?}");
        }
    })
    .await;
}

/// JSONB cannot hold U+0000: such input is refused as Invalid, certainly and without a write.
#[tokio::test]
async fn text_postgres_cannot_store_is_refused_as_invalid() {
    with_store(|store| async move {
        let who = uid("nul");
        let mut ev = event(&who, 1, T0);
        ev.notes = Some("appeal\u{0}text".into());
        let refused = store.commit(&who, &warning_since(T0), 0, &[ev], &[]).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
        assert_eq!(store.load(&who).await.expect("load"), None, "nothing was written");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let opts = PgOptions { acquire_timeout: Duration::from_secs(2), ..PgOptions::default() };
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let got = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test", opts).await;
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{:?}", got.err());
}

#[tokio::test]
async fn a_bad_schema_name_is_refused_before_connecting() {
    let opts = PgOptions { schema: "fair-use; DROP TABLE x".into(), ..PgOptions::default() };
    let got = PostgresStore::connect(&database_url(), opts).await;
    assert!(matches!(got, Err(StoreError::Invalid(_))), "{:?}", got.err());
}
