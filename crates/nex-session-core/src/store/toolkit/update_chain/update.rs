//! One `update` from its start to its outcome: join a chain or start one (the
//! slow path), start the committer if none runs, wait for the batch.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::cas::{CasAnswer, CasStore};
use super::chains::{ChainStart, Join, Member, Terms, Updates, ATTEMPTS};
use super::committer::start_committing;
use super::outcome::{BatchState, Failure, Outcome, OutcomeReceiver};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{BoxFuture, Presence, Snapshot, UpdateAction, UpdateFn, WriteOutcome};

/// Atomically updates one field (see the module docs); the outcome means what
/// [`SessionStore::update`](crate::store::SessionStore::update)'s does. Reads the
/// field from the store when no chain is on it; [`update_known`] can start from
/// a copy this process holds instead.
pub async fn update<S: CasStore>(
    store: &S,
    updates: &Arc<Updates>,
    key: StoreKey,
    field: &str,
    f: UpdateFn<'_>,
    expires_at_ms: i64,
    presence: Presence,
) -> Result<WriteOutcome, StoreError> {
    update_known(store, updates, FieldUpdate { key, field, expires_at_ms, presence }, f, || None).await
}

/// The session and field of one update, and what it asks of the session.
#[derive(Debug, Clone, Copy)]
pub struct FieldUpdate<'a> {
    /// The session.
    pub key: StoreKey,
    /// The field updated.
    pub field: &'a str,
    /// The session's expiry after the write.
    pub expires_at_ms: i64,
    /// What the write requires of the session's existence.
    pub presence: Presence,
}

/// As [`update`], starting from what `known` gives: the session's fields as this
/// process holds them (a client cache's copy, which may be stale), asked for only
/// when no chain is on the field (an update that joins a chain never pays for the
/// lookup). Then the first attempt decides on the copy and starts the chain with it,
/// instead of reading the field from the store first: one round trip fewer for
/// an update of a session the request already loaded. The compare-and-set checks
/// the value as always, so a stale copy costs one failed batch, after which the
/// update reads the store as [`update`] does. A decision to keep the value (no
/// write to check it) and a session that must be new always read the store.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use nex_session::store::toolkit::update_chain::{update_known, CasStore, FieldUpdate, Updates};
/// # use nex_session::store::{Presence, Snapshot, UpdateAction, WriteOutcome};
/// # use nex_session::{StoreError, StoreKey};
/// # async fn example(store: &impl CasStore, updates: &Arc<Updates>, key: StoreKey, cached: Option<Snapshot>) -> Result<WriteOutcome, StoreError> {
/// let mut add_one = |n: Option<&[u8]>| UpdateAction::Set(vec![n.map_or(0, |n| n[0]) + 1]);
/// let target = FieldUpdate { key, field: "n", expires_at_ms: i64::MAX, presence: Presence::Existing };
/// update_known(store, updates, target, &mut add_one, || cached).await
/// # }
/// ```
pub async fn update_known<S: CasStore>(
    store: &S,
    updates: &Arc<Updates>,
    target: FieldUpdate<'_>,
    f: UpdateFn<'_>,
    known: impl FnOnce() -> Option<Snapshot>,
) -> Result<WriteOutcome, StoreError> {
    let mut known = Some(known);
    let FieldUpdate { key, field, expires_at_ms, presence } = target;
    let timeout = store.timeout();
    let deadline = Instant::now() + timeout;
    let terms = Terms { expires_at_ms, presence, deadline };
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        attempts += 1;
        if Instant::now() >= deadline {
            // Out of time before this attempt wrote anything (earlier ones conflicted).
            return Err(StoreError::Timeout(timeout));
        }
        let joined = updates.lock(key).join(key, field, &mut *f, terms);
        let member = match joined {
            Join::Decided(outcome) => return Ok(outcome),
            Join::Joined(member) => member,
            Join::NoChain => {
                // Only on the first attempt: after a conflict, the copy may be what was wrong.
                let known = if attempts == 1 { known.take().and_then(|known| known()) } else { None };
                let started = match known.and_then(|fields| start_known(updates, target, &mut *f, &fields, deadline)) {
                    Some(started) => started,
                    None => start_chain(store, updates, key, field, &mut *f, terms).await?,
                };
                match started {
                    Started::Member(member) => member,
                    Started::Decided(outcome) => return Ok(outcome),
                    // Another update started a chain meanwhile: join it (not counted as an attempt).
                    Started::ChainExists => {
                        attempts -= 1;
                        continue;
                    }
                }
            }
        };
        if member.start_committer {
            start_committing(store, updates, key);
        }
        match wait_for(updates, key, member, deadline, timeout).await {
            Outcome::Answer(CasAnswer::Done) => return Ok(WriteOutcome::Done),
            Outcome::Answer(CasAnswer::PresenceFailed) => return Ok(WriteOutcome::PresenceFailed),
            // Changed by another instance, or built on a batch that failed, or not
            // sent in time (the loop's start tells whether this update has time left):
            // decide again.
            Outcome::Answer(CasAnswer::Conflict) | Outcome::Expired => tokio::task::yield_now().await,
            Outcome::Failed(failure) => return Err(failure.to_error()),
        }
    }
    Err(StoreError::Unavailable(format!("update of one field lost {ATTEMPTS} compare-and-set races").into()))
}

