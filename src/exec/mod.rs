//! The executor: preflight every host, stage in parallel, then change in
//! rolling batches under a failure budget, with a lock heartbeat and a
//! journal for `--resume`. Each host's outcome is a value in the report;
//! one host's failure never aborts the others mid-step.
//!
//! Signals: the first Ctrl-C or SIGTERM cuts preflight short (nothing is
//! touched there), lets every host finish the step it is in, and starts
//! nothing new; the second cuts everything off. Either way the journal is
//! saved, the locks are released where the agents can be reached, and the
//! report is printed.

mod barrier;
mod batches;
mod change;
mod error;
mod estimate;
mod gates;
mod heartbeat;
mod host;
mod phase;
mod preflight;
mod record;
mod revert;
mod session;
pub mod status;
#[cfg(test)]
mod tests;
mod unlock;
mod waits;

pub use unlock::{Unlocked, unlock};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::desired::Desired;
use crate::inventory::{Agent, FailureBudget, RolloutConfig};
use crate::journal::{HostEntry, Journal, JournalStatus, RunState};
use crate::layout::Layout;
use crate::remote;
use crate::report::{Event, Halt, Report, Reporter, Status, StepResult};
use crate::shutdown::Shutdown;
use crate::transport::{Connector, Stdin};

use heartbeat::Fleet;
use host::{HostRun, Policy};
use phase::{Cut, Ended};
pub use preflight::LockRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// Probe and plan; write nothing.
    Plan,
    /// Take back the last apply, from each host's run history.
    Rollback,
}

pub struct Options {
    /// How many hosts are worked on at once.
    pub forks: usize,
    pub mode: Mode,
    pub lock: LockRequest,
    /// Stop after the canary batch has proved healthy.
    pub pause_after_canary: bool,
    pub rollout: RolloutConfig,
    pub shutdown: Shutdown,
    /// The journal to keep (apply only), and where it is saved.
    pub journal: Option<(Journal, PathBuf)>,
    pub layout: Layout,
    /// Hash every managed file, trusting no install manifest.
    pub verify: bool,
    /// Keep environment values in plan's diffs.
    pub show_secrets: bool,
}

static INTERNAL_ERROR: AtomicBool = AtomicBool::new(false);

/// A host's task panicked: the run goes on, and ends with exit 1.
pub fn note_internal_error() {
    INTERNAL_ERROR.store(true, Ordering::SeqCst);
}

pub fn internal_error_happened() -> bool {
    INTERNAL_ERROR.load(Ordering::SeqCst)
}

/// How long the final lock release may take, whatever the agents do.
const RELEASE_DEADLINE: Duration = Duration::from_secs(20);

fn failed_hosts(runs: &[HostRun]) -> Vec<&str> {
    runs.iter()
        .filter(|r| r.failed())
        .map(|r| r.agent.name.as_str())
        .collect()
}

