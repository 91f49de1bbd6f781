//! The committer of one shard: a task of its own that sends each open batch as
//! one compare-and-set, one at a time.

use std::sync::Arc;

use tokio::time::Instant;

use super::cas::{Cas, CasAnswer, CasOp, CasStore};
use super::chains::{Batch, Gathering, Sending, Updates};
use super::outcome::{Failure, Outcome};
use crate::id::StoreKey;
use crate::observe;

/// Spawns the committer of `key`'s shard (once per burst of updates; its
/// task-building code is large, so it is kept out of the per-update path).
#[inline(never)]
pub(super) fn start_committing<S: CasStore>(store: &S, updates: &Arc<Updates>, key: StoreKey) {
    tokio::spawn(commit(store.clone(), updates.clone(), key));
}

/// The committer of one shard: sends each open batch as one CAS, one at a time,
/// and tells its members the outcome, until no batch is open. A task of its own,
/// so no member's cancellation can strand the others.
async fn commit<S: CasStore>(store: S, updates: Arc<Updates>, key: StoreKey) {
    let mut running = Running { updates: &updates, key, finished: false };
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
        let outcome = match store.compare_and_set(&cas, batch.deadline).await {
            Ok(answer) => Outcome::Answer(answer),
            Err(err) => Outcome::Failed(Failure::of(&err)),
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
    let mut shard = updates.lock(key);
    shard.busy_until = None;
    shard.break_chain(epoch);
    batch.done.end(Outcome::Expired);
}

/// A running committer. Dropped without finishing (its task cancelled because
/// the runtime shut down, or a panic), it breaks the shard's chain and lets the
/// next update start a new committer, so the shard never stays blocked.
pub(super) struct Running<'a> {
    pub(super) updates: &'a Updates,
    pub(super) key: StoreKey,
    pub(super) finished: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut shard = self.updates.lock(self.key);
            shard.committing = false;
            shard.break_current();
        }
    }
}
