//! The SQLite store's per-user index: the table `nex_session_users`.
//!
//! # Layout
//!
//! `nex_session_users (store_key BLOB PRIMARY KEY, user TEXT NOT NULL)`, with an
//! index on `user`: one row per bound session. The primary key on `store_key` makes
//! "one user per session" a property of the table: binding a session to another
//! user overwrites its row. The binding itself is the session's [`USER_FIELD`],
//! a row of `nex_session_fields` written as `apply` writes fields, so `load`
//! returns it with the session; the row is only how a user's sessions are found
//! without a scan. The field is the truth: a session is listed or revoked only
//! while it is live and its field names the user, and a row that says otherwise
//! is dropped when it is next read.
//!
//! # What is atomic, and in what order
//!
//! Every change is one `IMMEDIATE` transaction: `bind` (check the session is
//! live, write the field and the expiry, upsert the row), `rename` (the row moves
//! with the fields), `remove` (the row goes with the session), `revoke`,
//! `revoke_all`, and each batch of the purge (rows go with their sessions). SQLite
//! runs write transactions one at a time, across connections and processes
//! sharing the file, so they are ordered:
//!
//! - a `revoke_all` sees every session bound before it began;
//! - a `rename` racing with it either commits first (its new key is indexed, and
//!   revoked) or runs after it (its source is gone: `Ok(false)`);
//! - a write of another field needs a live session (`apply` and `update` check
//!   presence in their own write transaction), so none brings a revoked session
//!   back.
//!
//! `sessions` is one read (a snapshot); rows it finds dead are deleted afterwards in
//! a write transaction that checks again that they are dead.
//!
//! # Sessions without a user
//!
//! `load`, `apply`, `update` and `touch` never read or write the table. `rename`
//! and `remove` run one more statement each (`user_rows.rs`: a primary-key
//! lookup that finds nothing), the purge one more per batch.
//!
//! # Dead rows
//!
//! A row can stay behind its session: when the session expires (until the purge,
//! which deletes the row in the same batch as the session), or when a plain write
//! changes the session's binding field. Such rows are never listed or counted, and
//! are deleted when the user's sessions are next listed or all revoked.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::cache::Touched;
use crate::rows::{claim, delete_session, live, read_field, write_field};
use crate::store::SqliteStore;
use crate::user_rows::unindex;
use nex_session_core::store::users::{Binding, Keep, SessionHandle, UserIndex, UserSession, SEEN_FIELD, USER_FIELD};
use nex_session_core::store::{BoxFuture, Presence, WriteOutcome};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Whether the session under `key` is live and its binding names `user`.
fn bound_to(conn: &Connection, key: &[u8], user: &str, now: i64) -> rusqlite::Result<bool> {
    if !live(conn, key, now)? {
        return Ok(false);
    }
    let binding = read_field(conn, key, USER_FIELD)?.and_then(|bytes| Binding::decode(&bytes));
    Ok(binding.is_some_and(|binding| binding.user == user))
}

/// The keys the index files under `user` (live or not).
fn indexed_keys(conn: &Connection, user: &str) -> rusqlite::Result<Vec<StoreKey>> {
    let mut stmt = conn.prepare_cached("SELECT store_key FROM nex_session_users WHERE user = ?1")?;
    let rows = stmt.query_map(params![user], |r| r.get::<_, Vec<u8>>(0))?;
    let mut keys = Vec::new();
    for row in rows {
        keys.push(store_key(&row?)?);
    }
    Ok(keys)
}

/// A key read back from the table; only 32-byte keys are ever written.
fn store_key(bytes: &[u8]) -> rusqlite::Result<StoreKey> {
    let bytes = <[u8; 32]>::try_from(bytes).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            bytes.len(),
            rusqlite::types::Type::Blob,
            format!("a session key in nex_session_users has {} bytes, not 32", bytes.len()).into(),
        )
    })?;
    Ok(StoreKey::from_bytes(bytes))
}

/// What the listing query found for one index row.
enum Listed {
    /// A live session bound to the user.
    Live(UserSession),
    /// A row to drop: its session is gone, expired or bound elsewhere.
    Dead(StoreKey),
}

