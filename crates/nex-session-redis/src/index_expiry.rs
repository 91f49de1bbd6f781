//! Users' indexes expire with their last session.
//!
//! A session's expiry slides with every write and touch, which run on the
//! session's key alone (on a cluster, the index sits in another slot), so no
//! script can move the index's expiry along with it. Instead:
//!
//! - each bound session records until when its index was last made to live (the
//!   field [`INDEX_KEPT`], written by `bind` with the binding);
//! - every script that slides a session's expiry (`APPLY`, `COMPARE_AND_SET`,
//!   `TOUCH`) answers the binding when that record falls below the new expiry
//!   plus half the session's new lifetime (`index_due` in `scripts.rs`);
//! - the store then makes the index live until the new expiry plus the whole
//!   new lifetime ([`index_until`]) and records that on the session
//!   ([`keep_index`]): two more commands, about once per half lifetime of a
//!   session in use, none for a session without a user.
//!
//! So an index always outlives each of its sessions by at least half that
//! session's lifetime, and ends that long after its last session at most twice
//! as long. If a keep fails, the next write of the session tries again, within
//! that margin. `bind` and `rename` set the index's expiry in their own index
//! step; the order (`<prefix>o:{…}`) always ends with its index.
//!
//! Indexes made before this had no expiry, and their sessions no record: both
//! stay so, and the purge's sweep ends such an index once its members are gone.

use tokio::time::Instant;

use crate::connect::Redis;
use crate::scripts::INDEX_KEPT;
use nex_session_core::store::users::Binding;
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Until when (ms) a user's index must live for a session that expires at
/// `expires_at_ms`: that plus the session's time left.
pub(crate) fn index_until(expires_at_ms: i64) -> i64 {
    expires_at_ms.saturating_add(expires_at_ms.saturating_sub(now_ms()).max(0))
}

/// After a write of session `key` answered its `binding` (its index is due):
/// keeps the index alive for the new expiry and records it on the session. A
/// failure is logged, not returned: the write itself is done, and the next write
/// of the session tries again while the index still has its margin.
pub(crate) async fn keep_index(redis: &Redis, key: StoreKey, binding: &[u8], expires_at_ms: i64, deadline: Instant) {
    let Some(binding) = Binding::decode(binding) else { return };
    if let Err(err) = keep(redis, key, &binding.user, index_until(expires_at_ms), deadline).await {
        tracing::warn!(target: "nex_session::store", error = %err, "could not keep a user's index alive; the next write tries again");
    }
}

async fn keep(redis: &Redis, key: StoreKey, user: &str, until: i64, deadline: Instant) -> Result<(), StoreError> {
    let index = redis.index_key(user);
    let mut conn = redis.conn.clone();
    let mut keep = redis.scripts.index_keep.key(&index);
    keep.key(Redis::order_key(&index)).arg(key.to_hex()).arg(until).arg(now_ms());
    let _: i64 = redis.write(deadline, keep.invoke_async(&mut conn)).await?;
    let mut record = redis.scripts.session_kept.key(redis.key(key));
    record.arg(INDEX_KEPT).arg(until);
    let _: i64 = redis.write(deadline, record.invoke_async(&mut conn)).await?;
    Ok(())
}
