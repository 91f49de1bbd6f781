//! The Redis store's per-user index ([`UserIndex`]): one protocol for a single
//! node and for Redis Cluster, where a user's index and their sessions sit in
//! different hash slots, so no script can change both at once. The whole
//! algorithm is in this file; its scripts are in `scripts.rs`.
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
//!   from `<source>`.
//! - A session without a user has no member anywhere, and nothing here runs for
//!   it: `load`, `apply`, `update`, `touch` and `remove` are what they were, and
//!   `rename` still costs one script (it answers the binding when there is one).
//!
//! **Invariant**: a live session whose binding names a user is a member of that
//! user's index. Every step below keeps it, which is what makes revokes final.
//!
//! # What is atomic, what is ordered
//!
//! Each script is atomic on its one key (the index, or one session). A call is a
//! sequence of them, in this order:
//!
//! - **bind**: (1) index the session as `b` (refused if a revoke took it);
//!   (2) write the binding and the expiry if the session exists, answering the
//!   previous binding (else the member is taken out again:
//!   [`WriteOutcome::PresenceFailed`]); (3) drop the member from the previous
//!   user's index; (4) drop dead members of the user. Indexed before bound: a
//!   revoke-all that starts after `bind` returns always finds the session.
//! - **revoke** and **revoke_all**: (1) one script marks the members `r` and
//!   answers them: every one but the kept session (and the targets of its
//!   renames in flight), or the one session named and its rename targets;
//!   (2) each session is deleted if its binding names the user (a script per
//!   session, many in flight); (3) the marks are released: members whose session
//!   is gone are dropped, spared ones (bound to no one or someone else) are `b`
//!   again. A failure after (1) is [`StoreError::OutcomeUnknown`] when a session
//!   may have been deleted; the marks stay, so a retry finds every session again.
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
//! user's sessions are read, bound or revoked: no scan of all sessions. A target
//! moving in is spared for a minute past its rename's deadline (clock
//! differences between app instances), since its data may not be there yet.
//! The background purge (`purge_expired`) sweeps the indexes of users who never
//! come back, a bounded slice of `SCAN` steps per run, resuming where the last
//! run stopped; an index whose members are all gone is gone too.
//!
//! Use a `maxmemory-policy` of `noeviction` or a `volatile-*` one: indexes have
//! no expiry, and an `allkeys-*` policy could evict one, and with it the
//! revokes of its user's sessions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::scan::Node;
use crate::store::{taken_away, Moved, RedisStore};
use nex_session_core::store::users::{Binding, Keep, SessionHandle, UserIndex, UserSession, SEEN_FIELD, USER_FIELD};
use nex_session_core::store::{BoxFuture, WriteOutcome};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// How long past its rename's deadline a target moving in is spared by the lazy
/// cleanup: its rename has failed by then, and this covers app instances'
/// clocks disagreeing by up to that much.
const MOVING_GRACE_MS: i64 = 60_000;

/// Per-session commands of one call in flight at once.
const IN_FLIGHT: usize = 64;

/// `SCAN` steps per node of one purge's sweep of users' indexes, and keys asked per step.
const SWEEP_STEPS: usize = 16;
const SWEEP_COUNT: u64 = 500;

/// Where the purge's sweep of users' indexes stands on each node (a cursor of 0:
/// the next sweep starts over).
#[derive(Debug, Default)]
pub(super) struct Sweep {
    cursors: Mutex<HashMap<Node, u64>>,
}

impl Sweep {
    fn cursor(&self, node: &Node) -> u64 {
        self.lock().get(node).copied().unwrap_or(0)
    }

