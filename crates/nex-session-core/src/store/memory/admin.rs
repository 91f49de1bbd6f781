//! The memory store's administration: purging expired sessions, listing.

use super::clock::Evictable;
use super::index;
use super::store::{bound_user, lock, MemoryStore, KIND};
use crate::error::StoreError;
use crate::observe;
use crate::store::{BoxFuture, SessionAdmin, Summary};
use crate::token::now_ms;

impl SessionAdmin for MemoryStore {
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut removed = 0u64;
            // Sessions left after the sweep: the store's gauge, for free here.
            let mut held = 0u64;
            // Expired sessions that were bound: dropped from the index after the
            // sweep (never with a shard lock held: lock order).
            let mut unbound = Vec::new();
            for shard in self.inner.shards.iter() {
                {
                    let mut guard = lock(shard);
                    let shard = &mut *guard;
                    let before = shard.sessions.len();
                    shard.sessions.retain(|e| {
                        let live = e.live(now_ms);
                        if !live {
                            if let Some(user) = bound_user(&e.fields) {
                                unbound.push((user, e.key()));
                            }
                        }
                        live
                    });
                    let purged = before - shard.sessions.len();
                    removed += purged as u64;
                    held += shard.sessions.len() as u64;
                    shard.sessions.shrink_if_sparse();
                }
                // One shard per step, so request handling interleaves with the sweep.
                tokio::task::yield_now().await;
            }
            if !unbound.is_empty() {
                let mut index = self.users();
                for (user, key) in unbound {
                    index::forget(&mut index, &user, key);
                }
            }
            observe::store_sessions(KIND, held);
            Ok(removed)
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        let now = now_ms();
        let mut out = Vec::new();
        for shard in self.inner.shards.iter() {
            let shard = lock(shard);
            for e in shard.sessions.iter().filter(|e| e.live(now)) {
                if out.len() >= limit {
                    break;
                }
                out.push(Summary { key: e.key(), fields: e.fields.len(), expires_at_ms: e.expires_at_ms() });
            }
        }
        Box::pin(std::future::ready(Ok(out)))
    }
}
