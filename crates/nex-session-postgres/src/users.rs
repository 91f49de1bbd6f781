//! The PostgreSQL store's per-user index: the table `nex_session_users`.
//!
//! # Layout
//!
//! `nex_session_users (store_key bytea PRIMARY KEY REFERENCES nex_sessions ON
//! UPDATE CASCADE ON DELETE CASCADE, user_id text NOT NULL)`, indexed on `user_id`:
//! one row per bound session. As in the SQLite store, the binding itself is the
//! session's [`USER_FIELD`] (so `load` returns it with the session) and the row is
//! only how a user's sessions are found without a scan. The field is the truth: a session is listed or revoked only while it is
//! live and its field names the user; a row that says otherwise is dropped when it
//! is next read. The foreign key makes the row follow its session: a rename moves
//! it, a removal or the purge deletes it.
//!
//! # What is atomic, and in what order
//!
//! Every change is one transaction, but `revoke_all`, which is one per batch of
//! 1,000 index rows. PostgreSQL runs them concurrently, so the order comes from
//! locks, always taken in one order: the user's advisory lock (a transaction-level
//! `pg_advisory_xact_lock` on a hash of the user id, taken by `revoke`, each batch
//! of `revoke_all` and a `bind` with a cap: they run one at a time per user), then
//! the index row before the session
//! row (so two transactions never wait on each other in a cycle):
//!
//! - `bind`, `rename` and `remove` lock the session's index row (if it has one),
//!   then the session row;
//! - `revoke` locks every index row of the user, then the session row;
//! - each batch of `revoke_all` checks the session asking (`Keep::Session`) is
//!   still live and the user's (else it stops, revoking nothing more), locks up to
//!   1,000 of the user's index rows (first in key order, the kept one excepted),
//!   reads their sessions in a second statement, and deletes them set-based
//!   (`= ANY($1)`), dropping every row it took; the next batch starts over from
//!   the first row left. A `rename` that locked its index row first commits before
//!   the batch gets the row, which then names the new key (revoked by this batch or
//!   a later one); one that comes later finds its source gone (`Ok(false)`). Each
//!   batch commits within the store timeout: 100,000 sessions take 100 batches;
//! - a `bind` with a cap, after binding, reads the user's rows, locks them in key
//!   order and ends the least recently seen others beyond the cap (as `revoke`);
//! - the purge locks the index rows of expired bound sessions before their session
//!   rows too (and skips rows others hold);
//! - a write of another field needs a live session (`apply` and `update` lock the
//!   session row and check presence), so none brings a revoked session back.
//!
//! # Sessions without a user
//!
//! `load`, `apply`, `update` and `touch` never read or write the table; `rename`
//! and `remove` run one more primary-key lookup that finds nothing.

use nex_session_core::store::users::{
    Binding, Keep, SessionCap, SessionHandle, UserIndex, UserSession, SEEN_FIELD, USER_FIELD,
};
use nex_session_core::store::{BoxFuture, Presence, WriteOutcome};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

use crate::pool::Lease;
use crate::rows::session::{claim, lock, read_field, store_key, write_field, Row};
use crate::rows::user_index::lock_index_row;
use crate::store::PostgresStore;

/// The first key of the advisory locks that serialise the index changes of one
/// user (the second is a hash of the user id): "nexu". The two-key form of
/// `pg_advisory_xact_lock` is its own key space, apart from the schema's lock.
const USER_LOCK: i32 = 0x6e65_7875;

/// Index rows one transaction of `revoke_all` takes.
const REVOKE_BATCH: i64 = 1_000;

