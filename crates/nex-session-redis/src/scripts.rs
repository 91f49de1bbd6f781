//! The Lua scripts of the Redis store. Each runs atomically in Redis, so a check
//! and the write it guards can never be split by another client's command.
//!
//! A session is one hash; its [`MARKER`] field keeps a session with no keys in
//! existence, and `PEXPIREAT` on the key is the session's expiry. A user's index
//! is another hash (`users.rs`). Every script but `RENAME` (single node only)
//! touches one key, so each is atomic on a Redis Cluster too.

use redis::Script;

use nex_session_core::store::toolkit::update_chain::CasOp;
use nex_session_core::store::Presence;

/// The field that marks a session as existing even with no keys.
pub(super) const MARKER: &str = "\u{0}nex";

/// A bound session's field holding until when (ms) its user's index was last
/// made to live (`index_expiry.rs`). Like [`MARKER`], it starts with NUL, which
/// no field the session layer writes can, and loads skip it.
pub(super) const INDEX_KEPT: &str = "\u{0}ix";

/// The Lua function `index_due(kept_field, user_field, expires_at, now)`, for the
/// scripts that slide the expiry of the session `KEYS[1]`: its binding when it
/// is bound and its index was told to live less than half the session's new
/// lifetime beyond its new expiry (then the caller tells it again,
/// `index_expiry.rs`), else `''`. Sessions bound before indexes expired have no
/// `kept_field` and are never due.
macro_rules! index_due {
    () => {
        r"
local function index_due(kept_field, user_field, expires_at, now)
  local kept = redis.call('HGET', KEYS[1], kept_field)
  if not kept then return '' end
  local e, n = tonumber(expires_at), tonumber(now)
  if tonumber(kept) >= e + math.floor((e - n) / 2) then return '' end
  return redis.call('HGET', KEYS[1], user_field) or ''
end
"
    };
}

/// The Lua function `keep_alive(until_ms, now_ms)` for the scripts on a user's
/// index `KEYS[1]` and order `KEYS[2]`: the index lives at least until `until_ms`
/// and the order ends with it. An index without an expiry (made before indexes
/// expired) keeps none, and its order none either; the purge's sweep ends it
/// once its members are gone. (`PEXPIREAT … GT` would do it in one command, but
/// needs Redis 7.)
macro_rules! keep_alive {
    () => {
        r"
local function keep_alive(until_ms, now_ms)
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl == -2 then return end
  if ttl == -1 then
    redis.call('PERSIST', KEYS[2])
    return
  end
  local now = tonumber(now_ms)
  local at = math.max(now + ttl, tonumber(until_ms))
  if at > now + ttl then redis.call('PEXPIREAT', KEYS[1], at) end
  redis.call('PEXPIREAT', KEYS[2], at)
end
"
    };
}

/// What follows the prefix in the name of a user's index (`<prefix>u:{…}`): never
/// a session key's hex, so the two kinds of keys cannot be confused.
pub(super) const INDEX_INFIX: &str = "u:";

/// What follows the prefix in the name of a user's order (`<prefix>o:{…}`, beside
/// the index, in its slot): never a session key's hex either.
pub(super) const ORDER_INFIX: &str = "o:";

/// A batch of puts and deletes, if the presence condition holds. Answers
/// `{0, ''}` (presence failed) or `{1, index_due}`.
/// KEYS: session. ARGV: presence, expires_at, marker, index-kept field, binding
/// field, now (ms), then `p field value` or `d field` per change.
const APPLY: &str = concat!(
    index_due!(),
    r"
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[1] == 'existing' and not exists) or (ARGV[1] == 'new' and exists) then return {0, ''} end
redis.call('HSET', KEYS[1], ARGV[3], '1')
local i = 7
while i <= #ARGV do
  if ARGV[i] == 'p' then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2]); i = i + 3
  else
    redis.call('HDEL', KEYS[1], ARGV[i + 1]); i = i + 2
  end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return {1, index_due(ARGV[4], ARGV[5], ARGV[2], ARGV[6])}"
);

