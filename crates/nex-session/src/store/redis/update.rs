//! `update` on Redis: compare-and-set, with many updates of one hot field per
//! round trip. The whole algorithm is in this file.
//!
//! An `update` is a compare-and-set (CAS) in Redis: "if the field still holds
//! `expected`, write `new`". Sent one after another, each waits a full round
//! trip for the previous one, so a session updated by many concurrent requests
//! (a counter behind 32 connections) manages a few thousand updates a second.
//!
//! **The slow path** (no chain yet): read the field, run the closure, send one
//! CAS and wait for it. One request at a time per shard takes this path (the
//! shard's `slow` lock); once its CAS is done, it starts a *chain* on the field,
//! and whoever waited on the lock joins that chain instead of reading again.
//!
//! **A chain**: per session shard this process remembers the *tip*, the value the
//! field will hold once every update it has accepted lands. The next update runs
//! its closure on the tip at once and joins the chain's *open batch*. One
//! committer task per shard sends the open batch as a single
//! `CAS(expected = value before the batch, new = tip)` and waits for the answer
//! before it sends the next one; while a batch is in flight, the next one fills
//! up. So 32 concurrent increments cost about one round trip and one script run
//! instead of 32.
//!
//! **Ordering** needs no help from the Redis client: a chain starts only after
//! the CAS it builds on was answered, and each chain's batches are sent by one
//! task, one at a time.
//!
//! Nothing here can lose an update: Redis still checks the expected value of
//! every batch. If another instance wrote in between, the batch fails and every
//! member runs its closure again on a fresh read (the contract allows closures
//! to run more than once); the chain is *broken*: the tip is forgotten, and the
//! open batch (built on the failed one) fails too. Every chain has an *epoch*, so
//! the late failure of an old chain never breaks a newer one. The committer is a
//! task of its own, so a cancelled request never strands the other members; they
//! wait at most twice the store's timeout (their batch waits for at most one
//! batch before it), then get an error.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::connect::{Cas, CasAnswer, Redis};
use super::scripts::CasOp;
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::shards::Shards;
use crate::store::{Presence, UpdateAction, UpdateFn, WriteOutcome};

/// Chain shards per store. One shard holds one chain at a time: more shards make
/// it rarer that two busy sessions take turns (each turn costs the loser one read).
const SHARDS: usize = 256;
/// Slow-path locks per store.
const SLOW_SHARDS: usize = 64;
/// Attempts of one update before reporting contention.
const ATTEMPTS: usize = 64;

/// The update machinery of one store.
pub(super) struct Updates {
    /// One slow-path reader per shard at a time.
    slow: Shards<tokio::sync::Mutex<()>>,
    chains: Shards<Mutex<Shard>>,
}

/// The chain state of one shard.
#[derive(Default)]
struct Shard {
    /// The chain this shard holds, if any; a new chain replaces it.
    chain: Option<Chain>,
    /// The epoch the next chain gets.
    next_epoch: u64,
    /// A committer task is running for this shard.
    committing: bool,
}

/// What this process knows about one field it updates often.
struct Chain {
    key: StoreKey,
    field: String,
    /// What the field holds once every accepted update lands (`None`: absent).
    tip: Option<Vec<u8>>,
    epoch: u64,
    /// Updates accepted and not yet sent: they go as one CAS.
    open: Option<Batch>,
}

/// The members of one future CAS.
struct Batch {
    /// What the field holds before the batch (what Redis must hold for it to apply).
    expected: Option<Vec<u8>>,
    /// Some member set or deleted (else the batch only checks the value).
    writes: bool,
    /// The latest expiry any member asked for.
    expires_at_ms: i64,
    redis_key: String,
    /// Where the members wait for the outcome (`None` until it is known).
    done: watch::Sender<Option<Outcome>>,
}

/// A batch taken by the committer, with the value it leaves behind.
struct Sending {
    batch: Batch,
    field: String,
    /// The tip when the batch was taken: every update accepted so far is in it.
    new: Option<Vec<u8>>,
    epoch: u64,
}

