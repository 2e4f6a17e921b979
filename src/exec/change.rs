//! Making one step's change on a host: its actions in order, each one
//! command with its deadline and, when it changes something, its history
//! record first; then its restart and health gate.

use std::sync::Arc;

use super::Mode;
use super::error::StepError;
use super::host::{Applied, HostRun, Policy};
use super::session::HostSession;
use crate::desired::sha256_hex;
use crate::history::retired_name;
use crate::remote::{self, files::CONFLICT_EXIT};
use crate::report::{Event, Reporter};
use crate::step::Undo;
use crate::steps::{Action, Change, Expect, Install, Source, merge_daemon_json};
use crate::transport::{Connector, Stdin};

impl HostRun {
    /// One upload or image pull of the stage phase.
    pub(super) async fn stage_one<C: Connector>(
        &self,
        session: &HostSession<C>,
        action: &Action,
        policy: &Policy,
    ) -> Result<(), StepError> {
        session.touchable()?;
        match action {
            Action::Stage {
                local,
                sha256,
                size,
            } => {
                let script =
                    remote::files::stage(&policy.layout, sha256, policy.upload_deadline(*size));
                session
                    .run(&script, Stdin::File(local))
                    .await
                    .map_err(|e| e.context(format!("uploading {}", local.display())))?;
            }
            Action::Pull { image } => {
                let script = remote::container::pull(image, policy.pull_timeout);
                session
                    .run(&script, Stdin::Empty)
                    .await
                    .map_err(|e| e.context(format!("docker pull {image}")))?;
            }
            other => unreachable!("not a staging action: {other:?}"),
        }
        Ok(())
    }

