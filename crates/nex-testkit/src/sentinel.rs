//! A private Redis Sentinel deployment for tests: one master, one replica and
//! three sentinels (`redis-server --sentinel`, what Debian's `redis-sentinel`
//! runs) on free loopback ports, quick to fail over (the master is judged down
//! after 2 s: short, yet long enough that a loaded test machine does not fail
//! over by mistake). Stopped and cleaned up on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::RedisServer;

/// The service name the sentinels monitor.
pub const SERVICE: &str = "nexsessions";

/// A master, its replica, and three sentinels watching them.
pub struct SentinelSet {
    /// `[master, replica]` as started; after a failover the replica is the master.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
}

struct Sentinel {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SentinelSet {
    /// Starts the five processes and waits until the replica is in sync and
    /// every sentinel knows the master and the other two sentinels.
    pub fn start() -> Self {
        let master = RedisServer::start_private();
        let replica = RedisServer::start_replica_of(&master);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !replica.cli(&["info", "replication"]).contains("master_link_status:up") {
            assert!(Instant::now() < deadline, "the replica did not sync with the master");
            std::thread::sleep(Duration::from_millis(50));
        }
        let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port)).collect();
        let set = Self { servers: vec![master, replica], sentinels };
        let deadline = Instant::now() + Duration::from_secs(30);
        for sentinel in &set.sentinels {
            loop {
                let info = sentinel_cli(sentinel.port, &["sentinel", "master", SERVICE]);
                // Knows the replica and both other sentinels: ready to vote.
                let ready = field(&info, "num-slaves") == Some("1") && field(&info, "num-other-sentinels") == Some("2");
                if ready {
                    break;
                }
                assert!(Instant::now() < deadline, "sentinel on {} did not see the whole set: {info}", sentinel.port);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        set
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/SERVICE`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// The port of the server the sentinels name as master now.
    pub fn master_port(&self) -> Option<u16> {
        let out = sentinel_cli(self.sentinels[0].port, &["sentinel", "get-master-addr-by-name", SERVICE]);
        out.lines().nth(1).and_then(|port| port.trim().parse().ok())
    }

    /// Waits until every write the master acknowledged reached the replica
    /// (`WAIT 1`): what "acknowledged and replicated" means in the tests.
    pub fn wait_replicated(&self, master: usize) {
        let acked = self.servers[master].cli(&["wait", "1", "5000"]);
        assert_eq!(acked, "1", "the replica did not acknowledge the master's writes");
    }

    /// Asks the sentinels for a planned failover (`SENTINEL FAILOVER`): the
    /// replica is promoted and the old master, still running, becomes its replica.
    pub fn failover(&self) {
        let out = sentinel_cli(self.sentinels[0].port, &["sentinel", "failover", SERVICE]);
        assert_eq!(out, "OK", "SENTINEL FAILOVER refused");
    }

    /// Connections the sentinels have accepted so far, all three together
    /// (`total_connections_received`), less the one each `redis-cli` call makes.
    pub fn connections_received(&self) -> u64 {
        self.sentinels
            .iter()
            .map(|s| {
                let stats = sentinel_cli(s.port, &["info", "stats"]);
                let total = stats
                    .lines()
                    .find_map(|l| l.strip_prefix("total_connections_received:"))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .expect("INFO stats has total_connections_received");
                total - 1
            })
            .sum()
    }

    /// Waits until the server on `port` answers `ROLE` with `role` (`master`, `slave`).
    pub fn await_role(&self, port: u16, role: &str, within: Duration) {
        let server = self.servers.iter().find(|s| s.port == port).expect("one of the set's servers");
        let deadline = Instant::now() + within;
        while server.cli(&["role"]).lines().next() != Some(role) {
            assert!(Instant::now() < deadline, "the server on {port} did not become a {role} within {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the sentinels name a master other than the server on `old_port`.
    pub fn await_failover(&self, old_port: u16, within: Duration) -> u16 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(port) = self.master_port().filter(|p| *p != old_port) {
                return port;
            }
            assert!(Instant::now() < deadline, "the sentinels did not fail over within {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Sentinel {
    fn start(master_port: u16) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nex-sentinel-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        // Sentinels rewrite their file as they learn: it must be theirs to write.
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {SERVICE} 2000\nsentinel failover-timeout {SERVICE} 5000\n\
             sentinel parallel-syncs {SERVICE} 1\n",
            dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start redis-server --sentinel: {e}; install it with: apt-get update && apt-get install -y redis-server redis-tools"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while sentinel_cli(port, &["ping"]) != "PONG" {
            assert!(Instant::now() < deadline, "sentinel on {port} did not answer PING");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, dir }
    }
}

fn sentinel_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The value after `name` in redis-cli's one-item-per-line answer of `SENTINEL MASTER`.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = info.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name {
            return lines.next().map(str::trim);
        }
    }
    None
}
