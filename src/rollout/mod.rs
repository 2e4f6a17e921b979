//! The rollout: preflight every host, stage in parallel, then restart in
//! rolling batches under a failure budget, keeping a journal for
//! `--resume`. Each host's outcome is a value in the report; one host's
//! failure never aborts the others mid-step.

mod batches;
mod fanout;
mod host;
mod preflight;
mod revert;
mod run;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::desired::Desired;
use crate::inventory::{Agent, FailureBudget, RolloutConfig};
use crate::journal::{Journal, JournalStatus, JournalStep, RunState};
use crate::lock;
use crate::report::{Event, Halt, Report, Reporter, Status, StepResult};
use crate::shell::privileged;
use crate::shutdown::Shutdown;
use crate::steps::StepName;
use crate::transport::{Connector, Stdin, Transport};

use fanout::{fan_out, run_phase};
use host::{HostRun, Policy};
pub use preflight::LockRequest;

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
    pub lock: LockRequest,
    /// Stop after the canary batch has proved healthy.
    pub pause_after_canary: bool,
    pub rollout: RolloutConfig,
    pub shutdown: Shutdown,
    /// The journal to keep (apply only), and where it is saved.
    pub journal: Option<(Journal, PathBuf)>,
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

/// The journal side of a run: saved after every phase, so that an
/// interruption at any point leaves an accurate record behind.
struct Record {
    journal: Option<(Journal, PathBuf)>,
    reporter: Arc<dyn Reporter>,
}

impl Record {
    fn host_steps(results: &[Option<StepResult>], unknown: bool) -> Vec<JournalStep> {
        results
            .iter()
            .zip(StepName::ALL)
            .map(|(r, step)| match r {
                Some(r) => JournalStep {
                    step,
                    status: r.status.into(),
                    message: r.message.clone(),
                },
                None if unknown => JournalStep {
                    step,
                    status: JournalStatus::Unknown,
                    message: "the run was aborted while this host was working".into(),
                },
                None => JournalStep {
                    step,
                    status: JournalStatus::Skipped,
                    message: "not run yet".into(),
                },
            })
            .collect()
    }

    fn save<S: Transport>(&mut self, runs: &[HostRun<S>], state: RunState, in_flight: &[usize]) {
        let Some((journal, dir)) = &mut self.journal else {
            return;
        };
        for (i, run) in runs.iter().enumerate() {
            // A host done in an earlier run keeps its entry.
            if run.resumed {
                continue;
            }
            let steps = Self::host_steps(&run.results, in_flight.contains(&i));
            journal.record_host(&run.agent.name, steps, run.done());
        }
        journal.state = state;
        if let Err(e) = journal.save(dir) {
            self.reporter
                .event(Event::Notice(&format!("cannot save the run journal: {e}")));
        }
    }
}

/// A host that an interrupted run already finished: `--resume` reports it
/// from the journal and leaves it alone.
fn resumed<S: Transport>(agent: Agent, steps: &[JournalStep]) -> HostRun<S> {
    let mut run = HostRun::unreachable(agent, Status::Ok, String::new());
    for (slot, step) in run.results.iter_mut().zip(steps) {
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
        });
    }
    run.resumed = true;
    run
}

/// Runs one phase, unless a second Ctrl-C aborts it: then the journal marks
/// the hosts in flight `unknown` and the process ends at once.
async fn phase<S, F, Fut>(
    runs: Vec<HostRun<S>>,
    indices: &[usize],
    opts: &Options,
    reporter: &Arc<dyn Reporter>,
    policy: &Policy,
    record: &mut Record,
    work: F,
) -> Vec<HostRun<S>>
where
    S: Transport,
    F: Fn(HostRun<S>, Arc<dyn Reporter>, Policy) -> Fut,
    Fut: Future<Output = HostRun<S>> + Send + 'static,
{
    // What the journal says if the abort comes mid-phase.
    record.save(&runs, RunState::Running, &[]);
    let snapshot: Vec<Vec<Option<StepResult>>> = runs.iter().map(|r| r.results.clone()).collect();
    let names: Vec<String> = runs.iter().map(|r| r.agent.name.clone()).collect();
    let mut stop = opts.shutdown.clone();
    tokio::select! {
        runs = run_phase(runs, indices, opts.forks, reporter, policy, work) => runs,
        () = stop.aborted() => {
            if let Some((journal, dir)) = &mut record.journal {
                for &i in indices {
                    let steps = Record::host_steps(&snapshot[i], true);
                    journal.record_host(&names[i], steps, false);
                }
                journal.state = RunState::Aborted;
                let _ = journal.save(dir);
            }
            reporter.finish();
            eprintln!(
                "calico-rollout: aborted; hosts in flight ({}) are marked unknown in the journal",
                indices.iter().map(|&i| names[i].as_str()).collect::<Vec<_>>().join(", ")
            );
            std::process::exit(crate::error::exit::ABORTED);
        }
    }
}

