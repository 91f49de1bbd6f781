//! The Lua scripts of the Redis store. Each runs atomically in Redis, so a check
//! and the write it guards can never be split by another client's command.
//!
//! A session is one hash; its [`MARKER`] field keeps a session with no keys in
//! existence, and `PEXPIREAT` on the key is the session's expiry.

use redis::Script;

use crate::store::Presence;

/// The field that marks a session as existing even with no keys.
pub(super) const MARKER: &str = "\u{0}nex";

/// A batch of puts and deletes, if the presence condition holds.
/// KEYS: session. ARGV: presence, expires_at, marker, then `p field value` or `d field` per change.
const APPLY: &str = r"
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[1] == 'existing' and not exists) or (ARGV[1] == 'new' and exists) then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], '1')
local i = 4
while i <= #ARGV do
  if ARGV[i] == 'p' then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2]); i = i + 3
  else
    redis.call('HDEL', KEYS[1], ARGV[i + 1]); i = i + 2
  end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1";

/// One field's compare-and-set. Answers 1 done, 0 conflict (the field is not as
/// expected), -1 presence failed (the session is missing, or exists when it must be new).
/// KEYS: session. ARGV: presence, expires_at, marker, field, expected_value_present
/// (0/1), expected_value, op (`p` put, `d` delete, `k` keep: check only), new_value.
const COMPARE_AND_SET: &str = r"
local exists = redis.call('EXISTS', KEYS[1])
if (ARGV[1] == 'existing' and exists == 0) or (ARGV[1] == 'new' and exists == 1) then return -1 end
local current = redis.call('HGET', KEYS[1], ARGV[4])
if ARGV[5] == '1' then
  if current ~= ARGV[6] then return 0 end
elseif current then
  return 0
end
if ARGV[7] == 'k' then return 1 end
redis.call('HSET', KEYS[1], ARGV[3], '1')
if ARGV[7] == 'p' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[8]) else redis.call('HDEL', KEYS[1], ARGV[4]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1";

/// `renew` on one node: moves the session if the source exists and the target does not.
/// KEYS: from, to. ARGV: expires_at.
const RENAME: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[1])
return 1";

/// `renew` on a cluster, step one: read and delete the old session at once.
/// KEYS: session. Answers its remaining time to live in ms (as text), then the
/// hash's fields and values; just `-2` when there is no such session.
const TAKE: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
table.insert(all, 1, tostring(ttl))
return all";

/// `renew` on a cluster, step two: write the taken fields under the new key.
/// KEYS: session. ARGV: expires_at, then field, value pairs.
const PUT_ALL_IF_ABSENT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1";

/// The scripts, hashed once (redis-rs sends `EVALSHA`, and the source on a miss).
pub(super) struct Scripts {
    pub(super) apply: Script,
    pub(super) compare_and_set: Script,
    pub(super) rename: Script,
    pub(super) take: Script,
    pub(super) put_all_if_absent: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            apply: Script::new(APPLY),
            compare_and_set: Script::new(COMPARE_AND_SET),
            rename: Script::new(RENAME),
            take: Script::new(TAKE),
            put_all_if_absent: Script::new(PUT_ALL_IF_ABSENT),
        }
    }
}

/// A presence condition as the scripts spell it.
pub(super) fn presence_arg(presence: Presence) -> &'static str {
    match presence {
        Presence::New => "new",
        Presence::Existing => "existing",
    }
}

/// What a compare-and-set does once the check passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CasOp {
    /// Write the new value.
    Put,
    /// Delete the field.
    Delete,
    /// Only check (a batch of `Keep`s).
    Check,
}

impl CasOp {
    pub(super) fn arg(self) -> &'static str {
        match self {
            Self::Put => "p",
            Self::Delete => "d",
            Self::Check => "k",
        }
    }
}
