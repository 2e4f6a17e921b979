//! The outcome of a run: one row per host, one cell per step, and the exit
//! code that summarises it. `render` prints it for people, `json` and
//! `junit` for machines.

mod diffs;
mod events;
mod hosts;
mod json;
mod junit;
mod render;
pub mod status;
mod status_view;

use serde::Serialize;

use crate::diff::Diff;
use crate::step::StepName;

pub use events::{Event, Reporter};
pub use json::{to_json, to_json_with};
pub use junit::to_junit;
pub use render::{render_plan, render_table};
pub use status_view::render_status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
    /// The change failed its health gate and was taken back.
    Reverted,
    /// The run was aborted while the step was under way: its effect on the
    /// host is not known.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::Reverted => "reverted",
            Status::Unknown => "unknown",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Unreachable | Status::Reverted | Status::Unknown
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: StepName,
    pub status: Status,
    pub message: String,
    /// Whether the step restarted a service on this host.
    pub restarted: bool,
    /// How many restarts of a service it took, a revert's included.
    pub restarts: u32,
    /// For `plan`: what the change does, file by file and container by
    /// container. Environment values are masked unless asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<Diff>,
    /// How long the executor spent on the step on this host; 0 when it
    /// did not run (ok, skipped, decided by the plan).
    pub duration_ms: u64,
    /// Every gate a change waits for, in order, with how far it got: a
    /// step's failure names one reason, this says which gates held. For
    /// `plan`, and steps the run never reached, each is `not_reached`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// Why a gate the operator might expect is off (no Felix health
    /// endpoint, no BGP with CALICO_NETWORKING_BACKEND=none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One gate of a step, as CI and scripts read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateResult {
    /// Which gate: `felix`, `bgp`, `plugin`, `etcd-gateway`, `docker`,
    /// `mesos`, `container:NAME`, `check:NAME`.
    pub gate: String,
    /// What its passing means, as `plan` says it.
    pub means: String,
    #[serde(flatten)]
    pub outcome: GateOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GateOutcome {
    /// `note`: a part of it that could not be checked (a Mesos agent
    /// whose API needs authentication answers /health only).
    Passed {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// `reason`: what its last reading said.
    Failed { reason: String },
    /// The step stopped before it, or never ran.
    NotReached,
}

impl GateOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            GateOutcome::Passed { .. } => "passed",
            GateOutcome::Failed { .. } => "failed",
            GateOutcome::NotReached => "not reached",
        }
    }
}

impl GateResult {
    /// The operator's own check this gate is, by name.
    pub fn check(&self) -> Option<&str> {
        self.gate.strip_prefix("check:")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub steps: Vec<StepResult>,
}

impl HostReport {
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.status.is_failure())
    }

    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.status == Status::Changed)
    }
}

/// Why a rollout ended before every host was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// Too many hosts failed preflight: nothing was changed anywhere.
    Preflight(String),
    /// The failure budget ran out mid-rollout.
    Budget(String),
    /// The hosts already done have BGP sessions down: the next batch would
    /// cut more of the mesh.
    Mesh(String),
    /// Stopped after the canary batch, as asked; `--resume` goes on.
    Paused(String),
    /// Ctrl-C or SIGTERM: in-flight steps finished, nothing new started.
    Interrupted(String),
    /// A second Ctrl-C: stopped at once; steps in flight are `unknown`.
    Aborted(String),
}

impl Halt {
    /// The `--json` name of the halt.
    pub fn kind(&self) -> &'static str {
        match self {
            Halt::Preflight(_) => "preflight",
            Halt::Budget(_) => "budget",
            Halt::Mesh(_) => "mesh",
            Halt::Paused(_) => "paused",
            Halt::Interrupted(_) => "interrupted",
            Halt::Aborted(_) => "aborted",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Halt::Preflight(why)
            | Halt::Budget(why)
            | Halt::Mesh(why)
            | Halt::Paused(why)
            | Halt::Interrupted(why)
            | Halt::Aborted(why) => why,
        }
    }
}

/// What a report is about, for the machine-readable forms: which run, of
/// which inventory, when.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `apply`, `plan` or `rollback`.
    pub mode: &'static str,
    pub run_id: String,
    pub inventory_path: std::path::PathBuf,
    pub inventory_sha256: String,
    pub started: std::time::SystemTime,
    pub finished: std::time::SystemTime,
}

/// How long `apply` would take, as `plan` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub batches: usize,
    /// Hosts in the largest batch.
    pub largest: usize,
    pub total: std::time::Duration,
    pub per_batch: Vec<BatchEstimate>,
}

/// One batch of the rollout `plan` foresees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEstimate {
    pub canary: bool,
    pub hosts: Vec<String>,
    /// The services that restart in it (units, and containers started or
    /// replaced), in step order.
    pub restarts: Vec<String>,
    /// Its slowest host's restarts, gates and watch.
    pub took: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// True for `plan`: cells say what apply would do.
    pub dry_run: bool,
    pub hosts: Vec<HostReport>,
    pub halt: Option<Halt>,
    /// For `plan`: the rollout's batches and how long they would take.
    pub estimate: Option<Estimate>,
}

/// A host whose steps ended with `statuses`, for tests of what reads a
/// report.
#[cfg(test)]
pub fn host_with(statuses: &[Status]) -> HostReport {
    HostReport {
        host: "agent-1".into(),
        steps: statuses
            .iter()
            .zip(StepName::ALL)
            .map(|(&status, step)| StepResult {
                step,
                status,
                message: String::new(),
                restarted: false,
                restarts: 0,
                diff: Vec::new(),
                duration_ms: 0,
                gates: Vec::new(),
                notes: Vec::new(),
            })
            .collect(),
    }
}
