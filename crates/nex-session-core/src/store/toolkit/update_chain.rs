//! `update` by compare-and-set, with many updates of one hot field per store
//! round trip: the group commit of the Redis, SQLite and PostgreSQL stores. The
//! whole algorithm is in this file; each store supplies two operations
//! ([`CasStore`]): read a field, and one compare-and-set (a Lua script in Redis, a
//! transaction in SQLite and PostgreSQL).
//!
//! A compare-and-set (CAS) says "if the field still holds `expected`, write
//! `new`". Sent one after another, each waits a full store round trip (or
//! transaction commit) for the previous one, so a session updated by many
//! concurrent requests (a counter behind 32 connections) manages a few thousand
//! updates a second.
//!
//! **A chain**: per session shard this process remembers the *tip* of one field,
//! the value it will hold once every update this process accepted lands. An
//! update runs its closure on the tip at once and joins the chain's *open batch*.
//! One committer task per shard sends the open batch as a single
//! `CAS(expected = value before the batch, new = tip)`, waits for the answer, and
//! only then sends the next batch; while a batch is in flight, the next one fills
//! up. So 32 concurrent increments cost about one round trip and one CAS
//! instead of 32.
//!
//! **Starting a chain** (the slow path, when this process has no chain on the
//! field): read the field from the store, run the closure, and start a chain whose
//! tip is the decision and whose first open batch holds it, with the value read
//! as the expected one. At most one request per slow-path lock reads at a time
//! (a separate table of 64 locks, held for the read only); whoever waited finds
//! the new chain and joins it instead of reading again.
//!
//! **Ordering** needs no help from the store's client: every CAS of a chain, its
//! first included, is sent by the shard's committer, one at a time, so each is
//! answered before the next one that builds on it is sent.
//!
//! Nothing here can lose an update: the store checks the expected value of every
//! batch. If another instance (or process) wrote in between, the batch fails and
//! every member runs its closure again on a fresh read (the contract allows
//! closures to run more than once); the chain is *broken*: the tip is forgotten,
//! and the open batch (built on the failed one) fails too. Every chain has an
//! *epoch*, so the late failure of an old chain never breaks a newer one. The
//! committer is a task of its own, so a cancelled request never strands the
//! other members. A committer that ends abnormally (its runtime shut down) breaks
//! its chain on the way out, so the shard never stays blocked.
//!
//! **Gathering** (stores whose [`CasStore::gather`] is not zero: PostgreSQL, where
//! each batch waits for a durable commit): under steady contention the members
//! split into two groups, one in the batch in flight and one filling the next,
//! so each commit serves about half of them. When a chain's last batch had
//! at least `GATHER_FROM` (4) members and ended less than the gather time ago, its committer
//! holds the next batch back until it has as many members as that one, or the
//! gather time passed (tokio's timers round it up to the next millisecond): the
//! members just answered come back and join, and one commit serves them all.
//! Quiet sessions never wait: a batch after a small or old one goes at once.
//!
//! **One deadline per update**, the store's timeout after the call starts, bounds
//! everything it waits for: the slow-path lock, the read, and its batch (which may
//! wait for the batch before it). A batch is *open* (not sent; members may still
//! join) until the committer takes it, then *sent*. A member whose deadline
//! passes while its batch is still open breaks the chain under the shard lock, so
//! the batch can never be sent: the update certainly did not apply
//! ([`StoreError::Timeout`]), and the other members decide again. A member whose
//! batch was sent and not answered in time cannot know whether it applied
//! ([`StoreError::OutcomeUnknown`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::shards::Shards;
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{BoxFuture, Presence, UpdateAction, UpdateFn, WriteOutcome};

/// Whether a session is live, and what one of its fields holds (`None`: absent,
/// or the session is not live).
pub type FieldNow = (bool, Option<Vec<u8>>);

