//! A session's row and its field rows, inside a call's transaction: lock the
//! session row and say what it is, make it ready for a write, read or write one
//! field. The store's writes and the user index's both go through these, so they
//! take the same locks in the same order.

use nex_session_core::store::Presence;
use nex_session_core::StoreKey;

use crate::pool::Lease;

/// What a session row holds, locked for the rest of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Row {
    Missing,
    Expired,
    Live,
}

/// Locks the session row (if any) and says what it is.
pub(crate) async fn lock(c: &mut Lease<'_>, key: &[u8], now: i64) -> Result<Row, tokio_postgres::Error> {
    let row = c.query_opt("SELECT expires_at FROM nex_sessions WHERE key = $1 FOR UPDATE", &[&key]).await?;
    let expires_at = match row {
        Some(row) => Some(row.try_get::<_, i64>(0)?),
        None => None,
    };
    Ok(match expires_at {
        None => Row::Missing,
        Some(expires_at) if expires_at > now => Row::Live,
        Some(_) => Row::Expired,
    })
}

/// Makes a locked session row ready for a write with `presence`: `false` when
/// the condition fails. An expired leftover is removed first (its data must not
/// come back); a missing row is inserted.
pub(crate) async fn claim(
    c: &mut Lease<'_>,
    key: &[u8],
    row: Row,
    presence: Presence,
    expires_at: i64,
) -> Result<bool, tokio_postgres::Error> {
    if !presence.holds(row == Row::Live) {
        return Ok(false);
    }
    match row {
        Row::Live => {
            c.execute("UPDATE nex_sessions SET expires_at = $2 WHERE key = $1", &[&key, &expires_at]).await?;
            Ok(true)
        }
        Row::Expired | Row::Missing => {
            if row == Row::Expired {
                c.execute("DELETE FROM nex_sessions WHERE key = $1", &[&key]).await?;
            }
            // Another instance may create the same key between our lock (which found
            // nothing to lock) and this insert: then it is there, and `New` fails.
            let inserted = c
                .execute(
                    "INSERT INTO nex_sessions (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &expires_at],
                )
                .await?;
            Ok(inserted == 1)
        }
    }
}

/// Writes one field of a locked session (`None` deletes it).
pub(crate) async fn write_field(
    c: &mut Lease<'_>,
    key: &[u8],
    field: &str,
    value: Option<&[u8]>,
) -> Result<(), tokio_postgres::Error> {
    match value {
        Some(value) => {
            c.execute(
                "INSERT INTO nex_session_fields (key, field, value) VALUES ($1, $2, $3)
                 ON CONFLICT (key, field) DO UPDATE SET value = excluded.value",
                &[&key, &field, &value],
            )
            .await?
        }
        None => c.execute("DELETE FROM nex_session_fields WHERE key = $1 AND field = $2", &[&key, &field]).await?,
    };
    Ok(())
}

/// Reads one field of a locked session.
pub(crate) async fn read_field(
    c: &mut Lease<'_>,
    key: &[u8],
    field: &str,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let row =
        c.query_opt("SELECT value FROM nex_session_fields WHERE key = $1 AND field = $2", &[&key, &field]).await?;
    match row {
        Some(row) => row.try_get(0),
        None => Ok(None),
    }
}

/// A 32-byte key read back from a table (only such keys are written).
pub(crate) fn store_key(bytes: &[u8]) -> Option<StoreKey> {
    <[u8; 32]>::try_from(bytes).ok().map(StoreKey::from_bytes)
}
