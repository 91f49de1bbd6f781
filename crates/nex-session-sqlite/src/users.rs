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
//! live, write the field and the expiry, upsert the row, and with a cap end the
//! least recently seen others beyond it), `rename` (the row moves with the
//! fields), `remove` (the row goes with the session), `revoke`, each batch of
//! `revoke_all` (up to 1,000 of the user's rows, every one dropped, so the next
//! batch starts from the first row left; the session asking is checked first) and
//! each batch of the purge (rows go with their sessions). SQLite
//! runs write transactions one at a time, across connections and processes
//! sharing the file, so they are ordered:
//!
//! - a `revoke_all`'s batches together see every session bound before it began
//!   (a session renamed between two batches keeps its row, under its new key);
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
use nex_session_core::store::users::{
    Binding, Keep, SessionCap, SessionHandle, UserIndex, UserSession, SEEN_FIELD, USER_FIELD,
};
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
        cap: Option<SessionCap>,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let (user, encoded) = (binding.user.clone(), binding.encode());
        // Ending other sessions changes them too: the cache forgets everything then.
        let touched = if cap.is_some() { Touched::Everything } else { Touched::key(key) };
        Box::pin(self.run(touched, move |conn| {
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
            if let Some(cap) = cap {
                enforce_cap(&tx, key, &user, cap, now_ms())?;
            }
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
        Box::pin(async move {
            // Kept by handle (an operator's `--except`): found once, by key from then on.
            let kept = match &keep {
                Keep::None => None,
                Keep::Session(key) => Some(*key),
                Keep::Handle(handle) => {
                    let (user, handle) = (user.to_owned(), handle.clone());
                    self.run(Touched::Nothing, move |conn| {
                        Ok(indexed_keys(conn, &user)?.into_iter().find(|key| SessionHandle::of(*key) == handle))
                    })
                    .await?
                }
            };
            let asker = match keep {
                Keep::Session(key) => Some(key),
                Keep::None | Keep::Handle(_) => None,
            };
            // One transaction per batch, each committed: other writers get the
            // file between them, and a failure leaves what is left still indexed.
            let mut revoked = 0u64;
            loop {
                let user = user.to_owned();
                let batch = self.run(Touched::Everything, move |conn| revoke_batch(conn, &user, kept, asker)).await;
                match batch {
                    Ok(Batch::Done { revoked: n, more }) => {
                        revoked += n;
                        if !more {
                            return Ok(revoked);
                        }
                    }
                    Ok(Batch::AskerGone) => return Ok(revoked),
                    Err(err) if revoked > 0 => return Err(StoreError::OutcomeUnknown(Box::new(err))),
                    Err(err) => return Err(err),
                }
            }
        })
    }
}

/// Index rows one transaction of `revoke_all` takes.
const REVOKE_BATCH: usize = 1_000;

/// What one batch of `revoke_all` did.
enum Batch {
    /// Revoked this many live sessions; `more`: the batch was full, go on.
    Done { revoked: u64, more: bool },
    /// The session that asked is no longer the user's: nothing was revoked.
    AskerGone,
}

/// One committed step of `revoke_all`: up to [`REVOKE_BATCH`] of the user's index
/// rows (but the kept one), their sessions deleted when live and bound to the
/// user, the rows dropped either way. Every row it reads it drops, so the next
/// batch starts over from the first row left, and a rename that committed
/// before it (the row follows the session) is found by a later batch.
fn revoke_batch(
    conn: &mut Connection,
    user: &str,
    kept: Option<StoreKey>,
    asker: Option<StoreKey>,
) -> rusqlite::Result<Batch> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    if let Some(asker) = asker {
        // Inside the transaction: a revoke of the asker cannot slip in between.
        if !bound_to(&tx, asker.as_bytes(), user, now)? {
            return Ok(Batch::AskerGone);
        }
    }
    let kept_bytes: Vec<u8> = kept.map(|k| k.as_bytes().to_vec()).unwrap_or_default();
    let mut rows = Vec::with_capacity(REVOKE_BATCH);
    {
        let mut stmt =
            tx.prepare_cached("SELECT store_key FROM nex_session_users WHERE user = ?1 AND store_key != ?2 LIMIT ?3")?;
        let found = stmt.query_map(params![user, kept_bytes, REVOKE_BATCH as i64], |r| r.get::<_, Vec<u8>>(0))?;
        for key in found {
            rows.push(key?);
        }
    }
    let mut revoked = 0u64;
    for key in &rows {
        if bound_to(&tx, key, user, now)? {
            delete_session(&tx, key)?;
            revoked += 1;
        }
        unindex(&tx, key)?;
    }
    tx.commit()?;
    Ok(Batch::Done { revoked, more: rows.len() == REVOKE_BATCH })
}

/// Sessions a sign-in ends at most, beyond the cap: a user far over it (the cap
/// lowered, or turned on late) comes down over several sign-ins (or at once with
/// `revoke_all`), each one short.
const CAP_BATCH: i64 = 1_000;

/// The cap's part of a sign-in, in its transaction: counts the user's index rows
/// and, beyond `cap`, ends the least recently seen others (rows whose session is
/// expired or gone first), at most [`CAP_BATCH`]. The choice is one sorted
/// statement; only the sessions ended are read.
fn enforce_cap(tx: &Connection, signing_in: &[u8], user: &str, cap: SessionCap, now: i64) -> rusqlite::Result<()> {
    let rows: i64 = tx
        .prepare_cached("SELECT count(*) FROM nex_session_users WHERE user = ?1")?
        .query_row(params![user], |r| r.get(0))?;
    let excess = rows.saturating_sub(i64::from(cap.get())).min(CAP_BATCH);
    if excess <= 0 {
        return Ok(());
    }
    let mut ending = Vec::new();
    {
        // Last seen as stored (ASCII digits, `encode_seen`); SQLite reads anything else as 0.
        let mut stmt = tx.prepare_cached(
            "SELECT u.store_key FROM nex_session_users u
             LEFT JOIN nex_sessions s ON s.key = u.store_key
             LEFT JOIN nex_session_fields seen ON seen.key = u.store_key AND seen.field = ?3
             WHERE u.user = ?1 AND u.store_key != ?2
             ORDER BY CASE WHEN s.expires_at IS NULL OR s.expires_at <= ?4 THEN -1
                           ELSE COALESCE(CAST(CAST(seen.value AS TEXT) AS INTEGER), 0) END,
                      u.store_key
             LIMIT ?5",
        )?;
        let chosen = stmt.query_map(params![user, signing_in, SEEN_FIELD, now, excess], |r| r.get::<_, Vec<u8>>(0))?;
        for key in chosen {
            ending.push(key?);
        }
    }
    for key in &ending {
        if bound_to(tx, key, user, now)? {
            delete_session(tx, key)?;
        }
        unindex(tx, key)?;
    }
    Ok(())
}
