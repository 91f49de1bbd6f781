//! `update` by compare-and-set, with many updates of one hot field per store
//! round trip: the group commit of the Redis, SQLite and PostgreSQL stores. The
//! whole algorithm is in this folder; each store supplies two operations
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
//! the new chain and joins it instead of reading again. A store with a client
//! cache skips the read when the cache holds the session ([`update_known`]): the
//! cached value is the expected one, and if it was stale, the batch fails like
//! any other conflict and the update reads the store on its next attempt.
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
//! Quiet sessions never wait: a batch after a small or old one goes at once, and
//! so does one whose deadline would come before the gather time ends.
//!
//! **One deadline per update**, the store's timeout after the call starts, bounds
//! everything it waits for: the slow-path lock, the read, and its batch (which may
//! wait for the batch before it). A batch is *open* (not sent; members may still
//! join) until the committer takes it, then *sent*. When a deadline passes while
//! the batch is still open, the batch is never sent: a member with a timer breaks
//! the chain under the shard lock at its deadline, and the committer never sends a
//! batch it takes after the batch's deadline (see "Waiting without a timer"). The
//! update certainly did not apply
//! ([`StoreError::Timeout`](crate::StoreError::Timeout)), and the other members
//! decide again. A member whose batch was sent and not answered in time cannot know
//! whether it applied ([`StoreError::OutcomeUnknown`](crate::StoreError::OutcomeUnknown)).
//!
//! **Waiting without a timer.** A timer per waiting update costs about 500
//! instructions (tokio registers and removes it), a sixth of what the rest of a
//! batched update costs, so most members wait without one; the committer bounds
//! their wait instead. Each batch carries the earliest deadline of its members; the
//! committer sends it with that deadline (a [`CasStore`] answers by the deadline
//! it is given; the committer stops waiting for one that overruns it by 50 ms, and
//! reports [`StoreError::OutcomeUnknown`](crate::StoreError::OutcomeUnknown)), and
//! a batch it takes only after that deadline (its task ran late) is never sent: its
//! members decide again, or time out if their own time is up. The committer's
//! task is set up so that even its being dropped before it first runs ends its
//! batches.
//! So a member is answered by its deadline if the committer takes its batch by
//! then. The shard keeps the latest time it will (`busy_until`: the deadline of
//! the batch in flight, or the end of a gathering wait, which never runs past the
//! open batch's deadline); a member whose deadline comes before that time (an
//! update on its second attempt, or one that read the store first) waits with its
//! own timer, as above. One consequence: a batch is as patient as its most
//! hurried member, so a member can learn of a timeout a little before its own
//! deadline, when an earlier member's passed while the batch was in flight.

//! The files, in the order an update meets them: `update.rs` (one update
//! from start to outcome), `chains.rs` (the chains and their batches),
//! `outcome.rs` (a batch's state, and how its members wait for its end),
//! `committer.rs` (the task that sends batches), and `cas.rs` (what the store
//! supplies).

mod cas;
mod chains;
mod committer;
mod outcome;
#[cfg(test)]
mod tests;
mod update;

pub use cas::{Cas, CasAnswer, CasOp, CasStore, FieldNow};
pub use chains::Updates;
pub use update::{update, update_known, FieldUpdate};
