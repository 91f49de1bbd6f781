//! Store URLs with their credentials hidden, for every message that shows one.
//!
//! A Redis or PostgreSQL URL may carry a password (`redis://:password@host`,
//! `redis://user:password@host`, one per node in `redis+cluster://…`, or
//! `?pass=` / `?password=` in the query). Operators need the scheme, user and
//! hosts in an error to know which server failed, never the password: logs are
//! read by more people, and kept longer, than the secrets they would leak.

use std::borrow::Cow;
use std::fmt;

use crate::error::{BoxError, StoreError};

/// What a hidden secret is replaced with.
const MASK: &str = "***";
/// Parameters whose values are secrets (`pass` is the redis crate's, for sockets;
/// `sentinel_password` the Redis store's; `sslpassword` libpq's, for a key).
const SECRET_PARAMS: [&str; 4] = ["pass", "password", "sentinel_password", "sslpassword"];

/// A store URL that displays with its passwords replaced by `***`; user names,
/// hosts, ports, paths and the database number stay visible.
///
/// Redaction errs on the side of hiding: everything between `:` and the last `@`
/// of a host entry is treated as the password, so a password with a raw `/`, `@`
/// or `?` in it is hidden whole, and text that is no URL at all but has an `@` in
/// it loses what precedes the `@`.
///
/// ```
/// use nex_session::store::RedactedUrl;
///
/// let shown = RedactedUrl::new("redis://app:s3cret@10.0.0.7:6379/2").to_string();
/// assert_eq!(shown, "redis://app:***@10.0.0.7:6379/2");
/// assert_eq!(RedactedUrl::new("redis+cluster://:pw@a:7000,:pw@b:7001").to_string(), "redis+cluster://:***@a:7000,:***@b:7001");
/// assert_eq!(RedactedUrl::new("sqlite://sessions.db").to_string(), "sqlite://sessions.db");
/// ```
#[derive(Clone, Copy)]
pub struct RedactedUrl<'a> {
    url: &'a str,
}

impl<'a> RedactedUrl<'a> {
    /// Wraps `url` for display.
    ///
    /// ```
    /// # use nex_session::store::RedactedUrl;
    /// eprintln!("cannot open {}", RedactedUrl::new("redis://:hunter2@cache:6379"));
    /// ```
    pub fn new(url: &'a str) -> Self {
        Self { url }
    }
}

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(self.url))
    }
}

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*redact(self.url), f)
    }
}

/// The parts of a URL: what comes before the host list, the host entries, and
/// the rest (path and query). Only the host entries and the query hold secrets.
struct Parts<'a> {
    /// `scheme://`, or empty when the text has no `://`.
    scheme: &'a str,
    /// Host entries, each `[userinfo@]host[:port]`, comma-separated in a cluster
    /// URL; the last one runs to the end of the text (a password may hold `/` or `?`).
    hosts: &'a str,
}

impl<'a> Parts<'a> {
    /// The host entries. Only a cluster URL lists several hosts: elsewhere a
    /// comma belongs to the entry (a password may hold one, and the Redis client
    /// accepts it), so splitting there would show half of the password.
    fn entries(&self) -> Vec<&'a str> {
        if self.scheme.contains("+cluster") {
            self.hosts.split(',').collect()
        } else {
            vec![self.hosts]
        }
    }
}

fn parts(url: &str) -> Parts<'_> {
    match url.find("://") {
        Some(at) => {
            let (scheme, hosts) = url.split_at(at + 3);
            Parts { scheme, hosts }
        }
        None => Parts { scheme: "", hosts: url },
    }
}

/// One host entry split at its last `@`: `(userinfo, rest)`, or `None` without one.
fn split_userinfo(entry: &str) -> Option<(&str, &str)> {
    entry.rfind('@').map(|at| entry.split_at(at))
}

/// `url` with every password replaced by `***`.
pub fn redact(url: &str) -> Cow<'_, str> {
    if is_key_value(url) {
        return redact_key_value(url);
    }
    let parsed = parts(url);
    if !parsed.hosts.contains('@') && !has_secret_param(parsed.hosts) {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(parsed.scheme);
    for (i, entry) in parsed.entries().into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (userinfo, rest) = split_userinfo(entry).unwrap_or(("", entry));
        match userinfo.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            // A user name alone is no secret.
            None => out.push_str(userinfo),
        }
        push_query_redacted(&mut out, rest);
    }
    Cow::Owned(out)
}

/// Whether `text` has a `?`/`&`-started secret query parameter.
fn has_secret_param(text: &str) -> bool {
    text.split(['?', '&']).skip(1).any(is_secret_param)
}

fn is_secret_param(param: &str) -> bool {
    param.split_once('=').is_some_and(|(name, _)| is_secret_name(name))
}