/// Takes the transaction's lock on `user`'s index changes: binds with a cap,
/// revokes and each batch of a revoke-all of one user run one at a time, so a
/// check made under it (the asker is still the user's, how many sessions there
/// are) holds until the commit. Always the first lock such a transaction takes.
async fn lock_user(c: &mut Lease<'_>, user: &str) -> Result<(), tokio_postgres::Error> {
    c.query_opt("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&USER_LOCK, &user]).await?;
    Ok(())
}

/// Locks every index row of `user` (in key order) and returns their keys.
async fn lock_user_rows(c: &mut Lease<'_>, user: &str) -> Result<Vec<StoreKey>, tokio_postgres::Error> {
    let rows = c
        .query("SELECT store_key FROM nex_session_users WHERE user_id = $1 ORDER BY store_key FOR UPDATE", &[&user])
        .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        // Only 32-byte keys are written; anything else is no session of ours.
        if let Some(key) = store_key(row.try_get::<_, &[u8]>(0)?) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Locks the session row under `key`; whether it is live and bound to `user`.
async fn bound_to(c: &mut Lease<'_>, key: &[u8], user: &str, now: i64) -> Result<bool, tokio_postgres::Error> {
    if lock(c, key, now).await? != Row::Live {
        return Ok(false);
    }
    let binding = read_field(c, key, USER_FIELD).await?.and_then(|bytes| Binding::decode(&bytes));
    Ok(binding.is_some_and(|binding| binding.user == user))
}

/// Removes the session under `key` if it is live and bound to `user` (`true`),
/// and in any case its index row.
async fn revoke_one(c: &mut Lease<'_>, key: &[u8], user: &str, now: i64) -> Result<bool, tokio_postgres::Error> {
    let revoked = bound_to(c, key, user, now).await?;
    if revoked {
        // The index row goes with it (`ON DELETE CASCADE`).
        c.execute("DELETE FROM nex_sessions WHERE key = $1", &[&key]).await?;
    } else {
        c.execute("DELETE FROM nex_session_users WHERE store_key = $1", &[&key]).await?;
    }
    Ok(revoked)
}

/// What the listing query found for one index row.
enum Listed {
    /// A live session bound to the user.
    Live(UserSession),
    /// A row to drop: its session is expired or bound elsewhere.
    Dead(StoreKey),
}

/// One read: every index row of `user`, with its session's expiry (if live) and
/// its binding and last-seen fields.
async fn list(c: &mut Lease<'_>, user: &str, now: i64) -> Result<Vec<Listed>, tokio_postgres::Error> {
    // Planned for this user's row count each time (see `Lease::query_custom_plan`).
    let rows = c
        .query_custom_plan(
            "SELECT u.store_key, s.expires_at, b.value, seen.value
             FROM nex_session_users u
             LEFT JOIN nex_sessions s ON s.key = u.store_key AND s.expires_at > $2
             LEFT JOIN nex_session_fields b ON b.key = u.store_key AND b.field = $3
             LEFT JOIN nex_session_fields seen ON seen.key = u.store_key AND seen.field = $4
             WHERE u.user_id = $1",
            &[&user, &now, &USER_FIELD, &SEEN_FIELD],
        )
        .await?;
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(key) = store_key(row.try_get::<_, &[u8]>(0)?) else { continue };
        let expires_at: Option<i64> = row.try_get(1)?;
        let binding: Option<&[u8]> = row.try_get(2)?;
        let seen: Option<&[u8]> = row.try_get(3)?;
        let binding = binding.and_then(Binding::decode).filter(|b| b.user == user);
        listed.push(match (expires_at, binding) {
            (Some(expires_at_ms), Some(binding)) => Listed::Live(UserSession::new(key, binding, seen, expires_at_ms)),
            _ => Listed::Dead(key),
        });
    }
    Ok(listed)
}

impl UserIndex for PostgresStore {
    fn bind<'a>(
        &'a self,
        key: StoreKey,
        binding: &'a Binding,
        expires_at_ms: i64,
        cap: Option<SessionCap>,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let encoded = binding.encode();
        Box::pin(self.pool.write(move |mut c| async move {
            c.changed(key);
            let signing_in = key;
            let key = key.as_bytes().as_slice();
            if cap.is_some() {
                lock_user(&mut c, &binding.user).await?;
            }
            lock_index_row(&mut c, key).await?;
            // As `apply` writes an existing session: presence, expiry, then the field.
            let row = lock(&mut c, key, now_ms()).await?;
            if !claim(&mut c, key, row, Presence::Existing, expires_at_ms).await? {
                return Ok((c, WriteOutcome::PresenceFailed));
            }
            write_field(&mut c, key, USER_FIELD, Some(&encoded)).await?;
            // One row per key: a session bound to someone else moves to this user.
            c.execute(
                "INSERT INTO nex_session_users (store_key, user_id) VALUES ($1, $2)
                 ON CONFLICT (store_key) DO UPDATE SET user_id = excluded.user_id",
                &[&key, &binding.user],
            )
            .await?;
            if let Some(cap) = cap {
                enforce_cap(&mut c, signing_in, &binding.user, cap).await?;
            }
            Ok((c, WriteOutcome::Done))
        }))
    }

    fn sessions<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>> {
        Box::pin(async move {
            let listed = self.pool.read(move |mut c| async move {
                let listed = list(&mut c, user, now_ms()).await?;
                Ok((c, listed))
            });
            let mut sessions = Vec::new();
            let mut dead = Vec::new();
            for listed in listed.await? {
                match listed {
                    Listed::Live(session) => sessions.push(session),
                    Listed::Dead(key) => dead.push(key),
                }
            }
            if !dead.is_empty() {
                // Checked again under the locks: a rename or bind may have committed
                // since the read.
                self.pool
                    .write(move |mut c| async move {
                        let now = now_ms();
                        for key in dead {
                            let key = key.as_bytes().as_slice();
                            lock_index_row(&mut c, key).await?;
                            if !bound_to(&mut c, key, user, now).await? {
                                c.execute(
                                    "DELETE FROM nex_session_users WHERE store_key = $1 AND user_id = $2",
                                    &[&key, &user],
                                )
                                .await?;
                            }
                        }
                        Ok((c, ()))
                    })
                    .await?;
            }
            sessions.sort_by(|a, b| (a.signed_in_ms, &a.handle).cmp(&(b.signed_in_ms, &b.handle)));
            Ok(sessions)
        })
    }

    fn revoke<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.pool.write(move |mut c| async move {
            lock_user(&mut c, user).await?;
            let found = lock_user_rows(&mut c, user).await?.into_iter().find(|key| SessionHandle::of(*key) == *handle);
            let Some(key) = found else { return Ok((c, false)) };
            c.changed(key);
            let revoked = revoke_one(&mut c, key.as_bytes(), user, now_ms()).await?;
            Ok((c, revoked))
        }))
    }

    fn revoke_all<'a>(&'a self, user: &'a str, keep: Keep) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            // Kept by handle (an operator's `--except`): found once, by key from then on.
            let kept = match &keep {
                Keep::None => None,
                Keep::Session(key) => Some(*key),
                Keep::Handle(handle) => {
                    let keys = self
                        .pool
                        .read(move |mut c| async move {
                            let rows =
                                c.query("SELECT store_key FROM nex_session_users WHERE user_id = $1", &[&user]).await?;
                            let mut keys = Vec::with_capacity(rows.len());
                            for row in rows {
                                keys.extend(store_key(row.try_get::<_, &[u8]>(0)?));
                            }
                            Ok((c, keys))
                        })
                        .await?;
                    keys.into_iter().find(|key| SessionHandle::of(*key) == *handle)
                }
            };
            let asker = match keep {
                Keep::Session(key) => Some(key),
                Keep::None | Keep::Handle(_) => None,
            };
            // One transaction per batch, each committed within the store timeout:
            // any number of sessions is revoked by steps that each make progress,
            // and a failure leaves what is left still indexed for the next attempt.
            let mut revoked = 0u64;
            loop {
                let batch = self.pool.write(move |c| revoke_batch(c, user, kept, asker)).await;
                match batch {
                    Ok(Batch::Done { revoked: n, more }) => {
                        revoked += n;
                        if !more {
                            return Ok(revoked);
                        }
                    }
                    Ok(Batch::AskerGone) => return Ok(revoked),
                    Err(StoreError::OutcomeUnknown(err)) => return Err(StoreError::OutcomeUnknown(err)),
                    Err(err) if revoked > 0 => return Err(StoreError::OutcomeUnknown(Box::new(err))),
                    Err(err) => return Err(err),
                }
            }
        })
    }
}

