//! [`ResponseFuture`]: runs the inner service with the ambient session, then persists.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::Entry;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tracing::{Instrument as _, Span};

use super::persist::{persist, persist_now, rescue_cookie, Finished};
use crate::ambient;
use crate::error::SessionError;
use crate::observe::{self, Cause};
use crate::session::Session;
use crate::store::BoxFuture;

pin_project! {
    /// The response future of [`SessionService`](super::service::SessionService).
    ///
    /// Most requests finish without a second allocation: when nothing is pending
    /// and no refresh is due, persisting is synchronous (at most signing a cookie).
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        /// The inner service is handling the request.
        Calling {
            // Holds a handle on the request's session as the ambient one.
            #[pin]
            inner: TaskLocalFuture<Session, F>,
            // The request's session, for the end of the request (an `Option`
            // only to move it out then).
            session: Option<Session>,
            // Whether the session layer around this one (if any) was looked for:
            // at the first poll, where its session is the ambient one.
            outer_found: bool,
            // The request's span, when a subscriber wants it (`None`: nothing to clone).
            span: Option<Span>,
        },
        /// The response is ready; the session is being saved.
        Persisting {
            persist: BoxFuture<'static, (Result<Finished, SessionError>, Session)>,
            // An `Option` only to move the response out when saving ends.
            response: Option<Response<B>>,
        },
        /// The response was handed out.
        Done,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(inner: TaskLocalFuture<Session, F>, session: Session, span: Option<Span>) -> Self {
        Self { state: State::Calling { inner, session: Some(session), outer_found: false, span } }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<&'static str>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { mut inner, session, outer_found, span } => {
                    // The request's span (`observe` docs) while the handler and the
                    // persist step run; left before the state changes.
                    let entered = span.as_ref().map(Span::enter);
                    if !*outer_found {
                        *outer_found = true;
                        adopt_outer(session.as_ref());
                    }
                    let response = match ready!(inner.as_mut().poll(cx)) {
                        Ok(response) => response,
                        Err(err) => {
                            drop(entered);
                            this.state.set(State::Done);
                            return Poll::Ready(Err(err));
                        }
                    };
                    let Some(session) = session.take() else {
                        drop(entered);
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(broken_invariant("the session of a finished handler is gone")));
                    };
                    if let Some(result) = persist_now(&session) {
                        let response = finish(response, result, &session);
                        drop(entered);
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(response));
                    }
                    let span = span.clone();
                    let persist = async move { (persist(&session).await, session) };
                    let persist: BoxFuture<'static, _> = match span {
                        Some(span) => Box::pin(persist.instrument(span)),
                        None => Box::pin(persist),
                    };
                    drop(entered);
                    this.state.set(State::Persisting { persist, response: Some(response) });
                }
                StateProj::Persisting { persist, response } => {
                    let (result, session) = ready!(persist.as_mut().poll(cx));
                    let entered = session.span().map(Span::enter);
                    let response = match response.take() {
                        Some(response) => finish(response, result, &session),
                        None => broken_invariant("the response of a persisting request is gone"),
                    };
                    drop(entered);
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Done => {
                    return Poll::Ready(Ok(broken_invariant("a response future was polled after it completed")));
                }
            }
        }
    }
}

/// Nested session layers: before this layer's handler first runs, the ambient
/// session is the one of the session layer around it, if any, which
/// [`Session::named`] then reaches. Looked for at the first poll, not in
/// `call`: a layer stacked directly inside another (a tower `ServiceBuilder`)
/// is called before the outer one sets its session.
fn adopt_outer(session: Option<&Session>) {
    if let (Some(session), Some(outer)) = (session, ambient::try_current()) {
        session.adopt_outer(outer);
    }
}

/// Adds the cookies and the cache protection, or replaces the response with a
/// 503 when saving failed.
fn finish<B: From<&'static str>>(
    mut response: Response<B>,
    result: Result<Finished, SessionError>,
    session: &Session,
) -> Response<B> {
    if let Some(span) = session.span() {
        record_outcome(span, result.is_ok(), session);
    }
    match result {
        // A request that never used the session: nothing to add.
        Ok(Finished { set_cookies, accessed: false }) if set_cookies.is_empty() => response,
        Ok(Finished { set_cookies, accessed }) => {
            let protect = session.context().cache_protection;
            let headers = response.headers_mut();
            if protect {
                protect_from_shared_caches(headers, accessed, !set_cookies.is_empty());
            }
            for cookie in set_cookies {
                headers.append(SET_COOKIE, cookie);
            }
            response
        }
        Err(err) => failed(&err, session),
    }
}

