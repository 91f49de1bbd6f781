//! The small subset of the Erlang external term format that Phoenix.Token
//! payloads use: `{data :: binary, signed_at_ms :: integer, max_age_s :: integer | :infinity}`.
//!
//! Encoding picks the integer tag exactly as `erlang:term_to_binary/1` does, so
//! our tokens are byte-identical to Plug.Crypto's. Decoding accepts only that
//! tuple shape. Every length read from the input is checked against the bytes
//! that are actually there before anything is sliced or allocated, so a hostile
//! payload can make us neither panic nor allocate more than its own size.

const VERSION: u8 = 131;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const SMALL_TUPLE_EXT: u8 = 104;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const ATOM_EXT: u8 = 100;
const SMALL_ATOM_UTF8_EXT: u8 = 119;
const ATOM_UTF8_EXT: u8 = 118;

/// The embedded max age of a token: seconds, or Elixir's `:infinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaxAge {
    Seconds(i64),
    Infinity,
}

/// A decoded payload, borrowing its data from the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Payload<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) signed_at_ms: i64,
    pub(crate) max_age: MaxAge,
}

/// Appends the encoding of `{data, signed_at_ms, max_age_s}` to `out`.
///
/// Returns `None` only when `data` is longer than a BINARY_EXT can say (4 GiB).
pub(crate) fn encode(data: &[u8], signed_at_ms: i64, max_age_s: i64, out: &mut Vec<u8>) -> Option<()> {
    let len = u32::try_from(data.len()).ok()?;
    out.reserve(data.len() + 32);
    out.extend_from_slice(&[VERSION, SMALL_TUPLE_EXT, 3, BINARY_EXT]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    encode_integer(signed_at_ms, out);
    encode_integer(max_age_s, out);
    Some(())
}

/// Erlang's choice: 0..=255 is SMALL_INTEGER_EXT, the i32 range INTEGER_EXT,
/// anything else SMALL_BIG_EXT with the fewest little-endian magnitude bytes.
fn encode_integer(value: i64, out: &mut Vec<u8>) {
    if let Ok(small) = u8::try_from(value) {
        out.extend_from_slice(&[SMALL_INTEGER_EXT, small]);
    } else if let Ok(int) = i32::try_from(value) {
        out.push(INTEGER_EXT);
        out.extend_from_slice(&int.to_be_bytes());
    } else {
        let magnitude = value.unsigned_abs().to_le_bytes();
        let n = 8 - magnitude.iter().rev().take_while(|b| **b == 0).count();
        out.extend_from_slice(&[SMALL_BIG_EXT, n as u8, u8::from(value < 0)]);
        out.extend_from_slice(magnitude.get(..n).unwrap_or(&magnitude));
    }
}

/// Decodes a payload; `None` for anything that is not exactly our tuple.
pub(crate) fn decode(input: &[u8]) -> Option<Payload<'_>> {
    let mut r = Reader(input);
    if r.byte()? != VERSION || r.byte()? != SMALL_TUPLE_EXT || r.byte()? != 3 {
        return None;
    }
    if r.byte()? != BINARY_EXT {
        return None;
    }
    let len = u32::from_be_bytes(r.array()?) as usize;
    let data = r.take(len)?;
    let signed_at_ms = decode_integer(&mut r)?;
    let max_age = match r.peek()? {
        ATOM_EXT | SMALL_ATOM_UTF8_EXT | ATOM_UTF8_EXT => {
            if decode_atom(&mut r)? != b"infinity" {
                return None;
            }
            MaxAge::Infinity
        }
        _ => MaxAge::Seconds(decode_integer(&mut r)?),
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(Payload { data, signed_at_ms, max_age })
}

fn decode_integer(r: &mut Reader<'_>) -> Option<i64> {
    match r.byte()? {
        SMALL_INTEGER_EXT => Some(i64::from(r.byte()?)),
        INTEGER_EXT => Some(i64::from(i32::from_be_bytes(r.array()?))),
        SMALL_BIG_EXT => {
            let n = usize::from(r.byte()?);
            let negative = match r.byte()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            // More than 8 magnitude bytes cannot be a time or an age we accept.
            if n > 8 {
                return None;
            }
            let mut le = [0u8; 8];
            le.get_mut(..n)?.copy_from_slice(r.take(n)?);
            let magnitude = u64::from_le_bytes(le);
            if negative {
                0i64.checked_sub_unsigned(magnitude)
            } else {
                i64::try_from(magnitude).ok()
            }
        }
        _ => None,
    }
}

fn decode_atom<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let len = match r.byte()? {
        SMALL_ATOM_UTF8_EXT => usize::from(r.byte()?),
        _ => usize::from(u16::from_be_bytes(r.array()?)),
    };
    r.take(len)
}

/// A cursor whose every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(data: &[u8], at: i64, age: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(data, at, age, &mut out).unwrap();
        out
    }

    #[test]
    fn integers_use_the_tag_erlang_picks() {
        // Byte strings from erl: term_to_binary({<<"x">>, N, 0}).
        assert_eq!(&enc(b"x", 255, 0)[9..], &[97, 255, 97, 0]);
        assert_eq!(&enc(b"x", 256, 0)[9..], &[98, 0, 0, 1, 0, 97, 0]);
        assert_eq!(&enc(b"x", -1, 0)[9..], &[98, 255, 255, 255, 255, 97, 0]);
        assert_eq!(&enc(b"x", 1 << 31, 0)[9..], &[110, 4, 0, 0, 0, 0, 128, 97, 0]);
        assert_eq!(&enc(b"x", -(1 << 31) - 1, 0)[9..], &[110, 4, 1, 1, 0, 0, 128, 97, 0]);
        assert_eq!(&enc(b"x", i64::MIN, 0)[9..], &[110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128, 97, 0]);
    }

    #[test]
    fn round_trips_extremes() {
        for v in [0, 1, 255, 256, -1, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN, 1_609_876_543_000] {
            let bytes = enc(b"data", v, v);
            let p = decode(&bytes).unwrap();
            assert_eq!(p, Payload { data: b"data", signed_at_ms: v, max_age: MaxAge::Seconds(v) });
        }
    }

    #[test]
    fn rejects_truncation_trailing_bytes_and_lying_lengths() {
        let bytes = enc(b"data", 1_609_876_543_000, 86400);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        let mut lying = bytes;
        lying[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&lying), None);
    }

    #[test]
    fn accepts_infinity_and_rejects_other_atoms() {
        let mut bytes = enc(b"d", 5, 0);
        bytes.truncate(bytes.len() - 2);
        let mut inf = bytes.clone();
        inf.extend_from_slice(&[119, 8]);
        inf.extend_from_slice(b"infinity");
        assert_eq!(decode(&inf).unwrap().max_age, MaxAge::Infinity);
        let mut other = bytes;
        other.extend_from_slice(&[119, 4]);
        other.extend_from_slice(b"true");
        assert_eq!(decode(&other), None);
    }

    #[test]
    fn rejects_big_integers_that_do_not_fit() {
        let mut bytes = enc(b"d", 5, 0);
        bytes.truncate(bytes.len() - 4);
        let mut nine = bytes.clone();
        nine.extend_from_slice(&[110, 9, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 97, 0]);
        assert_eq!(decode(&nine), None);
        let mut too_big = bytes;
        too_big.extend_from_slice(&[110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 255, 97, 0]);
        assert_eq!(decode(&too_big), None);
    }
}
