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
    script.once("systemctl restart -- docker", Reply::Hang);
    let started = tokio::time::Instant::now();
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
    // 70 s for the hung restart; the revert's gate passes at once.
    assert!(started.elapsed() < Duration::from_secs(75));
}

#[tokio::test(start_paused = true)]
async fn a_file_dockerd_refuses_is_not_reverted_and_restarts_nothing() {
    let (script, session, mut run) = docker_change().await;
    script.on(
        "target=/etc/docker/daemon.json",
        Reply::Exit(1, "dockerd refuses the new /etc/docker/daemon.json".into()),
    );
    // The refusal came before the history record: nothing to take back.
    script.once("undo nothing", Reply::Exit(0, "undo nothing\n".into()));
    run.roll(&session, &policy(), &Quiet).await;

    let docker = run.results[1].as_ref().unwrap();
    assert_eq!(docker.status, Status::Failed);
    assert_eq!(docker.restarts, 0);
    assert_eq!(sent(&script, "systemctl restart"), 0);
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
