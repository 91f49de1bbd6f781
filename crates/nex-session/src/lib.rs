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
//! key only. Keys starting with `_nex` are reserved (flash lives under `_nex_flash`, the CSRF secret under `_nex_csrf`).
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
//! | `axum` | yes | the [`Session`] extractor and `IntoResponse` for [`SessionError`] (`axum-core`) |
//! | `sqlite` | no | `store::SqliteStore`: durable sessions in a SQLite file (bundled SQLite) |
//! | `redis` | no | `store::RedisStore`: Redis / Valkey, single node or Redis Cluster |
//! | `postgres` | no | `store::PostgresStore`: PostgreSQL (`tokio-postgres`, no TLS) |
//! | `conformance` | no | `store::conformance`: the test suite every store must pass (turn it on in `[dev-dependencies]`) |
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
//! ## Architecture
//!
//! Imports point one way, from the request lifecycle down to the pieces it uses
//! (each line: a module, then what it may import):
//!
//! ```text
//! testing         → middleware, ambient, session, store, …
//! middleware/     → ambient, session, session_cookie, store, token, config
//! csrf_layer      → session
//! ambient/        → session, cookie_header
//! extract         → session
//! session/        → session_cookie, store, cookie_header, token (constant-time compare), config
//! session_cookie/ → token, cookie_header, config
//! config          → token, cookie_header, cookie_rules
//! cookie_rules    → cookie_header, error
//! store/          → token (its clock)
//! every module    → error, id, absence (why a request has no session),
//!                   observe (metric names, emitting them, `Health`)
//! ```
//!
//! - `middleware/`: the lifecycle (load, call, persist, clean up), readable top to
//!   bottom in `mod.rs`, with the layer's state (`layer.rs`), the persist step
//!   (`persist.rs`), the response future (`future.rs`) and the background purge.
//! - `ambient/`: every function of the ambient API (session, cookie helper, flash),
//!   each finding the request's [`Session`] in a task-local.
//! - `session/`: the per-request [`Session`] and its state: reads, buffered writes,
//!   `update`/`renew`/`clear`, flash, CSRF tokens, queued cookies, and what the
//!   response needs.
//! - `csrf_layer`: the tower layer that refuses unsafe requests without a valid
//!   CSRF token ([`csrf::CsrfLayer`]).
//! - `session_cookie/`: the session cookie itself (verify, remember, sign, format),
//!   and the signed side cookies of visitors without a session (flash, CSRF secret).
//! - `observe/`: every metric name and label, emitting them through the
//!   `metrics` facade, and the health check's [`observe::Health`] ([`observe`]
//!   documents the metrics, the request span and the health check).
//! - `store/`: the [`store::SessionStore`] trait and every store; `token/`: the
//!   Phoenix.Token-compatible token; `cookie_header`: cookie header syntax;
//!   `cookie_rules`: the rules a configured cookie name, path, domain and
//!   `SameSite` must follow, checked once when a layer is built.
//!
//! No module adds methods to another module's type, and nothing points back up.
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

// docs.rs builds with `--cfg docsrs` on nightly: mark feature-gated items there.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod absence;
mod ambient;
mod config;
mod cookie_header;
mod cookie_rules;
#[cfg(feature = "axum")]
mod csrf_layer;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod id;
mod middleware;
pub mod observe;
mod session;
mod session_cookie;
pub mod store;
pub mod testing;
pub mod token;

pub use absence::NoSession;
pub use ambient::{absence, clear, current, delete, get, get_or, id, named, put, renew, set_expiry, update};
pub use config::{
    ConfigError, Expiry, RunMode, SessionConfig, DEFAULT_MAX_PERSISTENT_TTL, DEFAULT_PURGE_INTERVAL, DEFAULT_TTL,
    NEX_ENV,
};
pub use error::{BindingError, CookieConfigError};
pub use error::{BoxError, SessionError, StoreError};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::MissingSessionLayer;
pub use id::{SessionId, StoreKey};
pub use middleware::{ResponseFuture, SessionLayer, SessionService};
pub use session::Session;
pub use session_cookie::{SessionExpiry, COOKIE_NAME, SESSION_SALT};

