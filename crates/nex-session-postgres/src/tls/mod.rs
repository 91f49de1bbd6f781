//! TLS with libpq's `sslmode` semantics, on rustls (crypto: ring).
//!
//! The connection string's TLS parameters are taken out first ([`params`]), the
//! files they name read and parsed once, at open ([`Tls::load`]), and the rustls
//! configuration built from them with the checks the mode asks for ([`verify`]).
//! The connector that uses it is in `connect.rs`.
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | absent, `disable` | no | — |
//! | `prefer` | when the server offers TLS | no |
//! | `require` | yes, or no connection | no (as `verify-ca` when `sslrootcert` is given) |
//! | `verify-ca` | yes | chain to `sslrootcert` (required), validity |
//! | `verify-full` | yes | as `verify-ca`, and the host name of the URL |

pub(crate) mod params;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

pub(crate) use params::{SslMode, TlsParams};

/// Why the TLS settings could not be loaded: a start-up error naming the
/// parameter to fix (and the path, never a password).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    /// The connection string's TLS parameters themselves.
    #[error("invalid PostgreSQL connection string: {0}")]
    Param(#[from] params::ParamError),
    /// A file that could not be read or parsed.
    #[error("{param}={path}: {problem}")]
    File {
        /// `sslrootcert`, `sslcert` or `sslkey`.
        param: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// A combination of parameters that cannot work.
    #[error("{0}")]
    Combination(&'static str),
    /// rustls refused the configuration (such as a key that does not match the certificate).
    #[error("sslcert/sslkey: {0}")]
    Rustls(#[source] rustls::Error),
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// The operating system's store (`sslrootcert=system`, or none given).
    System,
    /// A PEM bundle (`sslrootcert=PATH`).
    File(PathBuf),
}

/// The TLS of a store: its mode (as the server will see it) and, for every mode
/// but `disable`, the rustls configuration built at open.
#[derive(Clone)]
pub(crate) struct Tls {
    /// The mode in effect (`require` with `sslrootcert` is `verify-ca` here).
    pub(crate) mode: SslMode,
    /// The mode as written, for messages and the endpoint.
    pub(crate) written: SslMode,
    /// The roots checked against, for messages (`None` when not verified).
    pub(crate) roots: Option<Roots>,
    /// Whether a client certificate is sent.
    pub(crate) client_cert: bool,
    /// `None` for `disable`.
    pub(crate) config: Option<Arc<ClientConfig>>,
}

impl Tls {
    /// Reads the files `params` names and builds the configuration. An absent
    /// `sslmode` is `disable`: no TLS, as before this store spoke it.
    pub(crate) fn load(params: &TlsParams) -> Result<Self, TlsSetupError> {
        let written = params.mode.unwrap_or(SslMode::Disable);
        // libpq: "if a root CA file exists, … require … behave[s] the same way as verify-ca".
        let mode = match (written, &params.root_cert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        };
        let client = match (&params.cert, &params.key) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(TlsSetupError::Combination(
                    "sslcert and sslkey go together: give both (mutual TLS) or neither",
                ))
            }
        };
        let verified = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
        let roots = match params.root_cert.as_deref() {
            Some("system") => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
            None => verified.then_some(Roots::System),
        };
        if roots == Some(Roots::System) && mode == SslMode::VerifyCa {
            // libpq refuses it too: any public CA signs certificates for any name, so a
            // chain to a public root proves nothing when the name is not checked.
            return Err(TlsSetupError::Combination(
                "sslmode=verify-ca needs sslrootcert=/path/to/ca.pem (the system's roots trust every public CA, \
                 and verify-ca does not check the host name): give the CA, or use sslmode=verify-full",
            ));
        }
        if mode == SslMode::Disable {
            return Ok(Self { mode, written, roots: None, client_cert: false, config: None });
        }
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Rustls)?
            .dangerous();
        let builder = match (&roots, verified) {
            (Some(roots), true) => {
                let store = Arc::new(load_roots(roots)?);
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(store, provider.clone()).build().map_err(|err| {
                        TlsSetupError::File { param: "sslrootcert", path: root_path(roots), problem: err.to_string() }
                    })?;
                match mode {
                    SslMode::VerifyFull => builder.with_custom_certificate_verifier(webpki),
                    _ => builder.with_custom_certificate_verifier(Arc::new(verify::ChainOnly::new(webpki))),
                }
            }
            _ => builder.with_custom_certificate_verifier(Arc::new(verify::Unverified::new(&provider))),
        };
        let config = match &client {
            Some((cert, key)) => {
                let chain = read_certs("sslcert", cert)?;
                let key = read_key(key)?;
                builder.with_client_auth_cert(chain, key).map_err(TlsSetupError::Rustls)?
            }
            None => builder.with_no_client_auth(),
        };
        let roots = verified.then_some(roots).flatten();
        Ok(Self { mode, written, roots, client_cert: client.is_some(), config: Some(Arc::new(config)) })
    }

    /// The `tokio-postgres` mode: the verify modes are `require` there (the
    /// checks are in the rustls configuration).
    pub(crate) fn postgres_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self.mode {
            SslMode::Disable => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }
}

