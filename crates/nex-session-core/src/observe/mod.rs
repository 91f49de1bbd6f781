//! Observability: metrics, the request span, and the store's health check.
//!
//! # Metrics
//!
//! nex-session counts through the [`metrics`](https://docs.rs/metrics) facade
//! (0.24): the app installs the recorder it likes (a Prometheus exporter, say)
//! and every metric below shows up there; with none installed, each event costs
//! a few nanoseconds and records nothing. Names follow Prometheus conventions;
//! labels take a few fixed values each and never carry a session id or anything
//! derived from one. The names and label values are constants of this module
//! ([`METRICS`] lists them all).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `nex_session_loads_total` | counter | `outcome`: `found`, `missing`, `expired` | sessions loaded for requests whose genuine cookie named one (the request's first read): the store had it; it was gone although the cookie was young (revoked, signed out elsewhere, evicted: [`NoSession::Revoked`](crate::NoSession::Revoked)); it was gone by expiry ([`NoSession::Expired`](crate::NoSession::Expired)) |
//! | `nex_session_created_total` | counter | | new sessions written to the store |
//! | `nex_session_saved_total` | counter | | requests that wrote their session (batched puts and deletes, `update`, `renew`, a sign-in), once per request |
//! | `nex_session_renewed_total` | counter | | sessions moved to a new id by `renew` |
//! | `nex_session_cleared_total` | counter | | stored sessions removed by `clear` |
//! | `nex_session_cookies_rejected_total` | counter | `reason`: `forged`, `malformed`, `expired` | session cookies not accepted (see below) |
//! | `nex_session_store_errors_total` | counter | `store`, `operation`, `kind` | failed store calls; `kind` is the [`StoreError`](crate::StoreError) variant: `unavailable`, `timeout`, `corrupt`, `outcome_unknown` |
//! | `nex_session_unavailable_responses_total` | counter | `cause`: `save`, `handler` | 503 answers: the layer could not save the session, or a handler returned a store error as its response |
//! | `nex_session_update_retries_total` | counter | | extra runs of `update` closures: the store's compare-and-set lost a race and decided again |
//! | `nex_session_update_batch_members` | histogram | | updates served by one compare-and-set of the group commit (Redis, SQLite, PostgreSQL `update`), one sample per batch |
//! | `nex_session_update_batch_seconds` | histogram | | seconds from sending one compare-and-set of the group commit to its answer, failures included, one sample per batch: the store's commit latency under contention |
//! | `nex_session_client_cache_total` | counter | `result`: `hit`, `miss` | reads the Redis client-side cache answered, or passed on to Redis |
//! | `nex_session_store_operation_seconds` | histogram | `store`, `operation` | how long store calls took, failures included |
//! | `nex_session_store_sessions` | gauge | `store` | sessions the store holds, where it can tell cheaply: the memory store, after each background purge |
//!
//! `store` is the store's [`kind`](crate::store::SessionStore::kind) (`memory`,
//! `sqlite`, `redis`, or what a custom store names itself); `operation` is an
//! [`Operation`]: `load`, `apply`, `update`, `rename`, `remove`, `touch`,
//! `health`, `purge`, `user_bind`, `user_list`, `user_revoke`, `user_revoke_all`.
//! A read the store answers at once (every read of the memory store, a Redis
//! client-cache hit) is not a store call and is not timed: only `load`s that ask
//! the backend are.
//!
//! **Cookie rejections.** The cookie check tells what a Phoenix.Token can tell:
//! `malformed` is not a token (wrong shape, bad base64, empty) or a genuine
//! token holding no session id; `forged` is a well-formed token whose signature
//! matches none of the layer's secrets: tampered with, forged, signed with a
//! retired secret, or made with another salt (a wrong salt and a wrong secret
//! give the same mismatching HMAC, so they count together); `expired` is genuine
//! but older than its max age or past the absolute lifetime. A request with
//! several cookies of the session's name counts each rejected one.
//!
//! ```
//! // In the app's main, before serving: any recorder, e.g. a Prometheus exporter.
//! // metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! nex_session::observe::describe_metrics(); // optional: help texts and units
//! ```
//!
//! # Tracing
//!
//! Each request runs in a `DEBUG` span `session` (target `nex_session`) with the
//! fields `store` (the store's kind), `session` (the first 8 characters of the
//! session's [`SessionHandle`](crate::store::SessionHandle), when it has one: not
//! a secret, never usable as a cookie) and `outcome` (what the request did with
//! its session: `none` (it had none and made none), `unused`, `read` (used
//! without writing), `created`, `saved`, `renewed`, `cleared`, `ended` (its
//! cookie named a session the store no longer has), `failed` (it could not be
//! saved: a 503)). Events carry structured fields: rejected cookies at
//! `DEBUG` (`reason`), failed store calls at `WARN` (`store`, `operation`,
//! `kind`, `error`), a session that could not be saved at `ERROR` (with the
//! `session` handle). Nothing logged works as a cookie: no id, token or store
//! key is ever a field. With no subscriber, or one that leaves `DEBUG` of
//! `nex_session` off, the span costs one check of the level.
//!
//! # Health
//!
//! [`SessionLayer::health`](crate::SessionLayer::health) asks the store whether it
//! answers ([`SessionStore::health`](crate::store::SessionStore::health): a Redis
//! `PING`, a SQLite `SELECT 1`; the memory store is always up) and reports a
//! [`Health`]: `ok`, the store's kind, the latency. No session is read or
//! written, and it answers within the store's own timeout, at most
//! [`HEALTH_TIMEOUT`]. Mount it on a readiness route:
//!
//! ```
//! use axum::{http::StatusCode, routing::get, Router};
//! use nex_session::{token::SecretKeyBase, SessionConfig, SessionLayer};
//!
//! let layer = SessionLayer::memory(SessionConfig::new(SecretKeyBase::development()));
//! let probe = layer.clone();
//! let app: Router = Router::new()
//!     .route("/healthz", get(move || {
//!         let probe = probe.clone();
//!         async move {
//!             let health = probe.health().await;
//!             let status = if health.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
//!             (status, health.to_string())
//!         }
//!     }))
//!     .layer(layer);
//! ```

mod health;
mod names;
mod record;

pub use health::{Health, HEALTH_TIMEOUT};
pub use names::*;
pub use record::{client_cache, describe_metrics};

pub(crate) use record::{
    cookie_rejected, session_cleared, session_created, session_loaded, session_renewed, session_saved, store_sessions,
    unavailable_response, update_batch, update_retried, Cause, Instruments, Loaded, Rejected,
};
