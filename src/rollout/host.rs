//! One host's run: its session, its step plans, and the results so far.
//! Running a step means running its actions, its restart and its health
//! gate; a failure is recorded as a result, never returned early.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::inventory::Agent;
use crate::remote;
use crate::report::{Event, HostReport, Reporter, Status, StepResult};
use crate::shell::privileged;
use crate::steps::rollback::{self, UndoRecord, UndoStep};
use crate::steps::{Action, Change, Gate, Plan, Source, StepName, StepPlan, Undo, restore_script};

use super::Mode;
use crate::shutdown::Shutdown;

/// Why a step did not run when the operator stopped the run.
pub const INTERRUPTED: &str = "not run: the rollout was interrupted";
use crate::transport::{ExecOutput, Stdin, Transport};

/// How often a health gate is checked while a service comes back.
const GATE_POLL: Duration = Duration::from_millis(500);
/// How often the gates are checked while a restarted host must stay healthy.
const WATCH_POLL: Duration = Duration::from_secs(1);

/// What one step's change actually did on the host, so that a revert takes
/// back that and nothing else: a file whose install was refused still has
/// the backup of an older run, which must not be put back.
#[derive(Debug, Default)]
struct Applied {
    step: usize,
    /// The undo of each action that took effect, in the order they ran.
    undo: Vec<Undo>,
    /// A restart was attempted.
    restarted: bool,
}

/// How a host's changes are gated and taken back.
#[derive(Debug, Clone)]
pub struct Policy {
    pub health_timeout: Duration,
    pub min_healthy: Duration,
    pub revert: bool,
    /// Asked before each step: an interrupted run starts no new step.
    pub stop: Shutdown,
}

pub struct HostRun<S> {
    pub agent: Agent,
    pub session: Option<Arc<S>>,
    /// In `StepName::ALL` order; empty when preflight failed.
    pub plans: Vec<StepPlan>,
    /// In `StepName::ALL` order; `None` while the step is still to run.
    pub results: Vec<Option<StepResult>>,
    /// Steps whose changes this run began to apply, in order, with what
    /// took effect: what a revert takes back.
    applied: Vec<Applied>,
    /// This run holds the host's lock.
    pub locked: bool,
    /// Finished by the run that `--resume` continues; not touched now.
    pub resumed: bool,
}

impl<S: Transport> HostRun<S> {
    /// A host that could not be probed: every step carries the reason.
    pub fn unreachable(agent: Agent, status: Status, reason: String) -> Self {
        let results = StepName::ALL
            .iter()
            .map(|&step| {
                Some(StepResult {
                    step,
                    status,
                    message: reason.clone(),
                    restarted: false,
                })
            })
            .collect();
        HostRun {
            agent,
            session: None,
            plans: Vec::new(),
            results,
            applied: Vec::new(),
            locked: false,
            resumed: false,
        }
    }

