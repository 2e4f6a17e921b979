//! The operator's own health checks (`rollout.checks`): each runs on the
//! agent after one step changed, and has the same meaning as a built-in
//! gate.

use std::time::Duration;

use crate::step::StepName;

/// One entry of `rollout.checks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCheck {
    /// Unique among the checks; names the check in plans and reports.
    pub name: String,
    /// The step whose change it follows.
    pub after: StepName,
    pub probe: CheckProbe,
    /// The deadline of one run of the check on the agent.
    pub timeout: Duration,
}

/// What an operator check does on the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckProbe {
    /// A shell command, run by `sh -c`: exit 0 passes.
    Command(String),
    /// An `http://` or `https://` URL fetched on the agent: a 2xx passes.
    Http(String),
}

impl OperatorCheck {
    /// A check's deadline when the inventory gives none.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}
