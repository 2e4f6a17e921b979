//! A host's state machine driven end to end over a scripted transport, on
//! tokio's paused clock: what a hang, a refusal or a lost lock does to the
//! host's results, without SSH.

use std::sync::Arc;
use std::time::Duration;

use super::Mode;
use super::host::{HostRun, HostState, Policy};
use super::session::HostSession;
use crate::inventory::Role;
use crate::layout::Layout;
use crate::report::{Event, Reporter, Status};
use crate::shutdown::Shutdown;
use crate::step::StepName;
use crate::steps::testing::{agent, converged_facts, desired};
use crate::steps::{Plan, StepPlan};
use crate::transport::testing::{Reply, Scripted, ScriptedConnector};

struct Quiet;
impl Reporter for Quiet {
    fn event(&self, _: Event<'_>) {}
}

fn policy() -> Policy {
    Policy {
        mode: Mode::Apply,
        health_timeout: Duration::from_secs(60),
        min_healthy: Duration::from_secs(3),
        command_timeout: Duration::from_secs(30),
        pull_timeout: Duration::from_secs(300),
        revert: true,
        stop: Shutdown::manual().0,
        layout: Layout::default(),
        run_id: "run-1".into(),
        uploads: Arc::new(tokio::sync::Semaphore::new(1)),
    }
}

/// A healthy docker, as the gate script reports it.
fn docker_healthy() -> String {
    let out = "ActiveState=active\nSubState=running\nMainPID=40\nNRestarts=0\n\
               ActiveEnterTimestampMonotonic=7\nClusterStore=\"etcd://127.0.0.1:2379\"";
    format!("gate0 0 {}\n{out}\nerr0 0 0\n\n", out.len())
}

/// The docker step's change on a converged agent whose daemon.json lost
/// its cluster store; every other step is ok.
async fn docker_change() -> (Arc<Scripted>, HostSession<ScriptedConnector>, HostRun) {
    let want = desired();
    let mut facts = converged_facts(&want);
    facts.daemon_json = Some(br#"{"debug": false}"#.to_vec());
    let plans: Vec<StepPlan> = crate::steps::plan_host(&agent(Role::Private), &want, &facts)
        .into_iter()
        .map(|p| match (p.step, p.plan) {
            // The docker gate alone: the containers' gates after it are
            // tested where they are built.
            (StepName::Docker, Plan::Change(mut c)) => {
                c.checks.clear();
                StepPlan {
                    step: StepName::Docker,
                    plan: Plan::Change(c),
                }
            }
            (step, _) => StepPlan {
                step,
                plan: Plan::Ok,
            },
        })
        .collect();
    assert!(matches!(plans[1].plan, Plan::Change(_)));
    let script = Arc::new(Scripted::default());
    script.on("refreshed", Reply::Exit(0, "lock acquired\n".into()));
    script.on("undo nothing", Reply::Exit(0, "undo done\n".into()));
    script.on("out gate0", Reply::Exit(0, docker_healthy()));
    let session = HostSession::connect(
        Arc::new(ScriptedConnector(script.clone())),
        agent(Role::Private),
    )
    .await
    .unwrap();
    session.set_locked(true);
    let run = HostRun::planned(0, agent(Role::Private), plans, false);
    (script, session, run)
}

/// What a host's first batch prints when, after the lock's refresh
/// answers `lock`, its items end with these exit codes and stderr, in
/// order (the items after a failure print nothing).
fn batch_reply_after(lock: (u32, &str), items: &[(u32, &str)]) -> String {
    let mut out = format!("act0 {} {}\n{}\nerr0 0 0\n\n", lock.0, lock.1.len(), lock.1);
    for (k, (code, err)) in items.iter().enumerate() {
        let k = k + 1;
        out.push_str(&format!(
            "act{k} {code} 0\n\nerr{k} 0 {}\n{err}\n",
            err.len()
        ));
    }
    out
}

/// The same, the lock still this run's.
fn batch_reply(items: &[(u32, &str)]) -> String {
    batch_reply_after((0, "lock acquired"), items)
}

fn sent(script: &Scripted, needle: &str) -> usize {
    script
        .commands
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.contains(needle))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_hangs_is_cut_off_and_the_host_reverted() {
    let (script, session, mut run) = docker_change().await;
    // daemon.json goes in, then the agent's own deadline ends the restart.
    script.once(
        "systemctl restart -- docker",
        Reply::Exit(0, batch_reply(&[(0, ""), (124, "")])),
    );
    run.roll(&session, &policy(), &Quiet).await;

    let docker = run.results[1].as_ref().unwrap();
    assert_eq!(docker.status, Status::Reverted, "{}", docker.message);
    assert!(
        docker
            .message
            .starts_with("systemctl restart docker did not finish within 60s"),
        "{}",
        docker.message
    );
    assert_eq!(docker.restarts, 2, "the hung restart and the revert's");
    assert_eq!(run.state, HostState::Reverted);
    assert_eq!(sent(&script, "undo nothing"), 1, "daemon.json put back");
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_agent_stops_answering_ends_at_the_batch_deadline() {
    let (script, session, mut run) = docker_change().await;
    script.once("systemctl restart -- docker", Reply::Hang);
    let started = tokio::time::Instant::now();
    run.roll(&session, &policy(), &Quiet).await;

    let docker = run.results[1].as_ref().unwrap();
    assert_eq!(docker.status, Status::Reverted, "{}", docker.message);
    assert!(
        docker.message.contains("did not finish within"),
        "{}",
        docker.message
    );
    // The lock's, the install's, the restart's and two gate checks'
    // deadlines, plus slack; then the revert, whose gate passes at once.
    assert!(
        started.elapsed() < Duration::from_secs(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_file_dockerd_refuses_is_not_reverted_and_restarts_nothing() {
    let (script, session, mut run) = docker_change().await;
    script.once(
        "target=/etc/docker/daemon.json",
        Reply::Exit(
            0,
            batch_reply(&[(1, "dockerd refuses the new /etc/docker/daemon.json")]),
        ),
    );
    // The refusal came before the history record: nothing to take back.
    script.once("undo nothing", Reply::Exit(0, "undo nothing\n".into()));
    run.roll(&session, &policy(), &Quiet).await;

    let docker = run.results[1].as_ref().unwrap();
    assert_eq!(docker.status, Status::Failed);
    assert!(
        docker.message.contains("dockerd refuses"),
        "{}",
        docker.message
    );
    assert_eq!(docker.restarts, 0);
    // Only the step's own batch, which stopped before its restart.
    assert_eq!(sent(&script, "systemctl restart"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_host_whose_lock_changed_hands_is_left_alone() {
    let (script, session, mut run) = docker_change().await;
    // The lock's refresh comes first in the host's first batch, and stops
    // it before anything else runs.
    script.once(
        "systemctl restart -- docker",
        Reply::Exit(
            0,
            batch_reply_after((75, "lock held {\"owner\":\"other-run\"}"), &[]),
        ),
    );
    run.roll(&session, &policy(), &Quiet).await;

    let first = run.results[1].as_ref().unwrap();
    assert_eq!(first.status, Status::Failed);
    assert!(first.message.contains("other-run"), "{}", first.message);
    assert_eq!(first.restarts, 0);
    assert_eq!(
        sent(&script, "undo nothing"),
        0,
        "nothing is taken back either"
    );
    assert_eq!(
        sent(&script, "systemctl restart"),
        1,
        "only the batch that stopped"
    );
    assert!(session.touchable().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_made_again_for_the_revert() {
    let (script, session, mut run) = docker_change().await;
    script.once("systemctl restart -- docker", Reply::Lost);
    run.roll(&session, &policy(), &Quiet).await;

    let docker = run.results[1].as_ref().unwrap();
    assert_eq!(docker.status, Status::Reverted, "{}", docker.message);
    assert!(
        docker.message.contains("connection lost"),
        "{}",
        docker.message
    );
    assert_eq!(
        script.connects.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "connected again"
    );
}

/// A docker step whose batch goes through, restart and both gate checks.
fn docker_batch_healthy() -> String {
    let gate = "ActiveState=active\nSubState=running\nMainPID=40\nNRestarts=0\n\
                ActiveEnterTimestampMonotonic=7\nClusterStore=\"etcd://127.0.0.1:2379\"";
    let mut out = batch_reply(&[(0, ""), (0, "")]);
    for check in ["a", "b"] {
        out.push_str(&format!(
            "{check}gate0 0 {}\n{gate}\n{check}err0 0 0\n\n",
            gate.len()
        ));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_step_costs_one_round_trip_when_its_service_comes_back_at_once() {
    let (script, session, mut run) = docker_change().await;
    script.once(
        "systemctl restart -- docker",
        Reply::Exit(0, docker_batch_healthy()),
    );
    let mut p = policy();
    p.min_healthy = Duration::ZERO;
    run.roll(&session, &p, &Quiet).await;

    let docker = run.results[1].as_ref().unwrap();
    assert_eq!(docker.status, Status::Changed, "{}", docker.message);
    assert_eq!(docker.restarts, 1);
    let sent = script.commands.lock().unwrap().clone();
    // The lock's refresh with the step, then the history's commit with the
    // pending restart's marker cleared.
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[1].contains("pending/docker") && sent[1].contains("applied"));
}

/// What the probe prints for an agent that already runs `want`, after the
/// lock's answer.
fn converged_probe(want: &crate::desired::Desired) -> String {
    let mut out = String::new();
    let mut record = |key: &str, code: u32, text: &str| {
        out.push_str(&format!("{key} {code} {}\n{text}\n", text.len()));
    };
    record("lock", 0, "lock acquired");
    record(
        "units",
        0,
        "Id=calico-etcd-proxy.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n\
         ExecStart={ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// }\nId=docker.service\n\
         LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n\
         Id=dcos-mesos-slave.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n\
         Id=dcos-mesos-slave-public.service\nLoadState=not-found\nActiveState=inactive\nUnitFileState=",
    );
    record("docker_server", 0, "20.10.24");
    record(
        "dockerd_version",
        0,
        "Docker version 20.10.24, build 297e128",
    );
    let containers: Vec<serde_json::Value> = [&want.libnetwork, &want.node]
        .into_iter()
        .flatten()
        .flat_map(|c| {
            [
                serde_json::json!({"Id": "c", "Name": format!("/{}", c.name),
                    "Config": {"Image": c.image.as_str(), "Labels": {crate::desired::SPEC_LABEL: c.spec_hash}},
                    "State": {"Running": true}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}),
                serde_json::json!({"Id": "sha256:i", "RepoTags": [c.image.as_str()]}),
            ]
        })
        .collect();
    record("inspect", 0, &serde_json::to_string(&containers).unwrap());
    record("images", 0, &serde_json::to_string(&containers).unwrap());
    let mut hashes = String::new();
    let mut file = |path: &str, sha: &str| hashes.push_str(&format!("{sha}  {path}\n"));
    let proxy = want.etcd_proxy.as_ref().unwrap();
    file(proxy.unit_file.path.as_str(), &proxy.unit_file.sha256);
    let cni = want.cni.as_ref().unwrap();
    for b in cni.binaries.iter() {
        file(b.path.as_str(), &b.sha256);
    }
    file(cni.config.path.as_str(), &cni.config.sha256);
    for c in [&want.libnetwork, &want.node].into_iter().flatten() {
        file(c.env_file.path.as_str(), &c.env_file.sha256);
    }
    record("hashes", 0, &hashes);
    record(
        "daemon_json",
        0,
        "{\"debug\": false, \"cluster-store\": \"etcd://127.0.0.1:2379\"}\n",
    );
    for key in ["staged", "pending", "etcd_binary", "history"] {
        record(key, 0, "");
    }
    record("mesos_ip", 1, "");
    out
}

#[tokio::test(start_paused = true)]
async fn a_converged_host_costs_two_round_trips() {
    let script = Arc::new(Scripted::default());
    script.on("lk=$(sh -c", Reply::Exit(0, converged_probe(&desired())));
    script.on("rm -f -- \"$lock\"", Reply::Exit(0, "lock free\n".into()));
    let opts = super::Options {
        forks: 1,
        mode: Mode::Apply,
        lock: super::LockRequest {
            owner: crate::lock::LockOwner::current("run-1"),
            takeover_from: None,
        },
        pause_after_canary: false,
        rollout: crate::inventory::RolloutConfig::default(),
        shutdown: Shutdown::manual().0,
        journal: None,
        layout: Layout::default(),
        verify: false,
        show_secrets: false,
    };
    let report = super::run(
        Arc::new(ScriptedConnector(script.clone())),
        vec![(agent(Role::Private), desired())],
        Default::default(),
        opts,
        Arc::new(Quiet),
    )
    .await;
    let statuses: Vec<Status> = report.hosts[0].steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [Status::Ok; 5]);
    let sent = script.commands.lock().unwrap().clone();
    assert_eq!(
        sent.len(),
        2,
        "the lock with the probe, and the release: {sent:#?}"
    );
    assert!(sent[1].contains("rm -f -- \"$lock\""), "{}", sent[1]);
}

/// Keeps every event, as its debug text.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);
impl Reporter for Recorder {
    fn event(&self, e: Event<'_>) {
        self.0.lock().unwrap().push(format!("{e:?}"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_step_reports_what_it_waits_for_and_how_long_it_took() {
    let (script, session, mut run) = docker_change().await;
    // The restart never answers: the controller gives up at its deadline.
    script.once("systemctl restart -- docker", Reply::Hang);
    let events = Recorder::default();
    let started = tokio::time::Instant::now();
    run.roll(&session, &policy(), &events).await;
    let took = started.elapsed();

    let docker = run.results[1].as_ref().unwrap();
    assert_eq!(docker.status, Status::Reverted, "{}", docker.message);
    // The change took its whole deadline (at least the restart's 60 s);
    // the revert after it is not the step's own time.
    assert!(docker.duration_ms >= 60_000, "{}", docker.duration_ms);
    assert!(
        u128::from(docker.duration_ms) <= took.as_millis(),
        "{} of {took:?}",
        docker.duration_ms
    );
    // Steps the plan decided took no time.
    assert_eq!(run.results[0].as_ref().unwrap().duration_ms, 0);
    let events = events.0.lock().unwrap();
    let waits: Vec<&String> = events.iter().filter(|e| e.starts_with("Waiting")).collect();
    assert!(
        waits[0].contains("restarting docker, waiting for the cluster store"),
        "{waits:?}"
    );
    assert!(waits[0].contains("step: Docker"), "{waits:?}");
}
