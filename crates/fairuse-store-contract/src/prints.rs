//! The print index contract (`PrintStore`): prints added are found by key, at most `per_key` per key
//! (the most recently heard), only from `since` on, with every field intact; pruning deletes
//! exactly the prints heard before the cutoff. The index is global (every user's prints share the
//! keys), so it needs a store no other print test uses at the same time.

use std::collections::BTreeSet;

use fairuse_domain::prints::{Print, print_key};
use fairuse_domain::store::PrintStore;
use fairuse_domain::time::Timestamp;

use crate::support::{T0, check_prefix, hours, name};

fn print(prefix: &str, user: &str, session: &str, at: Timestamp, code: u32) -> Print {
    Print { uid: name(prefix, user), session_id: name(prefix, session), heard_at: at, code }
}

/// Prints are looked up by key, capped per key, filtered by time, and pruned by time.
pub async fn print_contract(store: &dyn PrintStore, prefix: &str) {
    check_prefix(prefix);
    // Key 0x000100 holds 10 prints of two users, one a minute; key 0xBEEFFF one with the top bit
    // set in its code (a u32 that does not fit an i32); key 0x000200 none.
    let mut added: Vec<Print> = (0..10)
        .map(|i| {
            let (user, session) = if i % 2 == 0 { ("ann", "a1") } else { ("bob", "b1") };
            print(prefix, user, session, T0.plus_ms(i * 60_000), 0x0001_0000 | i as u32)
        })
        .collect();
    added.push(print(prefix, "ann", "a2", T0.plus_ms(hours(2)), 0xBEEF_FFFF));
    assert_eq!((print_key(0x0001_0009), print_key(0xBEEF_FFFF)), (0x00_0100, 0xBE_EFFF));
    // Two batches, as a gateway adds them.
    store.add_prints(&added[..4]).await.expect("add_prints");
    store.add_prints(&added[4..]).await.expect("add_prints");

    let found = store.lookup_prints(&[0x00_0100, 0x00_0200, 0xBE_EFFF], T0, 100).await.expect("lookup_prints");
    let mut got: Vec<Print> = found.clone();
    got.sort_by_key(|p| (p.heard_at, p.code));
    assert_eq!(got, added, "every print comes back whole, by its key");

    let capped = store.lookup_prints(&[0x00_0100], T0, 3).await.expect("lookup_prints");
    let codes: BTreeSet<u32> = capped.iter().map(|p| p.code).collect();
    assert_eq!(codes, BTreeSet::from([0x0001_0009, 0x0001_0008, 0x0001_0007]), "per key: the most recently heard");

    let recent =
        store.lookup_prints(&[0x00_0100, 0xBE_EFFF], T0.plus_ms(8 * 60_000), 100).await.expect("lookup_prints");
    let codes: BTreeSet<u32> = recent.iter().map(|p| p.code).collect();
    assert_eq!(codes, BTreeSet::from([0x0001_0008, 0x0001_0009, 0xBEEF_FFFF]), "only prints heard since");

    // A key repeated in the request is looked up once.
    let twice = store.lookup_prints(&[0xBE_EFFF, 0xBE_EFFF], T0, 100).await.expect("lookup_prints");
    assert_eq!(twice.len(), 1);
    assert!(store.lookup_prints(&[], T0, 100).await.expect("lookup_prints").is_empty());

    let removed = store.prune_prints(T0.plus_ms(5 * 60_000)).await.expect("prune_prints");
    assert_eq!(removed, 5, "the five prints heard in the first five minutes");
    let left =
        store.lookup_prints(&[0x00_0100, 0xBE_EFFF], Timestamp::from_millis(0), 100).await.expect("lookup_prints");
    assert_eq!(left.len(), 6);
    assert!(left.iter().all(|p| p.heard_at >= T0.plus_ms(5 * 60_000)));
    assert_eq!(store.prune_prints(T0.plus_ms(hours(3))).await.expect("prune_prints"), 6);
    assert!(
        store.lookup_prints(&[0x00_0100, 0xBE_EFFF], Timestamp::from_millis(0), 100).await.expect("lookup").is_empty()
    );
}