/// What a store gives the chains: a read of one field and one compare-and-set.
/// Cloned into each shard's committer task.
pub trait CasStore: Clone + Send + Sync + 'static {
    /// Bound on one `update`, from its start; also on each compare-and-set.
    fn timeout(&self) -> Duration;

    /// Whether the session under `key` is live, and what `field` holds in it
    /// (`None`: absent, or the session is not live), answered by `deadline`.
    fn read_field<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<FieldNow, StoreError>>;

    /// Runs one compare-and-set atomically, answered by `deadline`. An error must
    /// say whether the write may have applied ([`StoreError::OutcomeUnknown`]).
    fn compare_and_set<'a>(
        &'a self,
        cas: &'a Cas<'a>,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<CasAnswer, StoreError>>;

    /// How long a committer may hold a batch back to gather the members of the
    /// batch just answered (see "Gathering" in the module docs); zero: never.
    /// Worth it only where each compare-and-set costs far more than that wait
    /// (a durable commit).
    fn gather(&self) -> Duration {
        Duration::ZERO
    }
}

/// One compare-and-set of one field: if the session meets `presence` and
/// `field` holds `expected`, do `op` and set the session's expiry.
#[derive(Debug)]
pub struct Cas<'a> {
    /// The session.
    pub key: StoreKey,
    /// The field the batch updates.
    pub field: &'a str,
    /// What the write requires of the session's existence.
    pub presence: Presence,
    /// The session's expiry after a write (unchanged by a `Check`).
    pub expires_at_ms: i64,
    /// What the field must hold (`None`: absent).
    pub expected: Option<&'a [u8]>,
    /// What the batch does once the check passes.
    pub op: CasOp,
    /// The value a `Put` writes.
    pub new: Option<&'a [u8]>,
}

/// What a compare-and-set does once the check passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOp {
    /// Write the new value.
    Put,
    /// Delete the field.
    Delete,
    /// Only check (a batch of `Keep`s): no write, the expiry stays.
    Check,
}

/// What a compare-and-set answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasAnswer {
    /// The check passed and the write (if any) applied.
    Done,
    /// The field was not as expected: decide again on a fresh read.
    Conflict,
    /// The session is missing, or exists when it must be new.
    PresenceFailed,
}

/// Chain shards per store. One shard holds one chain at a time: more shards make
/// it rarer that two busy sessions take turns (each turn costs the loser one read).
const SHARDS: usize = 256;
/// Slow-path locks per store (a table of their own).
const SLOW_SHARDS: usize = 64;
/// Attempts of one update before reporting contention.
const ATTEMPTS: usize = 64;
/// The smallest batch whose members a committer waits for (see "Gathering").
const GATHER_FROM: usize = 4;

/// The update machinery of one store.
pub struct Updates {
    /// One slow-path reader at a time per lock.
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
    /// The committer waits until the open batch has this many members.
    awaited: Option<usize>,
    /// Where that committer waits (see "Gathering"); a new one per wait, so no
    /// wake-up meant for an earlier wait is left over.
    gathered: Arc<tokio::sync::Notify>,
}

/// What this process knows about one field it updates often.
struct Chain {
    key: StoreKey,
    field: String,
    /// What the field holds once every accepted update lands (`None`: absent).
    tip: Option<Vec<u8>>,
    epoch: u64,
    /// What the next batch requires of the session: the presence of the update
    /// that started the chain for its first batch, `Existing` after that.
    next_presence: Presence,
    /// Updates accepted and not yet sent: they go as one CAS.
    open: Option<Batch>,
    /// The size of the chain's last answered batch, and when it was answered.
    last: Option<(usize, std::time::Instant)>,
}

/// The members of one future CAS.
struct Batch {
    /// What the field holds before the batch (what the store must hold for it to apply).
    expected: Option<Vec<u8>>,
    presence: Presence,
    /// Some member set or deleted (else the batch only checks the value).
    writes: bool,
    /// The latest expiry any member asked for.
    expires_at_ms: i64,
    /// Where the members learn that it was sent, and wait for its outcome.
    done: watch::Sender<BatchState>,
}