    /// Step `i`'s change. What it did is kept in `self.applied` as it goes,
    /// so that a failure at any point is taken back exactly.
    pub(super) async fn apply_change<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        i: usize,
        change: &Change,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) -> Result<(), StepError> {
        let step = self.plans[i].step;
        let slot = self.applied.len();
        self.applied.push(Applied {
            step,
            records: Vec::new(),
            restart_attempted: false,
            restart: change.restart.clone(),
        });
        let unit = change.restart.as_ref().map(|r| r.unit.as_str());
        for action in &change.apply {
            session.touchable()?;
            self.run_action(session, slot, action, unit, policy, reporter)
                .await?;
        }
        if let Some(restart) = &change.restart {
            session.touchable()?;
            self.applied[slot].restart_attempted = true;
            self.restarts[i] += 1;
            let script = remote::service::restart(&restart.unit, policy.health_timeout);
            session
                .run(&script, Stdin::Empty)
                .await
                .map_err(|e| e.context(format!("restart {} failed", restart.unit)))?;
            self.wait_healthy(session, &restart.gate, policy)
                .await
                .map_err(|e| e.context(format!("{} restarted but is not healthy", restart.unit)))?;
            let clear =
                remote::files::clear_pending(&policy.layout, &restart.unit, policy.command_timeout);
            session.run(&clear, Stdin::Empty).await?;
        } else if let Some(gate) = &change.gate {
            self.wait_healthy(session, gate, policy).await?;
        }
        if policy.mode == Mode::Rollback {
            let run = self.history_run(policy).to_string();
            let mark =
                remote::history::mark_restored(&policy.layout, &run, step, policy.command_timeout);
            session.run(&mark, Stdin::Empty).await?;
        }
        Ok(())
    }

    async fn run_action<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        slot: usize,
        action: &Action,
        unit: Option<&str>,
        policy: &Policy,
        reporter: &dyn Reporter,
    ) -> Result<(), StepError> {
        let step = self.applied[slot].step;
        let run = self.history_run(policy).to_string();
        let d = policy.command_timeout;
        let layout = &policy.layout;
        match action {
            Action::Install(install) => {
                let seq = self.take_seq();
                // Listed before the install runs: the agent writes the
                // record before it replaces the file, so a cut-off install
                // is still taken back.
                self.applied[slot].records.push((seq, install.undo.clone()));
                let change = remote::files::Change {
                    layout,
                    run: &run,
                    seq,
                    step,
                    restart: unit,
                };
                match self.install(session, install, change, d).await {
                    Err(StepError::Refused(why)) if install.remerge.is_some() => {
                        let again = self.remerged(session, install, &why, policy).await?;
                        if let Some(again) = again {
                            reporter.event(Event::Notice(&format!(
                                "{}: {} changed since it was read; merged again from what it holds now",
                                self.agent.name, install.target
                            )));
                            self.install(session, &again, change, d).await?;
                        }
                    }
                    other => other?,
                }
            }
            Action::DaemonReload => {
                session
                    .run(&remote::service::daemon_reload(d), Stdin::Empty)
                    .await?;
            }
            Action::Enable { unit } => {
                session
                    .run(&remote::service::enable(unit, d), Stdin::Empty)
                    .await?;
            }
            Action::ClearStage { sha256s } => {
                session
                    .run(
                        &remote::files::clear_stage(layout, sha256s, d),
                        Stdin::Empty,
                    )
                    .await?;
            }
            Action::StartContainer { name } => {
                let script = remote::container::start(name, policy.health_timeout);
                session.run(&script, Stdin::Empty).await?;
            }
            Action::ReplaceContainer(spec) => {
                let seq = self.take_seq();
                self.applied[slot].records.push((
                    seq,
                    Undo::Container {
                        name: spec.name.to_string(),
                        previous_id: None,
                        retired: retired_name(spec.name, &run),
                        policy: String::new(),
                        was_running: false,
                        spec_hash: spec.spec_hash.clone(),
                    },
                ));
                let script = remote::container::replace(
                    spec,
                    layout,
                    &run,
                    seq,
                    step,
                    policy.health_timeout,
                );
                session
                    .run(&script, Stdin::Empty)
                    .await
                    .map_err(|e| e.context(format!("run {}", spec.name)))?;
            }
            Action::Undo { run, seq, undo } => {
                self.undo_one(session, run, *seq, undo, policy).await?;
            }
            Action::Stage { .. } | Action::Pull { .. } => {
                unreachable!("staging actions run in the stage phase")
            }
        }
        Ok(())
    }

    /// One install; a target that changed since the probe is `Refused`.
    async fn install<C: Connector>(
        &self,
        session: &HostSession<C>,
        install: &Install,
        change: remote::files::Change<'_>,
        deadline: std::time::Duration,
    ) -> Result<(), StepError> {
        let script = remote::files::install(install, change, deadline);
        let stdin = match &install.source {
            Source::Bytes(bytes) => Stdin::Bytes(bytes),
            Source::Staged => Stdin::Empty,
        };
        let out = session.run_raw(&script, stdin).await?;
        match out.exit_status {
            Some(0) => Ok(()),
            Some(CONFLICT_EXIT) => Err(StepError::Refused(out.error_tail())),
            _ => Err(StepError::Failed(out.error_tail()).context(&script.what)),
        }
    }

    /// Someone changed the file since the probe read it: merge the managed
    /// keys into what it holds now, instead of dropping their edit. `None`
    /// when it already has every managed key.
    async fn remerged<C: Connector>(
        &self,
        session: &HostSession<C>,
        install: &Install,
        why: &str,
        policy: &Policy,
    ) -> Result<Option<Install>, StepError> {
        let target = install.target.as_str();
        let read = remote::Script::new(
            format!("reading {target}"),
            policy.command_timeout,
            format!(
                "if [ -e {t} ]; then echo present; cat -- {t}; else echo absent; fi",
                t = crate::shell::quote(target)
            ),
        );
        let out = session.run(&read, Stdin::Empty).await?;
        let text = out.stdout;
        let (current, expect) = match text.strip_prefix(b"present\n") {
            Some(bytes) => (Some(bytes.to_vec()), Expect::Sha256(sha256_hex(bytes))),
            None => (None, Expect::Absent),
        };
        let managed = install.remerge.as_ref().expect("a merged file");
        let merged = merge_daemon_json(current.as_deref(), managed).map_err(|e| {
            StepError::Refused(format!(
                "{why}; and it is now not usable: {e}; left as it is"
            ))
        })?;
        Ok(merged.map(|m| Install {
            sha256: sha256_hex(&m.bytes),
            source: Source::Bytes(Arc::from(m.bytes)),
            expect,
            ..install.clone()
        }))
    }
}
