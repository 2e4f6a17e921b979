//! How long `apply` would take, from the plan: batch after batch, the
//! slowest host's restarts and health gates, then `min_healthy`. The
//! figures per step are what a healthy agent takes; a plan says "about".

use std::time::Duration;

use super::batches::Batch;
use super::host::HostRun;
use crate::report::{BatchEstimate, Estimate};
use crate::step::StepName;
use crate::steps::{Action, Plan};

/// A restart and its gate on a healthy agent, per step.
fn step_cost(step: StepName) -> Duration {
    Duration::from_secs(match step {
        StepName::EtcdProxy => 3,
        StepName::Docker => 10,
        StepName::Cni => 15,
        StepName::Libnetwork | StepName::Node => 5,
    })
}

/// One host's turn: its changed steps, then the watch if anything
/// restarted.
fn host_cost(run: &HostRun, min_healthy: Duration) -> Duration {
    let mut cost = Duration::ZERO;
    let mut gated = false;
    for p in &run.plans {
        if let Plan::Change(c) = &p.plan {
            cost += Duration::from_secs(1);
            if c.restart.is_some() || c.gate.is_some() {
                cost += step_cost(p.step);
                gated = true;
            }
        }
    }
    if gated {
        cost += min_healthy;
    }
    cost
}

/// What a host's turn takes down: each unit it restarts and each
/// container it starts or replaces, in step order.
fn disruptions(run: &HostRun) -> Vec<String> {
    run.plans
        .iter()
        .filter_map(|p| match &p.plan {
            Plan::Change(c) => Some(c),
            _ => None,
        })
        .flat_map(|c| {
            let restart = c.restart.as_ref().map(|r| r.unit.clone());
            let container = c.apply.iter().find_map(|a| match a {
                Action::ReplaceContainer(spec) => Some(format!("{} (container)", spec.name)),
                Action::StartContainer { name } => Some(format!("{name} (container)")),
                _ => None,
            });
            restart.into_iter().chain(container)
        })
        .collect()
}

pub fn estimate(runs: &[HostRun], batches: &[Batch], min_healthy: Duration) -> Estimate {
    let per_batch: Vec<BatchEstimate> = batches
        .iter()
        .map(|b| {
            let mut restarts: Vec<String> = Vec::new();
            for &i in &b.hosts {
                for d in disruptions(&runs[i]) {
                    if !restarts.contains(&d) {
                        restarts.push(d);
                    }
                }
            }
            BatchEstimate {
                canary: b.canary,
                hosts: b
                    .hosts
                    .iter()
                    .map(|&i| runs[i].agent.name.clone())
                    .collect(),
                restarts,
                took: b
                    .hosts
                    .iter()
                    .map(|&i| host_cost(&runs[i], min_healthy))
                    .max()
                    .unwrap_or_default(),
            }
        })
        .collect();
    Estimate {
        batches: batches.len(),
        largest: batches.iter().map(|b| b.hosts.len()).max().unwrap_or(0),
        total: per_batch.iter().map(|b| b.took).sum(),
        per_batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::steps::testing::{agent, desired, fresh_facts};

    #[test]
    fn a_fresh_agent_costs_every_restart_and_the_watch() {
        let plans = crate::steps::plan_host(&agent(Role::Private), &desired(), &fresh_facts());
        let fresh = HostRun::planned(0, agent(Role::Private), plans, true);
        let idle = HostRun::planned(1, agent(Role::Private), Vec::new(), true);
        let batches = [
            Batch {
                hosts: vec![0],
                canary: true,
            },
            Batch {
                hosts: vec![0, 1],
                canary: false,
            },
        ];
        let e = estimate(&[fresh, idle], &batches, Duration::from_secs(10));
        // 5 changes, 3 + 10 + 15 + 5 + 5 s of restarts and gates, 10 s
        // of watching: 53 s a batch.
        assert_eq!(e.total, Duration::from_secs(106));
        assert_eq!((e.batches, e.largest), (2, 2));
        assert_eq!(e.per_batch[0].hosts, ["agent-1"]);
        assert!(e.per_batch[0].canary && !e.per_batch[1].canary);
        assert_eq!(
            e.per_batch[1].restarts,
            [
                "calico-etcd-proxy",
                "docker",
                "dcos-mesos-slave",
                "calico-libnetwork (container)",
                "calico-node (container)"
            ]
        );
    }
}
