//! The real `nex-demo` binary as a child process: what an operator runs, with its
//! own environment, its stderr kept in a file, and its memory read from /proc.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nex_testkit::http::Browser;

/// A running `nex-demo`; killed when dropped.
pub struct DemoProcess {
    child: Child,
    pub addr: SocketAddr,
    stderr: PathBuf,
}

/// A `nex-demo` command with a clean environment: only `PATH` and what the test adds.
pub fn demo_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nex-demo"));
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// A free loopback port (bound and released; the demo binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl DemoProcess {
    /// Starts `command` on a free port, stderr into a temporary file, and waits until it answers.
    pub async fn start(mut command: Command, name: &str) -> Self {
        let port = free_port();
        let stderr = std::env::temp_dir().join(format!("nex-demo-test-{}-{name}.stderr", std::process::id()));
        let file = std::fs::File::create(&stderr).unwrap();
        let child = command.env("PORT", port.to_string()).stdout(Stdio::null()).stderr(file).spawn().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let demo = Self { child, addr, stderr };
        let browser = Browser::new(addr);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !browser.is_up().await {
            assert!(Instant::now() < deadline, "the demo did not start; stderr: {}", demo.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        demo
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most 20 s, a hang guard, not a speed check) until stderr contains `needle`.
    pub async fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.stderr();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A field of /proc/PID/status in KiB, e.g. `VmHWM` (peak resident memory).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}
