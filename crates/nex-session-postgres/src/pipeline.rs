//! Statements sent together: tokio-postgres sends requests in the order they are
//! first polled and pipelines them, so polling two at once puts both in one
//! write and their answers come back together (one round trip for two).

use std::future::Future;

use tokio_postgres::Client;

/// Whether `BEGIN` still has to go out before the next statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// No transaction (a read), or `BEGIN` already sent.
    Sent,
    /// `BEGIN` goes out with the next statement.
    Pending,
}

/// Runs `statement`, sending a pending `BEGIN` just before it: tokio-postgres sends
/// requests in the order they are first polled and pipelines them, so both leave in
/// one write and their answers come back together. An error of either fails the call.
pub(crate) async fn after_begin<T>(
    client: &Client,
    begin: &mut Begin,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    if *begin == Begin::Sent {
        return statement.await;
    }
    *begin = Begin::Sent;
    let begin = client.batch_execute("BEGIN");
    let (began, result) = both(begin, statement).await;
    began?;
    result
}

/// Polls two futures together (BEGIN first, so it is sent first) until both are done.
pub(crate) async fn both<A, B>(a: A, b: B) -> (A::Output, B::Output)
where
    A: Future,
    B: Future,
{
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut a_out, mut b_out) = (None, None);
    std::future::poll_fn(|cx| {
        if a_out.is_none() {
            if let std::task::Poll::Ready(out) = a.as_mut().poll(cx) {
                a_out = Some(out);
            }
        }
        if b_out.is_none() {
            if let std::task::Poll::Ready(out) = b.as_mut().poll(cx) {
                b_out = Some(out);
            }
        }
        match (a_out.take(), b_out.take()) {
            (Some(a), Some(b)) => std::task::Poll::Ready((a, b)),
            (a, b) => {
                (a_out, b_out) = (a, b);
                std::task::Poll::Pending
            }
        }
    })
    .await
}
