//! Opening one connection: plain or TLS, to whichever host of the URL answers,
//! and learning which one it was.
//!
//! The pool and the client cache's listener both connect through [`Target`], so
//! they speak the same TLS to the same hosts. The plain path stays what it was
//! before TLS existed: `Connector::Plain` is matched once per new connection and
//! hands `NoTls` to `tokio-postgres`; nothing is added per statement.
//!
//! # Which host answered
//!
//! `tokio-postgres` tries the URL's hosts in order and does not say which one it
//! connected to. It does call `MakeTlsConnect::make_tls_connect` with the host's
//! name once per host whose TCP connection opened, just before the handshake (for
//! `NoTls` too, where it does nothing), and stops at the first host that
//! accepts the connection. So a wrapper notes the last name it was given: that is
//! the host that answered. Its port comes from the URL when that name is listed
//! once; when one name is listed with several ports (several servers on one
//! machine), the server is asked `SELECT inet_server_port()`, one more round trip
//! on that new connection only. A wrapped `TlsConnect` notes whether the
//! handshake ran, which `sslmode=prefer` leaves to the server.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::diagnose::ConnectFailed;
use crate::tls::{SslMode, Tls};

/// How connections are made: the plain path, or TLS with the store's rustls configuration.
#[derive(Clone)]
enum Connector {
    Plain,
    Tls(MakeRustlsConnect),
}

/// Where and how to connect: the parsed URL, its connector, and the labels the
/// endpoint is written with.
#[derive(Clone)]
pub(crate) struct Target {
    config: Config,
    connector: Connector,
    /// The TLS settings, for the endpoint and for explaining failures.
    tls: Tls,
}

/// The host a new connection reached, as `host:port (how)`; never a password.
pub(crate) type Endpoint = String;

impl Target {
    /// `config` with its TLS mode set from `tls` (the URL's `sslmode` was taken
    /// out of it, see `tls::params`).
    pub(crate) fn new(mut config: Config, tls: Tls) -> Self {
        config.ssl_mode(tls.postgres_mode());
        let connector = match &tls.config {
            Some(rustls) => Connector::Tls(MakeRustlsConnect::new((**rustls).clone())),
            None => Connector::Plain,
        };
        Self { config, connector, tls }
    }

    /// The parsed connection settings.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Opens a connection and spawns the task that drives it (it ends when the
    /// client is dropped or the server goes away; the client then reports closed).
    /// A failure is explained (see `diagnose.rs`).
    pub(crate) async fn connect(&self) -> Result<(Client, Endpoint), ConnectFailed> {
        self.connect_raw(None).await.map_err(|err| ConnectFailed::new(err, &self.tls))
    }

    /// As [`Target::connect`], for a listener: the payload of every notification
    /// the connection receives is sent to `notifications`.
    pub(crate) async fn connect_listening(
        &self,
        notifications: UnboundedSender<String>,
    ) -> Result<(Client, Endpoint), ConnectFailed> {
        self.connect_raw(Some(notifications)).await.map_err(|err| ConnectFailed::new(err, &self.tls))
    }

    async fn connect_raw(
        &self,
        notifications: Option<UnboundedSender<String>>,
    ) -> Result<(Client, Endpoint), tokio_postgres::Error> {
        let mut host = None;
        let (client, tls) = match &self.connector {
            // `NoTls` itself reaches tokio-postgres, which then never attempts TLS.
            Connector::Plain => {
                let (client, connection) = self.config.connect(NoteHost { inner: NoTls, host: &mut host }).await?;
                spawn(connection, notifications);
                (client, false)
            }
            Connector::Tls(tls) => {
                let handshake = AtomicBool::new(false);
                let inner = NoteHandshake { inner: tls.clone(), handshake: &handshake };
                let (client, connection) = self.config.connect(NoteHost { inner, host: &mut host }).await?;
                spawn(connection, notifications);
                (client, handshake.load(Ordering::Relaxed))
            }
        };
        let endpoint = self.endpoint(&client, &Noted { host: host.unwrap_or_default(), tls }).await?;
        Ok((client, endpoint))
    }

