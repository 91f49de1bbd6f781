//! Recently verified session cookies, so a browser's next request skips the HMAC.
//!
//! A browser sends the same `_nex_session` cookie on every request until it is
//! re-signed (at most once per refresh interval), and verifying it costs about
//! half a microsecond: base64, HMAC-SHA256, term decoding, then SHA-256 of the id
//! for the store key. That is a noticeable share of a request that only reads
//! the session, so each layer remembers the cookies it verified last.
//!
//! What makes this safe:
//! - an entry is made only after a full verification with the layer's keys;
//! - a hit needs the presented cookie to equal the remembered one byte for byte,
//!   compared in constant time, so response timing tells nothing about the
//!   cookies of other browsers;
//! - the expiry is checked again on every hit, with the same rule as a full
//!   verification;
//! - a hit says only "this cookie is genuine": whether its session exists is
//!   still the store's answer, so revocation and logout work as before.
//!
//! The table is direct-mapped (one entry per slot, a newer cookie replaces an
//! older one) and never blocks: a slot busy on another thread is a miss.

use std::sync::Mutex;

use super::request::RequestCookie;
use crate::token::{check_age, ct};

/// Slots in the table (a power of two): about 1024 browsers' cookies, ~200 KiB at most.
const SLOT_BITS: u32 = 10;

struct Entry {
    token: Box<[u8]>,
    cookie: RequestCookie,
}

/// The per-layer table of recently verified cookies.
pub(crate) struct VerifiedCookies {
    slots: Box<[Mutex<Option<Entry>>]>,
}

impl VerifiedCookies {
    pub(crate) fn new() -> Self {
        Self { slots: (0..1usize << SLOT_BITS).map(|_| Mutex::new(None)).collect() }
    }

    /// The remembered verification of exactly `token`, if it is still within its max age.
    pub(crate) fn get(&self, token: &[u8], now_ms: i64) -> Option<RequestCookie> {
        let guard = self.slot(token)?.try_lock().ok()?;
        let entry = guard.as_ref()?;
        if !ct::bytes_equal(&entry.token, token) {
            return None;
        }
        check_age(entry.cookie.signed_at_ms, Some(entry.cookie.max_age_s), now_ms).ok()?;
        Some(entry.cookie.clone())
    }

    /// Remembers a cookie that just passed full verification.
    pub(crate) fn insert(&self, token: &[u8], cookie: &RequestCookie) {
        let Some(slot) = self.slot(token) else { return };
        if let Ok(mut guard) = slot.try_lock() {
            *guard = Some(Entry { token: token.into(), cookie: cookie.clone() });
        }
    }

    /// The slot of a token: picked by its last eight characters, which for a
    /// genuine cookie are HMAC output and so spread evenly. A forged cookie can
    /// at worst evict an entry, never match one.
    fn slot(&self, token: &[u8]) -> Option<&Mutex<Option<Entry>>> {
        let tail: [u8; 8] = token.get(token.len().checked_sub(8)?..)?.try_into().ok()?;
        let mixed = u64::from_le_bytes(tail).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = usize::try_from(mixed >> (64 - SLOT_BITS)).ok()?;
        self.slots.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;
    use crate::session_cookie::{Lifetime, Mode};

    fn cookie() -> RequestCookie {
        let lifetime = Lifetime { mode: Mode::Default, created_ms: 1_000_000 };
        RequestCookie {
            id: SessionId::generate().unwrap(),
            signed_at_ms: 1_000_000,
            current_key: true,
            max_age_s: 60,
            lifetime,
        }
    }

    #[test]
    fn hits_only_the_exact_token_and_rechecks_expiry() {
        let cache = VerifiedCookies::new();
        let token = "SFMyNTY.g2gDbQAAACBrbF9NQjk4N3lNaHFPdzZWZTQzQjE2WXNzU0swVGxPcG4GAK1.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let c = cookie();
        cache.insert(token.as_bytes(), &c);
        let hit = cache.get(token.as_bytes(), 1_000_000 + 59_000).expect("same token, in time");
        assert_eq!(hit.id, c.id);
        assert!(cache.get(token.as_bytes(), 1_000_000 + 61_000).is_none(), "expired on a hit too");
        let mut forged = token.to_owned();
        forged.replace_range(10..11, "X");
        assert!(cache.get(forged.as_bytes(), 1_000_000).is_none(), "same slot, other bytes");
        assert!(cache.get(&token.as_bytes()[1..], 1_000_000).is_none(), "other length");
        assert!(cache.get(b"short", 1_000_000).is_none());
    }

    #[test]
    fn a_newer_cookie_in_the_same_slot_replaces_the_older() {
        let cache = VerifiedCookies::new();
        let a = "a-token-ending-in-the-same-12345678";
        let b = "b-token-ending-in-the-same-12345678";
        cache.insert(a.as_bytes(), &cookie());
        cache.insert(b.as_bytes(), &cookie());
        assert!(cache.get(a.as_bytes(), 1_000_000).is_none());
        assert!(cache.get(b.as_bytes(), 1_000_000).is_some());
    }
}
