//! Taking changes back: the host-level revert after a failure. It goes
//! through every change it has to undo, newest first, even after one of
//! them fails; it connects again when the connection dropped; and it says
//! exactly what it could not undo. Every undo is idempotent on the agent,
//! so a change that never took effect is left alone.

use super::error::StepError;
use super::host::{Applied, HostRun, HostState, Policy};
use super::session::HostSession;
use crate::history::RunState;
use crate::lock::{self, LockState};
use crate::remote::{self, Script};
use crate::report::{Event, Reporter, Status};
use crate::step::{StepName, Undo};
use crate::steps::Gate;
use crate::transport::{Connector, Stdin};

/// Reads what a lock refresh printed: Ok while this run holds the lock;
/// otherwise the run stops touching the host, and says why.
pub(super) fn refreshed<C: Connector>(
    session: &HostSession<C>,
    stdout: &[u8],
) -> Result<(), StepError> {
    let lost = |why: String| {
        session.lose_lock(why.clone());
        Err(StepError::LockLost(why))
    };
    match lock::parse(&String::from_utf8_lossy(stdout)) {
        Ok(LockState::Acquired) => Ok(()),
        Ok(LockState::Held(h) | LockState::StaleReplaced(h)) => {
            lost(format!("another run took this agent's lock ({h})"))
        }
        Ok(LockState::Free) => lost("this agent's lock was removed by someone else".into()),
        Err(e) => Err(StepError::Failed(e.to_string())),
    }
}

impl HostRun {
    /// Takes back change `seq` of `run`; true if there was something to
    /// take back. A dropped connection is made again once.
    pub(super) async fn undo_one<C: Connector>(
        &self,
        session: &HostSession<C>,
        run: &str,
        seq: u32,
        undo: &Undo,
        policy: &Policy,
    ) -> Result<bool, StepError> {
        let script = self.undo_script(run, seq, undo, policy);
        let out = match session.run(&script, Stdin::Empty).await {
            Err(StepError::Unreachable(_)) => {
                session.reconnect_patiently().await?;
                session.run(&script, Stdin::Empty).await?
            }
            other => other?,
        };
        Ok(String::from_utf8_lossy(&out.stdout).contains("undo done"))
    }

    /// The script that takes back change `seq` of `run`.
    pub(super) fn undo_script(&self, run: &str, seq: u32, undo: &Undo, policy: &Policy) -> Script {
        let layout = &policy.layout;
        match undo {
            Undo::File {
                target, tmp_dir, ..
            } => remote::files::undo_file(
                layout,
                run,
                seq,
                target,
                tmp_dir.as_deref(),
                policy.command_timeout,
            ),
            Undo::Container { name, .. } => {
                remote::container::restore(layout, run, seq, name, policy.health_timeout)
            }
        }
    }

    /// Whether this run still holds the host's lock, asked of the agent
    /// itself after connecting again if needed.
    pub(super) async fn still_ours<C: Connector>(
        &self,
        session: &HostSession<C>,
        policy: &Policy,
    ) -> Result<(), StepError> {
        session.touchable()?;
        session.reconnect_patiently().await?;
        let script = remote::lock::refresh(&policy.run_id, policy.command_timeout);
        let out = session.run_raw(&script, Stdin::Empty).await?;
        refreshed(session, &out.stdout)
    }

