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

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or(MissingSessionLayer)
    }
}
