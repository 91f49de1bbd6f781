//! The nex-session demo app: the Nex.Session login flow, as a library so the
//! tests serve exactly what the binary serves.
//!
//! | route | behaviour |
//! |---|---|
//! | `GET /` | `Signed in as <email>` or `Not signed in`; an anonymous visit sets no cookie |
//! | `GET /login` | the form (`email`, `password`, hidden `_csrf_token`), pending flashes shown once |
//! | `POST /login` | valid: `renew()`, put `user_id`, flash `Welcome back!`, 303 `/dashboard`; invalid: flash `Invalid credentials`, 303 `/login` |
//! | `GET /dashboard` | signed in: the email and the counter; else 303 `/login` with a flash |
//! | `POST /counter` | signed in: atomic increment (`update`), 303 `/dashboard`; else 303 `/login` |
//! | `GET /counter` | signed in: `text/plain` counter; else 401 |
//! | `POST /logout` | `clear()`, 303 `/` |
//!
//! Every POST needs a CSRF token (form field `_csrf_token` or header `x-csrf-token`);
//! without a valid one the answer is 403 and nothing changes. The check is the
//! library's [`nex_session::csrf::CsrfLayer`]: tokens are bound to the session,
//! and `renew` at login and `clear` at logout rotate them.
//!
//! Every page refuses to be framed (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`); signed-in pages are also `Cache-Control: no-store`.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use nex_session::csrf::CsrfLayer;
use nex_session::store::SessionStore;
use nex_session::{SessionConfig, SessionLayer};

pub mod auth;
mod pages;
mod routes;

/// The demo's router over `store` with `config`.
///
/// ```
/// use nex_session::{store::MemoryStore, token::SecretKeyBase, SessionConfig};
/// let config = SessionConfig::new(SecretKeyBase::development()).with_secure_cookie(false);
/// let app = nex_demo::app(config, std::sync::Arc::new(MemoryStore::new()));
/// # let _ = app;
/// ```
pub fn app(config: SessionConfig, store: Arc<dyn SessionStore>) -> Router {
    Router::new()
        .route("/", get(routes::home))
        .route("/login", get(routes::login_page).post(routes::login))
        .route("/dashboard", get(routes::dashboard))
        .route("/counter", get(routes::counter).post(routes::increment))
        .route("/logout", axum::routing::post(routes::logout))
        .layer(CsrfLayer::new())
        .layer(SessionLayer::with_shared_store(store, config))
}

/// Why the demo could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// The store named by `NEX_SESSION_STORE`: `memory` (default), `sqlite://PATH`,
/// `redis://HOST:PORT[/DB]` or `redis+cluster://HOST:PORT,…`.
///
/// # Errors
/// An unknown URL or a store that cannot be opened.
pub async fn store_from_env() -> Result<Arc<dyn SessionStore>, StartError> {
    let url = std::env::var("NEX_SESSION_STORE").unwrap_or_else(|_| "memory".into());
    nex_session::store::open(&url).await.map_err(|e| StartError(format!("NEX_SESSION_STORE={url:?}: {e}")))
}

/// The session configuration for the demo: development mode unless `NEX_ENV=prod`.
///
/// # Errors
/// In production mode, a missing or short `SECRET_KEY_BASE`; a bad `NEX_SESSION_TTL`.
pub fn config_from_env() -> Result<SessionConfig, StartError> {
    let production = matches!(std::env::var("NEX_ENV").as_deref(), Ok("prod" | "production"));
    SessionConfig::from_env_with_mode(!production).map_err(|e| StartError(e.to_string()))
}