/// Returns why the rollout must stop, if more hosts failed than allowed.
/// Failures add up over the whole run; unreachable hosts count too.
fn over_budget(runs: &[HostRun], budget: &FailureBudget) -> Option<String> {
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

/// A host that an interrupted run already finished: `--resume` reports it
/// from the journal and leaves it alone.
fn resumed(index: usize, agent: Agent, entry: &HostEntry) -> HostRun {
    let mut run = HostRun::waiting(index, agent);
    run.mesh = entry.mesh.clone();
    for (slot, step) in run.results.iter_mut().zip(&entry.steps) {
        let status = match step.status {
            JournalStatus::Changed => Status::Changed,
            JournalStatus::Skipped => Status::Skipped,
            _ => Status::Ok,
        };
        *slot = Some(StepResult {
            step: step.step,
            status,
            message: if step.message.is_empty() {
                "(earlier run)".to_string()
            } else {
                format!("{} (earlier run)", step.message)
            },
            restarted: false,
            restarts: 0,
            diff: Vec::new(),
            duration_ms: 0,
            gates: Vec::new(),
            notes: Vec::new(),
        });
    }
    run.resumed = true;
    run
}

/// Runs the whole rollout over `hosts` (agent with its desired state).
/// `done` holds the hosts a resumed run finished, with their journal steps.
pub async fn run<C: Connector>(
    connector: Arc<C>,
    hosts: Vec<(Agent, Desired)>,
    done: BTreeMap<String, HostEntry>,
    mut opts: Options,
    reporter: Arc<dyn Reporter>,
) -> Report {
    let selected = hosts.len();
    let resumed_hosts = done.len();
    let mode = opts.mode;
    let dry_run = mode == Mode::Plan;
    let rollout = &opts.rollout;
    let policy = Policy {
        mode,
        health_timeout: rollout.health_timeout,
        min_healthy: rollout.min_healthy,
        command_timeout: rollout.command_timeout,
        pull_timeout: rollout.pull_timeout,
        // A rollback has nothing of its own to take back.
        revert: rollout.revert && mode == Mode::Apply,
        stop: opts.shutdown.clone(),
        layout: opts.layout.clone(),
        run_id: opts.lock.owner.id.clone(),
        uploads: Arc::new(tokio::sync::Semaphore::new(host::UPLOADS_AT_ONCE)),
    };
    let record = record::Record::shared(opts.journal.take(), reporter.clone());
    let fleet = Arc::new(Fleet::new(selected));
    let beat = (!dry_run).then(|| {
        let record = record.clone();
        heartbeat::start(
            fleet.clone(),
            opts.lock.owner.id.clone(),
            policy.command_timeout,
            opts.forks,
            reporter.clone(),
            Box::new(move || record.lock().unwrap_or_else(|p| p.into_inner()).touch()),
        )
    });

    let mut runs: Vec<HostRun> = Vec::with_capacity(selected);
    let mut wants: Vec<Option<Desired>> = Vec::with_capacity(selected);
    let mut todo = Vec::new();
    for (i, (agent, want)) in hosts.into_iter().enumerate() {
        match done.get(&agent.name) {
            Some(entry) => {
                runs.push(resumed(i, agent, entry));
                wants.push(None);
            }
            None => {
                runs.push(HostRun::waiting(i, agent));
                wants.push(Some(want));
                todo.push(i);
            }
        }
    }
    record::save(&record, &runs, RunState::Running);

    // Preflight. Nothing is touched on a host here, so the first signal
    // cuts it short at once.
    reporter.event(Event::PreflightStarted { hosts: todo.len() });
    let wants = Arc::new(wants);
    let preflight = Arc::new(PreflightArgs {
        connector: connector.clone(),
        mode,
        lock: opts.lock.clone(),
        layout: opts.layout.clone(),
        verify: opts.verify,
        show_secrets: opts.show_secrets,
        deadline: policy.command_timeout,
        reporter: reporter.clone(),
        fleet: fleet.clone(),
    });
    let mut stopping = opts.shutdown.clone();
    let ended = phase::run(
        &mut runs,
        &todo,
        &phase::limit(opts.forks),
        &fleet,
        async move { stopping.stopping().await },
        Cut::NotStarted(host::INTERRUPTED),
        |run, _| {
            let (args, wants) = (preflight.clone(), wants.clone());
            async move {
                let i = run.index;
                let want = wants[i]
                    .clone()
                    .expect("a host to probe has a desired state");
                let p = preflight::Preflight {
                    connector: args.connector.clone(),
                    mode: args.mode,
                    lock: &args.lock,
                    layout: &args.layout,
                    verify: args.verify,
                    show_secrets: args.show_secrets,
                    deadline: args.deadline,
                    reporter: args.reporter.clone(),
                };
                p.host(i, run.agent, want, &args.fleet.hosts[i]).await
            }
        },
    )
    .await;
    for run in runs.iter().filter(|r| r.plans.is_empty() && !r.resumed) {
        if let Some(step) = run.results.iter().flatten().next() {
            reporter.event(Event::StepFinished {
                host: &run.agent.name,
                step: step.step,
                status: step.status,
                message: &step.message,
            });
        }
    }

    let budget = &opts.rollout.max_failures;
    let mut halt = if ended == Ended::Cut || opts.shutdown.requested() {
        Some(Halt::Interrupted("interrupted during preflight".into()))
    } else {
        over_budget(&runs, budget).map(Halt::Preflight)
    };
    if let Some(Halt::Preflight(why)) = &halt
        && !dry_run
    {
        reporter.event(Event::Notice(&format!("stopping before any change: {why}")));
        for run in &mut runs {
            run.skip_rest("not started: too many hosts failed preflight", None);
        }
    }

    let estimate = dry_run.then(|| {
        let work: Vec<(usize, Option<&str>)> = (0..runs.len())
            .filter(|&i| {
                runs[i]
                    .plans
                    .iter()
                    .any(|p| matches!(p.plan, crate::steps::Plan::Change(_)))
            })
            .map(|i| (i, runs[i].agent.zone.as_deref()))
            .collect();
        let batches = batches::split(&work, &opts.rollout, selected);
        estimate::estimate(&runs, &batches, opts.rollout.min_healthy)
    });
    if halt.is_none() && !dry_run {
        halt = roll_out(
            &mut runs,
            &fleet,
            &connector,
            &opts,
            &policy,
            &reporter,
            &record,
            resumed_hosts,
        )
        .await;
    }
    if let Some(Halt::Interrupted(why) | Halt::Budget(why) | Halt::Mesh(why) | Halt::Paused(why)) =
        &halt
        && !dry_run
    {
        reporter.event(Event::Notice(&format!("rollout stopped: {why}")));
        let note = match halt {
            Some(Halt::Interrupted(_)) => host::INTERRUPTED,
            _ => "not run: the rollout stopped",
        };
        for run in &mut runs {
            run.skip_rest(note, None);
        }
    }
    if let Some(Halt::Aborted(why)) = &halt {
        reporter.event(Event::Notice(&format!("aborted: {why}")));
    }

    if let Some(beat) = beat {
        beat.stop().await;
    }
    let state = match &halt {
        None => RunState::Finished,
        Some(Halt::Interrupted(_)) => RunState::Interrupted,
        Some(Halt::Aborted(_)) => RunState::Aborted,
        Some(_) if dry_run => RunState::Finished,
        Some(_) => RunState::Stopped,
    };
    record::save(&record, &runs, state);
    // A step cut off by the second signal may still run on its agent, up
    // to its own deadline: that agent keeps the lock until it goes stale.
    let in_flight: Vec<usize> = runs
        .iter()
        .filter(|r| {
            r.results
                .iter()
                .flatten()
                .any(|s| s.status == Status::Unknown)
        })
        .map(|r| r.index)
        .collect();
    release_locks(&fleet, &in_flight, &policy, &reporter).await;
    Report {
        dry_run,
        hosts: runs.into_iter().map(HostRun::into_report).collect(),
        halt,
        estimate,
    }
}

/// What every host's preflight shares.
struct PreflightArgs<C: Connector> {
    connector: Arc<C>,
    mode: Mode,
    lock: LockRequest,
    layout: Layout,
    verify: bool,
    show_secrets: bool,
    deadline: Duration,
    reporter: Arc<dyn Reporter>,
    fleet: Arc<Fleet<C>>,
}

/// Stage, then the batches. Returns why the rollout stopped early.
#[allow(clippy::too_many_arguments)]
async fn roll_out<C: Connector>(
    runs: &mut [HostRun],
    fleet: &Arc<Fleet<C>>,
    connector: &Arc<C>,
    opts: &Options,
    policy: &Policy,
    reporter: &Arc<dyn Reporter>,
    record: &record::SharedRecord,
    resumed_hosts: usize,
) -> Option<Halt> {
    let budget = &opts.rollout.max_failures;
    let selected = runs.len();
    let aborted = || {
        let mut stop = opts.shutdown.clone();
        async move { stop.aborted().await }
    };
    let abort_halt = |during: &str| Some(Halt::Aborted(format!("stopped at once during {during}")));
    // Staging touches nothing a host runs on, so the first signal cuts it.
    let stopping = || {
        let mut stop = opts.shutdown.clone();
        async move { stop.stopping().await }
    };
    let staging_cut = || match opts.shutdown.level() {
        crate::shutdown::Stop::Abort => abort_halt("staging"),
        _ => Some(Halt::Interrupted("interrupted while staging".into())),
    };

    let work: Vec<(usize, Option<&str>)> = (0..runs.len())
        .filter(|&i| runs[i].has_batch_work())
        .map(|i| (i, runs[i].agent.zone.as_deref()))
        .collect();
    // A resumed run does not repeat a canary the earlier run passed.
    let mut plan = opts.rollout.clone();
    if resumed_hosts >= plan.canary {
        plan.canary = 0;
    }
    let batches = batches::split(&work, &plan, selected);
    reporter.event(Event::RolloutStarted {
        hosts: work.len(),
        estimate: estimate::estimate(runs, &batches, opts.rollout.min_healthy).total,
    });

    // Staging starts on every host at once, in batch order, and goes on in
    // the background: a batch starts as soon as its own hosts are staged,
    // while the hosts of later batches still upload and pull. Nothing a
    // host runs on is touched before its own staging has succeeded.
    let staging: Vec<usize> = batches
        .iter()
        .flat_map(|b| b.hosts.iter().copied())
        .filter(|&i| fleet.get(i).is_some() && !runs[i].failed() && runs[i].has_staging())
        .collect();
    if !staging.is_empty() {
        reporter.event(Event::StageStarted {
            hosts: staging.len(),
        });
    }
    // Staging and the batches overlap: one limit keeps them within --forks.
    let hosts_at_once = phase::limit(opts.forks);
    let mut staged = {
        let (policy, reporter) = (policy.clone(), reporter.clone());
        phase::spawn(
            runs,
            &staging,
            hosts_at_once.clone(),
            fleet,
            move |mut run, session| {
                let (policy, reporter) = (policy.clone(), reporter.clone());
                async move {
                    let session = session.expect("a staged host is connected");
                    run.stage(&session, &policy, reporter.as_ref()).await;
                    run
                }
            },
        )
    };

    let total = batches.len();
    // The hosts the batches have changed so far, an earlier run's too.
    let mut done: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].resumed).collect();
    for (index, batch) in batches.iter().enumerate() {
        if opts.shutdown.requested() {
            return Some(Halt::Interrupted(format!(
                "interrupted before batch {} of {total}",
                index + 1
            )));
        }
        if staged.join(runs, &batch.hosts, stopping()).await == Ended::Cut {
            return staging_cut();
        }
        if let Some(why) = over_budget(runs, budget) {
            if index == 0 {
                // Nothing was touched anywhere: let every host's staging
                // end, so the report names each host that cannot stage.
                let rest = staged.outstanding();
                if staged.join(runs, &rest, stopping()).await == Ended::Cut {
                    return staging_cut();
                }
                let why = over_budget(runs, budget).unwrap_or(why);
                record::save(record, runs, RunState::Running);
                return Some(Halt::Budget(format!("{why}; no batch was started")));
            }
            return Some(Halt::Budget(format!(
                "{why}; stopped before batch {} of {total}",
                index + 1
            )));
        }
        let hosts: Vec<usize> = batch
            .hosts
            .iter()
            .copied()
            .filter(|&i| runs[i].has_batch_work())
            .collect();
        if hosts.is_empty() && batch.canary {
            // Nothing would prove the change before the rest of the fleet.
            return Some(Halt::Budget(
                "no canary host could be staged; no batch was started".into(),
            ));
        }
        if hosts.is_empty() {
            hosts_finished(reporter.as_ref(), runs, &batch.hosts);
            continue;
        }
        let meshed = done
            .iter()
            .filter(|&&i| barrier::passed_mesh(&runs[i]).is_some())
            .count();
        if meshed > 0 {
            reporter.event(Event::MeshCheck {
                before_batch: index + 1,
                total,
                hosts: meshed,
            });
            let check = barrier::mesh(
                runs,
                &done,
                fleet,
                connector,
                &hosts_at_once,
                policy,
                reporter,
            );
            tokio::select! {
                result = check => if let Err(down) = result {
                    return Some(Halt::Mesh(format!(
                        "the BGP mesh is not whole again ({down}); stopped before batch {} of {total}",
                        index + 1
                    )));
                },
                () = stopping() => return Some(Halt::Interrupted(format!(
                    "interrupted before batch {} of {total}",
                    index + 1
                ))),
            }
        }
        let names: Vec<String> = hosts.iter().map(|&i| runs[i].agent.name.clone()).collect();
        reporter.event(Event::BatchStarted {
            index: index + 1,
            total,
            canary: batch.canary,
            hosts: &names,
        });
        let ended = phase::run(
            runs,
            &hosts,
            &hosts_at_once,
            fleet,
            aborted(),
            Cut::Unknown,
            |mut run, session| {
                let (policy, reporter) = (policy.clone(), reporter.clone());
                async move {
                    match session {
                        Some(session) => run.roll(&session, &policy, reporter.as_ref()).await,
                        None => run.mark_failed(Status::Unreachable, "not connected"),
                    }
                    run
                }
            },
        )
        .await;
        hosts_finished(reporter.as_ref(), runs, &batch.hosts);
        done.extend(hosts.iter().copied());
        record::save(record, runs, RunState::Running);
        if ended == Ended::Cut {
            return abort_halt(&format!("batch {} of {total}", index + 1));
        }
        if let Some(why) = over_budget(runs, budget) {
            return Some(Halt::Budget(format!(
                "{why}; stopped after batch {} of {total}",
                index + 1
            )));
        }
        if batch.canary && opts.pause_after_canary && index + 1 < total {
            return Some(Halt::Paused(format!(
                "paused after the canary batch ({}) as asked; run apply --resume to go on",
                names.join(", ")
            )));
        }
        if opts.shutdown.requested() {
            return Some(Halt::Interrupted(format!(
                "interrupted during batch {} of {total}",
                index + 1
            )));
        }
    }
    None
}