/// How a batch ended, as every member of it learns it.
#[derive(Clone, Debug)]
enum Outcome {
    Answer(CasAnswer),
    /// No answer within the timeout.
    Timeout(Duration),
    /// Redis could not be asked.
    Failed(String),
}

/// What joining a chain gave.
enum Join {
    /// No chain on this field here: take the slow path.
    NoChain,
    /// Decided without Redis.
    Decided(WriteOutcome),
    /// A member of the open batch: wait for its outcome.
    Joined { outcome: watch::Receiver<Option<Outcome>>, start_committer: bool },
}

/// How the slow path ended.
enum Alone {
    Done(WriteOutcome),
    /// Another instance changed the field since it was read: decide again.
    Conflict,
    /// Another update started a chain meanwhile: join it (not counted as an attempt).
    ChainStarted,
}

impl Updates {
    pub(super) fn new() -> Self {
        Self {
            slow: Shards::new(SLOW_SHARDS, || tokio::sync::Mutex::new(())),
            chains: Shards::new(SHARDS, || Mutex::new(Shard::default())),
        }
    }

    /// Locks the chain shard of `key`. Never held across an `.await`.
    fn lock(&self, key: StoreKey) -> MutexGuard<'_, Shard> {
        // Every change under the lock is a plain assignment, so a poisoned lock
        // holds nothing half-written.
        self.chains.of(key).lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Atomically updates one field (see the module docs).
pub(super) async fn update(
    redis: &Redis,
    updates: &Arc<Updates>,
    key: StoreKey,
    field: &str,
    f: UpdateFn<'_>,
    expires_at_ms: i64,
    presence: Presence,
) -> Result<WriteOutcome, StoreError> {
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        attempts += 1;
        let joined = updates.lock(key).join(key, field, &mut *f, expires_at_ms, presence, || redis.key(key));
        match joined {
            Join::Decided(outcome) => return Ok(outcome),
            Join::Joined { outcome, start_committer } => {
                if start_committer {
                    start_committing(redis, updates, key);
                }
                match wait_for(outcome, redis.timeout().saturating_mul(2)).await {
                    Outcome::Answer(CasAnswer::Done) => return Ok(WriteOutcome::Done),
                    Outcome::Answer(CasAnswer::PresenceFailed) => return Ok(WriteOutcome::PresenceFailed),
                    Outcome::Answer(CasAnswer::Conflict) => tokio::task::yield_now().await,
                    Outcome::Timeout(after) => return Err(StoreError::Timeout(after)),
                    Outcome::Failed(why) => return Err(StoreError::Unavailable(why.into())),
                }
            }
            Join::NoChain => match alone(redis, updates, key, field, &mut *f, expires_at_ms, presence).await? {
                Alone::Done(outcome) => return Ok(outcome),
                Alone::Conflict => tokio::task::yield_now().await,
                Alone::ChainStarted => attempts -= 1,
            },
        }
    }
    Err(StoreError::Unavailable(format!("update of one field lost {ATTEMPTS} compare-and-set races").into()))
}

