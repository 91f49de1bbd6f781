//! Administration for operators and the background purge ([`SessionAdmin`]):
//! listing sessions on the one node or every primary of a cluster (`scan.rs`),
//! and a purge that has only users' indexes to tidy (`sweep.rs`; Redis expires
//! sessions by itself).

use std::collections::HashSet;

use crate::connect::Redis;
use crate::scan::{nodes, scan};
use crate::scripts::INDEX_KEPT;
use crate::store::RedisStore;
use crate::sweep::sweep_indexes;
use nex_session_core::store::{BoxFuture, SessionAdmin, Summary};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Keys asked of a node per `SCAN` step.
const SCAN_COUNT: u64 = 500;

impl SessionAdmin for RedisStore {
    fn purge_expired(&self, _now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            // Redis expires sessions itself, so there are none to count; what
            // outlives them is members of users' indexes, swept a slice at a time.
            let dropped = sweep_indexes(&self.redis, &self.sweep).await?;
            tracing::debug!(target: "nex_session::store", dropped, "dead members dropped from users' indexes");
            Ok(0)
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            // A key moved between primaries while the scan runs could be met twice.
            let mut seen = HashSet::new();
            for node in nodes(&self.redis, self.redis.deadline()).await? {
                let mut cursor = 0u64;
                loop {
                    // An operator's listing may take long: each command has its own deadline.
                    let (next, keys) =
                        scan(&self.redis, &node, cursor, &self.redis.pattern(), SCAN_COUNT, self.redis.deadline())
                            .await?;
                    for key in keys {
                        if out.len() >= limit {
                            return Ok(out);
                        }
                        // Users' indexes share the prefix: not sessions.
                        let Some(store_key) = self.redis.store_key(&key) else { continue };
                        if seen.insert(store_key) {
                            if let Some(summary) = summary(&self.redis, &key, store_key).await? {
                                out.push(summary);
                            }
                        }
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok(out)
        })
    }
}

/// The listing of the session under the Redis key `key`, if it is still there.
async fn summary(redis: &Redis, key: &str, store_key: StoreKey) -> Result<Option<Summary>, StoreError> {
    let mut conn = redis.conn.clone();
    let lookup = redis::pipe().hlen(key).hexists(key, INDEX_KEPT).pttl(key).clone();
    let (len, kept, pttl): (usize, bool, i64) = redis.read(redis.deadline(), lookup.query_async(&mut conn)).await?;
    if pttl == -2 {
        return Ok(None);
    }
    let expires_at_ms = if pttl >= 0 { now_ms() + pttl } else { i64::MAX };
    // The store's own fields are not the session's: MARKER always, INDEX_KEPT when bound.
    let own = 1 + usize::from(kept);
    Ok(Some(Summary { key: store_key, fields: len.saturating_sub(own), expires_at_ms }))
}
