//! The session middleware: one request's lifecycle, top to bottom.
//!
//! ```
//! use axum::{routing::get, Router};
//! use nex_session::{SessionConfig, SessionLayer, token::SecretKeyBase};
//! use tower::ServiceBuilder;
//! # fn secret() -> SecretKeyBase { SecretKeyBase::new("a-secret-of-at-least-32-bytes-len").unwrap() }
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async {
//!         let n = nex_session::update("visits", 0u64, |n| n + 1).await.unwrap_or(0);
//!         format!("visit {n}")
//!     }))
//!     .layer(ServiceBuilder::new().layer(SessionLayer::memory(SessionConfig::new(secret()))));
//! ```
//!
//! The steps, each in its own file and called in this order from
//! [`SessionService::call`] (`service.rs`):
//!
//! 1. **load** (`load.rs`): verify the `_nex_session` cookie
//!    (no store access; a missing, forged, foreign or expired cookie means "no session").
//! 2. **call** the inner service with the [`Session`] available ambiently
//!    (task-local), where the ambient API, the extractor, a `CsrfLayer` and a
//!    nested session layer (at its first poll) all find it. Not as a request
//!    extension: an insert there cost an allocation per request.
//! 3. **persist** before the response head leaves (`future.rs` waits for the inner
//!    service, `persist.rs` does the step): write pending changes, slide the expiry
//!    when due, set or delete the cookie, add queued cookies. If saving fails the
//!    response becomes a 503 and the error is logged.
//! 4. **clean up**: the state belongs to this request's future alone; it is dropped
//!    with it, also when the handler panics or the future is cancelled.
//!
//! The layer's state (`shared.rs`) is built once per layer (`layer.rs`); expired
//! sessions are purged in the background (`sweep.rs`).

mod future;
mod layer;
mod load;
mod persist;
mod service;
mod shared;
mod sweep;

pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub(crate) use persist::persist;
pub use service::SessionService;
