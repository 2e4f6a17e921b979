//! The five steps as planners. A planner reads the desired state and the
//! facts and decides what to do, with no I/O of its own, so every decision
//! can be tested table-driven without SSH.

mod cni;
mod container;
mod docker;
mod etcd_proxy;
pub mod rollback;

pub use container::restore_script;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::desired::{Desired, ManagedFile};
use crate::facts::Facts;
use crate::inventory::{Agent, RemotePath};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepName {
    EtcdProxy,
    Docker,
    Cni,
    Libnetwork,
    Node,
}

impl StepName {
    /// In the order a host runs them: each relies on the ones before it.
    pub const ALL: [StepName; 5] = [
        StepName::EtcdProxy,
        StepName::Docker,
        StepName::Cni,
        StepName::Libnetwork,
        StepName::Node,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepName::EtcdProxy => "etcd-proxy",
            StepName::Docker => "docker",
            StepName::Cni => "cni",
            StepName::Libnetwork => "libnetwork",
            StepName::Node => "node",
        }
    }
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the bytes of an installed file come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Small rendered content, sent over stdin.
    Bytes(Arc<[u8]>),
    /// A file already uploaded to the host's stage area under its hash.
    Staged,
}

/// A program on the agent that must accept a new file before it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCheck {
    /// `dockerd --validate --config-file` (Docker 23.0 and later).
    Dockerd,
}

/// One remote operation. The executor turns each into one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Streams a local file into the host's stage area, named by its hash.
    Stage { local: PathBuf, sha256: String },
    /// Writes a file atomically, keeping the previous version as a backup.
    Install {
        target: RemotePath,
        source: Source,
        sha256: String,
        mode: u32,
        /// Checked on the new bytes before they replace the target.
        check: Option<FileCheck>,
    },
    /// Records that `unit` must restart, so an interrupted run still
    /// restarts it next time even though its files already match.
    MarkPending { unit: String },
    /// A privileged script; `what` is how the report describes it.
    Run { what: String, script: String },
    /// Retires the running container and starts one from the new spec.
    ReplaceContainer { name: String, script: String },
    /// Takes back an earlier change (rollback).
    Undo(Undo),
}

impl Action {
    pub fn install(file: &ManagedFile) -> Action {
        Action::Install {
            target: file.path.clone(),
            source: Source::Bytes(file.content.clone()),
            sha256: file.sha256.clone(),
            mode: file.mode,
            check: None,
        }
    }
}

/// How to take back one applied action. Kept on the host after a
/// successful apply, so that `rollback` can take back the whole apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    /// Put back the version saved before the change, or remove the file
    /// when there was none.
    File { target: String, existed: bool },
    /// Put back the container that a replacement retired, or remove the new
    /// one when there was none.
    Container { name: String },
}

impl Undo {
    /// Whether taking this back removes `unit`'s unit file, which also
    /// stops the unit: there is then nothing left to restart.
    pub fn removes_unit(&self, unit: &str) -> bool {
        matches!(self, Undo::File { target, existed: false }
            if target.ends_with(&format!("/{unit}.service")))
    }
}

impl Gate {
    /// The gate for a service put back as it was: it must answer, but not
    /// necessarily with the configuration the failed change wanted.
    pub fn relaxed(&self) -> Gate {
        match self {
            Gate::Docker { .. } => Gate::Docker {
                cluster_store: None,
            },
            other => other.clone(),
        }
    }
}

/// How to tell that a restarted service is back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The gateway answers on 127.0.0.1:2379 and reaches the cluster.
    EtcdGateway,
    /// The unit is active, the daemon answers and, when given, it runs
    /// with this cluster store.
    Docker { cluster_store: Option<String> },
    /// The unit is active and the agent's health endpoint answers.
    Mesos {
        unit: String,
        address: String,
        port: u16,
    },
    /// The container is running.
    Container { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub unit: String,
    pub gate: Gate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// What will change, in words, for `plan` and the report.
    pub summary: Vec<String>,
    /// Uploads that can happen before the host's batch.
    pub stage: Vec<Action>,
    /// The changes themselves.
    pub apply: Vec<Action>,
    /// A restart after `apply`, followed by its health gate.
    pub restart: Option<Restart>,
    /// A health gate without a restart (a replaced container).
    pub gate: Option<Gate>,
    /// How to take `apply` back, in the order to run it.
    pub undo: Vec<Undo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Disabled in the inventory.
    Skipped(String),
    /// Already as desired.
    Ok,
    /// Cannot go ahead safely on this host; nothing will be touched.
    Refused(String),
    Change(Box<Change>),
}

impl Plan {
    /// `Ok` when the change holds nothing to do.
    fn from_change(change: Change) -> Plan {
        if change == Change::default() {
            Plan::Ok
        } else {
            Plan::Change(Box::new(change))
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepPlan {
    pub step: StepName,
    pub plan: Plan,
}

/// Plans every step for one host.
pub fn plan_host(agent: &Agent, want: &Desired, facts: &Facts) -> Vec<StepPlan> {
    StepName::ALL
        .iter()
        .map(|&step| {
            let plan = match step {
                StepName::EtcdProxy => etcd_proxy::plan(want.etcd_proxy.as_ref(), facts),
                StepName::Docker => docker::plan(want.docker.as_ref(), facts),
                StepName::Cni => cni::plan(agent, want.cni.as_ref(), facts),
                StepName::Libnetwork => {
                    container::plan("libnetwork", want.libnetwork.as_ref(), facts)
                }
                StepName::Node => container::plan("node", want.node.as_ref(), facts),
            };
            StepPlan { step, plan }
        })
        .collect()
}

/// A restart that an earlier, interrupted run left undone.
fn pending_restart(facts: &Facts, unit: &str) -> bool {
    facts.pending.contains(unit)
}

/// Whether the host's copy of `file` differs from the desired one.
fn differs(facts: &Facts, file: &ManagedFile) -> bool {
    facts.hashes.get(file.path.as_str()) != Some(&file.sha256)
}

/// The undo of installing `target`: the probe hashed every managed file
/// that exists, so a missing hash means the file is new.
fn undo_install(facts: &Facts, target: &str) -> Undo {
    Undo::File {
        target: target.to_string(),
        existed: facts.hashes.contains_key(target),
    }
}

#[cfg(test)]
pub(crate) mod testing;