    fn stopped_at(&self, node: &Node, cursor: u64) {
        self.lock().insert(node.clone(), cursor);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Node, u64>> {
        // A cursor is a plain number, replaced whole: a panic cannot leave it half-written.
        self.cursors.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which members a revoke takes (see `INDEX_MARK` in `scripts.rs`).
#[derive(Debug, Clone, Copy)]
enum Mark<'a> {
    /// Every member but this one (empty: none) and its rename targets.
    AllBut(&'a str),
    /// This member and its rename targets.
    One(&'a str),
}

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

/// What one session holds for a listing.
struct Probe {
    binding: Option<Vec<u8>>,
    seen: Option<Vec<u8>>,
    /// `PTTL`: -2 no such key, -1 no expiry.
    pttl: i64,
}

/// Runs `f` on every item, up to [`IN_FLIGHT`] at a time, and answers in order.
async fn each<I, T, F, Fut>(items: I, f: F) -> Vec<T>
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
fn tidy(result: Result<(), StoreError>, what: &'static str) {
    if let Err(err) = result {
        tracing::debug!(target: "nex_session::store", error = %err, "{what} failed; the index is tidied later");
    }
}

/// The time left until `deadline`, in ms.
fn left_ms(deadline: Instant) -> i64 {
    i64::try_from(deadline.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(i64::MAX)
}

impl RedisStore {
    /// The members of the index `index`.
    async fn members(&self, index: &str, deadline: Instant) -> Result<Vec<String>, StoreError> {
        let mut conn = self.redis.conn.clone();
        self.redis.read(deadline, redis::cmd("HKEYS").arg(index).query_async(&mut conn)).await
    }

    /// What each member's session holds (`None`: not a session key).
    async fn probe(&self, members: &[String], deadline: Instant) -> Vec<Result<Option<Probe>, StoreError>> {
        // Collected first: a lazy iterator over borrowed members trips the `Send`
        // check of the boxed future (closures over references are not general enough).
        let keys: Vec<Option<StoreKey>> = members.iter().map(|m| StoreKey::from_hex(m)).collect();
        each(keys, |key| async move {
            let Some(key) = key else { return Ok(None) };
            let key = self.redis.key(key);
            let mut conn = self.redis.conn.clone();
            // One slot (one key), so this pipeline is one round trip on a cluster too.
            let pipe = redis::pipe().hget(&key, USER_FIELD).hget(&key, SEEN_FIELD).pttl(&key).clone();
            let (binding, seen, pttl) = self.redis.read(deadline, pipe.query_async(&mut conn)).await?;
            Ok(Some(Probe { binding, seen, pttl }))
        })
        .await
    }

    /// The live sessions bound to `user`, dropping dead members from the index.
    async fn live_sessions(&self, user: &str, deadline: Instant) -> Result<Vec<UserSession>, StoreError> {
        let index = self.redis.index_key(user);
        let members = self.members(&index, deadline).await?;
        let probes = self.probe(&members, deadline).await;
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
            tidy(self.prune(&index, &dead, deadline).await.map(drop), "dropping dead index members");
        }
        Ok(live)
    }

    /// Drops `dead` members from `index` (seen without a session), sparing
    /// rename targets still moving in; how many it dropped.
    async fn prune(&self, index: &str, dead: &[&str], deadline: Instant) -> Result<u64, StoreError> {
        let mut invocation = self.redis.scripts.index_prune.key(index);
        invocation.arg(now_ms());
        for member in dead {
            invocation.arg(*member);
        }
        let mut conn = self.redis.conn.clone();
        let dropped: u64 = self.redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
        Ok(dropped)
    }

    /// Drops the dead members of the index `index`, whoever's it is; how many.
    async fn prune_index(&self, index: &str, deadline: Instant) -> Result<u64, StoreError> {
        let members = self.members(index, deadline).await?;
        let probes = self.probe(&members, deadline).await;
        let mut dead = Vec::new();
        for (member, probe) in members.iter().zip(probes) {
            if probe?.is_none_or(|p| p.pttl == -2) {
                dead.push(member.as_str());
            }
        }
        if dead.is_empty() {
            return Ok(0);
        }
        self.prune(index, &dead, deadline).await
    }

    /// The purge's share of the index upkeep: up to [`SWEEP_STEPS`] `SCAN` steps
    /// per node over users' indexes, from where the last sweep stopped, dropping
    /// dead members (users who never come back would keep them for good).
    /// Returns how many members it dropped.
    pub(super) async fn sweep_indexes(&self) -> Result<u64, StoreError> {
        let pattern = self.redis.index_pattern();
        let mut dropped = 0u64;
        for node in self.redis.nodes(self.redis.deadline()).await? {
            let mut cursor = self.sweep.cursor(&node);
            for _ in 0..SWEEP_STEPS {
                // Each command has its own deadline: a sweep is background work.
                let (next, indexes) =
                    self.redis.scan(&node, cursor, &pattern, SWEEP_COUNT, self.redis.deadline()).await?;
                for index in &indexes {
                    dropped += self.prune_index(index, self.redis.deadline()).await?;
                }
                cursor = next;
                self.sweep.stopped_at(&node, cursor);
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(dropped)
    }

    /// Takes `member` out of `index` (its session turned out missing, or moved to another user).
    async fn unindex(&self, index: &str, member: &str, deadline: Instant) -> Result<(), StoreError> {
        let mut conn = self.redis.conn.clone();
        let _: i64 =
            self.redis.write(deadline, redis::cmd("HDEL").arg(index).arg(member).query_async(&mut conn)).await?;
        Ok(())
    }

    /// Revokes the members `mark` names in `user`'s index: mark, delete, release
    /// (see the module docs). Returns how many live sessions of `user` it deleted.
    async fn revoke_marked(
        &self,
        user: &str,
        index: &str,
        mark: Mark<'_>,
        deadline: Instant,
    ) -> Result<u64, StoreError> {
        let (mode, named) = match mark {
            Mark::AllBut(kept) => ("all", kept),
            Mark::One(member) => ("one", member),
        };
        let mut invocation = self.redis.scripts.index_mark.key(index);
        invocation.arg(mode).arg(named);
        let mut conn = self.redis.conn.clone();
        let marked: Vec<String> = self.redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
        let keys: Vec<Option<StoreKey>> = marked.iter().map(|m| StoreKey::from_hex(m)).collect();
        let outcomes = each(keys, |key| async move {
            let Some(key) = key else { return Ok(Revoked::Gone) };
            self.forget(key);
            let mut invocation = self.redis.scripts.revoke.key(self.redis.key(key));
            invocation.arg(USER_FIELD).arg(user);
            let mut conn = self.redis.conn.clone();
            let answer: i64 = self.redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
            Ok::<_, StoreError>(match answer {
                1 => Revoked::Deleted,
                0 => Revoked::Gone,
                _ => Revoked::Spared,
            })
        })
        .await;
        let mut revoked = 0u64;
        let mut release = self.redis.scripts.index_release.key(index);
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
            let released = self.redis.write(deadline, release.invoke_async::<i64>(&mut conn)).await.map(drop);
            tidy(released, "releasing revoked index members");
        }
        match failure {
            // Some sessions are gone already: the revoke did change the store.
            Some(err) if revoked > 0 => Err(taken_away(err)),
            Some(err) => Err(err),
            None => Ok(revoked),
        }
    }

    /// `rename` of a session bound to `user` (its binding is `binding`, as
    /// stored): through the index, so a revoke racing with it wins (see the
    /// module docs). Called by `rename` in `mod.rs`, under its deadline.
    pub(super) async fn rename_bound(
        &self,
        from: StoreKey,
        to: StoreKey,
        expires_at_ms: i64,
        binding: &[u8],
        user: &str,
        deadline: Instant,
    ) -> Result<Moved, StoreError> {
        let index = self.redis.index_key(user);
        let (source, target) = (from.to_hex(), to.to_hex());
        let until = now_ms().saturating_add(left_ms(deadline)).saturating_add(MOVING_GRACE_MS);
        let mut move_in = self.redis.scripts.index_move_in.key(&index);
        move_in.arg(&source).arg(&target).arg(format!("m{until}:{source}"));
        let mut conn = self.redis.conn.clone();
        let indexed: i64 = self.redis.write(deadline, move_in.invoke_async(&mut conn)).await?;
        if indexed != 1 {
            // A revoke took the session (or it was never indexed): it is on its way out.
            return Ok(Moved::Refused);
        }
        // An error here leaves the target moving in; the lazy cleanup drops it
        // once its grace is over if it has no session.
        match self.move_session(from, to, expires_at_ms, binding, deadline).await? {
            Moved::Done => {}
            nothing_moved => {
                let mut unpend = self.redis.scripts.index_unpend.key(&index);
                unpend.arg(&target);
                let unpended = self.redis.write(deadline, unpend.invoke_async::<i64>(&mut conn)).await.map(drop);
                tidy(unpended, "dropping an unused rename target");
                return Ok(nothing_moved);
            }
        }
        // The data has moved: a failure from here on is not "nothing applied".
        let mut settle = self.redis.scripts.index_settle.key(&index);
        settle.arg(&source).arg(&target);
        let settled: i64 = self.redis.write(deadline, settle.invoke_async(&mut conn)).await.map_err(taken_away)?;
        if settled == 1 {
            return Ok(Moved::Done);
        }
        // A revoke took the target while the data moved, and may have deleted it
        // before the data arrived: finish its work.
        self.forget(to);
        let del = redis::cmd("DEL").arg(self.redis.key(to)).clone();
        let _: i64 = self.redis.write(deadline, del.query_async(&mut conn)).await.map_err(taken_away)?;
        Ok(Moved::Refused)
    }
}

impl UserIndex for RedisStore {
    fn bind<'a>(
        &'a self,
        key: StoreKey,
        binding: &'a Binding,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(async move {
            let deadline = self.redis.deadline();
            let index = self.redis.index_key(&binding.user);
            let member = key.to_hex();
            let mut conn = self.redis.conn.clone();
            let mut indexing = self.redis.scripts.index_bind.key(&index);
            indexing.arg(&member);
            let members: i64 = self.redis.write(deadline, indexing.invoke_async(&mut conn)).await?;
            if members < 0 {
                // A revoke of this user took the session: it is on its way out.
                return Ok(WriteOutcome::PresenceFailed);
            }
            self.forget(key);
            let mut write = self.redis.scripts.bind.key(self.redis.key(key));
            write.arg(USER_FIELD).arg(binding.encode()).arg(expires_at_ms);
            let (bound, previous): (i64, Vec<u8>) = self.redis.write(deadline, write.invoke_async(&mut conn)).await?;
            if bound != 1 {
                tidy(self.unindex(&index, &member, deadline).await, "unindexing a missing session");
                return Ok(WriteOutcome::PresenceFailed);
            }
            if let Some(previous) = Binding::decode(&previous).filter(|p| p.user != binding.user) {
                let previous_index = self.redis.index_key(&previous.user);
                tidy(self.unindex(&previous_index, &member, deadline).await, "unindexing a rebound session");
            }
            if members > 1 {
                // A sign-in is when a user's dead members are cleared out.
                tidy(self.live_sessions(&binding.user, deadline).await.map(drop), "dropping dead index members");
            }
            Ok(WriteOutcome::Done)
        })
    }

    fn sessions<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>> {
        Box::pin(async move {
            let mut listed = self.live_sessions(user, self.redis.deadline()).await?;
            listed.sort_by(|a, b| (a.signed_in_ms, &a.handle).cmp(&(b.signed_in_ms, &b.handle)));
            Ok(listed)
        })
    }

    fn revoke<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let deadline = self.redis.deadline();
            let index = self.redis.index_key(user);
            let members = self.members(&index, deadline).await?;
            let named = members.iter().find(|m| StoreKey::from_hex(m).is_some_and(|k| SessionHandle::of(k) == *handle));
            let Some(member) = named else { return Ok(false) };
            Ok(self.revoke_marked(user, &index, Mark::One(member), deadline).await? > 0)
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
                    let members = self.members(&index, deadline).await?;
                    let kept = members.into_iter().find(|m| StoreKey::from_hex(m).is_some_and(|k| keep.spares(k)));
                    kept.unwrap_or_default()
                }
            };
            self.revoke_marked(user, &index, Mark::AllBut(&kept), deadline).await
        })
    }
}
