//! The rollout: preflight every host, stage in parallel, then restart in
//! rolling batches under a failure budget. Each host's outcome is a value in
//! the report; one host's failure never aborts the others mid-step.

mod batches;
mod host;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::desired::Desired;
use crate::facts;
use crate::inventory::{Agent, FailureBudget, RolloutConfig};
use crate::report::{Event, Halt, Report, Reporter, Status};
use crate::shell::privileged;
use crate::steps;
use crate::transport::{Connector, Stdin, Transport, TransportError};

use host::{HostRun, Policy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// Probe and plan; write nothing.
    Plan,
    /// Take back the last apply, from each host's undo record.
    Rollback,
}

pub struct Options {
    /// How many hosts are worked on at once.
    pub forks: usize,
    pub mode: Mode,
    /// Identifies this run in undo records.
    pub run_id: String,
    /// Stop after the canary batch has proved healthy.
    pub pause_after_canary: bool,
    pub rollout: RolloutConfig,
}

/// Runs `work` on every item with at most `permits` at once, keeping order.
async fn fan_out<T, R, F, Fut>(items: Vec<T>, permits: usize, work: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(permits.max(1)));
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let fut = work(item);
        tasks.push(tokio::spawn(async move {
            let out = fut.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("a host task panicked"));
    }
    out
}

fn connect_status(e: &TransportError) -> Status {
    match e {
        TransportError::Connect { .. }
        | TransportError::ConnectTimeout { .. }
        | TransportError::Ssh(_) => Status::Unreachable,
        _ => Status::Failed,
    }
}

async fn preflight<C: Connector>(
    connector: Arc<C>,
    agent: Agent,
    want: Desired,
    mode: Mode,
    reporter: Arc<dyn Reporter>,
) -> HostRun<C::Session> {
    let session = match connector.connect(&agent).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let status = connect_status(&e);
            return HostRun::unreachable(agent, status, e.to_string());
        }
    };
    reporter.event(Event::Connected { host: &agent.name });
    let script = facts::probe_script(&want);
    let probed = session
        .exec(&privileged(&script, agent.ssh.needs_sudo()), Stdin::Empty)
        .await;
    let facts = match probed {
        Err(e) => {
            let status = connect_status(&e);
            return HostRun::unreachable(agent, status, e.to_string());
        }
        Ok(out) => match facts::parse(out.exit_status, &out.stdout, &out.stderr) {
            Ok(f) => f,
            Err(e) => {
                session.close().await;
                return HostRun::unreachable(agent, Status::Failed, e.to_string());
            }
        },
    };
    let plans = match mode {
        Mode::Rollback => steps::rollback::plan(&agent, facts.undo.as_ref()),
        Mode::Apply | Mode::Plan => steps::plan_host(&agent, &want, &facts),
    };
    HostRun::planned(agent, session, plans, mode == Mode::Plan)
}

fn failed_hosts<S: Transport>(runs: &[HostRun<S>]) -> Vec<&str> {
    runs.iter()
        .filter(|r| r.failed())
        .map(|r| r.agent.name.as_str())
        .collect()
}

/// Returns why the rollout must stop, if more hosts failed than allowed.
/// Failures add up over the whole run; unreachable hosts count too.
fn over_budget<S: Transport>(runs: &[HostRun<S>], budget: &FailureBudget) -> Option<String> {
    let failed = failed_hosts(runs);
    let allowed = budget.allowed(runs.len());
    (failed.len() > allowed).then(|| {
        format!(
            "{} of {} host(s) failed ({}), more than rollout.max_failures ({budget}) allows",
            failed.len(),
            runs.len(),
            failed.join(", ")
        )
    })
}

