//! Small validated value types used by the inventory, and the checks behind
//! them. Every constructor validates, so a value of one of these types is
//! always well formed, whoever built it.
//!
//! Each type or family of checks has its own file; this one holds the shared
//! error, [`InvalidValue`], and re-exports the rest.

mod batches;
mod image;
mod jump;
mod names;
mod network;
mod remote_path;
mod scalars;
#[cfg(test)]
mod tests;

use std::fmt;

pub use batches::{BatchSize, FailureBudget};
pub use image::ImageRef;
pub(crate) use jump::{JumpSpec, proxy_jump};
pub(crate) use names::{agent_name, env_key, env_value, file_name, user_name, zone};
pub use network::Endpoint;
pub(crate) use network::{address, cluster_store, download_url, port, sha256};
pub use remote_path::RemotePath;
pub(crate) use scalars::{boolean, parse_duration, parse_wait};

/// Why a string is not a valid value of some kind. Renders as
/// `<what> "<value>" <problem>`, e.g.
/// `remote path "opt/cni" must be absolute (start with /)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    what: String,
    value: String,
    problem: String,
}

impl InvalidValue {
    pub(crate) fn new(what: &str, value: &str, problem: impl Into<String>) -> Self {
        InvalidValue {
            what: what.to_string(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    /// The same problem, described as a value of `what` (for example the
    /// inventory key it was read from).
    pub(crate) fn named(mut self, what: &str) -> Self {
        self.what = what.to_string();
        self
    }
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.what, self.value, self.problem)
    }
}

impl std::error::Error for InvalidValue {}
