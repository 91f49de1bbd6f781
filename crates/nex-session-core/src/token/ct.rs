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
/// byte, and eight bytes per step: this runs on every request (the
/// verified-cookie table), where a per-byte loop over a 110-byte cookie cost
/// about 400 instructions, more than the rest of the cookie lookup. Every word
/// and every tail byte is looked at whatever the others hold.
pub(crate) fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_tail) = a.as_chunks::<8>();
    let (b_words, b_tail) = b.as_chunks::<8>();
    let words =
        a_words.iter().zip(b_words).fold(0u64, |acc, (x, y)| acc | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y)));
    let tail = a_tail.iter().zip(b_tail).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    bool::from((words | u64::from(tail)).ct_eq(&0))
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
        // A difference in any word or in the tail, at every position of a cookie-sized input.
        let token: Vec<u8> = (0..137u8).collect();
        for at in 0..token.len() {
            let mut other = token.clone();
            other[at] ^= 0x20;
            assert!(!bytes_equal(&token, &other), "difference at {at} missed");
        }
        assert!(bytes_equal(&token, &token.clone()));
    }
}