/// Where a batch is, as its members see it.
#[derive(Clone, Debug)]
enum BatchState {
    /// Not sent: taking it off the chain still stops it.
    Open,
    /// Taken by the committer: it may reach the store any moment.
    Sent,
    Ended(Outcome),
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
    /// No answer: the error, in a form every member can have a copy of.
    Failed(Failure),
}

/// A failed batch's error (a [`StoreError`] cannot be cloned).
#[derive(Clone, Debug)]
struct Failure {
    /// `Some`: no answer within this time; `None`: another error, described by `why`.
    timeout: Option<Duration>,
    why: String,
    may_have_applied: bool,
}

impl Failure {
    fn of(err: &StoreError) -> Self {
        let (inner, may_have_applied) = match err {
            StoreError::OutcomeUnknown(inner) => (&**inner, true),
            other => (other, false),
        };
        let timeout = match inner {
            StoreError::Timeout(after) => Some(*after),
            _ => None,
        };
        Self { timeout, why: inner.to_string(), may_have_applied }
    }

    /// The batch was given up after it was sent (its committer was cancelled).
    fn unconfirmed(why: &str) -> Self {
        Self { timeout: None, why: why.to_owned(), may_have_applied: true }
    }

    fn to_error(&self) -> StoreError {
        let error = match self.timeout {
            Some(after) => StoreError::Timeout(after),
            None => StoreError::Unavailable(self.why.clone().into()),
        };
        if self.may_have_applied {
            StoreError::OutcomeUnknown(Box::new(error))
        } else {
            error
        }
    }
}

/// A member's place in a batch.
struct Member {
    outcome: watch::Receiver<BatchState>,
    /// The chain the batch belongs to.
    epoch: u64,
    /// This member must start the shard's committer.
    start_committer: bool,
}

/// What joining a chain gave.
enum Join {
    /// No chain on this field here: take the slow path.
    NoChain,
    /// Decided without the store.
    Decided(WriteOutcome),
    /// A member of the open batch: wait for its outcome.
    Joined(Member),
}

impl Default for Updates {
    fn default() -> Self {
        Self::new()
    }
}

impl Updates {
    /// The update machinery of one store, with no chain yet.
    pub fn new() -> Self {
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

/// Spawns the committer of `key`'s shard (once per burst of updates; its
/// task-building code is large, so it is kept out of the per-update path).
#[inline(never)]
fn start_committing<S: CasStore>(store: &S, updates: &Arc<Updates>, key: StoreKey) {
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
        if let Some(gathered) = awaited {
            // Woken when the open batch is full enough; else the time decides.
            let _ = tokio::time::timeout(gather, gathered.notified()).await;
            updates.lock(key).awaited = None;
        }
        let Some(sending) = updates.lock(key).next_batch() else {
            running.finished = true;
            return;
        };
        let members = sending.batch.done.receiver_count();
        let Sending { batch, field, new, epoch } = sending;
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
        // The members' own deadlines bound how long they wait; this bounds the committer.
        let outcome = match store.compare_and_set(&cas, Instant::now() + store.timeout()).await {
            Ok(answer) => Outcome::Answer(answer),
            Err(err) => Outcome::Failed(Failure::of(&err)),
        };
        {
            let mut shard = updates.lock(key);
            if let Some(chain) = shard.chain.as_mut().filter(|chain| chain.epoch == epoch) {
                chain.last = Some((members, std::time::Instant::now()));
            }
            if !matches!(outcome, Outcome::Answer(CasAnswer::Done)) {
                // Failed, refused or unanswered: what the field holds is no longer known.
                shard.break_chain(epoch);
            }
        }
        batch.done.send_replace(BatchState::Ended(outcome));
    }
}

/// A running committer. Dropped without finishing (its task cancelled because
/// the runtime shut down, or a panic), it breaks the shard's chain and lets the
/// next update start a new committer, so the shard never stays blocked.
struct Running<'a> {
    updates: &'a Updates,
    key: StoreKey,
    finished: bool,
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
fn give_up(
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

/// What a new chain starts from: the field as just read from the store.
struct ChainStart<'a> {
    key: StoreKey,
    field: &'a str,
    /// The field's value in the store (`None`: absent).
    current: Option<Vec<u8>>,
    /// What the update that starts the chain requires of the session.
    presence: Presence,
}

impl Shard {
    /// Whether this shard's chain is on `(key, field)`.
    fn has_chain(&self, key: StoreKey, field: &str) -> bool {
        self.chain.as_ref().is_some_and(|c| c.key == key && c.field == field)
    }

