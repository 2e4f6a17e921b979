//! `unlock`: removes the locks a dead run left behind, naming each holder,
//! and refusing (without `--force`) a lock whose holder looks alive.

use std::sync::Arc;
use std::time::Duration;

use super::session::HostSession;
use crate::inventory::Agent;
use crate::lock::{self, LockState};
use crate::remote;
use crate::transport::{Connector, Stdin};

/// What happened on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlocked {
    /// There was no lock.
    Free,
    /// This holder's lock was removed.
    Removed(String),
    /// The holder looks alive; `--force` removes it anyway.
    Refused(String),
    Failed(String),
}

pub async fn unlock<C: Connector>(
    connector: Arc<C>,
    agents: Vec<Agent>,
    force: bool,
    forks: usize,
    deadline: Duration,
) -> Vec<(String, Unlocked)> {
    let limit = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let jobs = agents.into_iter().map(|agent| {
        let (connector, limit) = (connector.clone(), limit.clone());
        async move {
            let _permit = limit.acquire_owned().await;
            let name = agent.name.clone();
            (name, one(connector, agent, force, deadline).await)
        }
    });
    futures::future::join_all(jobs).await
}

async fn one<C: Connector>(
    connector: Arc<C>,
    agent: Agent,
    force: bool,
    deadline: Duration,
) -> Unlocked {
    let session = match HostSession::connect(connector, agent).await {
        Ok(s) => s,
        Err(e) => return Unlocked::Failed(e.to_string()),
    };
    let ask = |script: remote::Script| {
        let session = &session;
        async move {
            let out = session
                .run_raw(&script, Stdin::Empty)
                .await
                .map_err(|e| e.to_string())?;
            lock::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| {
                if out.success() {
                    e.to_string()
                } else {
                    out.error_tail()
                }
            })
        }
    };
    let outcome = match ask(remote::lock::check(deadline)).await {
        Err(e) => Unlocked::Failed(e),
        Ok(LockState::Free) => Unlocked::Free,
        Ok(LockState::Held(holder) | LockState::StaleReplaced(holder)) => {
            if holder.looks_alive() && !force {
                Unlocked::Refused(format!(
                    "{holder}; it looks alive: stop that run, or use --force to remove the lock anyway"
                ))
            } else {
                match ask(remote::lock::remove(&holder.owner, deadline)).await {
                    Ok(LockState::Free) => Unlocked::Removed(holder.to_string()),
                    Ok(LockState::Held(now)) => Unlocked::Failed(format!(
                        "the lock changed hands while it was being removed: {now}"
                    )),
                    Ok(other) => Unlocked::Failed(format!("unexpected lock state {other:?}")),
                    Err(e) => Unlocked::Failed(e),
                }
            }
        }
        Ok(LockState::Acquired) => Unlocked::Failed("unexpected answer: lock acquired".into()),
    };
    session.close().await;
    outcome
}
