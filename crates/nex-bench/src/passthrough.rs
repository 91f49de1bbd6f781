//! A layer that does nothing: the `bare-layer` variant, what any tower layer costs
//! under `Router::layer` before it does any work of its own (axum clones the
//! route's boxed service once more per request, and boxes one more future).

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

/// Wraps every route in a [`PassThrough`].
#[derive(Clone, Copy)]
pub(crate) struct PassThroughLayer;

impl<S> Layer<S> for PassThroughLayer {
    type Service = PassThrough<S>;

    fn layer(&self, inner: S) -> PassThrough<S> {
        PassThrough { inner }
    }
}

/// Calls the inner service and returns its future untouched.
#[derive(Clone)]
pub(crate) struct PassThrough<S> {
    inner: S,
}

impl<S: Service<R>, R> Service<R> for PassThrough<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.inner.call(request)
    }
}
