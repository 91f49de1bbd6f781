//! Keys and records for a store's own unit tests (a cache's, say): small,
//! predictable values where the conformance suite uses random ones.

use crate::id::StoreKey;
use crate::store::{Fields, Record};

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
