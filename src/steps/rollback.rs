//! rollback: the plan that takes back the last apply that changed a host,
//! from the undo record that apply left on the host.

use serde::{Deserialize, Serialize};

use super::{Action, Change, Gate, Plan, Restart, StepName, StepPlan, Undo};
use crate::desired::{DOCKER_UNIT, ETCD_PROXY_UNIT, STATE_DIR};
use crate::inventory::Agent;

/// Where an apply leaves its undo record on the host.
pub fn record_path() -> String {
    format!("{STATE_DIR}/undo.json")
}

/// What the last apply that changed a host did, step by step, as undo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    /// The run that made the changes.
    pub run: String,
    pub steps: Vec<UndoStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoStep {
    pub step: StepName,
    pub undo: Vec<Undo>,
    /// The unit the change restarted, restarted again after the undo.
    pub restart: Option<String>,
}

/// The gate that tells a unit put back by a rollback is up again. The
/// configuration is the old one, so only "it answers" is checked.
fn gate_for(agent: &Agent, unit: &str) -> Gate {
    if unit == DOCKER_UNIT {
        Gate::Docker {
            cluster_store: None,
        }
    } else if unit == ETCD_PROXY_UNIT {
        Gate::EtcdGateway
    } else {
        Gate::Mesos {
            unit: unit.to_string(),
            address: agent.address.clone(),
            port: agent.role.mesos_port(),
        }
    }
}

fn describe(undo: &Undo) -> String {
    match undo {
        Undo::File {
            target,
            existed: true,
        } => format!("put back the previous {target}"),
        Undo::File {
            target,
            existed: false,
        } => format!("remove {target}"),
        Undo::Container { name } => format!("put back the previous {name} container"),
    }
}

/// Plans a rollback of every step the record names; the others are ok.
pub fn plan(agent: &Agent, record: Option<&UndoRecord>) -> Vec<StepPlan> {
    StepName::ALL
        .iter()
        .map(|&step| {
            let entry = record.and_then(|r| r.steps.iter().find(|s| s.step == step));
            let plan = match entry {
                None => Plan::Ok,
                Some(entry) => {
                    let mut summary: Vec<String> = entry.undo.iter().map(describe).collect();
                    let restart = entry
                        .restart
                        .as_deref()
                        .filter(|u| !entry.undo.iter().any(|x| x.removes_unit(u)))
                        .map(|unit| Restart {
                            unit: unit.to_string(),
                            gate: gate_for(agent, unit),
                        });
                    if let Some(r) = &restart {
                        summary.push(format!("restart {}", r.unit));
                    }
                    Plan::Change(Box::new(Change {
                        summary,
                        apply: entry.undo.iter().cloned().map(Action::Undo).collect(),
                        restart,
                        ..Change::default()
                    }))
                }
            };
            StepPlan { step, plan }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::steps::testing::agent;

    #[test]
    fn plans_only_the_recorded_steps() {
        let record = UndoRecord {
            run: "r1".into(),
            steps: vec![
                UndoStep {
                    step: StepName::EtcdProxy,
                    undo: vec![Undo::File {
                        target: "/etc/systemd/system/calico-etcd-proxy.service".into(),
                        existed: false,
                    }],
                    restart: Some(ETCD_PROXY_UNIT.into()),
                },
                UndoStep {
                    step: StepName::Docker,
                    undo: vec![Undo::File {
                        target: "/etc/docker/daemon.json".into(),
                        existed: true,
                    }],
                    restart: Some(DOCKER_UNIT.into()),
                },
                UndoStep {
                    step: StepName::Node,
                    undo: vec![Undo::Container {
                        name: "calico-node".into(),
                    }],
                    restart: None,
                },
            ],
        };
        let plans = plan(&agent(Role::Private), Some(&record));
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
        assert!(matches!(by_step(StepName::Node), Plan::Change(_)));
        assert!(
            plan(&agent(Role::Private), None)
                .iter()
                .all(|p| p.plan == Plan::Ok)
        );
    }

    #[test]
    fn record_round_trips_as_json() {
        let record = UndoRecord {
            run: "r1".into(),
            steps: vec![UndoStep {
                step: StepName::Cni,
                undo: vec![Undo::File {
                    target: "/opt/mesosphere/etc/dcos/network/cni/calico.cni".into(),
                    existed: false,
                }],
                restart: Some("dcos-mesos-slave".into()),
            }],
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""undo":"file""#), "{text}");
        assert_eq!(serde_json::from_str::<UndoRecord>(&text).unwrap(), record);
    }
}
