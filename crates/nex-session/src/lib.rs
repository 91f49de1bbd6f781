//! # nex-session
//!
//! Server-side sessions for tower / axum apps with the semantics of Nex.Session
//! (Elixir), cookies byte-compatible with Phoenix.Token, and no lost updates.
//!
//! The browser holds only a signed cookie `_nex_session` with a random id; values
//! live in a store on the server. Handlers use the session from anywhere inside a
//! request (the *ambient* API, like Nex's process dictionary) or through the
//! [`Session`] extractor; both have the same methods and meaning.
//!
//! ```no_run
//! use axum::{routing::{get, post}, Router};
//! use nex_session::{SessionConfig, SessionError, SessionLayer};
//!
//! async fn login() -> Result<&'static str, SessionError> {
//!     nex_session::renew().await?;               // new id at login: no session fixation
//!     nex_session::put("user_id", 42).await?;
//!     nex_session::flash::put("info", "Welcome back!").await?;
//!     Ok("logged in")
//! }
//!
//! async fn whoami() -> Result<String, SessionError> {
//!     let user: Option<u64> = nex_session::get("user_id").await?;
//!     Ok(format!("{user:?}"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // SECRET_KEY_BASE (at least 32 bytes), NEX_ENV and the cookie options.
//!     let config = SessionConfig::from_env()?;
//!     let app = Router::new()
//!         .route("/login", post(login))
//!         .route("/me", get(whoami))
//!         .layer(SessionLayer::memory(config)); // or a durable store: nex_session::store::open(url)
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Semantics
//!
//! - A request that only reads creates no session and sends no `Set-Cookie`.
//! - A request sees its own writes at once.
//! - `put`/`delete` are batched and written per key at the end of the request: two
//!   concurrent requests writing different keys never overwrite each other.
//! - [`update`] is an atomic read-modify-write in the store; its closure may run more than once.
//! - At most one store read per request (lazy, on the first `get`), and one write
//!   for all `put`s and `delete`s; `update`, `renew` and `clear` act on the store at once.
//! - [`renew`] moves the data to a new id; the old cookie stops working at once.
//! - [`clear`] removes everything and the cookie; a later `put` starts a fresh session.
//! - Expiry slides: a write sets it to now + TTL; a read-only request refreshes the
//!   cookie and the store expiry only once the cookie is older than 1/100 of the TTL
//!   ([`SessionConfig::with_refresh_interval`]), so reads cost no store write.
//!   The cookie is re-signed only when it names a new id (new session, `renew`),
//!   when that refresh is due, or when it was signed with a previous secret; a
//!   write to a session with a fresh cookie sends no `Set-Cookie` (the store's
//!   expiry slides anyway, and the cookie's own `Max-Age` is renewed at the next
//!   refresh, long before it runs out).
//! - Verified cookies are remembered per layer (a small table, exact match compared
//!   in constant time, expiry re-checked on every hit), so a browser's repeat
//!   requests skip the HMAC; whether the session exists is still the store's answer.
//! - If the session cannot be saved, the response becomes **503** and the error is
//!   logged; a store error on read is returned to the handler.
//! - A put to a session that vanished mid-request (revoked, renewed or cleared by
//!   another request, store restarted) starts a fresh session with a new id; deletes
//!   alone start nothing. Buffered writes after the response was sent (from a task
//!   that kept the handle) are refused with [`SessionError::ResponseSent`].
//!
//! Values are stored as JSON (`serde_json`): any serde type works, and a value that
//! no longer decodes as the requested type is a [`SessionError::Decode`] for that
//! key only. Keys starting with `_nex` are the library's (flash lives under `_nex_flash`, the CSRF secret under `_nex_csrf`): writing
//! `_nex_user` or `_nex_seen` is refused (`SessionError::ReservedKey`), and an app should leave the rest alone too.
//!
//! ## Expiry modes
//!
//! Set for the layer with [`SessionConfig::with_expiry`] ([`Expiry`]) and
//! [`SessionConfig::with_absolute_lifetime`] (or `NEX_SESSION_EXPIRY`,
//! `NEX_SESSION_ABSOLUTE_LIFETIME`), and per session from a handler with
//! [`Session::set_expiry`] / [`set_expiry`] ([`SessionExpiry`], "remember me").
//! TTL is [`SessionConfig::with_ttl`] (7 days by default).
//!
//! | mode | the cookie carries | the store forgets the session |
//! |---|---|---|
//! | [`Expiry::Sliding`] (default, as Nex) | `Max-Age` = TTL | after TTL without use |
//! | [`Expiry::BrowserSession`] | no `Max-Age`/`Expires`: the browser drops it when it closes | after TTL without use |
//! | [`SessionExpiry::Persistent`]`(d)` for one session | `Max-Age` = `d` (at most [`SessionConfig::with_max_persistent_ttl`], 400 days) | after `d` without use |
//! | [`SessionExpiry::BrowserSession`] for one session | no `Max-Age` | after TTL without use |
//! | [`SessionExpiry::Default`] for one session | as the layer's mode | as the layer's mode |
//! | any of these + absolute lifetime `A` | `Max-Age` at most the time left until creation + `A` (a browser-session cookie stays one) | after the above, and at creation + `A` at the latest, however active; [`renew`] keeps the creation time |
//!
//! How: a session's mode and creation time ride in its signed cookie token (the
//! token's data becomes `<id>.<created_ms>.<mode>`; with the defaults and no
//! absolute lifetime it stays the bare id, byte-compatible with Nex). So every
//! request knows its session's TTL without a store read, and a cookie past the
//! absolute lifetime is refused when the request starts, even if the handler
//! never reads. A per-session choice is sent with the response that makes it (a
//! `Set-Cookie`, plus a store touch when the request wrote nothing). Costs:
//! requests already in flight with the older cookie still write with the older
//! TTL; an Elixir app sharing the cookie sees only default sessions; a session
//! whose cookie predates turning the absolute lifetime on counts from that
//! cookie's signing.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | yes | the [`Session`] extractor, [`csrf::CsrfLayer`] and `IntoResponse` for [`SessionError`] (`axum-core`) |
//! | `sqlite` | no | [`store::SqliteStore`]: durable sessions in a SQLite file (bundled SQLite), crate `nex-session-sqlite` |
//! | `redis` | no | [`store::RedisStore`]: Redis / Valkey, single node or Redis Cluster, crate `nex-session-redis` |
//! | `postgres` | no | [`store::PostgresStore`]: PostgreSQL, crate `nex-session-postgres` |
//! | `conformance` | no | [`store::conformance`]: the test suite every store must pass (turn it on in `[dev-dependencies]`) |
//!
//! Testing a handler needs no HTTP server: [`testing::TestSession`] runs it as a
//! request of one browser over any store.
//!
//! ## Observability
//!
//! Counters and a latency histogram through the `metrics` facade (install any
//! recorder), a `DEBUG` span per request with the store, a short non-secret
//! session handle and the outcome, and a readiness check
//! ([`SessionLayer::health`]). The metrics table, the span's fields and a health
//! route are in [`observe`].
//!
//! ## Crates
//!
//! This crate is the one apps depend on: it re-exports everything and opens
//! stores by URL ([`store::open`]). Underneath, as in sqlx:
//!
//! | crate | job | depends on |
//! |---|---|---|
//! | `nex-session` | the facade: re-exports, features, [`store::open`] | the crates below, by feature |
//! | `nex-session-core` | the layer, the session, the ambient API, the token, cookies, config, CSRF, flash, users, observability, the store traits, the memory store, the conformance suite, the [store toolkit](store::toolkit) | no database client |
//! | `nex-session-sqlite` | [`store::SqliteStore`] | `nex-session-core`'s public API, `rusqlite` |
//! | `nex-session-redis` | [`store::RedisStore`] | `nex-session-core`'s public API, `redis` |
//! | `nex-session-postgres` | [`store::PostgresStore`] | `nex-session-core`'s public API, `tokio-postgres` |
//!
//! A store of your own implements [`store::SessionStore`] (five required
//! methods) and can use the same [`store::toolkit`] as the built-in ones.
//!
//! ## Security notes
//!
//! - The cookie is `HttpOnly`, `SameSite=Lax`, `Secure` unless configured
//!   otherwise ([`SessionConfig::with_same_site`], [`SessionConfig::with_http_only`],
//!   …; combinations browsers would silently drop, such as `SameSite=None` without
//!   `Secure` or a `__Host-` name with a `Domain`, are refused when the layer is
//!   built), and carries only a signed id; stores key sessions by SHA-256 of the id, so nothing
//!   in a store works as a cookie.
//! - Call [`renew`] at login. Rotate secrets with
//!   [`SessionConfig::with_previous_secrets`].
//! - Cookie forgery attempts are logged at debug level (with their reason), counted
//!   (`nex_session_cookies_rejected_total`) and treated as "no session".
//! - Anonymous traffic cannot fill a store: a flash or a CSRF token shown to a
//!   visitor without a session rides in a signed cookie (`_nex_flash`, `_nex_csrf`)
//!   and writes nothing to the store. Only a handler's own `put`/`update` creates
//!   a stored session.
//! - CSRF protection bound to the session: [`csrf`].
//! - Responses that depend on the session get `Vary: Cookie`, and responses that
//!   set a cookie `Cache-Control: private, no-cache` unless the handler chose its
//!   own ([`SessionConfig::with_cache_protection`]).
//! - The README's "Security" section lists what the library guarantees under
//!   abuse and what the app must still do.
//!
//! ## Coming from tower-sessions
//!
//! [`guide::from_tower_sessions`] maps every `SessionManagerLayer`, `Session`,
//! `Expiry` and store item to its equivalent here, lists what behaves differently
//! on purpose, and shows one app before and after.

