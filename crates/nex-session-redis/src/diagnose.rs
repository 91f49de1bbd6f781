//! Start-up errors a person can act on: what failed when connecting, and the
//! URL parameter that fixes it.
//!
//! The TLS causes are read from the rustls error inside the redis client's
//! error (see [`TlsCause`] for how); a plain client at a TLS-only port sees
//! only silence or a closed connection, so that hint is given for what it looks like.

use std::error::Error;

use crate::tls::Tls;
use nex_session_core::StoreError;

/// A connection that could not be made, said plainly, with the error under it.
#[derive(Debug)]
pub(crate) struct ConnectError {
    /// `Redis at HOST:PORT`, `sentinel HOST:PORT`, …: which server, no credentials.
    pub(crate) server: String,
    /// What went wrong and what to change.
    pub(crate) hint: Option<String>,
    pub(crate) source: redis::RedisError,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.hint {
            Some(hint) => write!(f, "cannot connect to {}: {hint} ({})", self.server, self.source),
            None => write!(f, "cannot connect to {}: {}", self.server, self.source),
        }
    }
}

impl Error for ConnectError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// `err`, met connecting to `server` with `tls` (or none), as a store error
/// whose message names the cause and the parameter to fix where it can.
pub(crate) fn connect_failed(server: String, tls: Option<&Tls>, err: redis::RedisError) -> StoreError {
    let hint = hint(tls, &err);
    StoreError::Unavailable(Box::new(ConnectError { server, hint, source: err }))
}

/// What to tell the user about `err`, if we know.
fn hint(tls: Option<&Tls>, err: &redis::RedisError) -> Option<String> {
    let text = err.to_string().to_ascii_lowercase();
    if let Some(cause) = TlsCause::find(&text) {
        return Some(cause.hint(tls));
    }
    let silent = err.is_timeout() || text.contains("timed out");
    if tls.is_some() && silent {
        // A plain server reads a TLS greeting as the start of a command and waits for its end.
        return Some(
            "the server did not complete a TLS handshake; if this port does not speak TLS, use redis://".to_owned(),
        );
    }
    if tls.is_none() && (silent || closed_at_handshake(err)) {
        return Some(
            "the server did not answer, or hung up; if it accepts only TLS (managed Redis with in-transit \
             encryption, `tls-port`), use a rediss:// URL"
                .to_owned(),
        );
    }
    None
}

/// A TLS failure we can explain.
///
/// Read from the error's text: the redis client keeps the rustls error behind
/// an `Arc<dyn Error>` that no public method hands out (its `source` chain
/// skips it), so the words rustls uses are matched. The test
/// `every_rustls_wording_we_match_is_the_one_rustls_uses` builds each rustls
/// error and checks it is recognised, so a rustls upgrade that rewords one
/// fails there, not silently here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsCause {
    UnknownIssuer,
    WrongName,
    Expired,
    NotYetValid,
    ClientCertificateWanted,
    ClientCertificateRefused,
    NotTls,
}

impl TlsCause {
    /// The cause named in `text` (lowercase), if any. Order matters: the
    /// specific names come before the generic ones.
    fn find(text: &str) -> Option<Self> {
        const WORDS: [(&str, TlsCause); 12] = [
            ("unknownissuer", TlsCause::UnknownIssuer),
            ("badsignature", TlsCause::UnknownIssuer),
            ("notvalidforname", TlsCause::WrongName),
            ("not valid for name", TlsCause::WrongName),
            ("notvalidyet", TlsCause::NotYetValid),
            ("not valid yet", TlsCause::NotYetValid),
            ("expired", TlsCause::Expired),
            ("certificaterequired", TlsCause::ClientCertificateWanted),
            ("alert: handshakefailure", TlsCause::ClientCertificateWanted),
            ("alert: unknownca", TlsCause::ClientCertificateRefused),
            ("alert: badcertificate", TlsCause::ClientCertificateRefused),
            ("corrupt message", TlsCause::NotTls),
        ];
        WORDS.iter().find(|(word, _)| text.contains(word)).map(|(_, cause)| *cause)
    }

