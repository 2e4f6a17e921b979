//! `status`: every selected host read in parallel (at most `forks` at
//! once), each with one remote command under `rollout.command_timeout`,
//! and drift judged by the same planners `plan` and `apply` use. No lock
//! is taken and nothing is written; a host that cannot be read is a value
//! in the answer.

use std::sync::Arc;
use std::time::Duration;

use super::session::HostSession;
use crate::desired::{self, Desired};
use crate::facts::Facts;
use crate::inventory::Agent;
use crate::layout::Layout;
use crate::lock::LockState;
use crate::remote::status::{self as script, Reading};
use crate::report::Status;
use crate::report::status::{
    ContainerSeen, Health, HostStatus, LastRun, LockSeen, Seen, StepDrift, Unread,
};
use crate::steps;
use crate::transport::{Connector, Stdin};

/// What every host's reading shares.
pub struct Options {
    pub forks: usize,
    pub layout: Layout,
    /// Hash every managed file, trusting no install manifest.
    pub verify: bool,
    pub deadline: Duration,
}

/// Reads every host; the answer is in the order of `hosts`.
pub async fn status<C: Connector>(
    connector: Arc<C>,
    hosts: Vec<(Agent, Desired)>,
    opts: &Options,
) -> Vec<HostStatus> {
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.forks.max(1)));
    let jobs = hosts.into_iter().map(|(agent, want)| {
        let (connector, limit) = (connector.clone(), limit.clone());
        async move {
            let _permit = limit.acquire_owned().await;
            let host = agent.name.clone();
            let seen = one(connector, agent, want, opts).await;
            HostStatus { host, seen }
        }
    });
    futures::future::join_all(jobs).await
}

async fn one<C: Connector>(
    connector: Arc<C>,
    agent: Agent,
    want: Desired,
    opts: &Options,
) -> Result<Seen, Unread> {
    let session = HostSession::connect(connector, agent.clone())
        .await
        .map_err(|e| Unread {
            unreachable: e.is_unreachable(),
            reason: e.to_string(),
        })?;
    let cmd = script::script(&agent, &want, &opts.layout, opts.verify, opts.deadline);
    let out = session.run_raw(&cmd, Stdin::Empty).await;
    session.close().await;
    let out = out.map_err(|e| Unread {
        unreachable: e.status() == Status::Unreachable,
        reason: e.to_string(),
    })?;
    let reading =
        script::read(&agent, out.exit_status, &out.stdout, &out.stderr).map_err(|e| Unread {
            unreachable: false,
            reason: e.to_string(),
        })?;
    Ok(seen(&agent, &want, reading))
}

/// What status shows of one reading.
pub fn seen(agent: &Agent, want: &Desired, reading: Reading) -> Seen {
    let facts = &reading.facts;
    let drift = steps::plan_host(agent, want, facts)
        .iter()
        .map(StepDrift::from_plan)
        .collect();
    let cni = want
        .cni
        .as_ref()
        .map(|c| {
            c.binaries
                .iter()
                .map(|b| (b.name.clone(), facts.hashes.get(b.path.as_str()).cloned()))
                .collect()
        })
        .unwrap_or_default();
    let health = |answer: Result<(), String>, asked: &str| match answer {
        Ok(()) => Health {
            healthy: true,
            detail: asked.to_string(),
        },
        Err(why) => Health {
            healthy: false,
            detail: why,
        },
    };
    Seen {
        calico_node: container(facts, desired::NODE_CONTAINER),
        libnetwork: container(facts, desired::LIBNETWORK_CONTAINER),
        cni,
        cluster_store: reading.cluster_store,
        gateway: reading
            .gateway
            .map(|g| health(g, "http://127.0.0.1:2379/health")),
        mesos: health(reading.mesos, &reading.mesos_url),
        lock: match reading.lock {
            Ok(LockState::Free | LockState::Acquired) => LockSeen::Free,
            Ok(LockState::Held(h) | LockState::StaleReplaced(h)) => LockSeen::Held(h),
            Err(why) => LockSeen::Unknown(why),
        },
        last_run: facts.history.runs.last().map(|r| LastRun {
            run_id: r.run.clone(),
            outcome: r.state.as_str().to_string(),
        }),
        drift,
    }
}

