//! The user index's statement the store itself runs: `rename` and `remove` lock a
//! session's index row before its session row, the order every transaction takes
//! them in (see the lock order in `users.rs`).

use crate::pool::Lease;

/// Locks the index row of the session under `key`, if it has one (see the lock
/// order in the docs of `users.rs`).
pub(crate) async fn lock_index_row(c: &mut Lease<'_>, key: &[u8]) -> Result<(), tokio_postgres::Error> {
    c.query_opt("SELECT 1 FROM nex_session_users WHERE store_key = $1 FOR UPDATE", &[&key]).await?;
    Ok(())
}
