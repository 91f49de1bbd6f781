//! The Redis store's per-user index ([`UserIndex`]): one protocol for a single
//! node and for Redis Cluster, where a user's index and their sessions sit in
//! different hash slots, so no script can change both at once. The protocol is
//! described here and its calls are in this file, but for two with files of
//! their own: the rename of a bound session (`rename.rs`) and the purge's sweep
//! (`sweep.rs`). The index reads and cleanup they share are in
//! `index_members.rs`, the scripts in `scripts.rs`.
//!
//! # Layout
//!
//! - A session's binding is its [`USER_FIELD`] (JSON, [`Binding::encode`]),
//!   written by [`UserIndex::bind`] only; [`SEEN_FIELD`] is an ordinary field the
//!   session layer writes.
//! - A user's index is one hash, `<prefix>u:{<hex SHA-256 of the user id>}`
//!   (the hash tag keeps it in one slot), a field per session key (64 hex
//!   characters) whose value is the member's state: `b` bound; `r` taken by a
//!   revoke; `m<until>:<source>` the target of a rename in flight, moving in
//!   from `<source>`. While a revoke-all scans it, the index also holds the field
//!   `!revoking` (`<until>:<kept member>`; `!` starts no member).
//! - Beside the index, in its slot, the user's **order**: `<prefix>o:{<same hex>}`, a
//!   sorted set of the members scored by last use (ms): the sign-in time at `bind`,
//!   then what [`UserIndex::seen`] reports (the layer calls it when it records
//!   [`SEEN_FIELD`], at most once per refresh interval). The cap reads it from the
//!   least recently seen; every script that drops a member drops it here too.
//! - A bound session also holds until when its index was last made to live
//!   (`INDEX_KEPT`, a NUL-prefixed field loads skip; see `index_expiry.rs`).
//! - A session without a user has no member anywhere, and nothing here runs for
//!   it: `load`, `apply`, `update`, `touch` and `remove` cost one command or script
//!   each, and `rename` still costs one script (it answers the binding when there is one).
//!
//! **Invariant**: a live session whose binding names a user is a member of that
//! user's index. Every step below keeps it, which is what makes revokes final.
//!
//! # What is atomic, what is ordered
//!
//! Each script is atomic on its one key (the index, or one session). A call is a
//! sequence of them, in this order:
//!
//! - **bind**: (1) index the session as `b` and put it in the order at its sign-in
//!   time (refused if a revoke took it); (2) write the binding and the expiry if
//!   the session exists, answering the previous binding (else the member is taken
//!   out again: [`WriteOutcome::PresenceFailed`]); (3) drop the member from the
//!   previous user's index; (4) with a cap, and only when the index holds more
//!   members than it: one script marks the least recently seen bound members `r`
//!   (never the one signing in) until the cap holds, and they are deleted and
//!   released as a revoke does. Indexed before bound: a revoke-all that starts
//!   after `bind` returns always finds the session. A sign-in costs 2 commands, 5
//!   when it ends a session (20 and 32 counted by the server, inside scripts too),
//!   whatever the user's history.
//! - **revoke** (one session): (1) one script marks the member and the targets of
//!   its renames in flight `r` and answers them; (2) each session is deleted if
//!   its binding names the user (a script per session, many in flight); (3) the
//!   marks are released: members whose session is gone are dropped, spared ones
//!   (bound to no one or someone else) are `b` again.
//! - **revoke_all**: the same three steps, in `HSCAN` steps of 1,000 members, each
//!   step under its own deadline: a step marks what the scan returns but the kept
//!   session and its rename targets, and renews the index's `!revoking` hold
//!   (dropped at the last step). While the hold lasts, `rename` refuses to move any
//!   member but the kept one, so no session can move from where the scan has yet to
//!   go to where it has been, and `HSCAN` returns every member present for the whole
//!   scan: the steps together mark every session bound before the revoke started.
//!   A hold left by a revoke that died ends after two timeouts. With
//!   `Keep::Session` (revoke-others), each step first checks that the kept member
//!   is still `b` (no revoke took it), and stops otherwise.
//!
//!   A failure after a step's marks is [`StoreError::OutcomeUnknown`] when a
//!   session may have been deleted; the marks stay, so a retry finds every
//!   session again.
//! - **rename** of a bound session (an unbound one is one script, as before):
//!   (1) if the source is a member no revoke took, index the target as moving in
//!   (else `Ok(false)`: the session is being revoked); (2) move the data (single
//!   node: one atomic script; cluster: take, then put) if the source's binding is
//!   still the one read; (3) drop the source from the index and make the target
//!   `b`, unless a revoke took the target meanwhile: then delete the target and
//!   answer `Ok(false)`.
//! - **sessions**: read the members, then each session's binding, last-seen time
//!   and time to live (many in flight); members whose session is gone are dropped
//!   (lazy cleanup), except targets still moving in.
//!
//! # Why a revoke is final
//!
//! Take `revoke_all` of a user and any session `S` bound to them before it
//! started. By the invariant `S` is a member, so step (1) marks it, and step (2)
//! deletes it; writes of `S` need it to exist (every write script checks), so
//! none brings it back. What remains is a rename of `S` to `T` racing with it:
//!
//! - rename (1) after revoke (1): `S` is marked, the rename refuses; nothing moves.
//! - revoke (1) after rename (3): `T` is a plain member, marked and deleted.
//! - revoke (1) between rename (1) and (3): `T` is a member (moving in), so it is
//!   marked too, and rename (3) finds it taken: the rename deletes `T` itself
//!   (revoke (2) may have run before the data arrived) and answers `Ok(false)`.
//!   So `T` may outlive the revoke-all's return by the rename's last step, but
//!   the rename fails, so `T`'s id is never given to anyone (no cookie is issued).
//!
//! A session rebound to another user while a revoke of the first user runs may
//! be spared, as if the rebind came first. A `bind` racing with a rename of the
//! same session cannot leave it outside its user's index: the rename moves only
//! a session whose binding is still the one it indexed, and starts over otherwise.
//!
//! # Dead members
//!
//! Redis expires sessions by itself but not index members. A member whose
//! session is gone (expired, removed at logout, renamed) is dropped when the
//! user's sessions are read or revoked, or when the cap reaches it (such members
//! count towards the cap until then, and go first, being least recently seen,
//! unless logged out recently): no scan of all sessions. A target
//! moving in is spared for a minute past its rename's deadline (clock
//! differences between app instances), since its data may not be there yet.
//! The background purge (`purge_expired`) sweeps the indexes of users who never
//! come back, a bounded slice of `SCAN` steps per run, resuming where the last
//! run stopped; an index whose members are all gone is gone too.
//!
//! An index (and its order) expires with its user's last session: each outlives
//! every member by at least half the member's lifetime, though the writes that
//! slide a session's expiry run on the session's key alone (`index_expiry.rs`).
//! Indexes made before that have no expiry, and the sweep ends them.
//!
//! Use a `maxmemory-policy` of `noeviction`: an evicted index would take the
//! revokes of its user's sessions with it, and since indexes carry expiries,
//! `volatile-*` policies may evict them too.
//!
//! [`SEEN_FIELD`]: nex_session_core::store::users::SEEN_FIELD

