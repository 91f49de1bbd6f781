//! The axum integration: the extractor for [`Session`], and [`SessionError`] as a response.

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::ambient;
use crate::error::SessionError;
use crate::observe::{self, Cause, ErrorKind};
use crate::session::Session;

/// Rejection of the [`Session`] extractor: the request did not go through `SessionLayer`.
///
/// Answers 500, since this is a wiring mistake of the app, not of the client.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "No nex_session::Session for this request. Is `SessionLayer` added to this route? \
     (`Router::new().route(..).layer(SessionLayer::new(store, config))`)"
)]
pub struct MissingSessionLayer;

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!(target: "nex_session", "{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The extractor gives the request's session: the one the ambient API uses (the
/// innermost session layer's), found where that API finds it, in the task that
/// runs the handler. It does not come from the request's extensions: a service
/// inside the layer that hands requests to another task (tower's `Buffer`)
/// loses it there, as it loses the ambient API; pass the [`Session`] along
/// instead.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        ambient::try_current().ok_or(MissingSessionLayer)
    }
}

/// Lets handlers return `Result<_, SessionError>` and use `?`.
///
/// A store failure answers **503** with a short "try again" text (the store may be
/// back in a moment), or, when a write may have been saved after all
/// ([`SessionError::may_have_applied`]), a text that asks to check before trying
/// again; anything else is the app's bug and answers 500. Details go to the log,
/// not to the client.
impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        match self {
            SessionError::Store(err) => {
                observe::unavailable_response(Cause::Handler);
                tracing::error!(
                    target: "nex_session",
                    kind = ErrorKind::of(&err).as_str(),
                    error = %err,
                    "session store error; answering 503"
                );
                let text = if err.may_have_applied() {
                    "Service temporarily unavailable: your last change may or may not have been saved. \
                     Please check before trying again.\n"
                } else {
                    "Service temporarily unavailable. Please try again.\n"
                };
                let mut response = (http::StatusCode::SERVICE_UNAVAILABLE, text).into_response();
                response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                response
            }
            other => {
                tracing::error!(target: "nex_session", error = %other, "session error");
                (http::StatusCode::INTERNAL_SERVER_ERROR, "Internal server error\n").into_response()
            }
        }
    }
}