/// One field's compare-and-set. Answers `{1, index_due}` done, `{0, ''}` conflict
/// (the field is not as expected), `{-1, ''}` presence failed (the session is
/// missing, or exists when it must be new).
/// KEYS: session. ARGV: presence, expires_at, marker, field, expected_value_present
/// (0/1), expected_value, op (`p` put, `d` delete, `k` keep: check only), new_value,
/// index-kept field, binding field, now (ms).
const COMPARE_AND_SET: &str = concat!(
    index_due!(),
    r"
local exists = redis.call('EXISTS', KEYS[1])
if (ARGV[1] == 'existing' and exists == 0) or (ARGV[1] == 'new' and exists == 1) then return {-1, ''} end
local current = redis.call('HGET', KEYS[1], ARGV[4])
if ARGV[5] == '1' then
  if current ~= ARGV[6] then return {0, ''} end
elseif current then
  return {0, ''}
end
if ARGV[7] == 'k' then return {1, ''} end
redis.call('HSET', KEYS[1], ARGV[3], '1')
if ARGV[7] == 'p' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[8]) else redis.call('HDEL', KEYS[1], ARGV[4]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return {1, index_due(ARGV[9], ARGV[10], ARGV[2], ARGV[11])}"
);

/// `touch`: slide the expiry of an existing session. Answers `{0, ''}` (no
/// session) or `{1, index_due}`.
/// KEYS: session. ARGV: expires_at, index-kept field, binding field, now (ms).
const TOUCH: &str = concat!(
    index_due!(),
    r"
if redis.call('PEXPIREAT', KEYS[1], ARGV[1]) == 0 then return {0, ''} end
return {1, index_due(ARGV[2], ARGV[3], ARGV[1], ARGV[4])}"
);

/// `renew` on one node: moves the session if the source exists, the target does
/// not, and the source's binding is the expected one (empty: none). Answers
/// `{1, ''}` moved, `{0, ''}` refused, or `{2, binding}` when the binding is not the
/// expected one (then nothing moved: the caller goes the way that binding needs).
/// KEYS: from, to. ARGV: expires_at, binding field, expected binding.
const RENAME: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return {0, ''} end
local binding = redis.call('HGET', KEYS[1], ARGV[2]) or ''
if binding ~= ARGV[3] then return {2, binding} end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[1])
return {1, ''}";

/// `renew` on a cluster, step one: read and delete the old session at once, if its
/// binding is the expected one (empty: none). Answers `{'taken', ttl, field,
/// value, ...}` (its remaining time to live in ms, then the hash),
/// `{'missing'}`, or `{'binding', binding}` when the binding is not the expected
/// one (nothing taken).
/// KEYS: session. ARGV: binding field, expected binding.
const TAKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local binding = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if binding ~= ARGV[2] then return {'binding', binding} end
local ttl = redis.call('PTTL', KEYS[1])
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
table.insert(all, 1, tostring(ttl))
table.insert(all, 1, 'taken')
return all";

/// `renew` on a cluster, step two: write the taken fields under the new key.
/// KEYS: session. ARGV: expires_at, then field, value pairs.
const PUT_ALL_IF_ABSENT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1";

// The per-user index (`users.rs`): one hash per user, a field per session key
// (64 hex characters) whose value is the member's state: `b` bound, `r` taken
// by a revoke, `m<until ms>:<source key>` the target of a rename in flight; and
// beside it, in the same slot, the user's order: a sorted set of the members
// scored by last use (ms), which the cap reads from the least recently seen.
// Every script that drops a member from the hash drops it from the order too.

