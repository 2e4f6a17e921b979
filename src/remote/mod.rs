//! Every script that runs on an agent, one file per kind: the probe,
//! file installs and their undo, services, health gates, containers, the
//! lock, and the run history. Each is a [`Script`]: shell text, what the
//! report calls it, and a deadline that the agent enforces itself
//! (coreutils `timeout`) as well as the controller.
//!
//! Every value is quoted; file contents arrive on stdin or from the stage
//! area, never in argv. Each script has a test that runs it under `sh`
//! with stub commands.

pub mod batch;
pub mod bird;
pub mod container;
pub mod files;
pub mod gate;
pub mod history;
pub mod lock;
pub mod probe;
pub mod service;
pub mod status;
pub mod tls;

#[cfg(test)]
pub(crate) mod testing;

use std::time::Duration;

use crate::shell::Cmd;

/// How long the agent's `timeout` waits after its TERM before it KILLs.
pub const KILL_AFTER: Duration = Duration::from_secs(5);
/// What the controller adds on top of the agent's own bound: the kill
/// grace, and slack for the wire.
const CLIENT_SLACK: Duration = Duration::from_secs(5);

/// Makes TERM, HUP and INT end the script through its `EXIT` trap.
const EXIT_ON_SIGNALS: &str = "trap 'exit 143' TERM; trap 'exit 129' HUP; trap 'exit 130' INT\n";

/// The exit statuses of coreutils `timeout` when it had to stop the command.
pub const TIMED_OUT_EXITS: [u32; 2] = [124, 137];

/// One remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub text: String,
    /// What the report calls it, e.g. "systemctl restart docker".
    pub what: String,
    pub deadline: Duration,
}

impl Script {
    pub fn new(what: impl Into<String>, deadline: Duration, text: impl Into<String>) -> Self {
        Script {
            text: text.into(),
            what: what.into(),
            deadline,
        }
    }

    /// The command line for the SSH channel: the script under `sh`,
    /// bounded on the agent, through `sudo -n` when the login user is not
    /// root (never prompting). The login shell is not assumed to be POSIX.
    ///
    /// `timeout` ends the script with TERM, and dash (Debian's, Ubuntu's
    /// `sh`) runs no `EXIT` trap on a signal it does not trap: the temporary
    /// files a script cleans up on exit, some holding a client key, would
    /// stay. Trapping the signals into an `exit` makes the `EXIT` traps run.
    pub fn command_line(&self, sudo: bool) -> String {
        let bounded = Cmd::new("timeout")
            .arg("-k")
            .arg(secs(KILL_AFTER))
            .arg(secs(self.deadline))
            .arg("sh")
            .arg("-c")
            .arg(format!("{EXIT_ON_SIGNALS}{}", self.text))
            .to_string();
        if sudo {
            format!("sudo -n -- {bounded}")
        } else {
            bounded
        }
    }

    /// How long the controller waits before it gives up on the channel.
    pub fn client_deadline(&self) -> Duration {
        self.deadline + KILL_AFTER + CLIENT_SLACK
    }
}

/// Whole seconds, rounded up, as `timeout` takes them.
pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{}s", s.max(1))
}

/// Writes `text` to `path` atomically (temp file in the same folder, then
/// rename), creating the folder. The text travels quoted in the script.
pub(crate) fn write_file(path: &str, text: &str) -> String {
    let (dir, _) = path.rsplit_once('/').expect("remote paths are absolute");
    format!(
        "mkdir -p -- {dir} && printf '%s' {text} > {tmp} && mv -f -- {tmp} {path}\n",
        dir = crate::shell::quote(if dir.is_empty() { "/" } else { dir }),
        text = crate::shell::quote(text),
        tmp = crate::shell::quote(&format!("{path}.tmp")),
        path = crate::shell::quote(path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_bounded_on_the_agent_and_quoted() {
        let s = Script::new("probe", Duration::from_millis(29_500), "echo 'hi'");
        assert_eq!(
            s.command_line(false),
            format!("timeout -k 5s 30s sh -c \"{EXIT_ON_SIGNALS}echo 'hi'\"")
        );
        let argv = shlex::split(&s.command_line(true)).unwrap();
        assert_eq!(
            argv,
            [
                "sudo",
                "-n",
                "--",
                "timeout",
                "-k",
                "5s",
                "30s",
                "sh",
                "-c",
                &format!("{EXIT_ON_SIGNALS}echo 'hi'")
            ]
        );
        assert_eq!(s.client_deadline(), Duration::from_millis(39_500));
    }

    #[test]
    fn the_agent_ends_a_command_at_its_deadline() {
        let s = Script::new("sleep", Duration::from_secs(1), "sleep 30; echo late");
        let started = std::time::Instant::now();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(s.command_line(false))
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(TIMED_OUT_EXITS.contains(&(out.status.code().unwrap() as u32)));
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn a_script_cut_off_at_its_deadline_still_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        let s = Script::new(
            "holding a secret",
            Duration::from_secs(1),
            format!(
                "d={}; mkdir -- \"$d\"; trap 'rm -rf -- \"$d\"' EXIT; : > \"$d/key\"; sleep 30",
                secret.display()
            ),
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(s.command_line(false))
            .output()
            .unwrap();
        assert!(TIMED_OUT_EXITS.contains(&(out.status.code().unwrap() as u32)));
        assert!(!secret.exists(), "the EXIT trap ran on timeout's TERM");
    }

    #[test]
    fn written_files_arrive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b/state");
        let path = path.to_str().unwrap();
        let out = testing::sh(&write_file(path, "it's\n$(x)"), b"");
        assert!(out.status.success());
        assert_eq!(std::fs::read(path).unwrap(), b"it's\n$(x)");
    }
}
