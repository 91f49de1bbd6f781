//! Choosing a store by URL, as the demo and the CLI do (`NEX_SESSION_STORE`, `--store`).

use std::sync::Arc;

use nex_session_core::store::toolkit::redact::scrub_error;
use nex_session_core::store::{MemoryStore, RedactedUrl, SessionStore, DEFAULT_MAX_SESSIONS};
use nex_session_core::StoreError;

/// A parsed store URL.
///
/// | URL | store | feature |
/// |---|---|---|
/// | `memory`, `memory?max_sessions=N` | [`MemoryStore`], bounded (default [`DEFAULT_MAX_SESSIONS`]) | always |
/// | `sqlite://PATH` (e.g. `sqlite://sessions.db`, `sqlite:///var/lib/app/s.db`) | `SqliteStore` | `sqlite` |
/// | `sqlite://PATH?locking=exclusive` | `SqliteStore::open_exclusive`: the file for this process alone | `sqlite` |
/// | `redis://[USER:PASSWORD@]HOST:PORT[/DB]`, `rediss://…` (TLS) | `RedisStore`, one node | `redis` |
/// | `redis+cluster://HOST:PORT,HOST:PORT,…`, `rediss+cluster://…` | `RedisStore` on Redis Cluster | `redis` |
/// | `redis+sentinel://HOST:PORT,…/SERVICE[/DB]`, `rediss+sentinel://…` | `RedisStore` on the master Sentinel names | `redis` |
/// | `postgres://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]…]/DB[?…]` (also `postgresql://`), or key=value (`host=… dbname=…`) | `PostgresStore` | `postgres` |
///
/// TLS parameters use libpq's names on both network stores: `sslmode`,
/// `sslrootcert`, `sslcert`, `sslkey` (see each store's docs).
///
/// Its `Debug` and every error message about a URL hide passwords (see
/// [`RedactedUrl`]).
///
/// ```
/// use nex_session::store::StoreUrl;
/// assert_eq!(StoreUrl::parse("memory").unwrap(), StoreUrl::Memory { max_sessions: None });
/// assert_eq!(StoreUrl::parse("memory?max_sessions=500").unwrap(), StoreUrl::Memory { max_sessions: Some(500) });
/// assert_eq!(StoreUrl::parse("sqlite://data/s.db").unwrap(), StoreUrl::Sqlite("data/s.db".into()));
/// assert_eq!(StoreUrl::parse("sqlite://s.db?locking=exclusive").unwrap(), StoreUrl::SqliteExclusive("s.db".into()));
/// assert!(StoreUrl::parse("sqlite://s.db?locking=maybe").is_err());
/// assert!(StoreUrl::parse("mongodb://x").is_err());
/// assert!(!format!("{:?}", StoreUrl::parse("redis://:s3cret@cache:6379").unwrap()).contains("s3cret"));
/// assert!(matches!(StoreUrl::parse("postgres://app@db/app"), Ok(StoreUrl::Postgres(_))));
/// assert!(!format!("{:?}", StoreUrl::parse("postgres://app:s3cret@db/app").unwrap()).contains("s3cret"));
/// assert!(matches!(StoreUrl::parse("rediss+sentinel://s1:26379,s2:26379/sessions"), Ok(StoreUrl::Redis(_))));
/// assert!(matches!(StoreUrl::parse("host=db1,db2 dbname=app sslmode=verify-full"), Ok(StoreUrl::Postgres(_))));
/// assert!(!format!("{:?}", StoreUrl::parse("host=db password=s3cret").unwrap()).contains("s3cret"));
/// assert!(!format!("{:?}", StoreUrl::parse("host = db password = s3cret").unwrap()).contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// The in-memory store.
    Memory {
        /// Its bound, when the URL gives one (`?max_sessions=N`).
        max_sessions: Option<usize>,
    },
    /// A SQLite file path.
    Sqlite(String),
    /// A SQLite file path this process holds alone (`?locking=exclusive`), opened
    /// with `SqliteStore::open_exclusive`.
    SqliteExclusive(String),
    /// A Redis URL (single node or `redis+cluster://`), passed to `RedisStore::open`.
    Redis(String),
    /// A PostgreSQL URL, passed to `PostgresStore::open`.
    Postgres(String),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory { max_sessions } => f.debug_struct("Memory").field("max_sessions", max_sessions).finish(),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::SqliteExclusive(path) => f.debug_tuple("SqliteExclusive").field(path).finish(),
            Self::Redis(url) => f.debug_tuple("Redis").field(&RedactedUrl::new(url)).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&RedactedUrl::new(url)).finish(),
        }
    }
}

