//! What a store URL asks for: which servers (one node, a cluster, or a master
//! found through sentinels), and whether and how to use TLS.
//!
//! | URL | topology |
//! |---|---|
//! | `redis://[USER:PASSWORD@]HOST:PORT[/DB]`, `rediss://…` (TLS) | one node |
//! | `redis+cluster://HOST:PORT,HOST:PORT,…`, `rediss+cluster://…` | Redis Cluster |
//! | `redis+sentinel://[USER:PASSWORD@]HOST:PORT,…/SERVICE[/DB]`, `rediss+sentinel://…` | the master of `SERVICE`, found through the sentinels |
//!
//! Query parameters taken here (the rest go to the redis client, as `protocol=resp3`):
//! `sslmode` (`verify-full`, the default for `rediss`; `verify-ca`; `require`),
//! `sslrootcert`, `sslcert`, `sslkey` (PEM files, read once here), and for
//! sentinels `sentinel_username` / `sentinel_password` (the sentinels' own
//! credentials; the URL's user and password are the master's). The names are
//! libpq's, so one vocabulary serves both of our network stores.

use crate::tls::{Tls, TlsError};
use nex_session_core::store::toolkit::url;

/// A parsed Redis store URL.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) topology: Topology,
    /// `Some` for the `rediss` schemes.
    pub(crate) tls: Option<Tls>,
}

/// Which servers the store talks to.
#[derive(Debug)]
pub(crate) enum Topology {
    /// One node: a URL the redis client parses (our parameters taken out).
    Single(String),
    /// Redis Cluster: one URL per seed node, in the redis client's form.
    Cluster(Vec<String>),
    /// The master of a service monitored by sentinels.
    Sentinel(SentinelTarget),
}

/// Where the sentinels are and what to ask them.
#[derive(Debug, Clone)]
pub(crate) struct SentinelTarget {
    pub(crate) sentinels: Vec<(String, u16)>,
    pub(crate) service: String,
    pub(crate) db: i64,
    /// The master's credentials (the URL's user information).
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The sentinels' own credentials, when they ask for some.
    pub(crate) sentinel_username: Option<String>,
    pub(crate) sentinel_password: Option<String>,
}

/// The port sentinels listen on when a host names none.
const SENTINEL_PORT: u16 = 26379;

