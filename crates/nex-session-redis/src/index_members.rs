//! A user's index as the index operations read and tidy it: its members, what
//! each member's session holds, and dropping members whose session is gone.
//! Shared by the calls of `users.rs`, the rename of a bound session
//! (`rename.rs`) and the purge's sweep (`sweep.rs`).

use std::future::Future;

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::connect::Redis;
use nex_session_core::store::users::{SEEN_FIELD, USER_FIELD};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Per-session commands of one call in flight at once.
const IN_FLIGHT: usize = 64;

/// What one session holds for a listing.
pub(crate) struct Probe {
    pub(crate) binding: Option<Vec<u8>>,
    pub(crate) seen: Option<Vec<u8>>,
    /// `PTTL`: -2 no such key, -1 no expiry.
    pub(crate) pttl: i64,
}

/// Runs `f` on every item, up to [`IN_FLIGHT`] at a time, and answers in order.
pub(crate) async fn each<I, T, F, Fut>(items: I, f: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T>,
{
    let mut pending = items.into_iter().map(f).peekable();
    let mut out = Vec::new();
    while pending.peek().is_some() {
        out.extend(join_all(pending.by_ref().take(IN_FLIGHT)).await);
    }
    out
}

/// Logs a failed housekeeping step (after the call's effect is in place): the
/// lazy cleanup will do it later, so the call still succeeds.
pub(crate) fn tidy(result: Result<(), StoreError>, what: &'static str) {
    if let Err(err) = result {
        tracing::debug!(target: "nex_session::store", error = %err, "{what} failed; the index is tidied later");
    }
}

/// The members of the index `index`.
pub(crate) async fn members(redis: &Redis, index: &str, deadline: Instant) -> Result<Vec<String>, StoreError> {
    let mut conn = redis.conn.clone();
    redis.read(deadline, redis::cmd("HKEYS").arg(index).query_async(&mut conn)).await
}

/// What each member's session holds (`None`: not a session key).
pub(crate) async fn probe(
    redis: &Redis,
    members: &[String],
    deadline: Instant,
) -> Vec<Result<Option<Probe>, StoreError>> {
    // Collected first: a lazy iterator over borrowed members trips the `Send`
    // check of the boxed future (closures over references are not general enough).
    let keys: Vec<Option<StoreKey>> = members.iter().map(|m| StoreKey::from_hex(m)).collect();
    each(keys, |key| async move {
        let Some(key) = key else { return Ok(None) };
        let key = redis.key(key);
        let mut conn = redis.conn.clone();
        // One slot (one key), so this pipeline is one round trip on a cluster too.
        let pipe = redis::pipe().hget(&key, USER_FIELD).hget(&key, SEEN_FIELD).pttl(&key).clone();
        let (binding, seen, pttl) = redis.read(deadline, pipe.query_async(&mut conn)).await?;
        Ok(Some(Probe { binding, seen, pttl }))
    })
    .await
}

/// Drops `dead` members from `index` (seen without a session), sparing
/// rename targets still moving in; how many it dropped.
pub(crate) async fn prune(redis: &Redis, index: &str, dead: &[&str], deadline: Instant) -> Result<u64, StoreError> {
    let mut invocation = redis.scripts.index_prune.key(index);
    invocation.key(Redis::order_key(index));
    invocation.arg(now_ms());
    for member in dead {
        invocation.arg(*member);
    }
    let mut conn = redis.conn.clone();
    let dropped: u64 = redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
    Ok(dropped)
}
