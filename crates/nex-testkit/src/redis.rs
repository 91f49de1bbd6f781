//! Private Redis servers for tests: one node, or a 3-master cluster, on free
//! loopback ports, stopped and cleaned up on drop. `NEX_SESSION_TEST_REDIS_URL`
//! points the single-node tests at an existing server instead. A missing
//! `redis-server` fails the test with the command that installs it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::CertFiles;

const INSTALL: &str = "install it with: apt-get update && apt-get install -y redis-server redis-tools";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn require(program: &str) {
    let found = Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    assert!(found, "{program} is not installed; {INSTALL}");
}

/// How a server takes TLS: its certificate, the CA it trusts for client
/// certificates, and the client certificate `redis-cli` then presents.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub server: CertFiles,
    /// `Some`: clients must present a certificate (`--tls-auth-clients yes`).
    pub client: Option<CertFiles>,
}

impl ServerTls {
    /// The server's arguments: TLS on `port`, no plain port.
    fn args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = vec!["--port".into(), "0".into(), "--tls-port".into(), port.to_string()];
        for (flag, path) in [
            ("--tls-cert-file", &self.server.cert),
            ("--tls-key-file", &self.server.key),
            ("--tls-ca-cert-file", &self.ca),
        ] {
            args.push(flag.into());
            args.push(path.display().to_string());
        }
        args.push("--tls-auth-clients".into());
        args.push(if self.client.is_some() { "yes" } else { "no" }.into());
        args
    }

    /// `redis-cli`'s arguments to reach such a server.
    fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["--tls".into(), "--cacert".into(), self.ca.display().to_string()];
        if let Some(client) = &self.client {
            args.extend([
                "--cert".into(),
                client.cert.display().to_string(),
                "--key".into(),
                client.key.display().to_string(),
            ]);
        }
        args
    }
}

/// One redis-server process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    tls: Option<ServerTls>,
}

impl RedisServer {
    fn spawn(port: u16, dir: PathBuf, extra: Vec<String>) -> Self {
        Self::spawn_with(port, dir, extra, None)
    }

    fn spawn_with(port: u16, dir: PathBuf, extra: Vec<String>, tls: Option<ServerTls>) -> Self {
        require("redis-server");
        require("redis-cli");
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { child: None, port, dir, extra, tls };
        server.start();
        server
    }

    /// A private server that accepts TLS connections only, on `port`.
    pub fn start_tls(tls: ServerTls) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nex-redis-tls-{}-{port}", std::process::id()));
        Self::spawn_with(port, dir, Vec::new(), Some(tls))
    }

    /// A private server that replicates `master` (plain).
    pub fn start_replica_of(master: &RedisServer) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nex-redis-replica-{}-{port}", std::process::id()));
        let extra = vec!["--replicaof".to_owned(), "127.0.0.1".to_owned(), master.port.to_string()];
        Self::spawn(port, dir, extra)
    }

    /// `redis-cli` aimed at this server (with its TLS arguments), given `args`;
    /// its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(tls) = &self.tls {
            cmd.args(tls.cli_args());
        }
        let out = cmd.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Up and answering. A TLS server is asked by `redis-cli` too, unless its
    /// certificate is one a client must refuse (an expired one, in a test of
    /// that refusal): then an accepted TCP connection has to do.
    fn ping(&self) -> bool {
        if self.cli(&["ping"]) == "PONG" {
            return true;
        }
        self.tls.is_some() && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && {
            // Listening already; give it a moment to finish loading.
            std::thread::sleep(Duration::from_millis(200));
            true
        }
    }

    /// A fresh private server.
    pub fn start_private() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nex-redis-{}-{port}", std::process::id()));
        Self::spawn(port, dir, Vec::new())
    }

    /// A private server that keeps its data across `stop`/`start` (append-only file, fsync always).
    pub fn start_private_durable() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nex-redis-aof-{}-{port}", std::process::id()));
        let extra = ["--appendonly", "yes", "--appendfsync", "always"];
        Self::spawn(port, dir, extra.iter().map(|s| (*s).to_owned()).collect())
    }

    /// (Re)starts the process on the same port.
    pub fn start(&mut self) {
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            Some(tls) => cmd.args(tls.args(self.port)),
            None => cmd.args(["--port", &self.port.to_string()]),
        };
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("could not start redis-server: {e}; {INSTALL}")));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ping() {
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer PING", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes the process (SIGSTOP): its connections stay open but nothing
    /// answers, as with a hung host or a network partition. `stop` and drop
    /// still end it (SIGKILL works on a stopped process).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen process run again (SIGCONT); it then answers what it was sent.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the redis-server process is running");
        let status = Command::new("kill").arg(signal).arg(pid.to_string()).status().expect("`kill` runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A URL for single-node tests: the env var's server, or a private one (kept alive by the guard).
pub fn single_node() -> (String, Option<RedisServer>) {
    match std::env::var("NEX_SESSION_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = RedisServer::start_private();
            (server.url(), Some(server))
        }
    }
}

/// Three cluster-enabled masters joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Three masters that speak TLS only, between themselves too (`tls-cluster`).
    pub fn start_tls(tls: &ServerTls) -> Self {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<&ServerTls>) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_port();
                let dir = std::env::temp_dir().join(format!("nex-redis-cluster-{}-{port}", std::process::id()));
                let mut extra = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ];
                if tls.is_some() {
                    extra.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
                }
                RedisServer::spawn_with(port, dir, extra.iter().map(|s| (*s).to_owned()).collect(), tls.cloned())
            })
            .collect();
        let mut create = Command::new("redis-cli");
        if let Some(tls) = tls {
            create.args(tls.cli_args());
        }
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create.args(["--cluster-replicas", "0", "--cluster-yes"]).output().expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node.cli(&["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster did not reach cluster_state:ok");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self { nodes }
    }

    /// `redis+cluster://127.0.0.1:P1,…` (plain; TLS tests write their own `rediss+cluster://`).
    pub fn url(&self) -> String {
        format!("redis+cluster://{}", self.hosts())
    }

    /// `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn hosts(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        nodes.join(",")
    }
}
