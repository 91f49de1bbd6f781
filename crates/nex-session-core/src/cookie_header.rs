//! Cookie header syntax: `Set-Cookie` values with their attributes, and the
//! `name=value` pairs of a request's `Cookie` headers.
//!
//! Pure formatting and parsing, used by the session cookie's codec
//! (`session_cookie/`) and by the session's queued cookies (the cookie helper,
//! [`crate::cookie`]). Nothing here touches a request's state.
//!
//! Ours rather than the `cookie` crate (decided 2026-12-06 against cookie 0.18.3,
//! the one axum-extra and tower-cookies use), for the per-request cost. Callgrind,
//! instructions per operation in a release build ((run of 110,000 − run of 10,000)
//! / 100,000, a scratch crate with a copy of this file): finding `_nex_session`, the
//! third of five cookies in one `Cookie` header, takes 1,192 with `request_values`,
//! 3,918 with `Cookie::split_parse` and 10,790 with a `CookieJar` filled as
//! axum-extra does; a whole memory-store `/read` is about 11,600 (BENCHMARKS.md).
//! The session cookie's `Set-Cookie` (Path, Max-Age, HttpOnly, Secure,
//! SameSite=Lax) takes 464 from the attributes formatted once (`session_cookie/`)
//! and 2,763 with the crate's builder and `Display`. `set_cookie_value` takes 4,227,
//! 1,419 without its checks of name, value, path and domain, which the crate does not
//! make (it writes the value `b; Domain=evil` as is); it runs off the per-request
//! path. The crate would also add 8 crates (`time` and its macros) to this crate's graph.

use std::fmt::Write as _;

use http::HeaderValue;

use crate::error::SessionError;

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests and top-level navigations (the default).
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent everywhere; browsers require `Secure` with it.
    None,
}

/// Attributes of a cookie queued with [`cookie::put`](crate::cookie::put).
///
/// Defaults: `Path=/`, `HttpOnly`, `SameSite=Lax`, no `Max-Age` (a browser-session
/// cookie), not `Secure`, no `Domain`.
///
/// ```
/// use nex_session::cookie::{CookieOptions, SameSite};
/// let opts = CookieOptions::default().with_max_age(3600).with_secure(true).with_same_site(SameSite::Strict);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    max_age: Option<i64>,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

impl Default for CookieOptions {
    fn default() -> Self {
        Self {
            max_age: None,
            path: "/".into(),
            domain: None,
            secure: false,
            http_only: true,
            same_site: Some(SameSite::Lax),
        }
    }
}

impl CookieOptions {
    /// `Max-Age` in seconds (0 deletes). Default: none.
    #[must_use]
    pub fn with_max_age(mut self, seconds: i64) -> Self {
        self.max_age = Some(seconds);
        self
    }
    /// `Path`. Default: `/`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// `Domain`. Default: none (host-only).
    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }
    /// `Secure`. Default: off.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }
    /// `HttpOnly`. Default: on.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }
    /// True for a deletion (`Max-Age` of zero or less): the cookie then reads as absent.
    pub(crate) fn is_deletion(&self) -> bool {
        self.max_age.is_some_and(|age| age <= 0)
    }

    /// `SameSite`. Default: `Lax`.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }
}

/// Formats a `Set-Cookie` value, refusing anything that could break the header.
pub(crate) fn set_cookie_value(name: &str, value: &str, opts: &CookieOptions) -> Result<HeaderValue, SessionError> {
    let attr_ok = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';');
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(SessionError::InvalidCookie(name.to_owned()));
    }
    if !value.bytes().all(is_cookie_octet) || !attr_ok(&opts.path) || !opts.domain.as_deref().is_none_or(attr_ok) {
        return Err(SessionError::InvalidCookie(name.to_owned()));
    }
    let mut out = String::with_capacity(name.len() + value.len() + 64);
    let _ = write!(out, "{name}={value}; Path={}", opts.path);
    if let Some(domain) = &opts.domain {
        let _ = write!(out, "; Domain={domain}");
    }
    if let Some(age) = opts.max_age {
        let _ = write!(out, "; Max-Age={}", age.max(0));
    }
    if opts.http_only {
        out.push_str("; HttpOnly");
    }
    if opts.secure {
        out.push_str("; Secure");
    }
    match opts.same_site {
        Some(SameSite::Lax) => out.push_str("; SameSite=Lax"),
        Some(SameSite::Strict) => out.push_str("; SameSite=Strict"),
        Some(SameSite::None) => out.push_str("; SameSite=None"),
        None => {}
    }
    HeaderValue::from_str(&out).map_err(|_| SessionError::InvalidCookie(name.to_owned()))
}

