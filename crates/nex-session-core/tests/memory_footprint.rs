//! Memory per idle session in the memory store, measured as resident memory
//! growth of this process (allocator overhead included: what a user pays).
//! This file holds one test so no other test allocates meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use nex_session::store::{Change, MemoryStore, Presence, SessionStore};
use nex_session::SessionId;

const SESSIONS: usize = 200_000;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Resident bytes per session that `store` grows by when `keys` are saved in it.
async fn bytes_per_session(store: &MemoryStore, keys: &[nex_session::StoreKey]) -> f64 {
    let mut batch = BTreeMap::new();
    batch.insert("user_id".to_owned(), Change::Put(b"42".to_vec()));
    let expires = nex_session::token::now_ms() + 3_600_000;
    let before = resident_bytes();
    for key in keys {
        store.apply(*key, &batch, expires, Presence::New).await.unwrap();
    }
    let after = resident_bytes();
    assert_eq!(store.len(), keys.len());
    (after - before) as f64 / keys.len() as f64
}

/// The unbounded store and the bounded one (which `store::open("memory")` gives)
/// cost the same: the bounded one keeps no second copy of the keys to evict by.
/// The first store stays alive while the second fills, so no freed page is reused.
#[tokio::test(flavor = "current_thread")]
async fn an_idle_session_with_one_small_key_costs_at_most_130_bytes_bounded_or_not() {
    // Ids and keys made up front, so only the stores' own memory is measured.
    let make = || (0..SESSIONS).map(|_| SessionId::generate().unwrap().store_key()).collect::<Vec<_>>();
    let (first, second) = (make(), make());
    let unbounded = MemoryStore::new();
    let per_unbounded = bytes_per_session(&unbounded, &first).await;
    let bounded = MemoryStore::with_max_sessions(SESSIONS + SESSIONS / 10);
    let per_bounded = bytes_per_session(&bounded, &second).await;
    println!(
        "memory store: {per_unbounded:.1} bytes per idle session unbounded, {per_bounded:.1} bounded ({SESSIONS} sessions, RSS growth)"
    );
    // The ring of keys the bounded store used to keep cost about 40 bytes more.
    for (store, per_session) in [("unbounded", per_unbounded), ("bounded", per_bounded)] {
        assert!(per_session <= 130.0, "{store}: {per_session:.1} bytes per session, goal is at most 130");
    }
}
