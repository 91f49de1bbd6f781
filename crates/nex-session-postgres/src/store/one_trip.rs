//! The compare-and-set of a field of an existing session in one statement: the
//! hot path of `update`, sent with its commit in one round trip.

use nex_session_core::store::toolkit::update_chain::{Cas, CasAnswer, CasOp};
use nex_session_core::store::Presence;
use nex_session_core::token::now_ms;

use nex_session_core::StoreError;
use tokio::time::Instant;

use crate::pool::Pool;

/// The compare-and-set of a field of an existing session (every batch of the
/// group commit whose presence is `Existing`, i.e. all but a new session's first
/// and the check-only ones): one statement that writes only if the
/// session is live and the field holds the expected value, and then slides the
/// expiry, answering a row when it wrote. It runs right after the statement that
/// locks the session row, in the same round trip: every writer of a session's
/// fields holds that lock, so the statement (whose snapshot starts after the lock
/// is held) sees the field as it is. Parameters: key, now, field, then as named.
mod one_trip_sql {
    /// `$4` expected value, `$5` new value, `$6` expiry.
    pub(super) const REPLACE: &str = "WITH w AS (
        UPDATE nex_session_fields SET value = $5
        WHERE key = $1 AND field = $3 AND value = $4
          AND EXISTS (SELECT 1 FROM nex_sessions WHERE key = $1 AND expires_at > $2)
        RETURNING 1)
    UPDATE nex_sessions SET expires_at = $6 WHERE key = $1 AND EXISTS (SELECT 1 FROM w) RETURNING 1";
    /// The field is expected absent. `$4` new value, `$5` expiry.
    pub(super) const ADD: &str = "WITH w AS (
        INSERT INTO nex_session_fields (key, field, value)
        SELECT $1::bytea, $3::text, $4::bytea
        WHERE EXISTS (SELECT 1 FROM nex_sessions WHERE key = $1 AND expires_at > $2)
          AND NOT EXISTS (SELECT 1 FROM nex_session_fields WHERE key = $1 AND field = $3)
        RETURNING 1)
    UPDATE nex_sessions SET expires_at = $5 WHERE key = $1 AND EXISTS (SELECT 1 FROM w) RETURNING 1";
    /// `$4` expected value, `$5` expiry.
    pub(super) const REMOVE: &str = "WITH w AS (
        DELETE FROM nex_session_fields
        WHERE key = $1 AND field = $3 AND value = $4
          AND EXISTS (SELECT 1 FROM nex_sessions WHERE key = $1 AND expires_at > $2)
        RETURNING 1)
    UPDATE nex_sessions SET expires_at = $5 WHERE key = $1 AND EXISTS (SELECT 1 FROM w) RETURNING 1";
    /// The field is expected absent and stays so. `$4` expiry.
    pub(super) const KEEP_ABSENT: &str = "UPDATE nex_sessions SET expires_at = $4
        WHERE key = $1 AND expires_at > $2
          AND NOT EXISTS (SELECT 1 FROM nex_session_fields WHERE key = $1 AND field = $3)
        RETURNING 1";
}

/// The one-statement forms of a compare-and-set (`one_trip_sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OneTrip {
    Replace,
    Add,
    Remove,
    KeepAbsent,
}

impl OneTrip {
    /// The form of `cas`, if it has one: writes to an existing session.
    pub(super) fn of(cas: &Cas<'_>) -> Option<Self> {
        if cas.presence != Presence::Existing {
            return None;
        }
        match (cas.op, cas.expected) {
            (CasOp::Put, Some(_)) => Some(Self::Replace),
            (CasOp::Put, None) => Some(Self::Add),
            (CasOp::Delete, Some(_)) => Some(Self::Remove),
            (CasOp::Delete, None) => Some(Self::KeepAbsent),
            (CasOp::Check, _) => None,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Replace => one_trip_sql::REPLACE,
            Self::Add => one_trip_sql::ADD,
            Self::Remove => one_trip_sql::REMOVE,
            Self::KeepAbsent => one_trip_sql::KEEP_ABSENT,
        }
    }
}

/// Runs `cas` in its one-statement `form` after locking the session row: both
/// sent with `BEGIN`, the notification and `COMMIT` in one flight (see the pool's
/// `one_flight.rs`: one round trip).
pub(super) async fn one_trip(
    pool: &Pool,
    cas: &Cas<'_>,
    form: OneTrip,
    deadline: Instant,
) -> Result<CasAnswer, StoreError> {
    let key = cas.key.as_bytes().as_slice();
    let now = now_ms();
    let expires = cas.expires_at_ms;
    let (field, expected, new) = (cas.field, cas.expected.unwrap_or_default(), cas.new.unwrap_or_default());
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = match form {
        OneTrip::Replace => vec![&key, &now, &field, &expected, &new, &expires],
        OneTrip::Add => vec![&key, &now, &field, &new, &expires],
        OneTrip::Remove => vec![&key, &now, &field, &expected, &expires],
        OneTrip::KeepAbsent => vec![&key, &now, &field, &expires],
    };
    let lock = (
        "SELECT expires_at FROM nex_sessions WHERE key = $1 FOR UPDATE",
        &[&key as &(dyn tokio_postgres::types::ToSql + Sync)][..],
    );
    pool.lock_write_commit(cas.key, deadline, lock, (form.sql(), &params), |locked, wrote| {
        let live = match locked {
            Some(row) => row.try_get::<_, i64>(0)? > now,
            None => false,
        };
        // `wrote` first: if the row was replaced while the lock waited (an expired
        // session re-created under the key), the lock statement saw none, but the
        // write statement (a fresh snapshot, and it locked the new row) found it live
        // and wrote: that write stands, and so it is done.
        let answer = match (wrote.is_some(), live) {
            (true, _) => CasAnswer::Done,
            (false, true) => CasAnswer::Conflict,
            (false, false) => CasAnswer::PresenceFailed,
        };
        // Patched only when the lock saw this very session live: a replaced row's
        // cached fields are another session's.
        let patch = (answer == CasAnswer::Done && live).then(|| {
            let value = if cas.op == CasOp::Put { Some(new.to_vec()) } else { None };
            crate::cache::Patch { changes: vec![(field.to_owned(), value)], expires_at_ms: expires }
        });
        Ok((answer, patch))
    })
    .await
}
