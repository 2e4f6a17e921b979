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
        .map(|p| match p.step {
            StepName::Docker => p,
            step => StepPlan {
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

/// What a step's batch prints when its items end with these exit codes
/// and stderr, in order (the items after a failure print nothing).
fn batch_reply(items: &[(u32, &str)]) -> String {
    let mut out = String::new();
    for (k, (code, err)) in items.iter().enumerate() {
        out.push_str(&format!(
            "act{k} {code} 0\n\nerr{k} 0 {}\n{err}\n",
            err.len()
        ));
    }
    out
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
    // The install's, the restart's and two gate checks' deadlines, plus
    // slack; then the revert, whose gate passes at once.
    assert!(
        started.elapsed() < Duration::from_secs(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_file_dockerd_refuses_is_not_reverted_and_restarts_nothing() {
    let (script, session, mut run) = docker_change().await;
    script.on(
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
    script.once(
        "refreshed",
        Reply::Exit(75, "lock held {\"owner\":\"other-run\"}\n".into()),
    );
    run.roll(&session, &policy(), &Quiet).await;

    let first = run.results[1].as_ref().unwrap();
    assert_eq!(first.status, Status::Failed);
    assert!(first.message.contains("other-run"), "{}", first.message);
    assert_eq!(sent(&script, "target=/etc/docker/daemon.json"), 0);
    assert_eq!(sent(&script, "systemctl restart"), 0);
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
