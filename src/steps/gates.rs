//! The gates beyond each step's own. A container that runs is not yet a
//! Calico that networks: after calico-node changes, Felix must be ready
//! and BIRD's BGP sessions Established again; after libnetwork, the
//! plugin must answer Docker. A docker restart restarts both containers,
//! so when they do not change themselves, docker's step waits for them.
//! The operator's own checks follow the step they name.

use super::{Change, Gate, Mesh, Plan, StepName, StepPlan};
use crate::desired::{Desired, LIBNETWORK_CONTAINER, NODE_CONTAINER};
use crate::facts::Facts;

impl Change {
    /// Every gate the change must pass, in order: the step's own, then
    /// the further ones.
    pub fn gates(&self) -> Vec<Gate> {
        self.restart
            .as_ref()
            .map(|r| r.gate.clone())
            .or_else(|| self.gate.clone())
            .into_iter()
            .chain(self.checks.iter().cloned())
            .collect()
    }
}

impl Gate {
    /// What a passing gate means, in the operator's words.
    pub fn means(&self) -> String {
        match self {
            Gate::EtcdGateway { .. } => "the etcd gateway to serve a read of the store".into(),
            Gate::Docker {
                cluster_store: Some(_),
            } => "the cluster store".into(),
            Gate::Docker {
                cluster_store: None,
            } => "the docker daemon to answer".into(),
            Gate::Mesos {
                registered: true, ..
            } => "the Mesos agent's health endpoint and its registration with a master".into(),
            Gate::Mesos {
                registered: false, ..
            } => "the Mesos agent's health endpoint".into(),
            Gate::Container { name } => format!("{name} to run"),
            Gate::Felix { port } => format!("Felix to be ready (:{port})"),
            Gate::Bgp(mesh) if mesh.before.is_empty() => format!(
                "BGP sessions to be Established (at least {}, or every one BIRD has)",
                mesh.at_least
            ),
            Gate::Bgp(mesh) => format!(
                "{} BGP session{} to be Established again",
                mesh.before.len(),
                if mesh.before.len() == 1 { "" } else { "s" }
            ),
            Gate::Plugin => "the libnetwork plugin to answer Docker on both sockets".into(),
            Gate::Check(c) => format!("check {} to pass", c.name),
        }
    }
}

/// Calico's own health after calico-node (re)starts, and why a part of
/// it is off.
fn node_health(want: &Desired, facts: &Facts) -> (Vec<Gate>, Vec<String>) {
    let Some(checks) = want.node.as_ref().and_then(|n| n.node_checks.as_ref()) else {
        return (Vec::new(), Vec::new());
    };
    let mut gates = Vec::new();
    let mut off = Vec::new();
    match &checks.felix {
        Ok(port) => gates.push(Gate::Felix { port: *port }),
        Err(why) => off.push(format!(
            "Felix's health gate is off: {why}; the node gate checks that calico-node runs"
        )),
    }
    match &checks.bgp {
        Ok(ipv6) => gates.push(Gate::Bgp(Mesh {
            before: match &facts.bgp {
                Some(Ok(sessions)) => sessions
                    .iter()
                    .filter(|s| s.established())
                    .map(|s| s.name.clone())
                    .collect(),
                _ => Vec::new(),
            },
            at_least: want.min_bgp_peers,
            ipv6: *ipv6,
        })),
        Err(why) => off.push(format!("the BGP gate is off: {why}")),
    }
    (gates, off)
}

fn runs(facts: &Facts, name: &str) -> bool {
    facts.containers.get(name).is_some_and(|c| c.running)
}

/// Adds the further gates to the host's changes.
pub(super) fn attach(plans: &mut [StepPlan], want: &Desired, facts: &Facts) {
    let changes =
        |plans: &[StepPlan], step: StepName| matches!(plans[step.index()].plan, Plan::Change(_));
    let node_changes = changes(plans, StepName::Node);
    let libnetwork_changes = changes(plans, StepName::Libnetwork);
    let (node_gates, off) = node_health(want, facts);
    for plan in plans.iter_mut() {
        let Plan::Change(change) = &mut plan.plan else {
            continue;
        };
        match plan.step {
            StepName::Node if change.gate.is_some() => {
                change.checks.extend(node_gates.iter().cloned());
                change.notes.extend(off.iter().cloned());
            }
            StepName::Libnetwork if change.gate.is_some() => change.checks.push(Gate::Plugin),
            StepName::Docker if change.restart.is_some() => {
                if want.libnetwork.is_some()
                    && !libnetwork_changes
                    && runs(facts, LIBNETWORK_CONTAINER)
                {
                    change.checks.push(Gate::Container {
                        name: LIBNETWORK_CONTAINER.into(),
                    });
                    change.checks.push(Gate::Plugin);
                }
                if want.node.is_some() && !node_changes && runs(facts, NODE_CONTAINER) {
                    change.checks.push(Gate::Container {
                        name: NODE_CONTAINER.into(),
                    });
                    change.checks.extend(node_gates.iter().cloned());
                    change.notes.extend(off.iter().cloned());
                }
            }
            _ => {}
        }
        for check in want.checks.iter().filter(|c| c.after == plan.step) {
            change.checks.push(Gate::Check(Box::new(check.clone())));
        }
    }
}
