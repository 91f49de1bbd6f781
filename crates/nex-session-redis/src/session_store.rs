//! [`SessionStore`] and [`FastReads`] on Redis: a load from the client-side
//! cache when it holds the session, else `HGETALL` and `PEXPIRETIME` (`PTTL` on Redis 6) in one round trip;
//! each write one script or command; `update` through the group commit.

use std::sync::atomic::Ordering;

use crate::index_expiry::keep_index;
use crate::rename;
use crate::script_call::{evalsha, invoke};
use crate::scripts::{presence_arg, INDEX_KEPT, MARKER};
use crate::store::RedisStore;
use nex_session_core::store::toolkit::update_chain::{self, FieldUpdate};
use nex_session_core::store::users::{UserIndex, USER_FIELD};
use nex_session_core::store::{
    BoxFuture, Changes, FastReads, Fields, LoadNow, Presence, Record, SessionAdmin, SessionStore, UpdateFn,
    WriteOutcome,
};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// `HGETALL`'s answer: field and value bytes.
type RawFields = Vec<(Vec<u8>, Vec<u8>)>;

impl SessionStore for RedisStore {
    fn fast_reads(&self) -> Option<&dyn FastReads> {
        Some(self)
    }

    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let k = self.redis.key(key);
            let mut conn = self.redis.conn.clone();
            let ticket = self.cache.as_ref().map(|c| c.ticket(key));
            let deadline = self.redis.deadline();
            let (all, expiry) = loop {
                let exact = self.redis.exact_expiry.load(Ordering::Relaxed);
                let mut pipe = redis::pipe();
                if ticket.is_some() {
                    // Idempotent, and it makes sure the connection that answers (maybe a
                    // fresh one after a reconnect) tracks the key before reading it.
                    pipe.cmd("CLIENT").arg("TRACKING").arg("ON").ignore();
                }
                pipe.hgetall(&k);
                match exact {
                    true => pipe.cmd("PEXPIRETIME").arg(&k),
                    false => pipe.pttl(&k),
                };
                let read: Result<(RawFields, i64), StoreError> =
                    self.redis.read(deadline, pipe.query_async(&mut conn)).await;
                match read {
                    Ok((all, value)) => break (all, Expiry::read(exact, value)),
                    Err(err) if exact && unknown_command(&err) => {
                        self.redis.exact_expiry.store(false, Ordering::Relaxed);
                    }
                    Err(err) => return Err(err),
                }
            };
            let Some(expires_at_ms) = expiry.at_ms().filter(|_| !all.is_empty()) else {
                return Ok(None);
            };
            let mut fields = Fields::new();
            for (field, value) in all {
                // The store's own fields (MARKER, INDEX_KEPT) start with NUL.
                if field.first() == Some(&0) {
                    continue;
                }
                let field = String::from_utf8(field).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
                fields.insert(field, value);
            }
            let record = Record { fields, expires_at_ms };
            if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
                cache.insert(key, &record, ticket);
            }
            Ok(Some(record))
        })
    }

    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(async move {
            let _forget = self.forget_around(key);
            let script = &self.redis.scripts.apply;
            // The script's arguments (`scripts.rs`): six, then three per change.
            let payload =
                changes.iter().map(|(field, change)| field.len() + change.value().map_or(0, <[u8]>::len)).sum();
            let mut cmd = evalsha(script, &self.redis.key(key), 6 + 3 * changes.len(), payload);
            cmd.arg(presence_arg(presence)).arg(expires_at_ms).arg(MARKER);
            cmd.arg(INDEX_KEPT).arg(USER_FIELD).arg(now_ms());
            for (field, change) in changes {
                match change.value() {
                    Some(value) => cmd.arg("p").arg(field).arg(value),
                    None => cmd.arg("d").arg(field),
                };
            }
            let mut conn = self.redis.conn.clone();
            let deadline = self.redis.deadline();
            let (done, due): (i64, Vec<u8>) = self.redis.write(deadline, invoke(script, &cmd, &mut conn)).await?;
            if !due.is_empty() {
                keep_index(&self.redis, key, &due, expires_at_ms, deadline).await;
            }
            Ok(if done == 1 { WriteOutcome::Done } else { WriteOutcome::PresenceFailed })
        })
    }

    fn update<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(async move {
            // The session leaves the cache when this update ends, however it ends
            // (cancelled too), not before: until then the chain may start from the
            // cached copy without reading Redis first (`update_known`).
            let _forget = self.forget_when_done(key);
            let known = || self.cache.as_ref().and_then(|cache| cache.copy(key, now_ms()));
            let update = FieldUpdate { key, field, expires_at_ms, presence };
            update_chain::update_known(&self.redis, &self.updates, update, f, known).await
        })
    }

    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let _forget = self.forget_around(key);
            let mut conn = self.redis.conn.clone();
            let deadline = self.redis.deadline();
            let script = &self.redis.scripts.touch;
            let mut touch = evalsha(script, &self.redis.key(key), 4, 0);
            touch.arg(expires_at_ms).arg(INDEX_KEPT).arg(USER_FIELD).arg(now_ms());
            let (set, due): (i64, Vec<u8>) = self.redis.write(deadline, invoke(script, &touch, &mut conn)).await?;
            if !due.is_empty() {
                keep_index(&self.redis, key, &due, expires_at_ms, deadline).await;
            }
            Ok(set == 1)
        })
    }

    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(rename::rename(self, from, to, expires_at_ms))
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let _forget = self.forget_around(key);
            let mut conn = self.redis.conn.clone();
            let del = redis::cmd("DEL").arg(self.redis.key(key)).clone();
            let _: i64 = self.redis.write(self.redis.deadline(), del.query_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn admin(&self) -> Option<&dyn SessionAdmin> {
        Some(self)
    }

    fn users(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.redis.conn.clone();
            let ping = redis::cmd("PING");
            self.redis.read(self.redis.deadline(), ping.query_async::<String>(&mut conn)).await.map(drop)
        })
    }

    fn endpoint(&self) -> Option<String> {
        Some(self.redis.conn.describe(&self.redis.endpoint))
    }
}