use tokio::time::Instant;

use crate::connect::{taken_away, Redis};
use crate::index_expiry::index_until;
use crate::index_members::{each, members, probe, prune, tidy};
use crate::scripts::INDEX_KEPT;
use crate::store::RedisStore;
use nex_session_core::store::users::{Binding, Keep, SessionCap, SessionHandle, UserIndex, UserSession, USER_FIELD};
use nex_session_core::store::{BoxFuture, WriteOutcome};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// What a revoke did to one marked member's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revoked {
    /// Deleted: it was bound to the user.
    Deleted,
    /// There was no session.
    Gone,
    /// Left alone: bound to no one or someone else.
    Spared,
}

/// The live sessions bound to `user`, dropping dead members from the index.
async fn live_sessions(redis: &Redis, user: &str, deadline: Instant) -> Result<Vec<UserSession>, StoreError> {
    let index = redis.index_key(user);
    let members = members(redis, &index, deadline).await?;
    let probes = probe(redis, &members, deadline).await;
    let (mut live, mut dead) = (Vec::new(), Vec::new());
    let now = now_ms();
    for (member, probe) in members.iter().zip(probes) {
        let (key, probe) = match (StoreKey::from_hex(member), probe?) {
            (Some(key), Some(probe)) if probe.pttl != -2 => (key, probe),
            _ => {
                dead.push(member.as_str());
                continue;
            }
        };
        let binding = probe.binding.as_deref().and_then(Binding::decode).filter(|b| b.user == user);
        if let Some(binding) = binding {
            let expires_at_ms = if probe.pttl >= 0 { now.saturating_add(probe.pttl) } else { i64::MAX };
            live.push(UserSession::new(key, binding, probe.seen.as_deref(), expires_at_ms));
        }
    }
    if !dead.is_empty() {
        tidy(prune(redis, &index, &dead, deadline).await.map(drop), "dropping dead index members");
    }
    Ok(live)
}

/// Takes `member` out of `index` and its order (its session turned out missing,
/// or moved to another user).
async fn unindex(redis: &Redis, index: &str, member: &str, deadline: Instant) -> Result<(), StoreError> {
    let mut conn = redis.conn.clone();
    let mut invocation = redis.scripts.index_drop.key(index);
    invocation.key(Redis::order_key(index)).arg(member);
    let _: i64 = redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
    Ok(())
}

