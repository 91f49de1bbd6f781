//! The TLS parameters of a connection string, taken out before `tokio-postgres`
//! parses the rest.
//!
//! `tokio_postgres::Config::from_str` refuses `sslmode=verify-ca`,
//! `sslmode=verify-full`, `sslrootcert`, `sslcert` and `sslkey`, all of which libpq
//! users write. So both forms libpq reads are scanned here: the URL form
//! (`postgres://u@h/db?sslmode=verify-full&sslrootcert=/p/ca.pem`, values
//! percent-encoded) and the key=value form (`host=h sslmode=verify-full
//! sslrootcert='/p/ca.pem'`, values optionally single-quoted with `\'` and `\\`
//! escapes). These four parameters are removed; every other one is handed on
//! exactly as written.

use nex_session_core::store::toolkit::url::percent_decode;
use std::fmt;

/// libpq's `sslmode` values this store takes (`allow` is refused: see [`ParamError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS; the certificate chain is checked against the roots, not the host name.
    VerifyCa,
    /// TLS; the chain and the host name are checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, ParamError> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(ParamError::SslMode(other.to_owned())),
        }
    }

    /// The value as written in a URL.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// The TLS parameters found in a connection string, as written (paths not read yet).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// `sslmode`, `None` when absent.
    pub(crate) mode: Option<SslMode>,
    /// `sslrootcert`: a path, or `system`.
    pub(crate) root_cert: Option<String>,
    /// `sslcert`: the client certificate's path.
    pub(crate) cert: Option<String>,
    /// `sslkey`: the client key's path.
    pub(crate) key: Option<String>,
}

/// A TLS parameter this store cannot take. No variant holds the rest of the
/// string, so no password can show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParamError {
    /// An `sslmode` value libpq does not define, or `allow`.
    #[error("sslmode={0} is not supported: use disable, prefer, require, verify-ca or verify-full")]
    SslMode(String),
    /// A value whose percent-encoding or quoting is broken.
    #[error("the value of {0} is malformed (check its quoting or percent-encoding)")]
    Malformed(&'static str),
}

/// The parameters this module takes out of the string.
const TAKEN: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits `conn` into its TLS parameters and the rest (for `Config::from_str`).
///
/// A string starting with `postgres://` or `postgresql://` is read as a URL;
/// anything else as key=value pairs. The last of a repeated parameter wins, as in libpq.
pub(crate) fn split(conn: &str) -> Result<(TlsParams, String), ParamError> {
    let trimmed = conn.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        split_url(trimmed)
    } else {
        split_key_value(trimmed)
    }
}

fn take(params: &mut TlsParams, name: &'static str, value: String) -> Result<(), ParamError> {
    match name {
        "sslmode" => params.mode = Some(SslMode::parse(&value)?),
        "sslrootcert" => params.root_cert = Some(value),
        "sslcert" => params.cert = Some(value),
        _ => params.key = Some(value),
    }
    Ok(())
}

fn taken(name: &str) -> Option<&'static str> {
    TAKEN.iter().copied().find(|taken| *taken == name)
}

fn split_url(url: &str) -> Result<(TlsParams, String), ParamError> {
    let mut params = TlsParams::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((params, url.to_owned()));
    };
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match taken(name) {
            Some(name) => {
                let value = percent_decode(value).ok_or(ParamError::Malformed(name))?;
                take(&mut params, name, value)?;
            }
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((params, rest))
}

/// One `key=value` pair of the key=value form: its decoded value and where it
/// stands in the string (so the pairs kept are handed on as written).
struct Pair<'a> {
    key: &'a str,
    value: String,
    span: std::ops::Range<usize>,
}

fn split_key_value(conn: &str) -> Result<(TlsParams, String), ParamError> {
    let mut params = TlsParams::default();
    // Everything but the pairs taken, byte for byte (spaces included).
    let mut rest = String::with_capacity(conn.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(pair) = next_pair(conn, &mut at)? {
        if let Some(name) = taken(pair.key) {
            take(&mut params, name, pair.value)?;
            rest.push_str(conn.get(copied..pair.span.start).unwrap_or_default());
            copied = pair.span.end;
        }
    }
    rest.push_str(conn.get(copied..).unwrap_or_default());
    Ok((params, rest.trim().to_owned()))
}

/// The pair starting at or after `*at`, advancing `*at` past it. Malformed text
/// is left for `tokio-postgres` to report (with its own message), except in the
/// values of the parameters taken here.
fn next_pair<'a>(conn: &'a str, at: &mut usize) -> Result<Option<Pair<'a>>, ParamError> {
    let bytes = conn.as_bytes();
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let start = skip_space(*at);
    if start >= bytes.len() {
        return Ok(None);
    }
    let mut i = start;
    while bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=') {
        i += 1;
    }
    let key = conn.get(start..i).unwrap_or_default();
    i = skip_space(i);
    if bytes.get(i) != Some(&b'=') {
        // Not a pair: hand it on whole, so tokio-postgres names the problem.
        *at = i.max(start + 1);
        return Ok(Some(Pair { key, value: String::new(), span: start..i }));
    }
    i = skip_space(i + 1);
    let mut value = Vec::new();
    if bytes.get(i) == Some(&b'\'') {
        i += 1;
        loop {
            match bytes.get(i) {
                Some(b'\'') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    value.push(*bytes.get(i + 1).ok_or(malformed(key))?);
                    i += 2;
                }
                Some(byte) => {
                    value.push(*byte);
                    i += 1;
                }
                None => return Err(malformed(key)),
            }
        }
    } else {
        while let Some(byte) = bytes.get(i).filter(|b| !b.is_ascii_whitespace()) {
            if *byte == b'\\' {
                value.push(*bytes.get(i + 1).ok_or(malformed(key))?);
                i += 2;
            } else {
                value.push(*byte);
                i += 1;
            }
        }
    }
    *at = i;
    let value = String::from_utf8(value).map_err(|_| malformed(key))?;
    Ok(Some(Pair { key, value, span: start..i }))
}

