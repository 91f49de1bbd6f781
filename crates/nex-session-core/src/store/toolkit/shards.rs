//! Per-session tables: [`Shards`] (independently locked parts, picked by session
//! key) and [`KeyMap`] (the hash map inside a shard).
//!
//! Every per-session table of the crate (the memory store's sessions, the Redis
//! client cache, the Redis update chains, the SQLite update locks) splits into
//! shards so that requests of different sessions rarely wait for each other. A
//! [`StoreKey`] is a SHA-256 output, so any of its bytes is already uniformly
//! random; the shard is picked by byte 8 (`SHARD_BYTE`), which the hash maps inside
//! a shard do not use (`StoreKey`'s `Hash` takes bytes 0 to 7). Were the two to
//! share a byte, every key of one shard would also share hash bits, and the map's
//! probing would slow down.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::id::StoreKey;

/// The key byte that picks a shard (outside the bytes `StoreKey::hash` uses).
const SHARD_BYTE: usize = 8;

/// A table of `T`s, one per shard; the shard count is a power of two up to 256.
pub struct Shards<T> {
    shards: Box<[T]>,
    /// `shards.len() - 1`: a key byte masked with it is always a valid index.
    mask: usize,
}

impl<T> Shards<T> {
    /// `count` shards made by `make`. `count` is rounded to a power of two in `1..=256`.
    pub fn new(count: usize, make: impl FnMut() -> T) -> Self {
        let count = count.clamp(1, 256).next_power_of_two();
        let shards: Box<[T]> = std::iter::repeat_with(make).take(count).collect();
        Self { mask: shards.len() - 1, shards }
    }

    /// The shard of `key`.
    pub fn of(&self, key: StoreKey) -> &T {
        let index = usize::from(key.as_bytes()[SHARD_BYTE]) & self.mask;
        // `mask` is the length minus one of a power-of-two table: always in range.
        #[allow(clippy::indexing_slicing)]
        &self.shards[index]
    }

    /// Every shard, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.shards.iter()
    }
}

/// A hash map keyed by [`StoreKey`] that hashes no further: a key's first eight
/// bytes are already uniformly random (see `StoreKey`'s `Hash`).
pub type KeyMap<V> = HashMap<StoreKey, V, BuildHasherDefault<KeyHasher>>;

/// Passes through the eight key bytes `StoreKey::hash` writes.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_to_a_power_of_two_and_every_key_has_a_shard() {
        assert_eq!(Shards::new(0, || ()).iter().count(), 1);
        assert_eq!(Shards::new(64, || ()).iter().count(), 64);
        assert_eq!(Shards::new(100, || ()).iter().count(), 128);
        assert_eq!(Shards::new(10_000, || ()).iter().count(), 256);
        let shards = Shards::new(64, || std::sync::atomic::AtomicUsize::new(0));
        for byte in 0..=255u8 {
            let mut bytes = [0u8; 32];
            bytes[SHARD_BYTE] = byte;
            shards.of(StoreKey::from_bytes(bytes)).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        assert!(shards.iter().all(|s| s.load(std::sync::atomic::Ordering::Relaxed) == 4), "evenly spread");
    }
}