impl StoreUrl {
    /// Parses a store URL.
    ///
    /// # Errors
    /// A [`StoreUrlError`] that says what is wrong and names the accepted forms
    /// (with any password in the URL hidden).
    pub fn parse(url: &str) -> Result<Self, StoreUrlError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("memory") {
            let rest = rest.strip_prefix("://").unwrap_or(rest);
            if rest.is_empty() {
                return Ok(Self::Memory { max_sessions: None });
            }
            if let Some(query) = rest.strip_prefix('?') {
                return parse_memory_query(query).map(|max_sessions| Self::Memory { max_sessions: Some(max_sessions) });
            }
        }
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let (path, query) = rest.split_once('?').map_or((rest, None), |(path, query)| (path, Some(query)));
            if path.is_empty() {
                return Err(StoreUrlError::MissingPath);
            }
            return match query {
                None | Some("locking=shared") => Ok(Self::Sqlite(path.to_owned())),
                Some("locking=exclusive") => Ok(Self::SqliteExclusive(path.to_owned())),
                Some(other) => Err(StoreUrlError::UnknownSqliteParameter(other.to_owned())),
            };
        }
        let redis = [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
            "redis+sentinel://",
            "rediss+sentinel://",
        ];
        if redis.iter().any(|p| url.starts_with(p)) {
            return Ok(Self::Redis(url.to_owned()));
        }
        if ["postgres://", "postgresql://"].iter().any(|p| url.starts_with(p)) || is_postgres_key_value(url) {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(StoreUrlError::UnknownScheme { url: RedactedUrl::new(url).to_string() })
    }
}

/// A libpq key=value connection string: no scheme, and its first word a
/// `name=value` naming a connection setting.
fn is_postgres_key_value(text: &str) -> bool {
    const KEYS: [&str; 6] = ["host", "hostaddr", "port", "dbname", "user", "service"];
    // libpq allows spaces around `=`: `host = db dbname = app`.
    !text.contains("://") && text.split_once('=').is_some_and(|(name, _)| KEYS.contains(&name.trim()))
}

/// The `max_sessions=N` of a `memory?…` URL, the only parameter it takes.
fn parse_memory_query(query: &str) -> Result<usize, StoreUrlError> {
    let value = query.strip_prefix("max_sessions=").ok_or_else(|| StoreUrlError::UnknownParameter(query.to_owned()))?;
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(StoreUrlError::InvalidMaxSessions(value.to_owned())),
    }
}

/// Why [`StoreUrl::parse`] refused a URL. Its message says what to write
/// instead; no variant holds a password.
///
/// ```
/// use nex_session::store::{StoreUrl, StoreUrlError};
///
/// let err = StoreUrl::parse("mongodb://:s3cret@db").unwrap_err();
/// assert!(matches!(err, StoreUrlError::UnknownScheme { .. }));
/// assert!(err.to_string().contains("redis://") && !err.to_string().contains("s3cret"));
/// assert_eq!(StoreUrl::parse("sqlite://").unwrap_err(), StoreUrlError::MissingPath);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrlError {
    /// No store has this scheme.
    UnknownScheme {
        /// The URL, passwords hidden.
        url: String,
    },
    /// `sqlite://` without a path.
    MissingPath,
    /// A `memory?…` URL with a parameter other than `max_sessions`.
    UnknownParameter(String),
    /// `memory?max_sessions=` with something other than a whole number above 0.
    InvalidMaxSessions(String),
    /// A `sqlite://PATH?…` URL with a query other than `locking=exclusive` or `locking=shared`.
    UnknownSqliteParameter(String),
}

