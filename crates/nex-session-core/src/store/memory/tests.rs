//! The memory store's own tests: sharding, eviction, the bound.
#![allow(clippy::unwrap_used)]

use super::clock::Evictable;
use super::store::{lock, MemoryStore, SHARDS};
use crate::id::StoreKey;
use crate::store::{Change, Changes, Presence, SessionAdmin, SessionStore, UpdateAction};
use crate::token::now_ms;

/// A key of shard `shard` (the byte `Shards` picks by), made distinct by `n`.
fn key_in_shard(shard: u8, n: u64) -> StoreKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8] = shard;
    // Distinct beyond the hashed bytes too, so no two calls collide.
    bytes[9..17].copy_from_slice(&n.to_be_bytes());
    StoreKey::from_bytes(bytes)
}

async fn create(store: &MemoryStore, key: StoreKey, expires_at_ms: i64) {
    let mut batch = Changes::new();
    batch.insert("user_id".into(), Change::Put(b"7".to_vec()));
    store.apply(key, &batch, expires_at_ms, Presence::New).await.unwrap();
}

fn present(store: &MemoryStore, key: StoreKey) -> bool {
    // `load` marks the session as used, so peek at the map instead.
    store.shard(key).sessions.get(&key).is_some_and(|e| e.live(now_ms()))
}

