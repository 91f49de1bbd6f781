//! Statements sent together: tokio-postgres sends requests in the order they are
//! first polled and pipelines them, so polling two at once puts both in one
//! write and their answers come back together (one round trip for two). They are
//! joined with `tokio::join!(biased; ..)`, which polls in the order written; a
//! join of our own as an `async fn` kept a second copy of each future it joined
//! (its arguments, then pinned locals), doubling at every level of nesting.

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
    // `biased`: polled in this order, so `BEGIN` is sent first.
    let (began, result) = tokio::join!(biased; begin, statement);
    began?;
    result
}
