//! TLS to Redis, with the redis client's own rustls support: what to verify,
//! the certificates to trust and to present, and a client for one address.
//!
//! | `sslmode` | encrypted | chain checked | host name checked |
//! |---|---|---|---|
//! | `verify-full` (default for `rediss`) | yes | yes | yes |
//! | `verify-ca` (needs `sslrootcert`) | yes | yes | no |
//! | `require` (development only) | yes | no | no |
//!
//! The chain is checked against `sslrootcert` (a PEM bundle) when given, else
//! the system's roots. `sslcert` and `sslkey` present a client certificate
//! (mutual TLS). Files are read once, when the store opens; a file that cannot
//! be read or parsed is an error then, never on a request.
//!
//! rustls needs a crypto provider; the redis client takes the process default.
//! Opening a TLS store installs ring's as that default unless the application
//! installed one first (then the application's is used).

use std::path::Path;

use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, TlsCertificates};

/// What a TLS connection verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// The chain up to a trusted root, and the host name (`verify-full`).
    Full,
    /// The chain only (`verify-ca`).
    Ca,
    /// Nothing: encryption against eavesdroppers only (`require`).
    None,
}

impl Verify {
    /// The `sslmode` value that asks for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Full => "verify-full",
            Self::Ca => "verify-ca",
            Self::None => "require",
        }
    }
}

/// TLS settings of a `rediss` URL, files read.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) verify: Verify,
    pub(crate) certs: TlsCertificates,
    /// A custom CA was given (`sslrootcert`), for messages.
    pub(crate) custom_roots: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("verify", &self.verify).field("custom_roots", &self.custom_roots).finish()
    }
}

/// A TLS parameter that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("unknown sslmode {0:?} for Redis: use verify-full (the default), verify-ca or require; for no TLS use redis:// instead of rediss://")]
    Mode(String),
    #[error("cannot read {param}={path}: {source}")]
    Read {
        param: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{param}={path} holds no PEM {what}")]
    Empty { param: &'static str, path: String, what: &'static str },
    #[error("sslcert and sslkey go together (mutual TLS): {0} is missing")]
    Half(&'static str),
    #[error("sslmode=verify-ca needs sslrootcert=/path/to/ca.pem (the system's roots trust every public CA, and verify-ca does not check the host name): give the CA, or use sslmode=verify-full")]
    CaWithoutRoots,
}

impl Tls {
    /// Settings from the URL's parameters (`None` where absent).
    pub(crate) fn from_params(
        mode: Option<&str>,
        rootcert: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> Result<Self, TlsError> {
        let verify = match mode.unwrap_or("verify-full") {
            "verify-full" => Verify::Full,
            "verify-ca" => Verify::Ca,
            "require" => Verify::None,
            other => return Err(TlsError::Mode(other.to_owned())),
        };
        if verify == Verify::Ca && rootcert.is_none() {
            // The system's roots trust every public CA: a chain to one, with no host
            // name check, would accept any site's certificate (libpq refuses it too).
            return Err(TlsError::CaWithoutRoots);
        }
        let root_cert = rootcert.map(|path| read_pem("sslrootcert", path, "CERTIFICATE")).transpose()?;
        let client_tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read_pem("sslcert", cert, "CERTIFICATE")?,
                client_key: read_pem("sslkey", key, "PRIVATE KEY")?,
            }),
            (Some(_), None) => return Err(TlsError::Half("sslkey")),
            (None, Some(_)) => return Err(TlsError::Half("sslcert")),
            (None, None) => None,
        };
        let custom_roots = root_cert.is_some();
        Ok(Self { verify, certs: TlsCertificates { client_tls, root_cert }, custom_roots })
    }

    /// A client for `host:port` over TLS with these settings and `settings`
    /// (database, credentials, protocol).
    pub(crate) fn client(&self, host: &str, port: u16, settings: RedisConnectionInfo) -> redis::RedisResult<Client> {
        let addr = ConnectionAddr::TcpTls { host: host.to_owned(), port, insecure: false, tls_params: None };
        let info = addr.into_connection_info()?.set_redis_settings(settings);
        self.secure(info)
    }

    /// `info` (a `rediss` address) with these settings' certificates and checks.
    pub(crate) fn secure(&self, info: redis::ConnectionInfo) -> redis::RedisResult<Client> {
        install_provider();
        let client = Client::build_with_tls(info, self.certs.clone())?;
        let mut addr = client.get_connection_info().addr().clone();
        match self.verify {
            Verify::Full => return Ok(client),
            Verify::Ca => addr.set_danger_accept_invalid_hostnames(true),
            Verify::None => {
                if let ConnectionAddr::TcpTls { insecure, .. } = &mut addr {
                    *insecure = true;
                }
            }
        }
        Client::open(client.get_connection_info().clone().set_addr(addr))
    }
}

/// Makes ring rustls' process-wide default, unless one is installed already:
/// the redis client builds its TLS configuration from that default.
///
/// rustls 0.23.48 deprecates ring's provider because it lacks post-quantum key
/// exchange, which aws-lc-rs has; aws-lc-rs builds a large C library, minutes
/// on a small machine. An app that wants post-quantum key exchange installs
/// aws-lc-rs' provider before opening the store, and it is used instead.
#[allow(deprecated)]
pub(crate) fn install_provider() {
    // An error means another provider is the default: it is used, as the app chose.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The bytes of a PEM file that holds at least one `what` block.
fn read_pem(param: &'static str, path: &str, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes =
        std::fs::read(Path::new(path)).map_err(|source| TlsError::Read { param, path: path.to_owned(), source })?;
    // "-----BEGIN CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----", …
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|line| line.starts_with("-----BEGIN ") && line.contains(what));
    if !found {
        return Err(TlsError::Empty { param, path: path.to_owned(), what });
    }
    Ok(bytes)
}