/// The slow path: read the field, decide, one CAS; on success, start a chain.
/// Boxed, so the per-request fast path stays small.
fn alone<'a>(
    redis: &'a Redis,
    updates: &'a Updates,
    key: StoreKey,
    field: &'a str,
    f: UpdateFn<'a>,
    expires_at_ms: i64,
    presence: Presence,
) -> crate::store::BoxFuture<'a, Result<Alone, StoreError>> {
    Box::pin(async move {
        let _one_reader = updates.slow.of(key).lock().await;
        if updates.lock(key).has_chain(key, field) {
            return Ok(Alone::ChainStarted);
        }
        let redis_key = redis.key(key);
        let mut conn = redis.conn.clone();
        let (exists, current): (bool, Option<Vec<u8>>) =
            redis.timed(redis::pipe().exists(&redis_key).hget(&redis_key, field).query_async(&mut conn)).await?;
        if !presence.holds(exists) {
            return Ok(Alone::Done(WriteOutcome::PresenceFailed));
        }
        let (op, new) = match f(current.as_deref()) {
            // Decided on what Redis holds right now: nothing to write.
            UpdateAction::Keep => return Ok(Alone::Done(WriteOutcome::Done)),
            UpdateAction::Set(bytes) => (CasOp::Put, Some(bytes)),
            UpdateAction::Delete => (CasOp::Delete, None),
        };
        let cas = Cas {
            key: &redis_key,
            field,
            presence,
            expires_at_ms,
            exists,
            expected: current.as_deref(),
            op,
            new: new.as_deref(),
        };
        Ok(match redis.compare_and_set(&cas).await? {
            CasAnswer::Done => {
                // Redis holds `new` now; later updates build on it without a read.
                updates.lock(key).start(key, field, new);
                Alone::Done(WriteOutcome::Done)
            }
            CasAnswer::PresenceFailed => Alone::Done(WriteOutcome::PresenceFailed),
            CasAnswer::Conflict => Alone::Conflict,
        })
    })
}

/// Spawns the committer of `key`'s shard (once per burst of updates; its
/// task-building code is large, so it is kept out of the per-update path).
#[inline(never)]
fn start_committing(redis: &Redis, updates: &Arc<Updates>, key: StoreKey) {
    tokio::spawn(commit(redis.clone(), updates.clone(), key));
}

/// The committer of one shard: sends each open batch as one CAS, one at a time,
/// and tells its members the outcome, until no batch is open. A task of its own,
/// so no member's cancellation can strand the others.
async fn commit(redis: Redis, updates: Arc<Updates>, key: StoreKey) {
    loop {
        let Some(sending) = updates.lock(key).next_batch() else { return };
        let Sending { batch, field, new, epoch } = sending;
        let op = match (&new, batch.writes) {
            (_, false) => CasOp::Check,
            (Some(_), true) => CasOp::Put,
            (None, true) => CasOp::Delete,
        };
        let cas = Cas {
            key: &batch.redis_key,
            field: &field,
            presence: Presence::Existing,
            expires_at_ms: batch.expires_at_ms,
            exists: true,
            expected: batch.expected.as_deref(),
            op,
            new: new.as_deref(),
        };
        let outcome = match redis.compare_and_set(&cas).await {
            Ok(answer) => Outcome::Answer(answer),
            Err(StoreError::Timeout(after)) => Outcome::Timeout(after),
            Err(err) => Outcome::Failed(err.to_string()),
        };
        if !matches!(outcome, Outcome::Answer(CasAnswer::Done)) {
            // Failed, refused or unanswered: what the field holds is no longer known.
            updates.lock(key).break_chain(epoch);
        }
        batch.done.send_replace(Some(outcome));
    }
}

/// Waits for a batch's outcome, at most `bound`.
async fn wait_for(mut outcome: watch::Receiver<Option<Outcome>>, bound: Duration) -> Outcome {
    match tokio::time::timeout(bound, outcome.wait_for(Option::is_some)).await {
        Ok(Ok(answer)) => match answer.clone() {
            Some(outcome) => outcome,
            // `wait_for` returned, so the value is `Some`.
            None => Outcome::Answer(CasAnswer::Conflict),
        },
        Ok(Err(_)) => Outcome::Failed("the update batch was dropped".into()),
        Err(_) => Outcome::Timeout(bound),
    }
}

impl Shard {
    /// Whether this shard's chain is on `(key, field)`.
    fn has_chain(&self, key: StoreKey, field: &str) -> bool {
        self.chain.as_ref().is_some_and(|c| c.key == key && c.field == field)
    }

