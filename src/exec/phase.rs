//! Bounded fan-out of one phase over many hosts: never more than `forks`
//! at once (each task holds its semaphore permit while it works), each
//! host put back in its place afterwards, and cut off at once by an abort
//! (the second Ctrl-C) or, where nothing has been touched yet, by the
//! first.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::heartbeat::Fleet;
use super::host::HostRun;
use super::session::HostSession;
use crate::report::Status;
use crate::transport::Connector;

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every host's work ran to its end.
    Done,
    /// Cut off by a signal: the hosts in flight were given `cut`.
    Cut,
}

/// What an in-flight host becomes when the phase is cut off.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// A second Ctrl-C: what it was doing is unknown.
    Unknown,
    /// Nothing was touched yet: it is simply not started.
    NotStarted(&'static str),
}

/// Runs `work` on the hosts at `indices`. When `cut_on` resolves first,
/// the hosts still in flight are marked as `cut` says.
pub async fn run<C, F, Fut, S>(
    runs: &mut [HostRun],
    indices: &[usize],
    forks: usize,
    fleet: &Fleet<C>,
    cut_on: S,
    cut: Cut,
    work: F,
) -> Ended
where
    C: Connector,
    F: Fn(HostRun, Option<Arc<HostSession<C>>>) -> Fut,
    Fut: Future<Output = HostRun> + Send + 'static,
    S: Future<Output = ()>,
{
    let limit = Arc::new(Semaphore::new(forks.max(1)));
    let mut tasks = Vec::with_capacity(indices.len());
    for &i in indices {
        let fut = work(runs[i].clone(), fleet.get(i).cloned());
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("never closed");
            fut.await
        }));
    }
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let all = futures::future::join_all(tasks);
    tokio::pin!(cut_on);
    tokio::select! {
        results = all => {
            for (&i, result) in indices.iter().zip(results) {
                match result {
                    Ok(run) => runs[i] = run,
                    Err(e) => {
                        // A bug, not the host's doing: the host is failed,
                        // the others go on, and the exit status says so.
                        crate::exec::note_internal_error();
                        let why = format!("internal error in calico-rollout: {e}");
                        runs[i].mark_failed(Status::Failed, &why);
                    }
                }
            }
            Ended::Done
        }
        () = &mut cut_on => {
            for a in &aborts {
                a.abort();
            }
            for &i in indices {
                match cut {
                    Cut::Unknown => runs[i].mark_unknown(),
                    Cut::NotStarted(why) => runs[i].mark_failed(Status::Skipped, why),
                }
            }
            Ended::Cut
        }
    }
}

/// Runs `work` on every item at most `permits` at once, keeping order.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::shutdown::Shutdown;
    use crate::steps::testing::agent;
    use crate::transport::testing::NoConnector;

    fn runs(n: usize) -> Vec<HostRun> {
        (0..n)
            .map(|i| HostRun::planned(i, agent(Role::Private), Vec::new(), false))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_forks_at_once_and_everyone_comes_back() {
        let fleet: Fleet<NoConnector> = Fleet::new(5);
        let mut all = runs(5);
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ended = run(
            &mut all,
            &[0, 1, 2, 3, 4],
            2,
            &fleet,
            std::future::pending(),
            Cut::Unknown,
            |mut r, _| {
                let (busy, peak) = (busy.clone(), peak.clone());
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = busy.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(now, SeqCst);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    busy.fetch_sub(1, SeqCst);
                    r.resumed = true;
                    r
                }
            },
        )
        .await;
        assert_eq!(ended, Ended::Done);
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(all.iter().all(|r| r.resumed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_marks_the_hosts_in_flight() {
        let fleet: Fleet<NoConnector> = Fleet::new(2);
        let mut all = runs(2);
        let (shutdown, tx) = Shutdown::manual();
        let mut stop = shutdown.clone();
        let ended = run(
            &mut all,
            &[0, 1],
            2,
            &fleet,
            async move { stop.aborted().await },
            Cut::Unknown,
            |mut r, _| async move {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                r.resumed = true;
                r
            },
        );
        let abort = async {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            tx.send(crate::shutdown::Stop::Abort).unwrap();
        };
        let (ended, ()) = tokio::join!(ended, abort);
        assert_eq!(ended, Ended::Cut);
        assert!(all.iter().all(|r| !r.resumed));
    }
}
