//! Observability over real HTTP on 127.0.0.1 and real stores: the metrics move as
//! `nex_session::observe` documents them for every outcome (forged cookies and a
//! Redis outage included), the request span carries its fields and nothing usable
//! as a cookie, and the health check tells a store that answers from one that
//! does not, within its timeout.
//!
//! Each test runs on a current-thread runtime with a *local* metrics recorder
//! (thread-local), so the server, the client and the store's tasks all report to
//! this test's recorder and no other test's. Tracing goes to one global subscriber
//! that each test empties first (see `SharedTracer::installed`); the tests run one
//! at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use nex_session::observe::{self, MetricType, METRICS};
use nex_session::store::users::SessionHandle;
use nex_session::store::{MemoryStore, RedisOptions, RedisStore, SessionStore, SqliteStore};
use nex_session::token::{now_ms, Keyring, SecretKeyBase, Signer};
use nex_session::{SessionConfig, SessionError, SessionId, SessionLayer, StoreError};
use nex_testkit::http::{serve, HttpClient, Reply};
use nex_testkit::{RedisServer, TempDb};

const SECRET: &str = "observe-secret-observe-secret-observe-0";
const TTL_S: i64 = 7 * 86_400;

/// One test of this binary at a time: they share the one global tracing
/// subscriber, emptied by each test as it starts, and counting metrics per test
/// needs no other test's requests in flight.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new(SECRET).unwrap()).with_secure_cookie(false)
}

/// Routes that use the session in each way the metrics tell apart. Each answers
/// the session id after its work (or `-`), so tests can check what the span says.
fn routes() -> Router {
    async fn id() -> String {
        nex_session::id().await.ok().flatten().unwrap_or_else(|| "-".into())
    }
    Router::new()
        .route("/put", post(|| async { nex_session::put("n", 1u64).await.map(|()| "ok") }))
        .route(
            "/get",
            get(|| async {
                let n: Option<u64> = nex_session::get("n").await?;
                Ok::<_, SessionError>(format!("{n:?}"))
            }),
        )
        .route("/update", post(|| async { nex_session::update("n", 0u64, |n| n + 1).await.map(|n| n.to_string()) }))
        .route(
            "/renew",
            post(|| async {
                nex_session::renew().await?;
                Ok::<_, SessionError>(id().await)
            }),
        )
        .route("/clear", post(|| async { nex_session::clear().await.map(|()| "ok") }))
        .route("/id", get(id))
}

async fn serve_on(store: Arc<dyn SessionStore>) -> HttpClient {
    HttpClient::new(serve(routes().layer(SessionLayer::with_shared_store(store, config()))).await)
}

fn cookie_of(reply: &Reply) -> String {
    reply.session_cookie().unwrap_or_else(|| panic!("no session cookie in {reply:?}"))
}

/// A genuine session cookie for `id`, signed `age_s` seconds ago, as the layer
/// signs them (the bare id, max age = TTL).
fn cookie_signed_ago(id: &str, age_s: i64) -> String {
    let ring = Keyring::new(SecretKeyBase::new(SECRET).unwrap(), [], "nex.session");
    ring.sign_at(id.as_bytes(), now_ms() - age_s * 1000, TTL_S)
}

// ---------------------------------------------------------------------------
// A small in-memory recorder: every counter, gauge and histogram by its key.

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

#[derive(Default)]
struct Registry {
    counters: HashMap<Key, Arc<AtomicU64>>,
    gauges: HashMap<Key, Arc<AtomicU64>>,
    histograms: HashMap<Key, Arc<Samples>>,
}

#[derive(Default)]
struct TestRecorder(Mutex<Registry>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.lock().unwrap().counters.entry(key.clone()).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.lock().unwrap().gauges.entry(key.clone()).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.lock().unwrap().histograms.entry(key.clone()).or_default().clone())
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, *v)).collect::<Vec<_>>())
}

