//! Errors a handler can see.

use std::time::Duration;

/// A boxed error from a store's backend, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or refused the operation.
    #[error("session store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The backend did not answer in time.
    #[error("session store did not answer within {0:?}")]
    Timeout(Duration),
    /// Stored bytes that the store itself cannot read.
    #[error("session store data is corrupt: {0}")]
    Corrupt(#[source] BoxError),
}

/// Why a session operation failed.
///
/// ```
/// # async fn demo() {
/// // Outside a request that went through `SessionLayer`:
/// let err = nex_session::get::<String>("user_id").await.unwrap_err();
/// assert!(err.to_string().contains("SessionLayer"));
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The ambient API was called outside a request handled by `SessionLayer`.
    #[error(
        "no session here: nex-session's ambient API works only while handling a request \
         that went through SessionLayer. Add `.layer(SessionLayer::new(..))` to the router; \
         tasks started with tokio::spawn do not inherit the session, so pass them the \
         `Session` handle (the extractor) instead"
    )]
    NoLayer,
    /// The store failed; nothing of this operation was saved.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The value could not be serialized.
    #[error("could not encode the value for session key {key:?}: {source}")]
    Encode {
        /// The session key.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// The stored value of this key does not decode as the requested type.
    /// Other keys are unaffected.
    #[error("the stored value of session key {key:?} does not decode as the requested type: {source}")]
    Decode {
        /// The session key.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// A cookie name or value that cannot go into a `Set-Cookie` header.
    #[error("invalid cookie {0:?}: names must be tokens and values cookie-octets (RFC 6265)")]
    InvalidCookie(String),
    /// A buffered write (`put`, `delete`, a cookie) after the response was already
    /// given its cookies, e.g. from a task that outlived the request: it could never
    /// be saved. Use `update` (written at once) or write before the handler returns.
    #[error(
        "the response for this session was already sent; a put/delete/cookie now could never be saved \
         (write before the handler returns, or use `update`, which writes at once)"
    )]
    ResponseSent,
    /// The OS random number generator failed while making a session id.
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Lets handlers return `Result<_, SessionError>` and use `?`.
///
/// A store failure answers **503** with a short "try again" text (the store may be
/// back in a moment); anything else is the app's bug and answers 500. Details go
/// to the log, not to the client.
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for SessionError {
    fn into_response(self) -> axum_core::response::Response {
        match self {
            SessionError::Store(err) => {
                tracing::error!(target: "nex_session", error = %err, "session store error");
                let mut response =
                    (http::StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable. Please try again.\n")
                        .into_response();
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
