//! The per-agent lock that keeps two rollouts from changing the same host
//! at once: a one-line JSON file on the agent (the scripts that take,
//! refresh and release it are `remote::lock`), and how its answers read.
//!
//! A live run refreshes its locks on a timer (a heartbeat). A lock with no
//! heartbeat for [`STALE_AFTER`] belongs to a dead run and may be taken
//! over; so may one whose owner ran on this same machine and whose
//! process is gone.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use thiserror::Error;

use crate::controller::{local_hostname, process_space, run_alive_here, unix_now};

/// On tmpfs, so an agent's reboot clears it along with whatever the holder
/// was doing there.
pub const LOCK_PATH: &str = "/run/lock/calico-rollout.lock";

/// How often a run refreshes the locks it holds.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// A lock without a heartbeat for this long belongs to a dead run and may
/// be taken over: eight heartbeats missed in a row. A run that is alive
/// never gets there; a run that cannot reach the agent for that long
/// cannot touch it either, and stops when it finds the lock gone.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// Exit status of acquire and refresh when the caller does not hold the
/// lock (EX_TEMPFAIL: try again later).
pub const HELD_EXIT: i32 = 75;

/// Who takes the lock: the run and, for the operator who finds it held,
/// where that run came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub id: String,
    pub user: String,
    /// The operator machine's hostname.
    pub host: String,
    pub pid: u32,
    /// Where `pid` means something (`controller::process_space`).
    pub space: String,
}

impl LockOwner {
    pub fn current(run_id: &str) -> Self {
        let user = ["USER", "LOGNAME"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        LockOwner {
            id: run_id.to_string(),
            user,
            host: local_hostname(),
            pid: std::process::id(),
            space: process_space(),
        }
    }
}

/// The run holding a lock, as its lock file and the agent's clock describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Holder {
    pub owner: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// Empty in a lock an older calico-rollout took.
    pub space: String,
    /// Unix seconds by the agent's clock, as are `refreshed` and `now`.
    pub since: u64,
    pub refreshed: u64,
    /// No heartbeat for `STALE_AFTER`.
    pub stale: bool,
    /// When the script looked: ages are measured against this, not the
    /// operator's clock, so clock skew between the two does not matter.
    pub now: u64,
}

impl Holder {
    /// A run started in this process space whose process is gone: its
    /// lock is stale at once, whatever its last heartbeat. The hostname
    /// alone would not do: two containers can share one.
    pub fn dead_here(&self) -> bool {
        !self.space.is_empty()
            && self.space == process_space()
            && self.pid != 0
            && !run_alive_here(self.pid)
    }

    /// Whether the holder may still be working on the agent.
    pub fn looks_alive(&self) -> bool {
        !self.stale && !self.dead_here()
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = if self.now == 0 { unix_now() } else { self.now };
        write!(
            f,
            "locked by run {} ({}@{}, pid {}) since {}, last refreshed {} ago",
            self.owner,
            self.user,
            self.host,
            self.pid,
            utc(self.since),
            ago(now.saturating_sub(self.refreshed)),
        )?;
        if self.stale {
            write!(
                f,
                " (stale: no heartbeat for over {})",
                humantime::format_duration(STALE_AFTER)
            )?;
        }
        Ok(())
    }
}