// docs.rs builds with `--cfg docsrs` on nightly: mark feature-gated items there.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod open;

pub mod guide {
    //! Guides that are longer than an item's docs. Their code blocks compile as tests.

    #[doc = include_str!("../../../docs/from-tower-sessions.md")]
    pub mod from_tower_sessions {}

    #[doc = include_str!("../../../docs/sessions.md")]
    pub mod sessions {}

    #[doc = include_str!("../../../docs/production.md")]
    pub mod production {}

    #[doc = include_str!("../../../docs/observability.md")]
    pub mod observability {}

    #[doc = include_str!("../../../docs/configuration.md")]
    pub mod configuration {}
}

pub use nex_session_core::*;

pub mod store {
    //! Where sessions live: every store, chosen by type or by URL ([`open`]).
    //!
    //! | store | pick it for | URL ([`open`]) | feature |
    //! |---|---|---|---|
    //! | [`MemoryStore`] | one process; sessions may be lost on restart | `memory[?max_sessions=N]` | always |
    //! | `SqliteStore` | one machine, durable, no server to run | `sqlite://PATH[?locking=exclusive]` | `sqlite` |
    //! | `RedisStore` | many app instances; Redis or Redis Cluster | `redis://…`, `rediss://…`, `redis+cluster://…` | `redis` |
    //! | `PostgresStore` | many app instances, durable, in the database you already run | `postgres://…` | `postgres` |
    //!
    //! Every store passes the same [`conformance`] suite; the contract they keep
    //! is on [`SessionStore`], and [`toolkit`] has the machinery the networked
    //! stores share, for a store of your own.
    //!
    //! ```
    //! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    //! let store = nex_session::store::open("memory").await?;
    //! assert_eq!(store.kind(), "memory");
    //! # Ok::<(), nex_session::StoreError>(()) }).unwrap();
    //! ```
    pub use nex_session_core::store::*;

    pub use crate::open::{open, open_with, OpenOptions, StoreUrl, StoreUrlError};
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub use nex_session_postgres::{PostgresOptions, PostgresStore};
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub use nex_session_redis::{RedisOptions, RedisStore};
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub use nex_session_sqlite::SqliteStore;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
