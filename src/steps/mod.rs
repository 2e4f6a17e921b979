//! The five steps as planners. A planner reads the desired state and the
//! facts and decides what to do, with no I/O of its own, so every decision
//! can be tested table-driven without SSH.

mod cni;
mod container;
mod docker;
mod etcd_proxy;
mod gates;
pub mod rollback;
mod tls;

pub use docker::merge_daemon_json;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::step::{StepName, Undo};

use crate::desired::{Binary, BinaryFrom, ContainerSpec, Desired, ManagedFile};
use crate::diff::Diff;
use crate::facts::Facts;
use crate::inventory::{Agent, OperatorCheck, RemotePath};

/// Where the bytes of an installed file come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// Small rendered content, sent over stdin.
    Bytes(Arc<[u8]>),
    /// A file already uploaded to the host's stage area under its hash.
    Staged,
}

/// The length only: the bytes may be the etcd client key.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            Source::Staged => f.write_str("Staged"),
        }
    }
}

/// A program on the agent that must accept a new file before it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCheck {
    /// `dockerd --validate --config-file` (Docker 23.0 and later).
    Dockerd,
}

/// What the target must still be when it is replaced: a file someone
/// edited since the probe read it is never silently overwritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it is now.
    Any,
    /// It must not exist.
    Absent,
    /// It must have these bytes.
    Sha256(String),
}

/// Writes one file atomically, with its undo recorded first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub target: RemotePath,
    pub source: Source,
    pub sha256: String,
    pub mode: u32,
    /// Checked on the new bytes before they replace the target.
    pub check: Option<FileCheck>,
    pub expect: Expect,
    /// The unit that must restart because of this file: marked pending
    /// with the install (an interrupted run still restarts it next time),
    /// and unmarked again if the install does not go through.
    pub pending: Option<String>,
    /// Where the temporary file is made when not beside the target: Mesos
    /// loads every file of the CNI config folder, even half-written ones.
    pub tmp_dir: Option<RemotePath>,
    /// When the target changed since the probe: the managed keys to merge
    /// into what it holds now (daemon.json), instead of refusing.
    pub remerge: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// How to take the install back; `existed` as the probe saw it (the
    /// agent records what it finds at install time).
    pub undo: Undo,
}

/// One remote operation. The executor turns each into one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Streams a local file into the host's stage area, named by its hash.
    Stage {
        local: PathBuf,
        sha256: String,
        size: u64,
    },
    /// The agent downloads a file into its stage area and checks its hash;
    /// the controller never sends the bytes.
    Download {
        url: String,
        sha256: String,
    },
    /// Pulls an image the host will run, before anything on it is stopped.
    Pull {
        image: String,
    },
    Install(Box<Install>),
    /// `systemctl daemon-reload`.
    DaemonReload,
    /// `systemctl enable` a unit.
    Enable {
        unit: String,
    },
    /// Retires the running container and starts one from the new spec, as
    /// one unit: the old one is back at once if the new one does not start.
    ReplaceContainer(Box<ContainerSpec>),
    /// Starts a stopped container that already runs the right spec.
    StartContainer {
        name: String,
    },
    /// Removes uploads the installs have used.
    ClearStage {
        sha256s: Vec<String>,
    },
    /// Takes back one recorded change of `run` (revert and rollback).
    Undo {
        run: String,
        seq: u32,
        undo: Undo,
    },
}

impl Action {
    pub fn install(file: &ManagedFile, facts: &Facts) -> Action {
        Action::Install(Box::new(Install {
            target: file.path.clone(),
            source: Source::Bytes(file.content.clone()),
            sha256: file.sha256.clone(),
            mode: file.mode,
            check: None,
            expect: Expect::Any,
            pending: None,
            tmp_dir: None,
            remerge: None,
            undo: undo_install(facts, file.path.as_str()),
        }))
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
            // A revert puts back what ran; whether the agent finds its
            // master again is not its doing, and a revert must not be
            // judged failed for it.
            Gate::Mesos {
                unit,
                address,
                port,
                ..
            } => Gate::Mesos {
                unit: unit.clone(),
                address: address.clone(),
                port: *port,
                registered: false,
            },
            other => other.clone(),
        }
    }

    /// What still holds for a service a revert put back as it was: it
    /// runs, and the BGP sessions it had are Established again. Felix's
    /// endpoint and the operator's checks are the new configuration's.
    pub fn after_revert(&self) -> Option<Gate> {
        match self {
            Gate::Felix { .. } | Gate::Check(_) => None,
            Gate::Bgp(mesh) => Some(Gate::Bgp(Mesh {
                at_least: 0,
                ..mesh.clone()
            })),
            other => Some(other.relaxed()),
        }
    }
}

/// How to tell that a service is back. Every gate also requires the
/// service to stay the same process (no restarts) while it is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The gateway's unit is active and 127.0.0.1:2379 reaches the cluster;
    /// with `tls`, over TLS with the agent's etcd client files.
    EtcdGateway { tls: bool },
    /// The unit is active, the daemon answers and, when given, it runs
    /// with this cluster store.
    Docker { cluster_store: Option<String> },
    /// The unit is active and the agent's health endpoint answers.
    Mesos {
        unit: String,
        /// Where Mesos listens, as the agent says (`detect_ip`).
        address: String,
        port: u16,
        /// Registered with a master again, too (`/state`'s
        /// `master_hostname`).
        registered: bool,
    },
    /// The container is running and not restarting.
    Container { name: String },
    /// Felix's health endpoint answers 200 on `/liveness` and `/readiness`.
    Felix { port: u16 },
    /// calico-node's BGP sessions are Established, as BIRD shows them.
    Bgp(Mesh),
    /// The libnetwork plugin answers on both sockets as Docker calls it.
    Plugin,
    /// One of the operator's own checks.
    Check(Box<OperatorCheck>),
}