/// `bind`, step one: index the session, seen at its sign-in, and keep the index
/// alive until `until` (a new index expires then). Answers -1 (and changes
/// nothing) if a revoke has taken it, else the number of members after.
/// KEYS: index, order. ARGV: member, sign-in time (ms), until (ms), now (ms).
const INDEX_BIND: &str = concat!(
    keep_alive!(),
    r"
if redis.call('HGET', KEYS[1], ARGV[1]) == 'r' then return -1 end
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], ARGV[1], 'b')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if fresh then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
keep_alive(ARGV[3], ARGV[4])
return redis.call('HLEN', KEYS[1])"
);

/// `bind`, last step, with a cap: while the index has more than `cap` members,
/// takes the least recently seen bound member other than the one signing in,
/// marks it `r` (as a revoke does) and answers it, at most `batch` of them (a
/// user far over the cap comes down over several sign-ins). Order entries
/// without a member are dropped on the way. Reads at most `excess + 64` order
/// entries: the work is bounded, not by the user's history.
/// KEYS: index, order. ARGV: member signing in, cap, batch.
const INDEX_CAP: &str = r"
local excess = math.min(redis.call('HLEN', KEYS[1]) - tonumber(ARGV[2]), tonumber(ARGV[3]))
local taken = {}
if excess <= 0 then return taken end
local candidates = redis.call('ZRANGE', KEYS[2], 0, excess + 63)
for _, member in ipairs(candidates) do
  if #taken >= excess then break end
  local state = redis.call('HGET', KEYS[1], member)
  if not state then
    redis.call('ZREM', KEYS[2], member)
  elseif state == 'b' and member ~= ARGV[1] then
    redis.call('HSET', KEYS[1], member, 'r')
    taken[#taken + 1] = member
  end
end
return taken";

/// A session was used: its member moves up the order (members only), which
/// ends with the index.
/// KEYS: index, order. ARGV: member, when (ms, also now).
const INDEX_SEEN: &str = concat!(
    keep_alive!(),
    r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
keep_alive(0, ARGV[2])
return 1"
);

/// After a write found the index due (`index_due`): keep it alive until
/// `until`. An index gone while this session lives (a revoke emptied it as the
/// write landed) is made again with the member, so the session stays revocable.
/// KEYS: index, order. ARGV: member, until (ms), now (ms).
const INDEX_KEEP: &str = concat!(
    keep_alive!(),
    r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], 'b')
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
keep_alive(ARGV[2], ARGV[3])
return 1"
);

/// After [`INDEX_KEEP`]: record on the session until when its index lives
/// (never creating a session that is gone).
/// KEYS: session. ARGV: index-kept field, until (ms).
const SESSION_KEPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1";

/// Drops one member (its session turned out missing, or moved to another user).
/// KEYS: index, order. ARGV: member.
const INDEX_DROP: &str = r"
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])";

/// `bind`, step two: write the binding of a live session, until when its index
/// lives, and its expiry. Answers `{1, previous binding or ''}`, or `{0, ''}` when
/// there is no session.
/// KEYS: session. ARGV: binding field, binding, expires_at, index-kept field, until (ms).
const BIND: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local previous = redis.call('HGET', KEYS[1], ARGV[1]) or ''
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[4], ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {1, previous}";

/// `rename` of a bound session, step one: index the target as moving in, if the
/// source is a member no revoke has taken and the target is not a member yet.
/// Refused too while a revoke-all scans the index (see `INDEX_MARK_STEP`), but for
/// the session it keeps. Keeps the index alive until `until` (the target's
/// expiry allows for). Answers 1, or 0 (nothing changed).
/// KEYS: index, order. ARGV: source, target, the target's state (`m<until>:<source>`),
/// now (ms), until (ms).
const INDEX_MOVE_IN: &str = concat!(
    keep_alive!(),
    r"
local state = redis.call('HGET', KEYS[1], ARGV[1])
if not state or state == 'r' then return 0 end
local revoking = redis.call('HGET', KEYS[1], '!revoking')
if revoking then
  local until_ms, kept = string.match(revoking, '^(%d+):(%x*)$')
  if until_ms and tonumber(until_ms) >= tonumber(ARGV[4]) and kept ~= ARGV[1] then return 0 end
end
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
keep_alive(ARGV[5], ARGV[4])
return 1"
);