impl std::fmt::Display for StoreUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownScheme { url } => write!(
                f,
                "unknown session store URL {url:?}; use `memory[?max_sessions=N]`, `sqlite://PATH`, \
                 `redis://HOST:PORT[/DB]` (`rediss://` for TLS), `redis+cluster://HOST:PORT,HOST:PORT,…`, \
                 `redis+sentinel://HOST:PORT,…/SERVICE`, `postgres://USER@HOST:PORT/DB` or \
                 `host=HOST dbname=DB …`"
            ),
            Self::MissingPath => f.write_str("sqlite:// needs a path, e.g. sqlite://sessions.db"),
            Self::UnknownParameter(query) => {
                write!(f, "memory store URL: unknown parameter {query:?}; the only one is max_sessions=N")
            }
            Self::InvalidMaxSessions(value) => {
                write!(f, "memory store URL: max_sessions={value:?} is not a whole number of sessions above 0")
            }
            Self::UnknownSqliteParameter(query) => write!(
                f,
                "SQLite store URL: unknown parameter {query:?}; the only one is locking=exclusive \
                 (or locking=shared, the default)"
            ),
        }
    }
}

impl std::error::Error for StoreUrlError {}

/// How [`open_with`] opens a store.
///
/// ```
/// use nex_session::store::OpenOptions;
/// // What an operator tool wants: never create a database by mistyping its path.
/// let options = OpenOptions::new().create_missing(false).max_sessions(10_000);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    create_missing: bool,
    max_sessions: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// What [`open`] uses: create a missing SQLite file; bound a memory store to
    /// [`DEFAULT_MAX_SESSIONS`] unless its URL says otherwise.
    ///
    /// ```
    /// let options = nex_session::store::OpenOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        Self { create_missing: true, max_sessions: DEFAULT_MAX_SESSIONS }
    }

    /// Whether a `sqlite://PATH` naming no file creates a new database there
    /// (default `true`). With `false`, a missing file is an error naming the path,
    /// so a mistyped path cannot quietly start an empty store.
    ///
    /// ```
    /// let options = nex_session::store::OpenOptions::new().create_missing(false);
    /// # let _ = options;
    /// ```
    pub fn create_missing(mut self, create: bool) -> Self {
        self.create_missing = create;
        self
    }

    /// The memory store's bound when its URL gives none (default
    /// [`DEFAULT_MAX_SESSIONS`]; at least 1). A `memory?max_sessions=N` URL wins.
    ///
    /// ```
    /// let options = nex_session::store::OpenOptions::new().max_sessions(1_000_000);
    /// # let _ = options;
    /// ```
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max.max(1);
        self
    }
}

/// Opens the store a URL names, with [`OpenOptions::new`]: a missing SQLite file
/// is created, a memory store is bounded.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = nex_session::store::open("memory?max_sessions=1000").await.unwrap();
/// # let _ = store; });
/// ```
///
/// # Errors
/// [`StoreError::Unavailable`] for a bad URL, a store whose feature is not
/// compiled in, or a store that cannot be opened. No message shows a password.
pub async fn open(url: &str) -> Result<Arc<dyn SessionStore>, StoreError> {
    open_with(url, OpenOptions::new()).await
}

/// Opens the store a URL names, as `options` say.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use nex_session::store::{open_with, OpenOptions};
/// let store = open_with("memory", OpenOptions::new().max_sessions(50_000)).await.unwrap();
/// # let _ = store; });
/// ```
///
/// # Errors
/// As [`open`]; also a missing SQLite file when `options` forbid creating one.
pub async fn open_with(url: &str, options: OpenOptions) -> Result<Arc<dyn SessionStore>, StoreError> {
    let parsed = StoreUrl::parse(url).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
    open_parsed(parsed, options).await.map_err(|e| scrub_error(e, url))
}