/// Sessions a revoke deletes under one deadline: a revoke of any number of
/// sessions is a sequence of such batches, each with the store's timeout.
const REVOKE_BATCH: usize = 1_000;

/// What `INDEX_MARK` answers when the session asking is no longer the user's.
const ASKER_GONE: &str = "!gone";

/// Revokes one session of `user` and the targets of its renames in flight:
/// mark, delete, release (see the module docs). Returns how many live sessions
/// of `user` it deleted.
async fn revoke_one(store: &RedisStore, user: &str, index: &str, member: &str) -> Result<u64, StoreError> {
    let mut invocation = store.redis.scripts.index_mark.key(index);
    invocation.arg(member);
    let mut conn = store.redis.conn.clone();
    let marked: Vec<String> = store.redis.write(store.redis.deadline(), invocation.invoke_async(&mut conn)).await?;
    delete_marked(store, user, index, &marked, store.redis.deadline()).await
}

/// Revokes every session of `user` but `kept` (empty: none) and its rename
/// targets: `HSCAN` steps of [`REVOKE_BATCH`] members, each marked, deleted and
/// released under its own deadline (see the module docs and `INDEX_MARK_STEP`).
/// Returns how many live sessions of `user` it deleted. `asker`: `kept` is the
/// session asking, which must still be the user's at every step, or the revoke
/// stops there.
async fn revoke_all_but(
    store: &RedisStore,
    user: &str,
    index: &str,
    kept: &str,
    asker: bool,
) -> Result<u64, StoreError> {
    let mut conn = store.redis.conn.clone();
    let (mut cursor, mut revoked) = (String::from("0"), 0u64);
    loop {
        let deadline = store.redis.deadline();
        // The hold outlives this step's deadline and the next one's: a revoke
        // that dies leaves renames refused for two timeouts at most.
        let hold = now_ms()
            .saturating_add(i64::try_from(store.redis.timeout.saturating_mul(2).as_millis()).unwrap_or(i64::MAX));
        let mut step = store.redis.scripts.index_mark_step.key(index);
        step.arg(&cursor).arg(kept).arg(if asker { "asker" } else { "" }).arg(hold).arg(REVOKE_BATCH);
        let answer = store.redis.write(deadline, step.invoke_async::<Vec<String>>(&mut conn)).await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(err) if revoked > 0 => return Err(taken_away(err)),
            Err(err) => return Err(err),
        };
        let mut answer = answer.into_iter();
        let next = answer.next().unwrap_or_else(|| String::from("0"));
        if next == ASKER_GONE {
            return Ok(revoked);
        }
        let marked: Vec<String> = answer.collect();
        match delete_marked(store, user, index, &marked, deadline).await {
            Ok(n) => revoked += n,
            // Some sessions are gone already: the revoke did change the store.
            Err(err) if revoked > 0 => return Err(taken_away(err)),
            Err(err) => return Err(err),
        }
        if next == "0" {
            return Ok(revoked);
        }
        cursor = next;
    }
}

/// Deletes the sessions of `marked` members bound to `user` and releases the
/// members; how many live sessions it deleted. A member whose deletion failed
/// stays marked, so a retry finds it.
async fn delete_marked(
    store: &RedisStore,
    user: &str,
    index: &str,
    marked: &[String],
    deadline: Instant,
) -> Result<u64, StoreError> {
    let mut conn = store.redis.conn.clone();
    let keys: Vec<Option<StoreKey>> = marked.iter().map(|m| StoreKey::from_hex(m)).collect();
    let outcomes = each(keys, |key| async move {
        let Some(key) = key else { return Ok(Revoked::Gone) };
        let _forget = store.forget_around(key);
        let mut invocation = store.redis.scripts.revoke.key(store.redis.key(key));
        invocation.arg(USER_FIELD).arg(user);
        let mut conn = store.redis.conn.clone();
        let answer: i64 = store.redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
        Ok::<_, StoreError>(match answer {
            1 => Revoked::Deleted,
            0 => Revoked::Gone,
            _ => Revoked::Spared,
        })
    })
    .await;
    let mut revoked = 0u64;
    let mut release = store.redis.scripts.index_release.key(index);
    release.key(Redis::order_key(index));
    let mut failure = None;
    for (member, outcome) in marked.iter().zip(outcomes) {
        match outcome {
            Ok(Revoked::Spared) => release.arg(member.as_str()).arg("s"),
            Ok(done) => {
                revoked += u64::from(done == Revoked::Deleted);
                release.arg(member.as_str()).arg("g")
            }
            // Stays marked, so a retry finds it.
            Err(err) => {
                failure.get_or_insert(err);
                continue;
            }
        };
    }
    if !marked.is_empty() {
        let released = store.redis.write(deadline, release.invoke_async::<i64>(&mut conn)).await.map(drop);
        tidy(released, "releasing revoked index members");
    }
    match failure {
        // Some sessions are gone already: the revoke did change the store.
        Some(err) if revoked > 0 => Err(taken_away(err)),
        Some(err) => Err(err),
        None => Ok(revoked),
    }
}

