//! The benchmarked app in every variant: same routes, same bodies.
//!
//! | route | what |
//! |---|---|
//! | `POST /login` | creates the session: `user_id = 42`, `counter = 0` |
//! | `GET /read` | reads `user_id` |
//! | `GET`/`POST /write` | increments `counter` (nex-session: atomic `update`; tower-sessions: get then insert, its documented way) |
//! | `POST /put/{k}` | puts key `k` (lost-update check) |
//! | `GET /count` | `"<keys k0..k199 present> <counter>"` (lost-update check) |

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use nex_session::token::SecretKeyBase;
use nex_session::{SessionConfig, SessionError, SessionLayer, SessionService};
use tower_layer::Layer as _;

/// How a variant keeps sessions.
#[derive(Clone)]
pub(crate) enum Kind {
    /// No session layer: the ceiling.
    Bare,
    /// The bare app burning this many ns of CPU per request (a calibration baseline).
    BareSpin(u64),
    /// The bare app under a layer that does nothing: what any layer costs in axum.
    BareLayer,
    /// nex-session over the store at this URL, applied with `Router::layer` (to every route).
    Nex(String),
    /// nex-session over the store at this URL, wrapped around the whole router
    /// (`Layer::layer(&session_layer, router)`): one layer per request instead of one
    /// per route, so axum's per-route boxing of a layered route is not paid.
    NexAround(String),
    /// tower-sessions with its memory store.
    TowerMemory,
    /// tower-sessions with tower-sessions-redis-store at this URL.
    TowerRedis(String),
}

/// A benchmarked variant.
pub(crate) struct Variant {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Run without `--variants` (the extra baselines are asked for by name).
    pub(crate) default: bool,
}

/// The bare app, but load runs send a session cookie of nex-session's exact size: it
/// separates what the cookie's bytes cost (parsing, copying) from what the layer costs.
pub(crate) const BARE_WITH_COOKIE: &str = "bare-cookie";

/// The bare app under a layer that does nothing ([`crate::passthrough`]), sent a
/// session-sized cookie too: the floor of any session layer applied with
/// `Router::layer`, before it does any work of its own.
pub(crate) const BARE_LAYER: &str = "bare-layer";

/// Whether load runs of this variant send [`session_sized_cookie`] (instead of
/// the cookie its own `/login` sets).
pub(crate) fn sends_session_sized_cookie(name: &str) -> bool {
    name == BARE_WITH_COOKIE || name == BARE_LAYER
}

/// `_nex_session=<a genuine Phoenix.Token of a session id>`, as a browser would send it.
pub(crate) fn session_sized_cookie() -> String {
    let secret = SecretKeyBase::new("benchmark-secret-benchmark-secret-benchmark")
        .unwrap_or_else(|_| SecretKeyBase::development());
    let signer = nex_session::token::Signer::new(&secret, nex_session::SESSION_SALT);
    let id = nex_session::SessionId::generate().map(|id| id.as_str().to_owned()).unwrap_or_default();
    format!("{}={}", nex_session::COOKIE_NAME, signer.sign(id.as_bytes()))
}

/// The SQLite store of the `nex-sqlite-exclusive` variant: one process owns the file.
const SQLITE_EXCLUSIVE: &str = "sqlite://target/bench/nex-bench-exclusive.db?locking=exclusive";

