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
use crate::inventory::{Agent, RolloutConfig};
use crate::report::{Event, Halt, Report, Reporter, Status};
use crate::shell::privileged;
use crate::steps;
use crate::transport::{Connector, Stdin, Transport, TransportError};

use host::HostRun;

pub struct Options {
    /// How many hosts are worked on at once.
    pub forks: usize,
    /// `plan`: probe and plan, write nothing.
    pub dry_run: bool,
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
    dry_run: bool,
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
    let plans = steps::plan_host(&agent, &want, &facts);
    HostRun::planned(agent, session, plans, dry_run)
}

fn failed_hosts<S: Transport>(runs: &[HostRun<S>]) -> Vec<&str> {
    runs.iter()
        .filter(|r| r.failed())
        .map(|r| r.agent.name.as_str())
        .collect()
}

/// Returns why the rollout must stop, if more hosts failed than allowed.
fn over_budget<S: Transport>(runs: &[HostRun<S>], budget: usize) -> Option<String> {
    let failed = failed_hosts(runs);
    (failed.len() > budget).then(|| {
        format!(
            "{} host(s) failed ({}), more than rollout.max_failures ({budget}) allows",
            failed.len(),
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
    let budget = opts.rollout.max_failures;
    let timeout = opts.rollout.health_timeout;

    reporter.event(Event::PreflightStarted { hosts: selected });
    let dry_run = opts.dry_run;
    let mut runs = fan_out(hosts, opts.forks, |(agent, want)| {
        preflight(connector.clone(), agent, want, dry_run, reporter.clone())
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
            move |mut run, rep| async move {
                run.stage(timeout, rep.as_ref()).await;
                run
            },
        )
        .await;
        if let Some(why) = over_budget(&runs, budget) {
            halt = Some(Halt::Budget(format!("{why}; no batch was started")));
        }

        let work: Vec<usize> = (0..runs.len())
            .filter(|&i| runs[i].has_batch_work())
            .collect();
        let batches = batches::split(&work, &opts.rollout.batch, selected);
        let total = batches.len();
        for (index, batch) in batches.iter().enumerate() {
            if halt.is_some() {
                break;
            }
            let names: Vec<String> = batch.iter().map(|&i| runs[i].agent.name.clone()).collect();
            reporter.event(Event::BatchStarted {
                index: index + 1,
                total,
                hosts: &names,
            });
            runs = run_phase(
                runs,
                batch,
                opts.forks,
                &reporter,
                move |mut run, rep| async move {
                    run.roll(timeout, rep.as_ref()).await;
                    run
                },
            )
            .await;
            if let Some(why) = over_budget(&runs, budget) {
                halt = Some(Halt::Budget(format!(
                    "{why}; stopped after batch {} of {total}",
                    index + 1
                )));
            }
        }
        if let Some(Halt::Budget(why)) = &halt {
            reporter.event(Event::Notice(&format!("rollout stopped: {why}")));
            for run in &mut runs {
                run.skip_rest("not run: the rollout stopped", None);
            }
        }
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
    work: F,
) -> Vec<HostRun<S>>
where
    S: Transport,
    F: Fn(HostRun<S>, Arc<dyn Reporter>) -> Fut,
    Fut: Future<Output = HostRun<S>> + Send + 'static,
{
    let mut slots: Vec<Option<HostRun<S>>> = runs.into_iter().map(Some).collect();
    let taken: Vec<(usize, HostRun<S>)> = indices
        .iter()
        .map(|&i| (i, slots[i].take().expect("each host is in one phase once")))
        .collect();
    let done = fan_out(taken, forks, |(i, run)| {
        let fut = work(run, reporter.clone());
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
