//! One host's run: its plans, its results so far, and where it is. A host
//! moves through a small state machine:
//!
//! ```text
//! Planned → Staged → Changing(step) … → Gated → Done
//!                          ↘ (a failure) → Reverting → Reverted | Failed
//! ```
//!
//! A failure is recorded as a result, never returned early; the run goes
//! on with the other hosts.

use std::time::Duration;

use tokio::time::Instant;

use super::Mode;
use super::error::StepError;
use super::session::HostSession;
use crate::diff::Diff;
use crate::inventory::Agent;
use crate::layout::Layout;
use crate::remote;
use crate::report::{Event, HostReport, Reporter, Status, StepResult};
use crate::shutdown::Shutdown;
use crate::step::Undo;
use crate::steps::{Action, Gate, Plan, Restart, StepName, StepPlan};
use crate::transport::Connector;

/// Why a step did not run when the operator stopped the run.
pub const INTERRUPTED: &str = "not run: the rollout was interrupted";

/// How a host's changes are made, gated and taken back.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    /// How long a restart may take, and then the gate.
    pub health_timeout: Duration,
    pub min_healthy: Duration,
    /// Every other command's deadline.
    pub command_timeout: Duration,
    pub pull_timeout: Duration,
    pub revert: bool,
    /// Asked before each step: an interrupted run starts no new step.
    pub stop: Shutdown,
    pub layout: Layout,
    /// The history run an apply records its changes under.
    pub run_id: String,
    /// Hosts uploading at once, whatever `--forks` says: each upload holds
    /// up to a channel window of bytes in flight, and a few streams already
    /// fill the controller's link. A host keeps its slot for all its
    /// uploads, one after the other.
    pub uploads: std::sync::Arc<tokio::sync::Semaphore>,
}

/// See [`Policy::uploads`].
pub const UPLOADS_AT_ONCE: usize = 4;

impl Policy {
    /// An upload's deadline: the usual one plus a second per MiB, which no
    /// working link is slower than.
    pub fn upload_deadline(&self, bytes: u64) -> Duration {
        self.command_timeout + Duration::from_secs(bytes.div_ceil(1 << 20))
    }
}

/// What one step's change did on the host, so that a revert takes back
/// that and nothing else.
#[derive(Debug, Clone)]
pub(super) struct Applied {
    pub step: StepName,
    /// The history record of each action that may have taken effect, with
    /// its undo, in the order they ran.
    pub records: Vec<(u32, Undo)>,
    /// A restart was attempted.
    pub restart_attempted: bool,
    pub restart: Option<Restart>,
    /// The gates after the restart's own (the container's, Calico's
    /// health): those that still hold for what a revert puts back are
    /// waited for after it.
    pub checks: Vec<Gate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Probed and planned; nothing on it touched.
    Planned,
    /// Its uploads and images are in place; nothing it runs on touched.
    Staged,
    /// Making one step's change.
    Changing(StepName),
    /// Every change made; watching the changed services stay healthy.
    Gated,
    Done,
    Reverting,
    Reverted,
    /// Failed, and not (or not wholly) taken back.
    Failed,
}

#[derive(Debug, Clone)]
pub struct HostRun {
    pub index: usize,
    pub agent: Agent,
    /// In `StepName::ALL` order; empty when preflight failed.
    pub plans: Vec<StepPlan>,
    /// In `StepName::ALL` order; `None` while the step is still to run.
    pub results: Vec<Option<StepResult>>,
    pub state: HostState,
    /// Finished by the run that `--resume` continues; not touched now.
    pub resumed: bool,
    /// Steps were skipped because the host or the run stopped early.
    cut_short: bool,
    /// What this run changed, step by step, in order: what a revert takes back.
    pub(super) applied: Vec<Applied>,
    /// The next change number in this run's history on the host.
    next_seq: u32,
    /// Restarts per step, a revert's included.
    pub(super) restarts: [u32; 5],
    /// Time spent on each step so far: its staging and its change.
    pub(super) spent: [Duration; 5],
    /// For a rollback: the history run it takes back.
    pub(super) target_run: Option<String>,
    /// Bookkeeping for the host's next round trip (a pending restart's
    /// marker to clear once its gate passed).
    pub(super) deferred: Vec<crate::remote::Script>,
    /// The next round trip asks the agent, first, whether this run still
    /// holds its lock.
    pub(super) check_lock: bool,
    /// For a host an earlier run finished: the BGP sessions it proved then.
    pub(super) mesh: Option<crate::steps::Mesh>,
    /// Each step's gates and how far each got.
    pub(super) gate_results: [Vec<crate::report::GateResult>; 5],
}

