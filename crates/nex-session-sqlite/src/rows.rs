//! The statements on a session's rows (`nex_sessions`, `nex_session_fields`) that
//! the store's operations and the user index share; each runs inside the
//! caller's transaction.

use rusqlite::{params, Connection, OptionalExtension};

use nex_session_core::store::Presence;

/// Whether a live session row exists.
pub(crate) fn live(conn: &Connection, key: &[u8], now: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM nex_sessions WHERE key = ?1 AND expires_at > ?2")?
        .query_row(params![key, now], |_| Ok(()))
        .optional()
        .map(|row| row.is_some())
}

/// Removes a session's rows (used for expired leftovers and `remove`).
pub(crate) fn delete_session(conn: &Connection, key: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM nex_session_fields WHERE key = ?1")?.execute(params![key])?;
    conn.prepare_cached("DELETE FROM nex_sessions WHERE key = ?1")?.execute(params![key])?;
    Ok(())
}

/// Checks presence inside a transaction and prepares the session row:
/// `false` when the condition fails.
pub(crate) fn claim(
    conn: &Connection,
    key: &[u8],
    presence: Presence,
    expires_at: i64,
    now: i64,
) -> rusqlite::Result<bool> {
    claim_known(conn, key, presence, live(conn, key, now)?, expires_at)
}

/// [`claim`] when the transaction already read whether the session is live.
pub(crate) fn claim_known(
    conn: &Connection,
    key: &[u8],
    presence: Presence,
    is_live: bool,
    expires_at: i64,
) -> rusqlite::Result<bool> {
    if !presence.holds(is_live) {
        return Ok(false);
    }
    if !is_live {
        // An expired leftover: its data must not come back.
        delete_session(conn, key)?;
    }
    conn.prepare_cached(
        "INSERT INTO nex_sessions (key, expires_at) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at",
    )?
    .execute(params![key, expires_at])?;
    Ok(true)
}

pub(crate) fn write_field(conn: &Connection, key: &[u8], field: &str, value: Option<&[u8]>) -> rusqlite::Result<()> {
    match value {
        Some(value) => conn
            .prepare_cached(
                "INSERT INTO nex_session_fields (key, field, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key, field) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, field, value])?,
        None => conn
            .prepare_cached("DELETE FROM nex_session_fields WHERE key = ?1 AND field = ?2")?
            .execute(params![key, field])?,
    };
    Ok(())
}

pub(crate) fn read_field(conn: &Connection, key: &[u8], field: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM nex_session_fields WHERE key = ?1 AND field = ?2")?
        .query_row(params![key, field], |r| r.get(0))
        .optional()
}
