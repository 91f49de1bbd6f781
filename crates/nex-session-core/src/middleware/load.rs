//! Step 1 of a request, load: the session its cookie names, and its span.
//! Costs no store access: the store is read lazily, on the first `get`.

use http::header::COOKIE;
use http::Request;
use tracing::Span;

use super::shared::Shared;
use crate::session::Session;
use crate::token::now_ms;

/// The request's span (fields in the `observe` docs), or `None` when no
/// subscriber wants it: then it costs one check of the level, and nothing to
/// enter, leave or drop on the request's path. (A disabled `Span` is not free:
/// with tracing's `log` feature on, which another crate may turn on, it still
/// feeds the `log` crate on every enter, exit and drop.)
fn request_span(shared: &Shared) -> Option<Span> {
    // The cheapest check first: does any subscriber enable DEBUG at all?
    if tracing::level_filters::LevelFilter::current() < tracing::level_filters::LevelFilter::DEBUG {
        return None;
    }
    let span = tracing::debug_span!(
        target: "nex_session",
        "session",
        store = shared.context.instruments.store(),
        session = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    (!span.is_disabled()).then_some(span)
}

/// The handle of the session the request's cookie names, in its span.
#[cold]
#[inline(never)]
fn record_session(span: &Span, session: &Session) {
    if let Some(handle) = session.log_handle() {
        span.record("session", handle);
    }
}

/// The session of a request, from its cookie. Costs no store access.
///
/// The request's span is made here and kept by the session (on the heap it
/// already has, so the response future stays as small as it was).
pub(super) fn begin<B>(shared: &Shared, request: &Request<B>) -> Session {
    let span = request_span(shared);
    // One lookup of the `Cookie` headers serves the cookie's verification and the
    // session's cookie helper (a header-map lookup hashes the name: about 60 instructions).
    let cookie_headers = request.headers().get_all(COOKIE);
    let now = now_ms();
    let cookie = match &span {
        Some(span) => span.in_scope(|| shared.context.cookie.read(&cookie_headers, now)),
        None => shared.context.cookie.read(&cookie_headers, now),
    };
    let session = Session::begin(shared.context.clone(), now, cookie, &cookie_headers, span);
    if let Some(span) = session.span() {
        record_session(span, &session);
    }
    session
}
