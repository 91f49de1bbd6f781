//! [`CsrfLayer`]: refuses unsafe requests that carry no valid CSRF token.
//!
//! Safe methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`) pass untouched: they must not
//! change anything, so a forged one gains nothing. Every other request needs a
//! token from [`Csrf::token`](crate::csrf::Csrf::token), sent in the
//! `x-csrf-token` header or, for an `application/x-www-form-urlencoded` body, in
//! the `_csrf_token` field. Without a valid one the answer is `403 Forbidden` and
//! the handler never runs. The body of a form is read to find the field and
//! handed on unchanged; other bodies (JSON, multipart) are never read or
//! buffered here, so send the header with them.
//!
//! Reading a form body is bounded three ways, so that clients cannot make the
//! layer hold memory: its size ([`DEFAULT_FORM_LIMIT`], 64 KiB: a token needs a
//! few dozen bytes; larger is `413`), the time to receive it
//! ([`DEFAULT_FORM_TIMEOUT`], 10 s; a slower client gets `408` and the
//! connection is closed), and the bytes all requests of one layer may buffer at
//! once ([`DEFAULT_BUFFER_BUDGET`], 16 MiB; beyond it `503` with `Retry-After:
//! 1`, rather than growth). Each has a `with_…` setter.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::ambient;
use crate::session::{CSRF_FIELD, CSRF_HEADER};

/// The default limit on a form body read to find the token: 64 KiB. A form
/// that needs more (a long text field) raises it with [`CsrfLayer::with_form_limit`],
/// or sends the token in the `x-csrf-token` header (its body is then never read).
pub const DEFAULT_FORM_LIMIT: usize = 64 * 1024;

/// The default time a client has to send a form body: 10 s.
pub const DEFAULT_FORM_TIMEOUT: Duration = Duration::from_secs(10);

/// The default bound on form bytes buffered at once by all requests of one
/// layer (one app): 16 MiB, 256 forms at the default limit.
pub const DEFAULT_BUFFER_BUDGET: usize = 16 << 20;

/// The tower layer that checks CSRF tokens. Put it inside
/// [`SessionLayer`](crate::SessionLayer) (add it with `.layer` *before* the
/// session layer, so the session layer wraps it).
///
/// In the wrong order every request, safe ones too, is answered 500 with a body
/// and an error event that say how to order the layers. The mistake is caught on
/// the first request rather than when the router is built: axum's `.layer` takes
/// any tower layer, so the order is not visible in the types without making
/// every app name the session layer's service type.
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
#[derive(Debug, Clone)]
pub struct CsrfLayer {
    limits: Limits,
}

/// How a form body is read; shared by every service of one layer.
#[derive(Debug, Clone)]
struct Limits {
    form_limit: usize,
    form_timeout: Duration,
    budget: Arc<Budget>,
}

/// Bytes that requests may buffer at once, and how many they hold now.
#[derive(Debug)]
struct Budget {
    limit: usize,
    held: AtomicUsize,
}

/// Bytes taken from a [`Budget`], given back on drop (the request ended, however).
struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    /// Takes `bytes`, or `None` when that would pass the limit.
    fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let taken = self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(bytes).filter(|total| *total <= self.limit)
        });
        taken.ok().map(|_| Reservation { budget: self.clone(), bytes })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl CsrfLayer {
    /// A layer reading form bodies up to [`DEFAULT_FORM_LIMIT`], within
    /// [`DEFAULT_FORM_TIMEOUT`], and [`DEFAULT_BUFFER_BUDGET`] at once.
    #[must_use]
    pub fn new() -> Self {
        let budget = Arc::new(Budget { limit: DEFAULT_BUFFER_BUDGET, held: AtomicUsize::new(0) });
        Self { limits: Limits { form_limit: DEFAULT_FORM_LIMIT, form_timeout: DEFAULT_FORM_TIMEOUT, budget } }
    }

    /// The time a client has to send a form body (default [`DEFAULT_FORM_TIMEOUT`]);
    /// a slower one is answered `408 Request Timeout` and its connection closed.
    ///
    /// ```
    /// let layer = nex_session::csrf::CsrfLayer::new().with_form_timeout(std::time::Duration::from_secs(5));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_form_timeout(mut self, timeout: Duration) -> Self {
        self.limits.form_timeout = timeout;
        self
    }

    /// The form bytes all requests of this layer may buffer at once (default
    /// [`DEFAULT_BUFFER_BUDGET`]). A form that would pass it is answered `503`
    /// with `Retry-After: 1` before its body is read. Each form counts for its
    /// `Content-Length`, or the form limit when it sends none, until its request ends.
    ///
    /// ```
    /// let layer = nex_session::csrf::CsrfLayer::new().with_buffer_budget(64 << 20);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_buffer_budget(mut self, bytes: usize) -> Self {
        self.limits.budget = Arc::new(Budget { limit: bytes, held: AtomicUsize::new(0) });
        self
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
        self.limits.form_limit = bytes;
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
        CsrfService { inner, limits: self.limits.clone() }
    }
}

