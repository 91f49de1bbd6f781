//! Cost of one new session in a *full* bounded memory store (every insert
//! evicts), at 10,000, 100,000 and 1,000,000 max sessions: mean, 99th percentile and worst
//! microseconds per insert. A plain timing loop, no criterion: the point is the
//! order of magnitude (an O(shard) scan against O(1) eviction), and the worst
//! case, which a mean hides.
//!
//! Run: `cargo bench -p nex-session --bench eviction`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nex_session::store::{Change, MemoryStore, Presence, SessionStore};
use nex_session::{SessionId, StoreKey};

/// Timed inserts into the full store, per bound.
const MEASURED: usize = 20_000;

fn keys(n: usize) -> Vec<StoreKey> {
    (0..n).map(|_| SessionId::generate().unwrap().store_key()).collect()
}

async fn insert(store: &MemoryStore, key: StoreKey, batch: &BTreeMap<String, Change>, expires: i64) {
    store.apply(key, batch, expires, Presence::New).await.unwrap();
}

async fn measure(max: usize) {
    let store = MemoryStore::with_max_sessions(max);
    let mut batch = BTreeMap::new();
    batch.insert("user_id".to_owned(), Change::Put(b"42".to_vec()));
    let expires = nex_session::token::now_ms() + 3_600_000;
    // Enough to fill every shard (they fill at slightly different rates; the larger
    // the bound, the closer together).
    let fill = if max >= 1_000_000 { max + max / 5 } else { 2 * max };
    for key in keys(fill) {
        insert(&store, key, &batch, expires).await;
    }
    let mut took: Vec<Duration> = Vec::with_capacity(MEASURED);
    for key in keys(MEASURED) {
        let start = Instant::now();
        insert(&store, key, &batch, expires).await;
        took.push(start.elapsed());
    }
    took.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = micros(took.iter().sum::<Duration>()) / MEASURED as f64;
    let p99 = micros(took[MEASURED * 99 / 100]);
    let worst = micros(took[MEASURED - 1]);
    println!(
        "max_sessions={max:>7}  inserts={MEASURED}  mean={mean:.2} µs  p99={p99:.2} µs  worst={worst:.1} µs  (len {})",
        store.len()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        for max in [10_000, 100_000, 1_000_000] {
            measure(max).await;
        }
    });
}