    /// Takes back one step: whether it had changed anything, and what
    /// could not be undone.
    async fn revert_step<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        done: &Applied,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) -> (bool, Vec<String>) {
        let run = self.history_run(policy).to_string();
        let mut problems = Vec::new();
        let mut undid = false;
        for (seq, undo) in done.records.iter().rev() {
            match self.undo_one(session, &run, *seq, undo, policy).await {
                Ok(did) => undid |= did,
                Err(e) => problems.push(format!("{}: {e}", undo.describe())),
            }
        }
        if let Some(restart) = &done.restart {
            let removed = done
                .records
                .iter()
                .any(|(_, u)| u.removes_unit(&restart.unit));
            if (undid || done.restart_attempted) && !removed && problems.is_empty() {
                self.restarts[done.step.index()] += 1;
                let script = remote::service::restart(&restart.unit, policy.health_timeout);
                let back = match session.run(&script, Stdin::Empty).await {
                    Ok(_) => self
                        .wait_healthy(session, &[restart.gate.relaxed()], policy, reporter)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = back {
                    problems.push(format!("restarting {}: {e}", restart.unit));
                }
            }
            if problems.is_empty() {
                let clear = remote::files::clear_pending(
                    &policy.layout,
                    &restart.unit,
                    policy.command_timeout,
                );
                if let Err(e) = session.run(&clear, Stdin::Empty).await {
                    problems.push(format!("clearing the pending restart: {e}"));
                }
            }
        }
        // Put back, a service must also work again as it did: calico-node
        // with the BGP sessions it had.
        let restored = done.records.iter().any(|(_, u)| {
            matches!(
                u,
                Undo::Container {
                    previous_id: Some(_),
                    ..
                }
            )
        }) || (done.restart.is_some() && (undid || done.restart_attempted));
        let back: Vec<Gate> = done.checks.iter().filter_map(Gate::after_revert).collect();
        if problems.is_empty()
            && restored
            && !back.is_empty()
            && let Err(e) = self.wait_healthy(session, &back, policy, reporter).await
        {
            problems.push(format!("after the revert: {e}"));
        }
        if problems.is_empty() {
            let mark = remote::history::mark_restored(
                &policy.layout,
                &run,
                done.step,
                policy.command_timeout,
            );
            let _ = session.run(&mark, Stdin::Empty).await;
        }
        (undid || done.restart_attempted, problems)
    }

    /// Records the failure of step `i`, then takes back every change this
    /// run made on the host, newest first.
    pub(super) async fn fail_and_revert<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        i: usize,
        why: StepError,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) {
        let step = StepName::ALL[i];
        // Steps that passed left bookkeeping behind; the revert redoes it
        // where it matters, so this is best effort.
        let _ = self.flush_deferred(session, policy).await;
        let applied = std::mem::take(&mut self.applied);
        let anything = applied
            .iter()
            .any(|a| !a.records.is_empty() || a.restart_attempted);
        let revert = policy.revert && policy.mode == super::Mode::Apply && why.may_revert();
        if !revert || !anything {
            self.state = HostState::Failed;
            self.finish(i, why.status(), why.to_string(), Some(reporter));
            self.skip_rest(&format!("not run: {step} failed"), Some(reporter));
            return;
        }
        reporter.event(Event::Notice(&format!(
            "{}: {step} failed, reverting this host: {why}",
            self.agent.name
        )));
        self.state = HostState::Reverting;
        let mut outcome: Vec<(StepName, bool, Vec<String>)> = Vec::new();
        match self.still_ours(session, policy).await {
            Err(e) => {
                for a in &applied {
                    let why = vec![format!("the revert could not start: {e}")];
                    outcome.push((a.step, true, why));
                }
            }
            Ok(()) => {
                for a in applied.iter().rev() {
                    let (touched, problems) = self.revert_step(session, a, policy, reporter).await;
                    outcome.push((a.step, touched, problems));
                }
            }
        }
        let clean = outcome.iter().all(|(_, _, p)| p.is_empty());
        if clean {
            let run = self.history_run(policy).to_string();
            let s = remote::history::set_state(
                &policy.layout,
                &run,
                RunState::Reverted,
                policy.command_timeout,
            );
            let _ = session.run(&s, Stdin::Empty).await;
        }
        self.state = if clean {
            HostState::Reverted
        } else {
            HostState::Failed
        };
        for (s, touched, problems) in &outcome {
            let j = s.index();
            let problems = problems.join("; ");
            let (status, message) = match (problems.is_empty(), j == i) {
                // The change never took hold: there was nothing to revert.
                (true, true) if !touched => (why.status(), why.to_string()),
                (true, true) => (Status::Reverted, format!("{why}; reverted")),
                (true, false) => (Status::Reverted, format!("reverted because {step} failed")),
                (false, true) => (why.status(), format!("{why}; revert failed: {problems}")),
                (false, false) => (
                    Status::Failed,
                    format!("{step} failed and the revert failed: {problems}"),
                ),
            };
            self.finish(j, status, message, Some(reporter));
        }
        self.skip_rest(&format!("not run: {step} failed"), Some(reporter));
    }
}
