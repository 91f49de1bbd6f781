//! What an operator pastes as a cookie: the bare value, `NAME=VALUE`, or a whole
//! `Cookie` request header copied from the browser's developer tools.
//!
//! Apps may name their session cookie (`SessionConfig::with_cookie_name`, or
//! `NEX_SESSION_COOKIE_NAME`), and an app with several session layers sends
//! several session cookies at once, so the name says which one to pick.

/// The cookie value to work on: `input` itself when it holds no `=` (a token,
/// a session id or a store key never does: they are base64url without padding
/// or hex), else the value of cookie `name` in it.
///
/// # Errors
/// A message naming the cookies found when none is called `name`.
pub(crate) fn pick<'a>(input: &'a str, name: &str) -> Result<&'a str, String> {
    let input = input.trim();
    if !input.contains('=') {
        return Ok(input);
    }
    let input = input.strip_prefix("Cookie:").or_else(|| input.strip_prefix("cookie:")).unwrap_or(input);
    let pairs = input.split(';').filter_map(|piece| piece.split_once('=')).map(|(n, v)| (n.trim(), v.trim()));
    let mut found = Vec::new();
    for (cookie, value) in pairs {
        if cookie == name {
            return Ok(value.trim_matches('"'));
        }
        found.push(cookie);
    }
    Err(format!(
        "no cookie named {name:?} in the input (found: {}); pass --cookie-name with the app's session cookie name",
        found.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn picks_the_named_cookie_from_a_pair_or_a_whole_header() {
        assert_eq!(pick(" SFMyNTY.abc.def ", "_nex_session"), Ok("SFMyNTY.abc.def"));
        assert_eq!(pick("_nex_session=SFMyNTY.a.b", "_nex_session"), Ok("SFMyNTY.a.b"));
        let header = "Cookie: theme=dark; _nex_session=SFMyNTY.a.b; admin_session=SFMyNTY.c.d";
        assert_eq!(pick(header, "admin_session"), Ok("SFMyNTY.c.d"));
        assert_eq!(pick(header, "_nex_session"), Ok("SFMyNTY.a.b"));
        let err = pick("theme=dark; other=1", "_nex_session").unwrap_err();
        assert!(err.contains("theme, other") && err.contains("--cookie-name"), "{err}");
    }
}
