//! The barrier between batches: before a new batch starts, every host the
//! earlier batches changed must have its BGP sessions Established again.
//! A host's own gate proved its mesh once; a later batch's restarts, or
//! anything in the pause before `--resume`, may have taken its peers down
//! since, and a batch that starts while they are down cuts more of the
//! mesh.

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::Semaphore;

use super::heartbeat::Fleet;
use super::host::{HostRun, Policy};
use super::session::HostSession;
use crate::report::Reporter;
use crate::steps::{Gate, Mesh, Plan};
use crate::transport::Connector;

/// The BGP gate a host passed, if it passed one: in this run, the node's
/// own, or docker's when a docker restart took calico-node down with it;
/// for a host an earlier run finished, what its journal says.
pub(super) fn passed_mesh(run: &HostRun) -> Option<Mesh> {
    if run.resumed {
        return run.mesh.clone();
    }
    if run.failed() {
        return None;
    }
    run.plans
        .iter()
        .filter_map(|p| match &p.plan {
            Plan::Change(change) => Some(change),
            _ => None,
        })
        .flat_map(|c| c.gates())
        .find_map(|g| match g {
            Gate::Bgp(mesh) => Some(mesh),
            _ => None,
        })
}

/// Waits, within `health_timeout`, until every host in `done` that passed
/// a BGP gate passes it again; hosts are checked in parallel, no more
/// than `hosts_at_once`. A host an earlier run finished is connected to
/// first (this run did not need it before). Returns what is still down,
/// host by host.
pub(super) async fn mesh<C: Connector>(
    runs: &[HostRun],
    done: &[usize],
    fleet: &Arc<Fleet<C>>,
    connector: &Arc<C>,
    hosts_at_once: &Arc<Semaphore>,
    policy: &Policy,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), String> {
    let checks = done.iter().filter_map(|&i| {
        let mesh = passed_mesh(&runs[i])?;
        let run = &runs[i];
        Some(async move {
            let _permit = hosts_at_once.acquire().await;
            let session = match fleet.get(i) {
                Some(session) => session.clone(),
                None => match HostSession::connect(connector.clone(), run.agent.clone()).await {
                    Ok(s) => {
                        let s = Arc::new(s.reporting(reporter.clone()));
                        let _ = fleet.hosts[i].set(s.clone());
                        s
                    }
                    Err(e) => return Some(format!("{}: {e}", run.agent.name)),
                },
            };
            run.wait_healthy(&session, &[Gate::Bgp(mesh)], policy, reporter.as_ref())
                .await
                .err()
                .map(|e| format!("{}: {e}", run.agent.name))
        })
    });
    let down: Vec<String> = join_all(checks).await.into_iter().flatten().collect();
    if down.is_empty() {
        Ok(())
    } else {
        Err(down.join("; "))
    }
}