    /// `host:port (how)` of the connection just opened.
    async fn endpoint(&self, client: &Client, noted: &Noted) -> Result<Endpoint, tokio_postgres::Error> {
        let how = match (noted.tls, self.tls.written) {
            (true, mode) => format!("TLS, sslmode={mode}"),
            (false, SslMode::Disable) => "no TLS".to_owned(),
            (false, mode) => format!("no TLS: the server does not offer it, sslmode={mode}"),
        };
        let hosts = self.config.get_hosts();
        let ports = self.config.get_ports();
        let port_of = |i: usize| ports.get(i).or_else(|| ports.first()).copied().unwrap_or(5432);
        let named: Vec<usize> = (0..hosts.len()).filter(|i| host_name(hosts.get(*i)) == noted.host).collect();
        let place = match named.as_slice() {
            // Only `hostaddr` in the URL: tokio-postgres names no host then.
            [] if noted.host.is_empty() => "a hostaddr of the URL".to_owned(),
            [] => noted.host.clone(),
            [i, rest @ ..] if rest.iter().all(|j| port_of(*j) == port_of(*i)) => match hosts.get(*i) {
                Some(Host::Unix(path)) => format!("{} (Unix socket)", path.display()),
                _ => format!("{}:{}", noted.host, port_of(*i)),
            },
            _ => {
                // One name, several ports: only the server knows which it is.
                let port: Option<i32> = client.query_one("SELECT inet_server_port()", &[]).await?.try_get(0)?;
                match port {
                    Some(port) => format!("{}:{port}", noted.host),
                    // Several Unix sockets: the server has no port to tell.
                    None if noted.host.is_empty() => "a Unix socket of the URL".to_owned(),
                    None => noted.host.clone(),
                }
            }
        };
        Ok(format!("{place} ({how})"))
    }
}

/// The name `tokio-postgres` gives `make_tls_connect` for `host` (empty for a Unix socket).
fn host_name(host: Option<&Host>) -> &str {
    match host {
        Some(Host::Tcp(name)) => name,
        _ => "",
    }
}

/// What connecting noted: the host that answered, and whether TLS was negotiated.
struct Noted {
    host: String,
    tls: bool,
}

/// A connector that notes the host it is asked to connect to (see the module docs).
struct NoteHost<'a, M> {
    inner: M,
    host: &'a mut Option<String>,
}

impl<M: MakeTlsConnect<Socket>> MakeTlsConnect<Socket> for NoteHost<'_, M> {
    type Stream = M::Stream;
    type TlsConnect = M::TlsConnect;
    type Error = M::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        *self.host = Some(domain.to_owned());
        self.inner.make_tls_connect(domain)
    }
}

/// A TLS connector that notes whether the handshake started (the server accepted
/// TLS), for each host tried.
struct NoteHandshake<'a, M> {
    inner: M,
    handshake: &'a AtomicBool,
}

impl<'a, M: MakeTlsConnect<Socket>> MakeTlsConnect<Socket> for NoteHandshake<'a, M> {
    type Stream = M::Stream;
    type TlsConnect = Handshake<'a, M::TlsConnect>;
    type Error = M::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        self.handshake.store(false, Ordering::Relaxed);
        let inner = self.inner.make_tls_connect(domain)?;
        Ok(Handshake { inner, handshake: self.handshake })
    }
}

/// One host's `TlsConnect`, noting that its handshake started.
struct Handshake<'a, T> {
    inner: T,
    handshake: &'a AtomicBool,
}

impl<T: TlsConnect<Socket>> TlsConnect<Socket> for Handshake<'_, T> {
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = T::Future;

    fn connect(self, stream: Socket) -> Self::Future {
        self.handshake.store(true, Ordering::Relaxed);
        self.inner.connect(stream)
    }
}

/// Drives a connection until the client is dropped or the server goes away,
/// handing notifications to `notifications` if given.
fn spawn<T>(mut connection: Connection<Socket, T>, notifications: Option<UnboundedSender<String>>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match notifications {
        None => {
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "PostgreSQL session store connection ended");
                }
            });
        }
        Some(tx) => {
            tokio::spawn(async move {
                while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    if let AsyncMessage::Notification(n) = message {
                        if tx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    }
}
