//! Taking changes back: the host-level revert after a failed gate, and
//! the undo record that `rollback` later reads from the host.

use std::time::Duration;

use super::Mode;
use super::host::{HostRun, Policy};
use crate::remote;
use crate::report::{Event, Reporter, Status};
use crate::shell::Cmd;
use crate::steps::rollback::{self, UndoRecord, UndoStep};
use crate::steps::{Change, Plan, Undo};
use crate::transport::{Stdin, Transport};

/// What one step's change actually did on the host, so that a revert takes
/// back that and nothing else: a file whose install was refused still has
/// the backup of an older run, which must not be put back.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub step: usize,
    /// The undo of each action that took effect, in the order they ran.
    pub undo: Vec<Undo>,
    /// A restart was attempted.
    pub restarted: bool,
}

impl<S: Transport> HostRun<S> {
    /// Records the failure of step `i`, then takes back every change this
    /// run made on the host, newest first.
    pub(super) async fn fail_and_revert(
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
                .revert_change(change.as_ref(), done, policy.health_timeout)
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
            self.run_undo(undo).await?;
        }
        let touched = done.restarted || !done.undo.is_empty();
        if let Some(restart) = change.restart.as_ref().filter(|_| touched) {
            let unit_file_gone = change.undo.iter().any(|u| u.removes_unit(&restart.unit));
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
                        &Cmd::new("rm").arg("-f").arg("--").arg(&path).to_string(),
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
}