/// `rename` of a bound session, last step: the data has moved, so the source is
/// dropped; the target becomes bound unless a revoke took it meanwhile (answers
/// 1), else answers 0 and the caller deletes the target.
/// The target takes the source's place in the order, which ends with the index.
/// KEYS: index, order. ARGV: source, target, now (ms).
const INDEX_SETTLE: &str = concat!(
    keep_alive!(),
    r"
redis.call('HDEL', KEYS[1], ARGV[1])
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local state = redis.call('HGET', KEYS[1], ARGV[2])
if not state or state == 'r' then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], 'b')
if score then redis.call('ZADD', KEYS[2], score, ARGV[2]) end
keep_alive(0, ARGV[3])
return 1"
);

/// `rename` of a bound session that moved nothing: drop the target if it is
/// still moving in.
/// KEYS: index. ARGV: target.
const INDEX_UNPEND: &str = r"
local state = redis.call('HGET', KEYS[1], ARGV[1])
if state and string.sub(state, 1, 1) == 'm' then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1";

/// Lazy cleanup: drop members seen without a session, but not a rename target
/// still moving in (it has no session yet). Answers how many were dropped.
/// KEYS: index, order. ARGV: now (ms), then the members.
const INDEX_PRUNE: &str = r"
local dropped = 0
for i = 2, #ARGV do
  local state = redis.call('HGET', KEYS[1], ARGV[i])
  local pending = state and string.match(state, '^m(%d+):')
  local until_ms = pending and tonumber(pending)
  if state and string.sub(ARGV[i], 1, 1) ~= '!' and not (until_ms and until_ms >= tonumber(ARGV[1])) then
    dropped = dropped + redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
end
return dropped";