/// Runs the whole rollout over `hosts` (agent with its desired state).
/// `done` holds the hosts a resumed run finished, with their journal steps.
pub async fn run<C: Connector>(
    connector: Arc<C>,
    hosts: Vec<(Agent, Desired)>,
    done: BTreeMap<String, Vec<JournalStep>>,
    mut opts: Options,
    reporter: Arc<dyn Reporter>,
) -> Report {
    let selected = hosts.len();
    let resumed_hosts = done.len();
    let mode = opts.mode;
    let dry_run = mode == Mode::Plan;
    let policy = Policy {
        health_timeout: opts.rollout.health_timeout,
        min_healthy: opts.rollout.min_healthy,
        // A rollback has nothing of its own to take back.
        revert: opts.rollout.revert && mode == Mode::Apply,
        stop: opts.shutdown.clone(),
    };
    let mut record = Record {
        journal: opts.journal.take(),
        reporter: reporter.clone(),
    };

    reporter.event(Event::PreflightStarted {
        hosts: selected - done.len(),
    });
    let lock = Arc::new(opts.lock.clone());
    let mut todo = Vec::new();
    let mut finished = Vec::new();
    for (i, (agent, want)) in hosts.into_iter().enumerate() {
        match done.get(&agent.name) {
            Some(steps) => finished.push((i, resumed(agent, steps))),
            None => todo.push((i, agent, want)),
        }
    }
    let probed = fan_out(todo, opts.forks, |(i, agent, want)| {
        let fut = preflight::preflight(
            connector.clone(),
            agent,
            want,
            mode,
            lock.clone(),
            reporter.clone(),
        );
        async move { (i, fut.await) }
    })
    .await;
    let mut slots: Vec<Option<HostRun<C::Session>>> = (0..selected).map(|_| None).collect();
    for (i, run) in probed.into_iter().chain(finished) {
        slots[i] = Some(run);
    }
    let mut runs: Vec<HostRun<C::Session>> =
        slots.into_iter().map(|r| r.expect("every host")).collect();
    for run in runs.iter().filter(|r| r.session.is_none() && !r.resumed) {
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
            .filter(|&i| runs[i].session.is_some() && !runs[i].failed() && runs[i].has_uploads())
            .collect();
        if !staging.is_empty() {
            reporter.event(Event::StageStarted {
                hosts: staging.len(),
            });
        }
        runs = phase(
            runs,
            &staging,
            &opts,
            &reporter,
            &policy,
            &mut record,
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
        // A resumed run does not repeat a canary the earlier run passed.
        let mut plan = opts.rollout.clone();
        if resumed_hosts >= plan.canary {
            plan.canary = 0;
        }
        let batches = batches::split(&work, &plan, selected);
        let total = batches.len();
        for (index, batch) in batches.iter().enumerate() {
            if halt.is_none() && opts.shutdown.requested() {
                halt = Some(Halt::Interrupted(format!(
                    "interrupted before batch {} of {total}",
                    index + 1
                )));
            }
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
            runs = phase(
                runs,
                &batch.hosts,
                &opts,
                &reporter,
                &policy,
                &mut record,
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
            } else if opts.shutdown.requested() {
                halt = Some(Halt::Interrupted(format!(
                    "interrupted during batch {} of {total}",
                    index + 1
                )));
            }
            refresh_locks(&runs, &opts).await;
        }
        if halt.is_none() && opts.shutdown.requested() {
            halt = Some(Halt::Interrupted("interrupted".into()));
        }
        if let Some(Halt::Budget(why) | Halt::Paused(why) | Halt::Interrupted(why)) = &halt {
            reporter.event(Event::Notice(&format!("rollout stopped: {why}")));
            let note = match halt {
                Some(Halt::Interrupted(_)) => host::INTERRUPTED,
                _ => "not run: the rollout stopped",
            };
            for run in &mut runs {
                run.skip_rest(note, None);
            }
        }
    }

    if !dry_run {
        let touched: Vec<usize> = (0..runs.len())
            .filter(|&i| runs[i].session.is_some())
            .collect();
        let run_id = opts.lock.owner.id.clone();
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
    let state = match &halt {
        None => RunState::Finished,
        Some(Halt::Interrupted(_)) => RunState::Interrupted,
        Some(_) => RunState::Stopped,
    };
    record.save(&runs, state, &[]);
    release_locks(&runs, &opts).await;
    Report {
        dry_run,
        hosts: runs.into_iter().map(HostRun::into_report).collect(),
        halt,
    }
}

/// Runs a lock script on every host this run holds the lock of.
async fn on_locked_hosts<S: Transport>(runs: &[HostRun<S>], script: &str) {
    futures::future::join_all(runs.iter().filter(|r| r.locked).map(|r| async move {
        if let Some(session) = &r.session {
            let command = privileged(script, r.agent.ssh.needs_sudo());
            let _ = session.exec(&command, Stdin::Empty).await;
        }
    }))
    .await;
}

/// Keeps this run's locks fresh, so a long rollout never looks abandoned.
async fn refresh_locks<S: Transport>(runs: &[HostRun<S>], opts: &Options) {
    on_locked_hosts(runs, &lock::refresh_script(&opts.lock.owner.id)).await;
}

async fn release_locks<S: Transport>(runs: &[HostRun<S>], opts: &Options) {
    on_locked_hosts(runs, &lock::release_script(&opts.lock.owner.id)).await;
    futures::future::join_all(
        runs.iter()
            .filter_map(|r| r.session.as_ref())
            .map(|s| s.close()),
    )
    .await;
}
