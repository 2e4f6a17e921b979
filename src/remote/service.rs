//! systemd units on the agent: restart, reload, enable, and the unit's
//! own last words when something fails.

use std::time::Duration;

use super::Script;
use crate::shell::Cmd;

/// What the unit's own processes logged last, on stderr: systemctl only
/// says "see journalctl", and the operator needs the daemon's own reason.
/// `_SYSTEMD_UNIT=` leaves out systemd's messages about the unit.
pub fn journal_tail(unit: &str) -> String {
    format!(
        "{} >&2 2>/dev/null || true",
        Cmd::new("journalctl")
            .arg(format!("_SYSTEMD_UNIT={unit}.service"))
            .arg("-n")
            .arg("3")
            .arg("--no-pager")
            .arg("-o")
            .arg("cat")
    )
}

/// Restarts a unit. Clears systemd's start limit first: docker.service
/// allows three starts a minute, and an earlier attempt (or a revert)
/// must not make this one fail. The agent ends it at `deadline`, which
/// does not cancel systemd's own job: whoever restarts the unit next
/// (a revert) replaces it.
pub fn restart(unit: &str, deadline: Duration) -> Script {
    Script::new(
        format!("systemctl restart {unit}"),
        deadline,
        format!(
            "{} >/dev/null 2>&1 || true\nif ! {}; then\n  {}\n  exit 1\nfi\n",
            Cmd::new("systemctl")
                .arg("reset-failed")
                .arg("--")
                .arg(unit),
            Cmd::new("systemctl").arg("restart").arg("--").arg(unit),
            journal_tail(unit),
        ),
    )
}

pub fn daemon_reload(deadline: Duration) -> Script {
    Script::new(
        "systemctl daemon-reload",
        deadline,
        Cmd::new("systemctl").arg("daemon-reload").to_string(),
    )
}

pub fn enable(unit: &str, deadline: Duration) -> Script {
    Script::new(
        format!("systemctl enable {unit}"),
        deadline,
        Cmd::new("systemctl")
            .arg("enable")
            .arg("--")
            .arg(unit)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::testing::{sh_with_path, stderr, stub};

    #[test]
    fn a_failed_restart_says_what_the_unit_said() {
        let bin = tempfile::tempdir().unwrap();
        let log = bin.path().join("calls");
        stub(
            bin.path(),
            "systemctl",
            &format!(
                "echo \"$@\" >> {}; [ \"$1\" = restart ] && exit 1; exit 0",
                log.display()
            ),
        );
        stub(
            bin.path(),
            "journalctl",
            "echo 'dockerd: invalid character in daemon.json'",
        );
        let s = restart("docker", Duration::from_secs(60));
        assert_eq!(s.what, "systemctl restart docker");
        let out = sh_with_path(&s.text, b"", Some(bin.path()));
        assert!(!out.status.success());
        assert!(stderr(&out).contains("invalid character"), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "reset-failed -- docker\nrestart -- docker\n"
        );
    }
}
