//! A client-side cache of loaded sessions, kept current by `LISTEN/NOTIFY`.
//!
//! Without it every request that reads its session pays a PostgreSQL round trip.
//! With it, a session read once is answered from memory until a write says it
//! changed: every write transaction of this store ends with
//! `pg_notify('nex_session', <hex keys it changed>)`, and every store instance
//! listens on that channel on a connection of its own.
//!
//! Why the answers stay correct (all from PostgreSQL's documented behaviour):
//! - A notification is sent at commit, to every listening session, and
//!   "notifications from different transactions are delivered in the order in
//!   which the transactions committed" (the `NOTIFY` reference page).
//! - Every shard has a generation, bumped by each invalidation in it. A load notes
//!   the generation before asking PostgreSQL and caches its answer only if it is
//!   unchanged when the answer is back; an answer that raced with a change is used
//!   once, never kept.
//! - This instance's own writes change the cache once their `COMMIT` is answered,
//!   before they return: a write of known fields (`apply`, `update`) patches the
//!   cached session with them ([`ClientCache::patch`]) if nothing invalidated its
//!   shard since the write began, else it drops the entry; other writes drop it.
//!   Either way the shard's generation moves, so a load that read before the
//!   commit is fenced off. A write that fails drops its keys too (its `COMMIT` may
//!   still land). Until the commit is answered the entry shows the session as it
//!   was, which a read that ran before the write returned may see.
//! - Every notification names its writer (instance and write number). This
//!   instance's own writes settle the cache themselves (above), so their own
//!   notification changes nothing while the write is still *pending* (its commit
//!   answer not handled yet), nor once it patched the entry (`Cached::written`):
//!   a busy session stays cached while it is written. Any other notification
//!   drops the keys it names; so do this instance's own once one of its writes
//!   gave up after sending `COMMIT` (it may land later, under an entry a later
//!   write patched): from then on, the notifications of every own write numbered
//!   up to that moment count as another instance's.
//! - An entry is never served past its session's expiry.
//! - **Only while the channel shows signs of life.** A frozen PostgreSQL or a cut
//!   network sends no notifications, and silence would look like "nothing
//!   changed". So the listener sends itself a notification, `ping:<instance>:<ms>`,
//!   every [`HEARTBEAT`]; when one comes back, every transaction committed before
//!   it was sent has been delivered (commit order). The cache answers only within
//!   `ANSWERS_FOR` (3 s, the core's `store::toolkit::client_cache`) of the sending
//!   of the last ping that came back. A lost listener connection empties the cache
//!   at once; after a silence it is emptied before it answers again (notifications
//!   may have been missed).
//!
//! What it costs: a write by *another* app instance becomes visible here when its
//! notification arrives, one network hop after its commit. Writes made outside
//! nex-session (SQL by hand) send no notification: a cache keeps what it had until
//! the session is next written through nex-session, or the connection drops. Use the
//! CLI (`nex-session sessions revoke`), or turn the cache off
//! ([`PostgresOptions::client_cache`](crate::store::PostgresOptions::client_cache)).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio_postgres::config::TargetSessionAttrs;

use crate::connect::Target;
use crate::failover::{lost_primary, Primary};

pub(super) use nex_session_core::store::toolkit::client_cache::Ticket;
use nex_session_core::store::toolkit::client_cache::{Entries, Liveness};
use nex_session_core::store::{Record, Snapshot};
use nex_session_core::StoreKey;

/// The channel every instance listens on.
pub(super) const CHANNEL: &str = "nex_session";
/// How often the listener pings itself through the channel.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);

/// The cache of one [`PostgresStore`](crate::store::PostgresStore).
pub(super) struct ClientCache {
    entries: Entries,
    /// Tells this instance's pings and writes from other instances'.
    instance: u64,
    /// When the last ping that came back was sent.
    life: Liveness,
    /// The number of this instance's last write (see [`ClientCache::next_write`]).
    writes: AtomicU64,
    /// This instance's writes whose commit was sent and not settled yet.
    pending: Mutex<HashSet<u64>>,
    /// Own writes numbered up to this one are not trusted to be in any entry:
    /// one of them gave up after sending its `COMMIT` ([`ClientCache::abandoned`]).
    distrusted_up_to: AtomicU64,
}