impl HostRun {
    /// A host that could not be probed: every step carries the reason.
    pub fn unreachable(index: usize, agent: Agent, status: Status, reason: String) -> Self {
        let results = StepName::ALL
            .iter()
            .map(|&step| {
                Some(StepResult {
                    step,
                    status,
                    message: reason.clone(),
                    restarted: false,
                    restarts: 0,
                    diff: Vec::new(),
                    duration_ms: 0,
                    gates: Vec::new(),
                    notes: Vec::new(),
                })
            })
            .collect();
        HostRun {
            results,
            state: HostState::Failed,
            cut_short: status == Status::Skipped,
            ..HostRun::waiting(index, agent)
        }
    }

    /// A host whose preflight has not happened yet.
    pub fn waiting(index: usize, agent: Agent) -> Self {
        HostRun {
            index,
            agent,
            plans: Vec::new(),
            results: vec![None; StepName::ALL.len()],
            state: HostState::Planned,
            resumed: false,
            cut_short: false,
            applied: Vec::new(),
            next_seq: 1,
            restarts: [0; 5],
            spent: [Duration::ZERO; 5],
            target_run: None,
            deferred: Vec::new(),
            check_lock: false,
            mesh: None,
            gate_results: Default::default(),
        }
    }

    /// A probed host. Steps whose outcome the plan already decides (ok,
    /// skipped, refused) get their result now; for a dry run, so do changes.
    pub fn planned(index: usize, agent: Agent, plans: Vec<StepPlan>, dry_run: bool) -> Self {
        let mut run = HostRun {
            results: vec![None; plans.len()],
            plans,
            ..HostRun::waiting(index, agent)
        };
        for i in 0..run.plans.len() {
            if let Plan::Change(c) = &run.plans[i].plan {
                run.gate_results[i] = super::gates::unchecked(&c.gates());
            }
            let result = match &run.plans[i].plan {
                Plan::Ok => Some((Status::Ok, String::new())),
                Plan::Skipped(why) => Some((Status::Skipped, why.clone())),
                Plan::Refused(why) => Some((Status::Failed, why.clone())),
                Plan::Change(c) if dry_run => Some((Status::Changed, c.summary.join("; "))),
                Plan::Change(_) => None,
            };
            if let Some((status, message)) = result {
                run.finish(i, status, message, None);
            }
        }
        run.attach_diffs(false);
        // A refused step stops the steps after it, as a failure would.
        if let Some(first) = run.first_failure() {
            run.state = HostState::Failed;
            run.skip_rest(&format!("not run: {first} failed"), None);
        }
        run
    }

    /// A dry run's cells carry their changes' diffs, environment values
    /// masked unless `show_secrets`.
    pub fn attach_diffs(&mut self, show_secrets: bool) {
        for (plan, result) in self.plans.iter().zip(&mut self.results) {
            if let (Plan::Change(c), Some(r)) = (&plan.plan, result)
                && r.status == Status::Changed
            {
                r.diff = if show_secrets {
                    c.diffs.clone()
                } else {
                    c.diffs.iter().map(Diff::masked).collect()
                };
            }
        }
    }

    pub fn set_target_run(&mut self, run: Option<String>) {
        self.target_run = run;
    }

    pub fn failed(&self) -> bool {
        self.results.iter().flatten().any(|r| r.status.is_failure())
    }

    fn first_failure(&self) -> Option<StepName> {
        self.results
            .iter()
            .flatten()
            .find(|r| r.status.is_failure())
            .map(|r| r.step)
    }

    /// Whether some change has uploads or pulls before the host's batch.
    pub fn has_staging(&self) -> bool {
        self.pending_changes().any(|(_, c)| !c.stage.is_empty())
    }

    /// Whether any change still waits for this host's rolling batch.
    pub fn has_batch_work(&self) -> bool {
        self.pending_changes().next().is_some()
    }

    fn pending_changes(&self) -> impl Iterator<Item = (usize, &crate::steps::Change)> {
        self.plans
            .iter()
            .zip(&self.results)
            .enumerate()
            .filter_map(|(i, (p, r))| match (&p.plan, r) {
                (Plan::Change(c), None) => Some((i, c.as_ref())),
                _ => None,
            })
    }