    fn hint(self, tls: Option<&Tls>) -> String {
        let roots = match tls {
            Some(tls) if tls.custom_roots => "the CA in sslrootcert",
            _ => "the system's trusted roots",
        };
        match self {
            Self::UnknownIssuer => format!(
                "the server's certificate is not signed by {roots}: set sslrootcert=/path/to/ca.pem to the CA that signed it"
            ),
            Self::WrongName => "the server's certificate is not valid for the host name in the URL: connect by a name \
                                the certificate lists, or use sslmode=verify-ca to check the chain only"
                .to_owned(),
            Self::Expired => "the server's certificate has expired: renew it on the server".to_owned(),
            Self::NotYetValid => {
                "the server's certificate is not valid yet: check the clocks of client and server".to_owned()
            }
            Self::ClientCertificateWanted if tls.is_some_and(|t| t.certs.client_tls.is_none()) => {
                "the server asks for a client certificate (mutual TLS): set sslcert and sslkey".to_owned()
            }
            Self::ClientCertificateWanted | Self::ClientCertificateRefused => {
                "the server refused our client certificate (sslcert): it must be signed by a CA the server trusts"
                    .to_owned()
            }
            Self::NotTls => {
                "the server does not speak TLS on this port: use redis:// (or the server's TLS port)".to_owned()
            }
        }
    }
}

/// The server hung up without a word: what some TLS-only ports do to plain text.
/// (A refused connection is no such sign: nothing listens there.)
fn closed_at_handshake(err: &redis::RedisError) -> bool {
    (err.is_connection_dropped() || err.is_io_error()) && !err.is_connection_refusal()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{AlertDescription, CertificateError, InvalidMessage};

    /// What the redis client makes of a rustls error met while connecting.
    fn redis_io(inner: rustls::Error) -> redis::RedisError {
        redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, inner))
    }

    #[test]
    fn every_rustls_wording_we_match_is_the_one_rustls_uses() {
        let at = |secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        let cases = [
            (rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer), TlsCause::UnknownIssuer),
            (rustls::Error::InvalidCertificate(CertificateError::NotValidForName), TlsCause::WrongName),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("127.0.0.1").unwrap(),
                    presented: vec!["DnsName(\"localhost\")".into()],
                }),
                TlsCause::WrongName,
            ),
            (rustls::Error::InvalidCertificate(CertificateError::Expired), TlsCause::Expired),
            (
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { time: at(20), not_after: at(10) }),
                TlsCause::Expired,
            ),
            (rustls::Error::InvalidCertificate(CertificateError::NotValidYet), TlsCause::NotYetValid),
            (rustls::Error::AlertReceived(AlertDescription::CertificateRequired), TlsCause::ClientCertificateWanted),
            (rustls::Error::AlertReceived(AlertDescription::UnknownCA), TlsCause::ClientCertificateRefused),
            (rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType), TlsCause::NotTls),
        ];
        for (err, cause) in cases {
            let text = redis_io(err).to_string().to_ascii_lowercase();
            assert_eq!(TlsCause::find(&text), Some(cause), "{text}");
        }
    }

    #[test]
    fn certificate_causes_name_the_parameter_to_fix() {
        let cases = [
            (rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer), "sslrootcert"),
            (rustls::Error::InvalidCertificate(CertificateError::NotValidForName), "verify-ca"),
            (rustls::Error::InvalidCertificate(CertificateError::Expired), "expired"),
            (rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType), "redis://"),
        ];
        for (err, expected) in cases {
            let shown = connect_failed("Redis at h:1".into(), None, redis_io(err)).to_string();
            assert!(shown.contains(expected) && shown.contains("h:1"), "{shown}");
        }
    }

    #[test]
    fn a_refused_connection_gets_no_made_up_hint() {
        let refused = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(hint(None, &refused), None);
    }
}
