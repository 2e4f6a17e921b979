//! rollback: the plan that takes back the last apply that changed a host,
//! from the run history that apply left on the host. Steps are taken back
//! newest change first; the executor runs them in reverse step order.

use super::cni::mesos_address;
use super::{Action, Change, Gate, Mesh, Plan, Restart, StepName, StepPlan, Undo};
use crate::desired::{DOCKER_UNIT, ETCD_PROXY_UNIT, NODE_CONTAINER};
use crate::facts::Facts;
use crate::history::RunRecord;
use crate::inventory::Agent;

/// The gate that tells a unit put back is up again. The configuration is
/// the old one, so only "it answers" is checked.
pub fn gate_for(agent: &Agent, facts: &Facts, unit: &str) -> Gate {
    if unit == DOCKER_UNIT {
        Gate::Docker {
            cluster_store: None,
        }
    } else if unit == ETCD_PROXY_UNIT {
        // The files are there when the inventory has TLS (the probe
        // hashes them): the gateway's members then speak only TLS.
        Gate::EtcdGateway {
            tls: facts.hashes.contains_key(crate::desired::TLS_CA),
        }
    } else {
        Gate::Mesos {
            unit: unit.to_string(),
            address: mesos_address(agent, facts),
            port: agent.role.mesos_port(),
            registered: true,
        }
    }
}

/// What taking back `step` of `run` involves: the undo of each change not
/// yet taken back (newest first), and the restart of the step's service
/// unless that is done too. None when nothing is left.
pub fn undo_change(
    agent: &Agent,
    facts: &Facts,
    run: &RunRecord,
    step: StepName,
) -> Option<Change> {
    let records: Vec<_> = run.changes.iter().filter(|c| c.body.step == step).collect();
    if records.is_empty() {
        return None;
    }
    let left: Vec<_> = records.iter().rev().filter(|c| !c.undone).collect();
    let restart = run
        .restart_unit(step)
        .filter(|_| !run.restored.contains(&step))
        .map(|unit| Restart {
            gate: gate_for(agent, facts, unit),
            unit: unit.to_string(),
        });
    if left.is_empty() && restart.is_none() {
        return None;
    }
    let mut change = Change::default();
    for c in &left {
        change.summary.push(c.body.undo.describe());
        change.apply.push(Action::Undo {
            run: run.run.clone(),
            seq: c.seq,
            undo: c.body.undo.clone(),
        });
        if let Undo::Container {
            name,
            previous_id: Some(_),
            was_running: true,
            ..
        } = &c.body.undo
        {
            change.gate = Some(Gate::Container { name: name.clone() });
            if name == NODE_CONTAINER {
                change.checks.extend(mesh_kept(facts));
            }
        }
    }
    if let Some(r) = &restart {
        change.summary.push(format!("restart {}", r.unit));
    }
    change.restart = restart;
    Some(change)
}

/// The BGP sessions Established now must be again once the older
/// calico-node runs: a rollback must not cut the mesh either. Nothing more
/// is asked (a rollback may be what brings a broken mesh back), and
/// Felix's endpoint may be off in the older container.
fn mesh_kept(facts: &Facts) -> Option<Gate> {
    let Some(Ok(sessions)) = &facts.bgp else {
        return None;
    };
    let before: Vec<&crate::bgp::Session> = sessions.iter().filter(|s| s.established()).collect();
    Some(Gate::Bgp(Mesh {
        // BIRD6's sessions were read too when a peer is an IPv6 address.
        ipv6: before.iter().any(|s| s.peer().contains(':')),
        before: before.iter().map(|s| s.name.clone()).collect(),
        at_least: 0,
    }))
}