/// The effect of one of this instance's writes on one session, for [`ClientCache::patch`].
pub(super) struct Patch {
    /// Fields set (`Some`) or deleted (`None`).
    pub(super) changes: Vec<(String, Option<Vec<u8>>)>,
    pub(super) expires_at_ms: i64,
}

impl ClientCache {
    fn new(capacity: usize) -> Self {
        let mut bytes = [0u8; 8];
        // A fixed id only makes two instances' pings look alike: the cache then
        // trusts another's heartbeat, which is as fresh as its own on the same server.
        let _ = getrandom::fill(&mut bytes);
        Self {
            entries: Entries::new(capacity),
            // Never 0, the instance of stores without a cache.
            instance: u64::from_le_bytes(bytes) | 1,
            // Answers once the first ping came back through the channel.
            life: Liveness::waiting(),
            writes: AtomicU64::new(0),
            pending: Mutex::new(HashSet::new()),
            distrusted_up_to: AtomicU64::new(0),
        }
    }

    /// The cached session's fields, if cached, not expired at `now_ms`, and the
    /// channel showed signs of life within [`ANSWERS_FOR`](nex_session_core::store::toolkit::client_cache::ANSWERS_FOR).
    pub(super) fn get(&self, key: StoreKey, now_ms: i64) -> Option<Snapshot> {
        if !self.life.fresh(Instant::now()) {
            return None;
        }
        self.entries.get(key, now_ms)
    }

    /// Call before asking PostgreSQL for `key`; hand the ticket to [`ClientCache::insert`].
    pub(super) fn ticket(&self, key: StoreKey) -> Ticket {
        self.entries.ticket(key)
    }

    /// Caches what PostgreSQL answered for `key`, unless its shard changed since the ticket.
    pub(super) fn insert(&self, key: StoreKey, record: &Record, ticket: Ticket) {
        self.entries.insert(key, record, ticket);
    }

    /// Drops `key` and fences off loads of its shard that are in flight.
    pub(super) fn invalidate(&self, key: StoreKey) {
        self.entries.invalidate(key);
    }

    /// This cache's instance and a number for a write about to commit, both
    /// named in the write's notification ([`payload`]). The write is pending until
    /// [`ClientCache::settled`].
    pub(super) fn next_write(&self) -> (u64, u64) {
        let write = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        self.pending().insert(write);
        (self.instance, write)
    }

    /// Write `write` changed the cache for its keys (after its commit was
    /// answered), or dropped them (it gave up): its notification may now act.
    pub(super) fn settled(&self, write: u64) {
        self.pending().remove(&write);
    }

    /// Write `write` gave up after sending its `COMMIT` (a timeout, a cancelled
    /// request): it may still commit, after a load cached the session without it
    /// and after a later own write patched that entry. So the notifications of every
    /// own write numbered up to the latest one so far drop their keys, as another
    /// instance's would; this write's among them.
    pub(super) fn abandoned(&self, write: u64) {
        let latest = self.writes.load(Ordering::Relaxed).max(write);
        self.distrusted_up_to.fetch_max(latest, Ordering::AcqRel);
    }

    fn pending(&self) -> MutexGuard<'_, HashSet<u64>> {
        // Inserts and removes only: a panic leaves nothing half-made.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write number `write`, begun at `ticket`, committed `patch` on `key`: the
    /// cached session gets it if its shard saw no invalidation since the ticket (so
    /// the entry held what PostgreSQL held when the write locked the row, or what
    /// it holds now); otherwise the entry is dropped. Loads in flight are fenced.
    pub(super) fn patch(&self, key: StoreKey, ticket: Ticket, patch: &Patch, write: u64) {
        let changes = patch.changes.iter().map(|(field, value)| (field.as_str(), value.as_deref()));
        self.entries.patch(key, ticket, changes, patch.expires_at_ms, write);
    }