/// Runs the whole rollout over `hosts` (agent with its desired state).
pub async fn run<C: Connector>(
    connector: Arc<C>,
    hosts: Vec<(Agent, Desired)>,
    opts: Options,
    reporter: Arc<dyn Reporter>,
) -> Report {
    let selected = hosts.len();
    let budget = &opts.rollout.max_failures;
    let policy = Policy {
        health_timeout: opts.rollout.health_timeout,
        min_healthy: opts.rollout.min_healthy,
        // A rollback has nothing of its own to take back.
        revert: opts.rollout.revert && opts.mode == Mode::Apply,
    };

    reporter.event(Event::PreflightStarted { hosts: selected });
    let mode = opts.mode;
    let dry_run = mode == Mode::Plan;
    let mut runs = fan_out(hosts, opts.forks, |(agent, want)| {
        preflight(connector.clone(), agent, want, mode, reporter.clone())
    })
    .await;
    for run in &runs {
        if run.session.is_none() {
            for step in run.results.iter().flatten().take(1) {
                reporter.event(Event::StepFinished {
                    host: &run.agent.name,
                    step: step.step,
                    status: step.status,
                    message: &step.message,
                });
            }
        }
    }

    let mut halt = over_budget(&runs, budget).map(Halt::Preflight);
    if let Some(Halt::Preflight(why)) = &halt
        && !dry_run
    {
        reporter.event(Event::Notice(&format!("stopping before any change: {why}")));
        for run in &mut runs {
            run.skip_rest("not started: too many hosts failed preflight", None);
        }
    }

    if halt.is_none() && !dry_run {
        let staging: Vec<usize> = (0..runs.len())
            .filter(|&i| runs[i].session.is_some() && !runs[i].failed())
            .collect();
        reporter.event(Event::StageStarted {
            hosts: staging.len(),
        });
        runs = run_phase(
            runs,
            &staging,
            opts.forks,
            &reporter,
            &policy,
            |mut run, rep, policy| async move {
                run.stage(&policy, rep.as_ref()).await;
                run
            },
        )
        .await;
        if let Some(why) = over_budget(&runs, budget) {
            halt = Some(Halt::Budget(format!("{why}; no batch was started")));
        }

        let work: Vec<(usize, Option<&str>)> = (0..runs.len())
            .filter(|&i| runs[i].has_batch_work())
            .map(|i| (i, runs[i].agent.zone.as_deref()))
            .collect();
        let batches = batches::split(&work, &opts.rollout, selected);
        let total = batches.len();
        for (index, batch) in batches.iter().enumerate() {
            if halt.is_some() {
                break;
            }
            let names: Vec<String> = batch
                .hosts
                .iter()
                .map(|&i| runs[i].agent.name.clone())
                .collect();
            reporter.event(Event::BatchStarted {
                index: index + 1,
                total,
                canary: batch.canary,
                hosts: &names,
            });
            runs = run_phase(
                runs,
                &batch.hosts,
                opts.forks,
                &reporter,
                &policy,
                |mut run, rep, policy| async move {
                    run.roll(&policy, rep.as_ref()).await;
                    run
                },
            )
            .await;
            if let Some(why) = over_budget(&runs, budget) {
                halt = Some(Halt::Budget(format!(
                    "{why}; stopped after batch {} of {total}",
                    index + 1
                )));
            } else if batch.canary && opts.pause_after_canary && index + 1 < total {
                halt = Some(Halt::Paused(format!(
                    "paused after the canary batch ({}) as asked; run apply --resume to go on",
                    names.join(", ")
                )));
            }
        }
        if let Some(Halt::Budget(why) | Halt::Paused(why)) = &halt {
            reporter.event(Event::Notice(&format!("rollout stopped: {why}")));
            for run in &mut runs {
                run.skip_rest("not run: the rollout stopped", None);
            }
        }
    }

    if !dry_run {
        let touched: Vec<usize> = (0..runs.len())
            .filter(|&i| runs[i].session.is_some())
            .collect();
        let run_id = opts.run_id.clone();
        runs = run_phase(
            runs,
            &touched,
            opts.forks,
            &reporter,
            &policy,
            move |run, rep, _| {
                let run_id = run_id.clone();
                async move {
                    if let Err(e) = run.record_undo(mode, &run_id).await {
                        rep.event(Event::Notice(&format!(
                            "{}: could not update the undo record: {e}",
                            run.agent.name
                        )));
                    }
                    run
                }
            },
        )
        .await;
    }
    for run in &runs {
        if let Some(s) = &run.session {
            s.close().await;
        }
    }
    Report {
        dry_run,
        hosts: runs.into_iter().map(HostRun::into_report).collect(),
        halt,
    }
}

/// Runs `work` on the hosts at `indices` (in parallel, bounded), putting
/// each host back in its place afterwards.
async fn run_phase<S, F, Fut>(
    runs: Vec<HostRun<S>>,
    indices: &[usize],
    forks: usize,
    reporter: &Arc<dyn Reporter>,
    policy: &Policy,
    work: F,
) -> Vec<HostRun<S>>
where
    S: Transport,
    F: Fn(HostRun<S>, Arc<dyn Reporter>, Policy) -> Fut,
    Fut: Future<Output = HostRun<S>> + Send + 'static,
{
    let mut slots: Vec<Option<HostRun<S>>> = runs.into_iter().map(Some).collect();
    let taken: Vec<(usize, HostRun<S>)> = indices
        .iter()
        .map(|&i| (i, slots[i].take().expect("each host is in one phase once")))
        .collect();
    let done = fan_out(taken, forks, |(i, run)| {
        let fut = work(run, reporter.clone(), policy.clone());
        async move { (i, fut.await) }
    })
    .await;
    for (i, run) in done {
        slots[i] = Some(run);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every host came back"))
        .collect()
}