/// `2026-11-22 09:40:00 UTC`.
fn utc(secs: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(secs);
    let text = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// The age of a heartbeat, to the second under a minute and to the minute
/// above.
fn ago(secs: u64) -> String {
    let rounded = if secs < 60 { secs } else { secs - secs % 60 };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// The caller holds the lock.
    Acquired,
    /// The caller holds the lock, taken over from this dead run.
    StaleReplaced(Holder),
    /// Another run holds it.
    Held(Holder),
    Free,
}

#[derive(Debug, Error)]
pub enum LockError {
    #[error("unexpected answer from the lock script on the agent: {0:?}")]
    Unexpected(String),
}

/// Reads the one line a lock script printed. A lock file that is not ours
/// to read still yields a holder, named by its raw first line.
pub fn parse(stdout: &str) -> Result<LockState, LockError> {
    let Some(line) = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with("lock "))
    else {
        return Err(LockError::Unexpected(stdout.trim().to_string()));
    };
    let holder = |json: &str| {
        serde_json::from_str::<Holder>(json).unwrap_or_else(|_| Holder {
            owner: format!(
                "(unreadable lock {:?})",
                json.chars().take(200).collect::<String>()
            ),
            ..Holder::default()
        })
    };
    match line {
        "lock acquired" => Ok(LockState::Acquired),
        "lock free" => Ok(LockState::Free),
        _ => {
            if let Some(json) = line.strip_prefix("lock held ") {
                Ok(LockState::Held(holder(json)))
            } else if let Some(json) = line.strip_prefix("lock stale-replaced ") {
                Ok(LockState::StaleReplaced(Holder {
                    stale: true,
                    ..holder(json)
                }))
            } else {
                Err(LockError::Unexpected(line.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_each_line() {
        assert_eq!(parse("lock acquired\n").unwrap(), LockState::Acquired);
        assert_eq!(parse("lock free\n").unwrap(), LockState::Free);
        let json = r#"{"owner":"r1","user":"u","host":"h","pid":3,"since":10,"refreshed":20,"now":30,"stale":false}"#;
        let h = Holder {
            owner: "r1".into(),
            user: "u".into(),
            host: "h".into(),
            pid: 3,
            space: String::new(),
            since: 10,
            refreshed: 20,
            stale: false,
            now: 30,
        };
        assert_eq!(
            parse(&format!("lock held {json}\n")).unwrap(),
            LockState::Held(h.clone())
        );
        assert_eq!(
            parse(&format!("lock stale-replaced {json}")).unwrap(),
            LockState::StaleReplaced(Holder { stale: true, ..h })
        );
        // Spaced JSON, as a person might write it, reads the same.
        let spaced = r#"lock held {"owner": "r1", "pid": 3, "refreshed": 20}"#;
        let LockState::Held(h) = parse(spaced).unwrap() else {
            panic!()
        };
        assert_eq!((h.owner.as_str(), h.pid, h.refreshed), ("r1", 3, 20));
        assert!(parse("").is_err());
        assert!(parse("sudo: a password is required\n").is_err());
        assert!(parse("lock sideways").is_err());
    }

    #[test]
    fn holder_reads_as_a_sentence() {
        let h = Holder {
            owner: "host1-4242-1795340400".into(),
            user: "alice".into(),
            host: "laptop".into(),
            pid: 4242,
            space: String::new(),
            since: 1_795_340_400,
            refreshed: 1_795_340_400 + 60,
            stale: false,
            now: 1_795_340_400 + 185,
        };
        assert_eq!(
            h.to_string(),
            "locked by run host1-4242-1795340400 (alice@laptop, pid 4242) \
             since 2026-11-22 09:40:00 UTC, last refreshed 2m ago"
        );
        let h = Holder {
            stale: true,
            now: h.refreshed + 2 * 3600 + 5 * 60 + 7,
            ..h
        };
        assert!(
            h.to_string()
                .ends_with("last refreshed 2h 5m ago (stale: no heartbeat for over 2m)"),
            "{h}"
        );
        assert_eq!(ago(59), "59s");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn a_run_of_this_machine_that_is_gone_is_dead() {
        let mine = Holder {
            host: local_hostname(),
            pid: std::process::id(),
            space: process_space(),
            ..Holder::default()
        };
        assert!(mine.looks_alive());
        let gone = Holder {
            pid: u32::MAX - 1,
            ..mine.clone()
        };
        assert!(gone.dead_here() && !gone.looks_alive());
        // Another container with the same hostname: its pids mean nothing
        // here, and only the lock's heartbeat tells.
        let same_name = Holder {
            space: "another-boot/pid:[4026531836]".into(),
            ..gone.clone()
        };
        assert!(same_name.looks_alive());
        // A lock an older calico-rollout took says no process space.
        let older = Holder {
            space: String::new(),
            ..gone.clone()
        };
        assert!(older.looks_alive());
        let elsewhere = Holder {
            host: "some-other-machine".into(),
            space: "its-boot/pid:[4026531836]".into(),
            ..gone
        };
        assert!(elsewhere.looks_alive());
        assert!(
            !Holder {
                stale: true,
                ..elsewhere
            }
            .looks_alive()
        );
    }
}