    /// Joins the chain on `(key, field)` if there is one: runs `f` on the tip in
    /// place (no copy; it never awaits) and accepts the decision.
    fn join(&mut self, key: StoreKey, field: &str, f: UpdateFn<'_>, expires_at_ms: i64, presence: Presence) -> Join {
        let Some(chain) = self.chain.as_mut().filter(|c| c.key == key && c.field == field) else {
            return Join::NoChain;
        };
        if presence == Presence::New {
            // This process is writing the session: it exists, so it cannot be new.
            return Join::Decided(WriteOutcome::PresenceFailed);
        }
        let action = f(chain.tip.as_deref());
        let outcome = chain.accept(action, expires_at_ms);
        let epoch = chain.epoch;
        self.wake_gathering();
        Join::Joined(Member { outcome, epoch, start_committer: self.claim_committer() })
    }

    /// Starts a new chain from a value just read from the store, with `action`
    /// (decided on it) as the first member of its first batch.
    fn start(&mut self, start: ChainStart<'_>, action: UpdateAction, expires_at_ms: i64) -> Member {
        self.break_current();
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let ChainStart { key, field, current, presence } = start;
        let chain = self.chain.insert(Chain {
            key,
            field: field.to_owned(),
            tip: current,
            epoch,
            next_presence: presence,
            open: None,
            last: None,
        });
        let outcome = chain.accept(action, expires_at_ms);
        Member { outcome, epoch, start_committer: self.claim_committer() }
    }

    /// The open batch's members: every one holds a receiver until it is answered.
    fn open_members(&self) -> usize {
        self.chain.as_ref().and_then(|c| c.open.as_ref()).map_or(0, |open| open.done.receiver_count())
    }

    /// Whether the committer should wait before taking the open batch, and where
    /// (see "Gathering"): the chain's last batch was big and recent, and the open
    /// one, not empty, is smaller.
    fn gather_target(&mut self, gather: Duration) -> Option<Arc<tokio::sync::Notify>> {
        let (size, ended) = self.chain.as_ref()?.last?;
        let open = self.open_members();
        if gather.is_zero() || size < GATHER_FROM || ended.elapsed() > gather || open == 0 || open >= size {
            return None;
        }
        self.awaited = Some(size);
        self.gathered = Arc::new(tokio::sync::Notify::new());
        Some(self.gathered.clone())
    }

    /// A member joined: wakes a gathering committer once the open batch is full enough.
    fn wake_gathering(&mut self) {
        if self.awaited.is_some_and(|size| self.open_members() >= size) {
            self.awaited = None;
            self.gathered.notify_one();
        }
    }

    /// Whether the caller must start the committer: none runs yet. Claims it.
    fn claim_committer(&mut self) -> bool {
        !std::mem::replace(&mut self.committing, true)
    }

    /// The committer's next batch, or `None` (and the committer stops) when no
    /// batch is open.
    fn next_batch(&mut self) -> Option<Sending> {
        let sending = self.chain.as_mut().and_then(|chain| {
            let batch = chain.open.take()?;
            // Seen by a member giving up; no need to wake the members for it.
            batch.done.send_if_modified(|state| {
                *state = BatchState::Sent;
                false
            });
            Some(Sending { batch, field: chain.field.clone(), new: chain.tip.clone(), epoch: chain.epoch })
        });
        self.committing = sending.is_some();
        sending
    }

