//! Every metric name, label key and label value nex-session emits: the one
//! place they are spelled. [`METRICS`] lists them for [`describe_metrics`](super::describe_metrics)
//! and for the docs' table (a test checks that table against this list).

/// Sessions loaded: the first read of a request whose genuine cookie names a
/// session. Label [`OUTCOME`]: [`FOUND`], [`MISSING`], [`EXPIRED`].
pub const LOADS_TOTAL: &str = "nex_session_loads_total";
/// New sessions written to the store.
pub const CREATED_TOTAL: &str = "nex_session_created_total";
/// Requests that wrote their session to the store (batched puts, `update`,
/// `renew`, a sign-in), counted once per request when its response gets its cookies.
pub const SAVED_TOTAL: &str = "nex_session_saved_total";
/// Sessions moved to a new id by `renew`.
pub const RENEWED_TOTAL: &str = "nex_session_renewed_total";
/// Stored sessions removed by `clear` (also a logout through a revoke of the
/// request's own session).
pub const CLEARED_TOTAL: &str = "nex_session_cleared_total";
/// Session cookies a request sent that were not accepted. Label [`REASON`]:
/// [`FORGED`], [`MALFORMED`], [`EXPIRED`].
pub const COOKIES_REJECTED_TOTAL: &str = "nex_session_cookies_rejected_total";
/// Store calls that failed. Labels [`STORE`], [`OPERATION`], [`KIND`].
pub const STORE_ERRORS_TOTAL: &str = "nex_session_store_errors_total";
/// 503 answers because of the session store. Label [`CAUSE`]: [`SAVE`] (the
/// layer could not save the session), [`HANDLER`] (a handler returned a store
/// error through `SessionError`'s `IntoResponse`).
pub const UNAVAILABLE_RESPONSES_TOTAL: &str = "nex_session_unavailable_responses_total";
/// Extra runs of an `update` closure: the store's compare-and-set lost a race
/// (another request or app instance changed the field first) and decided again.
pub const UPDATE_RETRIES_TOTAL: &str = "nex_session_update_retries_total";
/// Updates served by one compare-and-set of the group commit (the `update` of
/// the Redis, SQLite and PostgreSQL stores, and of any store built on
/// `toolkit::update_chain`), one sample per compare-and-set sent: how many
/// concurrent `update`s of one session's field it served. Mostly 1 in a quiet
/// app; near the number of concurrent writers of a hot session.
pub const UPDATE_BATCH_MEMBERS: &str = "nex_session_update_batch_members";
/// Seconds one compare-and-set of the group commit took, from the moment its
/// batch was sent until the store answered (failures included), one sample per
/// batch: the store's own commit latency under contention, which every member
/// of the batch waited for. Each member's whole wait (its batch and the one
/// before it) is in [`STORE_OPERATION_SECONDS`] instead.
pub const UPDATE_BATCH_SECONDS: &str = "nex_session_update_batch_seconds";
/// Reads the Redis client-side cache answered, or passed on to Redis. Label
/// [`RESULT`]: [`HIT`], [`MISS`].
pub const CLIENT_CACHE_TOTAL: &str = "nex_session_client_cache_total";
/// How long store calls took, in seconds, successes and failures alike. Labels
/// [`STORE`], [`OPERATION`].
pub const STORE_OPERATION_SECONDS: &str = "nex_session_store_operation_seconds";
/// Sessions a store holds, where it can tell cheaply: the memory store, set
/// after each background purge. Label [`STORE`].
pub const STORE_SESSIONS: &str = "nex_session_store_sessions";

/// Label key: what a load found.
pub const OUTCOME: &str = "outcome";
/// Label key: why a cookie was rejected.
pub const REASON: &str = "reason";
/// Label key: the store's kind ([`SessionStore::kind`](crate::store::SessionStore::kind):
/// `memory`, `sqlite`, `redis`, `postgres`, or what a custom store names itself).
pub const STORE: &str = "store";
/// Label key: the store call ([`Operation`]).
pub const OPERATION: &str = "operation";
/// Label key: the kind of store error ([`ErrorKind`]).
pub const KIND: &str = "kind";
/// Label key: why a 503 was answered.
pub const CAUSE: &str = "cause";
/// Label key: whether the client-side cache answered.
pub const RESULT: &str = "result";