/// One read: every index row of `user`, with its session's expiry (if live) and
/// its binding and last-seen fields.
fn list(conn: &Connection, user: &str, now: i64) -> rusqlite::Result<Vec<Listed>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.store_key, s.expires_at, b.value, seen.value
         FROM nex_session_users u
         LEFT JOIN nex_sessions s ON s.key = u.store_key AND s.expires_at > ?2
         LEFT JOIN nex_session_fields b ON b.key = u.store_key AND b.field = ?3
         LEFT JOIN nex_session_fields seen ON seen.key = u.store_key AND seen.field = ?4
         WHERE u.user = ?1",
    )?;
    let rows = stmt.query_map(params![user, now, USER_FIELD, SEEN_FIELD], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<Vec<u8>>>(2)?,
            r.get::<_, Option<Vec<u8>>>(3)?,
        ))
    })?;
    let mut listed = Vec::new();
    for row in rows {
        let (key, expires_at, binding, seen) = row?;
        let key = store_key(&key)?;
        let binding = binding.and_then(|bytes| Binding::decode(&bytes)).filter(|b| b.user == user);
        listed.push(match (expires_at, binding) {
            (Some(expires_at_ms), Some(binding)) => {
                Listed::Live(UserSession::new(key, binding, seen.as_deref(), expires_at_ms))
            }
            _ => Listed::Dead(key),
        });
    }
    Ok(listed)
}

impl UserIndex for SqliteStore {
    fn bind<'a>(
        &'a self,
        key: StoreKey,
        binding: &'a Binding,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let (user, encoded) = (binding.user.clone(), binding.encode());
        Box::pin(self.run(Touched::key(key), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let key = key.as_bytes().as_slice();
            // As `apply` writes an existing session: presence, expiry, then the field.
            if !claim(&tx, key, Presence::Existing, expires_at_ms, now_ms())? {
                return Ok(WriteOutcome::PresenceFailed);
            }
            write_field(&tx, key, USER_FIELD, Some(&encoded))?;
            // One row per key: a session bound to someone else moves to `user`.
            tx.prepare_cached(
                "INSERT INTO nex_session_users (store_key, user) VALUES (?1, ?2)
                 ON CONFLICT (store_key) DO UPDATE SET user = excluded.user",
            )?
            .execute(params![key, user])?;
            tx.commit()?;
            Ok(WriteOutcome::Done)
        }))
    }

    fn sessions<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>> {
        let user = user.to_owned();
        Box::pin(self.run(Touched::Nothing, move |conn| {
            let now = now_ms();
            let mut sessions = Vec::new();
            let mut dead = Vec::new();
            for listed in list(conn, &user, now)? {
                match listed {
                    Listed::Live(session) => sessions.push(session),
                    Listed::Dead(key) => dead.push(key),
                }
            }
            if !dead.is_empty() {
                // Checked again under the write lock: a rename or bind may have
                // committed since the read.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for key in dead {
                    let key = key.as_bytes().as_slice();
                    if !bound_to(&tx, key, &user, now_ms())? {
                        tx.prepare_cached("DELETE FROM nex_session_users WHERE store_key = ?1 AND user = ?2")?
                            .execute(params![key, user])?;
                    }
                }
                tx.commit()?;
            }
            sessions.sort_by(|a, b| (a.signed_in_ms, &a.handle).cmp(&(b.signed_in_ms, &b.handle)));
            Ok(sessions)
        }))
    }

    fn revoke<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (user, handle) = (user.to_owned(), handle.clone());
        Box::pin(self.run(Touched::Everything, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found = indexed_keys(&tx, &user)?.into_iter().find(|key| SessionHandle::of(*key) == handle);
            let Some(key) = found else { return Ok(false) };
            let key = key.as_bytes().as_slice();
            let revoked = bound_to(&tx, key, &user, now_ms())?;
            if revoked {
                delete_session(&tx, key)?;
            }
            unindex(&tx, key)?;
            tx.commit()?;
            Ok(revoked)
        }))
    }

    fn revoke_all<'a>(&'a self, user: &'a str, keep: Keep) -> BoxFuture<'a, Result<u64, StoreError>> {
        let user = user.to_owned();
        Box::pin(self.run(Touched::Everything, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let mut revoked = 0u64;
            for key in indexed_keys(&tx, &user)? {
                if keep.spares(key) {
                    continue;
                }
                let key = key.as_bytes().as_slice();
                if bound_to(&tx, key, &user, now)? {
                    delete_session(&tx, key)?;
                    revoked += 1;
                }
                unindex(&tx, key)?;
            }
            tx.commit()?;
            Ok(revoked)
        }))
    }
}