impl UserIndex for RedisStore {
    fn bind<'a>(
        &'a self,
        key: StoreKey,
        binding: &'a Binding,
        expires_at_ms: i64,
        cap: Option<SessionCap>,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(async move {
            let deadline = self.redis.deadline();
            let index = self.redis.index_key(&binding.user);
            let member = key.to_hex();
            let mut conn = self.redis.conn.clone();
            let mut indexing = self.redis.scripts.index_bind.key(&index);
            let until = index_until(expires_at_ms);
            indexing.key(Redis::order_key(&index)).arg(&member).arg(binding.signed_in_ms).arg(until).arg(now_ms());
            let members: i64 = self.redis.write(deadline, indexing.invoke_async(&mut conn)).await?;
            if members < 0 {
                // A revoke of this user took the session: it is on its way out.
                return Ok(WriteOutcome::PresenceFailed);
            }
            let _forget = self.forget_around(key);
            let mut write = self.redis.scripts.bind.key(self.redis.key(key));
            write.arg(USER_FIELD).arg(binding.encode()).arg(expires_at_ms).arg(INDEX_KEPT).arg(until);
            let (bound, previous): (i64, Vec<u8>) = self.redis.write(deadline, write.invoke_async(&mut conn)).await?;
            if bound != 1 {
                tidy(unindex(&self.redis, &index, &member, deadline).await, "unindexing a missing session");
                return Ok(WriteOutcome::PresenceFailed);
            }
            if let Some(previous) = Binding::decode(&previous).filter(|p| p.user != binding.user) {
                let previous_index = self.redis.index_key(&previous.user);
                tidy(unindex(&self.redis, &previous_index, &member, deadline).await, "unindexing a rebound session");
            }
            if let Some(cap) = cap.filter(|cap| members > i64::from(cap.get())) {
                // Over the cap: the least recently seen members go, marked and
                // deleted as a revoke does. Commands: a constant few per sign-in.
                let mut capping = self.redis.scripts.index_cap.key(&index);
                capping.key(Redis::order_key(&index)).arg(&member).arg(cap.get()).arg(REVOKE_BATCH);
                let taken: Vec<String> = self.redis.write(deadline, capping.invoke_async(&mut conn)).await?;
                if !taken.is_empty() {
                    delete_marked(self, &binding.user, &index, &taken, deadline).await.map_err(taken_away)?;
                }
            }
            Ok(WriteOutcome::Done)
        })
    }

    fn seen<'a>(&'a self, key: StoreKey, user: &'a str, seen_ms: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let index = self.redis.index_key(user);
            let mut seen = self.redis.scripts.index_seen.key(&index);
            seen.key(Redis::order_key(&index)).arg(key.to_hex()).arg(seen_ms);
            let mut conn = self.redis.conn.clone();
            let _: i64 = self.redis.write(self.redis.deadline(), seen.invoke_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn sessions<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>> {
        Box::pin(async move {
            let mut listed = live_sessions(&self.redis, user, self.redis.deadline()).await?;
            listed.sort_by(|a, b| (a.signed_in_ms, &a.handle).cmp(&(b.signed_in_ms, &b.handle)));
            Ok(listed)
        })
    }

    fn revoke<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let deadline = self.redis.deadline();
            let index = self.redis.index_key(user);
            let members = members(&self.redis, &index, deadline).await?;
            let named = members.iter().find(|m| StoreKey::from_hex(m).is_some_and(|k| SessionHandle::of(k) == *handle));
            let Some(member) = named else { return Ok(false) };
            Ok(revoke_one(self, user, &index, member).await? > 0)
        })
    }

    fn revoke_all<'a>(&'a self, user: &'a str, keep: Keep) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let deadline = self.redis.deadline();
            let index = self.redis.index_key(user);
            let kept = match &keep {
                Keep::None => String::new(),
                Keep::Session(key) => key.to_hex(),
                Keep::Handle(_) => {
                    // The index names sessions by key: find the one with this handle.
                    let members = members(&self.redis, &index, deadline).await?;
                    let kept = members.into_iter().find(|m| StoreKey::from_hex(m).is_some_and(|k| keep.spares(k)));
                    kept.unwrap_or_default()
                }
            };
            let asker = matches!(keep, Keep::Session(_));
            revoke_all_but(self, user, &index, &kept, asker).await
        })
    }
}
