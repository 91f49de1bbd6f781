//! The nex-session demo app: the Nex.Session login flow, as a library so the
//! tests serve exactly what the binary serves.
//!
//! | route | behaviour |
//! |---|---|
//! | `GET /` | `Signed in as <email>` or `Not signed in`; an anonymous visit sets no cookie |
//! | `GET /login` | the form (`email`, `password`, hidden `_csrf_token`), pending flashes shown once |
//! | `POST /login` | valid: `users::sign_in(user id, device summary)` (renews the id and binds the session to the user), flash `Welcome back!`, 303 `/dashboard`; invalid: flash `Invalid credentials`, 303 `/login` |
//! | `GET /dashboard` | signed in: the email, the counter and "Your sessions" (`#sessions`: one `.session` per device, this one `.session.current`); else 303 `/login` with a flash |
//! | `POST /counter` | signed in: atomic increment (`update`), 303 `/dashboard`; else 303 `/login` |
//! | `GET /counter` | signed in: `text/plain` counter; else 401 |
//! | `POST /logout` | `clear()`, 303 `/` |
//! | `POST /sessions/revoke` | field `handle`: signs out that device of the user (`users::revoke`), flash, 303 `/dashboard` (this device's handle: a logout, 303 `/`); a malformed or foreign handle changes nothing, flash; not signed in: 303 `/login` |
//! | `POST /sessions/revoke-others` | signs out every other device of the user (`users::revoke_others`), flash `Signed out N other device(s)`, 303 `/dashboard`; not signed in: 303 `/login` |
//! | `GET /metrics` | every metric of the process in Prometheus text format (nex-session's are listed in `nex_session::observe`) |
//! | `GET /healthz` | 200 `ok: <store> store answered in <ms> ms` when the session store answers, else 503 `unavailable: …`, within the store's timeout (`SessionLayer::health`) |
//!
//! Who is signed in is the user the session is bound to (`users::current_user`),
//! so the store must keep a per-user index (every store of nex-session does). A
//! signed-out device's next page is `/login` with "You were signed out".
//!
//! Every POST needs a CSRF token (form field `_csrf_token` or header `x-csrf-token`);
//! without a valid one the answer is 403 and nothing changes. The check is the
//! library's [`nex_session::csrf::CsrfLayer`]: tokens are bound to the session,
//! and `renew` at login and `clear` at logout rotate them.
//!
//! `/metrics` and `/healthz` sit outside the session and CSRF layers: a scrape or
//! a probe never touches a session. The Prometheus recorder is installed once per
//! process, on first use ([`operations::prometheus`]).
//!
//! Every page refuses to be framed (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`); signed-in pages are also `Cache-Control: no-store`.

use std::ffi::OsString;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use nex_session::csrf::CsrfLayer;
use nex_session::store::{OpenOptions, RedactedUrl, SessionStore, StoreUrl, DEFAULT_MAX_SESSIONS};
use nex_session::{ConfigError, RunMode, SessionConfig, SessionLayer, NEX_ENV};

pub mod auth;
mod device;
pub mod login_gate;
pub mod operations;
mod pages;
mod routes;
mod time_ago;