/// Why a URL cannot be used. Messages name the parameter to fix, never a password.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{0} is a TLS parameter: it needs a rediss:// (or rediss+cluster://, rediss+sentinel://) URL")]
    TlsParamWithoutTls(&'static str),
    #[error("sslmode=verify-ca is not supported on Redis Cluster (nodes found later could not be held to it): use verify-full, with the nodes' names in their certificates, or require")]
    VerifyCaOnCluster,
    #[error("a redis+sentinel:// URL needs sentinels and a service name: redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME[/DB]")]
    SentinelShape,
    #[error("{what} {value:?} in a redis+sentinel:// URL is not valid")]
    SentinelPart { what: &'static str, value: String },
    #[error("unknown Redis URL scheme; use redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel:// or rediss+sentinel://")]
    Scheme,
    #[error("sentinel_username and sentinel_password only apply to redis+sentinel:// URLs")]
    SentinelParamElsewhere,
    #[error("a Redis URL takes no #fragment (for no certificate checks, write ?sslmode=require; a `#` in a password is written %23)")]
    Fragment,
}

impl Target {
    /// Parses `url`, reading any certificate files it names.
    pub(crate) fn parse(url: &str) -> Result<Self, TargetError> {
        let (scheme, rest) = url.split_once("://").ok_or(TargetError::Scheme)?;
        let (kind, secure) = match scheme {
            "redis" => (Kind::Single, false),
            "rediss" => (Kind::Single, true),
            "redis+cluster" => (Kind::Cluster, false),
            "rediss+cluster" => (Kind::Cluster, true),
            "redis+sentinel" => (Kind::Sentinel, false),
            "rediss+sentinel" => (Kind::Sentinel, true),
            _ => return Err(TargetError::Scheme),
        };
        if rest.contains('#') {
            // The redis client reads `#insecure` as "verify nothing": never behind the user's back.
            return Err(TargetError::Fragment);
        }
        let (body, query) = match rest.split_once('?') {
            Some((body, query)) => (body, query),
            None => (rest, ""),
        };
        let mut ours = Ours::default();
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match name {
                "sslmode" => ours.mode = Some(value),
                "sslrootcert" => ours.rootcert = Some(value),
                "sslcert" => ours.cert = Some(value),
                "sslkey" => ours.key = Some(value),
                "sentinel_username" => ours.sentinel_username = Some(value),
                "sentinel_password" => ours.sentinel_password = Some(value),
                _ => passed.push(pair),
            }
        }
        let tls = if secure {
            Some(Tls::from_params(
                ours.mode.as_deref(),
                ours.rootcert.as_deref(),
                ours.cert.as_deref(),
                ours.key.as_deref(),
            )?)
        } else {
            ours.refuse_tls_params()?;
            None
        };
        if kind != Kind::Sentinel && (ours.sentinel_username.is_some() || ours.sentinel_password.is_some()) {
            return Err(TargetError::SentinelParamElsewhere);
        }
        let passed = passed.join("&");
        let topology = match kind {
            Kind::Single => {
                // The redis client reads `rediss` as "TLS"; the rest of the URL is its own.
                let query = if passed.is_empty() { String::new() } else { format!("?{passed}") };
                Topology::Single(format!("{}://{body}{query}", if secure { "rediss" } else { "redis" }))
            }
            Kind::Cluster => {
                if tls.as_ref().is_some_and(|t| t.verify == crate::tls::Verify::Ca) {
                    return Err(TargetError::VerifyCaOnCluster);
                }
                let scheme = if secure { "rediss" } else { "redis" };
                Topology::Cluster(body.split(',').map(|node| format!("{scheme}://{}", node.trim())).collect())
            }
            Kind::Sentinel => Topology::Sentinel(parse_sentinel(body, ours)?),
        };
        Ok(Self { topology, tls })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single,
    Cluster,
    Sentinel,
}

/// The query parameters this module takes for itself.
#[derive(Default)]
struct Ours {
    mode: Option<String>,
    rootcert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

impl Ours {
    /// TLS parameters on a plain URL are a mistake worth stopping for: the user
    /// meant TLS and would silently get none.
    fn refuse_tls_params(&self) -> Result<(), TargetError> {
        let given =
            [("sslmode", &self.mode), ("sslrootcert", &self.rootcert), ("sslcert", &self.cert), ("sslkey", &self.key)];
        match given.iter().find(|(_, value)| value.is_some()) {
            Some((name, _)) => Err(TargetError::TlsParamWithoutTls(name)),
            None => Ok(()),
        }
    }
}

/// `[USER[:PASSWORD]@]HOST:PORT,…/SERVICE[/DB]` of a sentinel URL.
fn parse_sentinel(body: &str, ours: Ours) -> Result<SentinelTarget, TargetError> {
    // The user information first, up to the last `@`: a password may hold a raw `/`.
    let (userinfo, rest) = match body.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, body),
    };
    let (hosts, path) = rest.split_once('/').ok_or(TargetError::SentinelShape)?;
    let (username, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, pass)) => (non_empty(percent_decode(user)), non_empty(percent_decode(pass))),
            None => (non_empty(percent_decode(info)), None),
        },
        None => (None, None),
    };
    let mut sentinels = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        sentinels.push(host_port(host, SENTINEL_PORT)?);
    }
    let mut parts = path.split('/');
    let service = parts.next().filter(|s| !s.is_empty()).ok_or(TargetError::SentinelShape)?;
    let db = match parts.next().filter(|s| !s.is_empty()) {
        Some(db) => {
            db.parse().map_err(|_| TargetError::SentinelPart { what: "database number", value: db.to_owned() })?
        }
        None => 0,
    };
    if sentinels.is_empty() || parts.next().is_some() {
        return Err(TargetError::SentinelShape);
    }
    Ok(SentinelTarget {
        sentinels,
        service: percent_decode(service),
        db,
        username,
        password,
        sentinel_username: ours.sentinel_username,
        sentinel_password: ours.sentinel_password,
    })
}

