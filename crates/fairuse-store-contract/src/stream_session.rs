//! The stream session contract: upsert by `(uid, session_id)` under the update rule of
//! `ConversationStore::upsert_stream_session` (a closed session stays closed, totals never go
//! down, an update that is behind is ignored without an error), read back by update time.

use fairuse_domain::prints::AudioMatch;
use fairuse_domain::sessions::StreamSession;
use fairuse_domain::store::ConversationStore;
use fairuse_domain::time::{MS_PER_MINUTE, Timestamp};

use crate::support::{T0, check_prefix, hours, uid};

/// A fully populated open session (so a round trip that drops a field is caught), updated
/// `minutes` after it started.
fn session(id: &str, started_at: Timestamp, minutes: i64) -> StreamSession {
    StreamSession {
        session_id: id.into(),
        started_at,
        updated_at: started_at.plus_ms(minutes * MS_PER_MINUTE),
        duration_ms: minutes * MS_PER_MINUTE,
        speech_ms: minutes * MS_PER_MINUTE / 2,
        stt_ms: minutes * MS_PER_MINUTE - 1,
        longest_speech_ms: 95_000,
        // Above 2^53: a store that turns numbers into doubles on the way loses it.
        pause_count: (1 << 53) + 1,
        pause_mean_ms: 1_234,
        pause_median_ms: 850,
        longest_pause_ms: 41_000,
        closed: false,
        duplicate_own_ms: 61_000,
        duplicate_other_ms: 122_000,
        duplicate_of: vec![AudioMatch {
            session_id: "earlier-1".into(),
            uid: "someone.else".into(),
            own: false,
            shift_ms: -3_600_000,
            shared_ms: 122_000,
        }],
    }
}

/// `session` a few minutes later: every total higher, the pause statistics different.
fn later(s: &StreamSession, minutes: i64) -> StreamSession {
    StreamSession {
        updated_at: s.updated_at.plus_ms(minutes * MS_PER_MINUTE),
        duration_ms: s.duration_ms + minutes * MS_PER_MINUTE,
        speech_ms: s.speech_ms + minutes * MS_PER_MINUTE / 3,
        stt_ms: s.stt_ms + minutes * MS_PER_MINUTE,
        longest_speech_ms: s.longest_speech_ms + 1,
        pause_count: s.pause_count + 7,
        pause_median_ms: s.pause_median_ms - 50,
        ..s.clone()
    }
}

/// Stream sessions are upserted by id under the update rule and read back by update time,
/// oldest started first.
pub async fn stream_session_contract(store: &dyn ConversationStore, prefix: &str) {
    check_prefix(prefix);
    let who = uid(prefix, "stream");
    let other = uid(prefix, "stream-other");
    let read = |from: Timestamp, limit: usize| {
        let who = who.clone();
        async move { store.stream_sessions_since(&who, from, limit).await.expect("stream_sessions_since") }
    };
    let upsert = |s: StreamSession| {
        let who = who.clone();
        async move { store.upsert_stream_session(&who, &s).await.expect("upsert_stream_session") }
    };
    assert!(read(T0, 100).await.is_empty(), "an unknown user has no stream sessions");

    // Started at 1 h, 0 h (still updated at 3 h: a long stream) and 2 h; "b" ties with "a".
    let a = session("a", T0.plus_ms(hours(1)), 10);
    let b = session("b", T0.plus_ms(hours(1)), 20);
    let long = session("long", T0, 180);
    let c = session("c", T0.plus_ms(hours(2)), 5);
    for s in [&c, &b, &long, &a] {
        upsert(s.clone()).await;
    }
    let theirs = StreamSession { closed: true, ..session("b", T0, 600) };
    store.upsert_stream_session(&other, &theirs).await.expect("upsert_stream_session");

    assert_eq!(
        read(T0, 100).await,
        vec![long.clone(), a.clone(), b.clone(), c.clone()],
        "oldest started first, ties by session id, every field kept"
    );
    assert_eq!(read(T0, 2).await, vec![b.clone(), c.clone()], "limit keeps the most recently started");
    assert_eq!(
        read(T0.plus_ms(hours(2)), 100).await,
        vec![long.clone(), c.clone()],
        "`from` filters on updated_at: the stream started at 0 h and still running at 3 h is in"
    );
    assert_eq!(read(c.updated_at, 100).await, vec![long.clone(), c.clone()], "`from` is inclusive");
    assert_eq!(read(c.updated_at.plus_ms(1), 100).await, vec![long.clone()], "earlier updates are left out");
    assert_eq!(read(long.updated_at.plus_ms(1), 100).await, vec![], "nothing updated after the last update");

    // A later snapshot replaces the stored one whole, pause statistics included.
    let a2 = later(&a, 5);
    upsert(a2.clone()).await;
    assert_eq!(read(T0, 100).await, vec![long.clone(), a2.clone(), b.clone(), c.clone()], "a later update replaces");
    upsert(a2.clone()).await;
    assert_eq!(read(T0, 100).await[1], a2, "the same snapshot again changes nothing");

    // Snapshots behind the stored one are ignored, without an error.
    for (what, stale) in [
        ("the earlier snapshot", a.clone()),
        ("less audio received", StreamSession { duration_ms: a2.duration_ms - 1, ..later(&a2, 1) }),
        ("less speech", StreamSession { speech_ms: a2.speech_ms - 1, ..later(&a2, 1) }),
        ("less forwarded audio", StreamSession { stt_ms: a2.stt_ms - 1, ..later(&a2, 1) }),
    ] {
        upsert(stale).await;
        assert_eq!(read(T0, 100).await[1], a2, "an update with {what} never lowers the stored totals");
    }

    // Closed stays closed: a later open snapshot is ignored, a later closed one still applies.
    let a3 = StreamSession { closed: true, ..later(&a2, 5) };
    upsert(a3.clone()).await;
    assert_eq!(read(T0, 100).await[1], a3, "closing replaces");
    let reopened = StreamSession { closed: false, ..later(&a3, 5) };
    upsert(reopened).await;
    assert_eq!(read(T0, 100).await[1], a3, "an open update never reopens a closed session, even with more audio");
    let a4 = later(&a3, 5);
    assert!(a4.closed);
    upsert(a4.clone()).await;
    assert_eq!(read(T0, 100).await[1], a4, "a closed session may still grow with a closed update");

    // Another user's session with the same id is separate, and its rule is its own.
    assert_eq!(
        store.stream_sessions_since(&other, T0, 100).await.expect("stream_sessions_since"),
        vec![theirs.clone()],
        "stream sessions are per user"
    );
    let open_b = later(&b, 1);
    upsert(open_b.clone()).await;
    let mine = read(T0, 100).await;
    assert_eq!(mine.len(), 4, "upserts never duplicate a session: {mine:?}");
    assert_eq!(mine[2], open_b, "another user's closed session of the same id never blocks this one");
    store.upsert_stream_session(&other, &session("b", T0, 1)).await.expect("upsert_stream_session");
    assert_eq!(
        store.stream_sessions_since(&other, T0, 100).await.expect("stream_sessions_since"),
        vec![theirs],
        "the rule holds for the other user too"
    );
}