    /// A CAS of chain `epoch` failed or went unanswered: the tip is no longer
    /// known, and the open batch (built on it) cannot apply. Failures of older
    /// chains are ignored.
    fn break_chain(&mut self, epoch: u64) {
        if self.chain.as_ref().is_some_and(|c| c.epoch == epoch) {
            self.break_current();
        }
    }

    /// Forgets the current chain, telling its open batch's members to decide
    /// again on a fresh read.
    fn break_current(&mut self) {
        if let Some(open) = self.chain.take().and_then(|c| c.open) {
            open.done.send_replace(BatchState::Ended(Outcome::Answer(CasAnswer::Conflict)));
        }
    }
}

impl Chain {
    /// Accepts one update decided on the tip: the tip moves to the decision (a
    /// keep leaves it) and the update joins the open batch, which it opens if
    /// there is none. Returns where to learn the batch's outcome.
    fn accept(&mut self, action: UpdateAction, expires_at_ms: i64) -> watch::Receiver<BatchState> {
        let (before, writes) = match action {
            // No copy of the value: the old tip moves into `before`, the new bytes into the tip.
            UpdateAction::Set(bytes) => (Some(self.tip.replace(bytes)), true),
            UpdateAction::Delete => (Some(self.tip.take()), true),
            UpdateAction::Keep => (None, false),
        };
        let batch = match &mut self.open {
            Some(open) => open,
            empty => empty.insert(Batch {
                // A keep leaves the tip as it was: that is the value the batch expects.
                expected: before.unwrap_or_else(|| self.tip.clone()),
                presence: std::mem::replace(&mut self.next_presence, Presence::Existing),
                writes: false,
                expires_at_ms,
                done: watch::channel(BatchState::Open).0,
            }),
        };
        batch.writes |= writes;
        batch.expires_at_ms = batch.expires_at_ms.max(expires_at_ms);
        batch.done.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(member: &Member) -> Option<Outcome> {
        match &*member.outcome.borrow() {
            BatchState::Ended(outcome) => Some(outcome.clone()),
            BatchState::Open | BatchState::Sent => None,
        }
    }

    fn joined(join: Join) -> Member {
        match join {
            Join::Joined(member) => member,
            _ => panic!("expected a member of the batch"),
        }
    }

    fn join(shard: &mut Shard, key: StoreKey, action: UpdateAction, expires_at_ms: i64) -> Join {
        let mut f = move |_: Option<&[u8]>| action.clone();
        shard.join(key, "n", &mut f, expires_at_ms, Presence::Existing)
    }

    /// Starts a chain on `(key, "n")` as if the store held `current`, with `action` decided on it.
    fn start(shard: &mut Shard, key: StoreKey, current: &[u8], action: UpdateAction) -> Member {
        let start = ChainStart { key, field: "n", current: Some(current.to_vec()), presence: Presence::Existing };
        shard.start(start, action, 10)
    }

    /// The tip of the shard's chain (`None`: the field is absent); panics without a chain.
    fn tip(shard: &Shard) -> Option<&[u8]> {
        shard.chain.as_ref().expect("a chain").tip.as_deref()
    }

    #[test]
    fn a_chain_starts_with_its_first_update_in_the_open_batch_and_others_join_it() {
        let key = StoreKey::from_bytes([1; 32]);
        let mut shard = Shard::default();
        assert!(matches!(join(&mut shard, key, UpdateAction::Keep, 1), Join::NoChain));
        let first = start(&mut shard, key, b"1", UpdateAction::Set(b"2".to_vec()));
        assert!(first.start_committer);
        let second = joined(join(&mut shard, key, UpdateAction::Set(b"3".to_vec()), 20));
        assert!(!second.start_committer, "one committer per shard");
        assert_eq!(tip(&shard), Some(&b"3"[..]));
        let sending = shard.next_batch().unwrap();
        let batch = &sending.batch;
        assert_eq!((batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"1"[..]), Some(&b"3"[..])));
        assert_eq!((batch.expires_at_ms, batch.writes), (20, true));
        assert!(shard.next_batch().is_none(), "the committer stops when nothing is open");
        assert!(!shard.committing);
        sending.batch.done.send_replace(BatchState::Ended(Outcome::Answer(CasAnswer::Done)));
        assert!(matches!(answered(&first), Some(Outcome::Answer(CasAnswer::Done))));
        assert!(matches!(answered(&second), Some(Outcome::Answer(CasAnswer::Done))));
    }

