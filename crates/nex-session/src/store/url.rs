//! Choosing a store by URL, as the demo and the CLI do (`NEX_SESSION_STORE`, `--store`).

use std::sync::Arc;

use super::{MemoryStore, SessionStore};
use crate::error::StoreError;

/// A parsed store URL.
///
/// | URL | store | feature |
/// |---|---|---|
/// | `memory` | [`MemoryStore`] | always |
/// | `sqlite://PATH` (e.g. `sqlite://sessions.db`, `sqlite:///var/lib/app/s.db`) | `SqliteStore` | `sqlite` |
/// | `redis://HOST:PORT[/DB]` (also `rediss://`) | `RedisStore`, one node | `redis` |
/// | `redis+cluster://HOST:PORT,HOST:PORT,…` | `RedisStore` on Redis Cluster | `redis` |
///
/// ```
/// use nex_session::store::StoreUrl;
/// assert_eq!(StoreUrl::parse("memory").unwrap(), StoreUrl::Memory);
/// assert_eq!(StoreUrl::parse("sqlite://data/s.db").unwrap(), StoreUrl::Sqlite("data/s.db".into()));
/// assert!(StoreUrl::parse("mongodb://x").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// The in-memory store.
    Memory,
    /// A SQLite file path.
    Sqlite(String),
    /// A Redis URL (single node or `redis+cluster://`), passed to `RedisStore::open`.
    Redis(String),
}

impl StoreUrl {
    /// Parses a store URL.
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url == "memory" || url == "memory://" {
            return Ok(Self::Memory);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a path, e.g. sqlite://sessions.db".into());
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        if ["redis://", "rediss://", "redis+cluster://"].iter().any(|p| url.starts_with(p)) {
            return Ok(Self::Redis(url.to_owned()));
        }
        Err(format!(
            "unknown session store URL {url:?}; use `memory`, `sqlite://PATH`, `redis://HOST:PORT[/DB]` \
             or `redis+cluster://HOST:PORT,HOST:PORT,…`"
        ))
    }
}

/// Opens the store a URL names.
///
/// # Errors
/// [`StoreError::Unavailable`] for a bad URL, a store whose feature is not
/// compiled in, or a store that cannot be opened.
pub async fn open(url: &str) -> Result<Arc<dyn SessionStore>, StoreError> {
    match StoreUrl::parse(url).map_err(|e| StoreError::Unavailable(e.into()))? {
        StoreUrl::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => Ok(Arc::new(super::SqliteStore::open(path).await?)),
        #[cfg(not(feature = "sqlite"))]
        StoreUrl::Sqlite(_) => {
            Err(StoreError::Unavailable("this build has no SQLite store: enable nex-session's `sqlite` feature".into()))
        }
        #[cfg(feature = "redis")]
        StoreUrl::Redis(url) => Ok(Arc::new(super::RedisStore::open(&url).await?)),
        #[cfg(not(feature = "redis"))]
        StoreUrl::Redis(_) => {
            Err(StoreError::Unavailable("this build has no Redis store: enable nex-session's `redis` feature".into()))
        }
    }
}