    /// A probed host. Steps whose outcome the plan already decides (ok,
    /// skipped, refused) get their result now; for a dry run, so do changes.
    pub fn planned(agent: Agent, session: Arc<S>, plans: Vec<StepPlan>, dry_run: bool) -> Self {
        let mut run = HostRun {
            agent,
            session: Some(session),
            results: vec![None; plans.len()],
            plans,
            applied: Vec::new(),
            locked: false,
            resumed: false,
        };
        for i in 0..run.plans.len() {
            let step = run.plans[i].step;
            let result = match &run.plans[i].plan {
                Plan::Ok => Some((Status::Ok, String::new())),
                Plan::Skipped(why) => Some((Status::Skipped, why.clone())),
                Plan::Refused(why) => Some((Status::Failed, why.clone())),
                Plan::Change(c) if dry_run => Some((Status::Changed, c.summary.join("; "))),
                Plan::Change(_) => None,
            };
            if let Some((status, message)) = result {
                run.results[i] = Some(StepResult {
                    step,
                    status,
                    message,
                    restarted: false,
                });
            }
        }
        // A refused step stops the steps after it, as a failure would.
        if let Some(first) = run.first_failure() {
            run.skip_rest(&format!("not run: {first} failed"), None);
        }
        run
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

    /// Whether any change still waits for this host's rolling batch.
    pub fn has_batch_work(&self) -> bool {
        self.plans
            .iter()
            .zip(&self.results)
            .any(|(p, r)| r.is_none() && matches!(p.plan, Plan::Change(_)))
    }

    /// Marks every step still to run as skipped.
    pub fn skip_rest(&mut self, why: &str, reporter: Option<&dyn Reporter>) {
        for i in 0..self.results.len() {
            if self.results[i].is_none() {
                self.finish(i, Status::Skipped, why.to_string(), false, reporter);
            }
        }
    }

    fn finish(
        &mut self,
        i: usize,
        status: Status,
        message: String,
        restarted: bool,
        reporter: Option<&dyn Reporter>,
    ) {
        let step = self.plans[i].step;
        if let Some(r) = reporter {
            r.event(Event::StepFinished {
                host: &self.agent.name,
                step,
                status,
                message: &message,
            });
        }
        self.results[i] = Some(StepResult {
            step,
            status,
            message,
            restarted,
        });
    }

    /// Uploads for every step still to run, into the host's stage area
    /// only: a host whose batch never comes keeps its configuration as it
    /// was.
    pub async fn stage(&mut self, policy: &Policy, reporter: &dyn Reporter) {
        for i in 0..self.plans.len() {
            if self.results[i].is_some() {
                continue;
            }
            if self.halt_on_failure(policy, reporter) {
                return;
            }
            let Plan::Change(change) = self.plans[i].plan.clone() else {
                continue;
            };
            if let Err(e) = self.run_actions(&change.stage).await {
                self.finish(i, Status::Failed, e, false, Some(reporter));
            }
        }
    }

    /// The host's turn in its batch: every change, in step order, then a
    /// watch of every passed gate for `min_healthy`. A failure anywhere
    /// reverts every change this run made on the host, when the policy
    /// allows.
    pub async fn roll(&mut self, policy: &Policy, reporter: &dyn Reporter) {
        let todo: Vec<usize> = (0..self.plans.len())
            .filter(|&i| self.results[i].is_none())
            .collect();
        let mut gates: Vec<(usize, Gate)> = Vec::new();
        let mut failure: Option<(usize, String)> = None;
        for i in todo {
            if self.halt_on_failure(policy, reporter) {
                return;
            }
            let Plan::Change(change) = self.plans[i].plan.clone() else {
                continue;
            };
            let mut applied = Applied {
                step: i,
                ..Applied::default()
            };
            let outcome = self
                .apply_change(&change, policy.health_timeout, &mut applied)
                .await;
            self.applied.push(applied);
            match outcome {
                Ok(()) => {
                    let summary = change.summary.join("; ");
                    let restarted = change.restart.is_some();
                    self.finish(i, Status::Changed, summary, restarted, Some(reporter));
                    gates.extend(
                        change
                            .restart
                            .map(|r| r.gate)
                            .or(change.gate)
                            .map(|g| (i, g)),
                    );
                }
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        if failure.is_none() && !policy.min_healthy.is_zero() && !gates.is_empty() {
            failure = self.watch(&gates, policy.min_healthy).await.err();
        }
        if let Some((i, why)) = failure {
            self.fail_and_revert(i, why, policy, reporter).await;
        }
    }

    /// Marks the rest skipped when an earlier step failed, or the run is
    /// being interrupted; true if so.
    fn halt_on_failure(&mut self, policy: &Policy, reporter: &dyn Reporter) -> bool {
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

    async fn apply_change(
        &self,
        change: &Change,
        health_timeout: Duration,
        applied: &mut Applied,
    ) -> Result<(), String> {
        // Uploads already happened in the stage phase.
        for action in &change.apply {
            self.run_actions(std::slice::from_ref(action)).await?;
            let took_effect = match action {
                Action::Install { target, .. } => change
                    .undo
                    .iter()
                    .find(|u| matches!(u, Undo::File { target: t, .. } if t == target.as_str())),
                Action::ReplaceContainer { name, .. } => change
                    .undo
                    .iter()
                    .find(|u| matches!(u, Undo::Container { name: n } if n == name)),
                _ => None,
            };
            applied.undo.extend(took_effect.cloned());
        }
        if let Some(restart) = &change.restart {
            applied.restarted = true;
            self.exec(&remote::restart(&restart.unit), Stdin::Empty)
                .await
                .map_err(|e| format!("restart {} failed: {e}", restart.unit))?;
            self.wait_healthy(&restart.gate, health_timeout)
                .await
                .map_err(|e| format!("{} restarted but is not healthy: {e}", restart.unit))?;
            self.exec(&remote::clear_pending(&restart.unit), Stdin::Empty)
                .await?;
        } else if let Some(gate) = &change.gate {
            self.wait_healthy(gate, health_timeout).await?;
        }
        Ok(())
    }

    /// Checks every gate once a second until `window` has passed: a service
    /// that crash-loops passes its first check and fails a later one.
    async fn watch(
        &self,
        gates: &[(usize, Gate)],
        window: Duration,
    ) -> Result<(), (usize, String)> {
        let until = Instant::now() + window;
        loop {
            for (i, gate) in gates {
                self.check_gate(gate).await.map_err(|e| {
                    (
                        *i,
                        format!("became unhealthy within {}s: {e}", window.as_secs()),
                    )
                })?;
            }
            if Instant::now() >= until {
                return Ok(());
            }
            tokio::time::sleep(WATCH_POLL.min(until - Instant::now())).await;
        }
    }

    /// Records the failure of step `i`, then takes back every change this
    /// run made on the host, newest first.
    async fn fail_and_revert(
        &mut self,
        i: usize,
        why: String,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) {
        let step = self.plans[i].step;
        if !policy.revert {
            self.finish(i, Status::Failed, why, false, Some(reporter));
            self.skip_rest(&format!("not run: {step} failed"), Some(reporter));
            return;
        }
        reporter.event(Event::Notice(&format!(
            "{}: {step} failed, reverting this host: {why}",
            self.agent.name
        )));
        let applied = std::mem::take(&mut self.applied);
        let mut revert_error = None;
        for done in applied.iter().rev() {
            let Plan::Change(change) = &self.plans[done.step].plan else {
                continue;
            };
            if let Err(e) = self
                .revert_change(change, done, policy.health_timeout)
                .await
            {
                revert_error = Some(format!("reverting {}: {e}", self.plans[done.step].step));
                break;
            }
        }
        let undid_something = applied.iter().any(|a| !a.undo.is_empty() || a.restarted);
        for j in applied.iter().map(|a| a.step) {
            let (status, message) = match (&revert_error, j == i) {
                // The change never took hold: there was nothing to revert.
                (None, true) if !undid_something => (Status::Failed, why.clone()),
                (None, true) => (Status::Reverted, format!("{why}; reverted")),
                (None, false) => (Status::Reverted, format!("reverted because {step} failed")),
                (Some(r), true) => (Status::Failed, format!("{why}; revert failed: {r}")),
                (Some(r), false) => (
                    Status::Failed,
                    format!("{step} failed and the revert failed: {r}"),
                ),
            };
            self.finish(j, status, message, false, Some(reporter));
        }
        self.skip_rest(&format!("not run: {step} failed"), Some(reporter));
    }

    async fn revert_change(
        &self,
        change: &Change,
        done: &Applied,
        health_timeout: Duration,
    ) -> Result<(), String> {
        for undo in done.undo.iter().rev() {
            self.run_actions(std::slice::from_ref(&Action::Undo(undo.clone())))
                .await?;
        }
        let touched = done.restarted || !done.undo.is_empty();
        if let Some(restart) = change.restart.as_ref().filter(|_| touched) {
            let unit_file_gone = change.undo.iter().any(|u| {
                matches!(u, Undo::File { target, existed: false }
                    if target.ends_with(&format!("/{}.service", restart.unit)))
            });
            if !unit_file_gone {
                self.exec(&remote::restart(&restart.unit), Stdin::Empty)
                    .await
                    .map_err(|e| format!("restart {} failed: {e}", restart.unit))?;
                self.wait_healthy(&restart.gate.relaxed(), health_timeout)
                    .await?;
            }
            self.exec(&remote::clear_pending(&restart.unit), Stdin::Empty)
                .await?;
        }
        Ok(())
    }

    async fn run_actions(&self, actions: &[Action]) -> Result<(), String> {
        for action in actions {
            match action {
                Action::Stage { local, sha256 } => {
                    self.exec(&remote::stage(sha256), Stdin::File(local))
                        .await
                        .map_err(|e| format!("uploading {}: {e}", local.display()))?;
                }
                Action::Install {
                    target,
                    source,
                    sha256,
                    mode,
                    check,
                } => {
                    let staged = matches!(source, Source::Staged);
                    let script = remote::install(target.as_str(), *mode, sha256, staged, *check);
                    let stdin = match source {
                        Source::Bytes(bytes) => Stdin::Bytes(bytes),
                        Source::Staged => Stdin::Empty,
                    };
                    self.exec(&script, stdin)
                        .await
                        .map_err(|e| format!("writing {target}: {e}"))?;
                }
                Action::MarkPending { unit } => {
                    self.exec(&remote::mark_pending(unit), Stdin::Empty).await?;
                }
                Action::Run { what, script } => {
                    self.exec(script, Stdin::Empty)
                        .await
                        .map_err(|e| format!("{what}: {e}"))?;
                }
                Action::ReplaceContainer { name, script } => {
                    self.exec(script, Stdin::Empty)
                        .await
                        .map_err(|e| format!("run {name}: {e}"))?;
                }
                Action::Undo(Undo::File { target, existed }) => {
                    self.exec(&remote::restore_file(target, *existed), Stdin::Empty)
                        .await
                        .map_err(|e| format!("putting back {target}: {e}"))?;
                }
                Action::Undo(Undo::Container { name }) => {
                    self.exec(&restore_script(name), Stdin::Empty)
                        .await
                        .map_err(|e| format!("putting back container {name}: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// Polls the gate until it passes or `timeout` runs out.
    async fn wait_healthy(&self, gate: &Gate, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.check_gate(gate).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "health check did not pass within {}s: {e}",
                        timeout.as_secs()
                    ));
                }
                Err(_) => tokio::time::sleep(GATE_POLL).await,
            }
        }
    }

    async fn check_gate(&self, gate: &Gate) -> Result<(), String> {
        let out = self.exec(&remote::gate(gate), Stdin::Empty).await?;
        remote::gate_verdict(gate, &out.stdout)
    }

    /// Runs a privileged script; a non-zero exit is an error carrying the
    /// command's stderr tail.
    async fn exec(&self, script: &str, stdin: Stdin<'_>) -> Result<ExecOutput, String> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| "no session to this host".to_string())?;
        let out = session
            .exec(&privileged(script, self.agent.ssh.needs_sudo()), stdin)
            .await
            .map_err(|e| e.to_string())?;
        if out.success() {
            Ok(out)
        } else {
            Err(out.error_tail())
        }
    }

    /// Leaves on the host what `rollback` needs: after an apply that
    /// changed it, the undo of every change that stuck; after a rollback
    /// that went through, nothing (the record is used up).
    pub async fn record_undo(&self, mode: Mode, run_id: &str) -> Result<(), String> {
        let path = rollback::record_path();
        match mode {
            Mode::Plan => Ok(()),
            Mode::Rollback => {
                let clean = self
                    .results
                    .iter()
                    .flatten()
                    .all(|r| !r.status.is_failure());
                let changed = self
                    .results
                    .iter()
                    .flatten()
                    .any(|r| r.status == Status::Changed);
                if clean && changed {
                    self.exec(
                        &crate::shell::Cmd::new("rm")
                            .arg("-f")
                            .arg("--")
                            .arg(&path)
                            .to_string(),
                        Stdin::Empty,
                    )
                    .await?;
                }
                Ok(())
            }
            Mode::Apply => {
                let steps: Vec<UndoStep> = self
                    .plans
                    .iter()
                    .zip(&self.results)
                    .filter_map(|(plan, result)| match (&plan.plan, result) {
                        (Plan::Change(change), Some(r)) if r.status == Status::Changed => {
                            Some(UndoStep {
                                step: plan.step,
                                undo: change.undo.clone(),
                                restart: change.restart.as_ref().map(|r| r.unit.clone()),
                            })
                        }
                        _ => None,
                    })
                    .filter(|s| !s.undo.is_empty() || s.restart.is_some())
                    .collect();
                if steps.is_empty() {
                    return Ok(());
                }
                let record = UndoRecord {
                    run: run_id.to_string(),
                    steps,
                };
                let bytes = serde_json::to_vec_pretty(&record).expect("undo record serializes");
                let sha = crate::desired::sha256_hex(&bytes);
                self.exec(
                    &remote::install(&path, 0o600, &sha, false, None),
                    Stdin::Bytes(&bytes),
                )
                .await
                .map(|_| ())
            }
        }
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
                })
            })
            .collect();
        HostReport {
            host: self.agent.name,
            steps,
        }
    }
}
