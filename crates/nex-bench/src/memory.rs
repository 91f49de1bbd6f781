//! `nex-bench memory --store nex|nex-bounded|ts [--sessions N]`: resident memory
//! per idle session (one small key) in a memory store, measured in a process of its
//! own. `nex` is `MemoryStore::new()` (unbounded); `nex-bounded` the bounded store
//! `store::open("memory")` and the demo use (`DEFAULT_MAX_SESSIONS`, 100,000, so the
//! default run fills it exactly, eviction ring included).

use std::collections::BTreeMap;

const DEFAULT_SESSIONS: usize = 100_000;

fn resident_bytes() -> Result<usize, String> {
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| format!("/proc/self/statm: {e}"))?;
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).ok_or("unreadable statm")?;
    Ok(pages * 4096)
}

/// Runs the measurement and prints `bytes_per_session`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let store = args
        .iter()
        .position(|a| a == "--store")
        .and_then(|i| args.get(i + 1))
        .ok_or("--store nex|nex-bounded|ts is required")?;
    let sessions = match args.iter().position(|a| a == "--sessions").and_then(|i| args.get(i + 1)) {
        Some(n) => n.parse().map_err(|e| format!("--sessions: {e}"))?,
        None => DEFAULT_SESSIONS,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let per_session = runtime.block_on(async {
        match store.as_str() {
            "nex" => nex(sessions, nex_session::store::MemoryStore::new()).await,
            "nex-bounded" => {
                let bound = nex_session::store::DEFAULT_MAX_SESSIONS;
                nex(sessions, nex_session::store::MemoryStore::with_max_sessions(bound)).await
            }
            "ts" => tower(sessions).await,
            other => Err(format!("unknown store {other}")),
        }
    })?;
    println!("{per_session:.1}");
    Ok(())
}

async fn nex(n: usize, store: nex_session::store::MemoryStore) -> Result<f64, String> {
    use nex_session::store::{Change, Presence, SessionStore};
    let keys: Vec<_> = (0..n)
        .map(|_| nex_session::SessionId::generate().map(|id| id.store_key()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut batch = BTreeMap::new();
    batch.insert("user_id".to_owned(), Change::Put(b"42".to_vec()));
    let expires = nex_session::token::now_ms() + 3_600_000;
    let before = resident_bytes()?;
    for key in keys {
        store.apply(key, &batch, expires, Presence::New).await.map_err(|e| e.to_string())?;
    }
    Ok((resident_bytes()? - before) as f64 / n as f64)
}

async fn tower(n: usize) -> Result<f64, String> {
    use tower_sessions::session::{Id, Record};
    use tower_sessions::{MemoryStore, SessionStore};
    let store = MemoryStore::default();
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let mut records: Vec<Record> = (0..n)
        .map(|_| {
            let mut data = std::collections::HashMap::new();
            data.insert("user_id".to_owned(), serde_json::json!(42));
            Record { id: Id::default(), data, expiry_date: expiry }
        })
        .collect();
    let before = resident_bytes()?;
    for record in &mut records {
        store.create(record).await.map_err(|e| e.to_string())?;
    }
    let after = resident_bytes()?;
    // The records we built ourselves were allocated before `before`; the store holds its own copies.
    Ok((after - before) as f64 / n as f64)
}
