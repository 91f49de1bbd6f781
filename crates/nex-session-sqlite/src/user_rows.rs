//! The per-user index's rows (`nex_session_users`) that a session's own
//! operations move: a rename moves the row with the session, a remove deletes
//! it. Binding, listing and revoking are the index itself (`users.rs`).

use rusqlite::{params, Connection};

/// Deletes the index row of the session under `key` (it is being removed).
pub(crate) fn unindex(conn: &Connection, key: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM nex_session_users WHERE store_key = ?1")?.execute(params![key])?;
    Ok(())
}

/// Moves the index row of the session under `from` to `to` (a rename); nothing
/// for an unbound session.
pub(crate) fn reindex(conn: &Connection, from: &[u8], to: &[u8]) -> rusqlite::Result<()> {
    // `OR REPLACE`: a row left by an expired session under `to` gives way instead
    // of failing the rename on the primary key.
    conn.prepare_cached("UPDATE OR REPLACE nex_session_users SET store_key = ?1 WHERE store_key = ?2")?
        .execute(params![to, from])?;
    Ok(())
}