/// [`OUTCOME`]: the store held the session.
pub const FOUND: &str = "found";
/// [`OUTCOME`]: the store no longer held the session although its cookie was
/// young: it was removed before its time (signed out elsewhere, revoked,
/// evicted, lost); [`NoSession::Revoked`](crate::NoSession::Revoked).
pub const MISSING: &str = "missing";
/// [`OUTCOME`]: the store forgot the session at its expiry
/// ([`NoSession::Expired`](crate::NoSession::Expired)); [`REASON`]: the cookie is
/// genuine but older than its max age, or past the absolute lifetime.
pub const EXPIRED: &str = "expired";
/// [`REASON`]: a well-formed token whose signature matches none of the layer's
/// secrets for the session salt: tampered with, forged, signed with a secret no
/// longer configured, or made with another salt (a cookie of another app or
/// purpose); an HMAC cannot tell these apart, so a wrong salt counts here.
pub const FORGED: &str = "forged";
/// [`REASON`]: not a token at all (wrong shape, bad base64, empty), or a genuine
/// token whose data holds no session id.
pub const MALFORMED: &str = "malformed";
/// [`CAUSE`]: the layer could not save the session at the end of the request.
pub const SAVE: &str = "save";
/// [`CAUSE`]: a handler returned a store error as its response.
pub const HANDLER: &str = "handler";
/// [`RESULT`]: answered from memory.
pub const HIT: &str = "hit";
/// [`RESULT`]: asked Redis.
pub const MISS: &str = "miss";

/// A store call, as the [`OPERATION`] label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `SessionStore::load`: a read the store could not answer at once.
    Load,
    /// `SessionStore::apply`: a request's batched puts and deletes.
    Apply,
    /// `SessionStore::update`: an atomic read-modify-write.
    Update,
    /// `SessionStore::rename`: `renew`.
    Rename,
    /// `SessionStore::remove`: `clear`, a revoke of the request's own session.
    Remove,
    /// `SessionStore::touch`: sliding the expiry of a session only read.
    Touch,
    /// `SessionStore::health`: the readiness check.
    Health,
    /// `SessionAdmin::purge_expired`: the background purge.
    Purge,
    /// `UserIndex::bind`: a sign-in.
    UserBind,
    /// `UserIndex::sessions`: listing a user's sessions.
    UserList,
    /// `UserIndex::revoke`: signing out one of a user's sessions.
    UserRevoke,
    /// `UserIndex::revoke_all`: signing out all (other) sessions of a user.
    UserRevokeAll,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 12] = [
        Self::Load,
        Self::Apply,
        Self::Update,
        Self::Rename,
        Self::Remove,
        Self::Touch,
        Self::Health,
        Self::Purge,
        Self::UserBind,
        Self::UserList,
        Self::UserRevoke,
        Self::UserRevokeAll,
    ];

    /// The label value.
    ///
    /// ```
    /// assert_eq!(nex_session::observe::Operation::UserRevokeAll.as_str(), "user_revoke_all");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Apply => "apply",
            Self::Update => "update",
            Self::Rename => "rename",
            Self::Remove => "remove",
            Self::Touch => "touch",
            Self::Health => "health",
            Self::Purge => "purge",
            Self::UserBind => "user_bind",
            Self::UserList => "user_list",
            Self::UserRevoke => "user_revoke",
            Self::UserRevokeAll => "user_revoke_all",
        }
    }

    /// Its place in [`Operation::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// The kind of a store error, as the [`KIND`] label names it: one per
