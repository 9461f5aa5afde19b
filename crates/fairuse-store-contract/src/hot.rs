//! Contracts of the small hot-path stores: STT budgets, locks and rate limits.

use fairuse_domain::store::{BudgetStore, LockStore, RateLimitOutcome, RateLimitStore};

use crate::support::{T0, check_prefix, hours, name, uid};

/// Forwarded STT ms add up per user and UTC day; `note_exhausted_once` is true once per day.
pub async fn budget_contract(store: &dyn BudgetStore, prefix: &str) {
    check_prefix(prefix);
    let a = uid(prefix, "budget-a");
    let b = uid(prefix, "budget-b");
    let day = T0.utc_day();

    assert_eq!(store.used(&a, day).await.expect("used"), 0, "an unknown user has used nothing");
    assert_eq!(store.add_forwarded(&a, day, 60_000).await.expect("add_forwarded"), 60_000, "first slice");
    assert_eq!(store.add_forwarded(&a, day, 30_000).await.expect("add_forwarded"), 90_000, "returns the new total");
    assert_eq!(store.add_forwarded(&a, day, 0).await.expect("add_forwarded"), 90_000, "adding nothing");
    assert_eq!(store.used(&a, day).await.expect("used"), 90_000);
    assert_eq!(store.used(&a, day + 1).await.expect("used"), 0, "the next UTC day starts at zero");
    assert_eq!(store.add_forwarded(&a, day + 1, 5_000).await.expect("add_forwarded"), 5_000, "days are separate");
    assert_eq!(store.used(&a, day).await.expect("used"), 90_000, "another day's usage leaves this one alone");
    assert_eq!(store.used(&b, day).await.expect("used"), 0, "budgets are per user");

    assert!(store.note_exhausted_once(&a, day).await.expect("note_exhausted_once"), "first note of the day");
    assert!(!store.note_exhausted_once(&a, day).await.expect("note_exhausted_once"), "second note of the day");
    assert!(!store.note_exhausted_once(&a, day).await.expect("note_exhausted_once"), "third note of the day");
    assert!(store.note_exhausted_once(&a, day + 1).await.expect("note_exhausted_once"), "once per day");
    assert!(store.note_exhausted_once(&b, day).await.expect("note_exhausted_once"), "once per user");
    assert_eq!(store.used(&a, day).await.expect("used"), 90_000, "noting exhaustion does not change usage");
    assert_eq!(store.used(&b, day).await.expect("used"), 0, "noting exhaustion does not add usage");
    assert_eq!(store.add_forwarded(&b, day, 1_000).await.expect("add_forwarded"), 1_000, "usage after a note");
}

