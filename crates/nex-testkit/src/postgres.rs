//! Private PostgreSQL servers for tests: `initdb` in a temporary directory and
//! `postgres` on a free loopback port, stopped and cleaned up on drop.
//! `NEX_SESSION_TEST_POSTGRES_URL` points the tests at an existing server instead.
//! A missing installation fails the test with the command that installs it.
//!
//! PostgreSQL refuses to run as root; when the tests do, the server runs as the
//! `postgres` user the Debian package creates (through `setpriv`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// One private `postgres` server (its data survives `stop`/`start`).
pub struct PostgresServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PostgresServer {
    /// A fresh private server: a new cluster in a temporary directory, started.
    pub fn start_private() -> Self {
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
        let mut server = Self { child: None, port, dir, bin };
        server.start();
        server
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
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "nex", "-d", "postgres"])
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
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "nex", "-d", "postgres", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
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
