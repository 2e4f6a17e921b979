//! Progress events. The rollout emits them; only the UI layer decides how
//! they look (bars on a terminal, plain lines elsewhere).

use std::time::Duration;

use super::Status;
use crate::step::StepName;

#[derive(Debug, Clone)]
pub enum Event<'a> {
    PreflightStarted {
        hosts: usize,
    },
    Connected {
        host: &'a str,
    },
    StageStarted {
        hosts: usize,
    },
    /// Before a batch: the hosts already done are checked for their BGP
    /// sessions (the barrier between batches).
    MeshCheck {
        before_batch: usize,
        total: usize,
        hosts: usize,
    },
    BatchStarted {
        index: usize,
        total: usize,
        canary: bool,
        hosts: &'a [String],
    },
    /// The batches begin: how many hosts they will work on, and how long
    /// the plan says they take.
    RolloutStarted {
        hosts: usize,
        estimate: Duration,
    },
    /// A host starts on something that takes a while, e.g. "restarting
    /// docker, waiting for the cluster store", that must end within
    /// `deadline` from now.
    Waiting {
        host: &'a str,
        step: StepName,
        what: &'a str,
        deadline: Duration,
    },
    /// What a host's current wait still waits on changed, e.g. "waiting
    /// for 2 BGP peers: 10.0.0.12 Connect, 10.0.0.13 Active".
    Progress {
        host: &'a str,
        what: &'a str,
    },
    /// A remote command starts (shown with `-v`). `what` is its short
    /// label; never its stdin.
    Command {
        host: &'a str,
        step: Option<StepName>,
        what: &'a str,
        deadline: Duration,
    },
    StepFinished {
        host: &'a str,
        step: StepName,
        status: Status,
        message: &'a str,
    },
    /// A host's turn in the rollout is over.
    HostFinished {
        host: &'a str,
        failed: bool,
    },
    /// Something the operator should know right away (a halt, a retry).
    Notice(&'a str),
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: Event<'_>);
    /// The run is over: clear any live display before the report prints.
    fn finish(&self) {}
}