/// What one batch of `revoke_all` did.
enum Batch {
    /// Revoked this many live sessions; `more`: the batch was full, go on.
    Done { revoked: u64, more: bool },
    /// The session that asked is no longer the user's: nothing was revoked.
    AskerGone,
}

/// One transaction of `revoke_all`: under the user's lock, checks the asker is
/// still the user's, then takes up to [`REVOKE_BATCH`] of the user's index rows
/// (but the kept one) and deletes their sessions with set-based statements. Every
/// row it takes it drops, so the next batch starts from the first row left; a
/// rename that committed before it moved its row to the new key (found by a
/// later batch), one after it finds its source gone.
async fn revoke_batch<'p>(
    mut c: Lease<'p>,
    user: &str,
    kept: Option<StoreKey>,
    asker: Option<StoreKey>,
) -> Result<(Lease<'p>, Batch), tokio_postgres::Error> {
    lock_user(&mut c, user).await?;
    let now = now_ms();
    if let Some(asker) = asker {
        let asker = asker.as_bytes().as_slice();
        let owned = c
            .query_opt(
                "SELECT 1 FROM nex_session_users WHERE store_key = $1 AND user_id = $2 FOR UPDATE",
                &[&asker, &user],
            )
            .await?
            .is_some();
        if !owned || !bound_to(&mut c, asker, user, now).await? {
            return Ok((c, Batch::AskerGone));
        }
    }
    let kept: Vec<u8> = kept.map(|k| k.as_bytes().to_vec()).unwrap_or_default();
    // Lock the index rows first, alone: a row a rename was moving is returned with
    // its new key once the rename commits. Its session is read by the next
    // statement, which sees every commit made before the locks were granted (a
    // join in the locking statement would pair the new key with the old row).
    let locked = c
        .query(
            "SELECT store_key FROM nex_session_users WHERE user_id = $1 AND store_key <> $2
             ORDER BY store_key LIMIT $3 FOR UPDATE",
            &[&user, &kept, &REVOKE_BATCH],
        )
        .await?;
    let keys: Vec<&[u8]> = locked.iter().map(|row| row.try_get::<_, &[u8]>(0)).collect::<Result<_, _>>()?;
    let more = i64::try_from(keys.len()).unwrap_or(i64::MAX) >= REVOKE_BATCH;
    let revoked = revoke_locked(&mut c, user, &keys, now).await?;
    Ok((c, Batch::Done { revoked, more }))
}