pub mod cookie {
    //! The cookie helper (Nex.Cookie): read request cookies, queue response cookies.
    //!
    //! Queued cookies are written as `Set-Cookie` headers by the session layer when
    //! the response goes out, next to the session cookie.
    //!
    //! ```
    //! use nex_session::cookie::{self, CookieOptions};
    //!
    //! async fn handler() -> Result<String, nex_session::SessionError> {
    //!     let theme = cookie::get("theme").await?.unwrap_or_else(|| "light".into());
    //!     cookie::put("theme", "dark", CookieOptions::default().with_max_age(86_400)).await?;
    //!     cookie::delete("legacy").await?;
    //!     Ok(theme)
    //! }
    //! ```
    pub use crate::ambient::cookie::{all, delete, get, put};
    pub use crate::cookie_header::{CookieOptions, SameSite};
}

pub mod flash {
    //! Flash messages (Nex.Flash): one-time messages that survive a redirect.
    //!
    //! Stored in the session under the reserved key [`FLASH_KEY`] as a map from kind
    //! (`"info"`, `"error"`, …) to message. `put` and `pop_all` are atomic store
    //! updates, so a message is shown exactly once even when two requests race to pop it.
    //!
    //! ```
    //! use nex_session::flash;
    //!
    //! async fn login_failed() -> Result<(), nex_session::SessionError> {
    //!     flash::put("error", "Invalid credentials").await
    //! }
    //!
    //! async fn login_page() -> Result<String, nex_session::SessionError> {
    //!     let messages = flash::pop_all().await?; // shown once, then gone
    //!     Ok(messages.get("error").cloned().unwrap_or_default())
    //! }
    //! ```
    pub use crate::ambient::flash::{clear, get, peek_all, pop_all, put};
    pub use crate::session::{Flash, Messages, FLASH_KEY};
    pub use crate::session_cookie::FLASH_COOKIE;
}

pub mod csrf {
    //! CSRF protection bound to the session (as Plug.CSRFProtection and Nex.CSRF).
    //!
    //! Render a token into every form (field `_csrf_token`) or give it to scripts
    //! (header `x-csrf-token`), and put [`CsrfLayer`] inside the session layer:
    //! unsafe requests (`POST`, `PUT`, `PATCH`, `DELETE`, …) without a valid token
    //! are refused with 403 before the handler runs.
    //!
    //! - Each session has its own secret; each token is that secret under a fresh
    //!   random mask, compared in constant time.
    //! - `renew` (call it at login) and `clear` (logout) rotate the secret: tokens
    //!   issued before stop working.
    //! - A visitor without a session (a login form) gets the secret in a signed
    //!   browser-session cookie, `_nex_csrf`, instead of a stored session, so
    //!   anonymous traffic never fills the store. Before sign-in the token is
    //!   therefore bound to that cookie: an attacker able to set cookies for your
    //!   host (a sibling subdomain with a `Domain` cookie) could plant their own
    //!   and post a login form as the victim ("login CSRF"). Serve the app on a
    //!   host without untrusted siblings. After sign-in only the session's secret
    //!   counts.
    //!
    //! ```
    //! use axum::{routing::get, Router};
    //! use nex_session::{csrf::{self, CsrfLayer}, token::SecretKeyBase, SessionConfig, SessionLayer};
    //!
    //! async fn form() -> Result<String, nex_session::SessionError> {
    //!     let token = csrf::token().await?;
    //!     Ok(format!(r#"<form method="post"><input type="hidden" name="_csrf_token" value="{token}">
    //!                   <button>Save</button></form>"#))
    //! }
    //!
    //! let config = SessionConfig::new(SecretKeyBase::new("a-secret-of-at-least-32-bytes-len").unwrap());
    //! let app: Router = Router::new()
    //!     .route("/", get(form).post(|| async { "saved" }))
    //!     .layer(CsrfLayer::new())
    //!     .layer(SessionLayer::memory(config));
    //! ```
    pub use crate::ambient::csrf::{token, verify};
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub use crate::csrf_layer::{CsrfLayer, CsrfService, DEFAULT_FORM_LIMIT};
    pub use crate::session::{Csrf, CSRF_FIELD, CSRF_HEADER, CSRF_KEY};
    pub use crate::session_cookie::CSRF_COOKIE;
}