/// How starting a chain went.
pub(super) enum Started {
    Member(Member),
    /// Decided on what the store holds right now, without a write.
    Decided(WriteOutcome),
    ChainExists,
}

/// The slow path: read the field, decide, and start a chain whose first batch
/// holds the decision. Boxed, so the per-request fast path stays small.
fn start_chain<'a, S: CasStore>(
    store: &'a S,
    updates: &'a Updates,
    key: StoreKey,
    field: &'a str,
    f: UpdateFn<'a>,
    terms: Terms,
) -> BoxFuture<'a, Result<Started, StoreError>> {
    let Terms { presence, deadline, .. } = terms;
    Box::pin(async move {
        let Ok(_one_reader) = tokio::time::timeout_at(deadline, updates.slow.of(key).lock()).await else {
            return Err(StoreError::Timeout(store.timeout()));
        };
        if updates.lock(key).has_chain(key, field) {
            return Ok(Started::ChainExists);
        }
        let (exists, current) = store.read_field(key, field, deadline).await?;
        if !presence.holds(exists) {
            return Ok(Started::Decided(WriteOutcome::PresenceFailed));
        }
        let action = f(current.as_deref());
        if action == UpdateAction::Keep {
            return Ok(Started::Decided(WriteOutcome::Done));
        }
        let mut shard = updates.lock(key);
        let start = ChainStart { key, field, current };
        Ok(Started::Member(shard.start(start, action, terms)))
    })
}

/// Starts a chain from `known` (see [`update_known`]), under the shard lock, so
/// no await lies between finding no chain and starting one. `None`: read the
/// store instead (the session must be new, or the decision is a keep, which no
/// compare-and-set would check).
pub(super) fn start_known(
    updates: &Updates,
    target: FieldUpdate<'_>,
    f: UpdateFn<'_>,
    known: &Snapshot,
    deadline: Instant,
) -> Option<Started> {
    let FieldUpdate { key, field, expires_at_ms, presence } = target;
    // A cached session exists, as far as this process knows.
    if !presence.holds(true) {
        return None;
    }
    let mut shard = updates.lock(key);
    if shard.has_chain(key, field) {
        return Some(Started::ChainExists);
    }
    let current = known.get(field);
    let action = f(current);
    if action == UpdateAction::Keep {
        return None;
    }
    let start = ChainStart { key, field, current: current.map(<[u8]>::to_vec) };
    Some(Started::Member(shard.start(start, action, Terms { expires_at_ms, presence, deadline })))
}

/// Waits for the outcome of a member's batch until `deadline`; then gives up,
/// saying whether the batch may have been sent (see the module docs). A member
/// the committer answers in time needs no timer (see "Waiting without a timer").
async fn wait_for(updates: &Updates, key: StoreKey, member: Member, deadline: Instant, timeout: Duration) -> Outcome {
    let Member { outcome, epoch, answered_in_time, .. } = member;
    let ended = outcome.ended();
    let ended = if answered_in_time { Some(ended.await) } else { tokio::time::timeout_at(deadline, ended).await.ok() };
    ended.unwrap_or_else(|| give_up(updates, key, &outcome, epoch, timeout))
}

/// A member's deadline passed. Under the shard lock (the committer takes batches
/// under it too) the batch is either still open, and then taken off the chain so
/// it is never sent, or it was sent and its outcome is unknown.
#[cold]
#[inline(never)]
pub(super) fn give_up(
    updates: &Updates,
    key: StoreKey,
    outcome: &OutcomeReceiver,
    epoch: u64,
    timeout: Duration,
) -> Outcome {
    let mut shard = updates.lock(key);
    let state = outcome.state();
    match state {
        BatchState::Ended(outcome) => outcome,
        BatchState::Open => {
            // Every update accepted after this one built on it: they decide again.
            shard.break_chain(epoch);
            Outcome::Failed(Failure::timed_out(timeout, false))
        }
        BatchState::Sent => Outcome::Failed(Failure::timed_out(timeout, true)),
    }
}