/// Revokes the sessions under `keys`, whose index rows this transaction holds:
/// reads their bindings in one statement (which sees every commit made before
/// the locks were granted), deletes those bound to `user` in one, and drops every
/// row of `keys` in one. Returns how many live sessions it deleted.
async fn revoke_locked(c: &mut Lease<'_>, user: &str, keys: &[&[u8]], now: i64) -> Result<u64, tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(0);
    }
    let rows = c
        .query(
            "SELECT s.key, s.expires_at, b.value
             FROM nex_sessions s
             LEFT JOIN nex_session_fields b ON b.key = s.key AND b.field = $2
             WHERE s.key = ANY($1)",
            &[&keys, &USER_FIELD],
        )
        .await?;
    let mut sessions = Vec::new();
    let mut revoked = 0u64;
    for row in &rows {
        let bytes: &[u8] = row.try_get(0)?;
        let expires_at: i64 = row.try_get(1)?;
        let binding: Option<&[u8]> = row.try_get(2)?;
        if binding.and_then(Binding::decode).is_some_and(|b| b.user == user) {
            revoked += u64::from(expires_at > now);
            sessions.push(bytes);
        }
    }
    for key in keys {
        if let Some(key) = store_key(key) {
            c.changed(key);
        }
    }
    // The session rows' locks come after the index rows', the order every
    // transaction keeps; their index rows go with them (`ON DELETE CASCADE`).
    if !sessions.is_empty() {
        c.execute("DELETE FROM nex_sessions WHERE key = ANY($1)", &[&sessions]).await?;
    }
    // Rows whose session is gone or bound elsewhere: dropped, as the listing would.
    c.execute("DELETE FROM nex_session_users WHERE store_key = ANY($1)", &[&keys]).await?;
    Ok(revoked)
}

