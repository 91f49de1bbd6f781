//! Private PostgreSQL servers for tests: `initdb` in a temporary directory and
//! `postgres` on a free loopback port, stopped and cleaned up on drop.
//! `NEX_SESSION_TEST_POSTGRES_URL` points the tests at an existing server instead.
//! A missing installation fails the test with the command that installs it.
//!
//! PostgreSQL refuses to run as root; when the tests do, the server runs as the
//! `postgres` user the Debian package creates (through `setpriv`).
//!
//! A server can also speak TLS only ([`PostgresServer::start_private_tls`]), with
//! certificates from [`crate::tls::Pki`], optionally requiring client certificates,
//! and be made read-only and writable again ([`PostgresServer::set_read_only`])
//! to stand for a demoted and a promoted primary. `psql` and readiness checks go
//! through the server's Unix socket, so they work whatever TCP demands.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::CertFiles;

const INSTALL: &str = "install it with: apt-get update && apt-get install -y postgresql";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The directory of `initdb` and `postgres`: the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres); {INSTALL}"),
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A command for a PostgreSQL program, as the `postgres` user when we are root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// What a TLS server asks of its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    /// TLS only, any client (`hostssl … trust`).
    NotRequired,
    /// TLS only, and a client certificate signed by the server's CA whose common
    /// name is the user (`hostssl … cert`).
    Required,
}

/// One private `postgres` server (its data survives `stop`/`start`).
pub struct PostgresServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// `-c` settings of every start (TLS files).
    settings: Vec<String>,
}

impl PostgresServer {
    /// A fresh private server that accepts only TLS connections over TCP
    /// (`hostnossl … reject`), with `server` as its certificate and `ca` as the CA
    /// it trusts for client certificates.
    pub fn start_private_tls(server: &CertFiles, ca: &Path, clients: ClientCerts) -> Self {
        let mut this = Self::init();
        let tls = this.dir.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        for (from, to) in [(&server.cert, "server.pem"), (&server.key, "server.key"), (&ca.to_path_buf(), "ca.pem")] {
            std::fs::copy(from, tls.join(to)).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
        // PostgreSQL refuses a key others can read, and runs as `postgres` when we are root.
        set_mode(&tls.join("server.key"), 0o600);
        let auth = match clients {
            ClientCerts::NotRequired => "trust",
            ClientCerts::Required => "cert",
        };
        let hba =
            format!("local all all trust\nhostnossl all all 0.0.0.0/0 reject\nhostssl all all 127.0.0.1/32 {auth}\n");
        std::fs::write(this.dir.join("data").join("pg_hba.conf"), hba).unwrap();
        give_to_postgres(&this.dir);
        this.settings = vec![
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", tls.join("server.pem").display()),
            format!("ssl_key_file={}", tls.join("server.key").display()),
            format!("ssl_ca_file={}", tls.join("ca.pem").display()),
        ];
        this.start();
        this
    }

    /// A fresh private server: a new cluster in a temporary directory, started.
    pub fn start_private() -> Self {
        let mut server = Self::init();
        server.start();
        server
    }

    /// A new cluster in a temporary directory, not started.
    fn init() -> Self {
        let bin = bin_dir();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nex-postgres-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let status = Command::new("chown").arg("postgres:postgres").arg(&dir).status().expect("chown runs");
            assert!(status.success(), "could not give {} to the postgres user", dir.display());
        }
        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "nex", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("could not run initdb: {e}; {INSTALL}"));
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        Self { child: None, port, dir, bin, settings: Vec::new() }
    }

    /// (Re)starts the server on the same port and data.
    pub fn start(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cmd = command(&self.bin.join("postgres"));
            cmd.arg("-D")
                .arg(self.dir.join("data"))
                .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", self.dir.display()))
                // Commits still wait for their WAL write, so a killed process loses
                // no acknowledged write; only a power cut would (not tested here).
                .args(["-c", "fsync=off"])
                .args(self.settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("could not start postgres: {e}; {INSTALL}"));
            loop {
                if self.is_ready() {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: the previous server's backends may still be going away
                }
                assert!(Instant::now() < deadline, "postgres on port {} did not become ready", self.port);
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(Instant::now() < deadline, "postgres on port {} did not start", self.port);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn is_ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "nex", "-d", "postgres"])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Stops the server as a crash would: `pg_ctl stop -m immediate` aborts every
    /// server process at once, without a checkpoint (the next start runs crash
    /// recovery from the WAL). SIGKILL of the postmaster alone would leave its
    /// backends serving their open connections for a while.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = command(&self.bin.join("pg_ctl"))
                .arg("stop")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP to the postmaster and each of its processes):
    /// connections stay open but nothing answers, as with a hung host.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Sends `signal` to the postmaster and its children, by explicit process ids.
    fn signal(&self, signal: &str) {
        let postmaster = self.child.as_ref().expect("the server runs").id();
        let children = Command::new("ps").args(["-o", "pid=", "--ppid", &postmaster.to_string()]).output().unwrap();
        let mut pids: Vec<u32> =
            String::from_utf8_lossy(&children.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect();
        pids.push(postmaster);
        // Only real process ids: never 0 or 1, which `kill` would take as groups or init.
        pids.retain(|pid| *pid > 1);
        let status = Command::new("kill").arg(signal).args(pids.iter().map(u32::to_string)).status().unwrap();
        assert!(status.success(), "kill {signal} {pids:?} failed");
    }

    /// Runs SQL with `psql` as the superuser `nex`, returning what it printed (rows
    /// only, unaligned: `SELECT 1, 2` gives `1|2`); panics with psql's message if it fails.
    /// It goes through the Unix socket, and its transactions are never read-only
    /// (it stands for the operator, who may write to any server).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .env("PGOPTIONS", "-c default_transaction_read_only=off")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .args(["-U", "nex", "-d", "postgres", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Makes every new transaction on the server read-only (`on`), as on a
    /// demoted primary, or writable again: `default_transaction_read_only` in
    /// `postgresql.auto.conf`, then a reload, which open connections see at their
    /// next transaction.
    pub fn set_read_only(&self, read_only: bool) {
        let value = if read_only { "on" } else { "off" };
        self.psql(&format!("ALTER SYSTEM SET default_transaction_read_only = {value}"));
        self.psql("SELECT pg_reload_conf()");
        // The reload is asynchronous: wait until a new session sees it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "nex", "-d", "postgres", "-c", "SHOW transaction_read_only"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim() != value)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "the server on port {} did not turn read_only={value}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://nex@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Makes `dir` and everything in it the `postgres` user's, when the server runs as it.
fn give_to_postgres(dir: &Path) {
    if is_root() {
        let status = Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir).status().expect("chown runs");
        assert!(status.success(), "could not give {} to the postgres user", dir.display());
    }
}

/// A URL for tests: the env var's server, or a private one (kept alive by the guard).
pub fn single_node() -> (String, Option<PostgresServer>) {
    match std::env::var("NEX_SESSION_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = PostgresServer::start_private();
            (server.url(), Some(server))
        }
    }
}