/// What the BGP gate waits for. A resumed run reads it back from the
/// journal, for the barrier between batches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mesh {
    /// The sessions Established before the change: each must be again.
    pub before: Vec<String>,
    /// With none before: how many must be Established (or every session
    /// BIRD has, when it has fewer).
    pub at_least: usize,
    /// BIRD6's sessions too.
    pub ipv6: bool,
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
    /// What will change, in detail, for `plan`: only where the probe read
    /// what the agent has now.
    pub diffs: Vec<Diff>,
    /// Uploads and pulls that can happen before the host's batch.
    pub stage: Vec<Action>,
    /// The changes themselves.
    pub apply: Vec<Action>,
    /// A restart after `apply`, followed by its health gate.
    pub restart: Option<Restart>,
    /// A health gate without a restart (a replaced container).
    pub gate: Option<Gate>,
    /// Further gates after the step's own (see `gates`): Calico's health,
    /// the operator's checks.
    pub checks: Vec<Gate>,
    /// What the operator should know about the gates: a part that is off,
    /// and why.
    pub notes: Vec<String>,
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
    let mut plans = StepName::ALL
        .iter()
        .map(|&step| {
            let plan = match step {
                StepName::EtcdProxy => {
                    etcd_proxy::plan(want.etcd_proxy.as_ref(), want.etcd_tls.as_ref(), facts)
                }
                StepName::Docker => docker::plan(want.docker.as_ref(), facts),
                StepName::Cni => cni::plan(agent, want.cni.as_ref(), facts),
                StepName::Libnetwork => {
                    container::plan("libnetwork", want.libnetwork.as_ref(), facts)
                }
                StepName::Node => container::plan("node", want.node.as_ref(), facts),
            };
            StepPlan { step, plan }
        })
        .collect::<Vec<_>>();
    gates::attach(&mut plans, want, facts);
    plans
}

/// Adds what installing `bin` takes, unless the host has it: its upload
/// or download while staging (once per hash, whatever the number of
/// binaries sharing it), and its install from the stage area.
pub(crate) fn add_binary(
    change: &mut Change,
    bin: &Binary,
    facts: &Facts,
    staged_now: &mut BTreeSet<String>,
    pending: Option<&str>,
) -> bool {
    if facts.hashes.get(bin.path.as_str()) == Some(&bin.sha256) {
        return false;
    }
    if !facts.staged.contains(&bin.sha256) && staged_now.insert(bin.sha256.clone()) {
        change.stage.push(match &bin.from {
            BinaryFrom::Local { path, size } => Action::Stage {
                local: path.clone(),
                sha256: bin.sha256.clone(),
                size: *size,
            },
            BinaryFrom::Url(url) => Action::Download {
                url: url.clone(),
                sha256: bin.sha256.clone(),
            },
        });
    }
    change.summary.push(match &bin.from {
        BinaryFrom::Local { size, .. } => format!(
            "install {} (sha256 {}…, {size} bytes)",
            bin.path,
            &bin.sha256[..12],
        ),
        BinaryFrom::Url(url) => format!(
            "install {} (sha256 {}…, downloaded by the agent from {url})",
            bin.path,
            &bin.sha256[..12],
        ),
    });
    change.apply.push(Action::Install(Box::new(Install {
        target: bin.path.clone(),
        source: Source::Staged,
        sha256: bin.sha256.clone(),
        mode: 0o755,
        check: None,
        expect: Expect::Any,
        pending: pending.map(str::to_string),
        tmp_dir: None,
        remerge: None,
        undo: undo_install(facts, bin.path.as_str()),
    })));
    true
}

/// A restart that an earlier, interrupted run left undone.
fn pending_restart(facts: &Facts, unit: &str) -> bool {
    facts.pending.contains(unit)
}

/// How the host's copy of `file` would change, when the probe read it;
/// JSON files key by key.
fn file_diff(facts: &Facts, file: &ManagedFile, json: bool) -> Option<Diff> {
    let old = facts.text(file.path.as_str())?;
    Some(if json {
        Diff::json(file.path.as_str(), old, &file.content)
    } else {
        Diff::text(file.path.as_str(), old, &file.content)
    })
}

/// Whether the host's copy of `file` differs from the desired one.
fn differs(facts: &Facts, file: &ManagedFile) -> bool {
    facts.hashes.get(file.path.as_str()) != Some(&file.sha256)
}

/// The undo of installing `target`: the probe hashed every managed file
/// that exists, so a missing hash means the file is new.
pub(crate) fn undo_install(facts: &Facts, target: &str) -> Undo {
    Undo::File {
        target: target.to_string(),
        existed: facts.hashes.contains_key(target),
        tmp_dir: None,
    }
}

#[cfg(test)]
pub(crate) mod testing;
