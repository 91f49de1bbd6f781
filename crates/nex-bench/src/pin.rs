//! Keeps the server and the load generator on separate cores (`taskset`, from util-linux).
//!
//! On a 2-core machine an unpinned server thread and wrk get moved between the
//! cores by the scheduler, sometimes onto the same one for a moment; pinning
//! takes that out of the noise. Every variant is pinned the same way.

use std::process::{Command, Stdio};

/// The cores to use: the server's and the load generator's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cores {
    pub(crate) server: usize,
    pub(crate) load: usize,
}

/// Two separate cores, or `None` (with the reason) when pinning is not possible.
pub(crate) fn cores() -> Result<Cores, String> {
    let n = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    if n < 2 {
        return Err(format!("only {n} core(s)"));
    }
    if Command::new("taskset").arg("--version").stdout(Stdio::null()).status().is_err() {
        return Err("taskset not found (apt-get install util-linux)".into());
    }
    Ok(Cores { server: 0, load: 1 })
}

/// Pins one thread (by its Linux thread id) to `core`.
pub(crate) fn pin_thread(tid: u32, core: usize) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-p", "-c", &core.to_string(), &tid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset could not pin thread {tid} to core {core}"))
    }
}

/// The calling thread's Linux thread id.
pub(crate) fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}