    #[test]
    fn only_a_chains_first_batch_carries_the_presence_that_started_it() {
        let key = StoreKey::from_bytes([6; 32]);
        let mut shard = Shard::default();
        let start = ChainStart { key, field: "n", current: None, presence: Presence::New };
        let _first = shard.start(start, UpdateAction::Set(b"1".to_vec()), 10);
        let sending = shard.next_batch().unwrap();
        assert_eq!((sending.batch.presence, sending.batch.expected.as_deref()), (Presence::New, None));
        let _later = joined(join(&mut shard, key, UpdateAction::Set(b"2".to_vec()), 10));
        let sending = shard.next_batch().unwrap();
        assert_eq!((sending.batch.presence, sending.batch.expected.as_deref()), (Presence::Existing, Some(&b"1"[..])));
    }

    #[test]
    fn keeps_check_the_tip_and_deletes_clear_it() {
        let key = StoreKey::from_bytes([3; 32]);
        let mut shard = Shard::default();
        let _first = start(&mut shard, key, b"7", UpdateAction::Keep);
        let sending = shard.next_batch().unwrap();
        assert!(!sending.batch.writes, "a batch of keeps only checks");
        assert_eq!((sending.batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"7"[..]), Some(&b"7"[..])));
        let _delete = join(&mut shard, key, UpdateAction::Delete, 10);
        assert_eq!(tip(&shard), None, "a delete leaves the field absent");
        let _keep = join(&mut shard, key, UpdateAction::Keep, 10);
        let sending = shard.next_batch().unwrap();
        assert!(sending.batch.writes);
        assert_eq!((sending.batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"7"[..]), None));
    }

    #[test]
    fn a_broken_chain_fails_its_open_batch_and_ignores_late_failures() {
        let key = StoreKey::from_bytes([2; 32]);
        let mut shard = Shard::default();
        let waiting = start(&mut shard, key, b"1", UpdateAction::Set(b"2".to_vec()));
        let old = shard.chain.as_ref().unwrap().epoch;
        shard.break_chain(old);
        assert!(shard.chain.is_none(), "the tip is forgotten");
        assert!(matches!(answered(&waiting), Some(Outcome::Answer(CasAnswer::Conflict))), "members retry");
        let _new = start(&mut shard, key, b"5", UpdateAction::Keep);
        shard.break_chain(old);
        assert_eq!(tip(&shard), Some(&b"5"[..]), "old epoch: ignored");
        let new = shard.chain.as_ref().unwrap().epoch;
        shard.break_chain(new);
        assert!(shard.chain.is_none());
    }

    #[test]
    fn a_new_session_never_joins_a_chain_and_other_fields_take_the_slow_path() {
        let key = StoreKey::from_bytes([4; 32]);
        let mut shard = Shard::default();
        let _first = start(&mut shard, key, b"1", UpdateAction::Keep);
        let mut f = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
        let new = shard.join(key, "n", &mut f, 10, Presence::New);
        assert!(matches!(new, Join::Decided(WriteOutcome::PresenceFailed)));
        let other_field = shard.join(key, "m", &mut f, 10, Presence::Existing);
        assert!(matches!(other_field, Join::NoChain));
        let other_key = shard.join(StoreKey::from_bytes([5; 32]), "n", &mut f, 10, Presence::Existing);
        assert!(matches!(other_key, Join::NoChain));
    }

    #[test]
    fn a_member_out_of_time_stops_its_unsent_batch_and_calls_a_sent_one_unconfirmed() {
        let key = StoreKey::from_bytes([8; 32]);
        let updates = Updates::new();
        let sent = start(&mut updates.lock(key), key, b"1", UpdateAction::Set(b"2".to_vec()));
        let _in_flight = updates.lock(key).next_batch().expect("the first batch");
        let open = joined(join(&mut updates.lock(key), key, UpdateAction::Set(b"3".to_vec()), 10));
        let timeout = Duration::from_secs(1);

        let Outcome::Failed(failure) = give_up(&updates, key, &open.outcome, open.epoch, timeout) else {
            panic!("out of time: a failure")
        };
        assert!(matches!(failure.to_error(), StoreError::Timeout(_)), "never sent: not applied");
        assert!(updates.lock(key).next_batch().is_none(), "and it never will be: the chain is broken");

        let Outcome::Failed(failure) = give_up(&updates, key, &sent.outcome, sent.epoch, timeout) else {
            panic!("out of time: a failure")
        };
        let err = failure.to_error();
        assert!(err.may_have_applied(), "sent and unanswered: outcome unknown, {err}");
        assert!(matches!(err, StoreError::OutcomeUnknown(inner) if matches!(*inner, StoreError::Timeout(_))));
    }

    #[test]
    fn a_committer_that_ends_abnormally_unblocks_its_shard() {
        let key = StoreKey::from_bytes([7; 32]);
        let updates = Updates::new();
        let member = updates.lock(key).start(
            ChainStart { key, field: "n", current: None, presence: Presence::Existing },
            UpdateAction::Set(b"1".to_vec()),
            10,
        );
        assert!(member.start_committer);
        // The committer's task is dropped before it finishes (its runtime shut down).
        drop(Running { updates: &updates, key, finished: false });
        let shard = updates.lock(key);
        assert!(!shard.committing, "the next update can start a committer");
        assert!(shard.chain.is_none(), "the chain is broken");
        assert!(matches!(answered(&member), Some(Outcome::Answer(CasAnswer::Conflict))), "its members retry");
    }

    #[test]
    fn a_committer_gathers_only_after_a_big_recent_batch_and_wakes_when_it_is_matched() {
        let key = StoreKey::from_bytes([9; 32]);
        let mut shard = Shard::default();
        let ms = Duration::from_millis(1);
        let _first = start(&mut shard, key, b"0", UpdateAction::Set(b"1".to_vec()));
        assert!(shard.gather_target(ms).is_none(), "no batch answered yet: the first goes at once");
        shard.chain.as_mut().unwrap().last = Some((2, std::time::Instant::now()));
        assert!(shard.gather_target(ms).is_none(), "after a small batch: at once");
        shard.chain.as_mut().unwrap().last = Some((3 + GATHER_FROM, std::time::Instant::now()));
        assert!(shard.gather_target(Duration::ZERO).is_none(), "stores that do not gather never wait");
        shard.chain.as_mut().unwrap().last =
            Some((3 + GATHER_FROM, std::time::Instant::now() - Duration::from_millis(50)));
        assert!(shard.gather_target(ms).is_none(), "after an old batch: at once");

        let size = GATHER_FROM;
        shard.chain.as_mut().unwrap().last = Some((size, std::time::Instant::now()));
        let gathered = shard.gather_target(ms).expect("a big recent batch and a smaller open one: wait");
        let mut members = vec![];
        for _ in 1..size - 1 {
            members.push(joined(join(&mut shard, key, UpdateAction::Set(b"2".to_vec()), 10)));
        }
        assert_eq!(shard.open_members(), size - 1);
        assert!(shard.awaited.is_some(), "one short: still waiting");
        members.push(joined(join(&mut shard, key, UpdateAction::Set(b"3".to_vec()), 10)));
        assert!(shard.awaited.is_none(), "matched: the committer is woken");
        let woken = gathered.notified();
        tokio::pin!(woken);
        assert!(ready_now(woken), "the wake-up is kept for the committer about to wait");
        assert!(shard.gather_target(ms).is_none(), "the open batch is as big as the last: no wait");
    }

    /// Whether a `Notified` future is ready now (a stored permit).
    fn ready_now(notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::future::Future::poll(notified, &mut cx).is_ready()
    }
}