/// Locks: held until released by their token or until their TTL (measured by `now`) runs out.
pub async fn lock_contract(store: &dyn LockStore, prefix: &str) {
    check_prefix(prefix);
    let key = name(prefix, "classify:user-1");
    let other_key = name(prefix, "classify:user-2");
    let ttl = hours(12);

    assert!(store.try_acquire(&key, "t1", ttl, T0).await.expect("try_acquire"), "a free lock is acquired");
    assert!(!store.try_acquire(&key, "t2", ttl, T0).await.expect("try_acquire"), "a held lock is refused");
    assert!(
        !store.try_acquire(&key, "t1", ttl, T0.plus_ms(1)).await.expect("try_acquire"),
        "a held lock is refused even to its own token (locks are not reentrant)"
    );
    assert!(store.try_acquire(&other_key, "t2", ttl, T0).await.expect("try_acquire"), "locks are per key");
    assert!(
        !store.try_acquire(&key, "t2", ttl, T0.plus_ms(ttl - 1)).await.expect("try_acquire"),
        "a lock is held for its whole TTL"
    );

    assert!(!store.release(&key, "t2").await.expect("release"), "the wrong token does not release");
    assert!(
        !store.try_acquire(&key, "t3", ttl, T0.plus_ms(1_000)).await.expect("try_acquire"),
        "a refused release leaves the lock held"
    );
    assert!(store.release(&key, "t1").await.expect("release"), "the holder's token releases");
    assert!(!store.release(&key, "t1").await.expect("release"), "releasing twice finds nothing");
    assert!(store.try_acquire(&key, "t3", ttl, T0.plus_ms(2_000)).await.expect("try_acquire"), "free after release");

    // t3 holds until T0 + 2 s + ttl; at that instant the lock has expired.
    let expiry = T0.plus_ms(2_000 + ttl);
    assert!(store.try_acquire(&key, "t4", 1_000, expiry).await.expect("try_acquire"), "an expired lock is free");
    assert!(!store.release(&key, "t3").await.expect("release"), "an expired holder cannot release the new holder");
    assert!(!store.try_acquire(&key, "t5", 1_000, expiry).await.expect("try_acquire"), "t4 still holds it");
    assert!(store.release(&key, "t4").await.expect("release"), "the new holder releases");
    assert!(!store.release(&name(prefix, "never-locked"), "t1").await.expect("release"), "releasing a missing lock");

    // Renewing sets the holder's expiry from `now`, shorter or longer; nobody else can.
    let key = name(prefix, "classify:user-3");
    assert!(store.try_acquire(&key, "r1", ttl, T0).await.expect("try_acquire"), "a free lock is acquired");
    assert!(!store.renew(&key, "r2", 1_000, T0).await.expect("renew"), "the wrong token does not renew");
    assert!(
        !store.try_acquire(&key, "r2", ttl, T0.plus_ms(ttl - 1)).await.expect("try_acquire"),
        "a refused renewal leaves the expiry as it was"
    );
    assert!(store.renew(&key, "r1", hours(3), T0.plus_ms(1_000)).await.expect("renew"), "the holder shortens its lock");
    let shortened = T0.plus_ms(1_000 + hours(3));
    assert!(
        !store.try_acquire(&key, "r2", ttl, shortened.plus_ms(-1)).await.expect("try_acquire"),
        "a shortened lock is held until its new expiry"
    );
    assert!(store.try_acquire(&key, "r2", ttl, shortened).await.expect("try_acquire"), "and free from it");
    assert!(!store.renew(&key, "r1", ttl, shortened).await.expect("renew"), "a former holder cannot renew");
    assert!(store.renew(&key, "r2", ttl * 2, shortened).await.expect("renew"), "the holder lengthens its lock");
    assert!(
        !store.try_acquire(&key, "r3", 1_000, shortened.plus_ms(ttl * 2 - 1)).await.expect("try_acquire"),
        "a lengthened lock is held until its new expiry"
    );
    assert!(store.try_acquire(&key, "r3", 1_000, shortened.plus_ms(ttl * 2)).await.expect("try_acquire"), "then free");
    let expired = shortened.plus_ms(ttl * 2 + 1_000);
    assert!(!store.renew(&key, "r3", ttl, expired).await.expect("renew"), "an expired lock cannot be renewed");
    assert!(
        !store.renew(&name(prefix, "never-locked"), "r1", ttl, T0).await.expect("renew"),
        "renewing a missing lock"
    );
}

/// Fixed windows aligned to multiples of `window_ms`: `limit` hits are allowed, then refused
/// with the time left in the window, and the count starts again in the next window.
pub async fn rate_limit_contract(store: &dyn RateLimitStore, prefix: &str) {
    check_prefix(prefix);
    let key = name(prefix, "rl:a");
    let window = 60_000;
    let start = T0.plus_ms(10_000);
    let hit = |now_ms: i64| {
        let key = key.clone();
        async move { store.hit(&key, 3, window, T0.plus_ms(now_ms)).await.expect("hit") }
    };
    let allowed = |remaining| RateLimitOutcome { allowed: true, remaining, retry_after_ms: 0 };
    assert_eq!(hit(10_000).await, allowed(2), "first hit");
    assert_eq!(hit(20_000).await, allowed(1), "second hit");
    assert_eq!(hit(30_000).await, allowed(0), "the limit-th hit is still allowed");
    assert_eq!(
        hit(40_000).await,
        RateLimitOutcome { allowed: false, remaining: 0, retry_after_ms: 20_000 },
        "over the limit: refused until the window ends"
    );
    assert_eq!(
        hit(59_999).await,
        RateLimitOutcome { allowed: false, remaining: 0, retry_after_ms: 1 },
        "still refused at the last millisecond of the window"
    );
    assert_eq!(hit(60_000).await, allowed(2), "a new window starts from zero");

    let other = store.hit(&name(prefix, "rl:b"), 3, window, start).await.expect("hit");
    assert_eq!(other, allowed(2), "keys are counted separately");
    let strict = store.hit(&name(prefix, "rl:c"), 1, window, start).await.expect("hit");
    assert_eq!(strict, allowed(0), "a limit of one allows one hit");
    let refused = store.hit(&name(prefix, "rl:c"), 1, window, start).await.expect("hit");
    assert!(!refused.allowed && refused.retry_after_ms == 50_000, "then refuses: {refused:?}");
}