    /// This instance's write number `write` was notified for `key`: the entry stays
    /// if that write is still pending (it settles the cache itself) or was (or a
    /// later one was) patched in; else, or if the write is distrusted
    /// ([`ClientCache::abandoned`]), it is dropped.
    fn own_write_notified(&self, key: StoreKey, write: u64) {
        if write <= self.distrusted_up_to.load(Ordering::Acquire) {
            self.invalidate(key);
            return;
        }
        if self.pending().contains(&write) {
            return;
        }
        self.entries.invalidate_unless_written(key, write);
    }

    fn clear(&self) {
        self.entries.clear();
    }

    /// A notification arrived: a ping (maybe ours: a sign of life) or changed keys.
    fn notified(&self, payload: &str) {
        if let Some(ping) = payload.strip_prefix("ping:") {
            let mine = ping.split_once(':').filter(|(id, _)| id.parse() == Ok(self.instance));
            if let Some(sent_ms) = mine.and_then(|(_, ms)| ms.parse::<u64>().ok()) {
                // After a silence, emptied first: notifications may have been missed.
                self.life.alive(sent_ms, || self.clear());
            }
            return;
        }
        let Some((instance, write, keys)) = parse_write(payload) else {
            // Not one of ours: to be safe, forget everything.
            self.clear();
            return;
        };
        for hex in keys.split(',') {
            match parse_key(hex) {
                Some(key) if instance == self.instance => self.own_write_notified(key, write),
                Some(key) => self.invalidate(key),
                None => self.clear(),
            }
        }
    }

    /// The pool found the primary gone (see `failover.rs`): nothing cached can
    /// be trusted; the listener moves by itself.
    pub(super) fn primary_moved(&self) {
        self.lost();
    }

    /// The listener's connection ended: nothing is known any more.
    fn lost(&self) {
        self.life.lost();
        self.clear();
    }
}

/// The payload of write number `write` of cache `instance` (0 and 0 from a store
/// without a cache, which no cache takes for its own), naming `keys`:
/// `w:<instance>:<write>:` then the keys in hex, comma-separated.
pub(super) fn payload(instance: u64, write: u64, keys: &[StoreKey]) -> String {
    let mut out = String::with_capacity(48 + keys.len() * 65);
    let _ = write!(out, "w:{instance}:{write}:");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for byte in key.as_bytes() {
            let _ = write!(out, "{byte:02x}");
        }
    }
    out
}

/// `(instance, write, keys)` of a write's payload.
fn parse_write(payload: &str) -> Option<(u64, u64, &str)> {
    let mut parts = payload.strip_prefix("w:")?.splitn(3, ':');
    let instance = parts.next()?.parse().ok()?;
    let write = parts.next()?.parse().ok()?;
    Some((instance, write, parts.next()?))
}

fn parse_key(hex: &str) -> Option<StoreKey> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(StoreKey::from_bytes(bytes))
}

/// Starts the cache and its listener (which reconnects by itself while the
/// cache lives, through the same `target` as the pool: same hosts, same TLS).
/// The cache answers once the first ping has come back.
pub(super) fn start(target: Target, capacity: usize, primary: Arc<Primary>) -> Arc<ClientCache> {
    let cache = Arc::new(ClientCache::new(capacity));
    tokio::spawn(listen(target, Arc::downgrade(&cache), primary));
    cache
}

