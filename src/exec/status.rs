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
    Bgp, CheckSeen, ContainerSeen, Felix, Health, HostStatus, LastRun, LockSeen, Seen, StepDrift,
    Unread,
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
        script::read(&agent, &want, out.exit_status, &out.stdout, &out.stderr).map_err(|e| {
            Unread {
                unreachable: false,
                reason: e.to_string(),
            }
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
            .map(|g| health(g, "a v2 read through 127.0.0.1:2379")),
        mesos: health(reading.mesos, &reading.mesos_url),
        felix: felix(want, facts, reading.felix),
        bgp: bgp(want, facts),
        checks: reading
            .checks
            .into_iter()
            .map(|(name, result)| CheckSeen { name, result })
            .collect(),
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

/// Why Felix and BIRD have nothing to answer for: no calico-node is
/// managed, or it does not run. Drift shows the latter, so health does
/// not count it again.
fn node_absent(want: &Desired, facts: &Facts) -> Option<String> {
    if want.node.is_none() {
        return Some("not managed (node.enabled is false)".into());
    }
    match facts.containers.get(desired::NODE_CONTAINER) {
        None => Some("no calico-node container".into()),
        Some(c) if !c.running || c.restarting => Some("calico-node is not running".into()),
        Some(_) => None,
    }
}

fn node_checks(want: &Desired) -> Option<&desired::NodeChecks> {
    want.node.as_ref()?.node_checks.as_ref()
}

fn felix(want: &Desired, facts: &Facts, answer: Option<Result<(), String>>) -> Felix {
    if let Some(why) = node_absent(want, facts) {
        return Felix::NotChecked(why);
    }
    match (node_checks(want).map(|c| &c.felix), answer) {
        (Some(Err(off)), _) => Felix::NotChecked(format!("off: {off}")),
        (_, Some(Ok(()))) => Felix::Ready,
        (_, Some(Err(why))) => Felix::NotReady(why),
        (_, None) => Felix::NotChecked("its health endpoint was not asked".into()),
    }
}

/// From the sessions the facts probe read: BIRD is asked once per status.
fn bgp(want: &Desired, facts: &Facts) -> Bgp {
    if let Some(why) = node_absent(want, facts) {
        return Bgp::NotChecked(why);
    }
    if let Some(Err(off)) = node_checks(want).map(|c| &c.bgp) {
        return Bgp::NotChecked(format!("off: {off}"));
    }
    match &facts.bgp {
        None => Bgp::Unreadable("BIRD's sessions were not read: docker does not answer".into()),
        Some(Err(why)) => Bgp::Unreadable(format!("cannot read BIRD's sessions: {why}")),
        Some(Ok(sessions)) => Bgp::Sessions {
            established: sessions.iter().filter(|s| s.established()).count(),
            total: sessions.len(),
            down: sessions
                .iter()
                .filter(|s| !s.established())
                .map(|s| s.describe())
                .collect(),
        },
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
            felix: None,
            checks: Vec::new(),
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

    fn session(peer: &str, info: &str) -> crate::bgp::Session {
        crate::bgp::Session {
            name: format!("Mesh_{}", peer.replace('.', "_")),
            state: if info == "Established" { "up" } else { "start" }.into(),
            info: info.into(),
        }
    }

    #[test]
    fn felix_and_bgp_read_as_calico_networks_or_not() {
        type Case<'a> = (
            &'a str,
            // calico-node: None for no container, else whether it runs.
            Option<bool>,
            // Felix's port, or why its endpoint is off.
            Result<u16, &'a str>,
            // BGP on, or why not.
            Result<bool, &'a str>,
            Option<Result<Vec<crate::bgp::Session>, String>>,
            Option<Result<(), String>>,
            Felix,
            Bgp,
            Standing,
        );
        let all_up = vec![
            session("10.0.0.12", "Established"),
            session("10.0.0.13", "Established"),
        ];
        let one_down = vec![
            session("10.0.0.12", "Established"),
            session("10.0.0.13", "Active        Socket: Connection refused"),
            session("10.0.0.14", "Connect"),
        ];
        let bgp_off = "CALICO_NETWORKING_BACKEND is none (policy only): there is no BIRD";
        let felix_off = "FELIX_HEALTHENABLED is not true in calico-node's environment";
        let sessions = |e, t| Bgp::Sessions {
            established: e,
            total: t,
            down: vec![],
        };
        let table: Vec<Case> = vec![
            (
                "networks",
                Some(true),
                Ok(9099),
                Ok(false),
                Some(Ok(all_up.clone())),
                Some(Ok(())),
                Felix::Ready,
                sessions(2, 2),
                Standing::Converged,
            ),
            (
                "the first node of a mesh has no peer",
                Some(true),
                Ok(9099),
                Ok(false),
                Some(Ok(vec![])),
                Some(Ok(())),
                Felix::Ready,
                sessions(0, 0),
                Standing::Converged,
            ),
            (
                "peers down",
                Some(true),
                Ok(9099),
                Ok(false),
                Some(Ok(one_down)),
                Some(Ok(())),
                Felix::Ready,
                Bgp::Sessions {
                    established: 1,
                    total: 3,
                    down: vec![
                        "10.0.0.13 Active (Socket: Connection refused)".into(),
                        "10.0.0.14 Connect".into(),
                    ],
                },
                Standing::Unhealthy,
            ),
            (
                "BIRD unreadable",
                Some(true),
                Ok(9099),
                Ok(false),
                Some(Err("birdcl printed nothing".into())),
                Some(Ok(())),
                Felix::Ready,
                Bgp::Unreadable("cannot read BIRD's sessions: birdcl printed nothing".into()),
                Standing::Unhealthy,
            ),
            (
                "Felix not ready",
                Some(true),
                Ok(9099),
                Ok(false),
                Some(Ok(all_up.clone())),
                Some(Err("Felix is not ready: /readiness answered 503".into())),
                Felix::NotReady("Felix is not ready: /readiness answered 503".into()),
                sessions(2, 2),
                Standing::Unhealthy,
            ),
            (
                "both off: policy only, no health endpoint",
                Some(true),
                Err(felix_off),
                Err(bgp_off),
                None,
                None,
                Felix::NotChecked(format!("off: {felix_off}")),
                Bgp::NotChecked(format!("off: {bgp_off}")),
                Standing::Converged,
            ),
            (
                "calico-node stopped: drift, not health",
                Some(false),
                Ok(9099),
                Ok(false),
                Some(Err("Error: container c1 is not running".into())),
                Some(Err(
                    "Felix's health endpoint on port 9099 does not answer".into()
                )),
                Felix::NotChecked("calico-node is not running".into()),
                Bgp::NotChecked("calico-node is not running".into()),
                Standing::Converged,
            ),
            (
                "no calico-node yet",
                None,
                Ok(9099),
                Ok(false),
                Some(Err("Error: No such container: calico-node".into())),
                Some(Err(
                    "Felix's health endpoint on port 9099 does not answer".into()
                )),
                Felix::NotChecked("no calico-node container".into()),
                Bgp::NotChecked("no calico-node container".into()),
                Standing::Converged,
            ),
        ];
        for (name, node, felix_on, bgp_on, bird, answer, want_felix, want_bgp, standing) in table {
            let mut want = desired();
            want.node.as_mut().unwrap().node_checks = Some(crate::desired::NodeChecks {
                felix: felix_on.map_err(str::to_string),
                bgp: bgp_on.map_err(str::to_string),
            });
            let mut facts = converged_facts(&want);
            match node {
                None => {
                    facts.containers.remove("calico-node");
                }
                Some(running) => facts.containers.get_mut("calico-node").unwrap().running = running,
            }
            facts.bgp = bird;
            let mut r = reading(facts);
            r.felix = answer;
            let s = seen(&agent(Role::Private), &want, r);
            assert_eq!((&s.felix, &s.bgp), (&want_felix, &want_bgp), "{name}");
            // What drift says of calico-node is the planners' business:
            // only health is compared here.
            let host = HostStatus {
                host: "agent-1".into(),
                seen: Ok(Seen { drift: vec![], ..s }),
            };
            assert_eq!(host.standing(), standing, "{name}");
        }
    }

    #[test]
    fn operator_checks_keep_their_order_and_a_failure_is_unhealthy() {
        let want = desired();
        let mut r = reading(converged_facts(&want));
        r.checks = vec![
            ("dns".into(), Ok(())),
            (
                "app".into(),
                Err("check app failed (exit 3): starting | no route".into()),
            ),
        ];
        let s = seen(&agent(Role::Private), &want, r);
        assert_eq!(
            s.checks,
            [
                CheckSeen {
                    name: "dns".into(),
                    result: Ok(())
                },
                CheckSeen {
                    name: "app".into(),
                    result: Err("check app failed (exit 3): starting | no route".into())
                },
            ]
        );
        let host = HostStatus {
            host: "agent-1".into(),
            seen: Ok(s),
        };
        assert_eq!(host.standing(), Standing::Unhealthy);
    }

    #[test]
    fn without_a_managed_calico_node_there_is_nothing_to_ask() {
        let mut want = desired();
        let facts = converged_facts(&want);
        want.node = None;
        let s = seen(&agent(Role::Private), &want, reading(facts));
        let why = "not managed (node.enabled is false)".to_string();
        assert_eq!(
            (s.felix, s.bgp),
            (Felix::NotChecked(why.clone()), Bgp::NotChecked(why))
        );
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
