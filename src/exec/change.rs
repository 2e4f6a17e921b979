//! Making one step's change on a host: its actions in order, each one
//! command with its deadline and, when it changes something, its history
//! record first; then its restart and health gates, each gate's outcome
//! kept for the report.

use std::sync::Arc;

use super::Mode;
use super::error::StepError;
use super::host::{Applied, HostRun, Policy};
use super::session::HostSession;
use crate::desired::sha256_hex;
use crate::history::retired_name;
use crate::remote::Script;
use crate::remote::batch::{self, Item};
use crate::remote::{self, files::CONFLICT_EXIT};
use crate::report::{Event, Reporter};
use crate::step::Undo;
use crate::steps::Gate;
use crate::steps::{Action, Change, Expect, Install, Source, merge_daemon_json};
use crate::transport::{Connector, Stdin};

/// How long one staging action may take on the agent.
pub(super) fn stage_deadline(action: &Action, policy: &Policy) -> std::time::Duration {
    match action {
        Action::Stage { size, .. } => policy.upload_deadline(*size),
        _ => policy.pull_timeout,
    }
}

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
            Action::Stage { local, sha256, .. } => {
                let script =
                    remote::files::stage(&policy.layout, sha256, stage_deadline(action, policy));
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
            Action::Download { url, sha256 } => {
                let script =
                    remote::files::download(&policy.layout, url, sha256, policy.pull_timeout);
                session.run(&script, Stdin::Empty).await?;
            }
            other => unreachable!("not a staging action: {other:?}"),
        }
        Ok(())
    }

    /// Step `i`'s change, in as few round trips as its stdin allows
    /// (usually one): its actions, its restart and two health checks. What
    /// it did is kept in `self.applied` as it goes, so that a failure at
    /// any point is taken back exactly.
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
            checks: change.gate.iter().chain(&change.checks).cloned().collect(),
        });
        let unit = change.restart.as_ref().map(|r| r.unit.as_str());
        let mut todo: Vec<Ready> = Vec::new();
        for action in &change.apply {
            todo.push(self.ready(slot, action, unit, policy));
        }
        if let Some(restart) = &change.restart {
            todo.push(Ready {
                item: Item {
                    script: remote::service::restart(&restart.unit, policy.health_timeout),
                    reads_stdin: false,
                },
                stdin: None,
                kind: Kind::Restart,
            });
        }
        let gates = change.gates();
        // The agent bounds each part of the change; the wait is their sum,
        // and two gate checks when there are gates.
        let checks = if gates.is_empty() { 0 } else { 2 };
        reporter.event(Event::Waiting {
            host: &self.agent.name,
            step,
            what: &super::waits::change(change),
            deadline: todo
                .iter()
                .map(|r| r.item.script.deadline)
                .sum::<std::time::Duration>()
                + (policy.command_timeout + remote::gate::extra_time(&gates)) * checks,
        });
        let mut passed = false;
        let mut seen = super::gates::Seen::new(gates.len());
        while !todo.is_empty() {
            session.touchable()?;
            // Up to the second item that reads stdin: one stdin a trip.
            let cut = todo
                .iter()
                .enumerate()
                .filter(|(_, r)| r.item.reads_stdin)
                .nth(1)
                .map_or(todo.len(), |(k, _)| k);
            let rest = todo.split_off(cut);
            let last = rest.is_empty();
            let checked: &[Gate] = if last { &gates } else { &[] };
            let (report, stopped) = self
                .run_batch(session, slot, i, &todo, checked, policy)
                .await?;
            todo = match stopped {
                None => rest,
                // The file changed since the probe: merge again, then go on
                // with what came after it.
                Some(k) => {
                    let Kind::Install(install, change) = &todo[k].kind else {
                        unreachable!("only an install stops a batch to be merged again")
                    };
                    let (install, change) = (*install, change.clone());
                    let why = batch::tail(report.outcomes[k].as_ref().expect("it ran"));
                    if let Some(again) = self.remerged(session, install, &why, policy).await? {
                        reporter.event(Event::Notice(&format!(
                            "{}: {} changed since it was read; merged again from what it holds now",
                            self.agent.name, install.target
                        )));
                        self.install(
                            session,
                            &again,
                            change.as_change(&policy.layout),
                            policy.command_timeout,
                        )
                        .await?;
                    }
                    let mut after = todo.split_off(k + 1);
                    after.extend(rest);
                    after
                }
            };
            if last && let Some([a, b]) = report.readings {
                seen.update(&a);
                seen.update(&b);
                let a: Result<Vec<_>, _> = a.into_iter().collect();
                let b: Result<Vec<_>, _> = b.into_iter().collect();
                if let (Ok(a), Ok(b)) = (a, b)
                    && super::gates::changed(&a, &b).is_none()
                {
                    self.tell_notes(&b, reporter);
                    seen.passed(&b);
                    passed = true;
                }
            }
        }
        if passed {
            self.gate_results[i] = seen.results(&gates);
        }
        if !gates.is_empty() && !passed {
            let unhealthy = |e: StepError| match &change.restart {
                Some(r) => e.context(format!("{} restarted but is not healthy", r.unit)),
                None => e,
            };
            reporter.event(Event::Waiting {
                host: &self.agent.name,
                step,
                what: &format!("waiting for {}", super::waits::gates(&gates)),
                deadline: policy.health_timeout,
            });
            let waited = self
                .wait_seen(session, &gates, policy, reporter, &mut seen)
                .await;
            self.gate_results[i] = seen.results(&gates);
            waited.map_err(unhealthy)?;
        }
        if let Some(restart) = &change.restart {
            self.deferred.push(remote::files::clear_pending(
                &policy.layout,
                &restart.unit,
                policy.command_timeout,
            ));
        }
        if policy.mode == Mode::Rollback {
            let run = self.history_run(policy).to_string();
            self.deferred.push(remote::history::mark_restored(
                &policy.layout,
                &run,
                step,
                policy.command_timeout,
            ));
        }
        Ok(())
    }

    /// Runs one batch of a step, the host's deferred bookkeeping in front.
    /// Returns what the agent reported and, when an install found its file
    /// changed since the probe and may merge again, that install's index.
    async fn run_batch<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        slot: usize,
        i: usize,
        todo: &[Ready<'_>],
        gates: &[Gate],
        policy: &Policy,
    ) -> Result<(batch::Report, Option<usize>), StepError> {
        // The host's first batch asks for the lock before anything else.
        let check_lock = std::mem::take(&mut self.check_lock);
        let lock =
            check_lock.then(|| remote::lock::refresh(&policy.run_id, policy.command_timeout));
        let before: Vec<Item> = lock
            .into_iter()
            .chain(std::mem::take(&mut self.deferred))
            .map(|script| Item {
                script,
                reads_stdin: false,
            })
            .collect();
        let first = before.len();
        let items: Vec<Item> = before
            .into_iter()
            .chain(todo.iter().map(|r| r.item.clone()))
            .collect();
        let script = batch::script(&items, gates, policy.command_timeout);
        let stdin = todo.iter().find_map(|r| r.stdin.as_deref());
        let out = session
            .run(&script, stdin.map_or(Stdin::Empty, Stdin::Bytes))
            .await;
        let report = match out {
            Ok(out) => batch::report(&items, gates, &out.stdout),
            // Given up on as a whole: the item that never reported is the
            // one that hung.
            Err(StepError::TimedOut { .. }) => batch::Report {
                outcomes: vec![None; items.len()],
                readings: None,
            },
            Err(e) => {
                self.note_unknown_restart(slot, i, todo);
                return Err(e);
            }
        };
        for (k, outcome) in report.outcomes[..first].iter().enumerate() {
            match outcome {
                Some(o) if check_lock && k == 0 => super::revert::refreshed(session, &o.stdout)?,
                Some(o) if o.code != 0 => {
                    return Err(StepError::Failed(batch::tail(o)).context(&items[k].script.what));
                }
                Some(_) => {}
                None => {
                    return Err(StepError::TimedOut {
                        what: items[k].script.what.clone(),
                        after: items[k].script.deadline,
                    });
                }
            }
        }
        let mine = &report.outcomes[first..];
        for (k, (ready, outcome)) in todo.iter().zip(mine).enumerate() {
            let Some(outcome) = outcome else {
                // The batch ran out of time while this item ran.
                self.note_unknown_restart(slot, i, &todo[k..]);
                return Err(StepError::TimedOut {
                    what: ready.item.script.what.clone(),
                    after: ready.item.script.deadline,
                });
            };
            if matches!(ready.kind, Kind::Restart) {
                self.applied[slot].restart_attempted = true;
                self.restarts[i] += 1;
            }
            if outcome.code == 0 {
                continue;
            }
            let what = &ready.item.script.what;
            if crate::remote::TIMED_OUT_EXITS.contains(&outcome.code) {
                return Err(StepError::TimedOut {
                    what: what.clone(),
                    after: ready.item.script.deadline,
                });
            }
            let why = batch::tail(outcome);
            return match &ready.kind {
                Kind::Install(install, _) if outcome.code == CONFLICT_EXIT => {
                    if install.remerge.is_some() {
                        Ok((report.clone(), Some(k)))
                    } else {
                        Err(StepError::Refused(why))
                    }
                }
                Kind::Install(..) | Kind::Plain => Err(StepError::Failed(why).context(what)),
                Kind::Replace(name) => Err(StepError::Failed(why).context(format!("run {name}"))),
                Kind::Restart => {
                    let unit = what.trim_start_matches("systemctl restart ");
                    Err(StepError::Failed(why).context(format!("restart {unit} failed")))
                }
            };
        }
        Ok((report, None))
    }

    /// A restart among `todo` may have happened: count it, and let a
    /// revert restart the unit again.
    fn note_unknown_restart(&mut self, slot: usize, i: usize, todo: &[Ready<'_>]) {
        if todo.iter().any(|r| matches!(r.kind, Kind::Restart)) {
            self.applied[slot].restart_attempted = true;
            self.restarts[i] += 1;
        }
    }

    /// One action as an item of a batch. Changes that leave something to
    /// take back are listed in `applied` before they run: the agent writes
    /// the history record before it makes the change, so a cut-off change
    /// is still taken back.
    fn ready<'a>(
        &mut self,
        slot: usize,
        action: &'a Action,
        unit: Option<&str>,
        policy: &Policy,
    ) -> Ready<'a> {
        let step = self.applied[slot].step;
        let run = self.history_run(policy).to_string();
        let d = policy.command_timeout;
        let layout = &policy.layout;
        let plain = |script: Script| Ready {
            item: Item {
                script,
                reads_stdin: false,
            },
            stdin: None,
            kind: Kind::Plain,
        };
        match action {
            Action::Install(install) => {
                let seq = self.take_seq();
                self.applied[slot].records.push((seq, install.undo.clone()));
                let change = ChangeOf {
                    run,
                    seq,
                    step,
                    restart: unit.map(str::to_string),
                };
                let stdin = match &install.source {
                    Source::Bytes(bytes) => Some(bytes.clone()),
                    Source::Staged => None,
                };
                Ready {
                    item: Item {
                        script: remote::files::install(install, change.as_change(layout), d),
                        reads_stdin: stdin.is_some(),
                    },
                    stdin,
                    kind: Kind::Install(install, change),
                }
            }
            Action::DaemonReload => plain(remote::service::daemon_reload(d)),
            Action::Enable { unit } => plain(remote::service::enable(unit, d)),
            Action::ClearStage { sha256s } => plain(remote::files::clear_stage(layout, sha256s, d)),
            Action::StartContainer { name } => {
                plain(remote::container::start(name, policy.health_timeout))
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
                Ready {
                    item: Item {
                        script,
                        reads_stdin: false,
                    },
                    stdin: None,
                    kind: Kind::Replace(spec.name),
                }
            }
            Action::Undo { run, seq, undo } => plain(self.undo_script(run, *seq, undo, policy)),
            Action::Stage { .. } | Action::Pull { .. } | Action::Download { .. } => {
                unreachable!("staging actions run in the stage phase")
            }
        }
    }

    /// Runs what the host left for its next round trip, if anything.
    pub(super) async fn flush_deferred<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        policy: &Policy,
    ) -> Result<(), StepError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let items: Vec<Item> = std::mem::take(&mut self.deferred)
            .into_iter()
            .map(|script| Item {
                script,
                reads_stdin: false,
            })
            .collect();
        let script = batch::script(&items, &[], policy.command_timeout);
        let out = session.run(&script, Stdin::Empty).await?;
        let report = batch::report(&items, &[], &out.stdout);
        match report.outcomes.iter().flatten().find(|o| o.code != 0) {
            Some(failed) => Err(StepError::Failed(batch::tail(failed))),
            None => Ok(()),
        }
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

/// Which change of which run an install records itself as.
#[derive(Debug, Clone)]
struct ChangeOf {
    run: String,
    seq: u32,
    step: crate::step::StepName,
    restart: Option<String>,
}

impl ChangeOf {
    fn as_change<'a>(&'a self, layout: &'a crate::layout::Layout) -> remote::files::Change<'a> {
        remote::files::Change {
            layout,
            run: &self.run,
            seq: self.seq,
            step: self.step,
            restart: self.restart.as_deref(),
        }
    }
}

/// How an item's failure reads.
#[derive(Debug, Clone)]
enum Kind<'a> {
    Install(&'a Install, ChangeOf),
    Replace(&'a str),
    Restart,
    Plain,
}

/// One action, ready to run as an item of a batch.
#[derive(Debug, Clone)]
struct Ready<'a> {
    item: Item,
    stdin: Option<Arc<[u8]>>,
    kind: Kind<'a>,
}