/// What the handlers share.
#[derive(Clone)]
pub struct DemoState {
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
///
/// # Panics
/// When `config` breaks a cookie rule ([`SessionConfig::validate`]); the demo's
/// `main` calls [`try_app`] instead, and exits 1 with the reason before listening.
pub fn app(config: SessionConfig, store: Arc<dyn SessionStore>) -> Router {
    match try_app(config, store) {
        Ok(app) => app,
        #[allow(clippy::panic)]
        Err(err) => panic!("{err}"),
    }
}

/// [`app`], with a configuration the session layer refuses as an error.
///
/// ```
/// use nex_session::{cookie::SameSite, store::MemoryStore, token::SecretKeyBase, SessionConfig};
/// let bad = SessionConfig::new(SecretKeyBase::development()).with_same_site(SameSite::None).with_secure_cookie(false);
/// let err = nex_demo::try_app(bad, std::sync::Arc::new(MemoryStore::new())).unwrap_err();
/// assert!(err.to_string().contains("SameSite=None"), "{err}");
/// ```
///
/// # Errors
/// The session layer's refusal ([`SessionLayer::try_with_shared_store`]).
pub fn try_app(config: SessionConfig, store: Arc<dyn SessionStore>) -> Result<Router, StartError> {
    // The built-in hash is pinned valid by a unit test; failing here would be a build defect.
    #[allow(clippy::expect_used)]
    let logins = login_gate::LoginGate::for_this_machine().expect("the demo's password hash is valid");
    try_app_with_login_gate(config, store, logins)
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
///
/// # Panics
/// As [`app`].
pub fn app_with_login_gate(
    config: SessionConfig,
    store: Arc<dyn SessionStore>,
    logins: login_gate::LoginGate,
) -> Router {
    match try_app_with_login_gate(config, store, logins) {
        Ok(app) => app,
        #[allow(clippy::panic)]
        Err(err) => panic!("{err}"),
    }
}

/// [`app_with_login_gate`], with a configuration the session layer refuses as an error.
///
/// # Errors
/// As [`try_app`].
pub fn try_app_with_login_gate(
    config: SessionConfig,
    store: Arc<dyn SessionStore>,
    logins: login_gate::LoginGate,
) -> Result<Router, StartError> {
    let state = DemoState { logins };
    let sessions = SessionLayer::try_with_shared_store(store, config)
        .map_err(|err| StartError(format!("invalid session configuration: {err}")))?;
    let operations = operations::Operations { sessions: sessions.clone(), metrics: operations::prometheus() };
    let operator_routes = Router::new()
        .route("/metrics", get(operations::metrics))
        .route("/healthz", get(operations::healthz))
        .with_state(operations);
    Ok(Router::new()
        .route("/", get(routes::home))
        .route("/login", get(routes::login_page).post(routes::login))
        .route("/dashboard", get(routes::dashboard))
        .route("/counter", get(routes::counter).post(routes::increment))
        .route("/logout", axum::routing::post(routes::logout))
        .route("/sessions/revoke", axum::routing::post(routes::revoke_session))
        .route("/sessions/revoke-others", axum::routing::post(routes::revoke_other_sessions))
        .fallback(routes::not_found)
        .with_state(state)
        .layer(CsrfLayer::new())
        .layer(sessions)
        // Added after the layers, so they do not wrap these.
        .merge(operator_routes))
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
/// `redis://HOST:PORT[/DB]`, `redis+cluster://HOST:PORT,…` or
/// `postgres://USER@HOST:PORT/DB`; a memory store is
/// bounded by `NEX_SESSION_MAX_SESSIONS` (default
/// [`DEFAULT_MAX_SESSIONS`], 100,000). See
/// [`open_store`].
///
/// # Errors
/// As [`open_store`].
pub async fn store_from_env() -> Result<Arc<dyn SessionStore>, StartError> {
    let url = env_text("NEX_SESSION_STORE")?.unwrap_or_else(|| "memory".into());
    let max_sessions = env_text("NEX_SESSION_MAX_SESSIONS")?;
    open_store(&url, max_sessions.as_deref()).await
}

/// A variable's value; one that is set but not UTF-8 is an error, never "unset"
/// (a broken export of a store URL must not quietly start a memory store).
fn env_text(name: &str) -> Result<Option<String>, StartError> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(StartError(format!("{name} is set but is not valid UTF-8"))),
    }
}

/// Opens the store `url` names (`NEX_SESSION_STORE`'s value), bounding a memory
/// store to `max_sessions` (`NEX_SESSION_MAX_SESSIONS`'s value) when given.
///
/// A memory store is always bounded, so anonymous traffic cannot grow it until
/// the process runs out of memory: at its capacity the store evicts the sessions
/// not used lately (see [`MemoryStore`](nex_session::store::MemoryStore)).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = nex_demo::open_store("memory", Some("50000")).await.unwrap();
/// assert!(nex_demo::open_store("memory", Some("lots")).await.is_err());
/// # let _ = store; });
/// ```
///
/// # Errors
/// An unknown URL, a store that cannot be opened, or a `max_sessions` that is no
/// whole number above 0, is given with a non-memory store, or repeats the URL's
/// `?max_sessions=`. Messages never show a password of the URL.
pub async fn open_store(url: &str, max_sessions: Option<&str>) -> Result<Arc<dyn SessionStore>, StartError> {
    let shown = RedactedUrl::new(url);
    let mut options = OpenOptions::new();
    if let Some(value) = max_sessions {
        let max = match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(StartError(format!(
                    "NEX_SESSION_MAX_SESSIONS={value:?} is not a whole number of sessions above 0 \
                     (it bounds the memory store; default {DEFAULT_MAX_SESSIONS})"
                )))
            }
        };
        match StoreUrl::parse(url) {
            Ok(StoreUrl::Memory { max_sessions: None }) => {}
            Ok(StoreUrl::Memory { max_sessions: Some(_) }) => {
                return Err(StartError(format!(
                    "NEX_SESSION_MAX_SESSIONS and NEX_SESSION_STORE={shown:?} both bound the memory store: give one"
                )))
            }
            // An unknown URL: `open_with` says what is wrong with it.
            Err(_) => {}
            Ok(_) => {
                return Err(StartError(format!(
                    "NEX_SESSION_MAX_SESSIONS bounds the memory store only, and NEX_SESSION_STORE={shown:?} is not one"
                )))
            }
        }
        options = options.max_sessions(max);
    }
    nex_session::store::open_with(url, options)
        .await
        .map_err(|e| StartError(format!("NEX_SESSION_STORE={shown:?}: {e}")))
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
    SessionConfig::from_env_with_mode(mode).map_err(|err| StartError(start_message(mode, nex_env, &err)))
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
