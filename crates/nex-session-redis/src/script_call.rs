//! A Lua script call as one prebuilt `EVALSHA` command, for the hot write.
//!
//! `redis::Script::key(…).arg(…)` (a `ScriptInvocation`) encodes every key and
//! argument into its own `Vec<u8>` and copies them all again into the command it
//! sends: 14 allocations for the 11 arguments of a compare-and-set, a third of
//! a hot write's allocations on this store (BENCHMARKS.md). A [`redis::Cmd`]
//! encodes its arguments into one buffer, sized up front here. What the
//! invocation adds on top, loading a script the server does not have (after a
//! restart or `SCRIPT FLUSH`) and sending it again, is done here the same way:
//! `NOSCRIPT` means the script did not run, so sending it again is safe.

use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind};

use crate::connect::Connection;

/// Room in the buffer for each argument besides its payload: a number (up to 20
/// digits) or one of the scripts' short constant names.
const PER_ARGUMENT: usize = 24;

/// `EVALSHA <hash> 1 <key>`, ready for `args` more arguments whose fields and
/// values (the parts of unknown length) add up to `payload` bytes. The buffer is
/// sized from these; a short guess only costs a reallocation.
pub(crate) fn evalsha(script: &Script, key: &str, args: usize, payload: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(4 + args, "EVALSHA".len() + 40 + 1 + key.len() + PER_ARGUMENT * args + payload);
    cmd.arg("EVALSHA").arg(script.get_hash()).arg(1).arg(key);
    cmd
}

/// Sends `cmd` (made by [`evalsha`] for `script`); loads the script first when the
/// server answers `NOSCRIPT`, and sends it once more.
pub(crate) async fn invoke<T: FromRedisValue>(script: &Script, cmd: &Cmd, conn: &mut Connection) -> RedisResult<T> {
    match cmd.query_async(conn).await {
        Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await
        }
        answer => answer,
    }
}