impl TestRecorder {
    fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> u64 {
        let registry = self.0.lock().unwrap();
        registry.counters.get(&key(name, labels)).map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// Every counter with a value, as `name{k=v,…}` → value (for failure messages).
    fn counters(&self) -> BTreeMap<String, u64> {
        let registry = self.0.lock().unwrap();
        registry
            .counters
            .iter()
            .map(|(key, value)| {
                let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                (format!("{}{{{}}}", key.name(), labels.join(",")), value.load(Ordering::SeqCst))
            })
            .collect()
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Option<f64> {
        let registry = self.0.lock().unwrap();
        registry.gauges.get(&key(name, labels)).map(|g| f64::from_bits(g.load(Ordering::SeqCst)))
    }

    fn samples(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Vec<f64> {
        let registry = self.0.lock().unwrap();
        registry.histograms.get(&key(name, labels)).map_or_else(Vec::new, |h| h.0.lock().unwrap().clone())
    }

    /// Every key recorded is one of [`METRICS`], of its type, with exactly its
    /// documented label keys, and every label value is one of the few fixed
    /// values of that label (so none can be an id or anything derived from one).
    fn assert_all_documented(&self) {
        let registry = self.0.lock().unwrap();
        let keys = [
            (MetricType::Counter, registry.counters.keys().collect::<Vec<_>>()),
            (MetricType::Gauge, registry.gauges.keys().collect()),
            (MetricType::Histogram, registry.histograms.keys().collect()),
        ];
        for (kind, keys) in keys {
            for key in keys {
                let metric = METRICS
                    .iter()
                    .find(|m| m.name == key.name())
                    .unwrap_or_else(|| panic!("{} is not in observe::METRICS", key.name()));
                assert_eq!(metric.kind, kind, "{}", key.name());
                let label_keys: Vec<&str> = key.labels().map(Label::key).collect();
                assert_eq!(label_keys, metric.labels, "labels of {}", key.name());
                for label in key.labels() {
                    assert!(allowed(label.key()).contains(&label.value()), "{} = {:?}", label.key(), label.value());
                }
            }
        }
    }
}

/// The documented values of each label.
fn allowed(label: &str) -> Vec<&'static str> {
    match label {
        observe::OUTCOME => vec![observe::FOUND, observe::MISSING, observe::EXPIRED],
        observe::REASON => vec![observe::FORGED, observe::MALFORMED, observe::EXPIRED],
        observe::STORE => vec!["memory", "sqlite", "redis"],
        observe::OPERATION => observe::Operation::ALL.iter().map(|op| op.as_str()).collect(),
        observe::KIND => vec!["unavailable", "timeout", "corrupt", "outcome_unknown"],
        observe::CAUSE => vec![observe::SAVE, observe::HANDLER],
        observe::RESULT => vec![observe::HIT, observe::MISS],
        other => panic!("undocumented label {other}"),
    }
}

// ---------------------------------------------------------------------------
// Metrics

#[tokio::test]
async fn counters_move_as_documented_for_each_outcome() {
    let _serial = SERIAL.lock().await;
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let c = serve_on(Arc::new(MemoryStore::new())).await;
    use observe::*;

    // A first write creates and saves a session.
    let first = c.post("/put", None).await;
    let cookie = cookie_of(&first);
    assert_eq!((recorder.counter(CREATED_TOTAL, &[]), recorder.counter(SAVED_TOTAL, &[])), (1, 1));
    // Reading it finds it; a read saves nothing.
    assert_eq!(c.get("/get", Some(&cookie)).await.body, "Some(1)");
    assert_eq!(recorder.counter(LOADS_TOTAL, &[(OUTCOME, FOUND)]), 1);
    assert_eq!(recorder.counter(SAVED_TOTAL, &[]), 1);
    // An update saves; a renew moves it (and saves); the old cookie then names nothing.
    assert_eq!(c.post("/update", Some(&cookie)).await.body, "2");
    let renewed = c.post("/renew", Some(&cookie)).await;
    let new_cookie = cookie_of(&renewed);
    assert_eq!(recorder.counter(RENEWED_TOTAL, &[]), 1);
    assert_eq!(recorder.counter(SAVED_TOTAL, &[]), 3);
    assert_eq!(c.get("/get", Some(&cookie)).await.body, "None");
    assert_eq!(recorder.counter(LOADS_TOTAL, &[(OUTCOME, MISSING)]), 1, "a young cookie whose session is gone");
    // Clearing removes it.
    assert_eq!(c.post("/clear", Some(&new_cookie)).await.status, 200);
    assert_eq!(recorder.counter(CLEARED_TOTAL, &[]), 1);
    // A genuine cookie in the last stretch of its TTL whose session is gone: expired.
    let old = cookie_signed_ago(SessionId::generate().unwrap().as_str(), TTL_S - 60);
    assert_eq!(c.get("/get", Some(&old)).await.body, "None");
    assert_eq!(recorder.counter(LOADS_TOTAL, &[(OUTCOME, EXPIRED)]), 1);
    assert_eq!(recorder.counter(LOADS_TOTAL, &[(OUTCOME, FOUND)]), 1, "no other load was counted");

    // Rejected cookies, by reason. None of them is a load.
    let id = SessionId::generate().unwrap();
    let other_secret =
        Signer::new(&SecretKeyBase::new("another-secret-another-secret-another").unwrap(), "nex.session");
    let other_salt = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "user socket");
    for (cookie, reason) in [
        ("not-a-token".to_owned(), MALFORMED),
        ("SFMyNTY.e30.AAAA".to_owned(), MALFORMED),
        (other_secret.sign(id.as_str().as_bytes()), FORGED),
        (other_salt.sign(id.as_str().as_bytes()), FORGED),
        (cookie_signed_ago(id.as_str(), TTL_S + 60), EXPIRED),
        // Genuine, but holding something that is not a session id.
        (Keyring::new(SecretKeyBase::new(SECRET).unwrap(), [], "nex.session").sign(b"not an id"), MALFORMED),
    ] {
        let before = recorder.counter(COOKIES_REJECTED_TOTAL, &[(REASON, reason)]);
        assert_eq!(c.get("/get", Some(&cookie)).await.body, "None");
        assert_eq!(recorder.counter(COOKIES_REJECTED_TOTAL, &[(REASON, reason)]), before + 1, "{cookie}: {reason}");
    }
    assert_eq!(recorder.counter(COOKIES_REJECTED_TOTAL, &[(REASON, FORGED)]), 2, "{:?}", recorder.counters());
    assert_eq!(recorder.counter(COOKIES_REJECTED_TOTAL, &[(REASON, MALFORMED)]), 3);
    assert_eq!(recorder.counter(COOKIES_REJECTED_TOTAL, &[(REASON, EXPIRED)]), 1);
    // Loads: found 1, missing 1, expired 1, nothing for the rejected cookies.
    let loads: u64 = [FOUND, MISSING, EXPIRED].iter().map(|o| recorder.counter(LOADS_TOTAL, &[(OUTCOME, o)])).sum();
    assert_eq!(loads, 3, "{:?}", recorder.counters());
    // Nothing failed. Every store call was timed; reads of the memory store are
    // answered at once (`load_now`), so they are no store calls.
    assert_eq!(recorder.counter(UNAVAILABLE_RESPONSES_TOTAL, &[(CAUSE, SAVE)]), 0);
    let calls = |op: &'static str| recorder.samples(STORE_OPERATION_SECONDS, &[(STORE, "memory"), (OPERATION, op)]);
    // Two batches: the first put, and the CSRF secret `renew` drops.
    assert_eq!([calls("apply").len(), calls("update").len(), calls("rename").len()], [2, 1, 1]);
    assert_eq!([calls("remove").len(), calls("load").len()], [1, 0]);
    assert_eq!(recorder.counter(UPDATE_RETRIES_TOTAL, &[]), 0, "one process, one store: no lost race");
    recorder.assert_all_documented();
}

#[tokio::test]
async fn the_memory_store_reports_the_sessions_it_holds_after_a_purge() {
    let _serial = SERIAL.lock().await;
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = MemoryStore::new();
    let c = serve_on(Arc::new(store.clone())).await;
    for _ in 0..3 {
        c.post("/put", None).await;
    }
    assert_eq!(recorder.gauge(observe::STORE_SESSIONS, &[(observe::STORE, "memory")]), None, "set by the purge");
    let purged = store.admin().unwrap().purge_expired(now_ms()).await.unwrap();
    assert_eq!(purged, 0);
    assert_eq!(recorder.gauge(observe::STORE_SESSIONS, &[(observe::STORE, "memory")]), Some(3.0));
    // Two more, and one purged past everyone's expiry.
    c.post("/put", None).await;
    c.post("/put", None).await;
    store.admin().unwrap().purge_expired(now_ms() + (TTL_S + 1) * 1000).await.unwrap();
    assert_eq!(recorder.gauge(observe::STORE_SESSIONS, &[(observe::STORE, "memory")]), Some(0.0));
    recorder.assert_all_documented();
}

#[tokio::test]
async fn sqlite_calls_are_timed_and_lost_races_of_update_are_counted() {
    let _serial = SERIAL.lock().await;
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let db = TempDb::new("observe-races");
    // Two app instances on one file: their compare-and-sets race for real.
    let a = serve_on(Arc::new(SqliteStore::open(&db.0).await.unwrap())).await;
    let b = serve_on(Arc::new(SqliteStore::open(&db.0).await.unwrap())).await;
    let cookie = cookie_of(&a.post("/put", None).await);
    const N: usize = 40;
    // Spawned on this (current-thread) runtime, so the requests interleave.
    let mut updates = tokio::task::JoinSet::new();
    for i in 0..N {
        let (c, cookie) = (if i % 2 == 0 { a.clone() } else { b.clone() }, cookie.clone());
        updates.spawn(async move { c.post("/update", Some(&cookie)).await.status });
    }
    let statuses = updates.join_all().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(a.get("/get", Some(&cookie)).await.body, format!("Some({})", N + 1), "no update lost");
    let retries = recorder.counter(observe::UPDATE_RETRIES_TOTAL, &[]);
    assert!(retries > 0, "two instances updating one field lose some races: {:?}", recorder.counters());
    // Every wait on SQLite is in the histogram, labelled with the store and the call.
    let labels = |op: &'static str| [(observe::STORE, "sqlite"), (observe::OPERATION, op)];
    let updates = recorder.samples(observe::STORE_OPERATION_SECONDS, &labels("update"));
    assert_eq!(updates.len(), N, "one sample per update call");
    assert!(updates.iter().all(|s| *s > 0.0 && *s < 5.0), "{updates:?}");
    assert_eq!(recorder.samples(observe::STORE_OPERATION_SECONDS, &labels("apply")).len(), 1);
    assert_eq!(recorder.samples(observe::STORE_OPERATION_SECONDS, &labels("load")).len(), 1);
    // One sample per compare-and-set sent; every update that succeeded was a member of
    // at least one of them (more after a lost race), so the members add up to N or more.
    let batches = recorder.samples(observe::UPDATE_BATCH_MEMBERS, &[]);
    assert!(!batches.is_empty() && batches.iter().all(|m| *m >= 1.0), "{batches:?}");
    assert!(batches.iter().sum::<f64>() >= N as f64, "{batches:?}");
    // And each of them has its time, from send to answer: a commit on a real file.
    let times = recorder.samples(observe::UPDATE_BATCH_SECONDS, &[]);
    assert_eq!(times.len(), batches.len(), "one time per batch");
    assert!(times.iter().all(|s| *s > 0.0 && *s < 5.0), "{times:?}");
    recorder.assert_all_documented();
}

#[tokio::test]
async fn a_redis_outage_counts_store_errors_and_the_503s_it_causes() {
    let _serial = SERIAL.lock().await;
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = RedisServer::start_private();
    let timeout = Duration::from_millis(300);
    // No client cache: every read goes to Redis (the cache has a test of its own below).
    let options = RedisOptions { timeout, client_cache: 0, ..RedisOptions::default() };
    let store = RedisStore::open_with_options(&server.url(), options).await.unwrap();
    let c = serve_on(Arc::new(store)).await;
    let cookie = cookie_of(&c.post("/put", None).await);
    assert_eq!(c.get("/get", Some(&cookie)).await.body, "Some(1)");
    use observe::*;
    let errors = |op: &'static str, kind: &'static str| {
        recorder.counter(STORE_ERRORS_TOTAL, &[(STORE, "redis"), (OPERATION, op), (KIND, kind)])
    };
    assert_eq!(recorder.counters().keys().filter(|k| k.starts_with(STORE_ERRORS_TOTAL)).count(), 0);

    server.freeze();
    // A batched write that cannot be saved: the layer answers 503.
    let failed_save = c.post("/put", Some(&cookie)).await;
    assert_eq!(failed_save.status, 503, "{}", failed_save.body);
    assert_eq!(recorder.counter(UNAVAILABLE_RESPONSES_TOTAL, &[(CAUSE, SAVE)]), 1);
    assert_eq!(errors("apply", "outcome_unknown") + errors("apply", "timeout"), 1, "{:?}", recorder.counters());
    // A read that cannot reach Redis: the handler's `?` answers 503.
    let started = Instant::now();
    let failed_read = c.get("/get", Some(&cookie)).await;
    assert_eq!(failed_read.status, 503, "{}", failed_read.body);
    assert!(started.elapsed() < timeout * 3, "answered within the store's timeout: {:?}", started.elapsed());
    assert_eq!(recorder.counter(UNAVAILABLE_RESPONSES_TOTAL, &[(CAUSE, HANDLER)]), 1);
    // (The client's own response timeout may answer before the store's deadline.)
    assert_eq!(errors("load", "timeout") + errors("load", "unavailable"), 1, "{:?}", recorder.counters());
    // Failed calls are timed too: the write waited for its whole timeout.
    let applies = recorder.samples(STORE_OPERATION_SECONDS, &[(STORE, "redis"), (OPERATION, "apply")]);
    assert_eq!(applies.len(), 2, "{applies:?}");
    assert!(applies.iter().any(|s| *s >= timeout.as_secs_f64() * 0.9), "{applies:?}");
    assert_eq!(recorder.samples(STORE_OPERATION_SECONDS, &[(STORE, "redis"), (OPERATION, "load")]).len(), 2);
    server.thaw();
    // Back: reads work and the error counters stay where they were.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.get("/get", Some(&cookie)).await.status != 200 {
        assert!(Instant::now() < deadline, "did not recover after the thaw");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorder.counter(UNAVAILABLE_RESPONSES_TOTAL, &[(CAUSE, SAVE)]), 1);
    recorder.assert_all_documented();
}

