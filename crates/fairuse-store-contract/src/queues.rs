//! Contracts of the two durable queues: the webhook outbox and the jobs (classifier runs and due
//! evaluations). Both are global, so these contracts need a store no other test claims from at
//! the same time.

use fairuse_domain::error::StoreError;
use fairuse_domain::pipeline;
use fairuse_domain::stage::Stage;
use fairuse_domain::store::{EnforcementStore, Job, JobStore, OutboxMessage, OutboxStore};
use fairuse_domain::time::Timestamp;

use crate::support::{Ids, T0, check_prefix, days, event, hours, is_mine, name, state, uid};

const LEASE_MS: i64 = 60_000;

fn message(prefix: &str, id: &str, next_attempt_at: Timestamp) -> OutboxMessage {
    OutboxMessage {
        id: name(prefix, id),
        body: format!(r#"{{"id":"{id}","type":"fair_use.stage_changed"}}"#),
        attempts: 0,
        next_attempt_at,
        created_at: T0,
        last_error: None,
    }
}

/// Messages enter the outbox only through `EnforcementStore::commit`, so this contract takes both
/// ports (of the same backend). Claims lease messages; a lease that runs out makes them due again.
pub async fn outbox_contract(enforcement: &dyn EnforcementStore, outbox: &dyn OutboxStore, prefix: &str) {
    check_prefix(prefix);
    let claim = |now: Timestamp, limit: usize| async move {
        let mut mine: Vec<OutboxMessage> = outbox
            .claim_due(now, limit, LEASE_MS)
            .await
            .expect("claim_due")
            .into_iter()
            .filter(|m| is_mine(prefix, &m.id))
            .collect();
        mine.sort_by(|a, b| a.id.cmp(&b.id));
        mine
    };
    let pending = || async move { outbox.pending().await.expect("pending") };
    let backlog = || async move { outbox.backlog().await.expect("backlog") };
    let mut ids = Ids::new(&format!("{prefix}.outbox"));
    let who = uid(prefix, "outbox");
    let s = state(Stage::Warning, Some(T0), None);

    let before = pending().await;
    let backlog_before = backlog().await;
    let m1 = message(prefix, "m1", T0);
    let m2 = message(prefix, "m2", T0.plus_ms(hours(1)));
    let e1 = event(&mut ids, &who, T0);
    let v = enforcement.commit(&who, &s, 0, &[e1], &[m1.clone(), m2.clone()]).await.expect("commit");
    assert_eq!(v, 1);
    assert_eq!(pending().await, before + 2, "commit enqueues its outbox messages");
    assert_eq!(backlog().await, backlog_before + 2, "both new messages are still to be delivered");

    assert_eq!(claim(T0.minus_ms(1), 100).await, vec![], "nothing is due before next_attempt_at");
    assert_eq!(claim(T0, 100).await, vec![m1.clone()], "a due message is claimed unchanged");
    assert_eq!(claim(T0, 100).await, vec![], "a leased message is not claimed again");
    assert_eq!(claim(T0.plus_ms(LEASE_MS - 1), 100).await, vec![], "not during its lease");
    assert_eq!(claim(T0.plus_ms(LEASE_MS), 100).await, vec![m1.clone()], "due again when the lease runs out");

    let retry_at = T0.plus_ms(5 * 60_000);
    outbox.failed(&m1.id, retry_at, "http 500", false).await.expect("failed");
    assert_eq!(claim(retry_at.minus_ms(1), 100).await, vec![], "a failed message waits for its next attempt");
    let retried = OutboxMessage { attempts: 1, next_attempt_at: retry_at, last_error: Some("http 500".into()), ..m1 };
    assert_eq!(claim(retry_at, 100).await, vec![retried.clone()], "failed counts the attempt and keeps the error");
    assert_eq!(pending().await, before + 2, "a failed message is still pending");
    assert_eq!(backlog().await, backlog_before + 2, "a message that will be retried is backlog");

    outbox.delivered(&retried.id, retry_at).await.expect("delivered");
    assert_eq!(pending().await, before + 1, "a delivered message is no longer pending");
    let day = T0.plus_ms(days(1));
    assert_eq!(claim(day, 100).await, vec![m2.clone()], "a delivered message is never claimed again");
    outbox.delivered(&retried.id, day).await.expect("delivering twice is harmless");

    outbox.failed(&m2.id, day.plus_ms(1), "gone", true).await.expect("failed");
    assert_eq!(claim(T0.plus_ms(days(30)), 100).await, vec![], "a message given up on is never claimed again");
    assert_eq!(pending().await, before + 1, "dead letters still count as pending");
    assert_eq!(backlog().await, backlog_before, "dead letters are not backlog: nothing will send them");

    let m3 = message(prefix, "m3", T0);
    let m4 = message(prefix, "m4", T0);
    let e2 = event(&mut ids, &who, T0.plus_ms(1));
    enforcement.commit(&who, &s, 1, &[e2], &[m3.clone(), m4.clone()]).await.expect("commit");
    let later = T0.plus_ms(days(40));
    let first = claim(later, 1).await;
    assert_eq!(first.len(), 1, "claim_due returns at most `limit` messages: {first:?}");
    let second = claim(later, 1).await;
    assert_eq!(second.len(), 1, "the next claim takes the other message: {second:?}");
    let mut both = vec![first[0].clone(), second[0].clone()];
    both.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(both, vec![m3.clone(), m4.clone()], "two claims with limit 1 take both messages once each");
    outbox.delivered(&m3.id, later).await.expect("delivered");
    outbox.delivered(&m4.id, later).await.expect("delivered");

    let missing = outbox.failed(&name(prefix, "no-such-message"), later, "x", false).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "failed on an unknown id: {missing:?}");

    let before_conflict = pending().await;
    let m5 = message(prefix, "m5", T0);
    let e3 = event(&mut ids, &who, T0.plus_ms(2));
    let refused = enforcement.commit(&who, &s, 1, &[e3], std::slice::from_ref(&m5)).await;
    assert_eq!(refused, Err(StoreError::Conflict), "a stale version is a conflict");
    assert_eq!(pending().await, before_conflict, "a conflicting commit enqueues nothing");
    assert_eq!(claim(T0.plus_ms(days(60)), 100).await, vec![], "a conflicting commit's message never appears");
}

