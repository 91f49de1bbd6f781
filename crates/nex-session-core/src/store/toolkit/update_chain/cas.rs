//! What a store gives the update chains ([`CasStore`]): a read of one field
//! and one compare-and-set, and the types they exchange.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{BoxFuture, Presence};

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
    ///
    /// The deadline is the earliest of the batch's members' deadlines, and most
    /// members wait without a timer of their own (see "Waiting without a timer" in
    /// the module docs). Bound the whole call, connection wait included, for example
    /// with `tokio::time::timeout_at(deadline, …)`: the committer gives up on a call
    /// 50 ms past the deadline and reports the outcome as unknown.
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
