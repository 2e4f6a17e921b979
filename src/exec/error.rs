//! What can go wrong on one host, as values: the report shows each as a
//! status and a reason, and the run goes on with the other hosts.

use std::time::Duration;

use thiserror::Error;

use crate::report::Status;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StepError {
    /// The connection dropped, or could not be made again.
    #[error("{0}")]
    Unreachable(String),
    /// A command ran past its deadline; the agent ended it.
    #[error("{what} did not finish within {}s", .after.as_secs())]
    TimedOut { what: String, after: Duration },
    /// The agent refused a change before making it.
    #[error("{0}")]
    Refused(String),
    /// A command failed, or a service did not come back.
    #[error("{0}")]
    Failed(String),
    /// Another run holds the host's lock now: this run stops touching it.
    #[error("{0}")]
    LockLost(String),
}

impl StepError {
    pub fn status(&self) -> Status {
        match self {
            StepError::Unreachable(_) => Status::Unreachable,
            _ => Status::Failed,
        }
    }

    /// The same error, its message put in context.
    pub fn context(self, doing: impl std::fmt::Display) -> StepError {
        match self {
            StepError::Unreachable(m) => StepError::Unreachable(format!("{doing}: {m}")),
            StepError::Refused(m) => StepError::Refused(format!("{doing}: {m}")),
            StepError::Failed(m) => StepError::Failed(format!("{doing}: {m}")),
            // These already say what they were doing.
            other => other,
        }
    }

    /// Whether the host may still be touched: a revert needs the lock.
    pub fn may_revert(&self) -> bool {
        !matches!(self, StepError::LockLost(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_the_operator_needs_them() {
        let hang = StepError::TimedOut {
            what: "systemctl restart docker".into(),
            after: Duration::from_secs(60),
        };
        assert_eq!(
            hang.to_string(),
            "systemctl restart docker did not finish within 60s"
        );
        assert_eq!(hang.status(), Status::Failed);
        let gone = StepError::Unreachable("connection lost".into()).context("writing x");
        assert_eq!(gone.to_string(), "writing x: connection lost");
        assert_eq!(gone.status(), Status::Unreachable);
        assert!(!StepError::LockLost("taken".into()).may_revert());
    }
}
