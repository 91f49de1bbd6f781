//! One `update` from its start to its outcome: join a chain or start one (the
//! slow path), start the committer if none runs, wait for the batch.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::cas::{CasAnswer, CasStore};
use super::chains::{BatchState, ChainStart, Failure, Join, Member, Outcome, Updates, ATTEMPTS};
use super::committer::start_committing;
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{BoxFuture, Presence, UpdateAction, UpdateFn, WriteOutcome};

/// Atomically updates one field (see the module docs); the outcome means what
/// [`SessionStore::update`](crate::store::SessionStore::update)'s does.
pub async fn update<S: CasStore>(
    store: &S,
    updates: &Arc<Updates>,
    key: StoreKey,
    field: &str,
    f: UpdateFn<'_>,
    expires_at_ms: i64,
    presence: Presence,
) -> Result<WriteOutcome, StoreError> {
    let timeout = store.timeout();
    let deadline = Instant::now() + timeout;
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        attempts += 1;
        if Instant::now() >= deadline {
            // Out of time before this attempt wrote anything (earlier ones conflicted).
            return Err(StoreError::Timeout(timeout));
        }
        let joined = updates.lock(key).join(key, field, &mut *f, expires_at_ms, presence);
        let member = match joined {
            Join::Decided(outcome) => return Ok(outcome),
            Join::Joined(member) => member,
            Join::NoChain => {
                let terms = Terms { expires_at_ms, presence, deadline };
                match start_chain(store, updates, key, field, &mut *f, terms).await? {
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
            // Changed by another instance, or built on a batch that failed: decide again.
            Outcome::Answer(CasAnswer::Conflict) => tokio::task::yield_now().await,
            Outcome::Failed(failure) => return Err(failure.to_error()),
        }
    }
    Err(StoreError::Unavailable(format!("update of one field lost {ATTEMPTS} compare-and-set races").into()))
}

/// How starting a chain went.
enum Started {
    Member(Member),
    /// Decided on what the store holds right now, without a write.
    Decided(WriteOutcome),
    ChainExists,
}

/// What an update asks of the session, and by when it must be done.
#[derive(Clone, Copy)]
struct Terms {
    expires_at_ms: i64,
    presence: Presence,
    deadline: Instant,
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
    let Terms { expires_at_ms, presence, deadline } = terms;
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
        let start = ChainStart { key, field, current, presence };
        Ok(Started::Member(shard.start(start, action, expires_at_ms)))
    })
}

/// Waits for the outcome of a member's batch until `deadline`; then gives up,
/// saying whether the batch may have been sent (see the module docs).
async fn wait_for(updates: &Updates, key: StoreKey, member: Member, deadline: Instant, timeout: Duration) -> Outcome {
    let Member { mut outcome, epoch, .. } = member;
    let ended = match tokio::time::timeout_at(deadline, outcome.wait_for(|s| matches!(s, BatchState::Ended(_)))).await {
        Ok(Ok(state)) => Some(match &*state {
            BatchState::Ended(outcome) => outcome.clone(),
            // `wait_for` returns only once the batch has ended.
            BatchState::Open | BatchState::Sent => batch_without_outcome(),
        }),
        // The batch was dropped without an outcome: only a cancelled committer
        // does that, after it took the batch.
        Ok(Err(_)) => Some(Outcome::Failed(Failure::unconfirmed("the update batch was dropped after it was sent"))),
        Err(_) => None,
    };
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
    outcome: &watch::Receiver<BatchState>,
    epoch: u64,
    timeout: Duration,
) -> Outcome {
    let mut shard = updates.lock(key);
    let state = outcome.borrow().clone();
    match state {
        BatchState::Ended(outcome) => outcome,
        BatchState::Open => {
            // Every update accepted after this one built on it: they decide again.
            shard.break_chain(epoch);
            Outcome::Failed(Failure { timeout: Some(timeout), why: String::new(), may_have_applied: false })
        }
        BatchState::Sent => {
            Outcome::Failed(Failure { timeout: Some(timeout), why: String::new(), may_have_applied: true })
        }
    }
}

/// A batch ended without an outcome, which cannot happen: fail loudly (a debug
/// assertion, an error in the log, an error for the caller), never retry quietly.
#[cold]
#[inline(never)]
fn batch_without_outcome() -> Outcome {
    let what = "nex-session bug: an update batch ended without an outcome";
    debug_assert!(false, "{what}");
    tracing::error!(target: "nex_session::store", "{what}");
    Outcome::Failed(Failure::unconfirmed(what))
}