    /// Joins the chain on `(key, field)` if there is one: runs `f` on the tip in
    /// place (no copy; it never awaits), moves the tip to the decision, and adds
    /// the update to the open batch. `redis_key` is called only when this update
    /// opens the batch.
    fn join(
        &mut self,
        key: StoreKey,
        field: &str,
        f: UpdateFn<'_>,
        expires_at_ms: i64,
        presence: Presence,
        redis_key: impl FnOnce() -> String,
    ) -> Join {
        let Some(chain) = self.chain.as_mut().filter(|c| c.key == key && c.field == field) else {
            return Join::NoChain;
        };
        if presence == Presence::New {
            // This process wrote the session: it exists, so it cannot be new.
            return Join::Decided(WriteOutcome::PresenceFailed);
        }
        let (before, writes) = match f(chain.tip.as_deref()) {
            // No copy of the value: the old tip moves into `before`, the new bytes into the tip.
            UpdateAction::Set(bytes) => (Some(chain.tip.replace(bytes)), true),
            UpdateAction::Delete => (Some(chain.tip.take()), true),
            UpdateAction::Keep => (None, false),
        };
        let batch = match &mut chain.open {
            Some(open) => open,
            empty => empty.insert(Batch {
                // A keep leaves the tip as it was: that is the value the batch expects.
                expected: before.unwrap_or_else(|| chain.tip.clone()),
                writes: false,
                expires_at_ms,
                redis_key: redis_key(),
                done: watch::channel(None).0,
            }),
        };
        batch.writes |= writes;
        batch.expires_at_ms = batch.expires_at_ms.max(expires_at_ms);
        let outcome = batch.done.subscribe();
        let start_committer = !self.committing;
        self.committing = true;
        Join::Joined { outcome, start_committer }
    }

    /// The committer's next batch, or `None` (and the committer stops) when no
    /// batch is open.
    fn next_batch(&mut self) -> Option<Sending> {
        let sending = self.chain.as_mut().and_then(|chain| {
            let batch = chain.open.take()?;
            Some(Sending { batch, field: chain.field.clone(), new: chain.tip.clone(), epoch: chain.epoch })
        });
        self.committing = sending.is_some();
        sending
    }

    /// Starts a new chain from a value Redis just acknowledged.
    fn start(&mut self, key: StoreKey, field: &str, value: Option<Vec<u8>>) {
        self.fail_open();
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        self.chain = Some(Chain { key, field: field.to_owned(), tip: value, epoch, open: None });
    }

    /// A CAS of chain `epoch` failed or went unanswered: the tip is no longer
    /// known, and the open batch (built on it) cannot apply. Failures of older
    /// chains are ignored.
    fn break_chain(&mut self, epoch: u64) {
        if self.chain.as_ref().is_some_and(|c| c.epoch == epoch) {
            self.fail_open();
            self.chain = None;
        }
    }

