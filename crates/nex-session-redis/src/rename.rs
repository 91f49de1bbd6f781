//! `renew` on Redis: moving a session to a new key. An unbound session moves in
//! one script on a single node; on a cluster, where its two keys may sit in two
//! slots, it is taken away atomically and then written under the new key. A
//! session bound to a user moves through the user's index first, so a revoke
//! racing with it wins (the protocol, and why, is in `users.rs`).

use tokio::time::Instant;

use crate::connect::{taken_away, Connection, Redis};
use crate::index_expiry::index_until;
use crate::index_members::tidy;
use crate::store::RedisStore;
use nex_session_core::store::users::{Binding, USER_FIELD};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// How long past its rename's deadline a target moving in is spared by the lazy
/// cleanup: its rename has failed by then, and this covers app instances'
/// clocks disagreeing by up to that much.
const MOVING_GRACE_MS: i64 = 60_000;

/// The time left until `deadline`, in ms.
fn left_ms(deadline: Instant) -> i64 {
    i64::try_from(deadline.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(i64::MAX)
}

/// What [`move_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Moved {
    /// The data is under the new key; the old key is gone.
    Done,
    /// Nothing moved: no such session, or the new key is taken.
    Refused,
    /// Nothing moved: the session's binding is not the one expected; here it is
    /// (empty: none).
    BindingIs(Vec<u8>),
}

/// [`SessionStore::rename`] on Redis: first as an unbound session, then the way
/// the binding it answers needs, until one way is done or refused.
///
/// [`SessionStore::rename`]: nex_session_core::store::SessionStore::rename
pub(crate) async fn rename(
    store: &RedisStore,
    from: StoreKey,
    to: StoreKey,
    expires_at_ms: i64,
) -> Result<bool, StoreError> {
    let _forget = (store.forget_around(from), store.forget_around(to));
    // One deadline for all steps: `renew` as a whole answers within the timeout.
    let deadline = store.redis.deadline();
    // First as an unbound session: one script, as before there were users.
    // A bound one answers its binding and goes through the index instead;
    // so does one whose binding changed meanwhile (a concurrent bind).
    let mut expected = Vec::new();
    loop {
        let moved = match Binding::decode(&expected) {
            None => move_session(&store.redis, from, to, expires_at_ms, &expected, deadline).await?,
            Some(binding) => rename_bound(store, from, to, expires_at_ms, &expected, &binding.user, deadline).await?,
        };
        match moved {
            Moved::Done => return Ok(true),
            Moved::Refused => return Ok(false),
            Moved::BindingIs(binding) => expected = binding,
        }
    }
}

/// Moves the session under `from` to `to` (see [`SessionStore::rename`]) if
/// its binding ([`USER_FIELD`]) is `expected` (empty: none); otherwise moves
/// nothing and answers the binding it has, for the caller to take the way
/// that binding needs ([`rename_bound`] for a bound session).
///
/// [`SessionStore::rename`]: nex_session_core::store::SessionStore::rename
async fn move_session(
    redis: &Redis,
    from: StoreKey,
    to: StoreKey,
    expires_at_ms: i64,
    expected: &[u8],
    deadline: Instant,
) -> Result<Moved, StoreError> {
    let (from, to) = (redis.key(from), redis.key(to));
    match &redis.conn {
        // One node (a sentinel's master is one): one atomic script.
        Connection::Single(_) | Connection::Sentinel(_) => {
            let mut invocation = redis.scripts.rename.key(&from);
            invocation.key(&to).arg(expires_at_ms).arg(USER_FIELD).arg(expected);
            let mut conn = redis.conn.clone();
            let (moved, binding): (i64, Vec<u8>) = redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
            Ok(match moved {
                1 => Moved::Done,
                2 => Moved::BindingIs(binding),
                _ => Moved::Refused,
            })
        }
        Connection::Cluster(_) => rename_across_slots(redis, &from, &to, expires_at_ms, expected, deadline).await,
    }
}

