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
//! Every change is one transaction. PostgreSQL runs them concurrently, so the
//! order comes from row locks, always taken in one order, index row before session
//! row (so two transactions never wait on each other in a cycle):
//!
//! - `bind`, `rename` and `remove` lock the session's index row (if it has one),
//!   then the session row;
//! - `revoke` and `revoke_all` lock every index row of the user, then each
//!   session row. A `rename` that locked its index row first commits before
//!   `revoke_all` reads the row, which then names the new key (revoked); one that
//!   comes later finds its source gone (`Ok(false)`);
//! - the purge locks the index rows of expired bound sessions before their session
//!   rows too (and skips rows others hold);
//! - a write of another field needs a live session (`apply` and `update` lock the
//!   session row and check presence), so none brings a revoked session back.
//!
//! # Sessions without a user
//!
//! `load`, `apply`, `update` and `touch` never read or write the table; `rename`
//! and `remove` run one more primary-key lookup that finds nothing.

use nex_session_core::store::users::{Binding, Keep, SessionHandle, UserIndex, UserSession, SEEN_FIELD, USER_FIELD};
use nex_session_core::store::{BoxFuture, Presence, WriteOutcome};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

use crate::pool::Lease;
use crate::rows::session::{claim, lock, read_field, store_key, write_field, Row};
use crate::rows::user_index::lock_index_row;
use crate::store::PostgresStore;

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
    let rows = c
        .query(
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
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let encoded = binding.encode();
        Box::pin(self.pool.write(move |mut c| async move {
            c.changed(key);
            let key = key.as_bytes().as_slice();
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
            let found = lock_user_rows(&mut c, user).await?.into_iter().find(|key| SessionHandle::of(*key) == *handle);
            let Some(key) = found else { return Ok((c, false)) };
            c.changed(key);
            let revoked = revoke_one(&mut c, key.as_bytes(), user, now_ms()).await?;
            Ok((c, revoked))
        }))
    }

    fn revoke_all<'a>(&'a self, user: &'a str, keep: Keep) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.pool.write(move |mut c| async move {
            let now = now_ms();
            let mut revoked = 0u64;
            for key in lock_user_rows(&mut c, user).await? {
                if keep.spares(key) {
                    continue;
                }
                c.changed(key);
                if revoke_one(&mut c, key.as_bytes(), user, now).await? {
                    revoked += 1;
                }
            }
            Ok((c, revoked))
        }))
    }
}
