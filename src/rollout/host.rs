//! One host's run: its session, its step plans, and the results so far.
//! Its steps run in order within its batch (`run.rs`); a failure is
//! recorded as a result, never returned early, and reverts the host
//! (`revert.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::revert::Applied;
use crate::inventory::Agent;
use crate::report::{Event, HostReport, Reporter, Status, StepResult};
use crate::shutdown::Shutdown;
use crate::steps::{Gate, Plan, StepName, StepPlan};
use crate::transport::Transport;

/// Why a step did not run when the operator stopped the run.
pub const INTERRUPTED: &str = "not run: the rollout was interrupted";

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
    pub(super) applied: Vec<Applied>,
    /// This run holds the host's lock.
    pub locked: bool,
    /// Finished by the run that `--resume` continues; not touched now.
    pub resumed: bool,
    /// Steps were skipped because the host or the run stopped early.
    cut_short: bool,
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
            cut_short: false,
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
            cut_short: false,
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

    /// Whether some change has bytes to upload before the host's batch.
    pub fn has_uploads(&self) -> bool {
        self.plans
            .iter()
            .zip(&self.results)
            .any(|(p, r)| r.is_none() && matches!(&p.plan, Plan::Change(c) if !c.stage.is_empty()))
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
                self.cut_short = true;
                self.finish(i, Status::Skipped, why.to_string(), false, reporter);
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
            for action in &change.stage {
                if let Err(e) = self.run_action(action).await {
                    self.finish(i, Status::Failed, e, false, Some(reporter));
                    break;
                }
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