/// [`StoreError`](crate::StoreError) variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `StoreError::Unavailable`: unreachable or refused; nothing applied.
    Unavailable,
    /// `StoreError::Timeout`: no answer in time; nothing applied.
    Timeout,
    /// `StoreError::Corrupt`: stored bytes the store cannot read.
    Corrupt,
    /// `StoreError::OutcomeUnknown`: a write sent and never confirmed.
    OutcomeUnknown,
}

impl ErrorKind {
    /// The kind of `err`.
    ///
    /// ```
    /// use nex_session::{observe::ErrorKind, StoreError};
    /// let err = StoreError::Timeout(std::time::Duration::from_secs(1));
    /// assert_eq!(ErrorKind::of(&err).as_str(), "timeout");
    /// ```
    pub fn of(err: &crate::StoreError) -> Self {
        use crate::StoreError;
        match err {
            StoreError::Unavailable(_) => Self::Unavailable,
            StoreError::Timeout(_) => Self::Timeout,
            StoreError::Corrupt(_) => Self::Corrupt,
            StoreError::OutcomeUnknown(_) => Self::OutcomeUnknown,
        }
    }

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Corrupt => "corrupt",
            Self::OutcomeUnknown => "outcome_unknown",
        }
    }
}

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of values.
    Histogram,
}

/// One metric nex-session emits: its name, type, labels and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metric {
    /// The name (Prometheus conventions: `_total` counters, `_seconds` durations).
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
    /// Its label keys (each with a few fixed values; never an id or anything
    /// derived from one).
    pub labels: &'static [&'static str],
    /// What it counts or measures.
    pub help: &'static str,
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: MetricType::Counter, labels, help }
}

/// Every metric nex-session emits.
///
/// ```
/// let names: Vec<_> = nex_session::observe::METRICS.iter().map(|m| m.name).collect();
/// assert!(names.contains(&"nex_session_loads_total"));
/// assert!(names.iter().all(|n| n.starts_with("nex_session_")));
/// ```
pub const METRICS: &[Metric] = &[
    counter(
        LOADS_TOTAL,
        &[OUTCOME],
        "Sessions loaded for requests whose cookie named one, by outcome (found, missing, expired)",
    ),
    counter(CREATED_TOTAL, &[], "New sessions written to the store"),
    counter(SAVED_TOTAL, &[], "Requests that wrote their session to the store"),
    counter(RENEWED_TOTAL, &[], "Sessions moved to a new id by renew"),
    counter(CLEARED_TOTAL, &[], "Stored sessions removed by clear"),
    counter(COOKIES_REJECTED_TOTAL, &[REASON], "Session cookies not accepted, by reason (forged, malformed, expired)"),
    counter(
        STORE_ERRORS_TOTAL,
        &[STORE, OPERATION, KIND],
        "Failed session store calls, by store, operation and error kind",
    ),
    counter(
        UNAVAILABLE_RESPONSES_TOTAL,
        &[CAUSE],
        "503 answers because of the session store, by cause (save, handler)",
    ),
    counter(UPDATE_RETRIES_TOTAL, &[], "Extra runs of update closures after a lost compare-and-set race"),
    Metric {
        name: UPDATE_BATCH_MEMBERS,
        kind: MetricType::Histogram,
        labels: &[],
        help: "Updates served by one compare-and-set of the group commit (one sample per batch)",
    },
    Metric {
        name: UPDATE_BATCH_SECONDS,
        kind: MetricType::Histogram,
        labels: &[],
        help: "Seconds from sending one compare-and-set of the group commit to its answer (one sample per batch)",
    },
    counter(
        CLIENT_CACHE_TOTAL,
        &[RESULT],
        "Session reads answered by the Redis client-side cache (hit) or passed to Redis (miss)",
    ),
    Metric {
        name: STORE_OPERATION_SECONDS,
        kind: MetricType::Histogram,
        labels: &[STORE, OPERATION],
        help: "Duration of session store calls in seconds, by store and operation",
    },
    Metric {
        name: STORE_SESSIONS,
        kind: MetricType::Gauge,
        labels: &[STORE],
        help: "Sessions held by the store after its last purge (memory store)",
    },
];
