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
use crate::steps::{Action, Change, Gate, Plan, Source, StepName, StepPlan};
use crate::transport::{ExecOutput, Stdin, Transport};

/// How often a health gate is checked while a service comes back.
const GATE_POLL: Duration = Duration::from_millis(500);

pub struct HostRun<S> {
    pub agent: Agent,
    pub session: Option<Arc<S>>,
    /// In `StepName::ALL` order; empty when preflight failed.
    pub plans: Vec<StepPlan>,
    /// In `StepName::ALL` order; `None` while the step is still to run.
    pub results: Vec<Option<StepResult>>,
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
            .any(|(p, r)| r.is_none() && p.step.in_batches())
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

    /// Uploads for every step still to run, and the complete run of the
    /// steps that are not rolled in batches.
    pub async fn stage(&mut self, health_timeout: Duration, reporter: &dyn Reporter) {
        for i in 0..self.plans.len() {
            if self.results[i].is_some() {
                continue;
            }
            if let Some(first) = self.first_failure() {
                self.skip_rest(&format!("not run: {first} failed"), Some(reporter));
                return;
            }
            let Plan::Change(change) = self.plans[i].plan.clone() else {
                continue;
            };
            if let Err(e) = self.run_actions(&change.stage).await {
                self.finish(i, Status::Failed, e, false, Some(reporter));
            } else if !self.plans[i].step.in_batches() {
                self.run_change(i, &change, health_timeout, reporter).await;
            }
        }
    }

    /// The batched steps, in order, stopping at the first failure.
    pub async fn roll(&mut self, health_timeout: Duration, reporter: &dyn Reporter) {
        for i in 0..self.plans.len() {
            if self.results[i].is_some() {
                continue;
            }
            if let Some(first) = self.first_failure() {
                self.skip_rest(&format!("not run: {first} failed"), Some(reporter));
                return;
            }
            if let Plan::Change(change) = self.plans[i].plan.clone() {
                self.run_change(i, &change, health_timeout, reporter).await;
            }
        }
    }

    async fn run_change(
        &mut self,
        i: usize,
        change: &Change,
        health_timeout: Duration,
        reporter: &dyn Reporter,
    ) {
        let summary = change.summary.join("; ");
        // Uploads already happened in the stage phase.
        let outcome = async {
            self.run_actions(&change.apply).await?;
            if let Some(restart) = &change.restart {
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
            Ok::<bool, String>(change.restart.is_some())
        }
        .await;
        match outcome {
            Ok(restarted) => self.finish(i, Status::Changed, summary, restarted, Some(reporter)),
            Err(e) => self.finish(i, Status::Failed, e, false, Some(reporter)),
        }
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
                } => {
                    let (script, stdin) = match source {
                        Source::Bytes(bytes) => (
                            remote::install(target.as_str(), *mode, sha256, false),
                            Stdin::Bytes(bytes),
                        ),
                        Source::Staged => (
                            remote::install(target.as_str(), *mode, sha256, true),
                            Stdin::Empty,
                        ),
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
            }
        }
        Ok(())
    }

    /// Polls the gate until it passes or `timeout` runs out.
    async fn wait_healthy(&self, gate: &Gate, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let script = remote::gate(gate);
        loop {
            let verdict = match self.exec(&script, Stdin::Empty).await {
                Ok(out) => match gate {
                    Gate::Container { name } => container_running(&out, name),
                    _ => Ok(()),
                },
                Err(e) => Err(e),
            };
            match verdict {
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

fn container_running(out: &ExecOutput, name: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        state: State,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct State {
        running: bool,
        #[serde(default)]
        status: String,
    }
    let entries: Vec<Entry> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cannot read docker inspect for {name}: {e}"))?;
    match entries.first() {
        Some(e) if e.state.running => Ok(()),
        Some(e) => Err(format!("{name} is {}", e.state.status)),
        None => Err(format!("{name} does not exist")),
    }
}
