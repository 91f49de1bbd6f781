//! Checks of the read cache shared by concurrent reads: one `PRAGMA
//! data_version` (and one file check) answers every cached read that was waiting
//! when it started.
//!
//! A cached session may be served only if no other connection committed to the
//! file since it was read (`cache.rs`), and the check that says so must *start
//! after the read did*: a commit by another process between an older check and
//! this read would otherwise go unseen. Checking once per read costs a system
//! call or three per request (the file `stat`, the shared-memory lock SQLite takes
//! and releases for the read transaction behind the pragma). So checks run in
//! numbered **rounds**, each shared by the reads that asked before it began:
//!
//! - a read that finds no round *open* opens one and becomes its runner; reads
//!   that come while it is open join it;
//! - the runner first yields to the runtime, so that the other requests ready on
//!   its thread reach their loads and join; then it *begins* the round (later
//!   reads open the next one) and runs the check: on its own thread when the
//!   connection is free, else on the connection thread (never blocking an async
//!   thread on a connection busy with a write);
//! - every member gets the round's `data_version` (`None` when the check
//!   failed: the file was deleted, SQLite erred; they then go to the database,
//!   which reports the error). A later round's answer also serves an earlier
//!   round's members (it began later still).
//!
//! A runner dropped before its round ended (its request was cancelled) ends the
//! round with `None`, so its members never wait for a check nobody runs.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// The rounds of one store (shared by its clones).
pub(super) struct Validation {
    rounds: Mutex<Rounds>,
    /// The latest round that ended, and what it found.
    ended: watch::Sender<Ended>,
}

/// Where the rounds are.
#[derive(Debug, Default)]
struct Rounds {
    /// The number of the last round that began (0: none yet).
    begun: u64,
    /// Round `begun + 1` is open: it has a runner, and reads join it.
    open: bool,
}

/// A round that ended.
#[derive(Debug, Clone, Copy, Default)]
struct Ended {
    round: u64,
    /// The connection's `data_version` (`None`: the check failed).
    version: Option<i64>,
}

/// A read's round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wait {
    /// The round that answers this read.
    pub(super) round: u64,
    /// The caller runs that round (it opened it).
    pub(super) run: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Self { rounds: Mutex::new(Rounds::default()), ended: watch::channel(Ended::default()).0 }
    }
}

impl Validation {
    fn rounds(&self) -> MutexGuard<'_, Rounds> {
        // Every change under the lock is a plain assignment: a panic leaves nothing half-made.
        self.rounds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read's round: the open one, or a new one the caller runs.
    pub(super) fn ask(&self) -> Wait {
        let mut rounds = self.rounds();
        let run = !std::mem::replace(&mut rounds.open, true);
        Wait { round: rounds.begun + 1, run }
    }

    /// The runner of `round` starts its check: reads from now on need a later round.
    pub(super) fn begin(&self, round: u64) {
        let mut rounds = self.rounds();
        if round > rounds.begun {
            rounds.begun = round;
            rounds.open = false;
        }
    }

    /// Waits until `round` (or a later one) ended: the `data_version` it read,
    /// `None` when it failed.
    pub(super) async fn wait(&self, round: u64) -> Option<i64> {
        let mut ended = self.ended.subscribe();
        // The sender lives in `self`, which outlives this borrow: it never closes.
        let ended = ended.wait_for(|ended| ended.round >= round).await.ok()?;
        ended.version
    }

    /// Round `round` ended with `version` (call after [`begin`](Self::begin)).
    /// An answer older than the one kept is dropped: the later round's serves all.
    pub(super) fn finish(&self, round: u64, version: Option<i64>) {
        self.ended.send_if_modified(|ended| {
            let newer = round > ended.round;
            if newer {
                *ended = Ended { round, version };
            }
            newer
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_join_the_open_round_and_after_it_began_open_the_next() {
        let v = Validation::default();
        assert_eq!(v.ask(), Wait { round: 1, run: true });
        assert_eq!(v.ask(), Wait { round: 1, run: false }, "open: joined");
        v.begin(1);
        // Round 1 may be reading the version already: later reads need round 2.
        assert_eq!(v.ask(), Wait { round: 2, run: true });
        assert_eq!(v.ask(), Wait { round: 2, run: false });
        v.finish(1, Some(7));
        v.begin(2);
        v.finish(2, Some(8));
        assert_eq!(v.ask(), Wait { round: 3, run: true });
    }

    #[tokio::test]
    async fn readers_get_the_version_of_their_round_or_a_later_one() {
        let v = Validation::default();
        let first = v.ask();
        v.begin(first.round);
        let second = v.ask();
        v.finish(first.round, Some(5));
        assert_eq!(v.wait(first.round).await, Some(5));
        // Round 2 has not ended: its reader must not take round 1's answer.
        let early = tokio::time::timeout(std::time::Duration::from_millis(20), v.wait(second.round)).await;
        assert!(early.is_err(), "answered by a round that began before the read");
        v.begin(second.round);
        v.finish(second.round, None);
        assert_eq!(v.wait(second.round).await, None, "a failed round sends its reads to the database");
    }

    #[tokio::test]
    async fn a_later_rounds_answer_serves_an_earlier_round_and_is_never_replaced_by_it() {
        let v = Validation::default();
        let first = v.ask();
        v.begin(first.round);
        let second = v.ask();
        v.begin(second.round);
        v.finish(second.round, Some(9));
        v.finish(first.round, Some(4));
        assert_eq!(v.wait(first.round).await, Some(9));
        assert_eq!(v.wait(second.round).await, Some(9));
    }
}