/// Pushes `text` (a host, path and query) with the values of secret query parameters masked.
fn push_query_redacted(out: &mut String, text: &str) {
    let Some((before, query)) = text.split_once('?') else {
        out.push_str(text);
        return;
    };
    out.push_str(before);
    out.push('?');
    for (i, param) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if is_secret_param(param) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(param),
        }
    }
}

/// A PostgreSQL key=value connection string (`host=db password=… dbname=app`)
/// rather than a URL.
fn is_key_value(text: &str) -> bool {
    // libpq allows spaces around `=`: `host = db password = …`.
    !text.contains("://")
        && text.split_once('=').is_some_and(|(name, _)| {
            let name = name.trim();
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The `name=value` words of a key=value string, as `(name, value as written)`;
/// a value may be single-quoted, with `\'` and `\\` escapes inside (libpq).
fn key_values(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while let Some((name, after)) = rest.split_once('=') {
        let after = after.trim_start();
        let end = if after.starts_with('\'') {
            let mut escaped = false;
            let close = after.char_indices().skip(1).find(|&(_, c)| {
                let found = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                found
            });
            close.map_or(after.len(), |(i, _)| i + 1)
        } else {
            // Unquoted, a backslash escapes the next character (a space included).
            let mut escaped = false;
            let stop = after.char_indices().find(|&(_, c)| {
                let found = c.is_whitespace() && !escaped;
                escaped = c == '\\' && !escaped;
                found
            });
            stop.map_or(after.len(), |(i, _)| i)
        };
        let (value, tail) = after.split_at(end);
        out.push((name.trim(), value));
        rest = tail.trim_start();
    }
    out
}

/// A key=value string with the values of secret parameters masked.
fn redact_key_value(text: &str) -> Cow<'_, str> {
    let pairs = key_values(text);
    if !pairs.iter().any(|(name, _)| is_secret_name(name)) {
        return Cow::Borrowed(text);
    }
    let shown: Vec<String> = pairs
        .iter()
        .map(|(name, value)| if is_secret_name(name) { format!("{name}={MASK}") } else { format!("{name}={value}") })
        .collect();
    Cow::Owned(shown.join(" "))
}

fn is_secret_name(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

/// The passwords in `url`, as written and percent-decoded: what must not appear
/// in any message about it.
fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if is_key_value(url) {
        for (_, value) in key_values(url).into_iter().filter(|(name, _)| is_secret_name(name)) {
            found.push(value.to_owned());
            // As libpq reads it: without its quotes.
            if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                found.push(inner.replace("\\'", "'").replace("\\\\", "\\"));
            }
        }
        found.retain(|s| !s.is_empty());
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        return found;
    }
    for entry in parts(url).entries() {
        let (userinfo, rest) = split_userinfo(entry).unwrap_or(("", entry));
        if let Some((_, password)) = userinfo.split_once(':') {
            found.push(password.to_owned());
        }
        if let Some((_, query)) = rest.split_once('?') {
            for param in query.split('&').filter(|p| is_secret_param(p)) {
                if let Some((_, value)) = param.split_once('=') {
                    found.push(value.to_owned());
                }
            }
        }
    }
    let decoded: Vec<String> =
        found.iter().filter(|s| s.contains('%')).filter_map(|s| super::url::percent_decode(s)).collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty());
    // Longest first, so that a secret inside another is not replaced half-way.
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found
}

/// `text` with every password of `url` replaced by `***`.
pub fn scrub<'t>(text: &'t str, url: &str) -> Cow<'t, str> {
    let secrets = secrets(url);
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for secret in &secrets {
        out = out.replace(secret.as_str(), MASK);
    }
    Cow::Owned(out)
}

/// An error whose message had a password of the store URL in it, with the
/// password masked. It replaces the original (and its chain of sources, which
/// may repeat the password).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RedactedError {
    message: String,
}

/// `err` with no password of `url` in its message or any of its sources'.
///
/// Errors from opening a store can quote the URL they were given (the redis crate
/// does for some cluster and parse errors), so every error from opening one goes
/// through here.
pub fn scrub_error(err: StoreError, url: &str) -> StoreError {
    match err {
        StoreError::Unavailable(source) => StoreError::Unavailable(scrub_source(source, url)),
        StoreError::Corrupt(source) => StoreError::Corrupt(scrub_source(source, url)),
        other => other,
    }
}

