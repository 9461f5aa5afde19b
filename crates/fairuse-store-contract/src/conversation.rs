//! The conversation store contract: upsert by id, read back by start time.

use fairuse_domain::classifier::Conversation;
use fairuse_domain::store::ConversationStore;
use fairuse_domain::time::Timestamp;

use crate::support::{T0, check_prefix, hours, uid};

fn conversation(id: &str, started_at: Timestamp) -> Conversation {
    Conversation {
        conversation_id: id.into(),
        title: format!("Conversation {id}"),
        overview: "x".repeat(300),
        category: "personal".into(),
        started_at,
        finished_at: started_at.plus_ms(hours(1)),
        source: "omi".into(),
        speaker_count: Some(2),
        word_count: Some(9_000),
    }
}

/// Conversations are upserted by id and read back from a start time, oldest first.
pub async fn conversation_contract(store: &dyn ConversationStore, prefix: &str) {
    check_prefix(prefix);
    let who = uid(prefix, "conv");
    let other = uid(prefix, "conv-other");
    assert!(store.since(&who, T0, 100).await.expect("since").is_empty(), "an unknown user has no conversations");

    let c1 = conversation("c1", T0.plus_ms(hours(1)));
    let c2 = conversation("c2", T0);
    let c3 = Conversation { speaker_count: None, word_count: None, ..conversation("c3", T0.plus_ms(hours(2))) };
    for c in [&c1, &c2, &c3] {
        store.upsert(&who, c).await.expect("upsert");
    }
    let o1 = conversation("c1", T0.plus_ms(hours(1)));
    store.upsert(&other, &Conversation { title: "someone else's".into(), ..o1 }).await.expect("upsert");

    let who_ref = &who;
    let since = |from: Timestamp, limit: usize| async move { store.since(who_ref, from, limit).await.expect("since") };
    assert_eq!(since(T0, 100).await, vec![c2.clone(), c1.clone(), c3.clone()], "oldest first, every field kept");
    assert_eq!(since(T0.plus_ms(hours(1)), 100).await, vec![c1.clone(), c3.clone()], "`from` is inclusive");
    assert_eq!(since(T0.plus_ms(hours(1) + 1), 100).await, vec![c3.clone()], "earlier starts are left out");
    assert_eq!(since(T0, 2).await, vec![c1.clone(), c3.clone()], "limit keeps the most recent, oldest first");
    assert_eq!(since(T0.plus_ms(hours(3)), 100).await, vec![], "nothing started after the last one");

    let moved = Conversation { title: "renamed".into(), ..conversation("c1", T0.plus_ms(hours(3))) };
    store.upsert(&who, &moved).await.expect("upsert");
    assert_eq!(
        since(T0, 100).await,
        vec![c2.clone(), c3.clone(), moved.clone()],
        "an upsert with a known id replaces the conversation (including its start time), never duplicates it"
    );
    let others = store.since(&other, T0, 100).await.expect("since");
    assert_eq!(others.len(), 1, "conversations are per user: {others:?}");
    assert_eq!(others[0].title, "someone else's", "another user's conversation with the same id is separate");
}
