//! The committer of one shard: a task of its own that sends each open batch as
//! one compare-and-set, one at a time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::cas::{Cas, CasAnswer, CasOp, CasStore};
use super::chains::{Batch, Gathering, Sending, Updates};
use super::outcome::{Failure, Outcome};
use crate::id::StoreKey;
use crate::observe;

/// How long past a batch's deadline the committer still waits for a store that
/// overran it (a [`CasStore`] must answer by the deadline; this only keeps the
/// members that wait without timers from waiting on a store that does not).
/// The stores' own timers fire first, so their errors say what happened.
pub(super) const OVERRUN: Duration = Duration::from_millis(50);

/// Spawns the committer of `key`'s shard (once per burst of updates; its
/// task-building code is large, so it is kept out of the per-update path).
#[inline(never)]
pub(super) fn start_committing<S: CasStore>(store: &S, updates: &Arc<Updates>, key: StoreKey) {
    // Made before the task, so even a task dropped before it first runs (its
    // runtime shutting down) unblocks the shard.
    let running = Running { updates: updates.clone(), key, finished: false };
    tokio::spawn(commit(store.clone(), running));
}

/// The committer of one shard: sends each open batch as one CAS, one at a time,
/// and tells its members the outcome, until no batch is open. A task of its own,
/// so no member's cancellation can strand the others.
async fn commit<S: CasStore>(store: S, mut running: Running) {
    let (updates, key) = (running.updates.clone(), running.key);
    loop {
        let gather = store.gather();
        let awaited = updates.lock(key).gather_target(gather);
        if let Some(Gathering { woken, until }) = awaited {
            // Woken when the open batch is full enough; else the time decides.
            let _ = tokio::time::timeout_at(until, woken.notified()).await;
            updates.lock(key).awaited = None;
        }
        let Some(sending) = updates.lock(key).next_batch() else {
            running.finished = true;
            return;
        };
        let members = sending.batch.done.members();
        let Sending { batch, field, new, epoch } = sending;
        if batch.deadline <= Instant::now() {
            // Too late to be answered in time (this task ran late): never sent.
            expire(&updates, key, epoch, &batch);
            continue;
        }
        let op = match (&new, batch.writes) {
            (_, false) => CasOp::Check,
            (Some(_), true) => CasOp::Put,
            (None, true) => CasOp::Delete,
        };
        let cas = Cas {
            key,
            field: &field,
            presence: batch.presence,
            expires_at_ms: batch.expires_at_ms,
            expected: batch.expected.as_deref(),
            op,
            new: new.as_deref(),
        };
        // Most members wait without a timer of their own: the store answers by the
        // batch's deadline (the `CasStore` contract), the earliest of theirs.
        let sent = Instant::now();
        let answer = tokio::time::timeout_at(batch.deadline + OVERRUN, store.compare_and_set(&cas, batch.deadline));
        let outcome = match answer.await {
            Ok(Ok(answer)) => Outcome::Answer(answer),
            Ok(Err(err)) => Outcome::Failed(Failure::of(&err)),
            // The store overran the deadline: the batch was sent, its outcome is unknown.
            Err(_) => Outcome::Failed(Failure::timed_out(store.timeout(), true)),
        };
        observe::update_batch(members, sent.elapsed());
        {
            let mut shard = updates.lock(key);
            // Nothing in flight: the next batch is taken at once.
            shard.busy_until = None;
            if let Some(chain) = shard.chain.as_mut().filter(|chain| chain.epoch == epoch) {
                chain.last = Some((members, std::time::Instant::now()));
            }
            if !matches!(outcome, Outcome::Answer(CasAnswer::Done)) {
                // Failed, refused or unanswered: what the field holds is no longer known.
                shard.break_chain(epoch);
            }
        }
        batch.done.end(outcome);
    }
}

/// Ends a batch taken after its deadline without sending it: nothing applied. The
/// chain breaks, since its tip counted the batch in.
#[cold]
#[inline(never)]
pub(super) fn expire(updates: &Updates, key: StoreKey, epoch: u64, batch: &Batch) {
    {
        let mut shard = updates.lock(key);
        shard.busy_until = None;
        shard.break_chain(epoch);
    }
    batch.done.end(Outcome::Expired);
}

/// A running committer. Dropped without finishing (its task cancelled because
/// the runtime shut down, or a panic), it breaks the shard's chain and lets the
/// next update start a new committer, so the shard never stays blocked.
pub(super) struct Running {
    pub(super) updates: Arc<Updates>,
    pub(super) key: StoreKey,
    pub(super) finished: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            let mut shard = self.updates.lock(self.key);
            shard.committing = false;
            shard.busy_until = None;
            shard.awaited = None;
            shard.break_current();
        }
    }
}