#[tokio::test]
async fn the_redis_client_cache_counts_its_hits_and_misses() {
    let _serial = SERIAL.lock().await;
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = RedisServer::start_private();
    let store = RedisStore::open(&server.url()).await.unwrap();
    assert!(store.client_cache_stats().is_some(), "this test needs the client cache (Redis 6+)");
    let c = serve_on(Arc::new(store.clone())).await;
    let cookie = cookie_of(&c.post("/put", None).await);
    for _ in 0..3 {
        assert_eq!(c.get("/get", Some(&cookie)).await.body, "Some(1)");
    }
    let (hits, misses) = store.client_cache_stats().unwrap();
    assert!(hits >= 1 && misses >= 1, "the first read misses, later ones hit: {hits} / {misses}");
    assert_eq!(recorder.counter(observe::CLIENT_CACHE_TOTAL, &[(observe::RESULT, observe::HIT)]), hits);
    assert_eq!(recorder.counter(observe::CLIENT_CACHE_TOTAL, &[(observe::RESULT, observe::MISS)]), misses);
    recorder.assert_all_documented();
}

#[test]
fn every_metric_is_in_the_docs_tables() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("../../docs/observability.md")).unwrap();
    let crate_docs = std::fs::read_to_string(root.join("../nex-session-core/src/observe/mod.rs")).unwrap();
    for (doc, text) in [("docs/observability.md", &guide), ("nex-session-core/src/observe/mod.rs", &crate_docs)] {
        let rows: Vec<&str> =
            text.lines().filter(|l| l.trim_start_matches("//! ").starts_with("| `nex_session_")).collect();
        assert_eq!(rows.len(), METRICS.len(), "{doc}: one table row per metric");
        for metric in METRICS {
            let row = rows
                .iter()
                .find(|r| r.contains(&format!("`{}`", metric.name)))
                .unwrap_or_else(|| panic!("{doc} has no row for {}", metric.name));
            for label in metric.labels {
                assert!(row.contains(&format!("`{label}`")), "{doc}: {} without its label {label}", metric.name);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Tracing: a small subscriber that keeps every span's and event's fields.

#[derive(Debug, Clone, Default)]
struct Recorded {
    name: String,
    level: String,
    fields: BTreeMap<String, String>,
    /// For events: the fields of the span it happened in.
    span: Option<u64>,
}

#[derive(Default)]
struct Tracer {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, Recorded>>,
    events: Mutex<Vec<Recorded>>,
    stack: Mutex<Vec<u64>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

#[derive(Clone, Default)]
struct SharedTracer(Arc<Tracer>);

impl tracing::Subscriber for SharedTracer {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.0.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut span = Recorded {
            name: attrs.metadata().name().to_owned(),
            level: attrs.metadata().level().to_string(),
            ..Recorded::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.0.spans.lock().unwrap().insert(id, span);
        tracing::span::Id::from_u64(id)
    }
    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        if let Some(span) = self.0.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut recorded = Recorded {
            name: event.metadata().target().to_owned(),
            level: event.metadata().level().to_string(),
            span: self.0.stack.lock().unwrap().last().copied(),
            ..Recorded::default()
        };
        event.record(&mut Fields(&mut recorded.fields));
        self.0.events.lock().unwrap().push(recorded);
    }
    fn enter(&self, id: &tracing::span::Id) {
        self.0.stack.lock().unwrap().push(id.into_u64());
    }
    fn exit(&self, id: &tracing::span::Id) {
        let mut stack = self.0.stack.lock().unwrap();
        if let Some(at) = stack.iter().rposition(|s| *s == id.into_u64()) {
            stack.remove(at);
        }
    }
}

impl SharedTracer {
    /// The binary's one tracing subscriber, emptied for the calling test (which
    /// holds `SERIAL`). It is installed globally, once, rather than per test with
    /// `set_default`: a thread-local subscriber comes and goes with its test while
    /// `tracing` caches each callsite's interest process-wide, so a test's
    /// `session` span could be left switched off by another test's subscriber
    /// ending (seen once on a loaded machine). A global subscriber that is always
    /// interested cannot be raced that way.
    fn installed() -> SharedTracer {
        static GLOBAL: OnceLock<SharedTracer> = OnceLock::new();
        let tracer = GLOBAL.get_or_init(|| {
            let tracer = SharedTracer::default();
            tracing::subscriber::set_global_default(tracer.clone()).expect("the only global subscriber of this binary");
            tracer
        });
        tracer.0.spans.lock().unwrap().clear();
        tracer.0.events.lock().unwrap().clear();
        tracer.0.stack.lock().unwrap().clear();
        tracer.clone()
    }

    /// The `session` spans in the order they were made.
    fn session_spans(&self) -> Vec<Recorded> {
        let spans = self.0.spans.lock().unwrap();
        let mut ids: Vec<_> = spans.iter().filter(|(_, s)| s.name == "session").map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.iter().map(|id| spans[id].clone()).collect()
    }

    fn events(&self) -> Vec<Recorded> {
        self.0.events.lock().unwrap().clone()
    }

    /// Every field value of every span and event.
    fn all_values(&self) -> Vec<String> {
        let spans = self.0.spans.lock().unwrap();
        let events = self.0.events.lock().unwrap();
        spans.values().chain(events.iter()).flat_map(|r| r.fields.values().cloned()).collect()
    }
}

/// The short handle the span shows for the session `id`.
fn short_handle(id: &str) -> String {
    SessionHandle::of(SessionId::parse(id).unwrap().store_key()).as_str()[..8].to_owned()
}

#[tokio::test]
async fn each_request_has_a_session_span_with_its_store_handle_and_outcome() {
    let _serial = SERIAL.lock().await;
    let tracer = SharedTracer::installed();
    let c = serve_on(Arc::new(MemoryStore::new())).await;

    let created = c.post("/put", None).await;
    let cookie = cookie_of(&created);
    let id = c.get("/id", Some(&cookie)).await.body;
    let renewed = c.post("/renew", Some(&cookie)).await;
    let new_id = renewed.body.clone();
    let new_cookie = cookie_of(&renewed);
    c.get("/get", Some(&cookie)).await; // the old id: its session is gone
    c.post("/clear", Some(&new_cookie)).await;
    c.get("/get", None).await;
    c.get("/get", Some("forged-cookie")).await;

    let spans = tracer.session_spans();
    let summary: Vec<(String, Option<String>, Option<String>)> = spans
        .iter()
        .map(|s| (s.level.clone(), s.fields.get("outcome").cloned(), s.fields.get("session").cloned()))
        .collect();
    let (h, new_h) = (Some(short_handle(&id)), Some(short_handle(&new_id)));
    let expected = [
        ("created", h.clone()),
        // `/id` uses the session without loading it.
        ("read", h.clone()),
        // Begun on the old session, ended on the new one: the span says the new.
        ("renewed", new_h.clone()),
        ("ended", h.clone()),
        ("cleared", new_h.clone()),
        ("none", None),
        ("none", None),
    ];
    assert_eq!(summary.len(), expected.len(), "{summary:#?}");
    for ((level, outcome, handle), (want_outcome, want_handle)) in summary.iter().zip(expected) {
        assert_eq!(level, "DEBUG");
        assert_eq!((outcome.as_deref(), handle), (Some(want_outcome), &want_handle), "{summary:#?}");
    }
    assert!(spans.iter().all(|s| s.fields.get("store").map(String::as_str) == Some("memory")));

    // The forged cookie: a DEBUG event with its reason, inside its request's span.
    let events = tracer.events();
    let rejected = events
        .iter()
        .find(|e| e.fields.get("reason").map(String::as_str) == Some("malformed"))
        .unwrap_or_else(|| panic!("no rejection event: {events:#?}"));
    assert_eq!(rejected.level, "DEBUG");
    assert!(rejected.span.is_some(), "the rejection is logged inside the request's span");

    // Nothing logged works as a cookie or names the session by its id.
    let secrets = [&id, &new_id, &cookie, &new_cookie, &SessionId::parse(&id).unwrap().store_key().to_hex()];
    for value in tracer.all_values() {
        for secret in secrets {
            assert!(!value.contains(secret.as_str()), "{value:?} contains a session id, key or cookie");
        }
    }
}

#[tokio::test]
async fn a_failed_save_is_an_error_event_with_the_session_handle_and_a_failed_span() {
    let _serial = SERIAL.lock().await;
    let tracer = SharedTracer::installed();
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let db = TempDb::new("observe-deleted");
    let c = serve_on(Arc::new(SqliteStore::open(&db.0).await.unwrap())).await;
    let cookie = cookie_of(&c.post("/put", None).await);
    let id = c.get("/id", Some(&cookie)).await.body;
    // The database deleted under the app: every call fails.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.0.display()));
    }
    assert_eq!(c.post("/put", Some(&cookie)).await.status, 503);

    let events = tracer.events();
    let failed = events
        .iter()
        .find(|e| e.level == "ERROR" && e.fields.get("message").is_some_and(|m| m.contains("could not be saved")))
        .unwrap_or_else(|| panic!("no error event for the failed save: {events:#?}"));
    assert_eq!(failed.fields.get("session"), Some(&short_handle(&id)));
    let warned = events
        .iter()
        .find(|e| e.level == "WARN" && e.fields.get("operation").map(String::as_str) == Some("apply"))
        .unwrap_or_else(|| panic!("no warning for the failed store call: {events:#?}"));
    assert_eq!(warned.fields.get("store").map(String::as_str), Some("sqlite"));
    assert_eq!(warned.fields.get("kind").map(String::as_str), Some("unavailable"));
    assert_eq!(tracer.session_spans().last().unwrap().fields.get("outcome").map(String::as_str), Some("failed"));
    assert_eq!(
        recorder.counter(
            observe::STORE_ERRORS_TOTAL,
            &[(observe::STORE, "sqlite"), (observe::OPERATION, "apply"), (observe::KIND, "unavailable")]
        ),
        1
    );
    for value in tracer.all_values() {
        assert!(!value.contains(&id) && !value.contains(&cookie), "{value:?}");
    }
}

// ---------------------------------------------------------------------------
// Health

fn layer(store: Arc<dyn SessionStore>) -> SessionLayer {
    SessionLayer::with_shared_store(store, config())
}

#[tokio::test]
async fn health_of_the_memory_and_sqlite_stores() {
    let _serial = SERIAL.lock().await;
    let memory = layer(Arc::new(MemoryStore::new())).health().await;
    assert!(memory.ok && memory.error.is_none(), "{memory}");
    assert_eq!(memory.store, "memory");

    let db = TempDb::new("observe-health");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let sqlite = layer(Arc::new(store.clone()));
    let up = sqlite.health().await;
    assert!(up.ok, "{up}");
    assert_eq!(up.store, "sqlite");
    assert!(up.to_string().starts_with("ok: sqlite store answered in"), "{up}");
    // Asking read and wrote no session.
    assert!(store.admin().unwrap().list(10).await.unwrap().is_empty());
    std::fs::remove_file(&db.0).unwrap();
    let gone = sqlite.health().await;
    assert!(!gone.ok, "{gone}");
    assert!(matches!(gone.error, Some(StoreError::Unavailable(_))), "{gone:?}");
    assert!(gone.to_string().starts_with("unavailable: sqlite store:"), "{gone}");
}

#[tokio::test]
async fn health_of_redis_up_frozen_and_stopped_answers_within_the_timeout() {
    let _serial = SERIAL.lock().await;
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut server = RedisServer::start_private();
    let timeout = Duration::from_millis(400);
    let options = RedisOptions { timeout, ..RedisOptions::default() };
    let store = RedisStore::open_with_options(&server.url(), options).await.unwrap();
    let redis = layer(Arc::new(store));

    let up = redis.health().await;
    assert!(up.ok, "{up}");
    assert_eq!(up.store, "redis");
    assert!(up.latency < timeout, "{up}");

    server.freeze();
    let started = Instant::now();
    let frozen = redis.health().await;
    let took = started.elapsed();
    assert!(!frozen.ok, "{frozen}");
    // The store's deadline, or the client's own response timeout (the same length).
    assert!(frozen.error.is_some(), "{frozen:?}");
    assert!(took >= timeout * 9 / 10 && took < timeout * 2, "answered within the store's timeout: {took:?}");
    server.thaw();

    server.stop();
    let started = Instant::now();
    let stopped = redis.health().await;
    assert!(!stopped.ok, "{stopped}");
    assert!(started.elapsed() < timeout * 2, "{:?}", started.elapsed());

    // Each check is a timed `health` call; the two failures are counted.
    let labels = [(observe::STORE, "redis"), (observe::OPERATION, "health")];
    assert_eq!(recorder.samples(observe::STORE_OPERATION_SECONDS, &labels).len(), 3);
    let failures: u64 = ["timeout", "unavailable"]
        .iter()
        .map(|kind| {
            recorder.counter(
                observe::STORE_ERRORS_TOTAL,
                &[(observe::STORE, "redis"), (observe::OPERATION, "health"), (observe::KIND, kind)],
            )
        })
        .sum();
    assert_eq!(failures, 2, "{:?}", recorder.counters());
    recorder.assert_all_documented();
}
