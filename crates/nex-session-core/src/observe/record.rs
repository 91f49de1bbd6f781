//! Emitting the metrics of `names.rs` through the `metrics` facade.
//!
//! Cost with no recorder installed: each event asks the facade for its recorder
//! (a thread-local and an atomic load), gets the no-op one and does nothing.
//! Keys are built once: statics for the fixed ones, per layer for the ones that
//! carry the store's kind, so no event allocates. Only failures (store errors)
//! build a key on the spot, out of line.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use metrics::{Key, Label, Level, Metadata};
use pin_project_lite::pin_project;

use super::names::*;
use crate::error::StoreError;

/// What every event is registered with (the facade's filters may look at it).
static META: Metadata<'static> = Metadata::new("nex_session", Level::INFO, Some("nex_session"));

/// A static key: `name`, or `name{label="value"}` (the labels need a static of their own).
macro_rules! key {
    ($key:ident = $name:expr) => {
        static $key: Key = Key::from_static_name($name);
    };
    ($key:ident = $name:expr, $label:expr => $value:expr) => {
        static $key: Key = {
            static LABELS: [Label; 1] = [Label::from_static_parts($label, $value)];
            Key::from_static_parts($name, &LABELS)
        };
    };
}

key!(LOAD_FOUND = LOADS_TOTAL, OUTCOME => FOUND);
key!(LOAD_MISSING = LOADS_TOTAL, OUTCOME => MISSING);
key!(LOAD_EXPIRED = LOADS_TOTAL, OUTCOME => EXPIRED);
key!(CREATED = CREATED_TOTAL);
key!(SAVED = SAVED_TOTAL);
key!(RENEWED = RENEWED_TOTAL);
key!(CLEARED = CLEARED_TOTAL);
key!(REJECTED_FORGED = COOKIES_REJECTED_TOTAL, REASON => FORGED);
key!(REJECTED_MALFORMED = COOKIES_REJECTED_TOTAL, REASON => MALFORMED);
key!(REJECTED_EXPIRED = COOKIES_REJECTED_TOTAL, REASON => EXPIRED);
key!(UNAVAILABLE_SAVE = UNAVAILABLE_RESPONSES_TOTAL, CAUSE => SAVE);
key!(UNAVAILABLE_HANDLER = UNAVAILABLE_RESPONSES_TOTAL, CAUSE => HANDLER);
key!(UPDATE_RETRIES = UPDATE_RETRIES_TOTAL);
key!(UPDATE_BATCH = UPDATE_BATCH_MEMBERS);
key!(UPDATE_BATCH_TIME = UPDATE_BATCH_SECONDS);
key!(CACHE_HIT = CLIENT_CACHE_TOTAL, RESULT => HIT);
key!(CACHE_MISS = CLIENT_CACHE_TOTAL, RESULT => MISS);

#[inline]
fn increment(key: &'static Key, by: u64) {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &META).increment(by));
}

/// What loading a session found ([`OUTCOME`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loaded {
    Found,
    Missing,
    Expired,
}

impl Loaded {
    /// The label value, also used as the `outcome` field of the log event.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Found => FOUND,
            Self::Missing => MISSING,
            Self::Expired => EXPIRED,
        }
    }
}

/// Why a session cookie was rejected ([`REASON`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Forged,
    Malformed,
    Expired,
}

impl Rejected {
    /// The label value, also used as the `reason` field of the log event.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Forged => FORGED,
            Self::Malformed => MALFORMED,
            Self::Expired => EXPIRED,
        }
    }
}

/// Why a 503 was answered ([`CAUSE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Save,
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Handler,
}

/// A request's session load ([`LOADS_TOTAL`]).
#[inline]
pub(crate) fn session_loaded(outcome: Loaded) {
    let key = match outcome {
        Loaded::Found => &LOAD_FOUND,
        Loaded::Missing => &LOAD_MISSING,
        Loaded::Expired => &LOAD_EXPIRED,
    };
    increment(key, 1);
}

/// A new session was written ([`CREATED_TOTAL`]).
pub(crate) fn session_created() {
    increment(&CREATED, 1);
}

/// A request wrote its session ([`SAVED_TOTAL`]).
#[inline]
pub(crate) fn session_saved() {
    increment(&SAVED, 1);
}

/// A session moved to a new id ([`RENEWED_TOTAL`]).
pub(crate) fn session_renewed() {
    increment(&RENEWED, 1);
}

/// A stored session was cleared ([`CLEARED_TOTAL`]).
pub(crate) fn session_cleared() {
    increment(&CLEARED, 1);
}

/// A session cookie was rejected ([`COOKIES_REJECTED_TOTAL`]).
pub(crate) fn cookie_rejected(reason: Rejected) {
    let key = match reason {
        Rejected::Forged => &REJECTED_FORGED,
        Rejected::Malformed => &REJECTED_MALFORMED,
        Rejected::Expired => &REJECTED_EXPIRED,
    };
    increment(key, 1);
}

/// A 503 was answered ([`UNAVAILABLE_RESPONSES_TOTAL`]).
pub(crate) fn unavailable_response(cause: Cause) {
    let key = match cause {
        Cause::Save => &UNAVAILABLE_SAVE,
        Cause::Handler => &UNAVAILABLE_HANDLER,
    };
    increment(key, 1);
}

/// An `update` closure ran `times` more times than once ([`UPDATE_RETRIES_TOTAL`]).
pub(crate) fn update_retried(times: u64) {
    increment(&UPDATE_RETRIES, times);
}

