//! The program's one error type and the exit codes, mapped in one place.

use std::path::PathBuf;

use thiserror::Error;

use crate::inventory::InventoryError;
use crate::journal::JournalError;

/// Exit codes, documented in the README. A finished rollout maps its report
/// to one of these in `Outcome::exit_code`; errors map through `Error::exit_code`.
pub mod exit {
    /// Every selected host ended ok, changed or skipped.
    pub const SUCCESS: i32 = 0;
    /// An unexpected internal error.
    pub const INTERNAL: i32 = 1;
    /// Bad command line, inventory or template: nothing was contacted.
    pub const USAGE: i32 = 2;
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
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    #[error("cannot read template folder {path}: {reason}")]
    TemplateDir { path: PathBuf, reason: String },
    #[error("cannot read {path}: {reason}")]
    LocalFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("no run to resume: there is no journal in {}", .0.display())]
    NothingToResume(PathBuf),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Inventory(_)
            | Error::Limit { .. }
            | Error::LimitMatchesNothing(_)
            | Error::Template { .. }
            | Error::TemplateDir { .. }
            | Error::LocalFile { .. }
            | Error::Journal(_)
            | Error::NothingToResume(_) => exit::USAGE,
            Error::Output(_) => exit::INTERNAL,
        }
    }
}