/// Keeps a listening connection open, pinging through it, while the cache lives.
async fn listen(target: Target, cache: Weak<ClientCache>, primary: Arc<Primary>) {
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        let epoch = primary.epoch();
        let ended = tokio::select! {
            ended = listen_once(&target, &cache, &primary, epoch) => ended,
            // The pool found the primary gone: this connection may be on the old one.
            () = primary.moved_past(epoch) => Ok(Ended::Moved),
        };
        if let Some(cache) = cache.upgrade() {
            cache.lost();
        }
        match ended {
            // Straight to the new primary (a failed attempt then waits below).
            Ok(Ended::Moved) => continue,
            Ok(Ended::Closed) => {}
            Err(err) => tracing::debug!(error = %err, "PostgreSQL session cache listener ended"),
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Why a listening connection ended without an error.
enum Ended {
    /// The connection closed (or the cache is gone).
    Closed,
    /// The primary moved: listen on the new one.
    Moved,
}

async fn listen_once(
    target: &Target,
    weak: &Weak<ClientCache>,
    primary: &Arc<Primary>,
    epoch: u64,
) -> Result<Ended, Box<dyn std::error::Error + Send + Sync>> {
    // The connection's notifications (pings included) come through here.
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    let (client, _endpoint) = target.connect_listening(tx).await?;
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // The heartbeat owns the client: when the cache is gone it ends, the client
    // drops, the connection closes, and so the loop below ends too.
    let check_writable = target.config().get_target_session_attrs() == TargetSessionAttrs::ReadWrite;
    tokio::spawn(heartbeat(client, weak.clone(), Beat { primary: primary.clone(), epoch, check_writable }));
    while let Some(payload) = notifications.recv().await {
        let Some(cache) = weak.upgrade() else { break };
        cache.notified(&payload);
    }
    Ok(Ended::Closed)
}

/// What the heartbeat watches besides the channel's life.
struct Beat {
    primary: Arc<Primary>,
    /// The epoch the listener connected in.
    epoch: u64,
    /// `target_session_attrs=read-write`: a read-only answer means the primary moved.
    check_writable: bool,
}

/// Pings through the channel every [`HEARTBEAT`] while the cache lives and the
/// connection works. With `target_session_attrs=read-write` the ping also reads
/// `transaction_read_only`: a demoted primary still delivers this connection's
/// own pings (`NOTIFY` is allowed in a read-only transaction), so without the
/// check a listener left on it would look alive while the new primary's writes
/// go unheard. A read-only answer, like a refused ping, counts as a lost
/// connection and tells the pool the primary moved.
async fn heartbeat(client: tokio_postgres::Client, weak: Weak<ClientCache>, beat: Beat) {
    let mut every = tokio::time::interval(HEARTBEAT);
    loop {
        every.tick().await;
        if beat.primary.epoch() != beat.epoch {
            return; // the listener moved on without this connection
        }
        let Some(cache) = weak.upgrade() else { return };
        let ping = format!("ping:{}:{}", cache.instance, cache.life.ms(Instant::now()));
        drop(cache);
        // Bounded: a frozen server must not hold the heartbeat (the cache goes stale
        // by itself meanwhile, as no ping comes back).
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&CHANNEL, &ping];
        let sql = match beat.check_writable {
            true => "SELECT pg_notify($1, $2), current_setting('transaction_read_only') = 'on'",
            false => "SELECT pg_notify($1, $2), false",
        };
        let sent = tokio::time::timeout(HEARTBEAT, client.query_one(sql, &params)).await;
        match sent {
            Ok(Ok(row)) if row.try_get::<_, bool>(1).unwrap_or(false) => {
                beat.primary.moved(beat.epoch);
                return; // read-only: dropping the client ends the listener, which moves
            }
            Ok(Err(err)) => {
                if lost_primary(&err) {
                    beat.primary.moved(beat.epoch);
                }
                return; // the connection broke: the listener loop ends and reconnects
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nex_session_core::store::Fields;

    /// A cache that answers (as if a ping just came back) and holds `key` as `a = 1`.
    fn warm(key: StoreKey) -> ClientCache {
        let cache = ClientCache::new(100);
        cache.life.alive(cache.life.ms(Instant::now()), || {});
        let mut fields = Fields::new();
        fields.insert("a".into(), b"1".to_vec());
        let ticket = cache.ticket(key);
        cache.insert(key, &Record { fields, expires_at_ms: i64::MAX }, ticket);
        cache
    }

    fn a(cache: &ClientCache, key: StoreKey) -> Option<Vec<u8>> {
        cache.get(key, 0).map(|fields| fields.get("a").unwrap_or_default().to_vec())
    }

    /// This instance's write of `a = value`, committed and settled as `pool.rs` does it.
    fn own_write(cache: &ClientCache, key: StoreKey, value: &[u8]) -> u64 {
        let ticket = cache.ticket(key);
        let (_, write) = cache.next_write();
        let patch = Patch { changes: vec![("a".into(), Some(value.to_vec()))], expires_at_ms: i64::MAX };
        cache.patch(key, ticket, &patch, write);
        cache.settled(write);
        write
    }

    #[test]
    fn own_writes_patch_the_entry_and_their_notifications_leave_it_while_others_drop_it() {
        let key = StoreKey::from_bytes([1; 32]);
        let cache = warm(key);
        let write = own_write(&cache, key, b"2");
        assert_eq!(a(&cache, key).as_deref(), Some(&b"2"[..]), "patched at commit");
        cache.notified(&payload(cache.instance, write, &[key]));
        assert_eq!(a(&cache, key).as_deref(), Some(&b"2"[..]), "its own notification leaves it");
        cache.notified(&payload(cache.instance ^ 2, 1, &[key]));
        assert_eq!(a(&cache, key), None, "another instance's drops it");
        cache.notified(&payload(0, 0, &[key]));
        cache.notified("not a payload of ours");
        assert_eq!(a(&cache, key), None);
    }

    #[test]
    fn a_pending_writes_early_notification_leaves_the_entry_for_its_patch() {
        let key = StoreKey::from_bytes([2; 32]);
        let cache = warm(key);
        let ticket = cache.ticket(key);
        let (instance, write) = cache.next_write();
        // The notification overtakes the answer to `COMMIT`.
        cache.notified(&payload(instance, write, &[key]));
        assert_eq!(a(&cache, key).as_deref(), Some(&b"1"[..]), "not committed as far as this instance knows");
        let patch = Patch { changes: vec![("a".into(), Some(b"3".to_vec()))], expires_at_ms: i64::MAX };
        cache.patch(key, ticket, &patch, write);
        cache.settled(write);
        assert_eq!(a(&cache, key).as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn after_a_write_gave_up_its_late_notification_drops_an_entry_a_later_write_patched() {
        let key = StoreKey::from_bytes([3; 32]);
        let cache = warm(key);
        // Write 1 sends COMMIT and gives up (`Changed::drop`): the session leaves the cache.
        let (instance, gave_up) = cache.next_write();
        cache.invalidate(key);
        cache.abandoned(gave_up);
        cache.settled(gave_up);
        // A load caches the session without write 1, and write 2 patches that entry.
        let ticket = cache.ticket(key);
        let mut fields = Fields::new();
        fields.insert("a".into(), b"1".to_vec());
        cache.insert(key, &Record { fields, expires_at_ms: i64::MAX }, ticket);
        let later = own_write(&cache, key, b"4");
        assert!(later > gave_up);
        // Write 1 committed after all: its notification must drop the entry.
        cache.notified(&payload(instance, gave_up, &[key]));
        assert_eq!(a(&cache, key), None, "a write that gave up is trusted to nothing");
        // Writes numbered after it are trusted again.
        let key2 = StoreKey::from_bytes([4; 32]);
        let ticket = cache.ticket(key2);
        let mut fields = Fields::new();
        fields.insert("a".into(), b"1".to_vec());
        cache.insert(key2, &Record { fields, expires_at_ms: i64::MAX }, ticket);
        let trusted = own_write(&cache, key2, b"5");
        cache.notified(&payload(instance, trusted, &[key2]));
        assert_eq!(a(&cache, key2).as_deref(), Some(&b"5"[..]));
    }
}
