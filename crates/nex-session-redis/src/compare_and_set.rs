//! `update` on Redis: the store's side of the core's group commit
//! (`toolkit::update_chain` of the core), a read of the field and the `COMPARE_AND_SET`
//! script (`scripts.rs`), each bounded by the call's deadline.

use std::time::Duration;

use tokio::time::Instant;

use crate::connect::Redis;
use crate::index_expiry::keep_index;
use crate::script_call::{evalsha, invoke};
use crate::scripts::{cas_op_arg, presence_arg, INDEX_KEPT, MARKER};
use nex_session_core::store::toolkit::update_chain::{Cas, CasAnswer, CasStore, FieldNow};
use nex_session_core::store::users::USER_FIELD;
use nex_session_core::store::BoxFuture;
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// The update chains' group commit (`toolkit::update_chain` of the core) on Redis.
impl CasStore for Redis {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn read_field<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<FieldNow, StoreError>> {
        Box::pin(async move {
            let redis_key = self.key(key);
            let mut conn = self.conn.clone();
            let read = redis::pipe().exists(&redis_key).hget(&redis_key, field).clone();
            self.read(deadline, read.query_async(&mut conn)).await
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        cas: &'a Cas<'a>,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<CasAnswer, StoreError>> {
        Box::pin(run_compare_and_set(self, cas, deadline))
    }
}

/// Runs one compare-and-set (`COMPARE_AND_SET` in `scripts.rs`), until `deadline`.
async fn run_compare_and_set(redis: &Redis, cas: &Cas<'_>, deadline: Instant) -> Result<CasAnswer, StoreError> {
    let script = &redis.scripts.compare_and_set;
    let (expected, new) = (cas.expected.unwrap_or_default(), cas.new.unwrap_or_default());
    // The script's 11 arguments, in its order (`scripts.rs`).
    let mut cmd = evalsha(script, &redis.key(cas.key), 11, cas.field.len() + expected.len() + new.len());
    cmd.arg(presence_arg(cas.presence))
        .arg(cas.expires_at_ms)
        .arg(MARKER)
        .arg(cas.field)
        .arg(if cas.expected.is_some() { "1" } else { "0" })
        .arg(expected)
        .arg(cas_op_arg(cas.op))
        .arg(new)
        .arg(INDEX_KEPT)
        .arg(USER_FIELD)
        .arg(now_ms());
    let mut conn = redis.conn.clone();
    let (answer, due): (i64, Vec<u8>) = redis.write(deadline, invoke(script, &cmd, &mut conn)).await?;
    if !due.is_empty() {
        keep_index(redis, cas.key, &due, cas.expires_at_ms, deadline).await;
    }
    Ok(match answer {
        1 => CasAnswer::Done,
        -1 => CasAnswer::PresenceFailed,
        _ => CasAnswer::Conflict,
    })
}