/// Tells the UI that a batch's hosts are through, those that failed to
/// stage and so never started included.
fn hosts_finished(reporter: &dyn Reporter, runs: &[HostRun], hosts: &[usize]) {
    for &i in hosts {
        reporter.event(Event::HostFinished {
            host: &runs[i].agent.name,
            failed: runs[i].failed(),
        });
    }
}

/// Releases this run's locks on every host it holds one on, but those
/// whose step was cut off in flight, connecting again where the connection
/// dropped, within [`RELEASE_DEADLINE`]; then closes every connection.
async fn release_locks<C: Connector>(
    fleet: &Fleet<C>,
    in_flight: &[usize],
    policy: &Policy,
    reporter: &Arc<dyn Reporter>,
) {
    let sessions = (0..fleet.hosts.len()).filter_map(|i| Some((i, fleet.get(i)?)));
    let release = futures::future::join_all(sessions.map(|(i, session)| async move {
        if session.locked() && in_flight.contains(&i) {
            reporter.event(Event::Notice(&format!(
                "{}: its lock is kept: a command cut off there may still be running, up to \
                 its deadline; the lock goes stale {}s after that, or run unlock once the \
                 agent is quiet",
                session.agent.name,
                crate::lock::STALE_AFTER.as_secs()
            )));
        } else if session.locked() {
            let script = remote::lock::release(&policy.run_id, policy.command_timeout);
            let mut result = session.run(&script, Stdin::Empty).await;
            if matches!(result, Err(error::StepError::Unreachable(_))) {
                result = match session.reconnect().await {
                    Ok(()) => session.run(&script, Stdin::Empty).await,
                    Err(e) => Err(e),
                };
            }
            match result {
                Ok(_) => session.set_locked(false),
                Err(e) => reporter.event(Event::Notice(&format!(
                    "{}: could not release the agent's lock: {e}",
                    session.agent.name
                ))),
            }
        }
        session.close().await;
    }));
    if tokio::time::timeout(RELEASE_DEADLINE, release)
        .await
        .is_err()
    {
        reporter.event(Event::Notice(
            "gave up releasing locks after 20s; they go stale on their own",
        ));
    }
}