/// RFC 6265 `token` characters, allowed in a cookie name.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6265 `cookie-octet`, allowed in a cookie value.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// The `;`-separated pieces of one `Cookie` header value, as bytes.
///
/// This runs on every request, so it looks at bytes, not `str`: `memchr` finds
/// each `;` (SIMD, many bytes per instruction), and nothing checks the whole
/// header for UTF-8; only the pieces a caller keeps are checked. A piece that
/// is not UTF-8 (a browser may send any bytes in another site's cookie) is
/// skipped alone, never the cookies beside it.
struct Pieces<'a> {
    /// What is left to split; `None` once the last piece was given out.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match memchr::memchr(b';', rest) {
            Some(at) => {
                self.rest = rest.get(at + 1..);
                rest.get(..at)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

fn header_pieces<'a>(headers: impl IntoIterator<Item = &'a HeaderValue>) -> impl Iterator<Item = &'a [u8]> {
    headers.into_iter().flat_map(|v| Pieces { rest: Some(v.as_bytes()) })
}

/// A cookie value as sent after `=`: trimmed, surrounding double quotes removed.
fn value_bytes(raw: &[u8]) -> &[u8] {
    let value = raw.trim_ascii();
    value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value)
}

/// [`value_bytes`] as text, `None` unless UTF-8.
fn cookie_value(raw: &[u8]) -> Option<&str> {
    std::str::from_utf8(value_bytes(raw)).ok()
}

/// Every `name=value` pair of a request's `Cookie` header values, in order.
pub(crate) fn request_pairs<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    header_pieces(headers).filter_map(|piece| {
        let at = memchr::memchr(b'=', piece)?;
        let name = std::str::from_utf8(piece.get(..at)?.trim_ascii()).ok()?;
        Some((name, cookie_value(piece.get(at + 1..)?)?))
    })
}

/// The values of every request cookie called `name`, in order, as [`request_pairs`]
/// gives them but as bytes: the session cookie's lookup, on every request, which
/// compares a value with the ones it verified before and needs no UTF-8 check
/// for that. It matches the name first and looks at nothing else of other cookies.
pub(crate) fn request_values<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> {
    header_pieces(headers).filter_map(move |piece| {
        let rest = piece.trim_ascii_start().strip_prefix(name.as_bytes())?;
        Some(value_bytes(rest.trim_ascii_start().strip_prefix(b"=")?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_all_attributes() {
        let v = set_cookie_value("a", "b", &CookieOptions::default().with_max_age(5).with_secure(true)).unwrap();
        assert_eq!(v, "a=b; Path=/; Max-Age=5; HttpOnly; Secure; SameSite=Lax");
    }

    #[test]
    fn refuses_header_injection() {
        assert!(set_cookie_value("a", "b;Domain=evil", &CookieOptions::default()).is_err());
        assert!(set_cookie_value("a b", "c", &CookieOptions::default()).is_err());
        assert!(set_cookie_value("a", "b\r\nX: y", &CookieOptions::default()).is_err());
        assert!(set_cookie_value("a", "b", &CookieOptions::default().with_path("/;x")).is_err());
    }

    #[test]
    fn parses_several_headers_and_quoted_values() {
        let h = [HeaderValue::from_static("a=1; b=\"2\""), HeaderValue::from_static("c=3;junk; d=")];
        let pairs: Vec<_> = request_pairs(&h).collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", "2"), ("c", "3"), ("d", "")]);
        let values: Vec<_> = request_values(&h, "c").collect();
        assert_eq!(values, vec![b"3"]);
    }

    #[test]
    fn a_piece_that_is_not_utf8_is_skipped_alone() {
        let h = [HeaderValue::from_bytes(b"a=\xff\xfe; _nex_session=tok; \xff=1; b=2").unwrap()];
        let pairs: Vec<_> = request_pairs(&h).collect();
        assert_eq!(pairs, vec![("_nex_session", "tok"), ("b", "2")]);
        assert_eq!(request_values(&h, "_nex_session").collect::<Vec<_>>(), vec![b"tok"]);
        // The session cookie's lookup gives the bytes: verification refuses them.
        assert_eq!(request_values(&h, "a").collect::<Vec<_>>(), vec![b"\xff\xfe"]);
        let empty = [HeaderValue::from_static("")];
        assert_eq!(request_pairs(&empty).count(), 0);
        let trailing = [HeaderValue::from_static("a=1;")];
        assert_eq!(request_pairs(&trailing).collect::<Vec<_>>(), vec![("a", "1")]);
    }
}
