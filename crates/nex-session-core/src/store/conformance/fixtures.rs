//! Keys and records for a store's own unit tests (a cache's, say): small,
//! predictable values where the conformance suite uses random ones.

use crate::id::{SessionId, StoreKey};
use crate::store::{Change, Changes, Fields, Record};
use crate::token::now_ms;

/// A key no session has yet: the key of a freshly generated id.
///
/// ```
/// use nex_session::store::conformance::fixtures::fresh_key;
/// assert_ne!(fresh_key(), fresh_key());
/// ```
#[allow(clippy::expect_used)] // test support: no random source is a broken machine
pub fn fresh_key() -> StoreKey {
    SessionId::generate().expect("OS random source").store_key()
}

/// An expiry an hour from now, in milliseconds since the Unix epoch.
///
/// ```
/// use nex_session::store::conformance::fixtures::later;
/// assert!(later() > nex_session::token::now_ms());
/// ```
pub fn later() -> i64 {
    now_ms() + 3_600_000
}

/// A batch from `(field, value)` pairs: `Some` puts the value, `None` deletes the field.
///
/// ```
/// use nex_session::store::{conformance::fixtures::changes, Change};
/// let batch = changes(&[("a", Some(b"1")), ("b", None)]);
/// assert_eq!(batch["a"], Change::Put(b"1".to_vec()));
/// assert_eq!(batch["b"], Change::Delete);
/// ```
pub fn changes(pairs: &[(&str, Option<&[u8]>)]) -> Changes {
    let change = |v: Option<&[u8]>| v.map_or(Change::Delete, |v| Change::Put(v.to_vec()));
    pairs.iter().map(|(k, v)| ((*k).to_owned(), change(*v))).collect()
}

/// The key of all bytes `n`: distinct for distinct `n`, and in the shard `n`
/// picks in every [`Shards`](crate::store::toolkit::shards::Shards) table.
///
/// ```
/// use nex_session::store::conformance::fixtures::key;
/// assert_ne!(key(1), key(2));
/// ```
pub fn key(n: u8) -> StoreKey {
    StoreKey::from_bytes([n; 32])
}

/// A session whose one field `k` holds `v`, expiring at `expires_at_ms`.
///
/// ```
/// use nex_session::store::conformance::fixtures::record;
/// assert_eq!(record("a", 5).fields["k"], b"a");
/// ```
pub fn record(v: &str, expires_at_ms: i64) -> Record {
    let mut fields = Fields::new();
    fields.insert("k".into(), v.as_bytes().to_vec());
    Record { fields, expires_at_ms }
}