impl FastReads for RedisStore {
    fn load_now(&self, key: StoreKey, now_ms: i64) -> LoadNow {
        // Only sessions are cached, never their absence: a miss asks Redis.
        match self.cache.as_ref().and_then(|cache| cache.get(key, now_ms)) {
            Some(fields) => LoadNow::Found(fields),
            None => LoadNow::Unknown,
        }
    }
}

/// A session's expiry as `load` reads it: `PEXPIRETIME` (an absolute time in
/// ms, the one `PEXPIREAT` wrote) or, on Redis 6, `PTTL` (the time left). Both
/// answer -2 for no such key and -1 for a key without an expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    At(i64),
    Left(i64),
}

impl Expiry {
    fn read(exact: bool, value: i64) -> Self {
        if exact {
            Self::At(value)
        } else {
            Self::Left(value)
        }
    }

    /// When the session expires (`i64::MAX`: never), `None` when there is no session.
    fn at_ms(self) -> Option<i64> {
        match self {
            Self::At(-2) | Self::Left(-2) => None,
            Self::At(-1) | Self::Left(-1) => Some(i64::MAX),
            Self::At(at) => Some(at),
            Self::Left(left) => Some(now_ms().saturating_add(left)),
        }
    }
}

/// Whether `err` is Redis refusing a command it does not know (`PEXPIRETIME`
/// before Redis 7: "ERR unknown command").
fn unknown_command(err: &StoreError) -> bool {
    err.to_string().contains("unknown command")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_read_the_same_from_either_command() {
        assert_eq!(Expiry::At(-2).at_ms(), None);
        assert_eq!(Expiry::Left(-2).at_ms(), None);
        assert_eq!(Expiry::At(-1).at_ms(), Some(i64::MAX));
        assert_eq!(Expiry::At(1_700_000_000_123).at_ms(), Some(1_700_000_000_123));
        let left = Expiry::Left(60_000).at_ms().unwrap() - now_ms();
        assert!((59_000..=60_000).contains(&left), "{left}");
    }
}