/// Malformed text in a parameter taken here is our error; elsewhere it is
/// tokio-postgres' to report (this scan then stops at the end of the string).
fn malformed(key: &str) -> ParamError {
    ParamError::Malformed(taken(key).unwrap_or("a parameter"))
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn params(mode: Option<SslMode>, root: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsParams {
        TlsParams {
            mode,
            root_cert: root.map(str::to_owned),
            cert: cert.map(str::to_owned),
            key: key.map(str::to_owned),
        }
    }

    /// `text` with runs of spaces made one (the pairs taken out leave theirs).
    fn spaced(text: &str) -> String {
        text.split(' ').filter(|word| !word.is_empty()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn url_form_loses_the_tls_parameters_and_keeps_the_rest_as_written() {
        let (tls, rest) = split(
            "postgres://app:p%40ss@h1:5432,h2:5433/db?sslmode=verify-full&connect_timeout=3&sslrootcert=/p/ca.pem&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(tls, params(Some(SslMode::VerifyFull), Some("/p/ca.pem"), None, None));
        assert_eq!(rest, "postgres://app:p%40ss@h1:5432,h2:5433/db?connect_timeout=3&target_session_attrs=read-write");
    }

    #[test]
    fn url_form_values_are_percent_decoded() {
        let (tls, rest) = split(
            "postgresql://h/db?sslrootcert=%2Fetc%2Fssl%2Fmy%20ca.pem&sslcert=/c/client.pem&sslkey=/c/client%2Bkey.pem",
        )
        .unwrap();
        assert_eq!(tls, params(None, Some("/etc/ssl/my ca.pem"), Some("/c/client.pem"), Some("/c/client+key.pem")));
        assert_eq!(rest, "postgresql://h/db");
    }

    #[test]
    fn url_without_a_query_or_tls_parameters_is_unchanged() {
        for url in ["postgres://u@h/db", "postgres://u@h/db?application_name=x", "postgres://h"] {
            let (tls, rest) = split(url).unwrap();
            assert_eq!(tls, TlsParams::default());
            assert_eq!(rest, url);
        }
    }

    #[test]
    fn the_last_of_a_repeated_parameter_wins() {
        let (tls, _) = split("postgres://h/db?sslmode=require&sslmode=verify-ca").unwrap();
        assert_eq!(tls.mode, Some(SslMode::VerifyCa));
        let (tls, _) = split("host=h sslmode=require sslmode=disable").unwrap();
        assert_eq!(tls.mode, Some(SslMode::Disable));
    }

    #[test]
    fn every_libpq_mode_but_allow_is_taken() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            let (tls, _) = split(&format!("postgres://h/db?sslmode={mode}")).unwrap();
            assert_eq!(tls.mode.map(SslMode::as_str), Some(mode));
        }
        let err = split("postgres://h/db?sslmode=allow").unwrap_err();
        assert!(err.to_string().contains("sslmode=allow is not supported"), "{err}");
        assert!(split("host=h sslmode=verify_full").is_err());
    }

    #[test]
    fn broken_percent_encoding_names_the_parameter() {
        let err = split("postgres://h/db?sslrootcert=%2").unwrap_err();
        assert_eq!(err, ParamError::Malformed("sslrootcert"));
    }

    #[test]
    fn key_value_form_loses_the_tls_parameters_and_keeps_the_rest_as_written() {
        let (tls, rest) = split(
            "host=h1,h2 port=5432,5433 dbname=db sslmode=verify-full sslrootcert='/p/ca.pem' password='it''s' user=app",
        )
        .unwrap();
        assert_eq!(tls, params(Some(SslMode::VerifyFull), Some("/p/ca.pem"), None, None));
        assert_eq!(spaced(&rest), "host=h1,h2 port=5432,5433 dbname=db password='it''s' user=app");
    }

    #[test]
    fn key_value_form_reads_libpq_quoting_and_spaces_around_the_equals_sign() {
        let (tls, rest) = split(
            r"host = h  sslrootcert = '/p/my ca\'s.pem' sslcert=/c/a\ b.pem sslkey='C:\\keys\\k.pem' application_name='a b'",
        )
        .unwrap();
        assert_eq!(tls, params(None, Some("/p/my ca's.pem"), Some("/c/a b.pem"), Some(r"C:\keys\k.pem")));
        assert_eq!(spaced(&rest), "host = h application_name='a b'");
    }

    #[test]
    fn key_value_form_with_an_unclosed_quote_in_a_tls_parameter_is_refused() {
        assert_eq!(split("host=h sslrootcert='/p/ca.pem").unwrap_err(), ParamError::Malformed("sslrootcert"));
    }

    #[test]
    fn key_value_text_that_is_no_pair_is_handed_on_for_tokio_postgres_to_report() {
        let (tls, rest) = split("host=h sslmode=require nonsense").unwrap();
        assert_eq!(tls.mode, Some(SslMode::Require));
        assert_eq!(spaced(&rest), "host=h nonsense");
    }

    #[test]
    fn an_empty_key_value_string_stays_empty() {
        assert_eq!(split("  ").unwrap(), (TlsParams::default(), String::new()));
    }
}
