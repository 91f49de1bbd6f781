//! # nex-session-core
//!
//! The core of [nex-session](https://docs.rs/nex-session): the session layer, the
//! per-request session and its ambient API, the Phoenix.Token-compatible token,
//! cookies, configuration, CSRF, flash, sessions bound to users, observability,
//! the store traits, the memory store, the conformance suite and the toolkit the
//! networked stores are built from. It depends on no database client.
//!
//! **Apps depend on `nex-session`**, which re-exports all of this and adds the
//! SQLite, Redis and PostgreSQL stores by feature; the examples here use its
//! paths (`nex_session::…`). Depend on this crate directly to write a store
//! (implement [`store::SessionStore`], use [`store::toolkit`], run
//! `store::conformance`) without pulling in the others.
//!
//! How the crate is laid out inside (modules, which way imports point) is in
//! `docs/architecture.md` of the repository, for maintainers.

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
pub use session_cookie::{CookieExpiry, SessionCookieData, SessionExpiry, COOKIE_NAME, SESSION_SALT};

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
    pub use crate::csrf_layer::{
        CsrfLayer, CsrfService, DEFAULT_BUFFER_BUDGET, DEFAULT_FORM_LIMIT, DEFAULT_FORM_TIMEOUT,
    };
    pub use crate::session::{Csrf, CSRF_FIELD, CSRF_HEADER, CSRF_KEY};
    pub use crate::session_cookie::CSRF_COOKIE;
}

pub mod users {
    //! Sessions bound to users: "your devices", "sign out that device", "log out
    //! everywhere", on every store of this crate.
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
