//! Session ids and the hashed keys stores file them under.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Random bytes in a session id (as Nex): 192 bits from the OS CSPRNG.
const ID_BYTES: usize = 24;
/// Characters of an id: base64url of 24 bytes, no padding.
const ID_CHARS: usize = 32;

/// A session id: 24 random bytes, base64url without padding (32 characters).
///
/// The id is what the signed cookie carries. Stores never see it: they get the
/// [`StoreKey`], its SHA-256, so nothing a store holds works as a cookie.
/// `Debug` shows only a prefix, so ids do not leak whole into logs.
///
/// ```
/// use nex_session::SessionId;
///
/// let id = SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlOp").unwrap();
/// assert_eq!(id.as_str().len(), 32);
/// assert!(SessionId::parse("too short").is_none());
/// ```
#[derive(Clone, Eq)]
pub struct SessionId {
    /// The 32 base64url characters, inline: cloning an id never allocates.
    text: [u8; ID_CHARS],
    /// SHA-256 of `text`, computed once: every store call of a request needs it.
    key: StoreKey,
}

impl SessionId {
    /// A fresh random id.
    ///
    /// # Errors
    /// When the OS random source fails (practically never on a working system).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)?;
        let mut text = [0u8; ID_CHARS];
        match URL_SAFE_NO_PAD.encode_slice(bytes, &mut text) {
            Ok(ID_CHARS) => Ok(Self::from_text(text)),
            // 24 bytes always encode to 32 characters.
            _ => Err(getrandom::Error::UNSUPPORTED),
        }
    }

    /// Accepts an id in our format (32 base64url characters), else `None`.
    pub fn parse(id: &str) -> Option<Self> {
        let well_formed =
            id.len() == ID_CHARS && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let text: [u8; ID_CHARS] = id.as_bytes().try_into().ok()?;
        well_formed.then(|| Self::from_text(text))
    }

    fn from_text(text: [u8; ID_CHARS]) -> Self {
        let key = StoreKey(Sha256::digest(text).into());
        Self { text, key }
    }

    /// The id as text, as signed into the cookie.
    pub fn as_str(&self) -> &str {
        // Only base64url characters are ever stored, so this is always valid UTF-8.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The key stores file this session under: SHA-256 of the id.
    pub fn store_key(&self) -> StoreKey {
        self.key
    }
}

/// Ids are equal when their text is: the key is a function of the text, so
/// comparing it too (as a derived `PartialEq` would) only costs time, twice per
/// request.
impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Hashes what [`PartialEq`] compares, the text.
impl std::hash::Hash for SessionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.as_str().get(..6).unwrap_or_default();
        write!(f, "SessionId({prefix}…)")
    }
}

/// What a store keys a session by: the SHA-256 of its [`SessionId`].
///
/// Knowing a store key does not let anyone forge or present a cookie: the
/// cookie needs the id, and SHA-256 does not run backwards.
///
/// ```
/// use nex_session::{SessionId, StoreKey};
///
/// let key = SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlOp").unwrap().store_key();
/// assert_eq!(StoreKey::from_hex(&key.to_hex()), Some(key));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreKey([u8; 32]);

impl std::hash::Hash for StoreKey {
    /// A SHA-256 output is already uniformly random: its first eight bytes are a
    /// perfect hash, and hashing all 32 again would be wasted work per lookup.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

impl StoreKey {
    /// Wraps 32 raw bytes (as read back from a store).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters: how stores and the CLI show it.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        self.push_hex(&mut out);
        out
    }

    /// Appends the 64 lower-case hex characters to `out` (a Redis key is
    /// `prefix + hex`, built on every store call: one allocation, no formatting).
    ///
    /// ```
    /// let key = nex_session::StoreKey::from_bytes([0xab; 32]);
    /// let mut redis_key = String::from("nex:");
    /// key.push_hex(&mut redis_key);
    /// assert_eq!(redis_key, format!("nex:{}", "ab".repeat(32)));
    /// ```
    pub fn push_hex(&self, out: &mut String) {
        // Every Redis call names its key this way, so it is on the write path: the
        // digits go into a buffer and the string grows once (a `push` per character,
        // with its capacity check and UTF-8 encoding, cost about 500 instructions).
        fn digit(n: u8) -> u8 {
            if n < 10 {
                b'0' + n
            } else {
                b'a' + n - 10
            }
        }
        let mut hex = [0u8; 64];
        for (pair, b) in hex.chunks_exact_mut(2).zip(self.0) {
            if let [high, low] = pair {
                (*high, *low) = (digit(b >> 4), digit(b & 0x0f));
            }
        }
        // Only ASCII digits were written, so this never fails.
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }

    /// Parses 64 hex characters (either case); `None` for any other text.
    pub fn from_hex(hex: &str) -> Option<Self> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let &[high, low] = pair else { return None };
            *byte = nibble(high)? << 4 | nibble(low)?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_equal_and_hash_alike_exactly_when_their_text_is() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let a = SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlOp").unwrap();
        let same = SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlOp").unwrap();
        let other = SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlOq").unwrap();
        assert!(a == same && a.store_key() == same.store_key());
        assert_eq!(hasher.hash_one(&a), hasher.hash_one(&same));
        assert!(a != other && a.store_key() != other.store_key());
    }

    #[test]
    fn generated_ids_are_32_url_safe_chars_and_distinct() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert!(SessionId::parse(a.as_str()).is_some());
        assert_ne!(a.store_key(), b.store_key());
    }

    #[test]
    fn parse_rejects_wrong_length_and_alphabet() {
        assert!(SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlO").is_none());
        assert!(SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlO+").is_none());
        assert!(SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlOé").is_none());
    }

    #[test]
    fn hex_round_trips_and_rejects_non_hex() {
        let key = StoreKey::from_bytes(core::array::from_fn(|i| (i * 37) as u8));
        let hex = key.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(hex, key.0.iter().map(|b| format!("{b:02x}")).collect::<String>());
        assert_eq!(StoreKey::from_hex(&hex), Some(key));
        assert_eq!(StoreKey::from_hex(&hex.to_uppercase()), Some(key));
        assert_eq!(StoreKey::from_hex(&hex[1..]), None);
        assert_eq!(StoreKey::from_hex(&format!("g{}", &hex[1..])), None);
        assert_eq!(StoreKey::from_hex(&format!("é{}", &hex[2..])), None);
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let id = SessionId::parse("kl_MB987yMhqOw6Ve43B16YssSK0TlOp").unwrap();
        assert_eq!(format!("{id:?}"), "SessionId(kl_MB9…)");
    }
}