/// The service made by [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct CsrfService<S> {
    inner: S,
    limits: Limits,
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
        // Checked on every request, safe ones too, so a layer in the wrong order
        // fails on the first page load, not on the first form sent. Checked when
        // polled, where the session layer has its session ambient (a layer
        // stacked directly inside it is called before it sets it).
        if is_safe(request.method()) {
            return Box::pin(async move {
                match ambient::is_set() {
                    true => inner.call(request).await,
                    false => Ok(outside_session_layer()),
                }
            });
        }
        let limits = self.limits.clone();
        Box::pin(async move {
            // Only an unsafe request needs its own handle on the session.
            let Some(session) = ambient::try_current() else {
                return Ok(outside_session_layer());
            };
            // `_held` keeps the form's bytes counted until the handler is done with them.
            let (token, request, _held) = match find_token(request, &limits).await {
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

/// What the layer tells when no session layer runs outside it: a programming
/// error of the app, so a 500 whose body and log say how to order the layers.
#[cold]
fn outside_session_layer() -> Response {
    tracing::error!(
        target: "nex_session",
        "CsrfLayer found no session: SessionLayer must wrap it. With axum, add CsrfLayer with \
         `.layer` before SessionLayer: `.layer(CsrfLayer::new()).layer(session_layer)`. Answering 500"
    );
    let body = "Internal server error: CsrfLayer found no session. SessionLayer must wrap it: with axum, \
                `.layer(CsrfLayer::new()).layer(session_layer)` (the last `.layer` is the outermost).\n";
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The token of a request: the header, else the form field (the body is read
/// and put back, its bytes reserved from the budget). `Err` is the answer for a
/// body that cannot be read within the limits.
async fn find_token(
    request: Request<Body>,
    limits: &Limits,
) -> Result<(Option<String>, Request<Body>, Option<Reservation>), Response> {
    if let Some(header) = request.headers().get(CSRF_HEADER) {
        let token = header.to_str().ok().map(str::to_owned);
        return Ok((token, request, None));
    }
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, request, None));
    }
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limits.form_limit) {
        return Err(too_large());
    }
    let Some(reservation) = limits.budget.reserve(declared.unwrap_or(limits.form_limit)) else {
        tracing::warn!(target: "nex_session", budget = limits.budget.limit, "form bodies buffered at once reached the budget: answering 503");
        let mut busy =
            (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable: too many forms at once\n").into_response();
        busy.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(busy);
    };
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(limits.form_timeout, Limited::new(body, limits.form_limit).collect());
    let bytes = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(_)) => return Err((StatusCode::BAD_REQUEST, "Bad request: unreadable body\n").into_response()),
        Err(_) => {
            // The rest of the body is not wanted: close the connection rather than wait for it.
            let mut slow =
                (StatusCode::REQUEST_TIMEOUT, "Request timeout: the form body came too slowly\n").into_response();
            slow.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            return Err(slow);
        }
    };
    let token = form_field(&bytes, CSRF_FIELD);
    Ok((token, Request::from_parts(parts, Body::from(bytes)), Some(reservation)))
}

fn too_large() -> Response {
    let mut refused = (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large\n").into_response();
    // The body was not read to its end: the connection cannot carry another request.
    refused.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    refused
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
    fn the_budget_refuses_what_would_pass_it_and_takes_back_what_ends() {
        let budget = Arc::new(Budget { limit: 100, held: AtomicUsize::new(0) });
        let first = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none(), "60 + 41 > 100");
        let second = budget.reserve(40).unwrap();
        assert!(budget.reserve(1).is_none());
        drop(first);
        assert!(budget.reserve(60).is_some(), "given back on drop");
        drop(second);
        assert_eq!(budget.held.load(Ordering::Acquire), 0);
        assert!(budget.reserve(usize::MAX).is_none(), "no overflow");
    }

    #[test]
    fn only_unsafe_methods_are_checked() {
        assert!(is_safe(&Method::GET) && is_safe(&Method::HEAD) && is_safe(&Method::OPTIONS));
        assert!(!is_safe(&Method::POST) && !is_safe(&Method::PUT) && !is_safe(&Method::DELETE));
        assert!(!is_safe(&Method::PATCH));
    }
}