/// Every variant (`bare-cookie`, `bare-layer`, `bare-spin`, `nex-postgres` and the
/// `nex-*-around` ones only when asked for). The Redis
/// URL comes from `NEX_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`), the PostgreSQL one
/// from `NEX_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
pub(crate) fn variants() -> Vec<Variant> {
    let spin_ns = std::env::var("NEX_BENCH_SPIN_NS").ok().and_then(|v| v.parse().ok()).unwrap_or(650);
    let redis = std::env::var("NEX_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let postgres = std::env::var("NEX_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    vec![
        Variant { name: "bare", kind: Kind::Bare, default: true },
        Variant { name: BARE_WITH_COOKIE, kind: Kind::Bare, default: false },
        Variant { name: BARE_LAYER, kind: Kind::BareLayer, default: false },
        Variant { name: "bare-spin", kind: Kind::BareSpin(spin_ns), default: false },
        Variant { name: "nex-memory", kind: Kind::Nex("memory".into()), default: true },
        Variant { name: "nex-sqlite", kind: Kind::Nex("sqlite://target/bench/nex-bench.db".into()), default: true },
        Variant { name: "nex-sqlite-exclusive", kind: Kind::Nex(SQLITE_EXCLUSIVE.into()), default: true },
        Variant { name: "nex-redis", kind: Kind::Nex(redis.clone()), default: true },
        // Asked for by name: most benchmark machines run Redis but no PostgreSQL.
        Variant { name: "nex-postgres", kind: Kind::Nex(postgres.clone()), default: false },
        // Asked for by name: the same apps and stores, the layer around the router
        // (`Kind::NexAround`), each SQLite one on a file of its own.
        Variant { name: "nex-memory-around", kind: Kind::NexAround("memory".into()), default: false },
        Variant {
            name: "nex-sqlite-around",
            kind: Kind::NexAround("sqlite://target/bench/nex-bench-around.db".into()),
            default: false,
        },
        Variant {
            name: "nex-sqlite-exclusive-around",
            kind: Kind::NexAround(SQLITE_EXCLUSIVE.replace("exclusive.db", "exclusive-around.db")),
            default: false,
        },
        Variant { name: "nex-redis-around", kind: Kind::NexAround(redis.clone()), default: false },
        Variant { name: "nex-postgres-around", kind: Kind::NexAround(postgres), default: false },
        Variant { name: "ts-memory", kind: Kind::TowerMemory, default: true },
        Variant { name: "ts-redis", kind: Kind::TowerRedis(redis), default: true },
    ]
}

/// A variant's app: a router (the session layer, if any, applied to its routes),
/// or a router inside the session layer.
pub(crate) enum App {
    /// A router, with the session layer (if any) on its routes (`Router::layer`).
    Routed(Router),
    /// A router inside the session layer (`Kind::NexAround`).
    Around(SessionService<Router>),
}

/// The app of a variant (built inside the server's runtime, so stores can
/// connect); `with_state` turns the handlers into services once, as `axum::serve` does.
pub(crate) async fn build(kind: &Kind) -> Result<App, String> {
    Ok(match kind {
        Kind::NexAround(url) => App::Around(nex_layer(url).await?.layer(nex_routes().with_state(()))),
        _ => App::Routed(build_router(kind).await?.with_state(())),
    })
}

/// The session layer over the store at `url`, as every nex variant configures it.
async fn nex_layer(url: &str) -> Result<SessionLayer, String> {
    let url = own_file(url);
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    let shown = nex_session::store::RedactedUrl::new(&url);
    let store = nex_session::store::open(&url).await.map_err(|e| format!("store {shown}: {e}"))?;
    let secret = SecretKeyBase::new("benchmark-secret-benchmark-secret-benchmark")
        .unwrap_or_else(|_| SecretKeyBase::development());
    let config = SessionConfig::new(secret).with_secure_cookie(false);
    Ok(SessionLayer::with_shared_store(store, config))
}

/// The router of a variant whose layer (if any) goes on its routes.
async fn build_router(kind: &Kind) -> Result<Router, String> {
    match kind {
        Kind::Bare => Ok(bare()),
        Kind::BareSpin(ns) => Ok(bare_spinning(*ns)),
        Kind::BareLayer => Ok(bare().layer(crate::passthrough::PassThroughLayer)),
        Kind::Nex(url) => Ok(nex_routes().layer(nex_layer(url).await?)),
        Kind::NexAround(_) => Err("a layer around the router is not a router: use `build`".into()),
        Kind::TowerMemory => {
            let layer = tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                .with_secure(false)
                .with_signed(tower_sessions::cookie::Key::generate());
            Ok(tower_routes().layer(layer))
        }
        Kind::TowerRedis(url) => {
            use tower_sessions_redis_store::fred::prelude::*;
            let shown = nex_session::store::RedactedUrl::new(url);
            let config = Config::from_url(url).map_err(|e| format!("redis {shown}: {e}"))?;
            let pool = Pool::new(config, None, None, None, 6).map_err(|e| format!("redis {shown}: {e}"))?;
            let _connection = pool.connect();
            pool.wait_for_connect().await.map_err(|e| format!("redis {shown}: {e}"))?;
            let store = tower_sessions_redis_store::RedisStore::new(pool);
            let layer = tower_sessions::SessionManagerLayer::new(store)
                .with_secure(false)
                .with_signed(tower_sessions::cookie::Key::generate());
            Ok(tower_routes().layer(layer))
        }
    }
}

/// An exclusive SQLite store holds its file until the process exits, and the
/// harness starts several servers of one variant (throughput, then lost updates
/// on 1 and 2 threads): each gets a fresh file of its own (`…-1.db`, `…-2.db`).
fn own_file(url: &str) -> String {
    static BUILT: AtomicU64 = AtomicU64::new(0);
    let Some((path, query)) = url.strip_prefix("sqlite://").and_then(|rest| rest.split_once('?')) else {
        return url.to_owned();
    };
    if query != "locking=exclusive" {
        return url.to_owned();
    }
    let n = BUILT.fetch_add(1, Ordering::Relaxed) + 1;
    let path = format!("{}-{n}.db", path.strip_suffix(".db").unwrap_or(path));
    for stale in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
        let _ = std::fs::remove_file(stale);
    }
    format!("sqlite://{path}?{query}")
}