/// `renew` on a cluster: two keys may sit in two slots, which no atomic
/// command spans. Take the old session away atomically first (the old id
/// stops working at once), then write it under the new key. If the new key
/// turns out to be taken (a 192-bit collision, checked first and then again
/// by the write), the session is put back as it was; if a step fails, the
/// user is logged out, never left on the old id.
async fn rename_across_slots(
    redis: &Redis,
    from: &str,
    to: &str,
    expires_at_ms: i64,
    expected: &[u8],
    deadline: Instant,
) -> Result<Moved, StoreError> {
    let mut conn = redis.conn.clone();
    let target_taken: bool = redis.read(deadline, redis::cmd("EXISTS").arg(to).query_async(&mut conn)).await?;
    if target_taken {
        return Ok(Moved::Refused);
    }
    let mut take = redis.scripts.take.key(from);
    take.arg(USER_FIELD).arg(expected);
    let taken: Vec<Vec<u8>> = redis.write(deadline, take.invoke_async(&mut conn)).await?;
    let fields = match taken.split_first() {
        Some((tag, rest)) if tag.as_slice() == b"taken" => rest,
        Some((tag, rest)) if tag.as_slice() == b"binding" => {
            return Ok(Moved::BindingIs(rest.first().cloned().unwrap_or_default()));
        }
        _ => return Ok(Moved::Refused),
    };
    let Some((ttl, fields)) = fields.split_first().filter(|(_, fields)| !fields.is_empty()) else {
        return Ok(Moved::Refused);
    };
    // The old session is gone from here on: any failure leaves the user logged
    // out, whatever else happened, so it is reported as possibly applied.
    let moved = put_all_if_absent(redis, to, expires_at_ms, fields, deadline).await.map_err(taken_away)?;
    if moved {
        return Ok(Moved::Done);
    }
    // Refused after all: put the source back with the time it had left.
    let ttl_ms = std::str::from_utf8(ttl).ok().and_then(|t| t.parse::<i64>().ok()).filter(|t| *t > 0);
    let restored_expiry = ttl_ms.map_or(expires_at_ms, |t| now_ms().saturating_add(t));
    put_all_if_absent(redis, from, restored_expiry, fields, deadline).await.map_err(taken_away)?;
    Ok(Moved::Refused)
}

/// Writes a whole session under `key` unless one is there; `Ok(false)` if one was.
async fn put_all_if_absent(
    redis: &Redis,
    key: &str,
    expires_at_ms: i64,
    fields: &[Vec<u8>],
    deadline: Instant,
) -> Result<bool, StoreError> {
    let mut invocation = redis.scripts.put_all_if_absent.key(key);
    invocation.arg(expires_at_ms);
    for part in fields {
        invocation.arg(part.as_slice());
    }
    let mut conn = redis.conn.clone();
    let written: i64 = redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
    Ok(written == 1)
}

/// `rename` of a session bound to `user` (its binding is `binding`, as
/// stored): through the index, so a revoke racing with it wins (see
/// `users.rs`). Called by [`rename`], under its deadline.
async fn rename_bound(
    store: &RedisStore,
    from: StoreKey,
    to: StoreKey,
    expires_at_ms: i64,
    binding: &[u8],
    user: &str,
    deadline: Instant,
) -> Result<Moved, StoreError> {
    let index = store.redis.index_key(user);
    let (source, target) = (from.to_hex(), to.to_hex());
    let until = now_ms().saturating_add(left_ms(deadline)).saturating_add(MOVING_GRACE_MS);
    let mut move_in = store.redis.scripts.index_move_in.key(&index);
    move_in.key(Redis::order_key(&index)).arg(&source).arg(&target).arg(format!("m{until}:{source}")).arg(now_ms());
    move_in.arg(index_until(expires_at_ms));
    let mut conn = store.redis.conn.clone();
    let indexed: i64 = store.redis.write(deadline, move_in.invoke_async(&mut conn)).await?;
    if indexed != 1 {
        // A revoke took the session (or it was never indexed): it is on its way out.
        return Ok(Moved::Refused);
    }
    // An error here leaves the target moving in; the lazy cleanup drops it
    // once its grace is over if it has no session.
    match move_session(&store.redis, from, to, expires_at_ms, binding, deadline).await? {
        Moved::Done => {}
        nothing_moved => {
            let mut unpend = store.redis.scripts.index_unpend.key(&index);
            unpend.arg(&target);
            let unpended = store.redis.write(deadline, unpend.invoke_async::<i64>(&mut conn)).await.map(drop);
            tidy(unpended, "dropping an unused rename target");
            return Ok(nothing_moved);
        }
    }
    // The data has moved: a failure from here on is not "nothing applied".
    let mut settle = store.redis.scripts.index_settle.key(&index);
    settle.key(Redis::order_key(&index));
    settle.arg(&source).arg(&target).arg(now_ms());
    let settled: i64 = store.redis.write(deadline, settle.invoke_async(&mut conn)).await.map_err(taken_away)?;
    if settled == 1 {
        return Ok(Moved::Done);
    }
    // A revoke took the target while the data moved, and may have deleted it
    // before the data arrived: finish its work. (The guard made at the start
    // drops the target from the client cache when the rename ends.)
    let del = redis::cmd("DEL").arg(store.redis.key(to)).clone();
    let _: i64 = store.redis.write(deadline, del.query_async(&mut conn)).await.map_err(taken_away)?;
    Ok(Moved::Refused)
}
