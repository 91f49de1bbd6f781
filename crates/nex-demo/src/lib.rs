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
//! without a valid one the answer is 403 and nothing changes. See [`csrf`].

use std::ffi::OsString;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use nex_session::store::SessionStore;
use nex_session::token::Signer;
use nex_session::{ConfigError, RunMode, SessionConfig, SessionLayer, NEX_ENV};

pub mod auth;
pub mod csrf;
pub mod login_gate;
mod pages;
mod routes;

/// What the handlers share.
#[derive(Clone)]
pub struct DemoState {
    csrf: Signer,
    secure: bool,
    logins: login_gate::LoginGate,
}

/// The demo's router over `store` with `config`; password checks run through
/// [`login_gate::LoginGate::for_this_machine`].
///
/// ```
/// use nex_session::{store::MemoryStore, token::SecretKeyBase, SessionConfig};
/// let config = SessionConfig::new(SecretKeyBase::development()).with_secure_cookie(false);
/// let app = nex_demo::app(config, std::sync::Arc::new(MemoryStore::new()));
/// # let _ = app;
/// ```
pub fn app(config: SessionConfig, store: Arc<dyn SessionStore>) -> Router {
    // The built-in hash is pinned valid by a unit test; failing here would be a build defect.
    #[allow(clippy::expect_used)]
    let logins = login_gate::LoginGate::for_this_machine().expect("the demo's password hash is valid");
    app_with_login_gate(config, store, logins)
}

/// [`app`] with the given login gate (its number of hashers and queue length).
///
/// ```
/// use nex_demo::{auth::PasswordCheck, login_gate::LoginGate};
/// use nex_session::{store::MemoryStore, token::SecretKeyBase, SessionConfig};
/// let config = SessionConfig::new(SecretKeyBase::development()).with_secure_cookie(false);
/// let gate = LoginGate::new(PasswordCheck::demo()?, 2, 16);
/// let app = nex_demo::app_with_login_gate(config, std::sync::Arc::new(MemoryStore::new()), gate);
/// # let _ = app;
/// # Ok::<(), nex_demo::auth::HashError>(())
/// ```
pub fn app_with_login_gate(
    config: SessionConfig,
    store: Arc<dyn SessionStore>,
    logins: login_gate::LoginGate,
) -> Router {
    let state =
        DemoState { csrf: Signer::new(config.secret(), csrf::CSRF_SALT), secure: config.secure_cookie(), logins };
    Router::new()
        .route("/", get(routes::home))
        .route("/login", get(routes::login_page).post(routes::login))
        .route("/dashboard", get(routes::dashboard))
        .route("/counter", get(routes::counter).post(routes::increment))
        .route("/logout", axum::routing::post(routes::logout))
        .with_state(state)
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

/// The session configuration for the demo, in the library's [`RunMode`] rule:
/// `NEX_ENV=dev` or `development` (exact, lowercase) is development; any other
/// set value (`prod`, `PROD`, `staging`, …) is production. Unset is development,
/// because the demo is a local tool that must start with no setup.
///
/// # Errors
/// In production mode, a missing or short `SECRET_KEY_BASE` (the message names
/// the mode and says how to make a secret); in every mode, a `SECRET_KEY_BASE`
/// that is not UTF-8 or a bad `NEX_SESSION_TTL`.
pub fn config_from_env() -> Result<SessionConfig, StartError> {
    let nex_env = std::env::var_os(NEX_ENV);
    let mode = RunMode::from_nex_env(nex_env.as_deref(), RunMode::Development);
    SessionConfig::from_env_with_mode(mode.is_development())
        .map_err(|err| StartError(start_message(mode, nex_env, &err)))
}

/// A start error that says which mode `NEX_ENV` chose and why, so a misspelt
/// `NEX_ENV=PROD` or `staging` is not a puzzle.
fn start_message(mode: RunMode, nex_env: Option<OsString>, err: &ConfigError) -> String {
    match (mode, nex_env) {
        (RunMode::Production, Some(value)) => format!(
            "{NEX_ENV}={value:?} runs in production mode (only `dev` or `development` select development): {err}"
        ),
        _ => err.to_string(),
    }
}