/// The crypto provider: the one the app installed as rustls' process default,
/// if any (an app that wants aws-lc-rs' post-quantum key exchange installs it
/// before opening the store), else ring, given to each configuration
/// explicitly (asking rustls to pick one panics when an app links two).
///
/// rustls 0.23.48 marks ring's provider deprecated because ring has no
/// post-quantum key exchange; ring is our default because it builds with a C
/// compiler alone (aws-lc-rs builds a large C library), and the key exchange
/// is the classical X25519/P-256 one. The Redis store makes the same choice.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn root_path(roots: &Roots) -> PathBuf {
    match roots {
        Roots::System => PathBuf::from("system"),
        Roots::File(path) => path.clone(),
    }
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for cert in read_certs("sslrootcert", path)? {
                store.add(cert).map_err(|err| file_error("sslrootcert", path, err))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let problem = match found.errors.first() {
                    Some(err) => format!("no system root certificate could be loaded ({err})"),
                    None => "the system has no root certificates (install the ca-certificates package)".to_owned(),
                };
                return Err(TlsSetupError::File { param: "sslrootcert", path: PathBuf::from("system"), problem });
            }
        }
    }
    Ok(store)
}

/// The certificates of a PEM file: at least one.
fn read_certs(param: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = std::fs::read(path).map_err(|err| file_error(param, path, err))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| file_error(param, path, err))?;
    if certs.is_empty() {
        return Err(file_error(param, path, "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1; not encrypted).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let bytes = std::fs::read(path).map_err(|err| file_error("sslkey", path, err))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|err| file_error("sslkey", path, format!("no usable private key ({err})")))
}

fn file_error(param: &'static str, path: &Path, problem: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::File { param, path: path.to_owned(), problem: problem.to_string() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn load(conn: &str) -> Result<Tls, TlsSetupError> {
        let (params, _) = params::split(conn).unwrap();
        Tls::load(&params)
    }

    #[test]
    fn no_sslmode_means_no_tls() {
        let tls = load("postgres://h/db").unwrap();
        assert_eq!(tls.mode, SslMode::Disable);
        assert!(tls.config.is_none());
    }

    #[test]
    fn require_with_a_root_certificate_is_verify_ca() {
        let err = load("postgres://h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem").err().unwrap();
        // It tried to read the roots: require became verify-ca.
        assert!(err.to_string().starts_with("sslrootcert=/nonexistent/ca.pem: "), "{err}");
        let tls = load("postgres://h/db?sslmode=require").unwrap();
        assert_eq!((tls.mode, tls.roots), (SslMode::Require, None));
    }

    #[test]
    fn unreadable_files_name_their_parameter_and_path() {
        for (conn, param) in [
            ("sslmode=verify-full sslrootcert=/nonexistent/ca.pem", "sslrootcert=/nonexistent/ca.pem"),
            ("sslmode=require sslcert=/nonexistent/c.pem sslkey=/nonexistent/k.pem", "sslcert=/nonexistent/c.pem"),
        ] {
            let err = load(conn).err().unwrap().to_string();
            assert!(err.starts_with(param), "{err}");
        }
    }

    #[test]
    fn a_client_certificate_without_its_key_is_refused() {
        let err = load("postgres://h/db?sslmode=require&sslcert=/c.pem").err().unwrap();
        assert!(err.to_string().contains("sslcert and sslkey go together"), "{err}");
    }

    #[test]
    fn verify_ca_needs_a_ca_of_its_own_as_in_libpq() {
        // The public roots, with no host name check, would accept any site's certificate.
        for url in ["postgres://h/db?sslmode=verify-ca&sslrootcert=system", "postgres://h/db?sslmode=verify-ca"] {
            let err = load(url).err().unwrap();
            assert!(err.to_string().contains("verify-ca needs sslrootcert"), "{url}: {err}");
        }
    }

    #[test]
    fn a_file_with_no_certificate_is_refused() {
        let path = std::env::temp_dir().join(format!("nex-pg-empty-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = load(&format!("sslmode=verify-full sslrootcert={}", path.display())).err().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
