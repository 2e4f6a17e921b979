//! Running one host's change: its actions, its restart and its health
//! gates, each as a privileged command over the host's session.

use std::time::Duration;

use tokio::time::Instant;

use super::host::HostRun;
use super::revert::Applied;
use crate::remote;
use crate::shell::privileged;
use crate::steps::{Action, Change, Gate, Source, Undo, restore_script};
use crate::transport::{ExecOutput, Stdin, Transport};

/// How often a health gate is checked while a service comes back.
const GATE_POLL: Duration = Duration::from_millis(500);
/// How often the gates are checked while a restarted host must stay healthy.
const WATCH_POLL: Duration = Duration::from_secs(1);

impl<S: Transport> HostRun<S> {
    pub(super) async fn apply_change(
        &self,
        change: &Change,
        health_timeout: Duration,
        applied: &mut Applied,
    ) -> Result<(), String> {
        // Uploads already happened in the stage phase.
        for action in &change.apply {
            self.run_action(action).await?;
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
    pub(super) async fn watch(
        &self,
        gates: &[(usize, Gate)],
        window: Duration,
    ) -> Result<(), (usize, String)> {
        let until = Instant::now() + window;
        let only: Vec<Gate> = gates.iter().map(|(_, g)| g.clone()).collect();
        let script = remote::gates(&only);
        let unhealthy = |i: usize, e: String| {
            (
                i,
                format!("became unhealthy within {}s: {e}", window.as_secs()),
            )
        };
        loop {
            let out = self
                .exec(&script, Stdin::Empty)
                .await
                .map_err(|e| unhealthy(gates[0].0, e))?;
            for ((i, _), verdict) in gates.iter().zip(remote::gate_verdicts(&only, &out.stdout)) {
                verdict.map_err(|e| unhealthy(*i, e))?;
            }
            if Instant::now() >= until {
                return Ok(());
            }
            tokio::time::sleep(WATCH_POLL.min(until - Instant::now())).await;
        }
    }

    pub(super) async fn run_action(&self, action: &Action) -> Result<(), String> {
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
            Action::Undo(undo) => self.run_undo(undo).await?,
        }
        Ok(())
    }

    /// Takes back one change: by a revert, or as a step of `rollback`.
    pub(super) async fn run_undo(&self, undo: &Undo) -> Result<(), String> {
        match undo {
            Undo::File { target, existed } => self
                .exec(&remote::restore_file(target, *existed), Stdin::Empty)
                .await
                .map_err(|e| format!("putting back {target}: {e}"))?,
            Undo::Container { name } => self
                .exec(&restore_script(name), Stdin::Empty)
                .await
                .map_err(|e| format!("putting back container {name}: {e}"))?,
        };
        Ok(())
    }

    /// Polls the gate until it passes or `timeout` runs out.
    pub(super) async fn wait_healthy(&self, gate: &Gate, timeout: Duration) -> Result<(), String> {
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
    pub(super) async fn exec(&self, script: &str, stdin: Stdin<'_>) -> Result<ExecOutput, String> {
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
}
