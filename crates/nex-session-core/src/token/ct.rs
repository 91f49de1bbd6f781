//! Constant-time comparison: the one place the crate compares secrets or tokens.
//!
//! Comparing byte by byte with `==` stops at the first difference, so its timing
//! tells an attacker how much of a guess was right. These functions look at every
//! byte and decide with [`subtle`] at the end, once.

use subtle::ConstantTimeEq;

/// Whether `a` and `b` hold the same bytes, in time that depends only on their
/// lengths (which are not secret: every signature and every session cookie of a
/// layer has the same length).
///
/// One optimisation barrier on the accumulated difference instead of one per
/// byte: this runs on every request (the verified-cookie table), where
/// `subtle`'s per-byte `ct_eq` on a 137-byte cookie costs a noticeable share.
pub(crate) fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_for_the_same_bytes_and_length() {
        assert!(bytes_equal(b"", b""));
        assert!(bytes_equal(b"same token", b"same token"));
        assert!(!bytes_equal(b"same token", b"same tokeN"));
        assert!(!bytes_equal(b"Same token", b"same token"));
        assert!(!bytes_equal(b"same token", b"same token!"));
        assert!(!bytes_equal(b"x", b""));
    }
}