async fn open_parsed(url: StoreUrl, options: OpenOptions) -> Result<Arc<dyn SessionStore>, StoreError> {
    match url {
        StoreUrl::Memory { max_sessions } => {
            Ok(Arc::new(MemoryStore::with_max_sessions(max_sessions.unwrap_or(options.max_sessions))))
        }
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) if options.create_missing => {
            Ok(Arc::new(nex_session_sqlite::SqliteStore::open(path).await?))
        }
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => Ok(Arc::new(nex_session_sqlite::SqliteStore::open_existing(path).await?)),
        #[cfg(feature = "sqlite")]
        StoreUrl::SqliteExclusive(path) if options.create_missing => {
            Ok(Arc::new(nex_session_sqlite::SqliteStore::open_exclusive(path).await?))
        }
        #[cfg(feature = "sqlite")]
        StoreUrl::SqliteExclusive(path) => {
            Ok(Arc::new(nex_session_sqlite::SqliteStore::open_existing_exclusive(path).await?))
        }
        #[cfg(not(feature = "sqlite"))]
        StoreUrl::Sqlite(_) | StoreUrl::SqliteExclusive(_) => {
            Err(StoreError::Unavailable("this build has no SQLite store: enable nex-session's `sqlite` feature".into()))
        }
        #[cfg(feature = "redis")]
        StoreUrl::Redis(url) => Ok(Arc::new(nex_session_redis::RedisStore::open(&url).await?)),
        #[cfg(not(feature = "redis"))]
        StoreUrl::Redis(_) => {
            Err(StoreError::Unavailable("this build has no Redis store: enable nex-session's `redis` feature".into()))
        }
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(url) => {
            let postgres =
                nex_session_postgres::PostgresOptions { create_schema: options.create_missing, ..Default::default() };
            Ok(Arc::new(nex_session_postgres::PostgresStore::open_with_options(&url, postgres).await?))
        }
        #[cfg(not(feature = "postgres"))]
        StoreUrl::Postgres(_) => Err(StoreError::Unavailable(
            "this build has no PostgreSQL store: enable nex-session's `postgres` feature".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_take_a_positive_bound_and_nothing_else() {
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory { max_sessions: None });
        assert_eq!(StoreUrl::parse("memory://?max_sessions=7").unwrap(), StoreUrl::Memory { max_sessions: Some(7) });
        for bad in ["memory?max_sessions=0", "memory?max_sessions=-1", "memory?max_sessions=lots", "memory?size=5"] {
            let err = StoreUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("max_sessions"), "{bad}: {err}");
        }
        assert!(StoreUrl::parse("memoryx").is_err());
    }

    #[test]
    fn parse_errors_hide_passwords() {
        let err = StoreUrl::parse("reddis://:s3cret@cache:6379").unwrap_err().to_string();
        assert!(!err.contains("s3cret") && err.contains(":***@cache:6379"), "{err}");
    }

    /// `n` distinct keys of one shard (all share the byte the shards are picked by).
    fn keys_of_one_shard(n: usize) -> Vec<nex_session_core::StoreKey> {
        (0..n as u64)
            .map(|i| {
                let mut bytes = [0u8; 32];
                bytes[..8].copy_from_slice(&i.to_le_bytes());
                nex_session_core::StoreKey::from_bytes(bytes)
            })
            .collect()
    }

    /// Fills one shard of `store` with `n` new sessions; true if the first is still there.
    async fn first_survives(store: Arc<dyn SessionStore>, n: usize) -> bool {
        let mut batch = nex_session_core::store::Changes::new();
        batch.insert("k".into(), nex_session_core::store::Change::Put(b"v".to_vec()));
        let expires = nex_session_core::token::now_ms() + 60_000;
        let keys = keys_of_one_shard(n);
        for key in &keys {
            store.apply(*key, &batch, expires, nex_session_core::store::Presence::New).await.unwrap();
        }
        store.load(keys[0]).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn open_bounds_a_memory_store_by_default_or_as_told() {
        // 100,000 over 64 shards: 1,563 sessions per shard.
        assert!(first_survives(open("memory").await.unwrap(), 1563).await);
        assert!(!first_survives(open("memory").await.unwrap(), 1564).await, "unbounded by default");
        assert!(first_survives(open("memory?max_sessions=640").await.unwrap(), 10).await);
        assert!(!first_survives(open("memory?max_sessions=640").await.unwrap(), 11).await);
        let options = OpenOptions::new().max_sessions(64);
        assert!(!first_survives(open_with("memory", options).await.unwrap(), 2).await);
        // The URL's bound wins over the options' default.
        assert!(first_survives(open_with("memory?max_sessions=640", options).await.unwrap(), 10).await);
    }
}