/// Sessions a sign-in ends at most, beyond the cap: a user far over it (the cap
/// lowered, or turned on late) comes down over several sign-ins (or at once with
/// `revoke_all`), each one still within the store timeout.
const CAP_BATCH: i64 = 1_000;

/// The cap's part of a sign-in, in its transaction (under the user's lock): counts
/// the user's index rows and, beyond `cap`, ends the least recently seen others
/// (rows whose session is expired or gone first), at most [`CAP_BATCH`]. The
/// choice is one sorted statement in the database; only the sessions ended are
/// locked, in key order, and read.
async fn enforce_cap(
    c: &mut Lease<'_>,
    signing_in: StoreKey,
    user: &str,
    cap: SessionCap,
) -> Result<(), tokio_postgres::Error> {
    let counted = c.query_opt("SELECT count(*) FROM nex_session_users WHERE user_id = $1", &[&user]).await?;
    let rows: i64 = counted.map(|row| row.try_get(0)).transpose()?.unwrap_or(0);
    let excess = rows.saturating_sub(i64::from(cap.get())).min(CAP_BATCH);
    if excess <= 0 {
        return Ok(());
    }
    let now = now_ms();
    let signing_in_bytes = signing_in.as_bytes().as_slice();
    // Last seen as stored (ASCII digits, `encode_seen`); anything else counts as never.
    // Planned for this user's row count each time (see `Lease::query_custom_plan`).
    let chosen = c
        .query_custom_plan(
            "SELECT u.store_key FROM nex_session_users u
             LEFT JOIN nex_sessions s ON s.key = u.store_key
             LEFT JOIN nex_session_fields seen ON seen.key = u.store_key AND seen.field = $3
             WHERE u.user_id = $1 AND u.store_key <> $2
             ORDER BY CASE WHEN s.expires_at IS NULL OR s.expires_at <= $4 THEN -1
                           WHEN encode(seen.value, 'escape') ~ '^[0-9]{1,18}$'
                           THEN encode(seen.value, 'escape')::bigint
                           ELSE 0 END,
                      u.store_key
             LIMIT $5",
            &[&user, &signing_in_bytes, &SEEN_FIELD, &now, &excess],
        )
        .await?;
    let chosen: Vec<&[u8]> = chosen.iter().map(|row| row.try_get::<_, &[u8]>(0)).collect::<Result<_, _>>()?;
    // Locked in key order, as every transaction locks index rows; a row a rename
    // moved meanwhile is not locked here, and its session stays (a later sign-in
    // or the listing deals with it).
    let locked = c
        .query(
            "SELECT store_key FROM nex_session_users WHERE store_key = ANY($1) AND user_id = $2
             ORDER BY store_key FOR UPDATE",
            &[&chosen, &user],
        )
        .await?;
    let keys: Vec<&[u8]> = locked.iter().map(|row| row.try_get::<_, &[u8]>(0)).collect::<Result<_, _>>()?;
    revoke_locked(c, user, &keys, now).await?;
    Ok(())
}
