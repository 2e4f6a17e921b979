//! The transport seam: how the rollout runs a command on one host.
//!
//! The rollout only ever needs "run this shell string, feed it these bytes on
//! stdin, give me stdout/stderr and the exit status". Keeping the seam that
//! small lets the SSH implementation own every connection concern, and lets
//! tests drive the executor with an in-memory transport.

mod auth;
mod bastion;
pub mod host_certs;
pub mod known_hosts;
pub mod ssh;
#[cfg(test)]
pub mod testing;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

/// What a remote command reads on stdin.
#[derive(Debug, Clone, Copy)]
pub enum Stdin<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Streamed from a local file in chunks, never loaded whole into memory.
    File(&'a Path),
}

/// The result of one remote command. A missing exit status (the channel
/// closed, or the command died of a signal) is kept as `None` and counts as
/// failure.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub exit_status: Option<u32>,
    pub exit_signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }

    /// The last few lines of stderr (or stdout when stderr is empty): what a
    /// failed cell in the report shows.
    pub fn error_tail(&self) -> String {
        let pick = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &self.stderr
        } else {
            &self.stdout
        };
        let text = String::from_utf8_lossy(pick);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        let status = match (&self.exit_status, &self.exit_signal) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "no exit status".to_string(),
        };
        if tail.is_empty() {
            status
        } else {
            format!("{tail} ({status})")
        }
    }
}

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connecting to {addr} timed out after {secs}s")]
    ConnectTimeout { addr: String, secs: u64 },
    #[error(
        "host key for {host} is not in {known_hosts} (fingerprint {fingerprint}); \
         add it, or use host_key_checking: accept-new"
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error(
        "HOST KEY CHANGED for {host}: server offered {fingerprint}, which does not match {known_hosts}; \
         refusing to connect (possible man-in-the-middle)"
    )]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("host certificate of {host} refused: {reason} (authorities from {known_hosts})")]
    HostCertificate {
        host: String,
        reason: String,
        known_hosts: String,
    },
    /// The bastion in front of the host could not be used.
    #[error("through bastion {bastion}: {reason}")]
    Bastion {
        bastion: String,
        reason: String,
        unreachable: bool,
    },
    #[error("cannot use known_hosts file {path}: {reason}")]
    KnownHostsFile { path: String, reason: String },
    #[error("authentication as {user} failed (tried: {tried})")]
    Auth { user: String, tried: String },
    #[error("cannot load key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("ssh: {0}")]
    Ssh(String),
    /// The connection went away: the host is unreachable, not failed.
    #[error("{addr}: connection lost {doing}")]
    Lost { addr: String, doing: String },
    /// The command ran past its deadline; its channel was closed and the
    /// process signalled.
    #[error("did not finish within {}s", .after.as_secs())]
    TimedOut { after: Duration },
    #[error("reading {path}: {reason}")]
    LocalFile { path: String, reason: String },
}

impl TransportError {
    /// Whether the host could not be reached at all (as opposed to
    /// answering with a refusal or failing a command).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Connect { .. }
                | TransportError::ConnectTimeout { .. }
                | TransportError::Ssh(_)
                | TransportError::Lost { .. }
                | TransportError::Bastion {
                    unreachable: true,
                    ..
                }
        )
    }
}

/// An open session to one host. One per host, reused for every command.
pub trait Transport: Send + Sync + 'static {
    /// Runs one shell command string. The caller quotes every value in it.
    /// After `deadline` the command is given up on: its channel is closed
    /// and `TimedOut` returned, so no command can hang a run.
    fn exec(
        &self,
        command: &str,
        stdin: Stdin<'_>,
        deadline: Duration,
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send;

    /// Whether the connection is known to be gone.
    fn is_closed(&self) -> bool;

    /// Closes the session politely.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Opens sessions. The SSH connector is the production one.
pub trait Connector: Send + Sync + 'static {
    type Session: Transport;

    fn connect(
        &self,
        target: &crate::inventory::Agent,
    ) -> impl Future<Output = Result<Self::Session, TransportError>> + Send;
}