fn scrub_source(source: BoxError, url: &str) -> BoxError {
    let mut chain = source.to_string();
    let mut next = source.source();
    while let Some(inner) = next {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        next = inner.source();
    }
    match scrub(&chain, url) {
        Cow::Borrowed(_) => source,
        Cow::Owned(message) => Box::new(RedactedError { message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_users_and_hosts_kept() {
        let cases = [
            ("redis://:s3cret@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
            ("redis://app:s3cret@cache.internal:6379/3", "redis://app:***@cache.internal:6379/3"),
            ("rediss://app:s3cret@cache:6380", "rediss://app:***@cache:6380"),
            // Percent-encoded passwords are masked whole, escapes included.
            ("redis://app:p%40ss%2Fw0rd@cache:6379", "redis://app:***@cache:6379"),
            // Raw `@` and `/` in a password: everything up to the last `@` is hidden.
            ("redis://:p@ss/w0rd@cache:6379/1", "redis://:***@cache:6379/1"),
            ("redis+cluster://:pw@a:7000,:pw@b:7001,c:7002", "redis+cluster://:***@a:7000,:***@b:7001,c:7002"),
            ("redis+cluster://u:one@a:7000,v:two@b:7001", "redis+cluster://u:***@a:7000,v:***@b:7001"),
            ("redis+unix:///run/redis.sock?db=1&pass=s3cret", "redis+unix:///run/redis.sock?db=1&pass=***"),
            ("redis://cache:6379/0?password=s3cret", "redis://cache:6379/0?password=***"),
            ("postgres://app:s3cret@db:5432/app", "postgres://app:***@db:5432/app"),
            ("postgresql://app@db/app?password=s3cret", "postgresql://app@db/app?password=***"),
            // A user name alone (no `:`) is not a secret.
            ("redis://app@cache:6379", "redis://app@cache:6379"),
            // Not even a URL: what precedes the `@` may be a password.
            ("redis//:s3cret@cache", "redis//:***@cache"),
            // Sentinels: the master's password, and the sentinels' own.
            (
                "redis+sentinel://app:s3cret@s1:26379,s2:26379/mymaster?sentinel_password=s3cret",
                "redis+sentinel://app:***@s1:26379,s2:26379/mymaster?sentinel_password=***",
            ),
            // PostgreSQL key=value strings, quoted or not.
            ("host=db user=app password=s3cret dbname=app", "host=db user=app password=*** dbname=app"),
            ("host=db password='s3cret word' sslmode=verify-full", "host=db password=*** sslmode=verify-full"),
            ("host=db dbname=app", "host=db dbname=app"),
            ("host = db password = s3cret", "host=db password=***"),
            ("host=db password=s3c\\ ret user=app", "host=db password=*** user=app"),
        ];
        for (url, shown) in cases {
            assert_eq!(RedactedUrl::new(url).to_string(), shown, "{url}");
            assert!(!format!("{:?}", RedactedUrl::new(url)).contains("s3cret"), "{url}");
        }
    }

    #[test]
    fn a_comma_in_a_single_node_password_stays_hidden() {
        let url = "redis://:pa,ss@cache:6379/0";
        assert_eq!(redact(url), "redis://:***@cache:6379/0");
        assert_eq!(scrub(&format!("cannot reach {url}"), url), "cannot reach redis://:***@cache:6379/0");
        assert_eq!(redact("redis://user:a,b,c@h"), "redis://user:***@h");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for url in [
            "memory",
            "memory?max_sessions=10",
            "sqlite://sessions.db",
            "sqlite:///var/lib/app/s.db",
            "redis://127.0.0.1:6379/2",
            "redis+cluster://a:7000,b:7001",
            "redis://cache:6379/0?protocol=resp3",
        ] {
            assert!(matches!(redact(url), Cow::Borrowed(_)), "{url}");
            assert_eq!(RedactedUrl::new(url).to_string(), url);
        }
    }

    #[test]
    fn scrub_masks_passwords_as_written_and_decoded_anywhere_in_a_message() {
        let url = "redis://app:p%40ss@cache:6379";
        assert_eq!(scrub("auth failed for p@ss and p%40ss", url), "auth failed for *** and ***");
        assert!(matches!(scrub("connection refused", url), Cow::Borrowed(_)));
        let cluster = "redis+cluster://:one@a:1,:two@b:2";
        assert_eq!(
            scrub("nodes redis://:one@a:1, redis://:two@b:2 down", cluster),
            "nodes redis://:***@a:1, redis://:***@b:2 down"
        );
        let sentinel = "redis+sentinel://:pw1@s1,s2/svc?sentinel_password=pw2";
        assert_eq!(scrub("auth pw1 / pw2", sentinel), "auth *** / ***");
        let key_value = "host=db password='two words' user=app";
        assert_eq!(scrub("password 'two words' refused", key_value), "password *** refused");
        assert_eq!(scrub("password it's refused", "host=db password='it\\'s'"), "password *** refused");
    }

    #[test]
    fn scrub_error_replaces_an_error_whose_chain_quotes_the_password() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot reach {0}")]
        struct Quoting(String);
        let url = "redis://:s3cret@127.0.0.1:1";
        let err = scrub_error(StoreError::Unavailable(Box::new(Quoting(url.to_owned()))), url);
        assert_eq!(err.to_string(), "session store unavailable: cannot reach redis://:***@127.0.0.1:1");
        let timeout = scrub_error(StoreError::Timeout(std::time::Duration::from_secs(1)), url);
        assert!(matches!(timeout, StoreError::Timeout(_)));
    }
}