pub mod users {
    //! Sessions bound to users: "your devices", "sign out that device", "log out
    //! everywhere" (SPEC §3), on every store of this crate.
    //!
    //! At sign-in, bind the session to the user ([`sign_in`] renews and binds in
    //! one step). The binding is a reserved field of the session (`_nex_user`), read
    //! with it, so knowing who is signed in costs nothing extra; the store also
    //! keeps an index from each user to their sessions, written only when a
    //! session is bound, renewed, removed or revoked: a session without a user
    //! never touches it. A user's sessions are listed by [`SessionHandle`], a
    //! 22-character name derived one way from the session's store key: safe to
    //! show and post back, useless as a cookie.
    //!
    //! Revocation is final: when [`revoke_all`] (or [`revoke_others`], or the
    //! store's [`UserIndex::revoke_all`] from an admin tool) returns, every session
    //! bound to the user before it started is gone from the store, also when
    //! requests of those sessions run at the same moment, here or in another app
    //! instance: a request of a revoked session reads as signed out
    //! ([`NoSession::Revoked`](crate::NoSession::Revoked) from
    //! [`absence`](crate::absence)), and its writes start a fresh anonymous
    //! session instead of bringing the old one back. Each store's docs say how
    //! (locks, transactions, or on Redis Cluster an ordered protocol).
    //!
    //! "Last seen" is recorded at sign-in, then for bound sessions only, at most
    //! once per refresh interval
    //! ([`SessionConfig::with_refresh_interval`](crate::SessionConfig::with_refresh_interval)),
    //! by a request that read the session: in the batch write it makes anyway, or
    //! else in one small write that also slides the expiry (in place of the touch
    //! when one is due). Handles are stable while a session keeps its id; `renew`
    //! gives it a new one.
    //!
    //! Put [`CsrfLayer`](crate::csrf::CsrfLayer) around the routes that sign in
    //! and revoke, as below: they are state-changing POSTs.
    //!
    //! ```
    //! use axum::{extract::Form, routing::{get, post}, Router};
    //! use nex_session::{csrf::CsrfLayer, users, SessionConfig, SessionLayer, token::SecretKeyBase};
    //!
    //! async fn login() -> Result<&'static str, nex_session::SessionError> {
    //!     // … check the password, then:
    //!     users::sign_in("alice", Some("Firefox on Linux")).await?;
    //!     Ok("signed in")
    //! }
    //!
    //! async fn devices() -> Result<String, nex_session::SessionError> {
    //!     let mut page = String::new();
    //!     for s in users::sessions().await? {
    //!         let mark = if s.current { " (this device)" } else { "" };
    //!         page += &format!("{} {}{mark}\n", s.handle, s.meta.as_deref().unwrap_or("?"));
    //!     }
    //!     Ok(page)
    //! }
    //!
    //! async fn sign_out_others() -> Result<String, nex_session::SessionError> {
    //!     Ok(format!("signed out {} other devices", users::revoke_others().await?))
    //! }
    //!
    //! let config = SessionConfig::new(SecretKeyBase::new("a-secret-of-at-least-32-bytes-len").unwrap());
    //! let app: Router = Router::new()
    //!     .route("/login", post(login))
    //!     .route("/devices", get(devices))
    //!     .route("/devices/sign-out-others", post(sign_out_others))
    //!     .layer(CsrfLayer::new())
    //!     .layer(SessionLayer::memory(config));
    //! ```
    //!
    //! Outside a request (an admin tool, a password-reset job), use the store's
    //! index directly:
    //!
    //! ```
    //! # async fn demo() -> Result<(), nex_session::StoreError> {
    //! use nex_session::store::{Keep, MemoryStore, SessionStore};
    //!
    //! let store = MemoryStore::new();
    //! if let Some(index) = store.users() {
    //!     for s in index.sessions("alice").await? {
    //!         println!("{} last seen {}", s.handle, s.last_seen_ms);
    //!     }
    //!     index.revoke_all("alice", Keep::None).await?;
    //! }
    //! # Ok(()) }
    //! ```
    pub use crate::ambient::users::{bind, current_user, revoke, revoke_all, revoke_others, sessions, sign_in};
    pub use crate::store::users::{Binding, Keep, SessionHandle, UserIndex, UserSession};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