fn container(facts: &Facts, name: &str) -> ContainerSeen {
    facts
        .containers
        .get(name)
        .map(|c| ContainerSeen {
            image: Some(c.image.clone()),
            running: c.running && !c.restarting,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::report::status::{DriftStatus, Standing};
    use crate::steps::testing::{agent, converged_facts, desired, fresh_facts};
    use crate::transport::testing::{NoConnector, Reply, Scripted, ScriptedConnector};

    fn reading(facts: Facts) -> Reading {
        Reading {
            facts,
            lock: Ok(LockState::Free),
            cluster_store: Ok("etcd://127.0.0.1:2379".into()),
            gateway: Some(Ok(())),
            mesos: Ok(()),
            mesos_url: "http://10.0.0.11:5051/health".into(),
        }
    }

    #[test]
    fn a_converged_agent_shows_what_it_runs_and_no_drift() {
        let want = desired();
        let s = seen(
            &agent(Role::Private),
            &want,
            reading(converged_facts(&want)),
        );
        assert_eq!(s.calico_node.image.as_deref(), Some("calico/node:v2.6.12"));
        assert!(s.calico_node.running);
        assert_eq!(s.cni["calico"].as_deref(), Some(&*"a".repeat(64)));
        assert!(s.drift.iter().all(|d| d.status == DriftStatus::Ok));
        assert_eq!(s.mesos.detail, "http://10.0.0.11:5051/health");
        let fresh = seen(&agent(Role::Private), &want, reading(fresh_facts()));
        assert_eq!(fresh.calico_node, ContainerSeen::default());
        assert_eq!(fresh.cni["calico"], None);
        assert!(fresh.drift.iter().all(|d| d.status == DriftStatus::Drift));
    }

    fn options() -> Options {
        Options {
            forks: 2,
            layout: Layout::default(),
            verify: false,
            deadline: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn an_unreachable_host_is_a_value_and_the_others_are_still_read() {
        let hosts = vec![(agent(Role::Private), desired())];
        let got = status(Arc::new(NoConnector), hosts, &options()).await;
        let Err(unread) = &got[0].seen else {
            panic!("{got:?}")
        };
        assert!(unread.unreachable, "{unread:?}");
        assert!(unread.reason.contains("no network in tests"));
        assert_eq!(got[0].standing(), Standing::Unreadable);
    }

    #[tokio::test]
    async fn each_host_costs_one_command() {
        let scripted = Arc::new(Scripted::default());
        let mut two = agent(Role::Private);
        two.name = "agent-2".into();
        let hosts = vec![(agent(Role::Private), desired()), (two, desired())];
        let got = status(
            Arc::new(ScriptedConnector(scripted.clone())),
            hosts,
            &options(),
        )
        .await;
        assert_eq!(scripted.commands.lock().unwrap().len(), 2);
        // An empty answer is not a status: the host could not be read.
        for h in &got {
            let Err(e) = &h.seen else { panic!("{h:?}") };
            assert!(!e.unreachable && e.reason.contains("lacks"), "{e:?}");
        }
        assert_eq!(
            got.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
            ["agent-1", "agent-2"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_never_answers_is_unreadable_at_its_deadline() {
        let scripted = Arc::new(Scripted::default());
        scripted.on("", Reply::Hang);
        let hosts = vec![(agent(Role::Private), desired())];
        let started = tokio::time::Instant::now();
        let got = status(Arc::new(ScriptedConnector(scripted)), hosts, &options()).await;
        // The agent's own bound, its kill grace and the wire's slack.
        assert_eq!(started.elapsed(), Duration::from_secs(40));
        let Err(e) = &got[0].seen else {
            panic!("{got:?}")
        };
        assert_eq!(
            e.reason,
            "reading the agent's status did not finish within 30s"
        );
    }
}