    /// Marks every step still to run as skipped.
    pub fn skip_rest(&mut self, why: &str, reporter: Option<&dyn Reporter>) {
        for i in 0..self.results.len() {
            if self.results[i].is_none() {
                self.cut_short = true;
                self.finish(i, Status::Skipped, why.to_string(), reporter);
            }
        }
    }

    /// Gives every step still to run `status` and `why`.
    pub fn mark_failed(&mut self, status: Status, why: &str) {
        for i in 0..self.results.len() {
            if self.results[i].is_none() {
                self.cut_short = true;
                self.finish(i, status, why.to_string(), None);
            }
        }
        if status.is_failure() {
            self.state = HostState::Failed;
        }
    }

    /// Marks every step still to run as unknown: the run was aborted while
    /// this host was working.
    pub fn mark_unknown(&mut self) {
        for i in 0..self.results.len() {
            if self.results[i].is_none() {
                self.cut_short = true;
                self.finish(
                    i,
                    Status::Unknown,
                    "the run was aborted while this host was working".into(),
                    None,
                );
            }
        }
    }

    /// Every step ran to a good end: `--resume` leaves this host alone.
    pub fn done(&self) -> bool {
        !self.cut_short
            && self
                .results
                .iter()
                .all(|r| r.as_ref().is_some_and(|r| !r.status.is_failure()))
    }

    pub(super) fn finish(
        &mut self,
        i: usize,
        status: Status,
        message: String,
        reporter: Option<&dyn Reporter>,
    ) {
        let step = StepName::ALL[i];
        if let Some(r) = reporter {
            r.event(Event::StepFinished {
                host: &self.agent.name,
                step,
                status,
                message: &message,
            });
        }
        let restarts = self.restarts[i];
        let notes = match self.plans.get(i).map(|p| &p.plan) {
            Some(Plan::Change(c)) => c.notes.clone(),
            _ => Vec::new(),
        };
        self.results[i] = Some(StepResult {
            step,
            status,
            message,
            restarted: restarts > 0,
            restarts,
            diff: Vec::new(),
            duration_ms: u64::try_from(self.spent[i].as_millis()).unwrap_or(u64::MAX),
            gates: self.gate_results[i].clone(),
            notes,
        });
    }

    /// The number of the next change this run records on the host.
    pub(super) fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The history run this host's changes are recorded under: the apply's
    /// own, or for a rollback the run it takes back.
    pub(super) fn history_run<'a>(&'a self, policy: &'a Policy) -> &'a str {
        self.target_run.as_deref().unwrap_or(&policy.run_id)
    }