fn job(prefix: &str, id: &str) -> Job {
    Job {
        id: name(prefix, id),
        uid: uid(prefix, "job-user").to_string(),
        lock_token: format!("token-{id}"),
        session_id: Some("session-1".into()),
        attempts: 0,
        created_at: T0,
    }
}

/// Jobs are due from their enqueue time, leased when claimed, retried later, gone when completed.
pub async fn job_contract(store: &dyn JobStore, prefix: &str) {
    check_prefix(prefix);
    let claim = |now: Timestamp, limit: usize| async move {
        let mut mine: Vec<Job> = store
            .claim(now, limit, LEASE_MS)
            .await
            .expect("claim")
            .into_iter()
            .filter(|j| is_mine(prefix, &j.uid))
            .collect();
        mine.sort_by(|a, b| a.id.cmp(&b.id));
        mine
    };
    let j1 = job(prefix, "j1");
    let j2 = Job { session_id: None, ..job(prefix, "j2") };
    store.enqueue(&j1, T0).await.expect("enqueue");
    store.enqueue(&j2, T0.plus_ms(10 * 60_000)).await.expect("enqueue");

    assert_eq!(claim(T0.minus_ms(1), 100).await, vec![], "a job is due from its enqueue time");
    assert_eq!(claim(T0, 100).await, vec![j1.clone()], "a due job is claimed unchanged");
    assert_eq!(claim(T0, 100).await, vec![], "a leased job is not claimed again");
    assert_eq!(claim(T0.plus_ms(LEASE_MS - 1), 100).await, vec![], "not during its lease");
    assert_eq!(claim(T0.plus_ms(LEASE_MS), 100).await, vec![j1.clone()], "due again when the lease runs out");

    let retry_at = T0.plus_ms(30 * 60_000);
    store.retry(&j1.id, retry_at).await.expect("retry");
    assert_eq!(claim(T0.plus_ms(10 * 60_000), 100).await, vec![j2.clone()], "j2 is due, j1 waits for its retry");
    store.complete(&j2.id).await.expect("complete");
    assert_eq!(claim(retry_at.minus_ms(1), 100).await, vec![], "a retried job waits; a completed job is gone");
    let retried = Job { attempts: 1, ..j1.clone() };
    assert_eq!(claim(retry_at, 100).await, vec![retried], "retry raises the attempt count");
    store.complete(&j1.id).await.expect("complete");
    assert_eq!(claim(T0.plus_ms(days(1)), 100).await, vec![], "completed jobs are never claimed again");
    store.complete(&j1.id).await.expect("completing twice is harmless");

    let missing = store.retry(&name(prefix, "no-such-job"), retry_at).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "retry of an unknown job: {missing:?}");

    let j3 = job(prefix, "j3");
    let j4 = job(prefix, "j4");
    store.enqueue(&j3, T0).await.expect("enqueue");
    store.enqueue(&j4, T0).await.expect("enqueue");
    let later = T0.plus_ms(days(2));
    let first = claim(later, 1).await;
    assert_eq!(first.len(), 1, "claim returns at most `limit` jobs: {first:?}");
    let second = claim(later, 1).await;
    assert_eq!(second.len(), 1, "the next claim takes the other job: {second:?}");
    let mut both = vec![first[0].clone(), second[0].clone()];
    both.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(both, vec![j3.clone(), j4.clone()], "two claims with limit 1 take both jobs once each");
    store.complete(&j3.id).await.expect("complete");
    store.complete(&j4.id).await.expect("complete");

    // A due evaluation: one pending per user, due at the first enqueue's time, claimed once.
    let who = uid(prefix, "due-user");
    let due_at = T0.plus_ms(days(3));
    let due = pipeline::due_evaluation_job(who.as_str(), Some("s-1".into()), T0);
    assert!(due.is_due_evaluation() && !j1.is_due_evaluation(), "the two kinds of job are told apart");
    store.enqueue(&due, due_at).await.expect("enqueue a due evaluation");
    let again = pipeline::due_evaluation_job(who.as_str(), None, T0.plus_ms(1));
    store.enqueue(&again, due_at.plus_ms(60_000)).await.expect("a second report enqueues it again");
    assert_eq!(claim(due_at.minus_ms(1), 100).await, vec![], "not claimed before it is due");
    let (a, b) = tokio::join!(claim(due_at, 100), claim(due_at, 100));
    let mut claimed = a;
    claimed.extend(b);
    assert_eq!(claimed, vec![due.clone()], "due at the first enqueue's time and claimed exactly once, as first queued");
    store.complete(&due.id).await.expect("complete");
    let next = pipeline::due_evaluation_job(who.as_str(), None, due_at);
    store.enqueue(&next, due_at.plus_ms(days(1))).await.expect("enqueue after completion");
    assert_eq!(
        claim(due_at.plus_ms(days(1)), 100).await,
        vec![next.clone()],
        "a completed due evaluation can be queued anew"
    );
    store.complete(&next.id).await.expect("complete");
}
