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
//! ```
//! use axum::{routing::{get, post}, Router};
//! use nex_session::{SessionConfig, SessionLayer};
//!
//! async fn login() -> Result<&'static str, nex_session::SessionError> {
//!     nex_session::renew().await?;               // new id at login: no session fixation
//!     nex_session::put("user_id", 42).await?;
//!     nex_session::flash::put("info", "Welcome back!").await?;
//!     Ok("logged in")
//! }
//!
//! async fn whoami() -> Result<String, nex_session::SessionError> {
//!     let user: Option<u64> = nex_session::get("user_id").await?;
//!     Ok(format!("{user:?}"))
//! }
//!
//! # fn config() -> SessionConfig { SessionConfig::new(nex_session::token::SecretKeyBase::new([1u8; 32]).unwrap()) }
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/me", get(whoami))
//!     .layer(SessionLayer::memory(config())); // or SessionConfig::from_env()?
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
//! key only. Keys starting with `_nex` are reserved (flash lives under `_nex_flash`).
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | yes | the [`Session`] extractor (`axum-core`) |
//! | `sqlite` | no | `store::SqliteStore`: durable sessions in a SQLite file (bundled SQLite) |
//! | `redis` | no | `store::RedisStore`: Redis / Valkey, single node or Redis Cluster |
//!
//! ## Security notes
//!
//! - The cookie is `HttpOnly`, `SameSite=Lax`, `Secure` unless configured off, and
//!   carries only a signed id; stores key sessions by SHA-256 of the id, so nothing
//!   in a store works as a cookie.
//! - Call [`renew`] at login. Rotate secrets with
//!   [`SessionConfig::with_previous_secrets`].
//! - Cookie forgery attempts are logged at debug level and treated as "no session".

mod ambient;
mod config;
pub mod cookie;
mod error;
#[cfg(feature = "axum")]
mod extract;
pub mod flash;
mod id;
mod middleware;
mod session;
pub mod store;
pub mod token;

pub use ambient::{clear, current, delete, get, get_or, id, put, renew, update};
pub use config::{ConfigError, SessionConfig, DEFAULT_PURGE_INTERVAL, DEFAULT_TTL};
pub use error::{BoxError, SessionError, StoreError};
#[cfg(feature = "axum")]
pub use extract::MissingSessionLayer;
pub use id::{SessionId, StoreKey};
pub use middleware::{ResponseFuture, SessionLayer, SessionService, SESSION_SALT};
pub use session::{Session, COOKIE_NAME};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