    /// Uploads and image pulls for every step still to run, into the stage
    /// area and docker's images only: a host whose batch never comes keeps
    /// its configuration as it was.
    pub async fn stage<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) {
        let mut actions: Vec<(usize, Action)> = self
            .pending_changes()
            .flat_map(|(i, c)| c.stage.iter().map(move |a| (i, a.clone())))
            .collect();
        // Uploads first, in one upload slot held for all of them: a host
        // whose turn comes is staged whole before the next host starts, so
        // the first batch is ready first. Pulls and downloads use the
        // agent's bandwidth, not ours, and need no slot.
        let is_upload = |(_, a): &(usize, Action)| matches!(a, Action::Stage { .. });
        actions.sort_by_key(|x| !is_upload(x));
        let uploads = actions.partition_point(is_upload);
        let mut slot = None;
        if uploads > 0 {
            slot = Some(policy.uploads.acquire().await.expect("never closed"));
        }
        for (n, (i, action)) in actions.iter().enumerate() {
            if n == uploads {
                slot = None;
            }
            if self.halt_on_failure(policy, reporter) {
                return;
            }
            let step = StepName::ALL[*i];
            session.set_step(Some(step));
            reporter.event(Event::Waiting {
                host: &self.agent.name,
                step,
                what: &super::waits::stage(action),
                deadline: super::change::stage_deadline(action, policy),
            });
            let started = Instant::now();
            let staged = self.stage_one(session, action, policy).await;
            self.spent[*i] += started.elapsed();
            if let Err(e) = staged {
                self.state = HostState::Failed;
                self.finish(*i, e.status(), e.to_string(), Some(reporter));
            }
        }
        session.set_step(None);
        drop(slot);
        if self.halt_on_failure(policy, reporter) {
            return;
        }
        self.state = HostState::Staged;
    }

    /// The host's turn in its batch: every change, in step order (reverse
    /// order for a rollback), then a watch of every passed gate for
    /// `min_healthy`. A failure anywhere reverts every change this run
    /// made on the host, when the policy allows.
    pub async fn roll<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) {
        let mut todo: Vec<usize> = self.pending_changes().map(|(i, _)| i).collect();
        let Some(&first) = todo.first() else {
            return;
        };
        // The heartbeat notices a lost lock within a beat; a host whose
        // turn comes also asks the agent itself, in its first round trip,
        // before anything else. A connection that dropped while the host
        // waited for its batch is made again first.
        if let Err(e) = session.reconnect_patiently().await {
            self.state = HostState::Failed;
            self.finish(first, e.status(), e.to_string(), Some(reporter));
            self.skip_rest("not run: the agent cannot be reached", Some(reporter));
            return;
        }
        self.check_lock = true;
        if policy.mode == Mode::Rollback {
            todo.reverse();
            if let Some(run) = self.target_run.clone() {
                self.deferred.push(remote::history::set_state(
                    &policy.layout,
                    &run,
                    crate::history::RunState::RollingBack,
                    policy.command_timeout,
                ));
            }
        }
        let mut gates: Vec<(usize, Gate)> = Vec::new();
        let mut failure: Option<(usize, StepError)> = None;
        for i in todo {
            if self.halt_on_failure(policy, reporter) {
                break;
            }
            let Plan::Change(change) = self.plans[i].plan.clone() else {
                continue;
            };
            self.state = HostState::Changing(StepName::ALL[i]);
            session.set_step(Some(StepName::ALL[i]));
            let started = Instant::now();
            let changed = self
                .apply_change(session, i, &change, policy, reporter)
                .await;
            self.spent[i] += started.elapsed();
            match changed {
                Ok(()) => {
                    let summary = change.summary.join("; ");
                    self.finish(i, Status::Changed, summary, Some(reporter));
                    gates.extend(change.gates().into_iter().map(|g| (i, g)));
                }
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        if failure.is_none() && !policy.min_healthy.is_zero() && !gates.is_empty() {
            self.state = HostState::Gated;
            let watched: Vec<Gate> = gates.iter().map(|(_, g)| g.clone()).collect();
            reporter.event(Event::Waiting {
                host: &self.agent.name,
                step: StepName::ALL[gates[0].0],
                what: &super::waits::watch(&watched),
                deadline: policy.min_healthy,
            });
            failure = self.watch(session, &gates, policy).await.err();
        }
        match failure {
            Some((i, why)) => {
                self.fail_and_revert(session, i, why, policy, reporter)
                    .await
            }
            None => self.settle(session, policy, reporter).await,
        }
        session.set_step(None);
    }

    /// The host went through: its history says so, and what older runs
    /// kept for rollback goes.
    async fn settle<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) {
        let partway = self.results.iter().any(Option::is_none) || self.cut_short;
        let run = self.history_run(policy).to_string();
        let script = match policy.mode {
            Mode::Apply if self.applied.iter().any(|a| !a.records.is_empty()) => Some(
                remote::history::commit(&policy.layout, &run, policy.command_timeout),
            ),
            Mode::Rollback if self.target_run.is_some() => Some(remote::history::set_state(
                &policy.layout,
                &run,
                crate::history::RunState::RolledBack,
                policy.command_timeout,
            )),
            _ => None,
        };
        // Stopped part way, the history keeps the run open.
        self.deferred.extend(script.filter(|_| !partway));
        if let Err(e) = self.flush_deferred(session, policy).await {
            reporter.event(Event::Notice(&format!(
                "{}: could not update the run history: {e}",
                self.agent.name
            )));
        }
        self.state = HostState::Done;
    }

    /// Marks the rest skipped when an earlier step failed, or the run is
    /// being interrupted; true if so.
    pub(super) fn halt_on_failure(&mut self, policy: &Policy, reporter: &dyn Reporter) -> bool {
        if let Some(first) = self.first_failure() {
            self.skip_rest(&format!("not run: {first} failed"), Some(reporter));
            return true;
        }
        if policy.stop.requested() {
            self.skip_rest(INTERRUPTED, None);
            return true;
        }
        false
    }

    pub fn into_report(self) -> HostReport {
        let steps = self
            .results
            .into_iter()
            .zip(StepName::ALL)
            .map(|(r, step)| {
                r.unwrap_or(StepResult {
                    step,
                    status: Status::Skipped,
                    message: "not run".into(),
                    restarted: false,
                    restarts: 0,
                    diff: Vec::new(),
                    duration_ms: 0,
                    gates: Vec::new(),
                    notes: Vec::new(),
                })
            })
            .collect();
        HostReport {
            host: self.agent.name,
            steps,
        }
    }
}
