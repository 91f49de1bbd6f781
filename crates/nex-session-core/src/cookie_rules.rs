//! The rules a session cookie's configuration must follow, checked once when a
//! layer is built (never per request): RFC 6265 syntax for the name, path and
//! domain, the `__Host-` / `__Secure-` name prefixes, and `SameSite=None`
//! needing `Secure`.
//!
//! Why refuse rather than send: a browser silently drops a cookie that breaks
//! these rules (a `__Host-` cookie with a `Domain`, `SameSite=None` without
//! `Secure`), so the app would lose every session with no error anywhere. Failing
//! at start-up with the reason is kinder.
//!
//! Ours because the `cookie` crate has no such checks (decided 2026-12-06 against
//! cookie 0.18.3). Given the 27 settings the tests below refuse, its builder and
//! `Display` followed by `HeaderValue::try_from` produce a header for 24 of them
//! (all except the three with a non-ASCII byte or a newline), for example
//! `__Host-sid=v; Secure; Path=/admin` or `Domain=ex;ample.com`. For
//! `SameSite=None` without `Secure` it adds `Secure` silently instead of reporting
//! the mistake. These checks run once per layer, so their cost does not matter.

use crate::cookie_header::SameSite;
use crate::error::CookieConfigError;

/// The session cookie settings the rules look at.
pub(crate) struct CookieSettings<'a> {
    pub(crate) name: &'a str,
    pub(crate) path: &'a str,
    pub(crate) domain: Option<&'a str>,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
}

/// Checks every rule, syntax first (a bad name is reported as such, not as a prefix problem).
pub(crate) fn check(settings: &CookieSettings<'_>) -> Result<(), CookieConfigError> {
    let CookieSettings { name, path, domain, same_site, secure } = *settings;
    check_name(name)?;
    check_path(path)?;
    if let Some(domain) = domain {
        check_domain(domain)?;
    }
    if same_site == SameSite::None && !secure {
        return Err(CookieConfigError::SameSiteNoneWithoutSecure);
    }
    // Browsers match the prefixes case-insensitively (RFC 6265bis), so do we.
    let host = has_prefix(name, "__Host-");
    if (host || has_prefix(name, "__Secure-")) && !secure {
        return Err(CookieConfigError::PrefixWithoutSecure(name.to_owned()));
    }
    if host && domain.is_some() {
        return Err(CookieConfigError::HostPrefixWithDomain(name.to_owned()));
    }
    if host && path != "/" {
        return Err(CookieConfigError::HostPrefixWithPath { name: name.to_owned(), path: path.to_owned() });
    }
    Ok(())
}

/// A cookie name: a non-empty RFC 6265 token.
pub(crate) fn check_name(name: &str) -> Result<(), CookieConfigError> {
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(CookieConfigError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// A cookie path: starts with `/`, then printable ASCII without `;` (RFC 6265
/// path-value, restricted to ASCII so it always fits in a header).
pub(crate) fn check_path(path: &str) -> Result<(), CookieConfigError> {
    let printable = |b: u8| (0x20..0x7f).contains(&b) && b != b';';
    if !path.starts_with('/') || !path.bytes().all(printable) {
        return Err(CookieConfigError::InvalidPath(path.to_owned()));
    }
    Ok(())
}

/// A cookie domain: a host name (a leading dot is allowed, browsers ignore it).
pub(crate) fn check_domain(domain: &str) -> Result<(), CookieConfigError> {
    let host = domain.strip_prefix('.').unwrap_or(domain);
    let host_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    if host.is_empty() || !host.bytes().all(host_char) {
        return Err(CookieConfigError::InvalidDomain(domain.to_owned()));
    }
    Ok(())
}

/// RFC 6265 `token` characters, allowed in a cookie name.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(name: &str) -> CookieSettings<'_> {
        CookieSettings { name, path: "/", domain: None, same_site: SameSite::Lax, secure: true }
    }

    #[test]
    fn the_defaults_and_ordinary_names_pass() {
        assert_eq!(check(&settings("_nex_session")), Ok(()));
        assert_eq!(check(&settings("admin_session")), Ok(()));
        assert_eq!(check(&settings("__Host-sid")), Ok(()));
        assert_eq!(check(&CookieSettings { secure: false, ..settings("sid") }), Ok(()));
        assert_eq!(check(&CookieSettings { domain: Some(".example.com"), ..settings("__Secure-sid") }), Ok(()));
        assert_eq!(check(&CookieSettings { same_site: SameSite::None, ..settings("sid") }), Ok(()));
    }

    #[test]
    fn names_paths_and_domains_a_cookie_cannot_carry_are_refused() {
        for name in ["", "a b", "a=b", "a;b", "a\"b", "a,b", "é", "a\tb", "(x)"] {
            assert_eq!(check(&settings(name)), Err(CookieConfigError::InvalidName(name.to_owned())), "{name:?}");
        }
        for path in ["", "admin", "/a;b", "/a\nb", "/é"] {
            let s = CookieSettings { path, ..settings("sid") };
            assert_eq!(check(&s), Err(CookieConfigError::InvalidPath(path.to_owned())), "{path:?}");
        }
        for domain in ["", ".", "example.com:443", "https://example.com", "a b", "ex;ample.com"] {
            let s = CookieSettings { domain: Some(domain), ..settings("sid") };
            assert_eq!(check(&s), Err(CookieConfigError::InvalidDomain(domain.to_owned())), "{domain:?}");
        }
    }

    #[test]
    fn same_site_none_needs_secure() {
        let s = CookieSettings { same_site: SameSite::None, secure: false, ..settings("sid") };
        assert_eq!(check(&s), Err(CookieConfigError::SameSiteNoneWithoutSecure));
    }

    #[test]
    fn prefixed_names_follow_the_browsers_rules_in_any_case() {
        for name in ["__Host-sid", "__host-sid", "__Secure-sid", "__SECURE-sid"] {
            let s = CookieSettings { secure: false, ..settings(name) };
            assert_eq!(check(&s), Err(CookieConfigError::PrefixWithoutSecure(name.to_owned())), "{name}");
        }
        let s = CookieSettings { domain: Some("example.com"), ..settings("__Host-sid") };
        assert_eq!(check(&s), Err(CookieConfigError::HostPrefixWithDomain("__Host-sid".into())));
        let s = CookieSettings { path: "/admin", ..settings("__Host-sid") };
        assert_eq!(
            check(&s),
            Err(CookieConfigError::HostPrefixWithPath { name: "__Host-sid".into(), path: "/admin".into() })
        );
        // `__Secure-` allows a path and a domain.
        let s = CookieSettings { path: "/admin", domain: Some("example.com"), ..settings("__Secure-sid") };
        assert_eq!(check(&s), Ok(()));
    }
}
