//! The program's one error type and the exit codes, mapped in one place.

use std::path::PathBuf;

use thiserror::Error;

use crate::inventory::InventoryError;
use crate::journal::JournalError;
use crate::report::status::{Standing, StatusReport};
use crate::report::{Halt, HostReport, Report};
use crate::templates::RenderError;

/// Exit codes, documented in the README. A finished run maps its report
/// to one of these in [`report_exit_code`]; errors through `Error::exit_code`.
pub mod exit {
    /// Every selected host ended ok, changed or skipped; for `plan`, also
    /// nothing would change.
    pub const SUCCESS: i32 = 0;
    /// An unexpected internal error.
    pub const INTERNAL: i32 = 1;
    /// `plan` only: every host was probed and some step would change (as
    /// Terraform's `plan -detailed-exitcode`), so CI can tell drift apart.
    pub const CHANGES_PENDING: i32 = 2;
    /// Bad command line, inventory or template: nothing was contacted.
    /// Not 2, which `plan` gives to pending changes (sysexits' EX_USAGE).
    pub const USAGE: i32 = 64;
    /// More hosts failed preflight than `rollout.max_failures` allows:
    /// nothing was changed anywhere.
    pub const PREFLIGHT: i32 = 3;
    /// The rollout ran to the end, but some host failed or was unreachable
    /// (within the failure budget).
    pub const HOST_FAILED: i32 = 4;
    /// The failure budget was exceeded mid-rollout: later batches were not
    /// started.
    pub const STOPPED: i32 = 5;
    /// Paused after the canary batch (`--pause-after-canary`).
    pub const PAUSED: i32 = 6;
    /// Ctrl-C or SIGTERM: the current steps finished, the journal was
    /// saved and the locks released; `apply --resume` goes on.
    pub const INTERRUPTED: i32 = 130;
    /// A second Ctrl-C: stopped at once; hosts in flight are `unknown`.
    pub const ABORTED: i32 = 131;
}

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("--limit {pattern:?} is not a valid pattern: {reason}")]
    Limit { pattern: String, reason: String },
    #[error("--limit {0:?} matches no agent in the inventory")]
    LimitMatchesNothing(String),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("no run to resume: there is no journal in {}", .0.display())]
    NothingToResume(PathBuf),
    #[error(
        "{hosts} host(s) at once need about {needed} open files, but this shell allows {limit} \
         (ulimit -n): raise it (ulimit -n {needed}), or work on fewer hosts at once with --forks"
    )]
    OpenFiles {
        hosts: usize,
        needed: u64,
        limit: u64,
    },
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot write the report file {}: {source}", path.display())]
    ReportFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Inventory(_)
            | Error::Limit { .. }
            | Error::LimitMatchesNothing(_)
            | Error::Render(_)
            | Error::Journal(_)
            | Error::NothingToResume(_)
            | Error::OpenFiles { .. } => exit::USAGE,
            Error::Output(_) | Error::ReportFile { .. } => exit::INTERNAL,
        }
    }
}

/// The exit code of a run that went to its end (or was stopped).
pub fn report_exit_code(report: &Report) -> i32 {
    match &report.halt {
        Some(Halt::Preflight(_)) => exit::PREFLIGHT,
        Some(Halt::Budget(_) | Halt::Mesh(_)) => exit::STOPPED,
        Some(Halt::Paused(_)) => exit::PAUSED,
        Some(Halt::Interrupted(_)) => exit::INTERRUPTED,
        Some(Halt::Aborted(_)) => exit::ABORTED,
        None if report.hosts.iter().any(HostReport::failed) => exit::HOST_FAILED,
        None if report.dry_run && report.hosts.iter().any(HostReport::changed) => {
            exit::CHANGES_PENDING
        }
        None => exit::SUCCESS,
    }
}

/// The exit code of `status`, with `plan`'s meanings: 0 every host was
/// read and is converged, 2 drift, 4 some host could not be read, some
/// step would be refused, or Calico does not network on some host.
pub fn status_exit_code(report: &StatusReport) -> i32 {
    match report.standing() {
        Standing::Converged => exit::SUCCESS,
        Standing::Drifted => exit::CHANGES_PENDING,
        Standing::Unhealthy | Standing::Refused | Standing::Unreadable => exit::HOST_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Status, host_with as host};

    #[test]
    fn exit_codes() {
        use Status::*;
        let report = |hosts, halt| Report {
            dry_run: false,
            hosts,
            halt,
            estimate: None,
        };
        let plan = |hosts| Report {
            dry_run: true,
            ..report(hosts, None)
        };
        let fine = host(&[Ok, Changed, Skipped, Ok, Ok]);
        let bad = host(&[Ok, Failed, Skipped, Skipped, Skipped]);
        let gone = host(&[Unreachable; 5]);
        let code = |r: &Report| report_exit_code(r);
        assert_eq!(code(&report(vec![fine.clone()], None)), 0);
        assert_eq!(code(&report(vec![fine.clone(), bad], None)), 4);
        assert_eq!(code(&report(vec![gone.clone()], None)), 4);
        assert_eq!(
            code(&report(
                vec![gone.clone()],
                Some(Halt::Preflight("x".into()))
            )),
            3
        );
        assert_eq!(
            code(&report(
                vec![fine.clone(), gone.clone()],
                Some(Halt::Budget("x".into()))
            )),
            5
        );
        assert_eq!(
            code(&report(vec![fine.clone()], Some(Halt::Aborted("x".into())))),
            131
        );
        // plan: drift is 2, an unprobed host outranks it, nothing to do is 0.
        let converged = host(&[Ok; 5]);
        assert_eq!(code(&plan(vec![converged.clone()])), 0);
        assert_eq!(code(&plan(vec![converged.clone(), fine.clone()])), 2);
        assert_eq!(code(&plan(vec![fine, gone, converged])), 4);
    }

    #[test]
    fn status_exit_codes_say_whether_the_fleet_is_converged() {
        use crate::report::status::{DriftStatus, HostStatus, Unread, converged_host};
        let fleet = |hosts| StatusReport {
            inventory_path: "cluster.yaml".into(),
            inventory_sha256: String::new(),
            hosts,
        };
        let with = |name: &str, status: DriftStatus| {
            let mut h = converged_host(name);
            if let Ok(s) = &mut h.seen {
                s.drift[1].status = status;
            }
            h
        };
        let gone = HostStatus {
            host: "pub-1".into(),
            seen: Err(Unread {
                unreachable: true,
                reason: "timed out".into(),
            }),
        };
        let code = |r: &StatusReport| status_exit_code(r);
        assert_eq!(
            code(&fleet(vec![
                converged_host("a1"),
                with("a2", DriftStatus::Skipped)
            ])),
            0
        );
        assert_eq!(
            code(&fleet(vec![
                converged_host("a1"),
                with("a2", DriftStatus::Drift)
            ])),
            2
        );
        assert_eq!(code(&fleet(vec![with("a2", DriftStatus::Refused)])), 4);
        assert_eq!(code(&fleet(vec![with("a2", DriftStatus::Drift), gone])), 4);
    }
}
