//! Preflight of one host: connect, take the host's lock, read its facts in
//! one round trip, and plan every step from them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::Mode;
use super::host::HostRun;
use super::session::HostSession;
use crate::desired::{Desired, TlsDesired};
use crate::facts;
use crate::inventory::Agent;
use crate::layout::Layout;
use crate::lock::{self, LockOwner, LockState};
use crate::remote;
use crate::report::{Event, Reporter, Status};
use crate::steps;
use crate::transport::{Connector, Stdin};

/// Who this run is, for the host locks.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub owner: LockOwner,
    /// The interrupted run that `--resume` continues: its locks are ours.
    pub takeover_from: Option<String>,
}

/// What preflight needs besides the host itself.
pub struct Preflight<'a, C: Connector> {
    pub connector: Arc<C>,
    pub mode: Mode,
    pub lock: &'a LockRequest,
    pub layout: &'a Layout,
    /// Hash every managed file, trusting no manifest.
    pub verify: bool,
    /// Keep environment values in plan's diffs.
    pub show_secrets: bool,
    pub deadline: Duration,
    pub reporter: Arc<dyn Reporter>,
}

impl<C: Connector> Preflight<'_, C> {
    /// Connects to and probes host `index`. Its session goes into `slot`
    /// as soon as it exists, so that the run can release the lock whatever
    /// happens next.
    pub async fn host(
        &self,
        index: usize,
        agent: Agent,
        want: Desired,
        slot: &OnceLock<Arc<HostSession<C>>>,
    ) -> HostRun {
        let session = match HostSession::connect(self.connector.clone(), agent.clone()).await {
            Ok(s) => Arc::new(s.reporting(self.reporter.clone())),
            Err(e) => {
                let status = if e.is_unreachable() {
                    Status::Unreachable
                } else {
                    Status::Failed
                };
                return HostRun::unreachable(index, agent, status, e.to_string());
            }
        };
        let _ = slot.set(session.clone());
        self.reporter.event(Event::Connected { host: &agent.name });
        let fail =
            |status: Status, why: String| HostRun::unreachable(index, agent.clone(), status, why);

        // `plan` only looks at the lock; apply and rollback take it before
        // any fact is read, so that what they plan from cannot change under
        // them. Both happen in the same round trip.
        let mut facts = match self.lock_and_probe(&session, &want).await {
            Ok(facts) => facts,
            Err((status, why)) => return fail(status, why),
        };
        if self.mode != Mode::Rollback
            && let Some(tls) = want.etcd_tls.as_ref().filter(|t| !t.loopback.is_empty())
        {
            match self.tls_loopback(&session, tls).await {
                Ok(answers) => facts.tls_loopback = answers,
                Err((status, why)) => return fail(status, why),
            }
        }
        let (plans, target) = match self.mode {
            Mode::Rollback => (
                steps::rollback::plan(&agent, &facts),
                facts.history.rollback_target().map(|r| r.run.clone()),
            ),
            Mode::Apply | Mode::Plan => (steps::plan_host(&agent, &want, &facts), None),
        };
        let mut run = HostRun::planned(index, agent, plans, self.mode == Mode::Plan);
        if self.show_secrets {
            run.attach_diffs(true);
        }
        run.set_target_run(target);
        run
    }

    /// Asks every etcd member, from the agent, for TLS as the gateway's
    /// clients will: a second round trip, only with TLS behind the gateway.
    async fn tls_loopback(
        &self,
        session: &HostSession<C>,
        tls: &TlsDesired,
    ) -> Result<Vec<facts::LoopbackTls>, (Status, String)> {
        let script = remote::tls::loopback(&tls.loopback, self.deadline);
        let payload = remote::tls::payload(tls);
        let out = session
            .run_raw(&script, Stdin::Bytes(&payload))
            .await
            .map_err(|e| (e.status(), e.to_string()))?;
        if out.exit_status != Some(0) {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err((Status::Failed, format!("{}: {}", script.what, err.trim())));
        }
        Ok(facts::parse_tls_loopback(&out.stdout))
    }

    async fn lock_and_probe(
        &self,
        session: &HostSession<C>,
        want: &Desired,
    ) -> Result<facts::Facts, (Status, String)> {
        let name = &session.agent.name;
        let mut takeover = self.lock.takeover_from.clone();
        for _ in 0..2 {
            let lock = match self.mode {
                Mode::Plan => remote::lock::check(self.deadline),
                Mode::Apply | Mode::Rollback => {
                    // Released at the end whatever the answer: the release
                    // removes only a lock this run holds.
                    session.set_locked(true);
                    remote::lock::acquire(&self.lock.owner, takeover.as_deref(), self.deadline)
                }
            };
            let reads = remote::probe::Reads {
                verify: self.verify,
                texts: self.mode == Mode::Plan,
            };
            let script = remote::probe::locked(&lock, want, self.layout, reads, self.deadline);
            let out = session
                .run_raw(&script, Stdin::Empty)
                .await
                .map_err(|e| (e.status(), e.to_string()))?;
            if let Some(e) = facts::probe_failure(out.exit_status, &out.stderr) {
                return Err((Status::Failed, e.to_string()));
            }
            let records =
                facts::records(&out.stdout).map_err(|e| (Status::Failed, e.to_string()))?;
            let answer = records.get("lock").map(|r| r.text()).unwrap_or_default();
            let state = lock::parse(&answer).map_err(|e| {
                let why = if answer.is_empty() {
                    e.to_string()
                } else {
                    format!("cannot take the agent's lock: {answer}")
                };
                (Status::Failed, why)
            })?;
            let probed =
                || facts::from_records(&records).map_err(|e| (Status::Failed, e.to_string()));
            match state {
                LockState::Acquired => return probed(),
                LockState::Free => return probed(),
                LockState::StaleReplaced(holder) => {
                    self.reporter.event(Event::Notice(&format!(
                        "{name}: took over a stale lock ({holder})"
                    )));
                    return probed();
                }
                // A run of this machine whose process is gone holds it:
                // stale at once.
                LockState::Held(holder)
                    if self.mode != Mode::Plan && holder.dead_here() && takeover.is_none() =>
                {
                    self.reporter.event(Event::Notice(&format!(
                        "{name}: the lock's run is no longer alive on this machine; taking it over ({holder})"
                    )));
                    takeover = Some(holder.owner.clone());
                }
                LockState::Held(holder) => {
                    session.set_locked(false);
                    let why = match self.mode {
                        Mode::Plan => {
                            format!("another rollout is working on this agent, {holder}")
                        }
                        _ => format!("refused: another rollout is working on this agent, {holder}"),
                    };
                    return Err((Status::Failed, why));
                }
            }
        }
        session.set_locked(false);
        Err((
            Status::Failed,
            "refused: the agent's lock could not be taken over".into(),
        ))
    }
}