/// The group commit's compare-and-set for `members` updates was answered (or
/// failed) `took` after it was sent ([`UPDATE_BATCH_MEMBERS`], [`UPDATE_BATCH_SECONDS`]).
pub(crate) fn update_batch(members: usize, took: Duration) {
    // A histogram takes f64; a batch's size fits exactly up to 2^53.
    #[allow(clippy::cast_precision_loss)]
    let members = members as f64;
    metrics::with_recorder(|recorder| {
        recorder.register_histogram(&UPDATE_BATCH, &META).record(members);
        recorder.register_histogram(&UPDATE_BATCH_TIME, &META).record(took.as_secs_f64());
    });
}

/// A store's client-side cache answered a read (`hit`), or did not
/// ([`CLIENT_CACHE_TOTAL`]): for stores with a read cache, such as the Redis store.
///
/// ```
/// // In a store's cached read path:
/// nex_session::observe::client_cache(true);
/// ```
#[inline]
pub fn client_cache(hit: bool) {
    increment(if hit { &CACHE_HIT } else { &CACHE_MISS }, 1);
}

/// The number of sessions a store of kind `store` holds ([`STORE_SESSIONS`]).
pub(crate) fn store_sessions(store: &'static str, sessions: u64) {
    let key = Key::from_parts(STORE_SESSIONS, vec![Label::new(STORE, store)]);
    // Gauges are f64; a session count fits exactly up to 2^53.
    #[allow(clippy::cast_precision_loss)]
    let value = sessions as f64;
    metrics::with_recorder(|recorder| recorder.register_gauge(&key, &META).set(value));
}

/// The store-call instruments of one layer: the latency histogram's keys,
/// labelled with the layer's store kind, made once.
pub(crate) struct Instruments {
    store: &'static str,
    latency: Box<[Key]>,
}

impl Instruments {
    /// Instruments for calls to a store of kind `store` ([`SessionStore::kind`](crate::store::SessionStore::kind)).
    pub(crate) fn new(store: &'static str) -> Self {
        let latency = Operation::ALL
            .iter()
            .map(|op| {
                let labels = [Label::new(STORE, store), Label::new(OPERATION, op.as_str())];
                Key::from_parts(STORE_OPERATION_SECONDS, labels.to_vec())
            })
            .collect();
        Self { store, latency }
    }

    /// The store's kind.
    pub(crate) fn store(&self) -> &'static str {
        self.store
    }

    /// One store call, timed: awaiting it records how long the call took and,
    /// if it failed, the error (a counter and a `warn` event).
    pub(crate) fn call<F>(&self, op: Operation, call: F) -> Timed<'_, F> {
        self.call_since(op, Instant::now(), call)
    }

    /// Like [`Instruments::call`], for a call whose time started at `started`
    /// (a caller that read the clock already, for a first try without a future).
    pub(crate) fn call_since<F>(&self, op: Operation, started: Instant, call: F) -> Timed<'_, F> {
        Timed { call, instruments: self, op, started }
    }

    /// Records a finished store call that took `took`.
    pub(crate) fn record(&self, op: Operation, took: Duration, error: Option<&StoreError>) {
        if let Some(key) = self.latency.get(op.index()) {
            metrics::with_recorder(|recorder| recorder.register_histogram(key, &META).record(took.as_secs_f64()));
        }
        if let Some(err) = error {
            self.failed(op, err);
        }
    }

    #[cold]
    #[inline(never)]
    fn failed(&self, op: Operation, err: &StoreError) {
        let kind = ErrorKind::of(err).as_str();
        let labels = [Label::new(STORE, self.store), Label::new(OPERATION, op.as_str()), Label::new(KIND, kind)];
        let key = Key::from_parts(STORE_ERRORS_TOTAL, labels.to_vec());
        metrics::with_recorder(|recorder| recorder.register_counter(&key, &META).increment(1));
        tracing::warn!(
            target: "nex_session",
            store = self.store,
            operation = op.as_str(),
            kind,
            error = %err,
            "session store call failed"
        );
    }
}

pin_project! {
    /// A store call timed from its creation to its answer (see [`Instruments::call`]).
    /// (Timing only the calls that have to wait would spare the memory store two
    /// clock reads per write, but a thread preempted between sending a command
    /// and first polling for its answer would then lose the samples of the slow
    /// calls, exactly under load.)
    ///
    /// A plain future rather than an `async fn`, so the store's future is not
    /// moved into one more state machine on every call.
    pub(crate) struct Timed<'a, F> {
        #[pin]
        call: F,
        instruments: &'a Instruments,
        op: Operation,
        started: Instant,
    }
}

impl<F, T> Future for Timed<'_, F>
where
    F: Future<Output = Result<T, StoreError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.call.poll(cx));
        this.instruments.record(*this.op, this.started.elapsed(), result.as_ref().err());
        Poll::Ready(result)
    }
}

/// Describes every metric of [`METRICS`] to the installed recorder (units and
/// help texts, e.g. Prometheus' `# HELP` lines). Optional: call it once after
/// installing the recorder.
///
/// ```
/// nex_session::observe::describe_metrics(); // no recorder installed: does nothing
/// ```
pub fn describe_metrics() {
    metrics::with_recorder(|recorder| {
        for metric in METRICS {
            let name = metrics::KeyName::from_const_str(metric.name);
            let help = metrics::SharedString::const_str(metric.help);
            match metric.kind {
                MetricType::Counter => recorder.describe_counter(name, Some(metrics::Unit::Count), help),
                MetricType::Gauge => recorder.describe_gauge(name, Some(metrics::Unit::Count), help),
                MetricType::Histogram => recorder.describe_histogram(name, Some(metrics::Unit::Seconds), help),
            }
        }
    });
}
