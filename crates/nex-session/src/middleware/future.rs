//! [`ResponseFuture`]: runs the inner service with the ambient session, then persists.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::{CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::error::SessionError;
use crate::session::{Outgoing, Session};
use crate::store::BoxFuture;

pin_project! {
    /// The response future of [`SessionService`](super::SessionService).
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
        Calling {
            #[pin]
            inner: TaskLocalFuture<Session, F>,
            session: Option<Session>,
        },
        Persisting {
            persist: BoxFuture<'static, (Result<Outgoing, SessionError>, Session)>,
            response: Option<Response<B>>,
        },
        Done,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(inner: TaskLocalFuture<Session, F>, session: Session) -> Self {
        Self { state: State::Calling { inner, session: Some(session) } }
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
                StateProj::Calling { inner, session } => {
                    let response = match ready!(inner.poll(cx)) {
                        Ok(response) => response,
                        Err(err) => return Poll::Ready(Err(err)),
                    };
                    let Some(session) = session.take() else { return Poll::Pending };
                    if let Some(result) = session.try_persist_now() {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(finish(response, result, &session)));
                    }
                    let persist = Box::pin(async move {
                        let result = session.persist().await;
                        (result, session)
                    });
                    this.state.set(State::Persisting { persist, response: Some(response) });
                }
                StateProj::Persisting { persist, response } => {
                    let (result, session) = ready!(persist.as_mut().poll(cx));
                    let Some(response) = response.take() else { return Poll::Pending };
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(finish(response, result, &session)));
                }
                // Polled after completion: a caller bug; stay pending rather than panic.
                StateProj::Done => return Poll::Pending,
            }
        }
    }
}

/// Adds the cookies, or replaces the response with a 503 when saving failed.
fn finish<B: From<&'static str>>(
    mut response: Response<B>,
    result: Result<Outgoing, SessionError>,
    session: &Session,
) -> Response<B> {
    match result {
        // The usual read or write: nothing to add.
        Ok(outgoing) if outgoing.set_cookies.is_empty() => response,
        Ok(outgoing) => {
            let headers = response.headers_mut();
            for cookie in outgoing.set_cookies {
                headers.append(SET_COOKIE, cookie);
            }
            response
        }
        Err(err) => failed(&err, session),
    }
}

/// The 503 for a failed save, out of line (see `Shared::verify_cookie_fully`).
#[cold]
#[inline(never)]
fn failed<B: From<&'static str>>(err: &SessionError, session: &Session) -> Response<B> {
    tracing::error!(target: "nex_session", error = %err, "session could not be saved; answering 503");
    let mut response = unavailable();
    if let Some(cookie) = session.rescue_cookie() {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// The answer when the session could not be saved: nothing is reported as saved.
fn unavailable<B: From<&'static str>>() -> Response<B> {
    let mut response =
        Response::new(B::from("Service temporarily unavailable: your session could not be saved. Please try again.\n"));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