fn bare() -> Router {
    // No work before the handlers: `|| {}` compiles to nothing.
    bare_with(|| {})
}

/// The bare routes, each burning `ns` of CPU first: what a layer that costs exactly
/// that much per request would do to the ratio under this load.
fn bare_spinning(ns: u64) -> Router {
    bare_with(move || {
        let until = std::time::Instant::now() + std::time::Duration::from_nanos(ns);
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    })
}

/// The routes without sessions; `work` runs at the start of `/read` and `/write`.
fn bare_with(work: impl Fn() + Copy + Send + Sync + 'static) -> Router {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let write = move || async move {
        work();
        format!("counter {}", COUNTER.fetch_add(1, Ordering::Relaxed) + 1)
    };
    let read = move || async move {
        work();
        format!("user {}", std::hint::black_box(42u64))
    };
    Router::new()
        .route("/login", post(|| async { "ok" }))
        .route("/read", get(read))
        .route("/write", post(write).get(write))
}

fn nex_routes() -> Router {
    async fn login() -> Result<&'static str, SessionError> {
        nex_session::put("user_id", 42u64).await?;
        nex_session::put("counter", 0u64).await?;
        Ok("ok")
    }
    async fn read() -> Result<String, SessionError> {
        let user: Option<u64> = nex_session::get("user_id").await?;
        Ok(format!("user {}", user.unwrap_or(0)))
    }
    async fn write() -> Result<String, SessionError> {
        let n = nex_session::update("counter", 0u64, |n| n + 1).await?;
        Ok(format!("counter {n}"))
    }
    async fn put(Path(key): Path<String>) -> Result<&'static str, SessionError> {
        nex_session::put(&key, 1u64).await?;
        Ok("ok")
    }
    async fn count() -> Result<String, SessionError> {
        let mut keys = 0;
        for i in 0..200 {
            if nex_session::get::<u64>(&format!("k{i}")).await?.is_some() {
                keys += 1;
            }
        }
        Ok(format!("{keys} {}", nex_session::get_or("counter", 0u64).await?))
    }
    Router::new()
        .route("/login", post(login))
        .route("/read", get(read))
        .route("/write", post(write).get(write))
        .route("/put/{k}", post(put))
        .route("/count", get(count))
}

fn tower_routes() -> Router {
    use tower_sessions::Session;
    fn fail<E>(_: E) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
    async fn login(s: Session) -> Result<&'static str, StatusCode> {
        s.insert("user_id", 42u64).await.map_err(fail)?;
        s.insert("counter", 0u64).await.map_err(fail)?;
        Ok("ok")
    }
    async fn read(s: Session) -> Result<String, StatusCode> {
        let user: Option<u64> = s.get("user_id").await.map_err(fail)?;
        Ok(format!("user {}", user.unwrap_or(0)))
    }
    async fn write(s: Session) -> Result<String, StatusCode> {
        // tower-sessions has no atomic update: read, then insert, as its examples do.
        let n: u64 = s.get("counter").await.map_err(fail)?.unwrap_or(0) + 1;
        s.insert("counter", n).await.map_err(fail)?;
        Ok(format!("counter {n}"))
    }
    async fn put(s: Session, Path(key): Path<String>) -> Result<&'static str, StatusCode> {
        s.insert(&key, 1u64).await.map_err(fail)?;
        Ok("ok")
    }
    async fn count(s: Session) -> Result<String, StatusCode> {
        let mut keys = 0;
        for i in 0..200 {
            if s.get::<u64>(&format!("k{i}")).await.map_err(fail)?.is_some() {
                keys += 1;
            }
        }
        let counter: u64 = s.get("counter").await.map_err(fail)?.unwrap_or(0);
        Ok(format!("{keys} {counter}"))
    }
    Router::new()
        .route("/login", post(login))
        .route("/read", get(read))
        .route("/write", post(write).get(write))
        .route("/put/{k}", post(put))
        .route("/count", get(count))
}