/// Fills in the span's outcome and the handle of the session the request ends
/// with (a new one after `renew` or a first write), out of line: only a
/// subscriber that wants the span pays for it.
#[cold]
#[inline(never)]
fn record_outcome(span: &Span, saved: bool, session: &Session) {
    let outcome = if saved { session.outcome().map_or("unknown", |outcome| outcome.as_str()) } else { "failed" };
    span.record("outcome", outcome);
    if let Some(handle) = session.log_handle() {
        span.record("session", handle);
    }
}

/// Keeps a response that depends on the session out of shared caches (a CDN, a
/// proxy), as Django and Spring do: `Vary: Cookie` when the handler used the
/// session, so no cache serves it for other cookies; `Cache-Control: private,
/// no-cache` when it sets a cookie, so no shared cache stores a `Set-Cookie`
/// (unless the handler chose its own `Cache-Control`).
fn protect_from_shared_caches(headers: &mut HeaderMap, accessed: bool, sets_cookie: bool) {
    if accessed || sets_cookie {
        // One lookup: most responses have no `Vary` yet.
        match headers.entry(VARY) {
            Entry::Vacant(vacant) => {
                vacant.insert(HeaderValue::from_static("Cookie"));
            }
            Entry::Occupied(mut occupied) => {
                let varies_already = occupied.iter().any(|value| {
                    value.to_str().is_ok_and(|v| {
                        v.split(',').any(|name| name.trim() == "*" || name.trim().eq_ignore_ascii_case("cookie"))
                    })
                });
                if !varies_already {
                    occupied.append(HeaderValue::from_static("Cookie"));
                }
            }
        }
    }
    if sets_cookie && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
}

/// The 503 for a failed save, out of line (see `CookieCodec::verify_fully`).
#[cold]
#[inline(never)]
fn failed<B: From<&'static str>>(err: &SessionError, session: &Session) -> Response<B> {
    observe::unavailable_response(Cause::Save);
    let handle = session.log_handle();
    tracing::error!(
        target: "nex_session",
        session = handle.as_deref().unwrap_or("none"),
        may_have_applied = err.may_have_applied(),
        error = %err,
        "session could not be saved; answering 503"
    );
    let text = if err.may_have_applied() {
        "Service temporarily unavailable: your session may or may not have been saved. Please check before trying again.\n"
    } else {
        "Service temporarily unavailable: your session could not be saved. Please try again.\n"
    };
    let mut response: Response<B> = text_response(StatusCode::SERVICE_UNAVAILABLE, text);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = rescue_cookie(session) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// A state that cannot happen did: fail loudly (a debug assertion, an error in
/// the log and a 500), never hang the request.
#[cold]
#[inline(never)]
fn broken_invariant<B: From<&'static str>>(what: &str) -> Response<B> {
    debug_assert!(false, "nex-session bug: {what}");
    tracing::error!(target: "nex_session", "nex-session bug: {what}; answering 500");
    text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error\n")
}

fn text_response<B: From<&'static str>>(status: StatusCode, body: &'static str) -> Response<B> {
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Ready;
    use std::task::Waker;

    use tower_layer::Layer;
    use tower_service::Service;

    use super::*;
    use crate::{SessionConfig, SessionLayer};

    /// A service that answers at once.
    struct Hello;

    impl Service<http::Request<()>> for Hello {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new("hello".to_owned())))
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "polled after it completed")]
    fn polling_a_finished_response_future_fails_loudly() {
        let layer = SessionLayer::memory(SessionConfig::new(crate::token::SecretKeyBase::development()));
        let mut future = std::pin::pin!(layer.layer(Hello).call(http::Request::new(())));
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else { panic!("the answer is ready") };
        assert_eq!(response.body(), "hello");
        let _ = future.as_mut().poll(&mut cx);
    }
}
