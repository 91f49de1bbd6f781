//! The service a [`SessionLayer`](super::SessionLayer) makes: one request's
//! lifecycle, top to bottom, in [`SessionService::call`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::load::begin;
use super::shared::Shared;
use super::sweep;
use crate::ambient;

/// The service made by [`SessionLayer`](super::SessionLayer).
#[derive(Clone)]
pub struct SessionService<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionService(..)")
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        sweep::start_once(&self.shared);
        // 1. load: verify the cookie; the store is read lazily, on the first `get`.
        let session = begin(&self.shared, &request);
        // 2. call: the inner future runs with the session as the ambient one,
        //    which is where the extractor, a `CsrfLayer` and a nested session
        //    layer find it (not in the request's extensions: an insert there cost
        //    an allocation and a map insert per request, about 300 instructions).
        //    Calling the inner service here (not in a spawned future) needs no
        //    clone of it.
        let span = session.span().cloned();
        let inner = ambient::scope(session.clone(), self.inner.call(request));
        // 3. persist happens in ResponseFuture once the inner future is done;
        // 4. clean up: the state lives in the session, dropped with the future.
        ResponseFuture::new(inner, session, span)
    }
}
