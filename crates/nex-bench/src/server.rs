//! A server on its own thread with a one-thread tokio runtime, whose CPU time we can read.

use std::net::SocketAddr;
use std::time::Duration;

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    tid: Option<u32>,
}

impl Server {
    /// Starts `kind` on `threads` runtime threads (1: a current-thread runtime).
    pub(crate) fn start(name: &str, kind: crate::apps::Kind, threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        // Named threads let `perf report --comm srv-<variant>` separate the servers.
        let spawned = std::thread::Builder::new().name(format!("srv-{name}")).spawn(move || {
            let built = if threads <= 1 {
                tokio::runtime::Builder::new_current_thread().enable_all().build()
            } else {
                tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
            };
            let runtime = match built {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else { return };
                let Ok(addr) = listener.local_addr() else { return };
                let app = match crate::apps::build(&kind).await {
                    Ok(app) => app,
                    Err(e) => {
                        eprintln!("nex-bench: {e}");
                        return;
                    }
                };
                let _ = tx.send((addr, crate::pin::current_tid()));
                let _ = match app {
                    crate::apps::App::Routed(router) => axum::serve(listener, router).await,
                    crate::apps::App::Around(service) => {
                        axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(service))
                            .await
                    }
                };
            });
        });
        if let Err(e) = spawned {
            eprintln!("nex-bench: could not start a server thread: {e}");
            std::process::exit(1)
        }
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((addr, tid)) => Self { addr, tid },
            Err(_) => {
                eprintln!("nex-bench: a server did not start");
                std::process::exit(1)
            }
        }
    }

    /// Pins the server's (one) runtime thread to `core`.
    pub(crate) fn pin(&self, core: usize) -> Result<(), String> {
        let tid = self.tid.ok_or("the server thread's id is unknown")?;
        crate::pin::pin_thread(tid, core)
    }

    /// CPU time (user + system) the server thread has used so far.
    pub(crate) fn cpu_time(&self) -> Duration {
        let Some(tid) = self.tid else { return Duration::ZERO };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else { return Duration::ZERO };
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return Duration::ZERO };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
    }

    /// How many times the server thread has gone to sleep so far (its voluntary
    /// context switches: waiting for a socket, a timer or a wake-up), 0 if unknown.
    pub(crate) fn sleeps(&self) -> u64 {
        let Some(tid) = self.tid else { return 0 };
        let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) else { return 0 };
        status.lines().find_map(|line| line.strip_prefix("voluntary_ctxt_switches:")?.trim().parse().ok()).unwrap_or(0)
    }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
