//! Connection failures in words an operator can act on: what went wrong and
//! which URL parameter fixes it.
//!
//! `tokio-postgres` reports a refused certificate as "error performing TLS
//! handshake", with the rustls error two sources down (inside an `io::Error`,
//! whose own `source` skips it), and a server that wants TLS as a `FATAL` from
//! `pg_hba.conf`. [`ConnectFailed`] walks that chain once, on failure only, and
//! names the cause and the fix; the original error stays its source. Messages
//! never hold the connection string (so never a password).

use std::error::Error as StdError;
use std::fmt::Write as _;

use rustls::{AlertDescription, CertificateError};
use tokio_postgres::error::SqlState;

use crate::tls::{Roots, SslMode, Tls};

/// A connection that could not be opened, explained.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to PostgreSQL: {explanation}")]
pub(crate) struct ConnectFailed {
    explanation: String,
    #[source]
    source: tokio_postgres::Error,
}

impl ConnectFailed {
    /// Explains `err`, from connecting with `tls`.
    pub(crate) fn new(err: tokio_postgres::Error, tls: &Tls) -> Self {
        let chain = chain(&err);
        let explanation = match cause(&err, tls) {
            Some(cause) => format!("{cause} ({chain})"),
            None => chain,
        };
        Self { explanation, source: err }
    }
}

/// The messages of `err` and its sources, joined by `: `, each once (an
/// `io::Error` shows the error it wraps, which its `source` then skips).
fn chain(err: &tokio_postgres::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(inner) = next {
        let text = inner.to_string();
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        next = inner.source();
    }
    out
}

/// The rustls error somewhere in `err`'s chain, looking inside `io::Error`s.
fn rustls_error(err: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(inner) = next {
        if let Some(found) = inner.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|wrapped| wrapped.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        next = inner.source();
    }
    None
}

/// What went wrong and what to change, when the cause is one we know.
fn cause(err: &tokio_postgres::Error, tls: &Tls) -> Option<String> {
    if let Some(rustls) = rustls_error(err) {
        return Some(tls_cause(rustls, tls));
    }
    if let Some(db) = err.as_db_error() {
        let message = db.message();
        if *db.code() == SqlState::INVALID_CATALOG_NAME {
            return Some(
                "the database named in the URL does not exist: create it (`createdb NAME`, or `CREATE DATABASE`) \
                 or fix the URL's path"
                    .to_owned(),
            );
        }
        if *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION && message.contains("no encryption") {
            return Some(match tls.mode {
                SslMode::Disable => "the server accepts only TLS connections: add sslmode=verify-full (or require) \
                                     to the URL"
                    .to_owned(),
                // `prefer` met a server that declined TLS yet requires it: a server misconfiguration.
                _ => "the server requires TLS but did not offer it: check ssl=on in its postgresql.conf".to_owned(),
            });
        }
        if message.contains("certificate") && !tls.client_cert {
            return Some("the server requires a client certificate: set sslcert and sslkey (mutual TLS)".to_owned());
        }
        if message.contains("certificate") {
            return Some(
                "the server refused the client certificate: check that sslcert is signed by a CA the server \
                 trusts (its ssl_ca_file) and names the right user"
                    .to_owned(),
            );
        }
        return None;
    }
    if chain(err).contains("server does not support TLS") {
        return Some(format!(
            "the server does not support TLS (sslmode={}): use sslmode=prefer or disable, or turn ssl on in the server",
            tls.written
        ));
    }
    None
}

fn tls_cause(err: &rustls::Error, tls: &Tls) -> String {
    let roots = match &tls.roots {
        Some(Roots::File(path)) => format!("sslrootcert={}", path.display()),
        Some(Roots::System) => "the system roots (no sslrootcert given)".to_owned(),
        None => "no roots".to_owned(),
    };
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "certificate not trusted: set sslrootcert to the CA that signed the server's certificate \
                 (trusted now: {roots})"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "host name mismatch: the server's certificate {}: put a host name it names in the URL, or use \
                 sslmode=verify-ca to check the certificate chain only",
                names(cert)
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired: renew it on the server".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet: check the clocks of this machine and the server".to_owned()
            }
            CertificateError::Revoked => "the server's certificate has been revoked".to_owned(),
            other => format!("the server's certificate was refused ({other:?}); trusted: {roots}"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA),
        ) if !tls.client_cert => {
            format!("the server ended the TLS handshake ({alert:?}): if it requires a client certificate, set sslcert and sslkey")
        }
        rustls::Error::AlertReceived(alert @ (AlertDescription::BadCertificate | AlertDescription::UnknownCA)) => {
            format!("the server refused the client certificate ({alert:?}): check sslcert and sslkey")
        }
        other => format!("TLS handshake failed ({other})"),
    }
}

/// What the certificate names and what the URL asked for, when rustls said.
fn names(cert: &CertificateError) -> String {
    match cert {
        CertificateError::NotValidForNameContext { expected, presented } => {
            // rustls writes each name as `DnsName("db")` or `IpAddress(…)`: keep the name.
            let presented: Vec<&str> = presented
                .iter()
                .map(|name| {
                    let inner = name.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')'));
                    inner.map_or(name.as_str(), |inner| inner.trim_matches('"'))
                })
                .collect();
            let expected = match expected {
                rustls::pki_types::ServerName::DnsName(name) => name.as_ref().to_owned(),
                rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                other => format!("{other:?}"),
            };
            format!("is for {}, not for {expected} (the host in the URL)", presented.join(", "))
        }
        _ => "does not name the host in the URL".to_owned(),
    }
}