/// A revoke of one session, step one: mark the member and the targets of its
/// renames in flight as taken (`r`), so no rename or bind can use them any
/// more, and answer them.
/// KEYS: index. ARGV: member.
const INDEX_MARK: &str = r"
local all = redis.call('HGETALL', KEYS[1])
local marked = {}
for i = 1, #all, 2 do
  local member, state = all[i], all[i + 1]
  local source = string.match(state, '^m%d+:(%x+)$')
  if string.sub(member, 1, 1) ~= '!' and (member == ARGV[1] or source == ARGV[1]) then
    redis.call('HSET', KEYS[1], member, 'r')
    marked[#marked + 1] = member
  end
end
return marked";

/// A revoke-all, step one, in steps: one `HSCAN` step over the index, marking
/// the members it returns as taken (`r`) but the kept one and the targets of
/// its renames in flight, and answering `{next cursor, marked...}`. While the
/// scan runs, the index holds the field `!revoking` (`<until ms>:<kept member>`: `!`
/// starts no member, members are hex), renewed
/// each step, dropped at the last): `INDEX_MOVE_IN` refuses to move any other
/// member, so no session can move from where the scan has yet to go to where
/// it has been (`HSCAN` returns every member present for the whole scan). With
/// `ARGV[3]` = `asker`, the kept member is the session asking: unless it is still
/// bound (`b`: no revoke took it), nothing is marked and the answer is `{'!gone'}`.
/// KEYS: index. ARGV: cursor, kept member (empty: none), `asker` or empty, hold until (ms), count.
const INDEX_MARK_STEP: &str = r"
if ARGV[3] == 'asker' and redis.call('HGET', KEYS[1], ARGV[2]) ~= 'b' then return {'!gone'} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0'} end
redis.call('HSET', KEYS[1], '!revoking', ARGV[4] .. ':' .. ARGV[2])
local step = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[5])
local out = {step[1]}
local found = step[2]
for i = 1, #found, 2 do
  local member, state = found[i], found[i + 1]
  local source = string.match(state, '^m%d+:(%x+)$')
  local kept = member == ARGV[2] or (source ~= nil and source == ARGV[2])
  if string.sub(member, 1, 1) ~= '!' and not kept then
    redis.call('HSET', KEYS[1], member, 'r')
    out[#out + 1] = member
  end
end
if step[1] == '0' then redis.call('HDEL', KEYS[1], '!revoking') end
return out";

/// A revoke, step two, per session: delete it if its binding names the user.
/// Answers 1 deleted, 0 no session, -1 spared (bound to no one or someone else).
/// KEYS: session. ARGV: binding field, user.
const REVOKE: &str = r"
local binding = redis.call('HGET', KEYS[1], ARGV[1])
if not binding then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  return 0
end
local ok, decoded = pcall(cjson.decode, binding)
if not ok or type(decoded) ~= 'table' or decoded['user'] ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
return 1";

/// A revoke, last step: members still marked are dropped (`g`: their session is
/// gone) or bound again (`s`: spared, bound to someone else or not yet bound).
/// KEYS: index, order. ARGV: member, `g` or `s`, member, ...
const INDEX_RELEASE: &str = r"
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == 'r' then
    if ARGV[i + 1] == 'g' then
      redis.call('HDEL', KEYS[1], ARGV[i])
      redis.call('ZREM', KEYS[2], ARGV[i])
    else
      redis.call('HSET', KEYS[1], ARGV[i], 'b')
    end
  end
end
return 1";

/// The scripts, hashed once (redis-rs sends `EVALSHA`, and the source on a miss).
pub(super) struct Scripts {
    pub(super) apply: Script,
    pub(super) compare_and_set: Script,
    pub(super) touch: Script,
    pub(super) rename: Script,
    pub(super) take: Script,
    pub(super) put_all_if_absent: Script,
    pub(super) index_bind: Script,
    pub(super) index_cap: Script,
    pub(super) index_seen: Script,
    pub(super) index_keep: Script,
    pub(super) session_kept: Script,
    pub(super) index_drop: Script,
    pub(super) bind: Script,
    pub(super) index_move_in: Script,
    pub(super) index_settle: Script,
    pub(super) index_unpend: Script,
    pub(super) index_prune: Script,
    pub(super) index_mark: Script,
    pub(super) index_mark_step: Script,
    pub(super) revoke: Script,
    pub(super) index_release: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            apply: Script::new(APPLY),
            compare_and_set: Script::new(COMPARE_AND_SET),
            touch: Script::new(TOUCH),
            rename: Script::new(RENAME),
            take: Script::new(TAKE),
            put_all_if_absent: Script::new(PUT_ALL_IF_ABSENT),
            index_bind: Script::new(INDEX_BIND),
            index_cap: Script::new(INDEX_CAP),
            index_seen: Script::new(INDEX_SEEN),
            index_keep: Script::new(INDEX_KEEP),
            session_kept: Script::new(SESSION_KEPT),
            index_drop: Script::new(INDEX_DROP),
            bind: Script::new(BIND),
            index_move_in: Script::new(INDEX_MOVE_IN),
            index_settle: Script::new(INDEX_SETTLE),
            index_unpend: Script::new(INDEX_UNPEND),
            index_prune: Script::new(INDEX_PRUNE),
            index_mark: Script::new(INDEX_MARK),
            index_mark_step: Script::new(INDEX_MARK_STEP),
            revoke: Script::new(REVOKE),
            index_release: Script::new(INDEX_RELEASE),
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

/// A compare-and-set's operation as `COMPARE_AND_SET` spells it.
pub(super) fn cas_op_arg(op: CasOp) -> &'static str {
    match op {
        CasOp::Put => "p",
        CasOp::Delete => "d",
        CasOp::Check => "k",
    }
}