    /// Tells the open batch's members to decide again on a fresh read.
    fn fail_open(&mut self) {
        if let Some(open) = self.chain.as_mut().and_then(|c| c.open.take()) {
            open.done.send_replace(Some(Outcome::Answer(CasAnswer::Conflict)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(joined: &Join) -> Option<Outcome> {
        match joined {
            Join::Joined { outcome, .. } => outcome.borrow().clone(),
            _ => panic!("expected a member of the batch"),
        }
    }

    fn join(shard: &mut Shard, key: StoreKey, action: UpdateAction, expires_at_ms: i64) -> Join {
        let mut f = move |_: Option<&[u8]>| action.clone();
        shard.join(key, "n", &mut f, expires_at_ms, Presence::Existing, || "k".into())
    }

    fn tip(shard: &Shard) -> Option<Option<&[u8]>> {
        shard.chain.as_ref().map(|c| c.tip.as_deref())
    }

    #[test]
    fn updates_on_the_tip_collapse_into_one_batch() {
        let key = StoreKey::from_bytes([1; 32]);
        let mut shard = Shard::default();
        assert!(matches!(join(&mut shard, key, UpdateAction::Keep, 1), Join::NoChain));
        shard.start(key, "n", Some(b"1".to_vec()));
        let first = join(&mut shard, key, UpdateAction::Set(b"2".to_vec()), 10);
        assert!(matches!(first, Join::Joined { start_committer: true, .. }));
        let second = join(&mut shard, key, UpdateAction::Set(b"3".to_vec()), 20);
        assert!(matches!(second, Join::Joined { start_committer: false, .. }), "one committer per shard");
        assert_eq!(tip(&shard), Some(Some(&b"3"[..])));
        let sending = shard.next_batch().unwrap();
        assert_eq!((sending.batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"1"[..]), Some(&b"3"[..])));
        assert_eq!(sending.batch.expires_at_ms, 20);
        assert_eq!(sending.batch.redis_key, "k");
        assert!(sending.batch.writes);
        assert!(shard.next_batch().is_none(), "the committer stops when nothing is open");
        assert!(!shard.committing);
        sending.batch.done.send_replace(Some(Outcome::Answer(CasAnswer::Done)));
        assert!(matches!(answered(&first), Some(Outcome::Answer(CasAnswer::Done))));
        assert!(matches!(answered(&second), Some(Outcome::Answer(CasAnswer::Done))));
    }

    #[test]
    fn keeps_check_the_tip_and_deletes_clear_it() {
        let key = StoreKey::from_bytes([3; 32]);
        let mut shard = Shard::default();
        shard.start(key, "n", Some(b"7".to_vec()));
        let _keep = join(&mut shard, key, UpdateAction::Keep, 10);
        let sending = shard.next_batch().unwrap();
        assert!(!sending.batch.writes, "a batch of keeps only checks");
        assert_eq!((sending.batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"7"[..]), Some(&b"7"[..])));
        let _delete = join(&mut shard, key, UpdateAction::Delete, 10);
        assert_eq!(tip(&shard), Some(None));
        let _keep = join(&mut shard, key, UpdateAction::Keep, 10);
        let sending = shard.next_batch().unwrap();
        assert!(sending.batch.writes);
        assert_eq!((sending.batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"7"[..]), None));
    }

    #[test]
    fn a_broken_chain_fails_its_open_batch_and_ignores_late_failures() {
        let key = StoreKey::from_bytes([2; 32]);
        let mut shard = Shard::default();
        shard.start(key, "n", Some(b"1".to_vec()));
        let in_flight = shard.next_batch();
        assert!(in_flight.is_none(), "nothing accepted yet");
        let waiting = join(&mut shard, key, UpdateAction::Set(b"2".to_vec()), 10);
        let old = shard.chain.as_ref().unwrap().epoch;
        shard.break_chain(old);
        assert_eq!(tip(&shard), None);
        assert!(matches!(answered(&waiting), Some(Outcome::Answer(CasAnswer::Conflict))), "members retry");
        shard.start(key, "n", Some(b"5".to_vec()));
        shard.break_chain(old);
        assert_eq!(tip(&shard), Some(Some(&b"5"[..])), "old epoch: ignored");
        let new = shard.chain.as_ref().unwrap().epoch;
        shard.break_chain(new);
        assert_eq!(tip(&shard), None);
    }

    #[test]
    fn a_new_session_never_joins_a_chain_and_other_fields_take_the_slow_path() {
        let key = StoreKey::from_bytes([4; 32]);
        let mut shard = Shard::default();
        shard.start(key, "n", Some(b"1".to_vec()));
        let mut f = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
        let new = shard.join(key, "n", &mut f, 10, Presence::New, || "k".into());
        assert!(matches!(new, Join::Decided(WriteOutcome::PresenceFailed)));
        let other_field = shard.join(key, "m", &mut f, 10, Presence::Existing, || "k".into());
        assert!(matches!(other_field, Join::NoChain));
        let other_key = shard.join(StoreKey::from_bytes([5; 32]), "n", &mut f, 10, Presence::Existing, || "k".into());
        assert!(matches!(other_key, Join::NoChain));
    }
}