/// Plans a rollback of every step the last apply changed; the others are ok.
pub fn plan(agent: &Agent, facts: &Facts) -> Vec<StepPlan> {
    let target = facts.history.rollback_target();
    StepName::ALL
        .iter()
        .map(|&step| {
            let plan = match target.and_then(|run| undo_change(agent, facts, run, step)) {
                None => Plan::Ok,
                Some(change) => Plan::Change(Box::new(change)),
            };
            StepPlan { step, plan }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ChangeRecord, History, RecordBody, RunState};
    use crate::inventory::Role;
    use crate::steps::testing::{agent, fresh_facts};
    use std::collections::BTreeSet;

    fn record(seq: u32, step: StepName, undo: Undo, restart: Option<&str>) -> ChangeRecord {
        ChangeRecord {
            seq,
            body: RecordBody {
                step,
                undo,
                restart: restart.map(str::to_string),
            },
            undone: false,
        }
    }

    fn run() -> RunRecord {
        RunRecord {
            run: "r1".into(),
            state: RunState::Applied,
            changes: vec![
                record(
                    1,
                    StepName::EtcdProxy,
                    Undo::File {
                        target: "/etc/systemd/system/calico-etcd-proxy.service".into(),
                        existed: false,
                        tmp_dir: None,
                    },
                    Some(ETCD_PROXY_UNIT),
                ),
                record(
                    2,
                    StepName::Docker,
                    Undo::File {
                        target: "/etc/docker/daemon.json".into(),
                        existed: true,
                        tmp_dir: None,
                    },
                    Some(DOCKER_UNIT),
                ),
                record(
                    3,
                    StepName::Node,
                    Undo::Container {
                        name: "calico-node".into(),
                        previous_id: Some("c1".into()),
                        retired: "calico-node-previous-r1".into(),
                        policy: "always".into(),
                        was_running: true,
                        spec_hash: "s".into(),
                    },
                    None,
                ),
            ],
            restored: BTreeSet::new(),
        }
    }

    fn facts_with(run: RunRecord) -> Facts {
        let mut f = fresh_facts();
        f.history = History { runs: vec![run] };
        f
    }

    #[test]
    fn plans_only_the_recorded_steps() {
        let plans = plan(&agent(Role::Private), &facts_with(run()));
        let by_step = |s: StepName| plans.iter().find(|p| p.step == s).unwrap().plan.clone();

        let Plan::Change(proxy) = by_step(StepName::EtcdProxy) else {
            panic!()
        };
        assert!(proxy.restart.is_none(), "a removed unit is not restarted");
        let Plan::Change(docker) = by_step(StepName::Docker) else {
            panic!()
        };
        assert_eq!(
            docker.summary,
            [
                "put back the previous /etc/docker/daemon.json",
                "restart docker"
            ]
        );
        assert_eq!(
            docker.restart.unwrap().gate,
            Gate::Docker {
                cluster_store: None
            }
        );
        assert_eq!(by_step(StepName::Cni), Plan::Ok);
        let Plan::Change(node) = by_step(StepName::Node) else {
            panic!()
        };
        assert_eq!(
            node.gate,
            Some(Gate::Container {
                name: "calico-node".into()
            })
        );
        let none = plan(&agent(Role::Private), &fresh_facts());
        assert!(none.iter().all(|p| p.plan == Plan::Ok));
    }

    #[test]
    fn the_older_node_must_bring_back_the_sessions_up_now() {
        let session = |name: &str, state: &str, info: &str| crate::bgp::Session {
            name: name.into(),
            state: state.into(),
            info: info.into(),
        };
        let mut f = facts_with(run());
        let node = |f: &Facts| {
            let Some(Plan::Change(c)) = plan(&agent(Role::Private), f)
                .into_iter()
                .find(|p| p.step == StepName::Node)
                .map(|p| p.plan)
            else {
                panic!()
            };
            c.checks
        };
        assert_eq!(node(&f), [], "BIRD was not read: nothing to keep");
        f.bgp = Some(Ok(vec![
            session("Mesh_10_0_0_12", "up", "Established"),
            session("Mesh_10_0_0_13", "start", "Active"),
            session("Mesh_fd00__14", "up", "Established"),
        ]));
        assert_eq!(
            node(&f),
            [Gate::Bgp(Mesh {
                before: vec!["Mesh_10_0_0_12".into(), "Mesh_fd00__14".into()],
                at_least: 0,
                ipv6: true,
            })]
        );
    }

    #[test]
    fn a_rollback_cut_short_goes_on_where_it_stopped() {
        let mut r = run();
        r.state = RunState::RollingBack;
        // The node and the daemon.json are back, but docker's restart
        // never happened.
        r.changes[1].undone = true;
        r.changes[2].undone = true;
        let a = agent(Role::Private);
        let f = facts_with(r.clone());
        let docker = undo_change(&a, &f, &r, StepName::Docker).unwrap();
        assert!(docker.apply.is_empty());
        assert_eq!(docker.summary, ["restart docker"]);
        assert_eq!(undo_change(&a, &f, &r, StepName::Node), None);
    }
}
