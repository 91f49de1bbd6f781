//! [`CsrfLayer`]: refuses unsafe requests that carry no valid CSRF token.
//!
//! Safe methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`) pass untouched: they must not
//! change anything, so a forged one gains nothing. Every other request needs a
//! token from [`Csrf::token`](crate::csrf::Csrf::token), sent in the
//! `x-csrf-token` header or, for an `application/x-www-form-urlencoded` body, in
//! the `_csrf_token` field. Without a valid one the answer is `403 Forbidden` and
//! the handler never runs. The body of a form is read (up to a limit) to find the
//! field and handed on unchanged; other bodies (JSON, multipart) are not parsed,
//! so send the header with them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::session::{Session, CSRF_FIELD, CSRF_HEADER};

/// The default limit on a form body read to find the token: 1 MiB.
pub const DEFAULT_FORM_LIMIT: usize = 1 << 20;

/// The tower layer that checks CSRF tokens. Put it inside
/// [`SessionLayer`](crate::SessionLayer) (add it with `.layer` *before* the
/// session layer, so the session layer wraps it).
///
/// ```
/// use axum::{routing::{get, post}, Router};
/// use nex_session::{csrf::CsrfLayer, token::SecretKeyBase, SessionConfig, SessionLayer};
///
/// let config = SessionConfig::new(SecretKeyBase::new("a-secret-of-at-least-32-bytes-len").unwrap());
/// let app: Router = Router::new()
///     .route("/form", get(|| async {
///         let token = nex_session::csrf::token().await.unwrap_or_default();
///         format!(r#"<form method="post" action="/save"><input type="hidden" name="_csrf_token" value="{token}"></form>"#)
///     }))
///     .route("/save", post(|| async { "saved" }))
///     .layer(CsrfLayer::new())
///     .layer(SessionLayer::memory(config));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CsrfLayer {
    form_limit: usize,
}

impl CsrfLayer {
    /// A layer reading form bodies up to [`DEFAULT_FORM_LIMIT`].
    #[must_use]
    pub fn new() -> Self {
        Self { form_limit: DEFAULT_FORM_LIMIT }
    }

    /// Reads form bodies up to `bytes` to find the token; a larger form without
    /// the header is refused with `413 Payload Too Large`.
    ///
    /// ```
    /// let layer = nex_session::csrf::CsrfLayer::new().with_form_limit(64 * 1024);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_form_limit(mut self, bytes: usize) -> Self {
        self.form_limit = bytes;
        self
    }
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService { inner, form_limit: self.form_limit }
    }
}

/// The service made by [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct CsrfService<S> {
    inner: S,
    form_limit: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request<Body>> for CsrfService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request; keep a fresh one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_safe(request.method()) {
            return Box::pin(inner.call(request));
        }
        let form_limit = self.form_limit;
        Box::pin(async move {
            let Some(session) = request.extensions().get::<Session>().cloned() else {
                tracing::error!(target: "nex_session", "CsrfLayer needs SessionLayer around it; answering 500");
                return Ok((StatusCode::INTERNAL_SERVER_ERROR, "Internal server error\n").into_response());
            };
            let (token, request) = match find_token(request, form_limit).await {
                Ok(found) => found,
                Err(refusal) => return Ok(refusal),
            };
            let valid = match token {
                Some(token) => session.csrf().verify(&token).await,
                None => Ok(false),
            };
            match valid {
                Ok(true) => inner.call(request).await,
                Ok(false) => {
                    tracing::debug!(target: "nex_session", "request without a valid CSRF token refused");
                    Ok((StatusCode::FORBIDDEN, "Forbidden: missing or invalid CSRF token\n").into_response())
                }
                Err(err) => Ok(err.into_response()),
            }
        })
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The token of a request: the header, else the form field (the body is read
/// and put back). `Err` is the answer for a body that cannot be read.
async fn find_token(request: Request<Body>, form_limit: usize) -> Result<(Option<String>, Request<Body>), Response> {
    if let Some(header) = request.headers().get(CSRF_HEADER) {
        let token = header.to_str().ok().map(str::to_owned);
        return Ok((token, request));
    }
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, request));
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, form_limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err((StatusCode::PAYLOAD_TOO_LARGE, "Payload too large\n").into_response());
        }
        Err(_) => return Err((StatusCode::BAD_REQUEST, "Bad request: unreadable body\n").into_response()),
    };
    let token = form_field(&bytes, CSRF_FIELD);
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

/// The value of `field` in a URL-encoded form. Tokens are base64url, which a
/// browser sends unescaped, so the value is taken as it is.
fn form_field(body: &[u8], field: &str) -> Option<String> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let mut halves = pair.splitn(2, |b| *b == b'=');
        let name = halves.next().unwrap_or_default();
        let value = halves.next().unwrap_or_default();
        (name == field.as_bytes()).then(|| String::from_utf8_lossy(value).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_found_among_others() {
        assert_eq!(form_field(b"a=1&_csrf_token=abc-_&b=2", "_csrf_token").as_deref(), Some("abc-_"));
        assert_eq!(form_field(b"_csrf_token", "_csrf_token").as_deref(), Some(""));
        assert_eq!(form_field(b"x_csrf_token=1", "_csrf_token"), None);
        assert_eq!(form_field(b"", "_csrf_token"), None);
    }

    #[test]
    fn only_unsafe_methods_are_checked() {
        assert!(is_safe(&Method::GET) && is_safe(&Method::HEAD) && is_safe(&Method::OPTIONS));
        assert!(!is_safe(&Method::POST) && !is_safe(&Method::PUT) && !is_safe(&Method::DELETE));
        assert!(!is_safe(&Method::PATCH));
    }
}
