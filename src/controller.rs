//! The machine this run is on: its name, its clock, run ids, and whether
//! a run started here is still alive. Locks and the journal both use
//! these to tell a live run from a dead one.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

/// `<hostname>-<pid>-<unix secs>`. It names folders and containers on
/// agents, so it keeps to `[A-Za-z0-9._-]`.
pub fn new_run_id() -> String {
    let host: String = local_hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let host = host.trim_start_matches(['.', '-']);
    let host = if host.is_empty() { "controller" } else { host };
    format!("{host}-{}-{}", std::process::id(), unix_now())
}

/// The operator machine's name. The kernel's answer comes first: in a
/// container /etc/hostname may be stale or absent.
pub fn local_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The soft limit on open files of this process (`ulimit -n`), when the
/// system says.
pub fn open_files_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// Where this process's pids mean something: the boot and the pid
/// namespace. Two containers can share a hostname, never both of these.
/// Empty when the system does not say.
pub fn process_space() -> String {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pidns = fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if boot.trim().is_empty() || pidns.is_empty() {
        return String::new();
    }
    format!("{}/{pidns}", boot.trim())
}

/// Whether a calico-rollout process with this pid runs in this process
/// space. A pid reused by another program does not count; one started
/// through a link or under another name does, when it runs this binary.
pub fn run_alive_here(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let same_binary = || {
        let theirs = fs::read_link(format!("/proc/{pid}/exe"));
        let ours = fs::read_link("/proc/self/exe");
        matches!((theirs, ours), (Ok(a), Ok(b)) if a == b)
    };
    let named = || match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline
            .split(|&b| b == 0)
            .next()
            .is_some_and(|argv0| String::from_utf8_lossy(argv0).contains("calico-rollout")),
        Err(_) => false,
    };
    same_binary() || named()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_safe_names() {
        let id = new_run_id();
        assert!(crate::history::valid_run_id(&id), "{id}");
        assert!(id.contains(&format!("-{}-", std::process::id())));
    }

    #[test]
    fn the_open_files_limit_is_read() {
        let limit = open_files_limit().expect("Linux says");
        assert!(limit >= 16, "{limit}");
    }

    #[test]
    fn liveness_is_about_calico_rollout_processes() {
        assert!(run_alive_here(std::process::id()));
        // pid 1 exists but is not calico-rollout.
        assert!(!run_alive_here(1));
        assert!(!run_alive_here(u32::MAX - 1));
    }
}
