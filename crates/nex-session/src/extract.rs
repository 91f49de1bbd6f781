//! The axum extractor for [`Session`].

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::session::Session;

/// Rejection of the [`Session`] extractor: the request did not go through `SessionLayer`.
///
/// Answers 500, since this is a wiring mistake of the app, not of the client.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "Missing request extension: nex_session::Session. Is `SessionLayer` added to this route? \
     (`Router::new().route(..).layer(SessionLayer::new(store, config))`)"
)]
pub struct MissingSessionLayer;

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!(target: "nex_session", "{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or(MissingSessionLayer)
    }
}

/// Lets handlers return `Result<_, SessionError>` and use `?`.
///
/// A store failure answers **503** with a short "try again" text (the store may be
/// back in a moment); anything else is the app's bug and answers 500. Details go
/// to the log, not to the client.
impl IntoResponse for crate::SessionError {
    fn into_response(self) -> Response {
        match self {
            crate::SessionError::Store(err) => {
                tracing::error!(target: "nex_session", error = %err, "session store error");
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable. Please try again.\n")
                        .into_response();
                response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                response
            }
            other => {
                tracing::error!(target: "nex_session", error = %other, "session error");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error\n").into_response()
            }
        }
    }
}
