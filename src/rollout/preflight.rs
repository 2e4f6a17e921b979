//! Preflight of one host: connect, take the host's lock, read its facts in
//! one round trip, and plan every step from them.

use std::sync::Arc;

use super::Mode;
use super::host::HostRun;
use crate::desired::Desired;
use crate::facts;
use crate::inventory::Agent;
use crate::lock::{self, LockOwner, LockState};
use crate::report::{Event, Reporter, Status};
use crate::shell::privileged;
use crate::steps;
use crate::transport::{Connector, ExecOutput, Stdin, Transport, TransportError};

/// Who this run is, for the host locks.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub owner: LockOwner,
    /// The interrupted run that `--resume` continues: its locks are ours.
    pub takeover_from: Option<String>,
}

fn connect_status(e: &TransportError) -> Status {
    match e {
        TransportError::Connect { .. }
        | TransportError::ConnectTimeout { .. }
        | TransportError::Ssh(_) => Status::Unreachable,
        _ => Status::Failed,
    }
}

async fn run_script<S: Transport>(
    session: &S,
    agent: &Agent,
    script: &str,
) -> Result<ExecOutput, TransportError> {
    session
        .exec(&privileged(script, agent.ssh.needs_sudo()), Stdin::Empty)
        .await
}

pub async fn preflight<C: Connector>(
    connector: Arc<C>,
    agent: Agent,
    want: Desired,
    mode: Mode,
    lock: Arc<LockRequest>,
    reporter: Arc<dyn Reporter>,
) -> HostRun<C::Session> {
    let session = match connector.connect(&agent).await {
        Ok(s) => Arc::new(s),
        Err(e) => return HostRun::unreachable(agent, connect_status(&e), e.to_string()),
    };
    reporter.event(Event::Connected { host: &agent.name });

    // `plan` only looks at the lock; apply and rollback take it before any
    // fact is read, so that what they plan from cannot change under them.
    let script = match mode {
        Mode::Plan => lock::check_script(),
        Mode::Apply | Mode::Rollback => {
            lock::acquire_script(&lock.owner, lock.takeover_from.as_deref())
        }
    };
    let locked = match run_script(session.as_ref(), &agent, &script).await {
        Err(e) => {
            session.close().await;
            return HostRun::unreachable(agent, connect_status(&e), e.to_string());
        }
        Ok(out) => match lock::parse(&String::from_utf8_lossy(&out.stdout)) {
            Ok(LockState::Acquired) => true,
            Ok(LockState::Free) => false,
            Ok(LockState::StaleReplaced(holder)) => {
                reporter.event(Event::Notice(&format!(
                    "{}: took over a stale lock ({holder})",
                    agent.name
                )));
                true
            }
            Ok(LockState::Held(holder)) => {
                session.close().await;
                let why = match mode {
                    Mode::Plan => format!("another rollout is working on this agent, {holder}"),
                    _ => format!("refused: another rollout is working on this agent, {holder}"),
                };
                return HostRun::unreachable(agent, Status::Failed, why);
            }
            Err(e) => {
                session.close().await;
                let why = if out.success() {
                    e.to_string()
                } else {
                    format!("cannot take the agent's lock: {}", out.error_tail())
                };
                return HostRun::unreachable(agent, Status::Failed, why);
            }
        },
    };
    let release = |session: Arc<C::Session>, agent: Agent, status: Status, why: String| async move {
        if locked {
            let _ = run_script(
                session.as_ref(),
                &agent,
                &lock::release_script(&lock.owner.id),
            )
            .await;
        }
        session.close().await;
        HostRun::unreachable(agent, status, why)
    };

    let probed = run_script(session.as_ref(), &agent, &facts::probe_script(&want)).await;
    let facts = match probed {
        Err(e) => return release(session, agent, connect_status(&e), e.to_string()).await,
        Ok(out) => match facts::parse(out.exit_status, &out.stdout, &out.stderr) {
            Ok(f) => f,
            Err(e) => return release(session, agent, Status::Failed, e.to_string()).await,
        },
    };
    let plans = match mode {
        Mode::Rollback => steps::rollback::plan(&agent, facts.undo.as_ref()),
        Mode::Apply | Mode::Plan => steps::plan_host(&agent, &want, &facts),
    };
    let mut run = HostRun::planned(agent, session, plans, mode == Mode::Plan);
    run.locked = locked;
    run
}
