//! Progress events. The rollout emits them; only the UI layer decides how
//! they look (bars on a terminal, plain lines elsewhere).

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
    BatchStarted {
        index: usize,
        total: usize,
        canary: bool,
        hosts: &'a [String],
    },
    StepFinished {
        host: &'a str,
        step: StepName,
        status: Status,
        message: &'a str,
    },
    /// Something the operator should know right away (a halt, a retry).
    Notice(&'a str),
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: Event<'_>);
    /// The run is over: clear any live display before the report prints.
    fn finish(&self) {}
}