#[tokio::test]
async fn evicted_and_expired_bound_sessions_leave_the_index() {
    use crate::store::users::{Binding, UserIndex};
    // One session per shard: a second one in shard 3 evicts the first.
    let store = MemoryStore::with_max_sessions(SHARDS);
    let (first, second) = (key_in_shard(3, 1), key_in_shard(3, 2));
    let later = now_ms() + 60_000;
    create(&store, first, later).await;
    let binding = Binding::new("alice", now_ms(), None).unwrap();
    store.bind(first, &binding, later, None).await.unwrap();
    assert!(store.users().contains_key("alice"));
    create(&store, second, later).await;
    assert!(!present(&store, first), "the first session was evicted");
    assert!(!store.users().contains_key("alice"), "an evicted bound session leaves the index");

    // Expired, then purged: gone from the index too.
    create(&store, first, later).await;
    store.bind(first, &binding, now_ms() + 20, None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    assert!(store.users().contains_key("alice"), "expired but not purged yet");
    store.purge_expired(now_ms()).await.unwrap();
    assert!(!store.users().contains_key("alice"), "the purge unindexes expired bound sessions");
}

/// The counters of every shard's eviction hand, summed.
fn eviction_stats(store: &MemoryStore) -> (u64, u64) {
    store.inner.shards.iter().map(|s| lock(s).clock.stats).fold((0, 0), |(x, e), s| (x + s.examined, e + s.evicted))
}

/// Takes every mark off, as if the hand had just passed every session.
fn hand_passed(store: &MemoryStore) {
    for shard in store.inner.shards.iter() {
        lock(shard).sessions.retain(|e| {
            e.take_used();
            true
        });
    }
}

#[tokio::test]
async fn a_session_used_since_the_hand_passed_survives_and_an_unused_one_is_evicted() {
    // Two sessions per shard; all keys below share shard 5.
    let store = MemoryStore::with_max_sessions(2 * SHARDS);
    let far = now_ms() + 3_600_000;
    let (used, unused, newcomer) = (key_in_shard(5, 1), key_in_shard(5, 2), key_in_shard(5, 3));
    create(&store, used, far).await;
    // Created later and expiring later: the old rule (evict the soonest expiry) kept it.
    create(&store, unused, far + 1_000).await;
    hand_passed(&store);
    assert!(store.load(used).await.unwrap().is_some());
    create(&store, newcomer, far).await;
    assert!(present(&store, used), "the session read since the hand passed stays");
    assert!(!present(&store, unused), "the session nobody came back to goes");
    assert!(present(&store, newcomer));
}

#[tokio::test]
async fn touch_and_update_count_as_use_and_expired_sessions_go_first() {
    let store = MemoryStore::with_max_sessions(3 * SHARDS);
    let now = now_ms();
    let (touched, updated, expired) = (key_in_shard(9, 1), key_in_shard(9, 2), key_in_shard(9, 3));
    create(&store, touched, now + 60_000).await;
    create(&store, updated, now + 60_000).await;
    create(&store, expired, now - 1).await;
    hand_passed(&store);
    assert!(store.touch(touched, now + 120_000).await.unwrap());
    let mut bump = |_: Option<&[u8]>| UpdateAction::Set(b"8".to_vec());
    store.update(updated, "user_id", &mut bump, now + 120_000, Presence::Existing).await.unwrap();
    // The shard holds 3 entries (one expired, not purged): full.
    let first = key_in_shard(9, 4);
    create(&store, first, now + 60_000).await;
    assert!(present(&store, touched) && present(&store, updated) && present(&store, first));
    assert_eq!(lock(store.inner.shards.of(first)).sessions.len(), 3, "the expired entry made the room");
    // The hand passes again; only `updated` is used since: a newcomer evicts
    // one of the other two, never `updated`.
    hand_passed(&store);
    store.update(updated, "user_id", &mut bump, now + 120_000, Presence::Existing).await.unwrap();
    create(&store, key_in_shard(9, 5), now + 60_000).await;
    assert!(present(&store, updated), "used since the hand passed: kept");
    assert_eq!([touched, first].iter().filter(|k| present(&store, **k)).count(), 1, "one unused session went");
}

#[tokio::test]
async fn a_new_session_outlives_every_session_unused_since_the_hand_passed() {
    // A full shard of 64 whose sessions the hand has passed; then one newcomer,
    // then 63 more: each evicts an old unused session, never the first newcomer,
    // wherever its bucket lies (it starts marked, and the hand meets the 63 old
    // ones before it can come round to it twice).
    let per_shard = 64;
    let store = MemoryStore::with_max_sessions(per_shard * SHARDS);
    let far = now_ms() + 3_600_000;
    for n in 0..per_shard as u64 {
        create(&store, key_in_shard(2, n), far).await;
    }
    for round in 0..20u64 {
        hand_passed(&store);
        let newcomer = key_in_shard(2, 1_000 * (round + 1));
        create(&store, newcomer, far).await;
        for n in 1..per_shard as u64 {
            create(&store, key_in_shard(2, 1_000 * (round + 1) + n), far).await;
            assert!(present(&store, newcomer), "round {round}: the newcomer was evicted after {n} more");
        }
    }
}

#[tokio::test]
async fn eviction_examines_a_few_buckets_per_insert_into_a_full_store() {
    // 100 sessions per shard. The old rule scanned the whole shard (100 entries)
    // for every insert into a full one; the hand looks at a few buckets.
    let store = MemoryStore::with_max_sessions(100 * SHARDS);
    let far = now_ms() + 3_600_000;
    let mut keys = Vec::new();
    for n in 0..(200 * SHARDS as u64) {
        let key = key_in_shard((n % SHARDS as u64) as u8, n);
        create(&store, key, far).await;
        keys.push(key);
        // A third of the traffic comes back to a recent session, and some log out:
        // marks to clear and holes to skip, as in real use.
        if n % 3 == 0 {
            let back = keys[keys.len().saturating_sub(1 + (n as usize % 50))];
            let _ = store.load(back).await.unwrap();
        }
        if n % 7 == 0 {
            store.remove(keys[keys.len() / 2]).await.unwrap();
        }
    }
    let (examined, evicted) = eviction_stats(&store);
    assert!(evicted > 50 * SHARDS as u64, "the store was full for most inserts ({evicted} evictions)");
    // Per eviction: the evicted entry, the marks of the session stored (every new
    // one starts marked) and of a third of a read, about 2.3 entries, and the empty
    // buckets among them. A table of 100 has 128 buckets, and 256 once churn has
    // left deleted slots (hashbrown then grows rather than reuse them, as std's
    // `HashMap` does): 2.3 × 2.56 ≈ 6 at most; this run measured about 4.6.
    assert!(examined <= 6 * evicted, "{examined} buckets examined for {evicted} evictions: not O(1) amortised");
}

#[tokio::test]
async fn size_stays_bounded_under_mixed_traffic() {
    let max_per_shard = 4;
    let store = MemoryStore::with_max_sessions(max_per_shard * SHARDS);
    let now = now_ms();
    let mut live: Vec<StoreKey> = Vec::new();
    for n in 0..20_000u64 {
        // Few shards, so each sees plenty of churn.
        let key = key_in_shard((n % 3) as u8, n);
        let expires = if n % 11 == 0 { now - 1 } else { now + 60_000 };
        match n % 5 {
            0 if !live.is_empty() => {
                let from = live.swap_remove(n as usize % live.len());
                if store.rename(from, key, now + 60_000).await.unwrap() {
                    live.push(key);
                }
            }
            1 if !live.is_empty() => store.remove(live.swap_remove(n as usize % live.len())).await.unwrap(),
            2 if !live.is_empty() => {
                let _ = store.touch(live[n as usize % live.len()], now + 60_000).await.unwrap();
            }
            _ => {
                create(&store, key, expires).await;
                live.push(key);
            }
        }
        for shard in store.inner.shards.iter() {
            let mut shard = lock(shard);
            assert!(shard.sessions.len() <= max_per_shard, "a shard outgrew its bound");
            assert!(shard.sessions.buckets().num_buckets() <= 16, "a shard's table grew past its bound");
        }
    }
    assert!(store.len() <= max_per_shard * SHARDS);
}

#[tokio::test]
async fn updates_in_place_and_by_repacking_keep_the_other_fields() {
    let store = MemoryStore::new();
    let key = StoreKey::from_bytes([4; 32]);
    let mut batch = Changes::new();
    batch.insert("a".into(), Change::Put(b"x".to_vec()));
    batch.insert("n".into(), Change::Put(b"41".to_vec()));
    batch.insert("z".into(), Change::Put(b"y".to_vec()));
    store.apply(key, &batch, i64::MAX, Presence::New).await.unwrap();
    for new in [&b"42"[..], b"100", b"7", b"8"] {
        let mut set = |_: Option<&[u8]>| UpdateAction::Set(new.to_vec());
        store.update(key, "n", &mut set, i64::MAX - 1, Presence::Existing).await.unwrap();
        let record = store.load(key).await.unwrap().unwrap();
        assert_eq!(record.fields["n"], new);
        assert_eq!((&record.fields["a"][..], &record.fields["z"][..]), (&b"x"[..], &b"y"[..]));
        assert_eq!(record.expires_at_ms, i64::MAX - 1, "the expiry slides in place too");
    }
}