/// `HOST[:PORT]` (IPv6 in brackets), with `default` when no port is given.
pub(crate) fn host_port(text: &str, default: u16) -> Result<(String, u16), TargetError> {
    let bad = || TargetError::SentinelPart { what: "host", value: text.to_owned() };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().map_err(|_| bad())?,
        None => default,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// `%XX` escapes decoded; text whose escapes are broken is kept as written
/// (the redis client then meets it as it is).
fn percent_decode(text: &str) -> String {
    url::percent_decode(text).unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn sentinel(url: &str) -> SentinelTarget {
        match Target::parse(url).unwrap().topology {
            Topology::Sentinel(target) => target,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_urls_reach_the_redis_client_as_written() {
        let target = Target::parse("redis://:pw@cache:6380/2?protocol=resp3").unwrap();
        assert!(target.tls.is_none());
        assert!(
            matches!(target.topology, Topology::Single(ref url) if url == "redis://:pw@cache:6380/2?protocol=resp3")
        );
        let target = Target::parse("redis+cluster://a:7000, b:7001").unwrap();
        assert!(
            matches!(target.topology, Topology::Cluster(ref nodes) if nodes == &["redis://a:7000", "redis://b:7001"])
        );
    }

    #[test]
    fn tls_parameters_are_taken_out_and_refused_on_plain_urls() {
        let target = Target::parse("rediss://cache:6380/0?sslmode=require&protocol=resp3").unwrap();
        assert!(matches!(target.topology, Topology::Single(ref url) if url == "rediss://cache:6380/0?protocol=resp3"));
        assert_eq!(target.tls.unwrap().verify, crate::tls::Verify::None);
        let err = Target::parse("redis://cache?sslmode=verify-full").unwrap_err().to_string();
        assert!(err.contains("sslmode") && err.contains("rediss://"), "{err}");
        let err = Target::parse("rediss://cache?sslmode=disable").unwrap_err().to_string();
        assert!(err.contains("redis://"), "{err}");
        let err = Target::parse("rediss+cluster://a:1?sslmode=verify-ca").unwrap_err().to_string();
        assert!(err.contains("verify-ca"), "{err}");
        let err = Target::parse("rediss://a:1?sslmode=verify-ca").unwrap_err().to_string();
        assert!(err.contains("needs sslrootcert"), "verify-ca against the public roots checks nothing: {err}");
    }

    #[test]
    fn a_missing_certificate_file_names_its_parameter() {
        let err = Target::parse("rediss://cache?sslrootcert=/nonexistent/ca.pem").unwrap_err().to_string();
        assert!(err.contains("sslrootcert") && err.contains("/nonexistent/ca.pem"), "{err}");
        let err = Target::parse("rediss://cache?sslcert=/nonexistent/c.pem").unwrap_err().to_string();
        assert!(err.contains("sslkey"), "a certificate without its key: {err}");
    }

    #[test]
    fn sentinel_urls_name_sentinels_service_database_and_credentials() {
        let target = sentinel("redis+sentinel://app:p%40ss@s1:26379,s2,[::1]:5000/mymaster/3?sentinel_password=sp");
        assert_eq!(target.sentinels, [("s1".into(), 26379), ("s2".into(), 26379), ("::1".into(), 5000)]);
        assert_eq!((target.service.as_str(), target.db), ("mymaster", 3));
        assert_eq!((target.username.as_deref(), target.password.as_deref()), (Some("app"), Some("p@ss")));
        assert_eq!(target.sentinel_password.as_deref(), Some("sp"));
        assert_eq!(sentinel("redis+sentinel://s1/svc").db, 0);
        for bad in ["redis+sentinel://s1", "redis+sentinel://s1/", "redis+sentinel:///svc", "redis+sentinel://s1/svc/x"]
        {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse("redis://cache?sentinel_password=x").is_err());
        // A raw `/` in the password stays in the password, never in a host shown in an error.
        let target = sentinel("redis+sentinel://app:pa/ss@s1/svc");
        assert_eq!((target.password.as_deref(), target.service.as_str()), (Some("pa/ss"), "svc"));
        // `#insecure` would silently turn every check off.
        assert!(Target::parse("rediss://cache:6380#insecure").is_err());
        assert!(Target::parse("mongodb://x").is_err());
    }
}
