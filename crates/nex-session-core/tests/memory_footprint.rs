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

#[tokio::test(flavor = "current_thread")]
async fn an_idle_session_with_one_small_key_costs_at_most_150_bytes() {
    // Ids and keys made up front, so only the store's own memory is measured.
    let keys: Vec<_> = (0..SESSIONS).map(|_| SessionId::generate().unwrap().store_key()).collect();
    let mut batch = BTreeMap::new();
    batch.insert("user_id".to_owned(), Change::Put(b"42".to_vec()));
    let store = MemoryStore::new();
    let expires = nex_session::token::now_ms() + 3_600_000;
    let before = resident_bytes();
    for key in &keys {
        store.apply(*key, &batch, expires, Presence::New).await.unwrap();
    }
    let after = resident_bytes();
    let per_session = (after - before) as f64 / SESSIONS as f64;
    println!("memory store: {per_session:.1} bytes per idle session ({SESSIONS} sessions, RSS growth)");
    assert_eq!(store.len(), SESSIONS);
    assert!(per_session <= 150.0, "{per_session:.1} bytes per session, goal is at most 150");
}
