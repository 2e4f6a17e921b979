//! Bounded fan-out of one phase over many hosts: never more than `forks`
//! at once (each task holds its semaphore permit while it works), each
//! host put back in its place afterwards, and cut off at once by an abort
//! (the second Ctrl-C) or, where nothing has been touched yet, by the
//! first. A phase runs to its end ([`run`]) or in the background while
//! the next one starts ([`spawn`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::AbortHandle;

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

/// How many hosts are worked on at once (`--forks`). Phases that overlap
/// share one, so that together they stay within it.
pub fn limit(forks: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(forks.max(1)))
}

/// Runs `work` on the hosts at `indices`, each holding a permit of `limit`
/// while it works. When `cut_on` resolves first, the hosts still in flight
/// are marked as `cut` says.
pub async fn run<C, F, Fut, S>(
    runs: &mut [HostRun],
    indices: &[usize],
    limit: &Arc<Semaphore>,
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

/// Work started on some hosts in the background, while other phases run
/// on other hosts (staging ahead of the batches). Each host's outcome is
/// taken back into its place with [`Background::join`].
pub struct Background {
    /// Per host, where its outcome arrives.
    outcomes: BTreeMap<usize, oneshot::Receiver<HostRun>>,
    /// The one task that drives every host's work.
    driver: AbortHandle,
}

/// Starts `work` on the hosts at `indices`, each holding a permit of
/// `limit` while it works. The hosts' work is driven by one task, which
/// polls each host's work first in the order given: whatever the work
/// queues for (the upload slots, say), the first hosts queue first.
pub fn spawn<C, F, Fut>(
    runs: &[HostRun],
    indices: &[usize],
    limit: Arc<Semaphore>,
    fleet: &Fleet<C>,
    work: F,
) -> Background
where
    C: Connector,
    F: Fn(HostRun, Option<Arc<HostSession<C>>>) -> Fut + Send + 'static,
    Fut: Future<Output = HostRun> + Send + 'static,
{
    let mut outcomes = BTreeMap::new();
    let mut queue = std::collections::VecDeque::with_capacity(indices.len());
    for &i in indices {
        let (tx, rx) = oneshot::channel();
        outcomes.insert(i, rx);
        queue.push_back((runs[i].clone(), fleet.get(i).cloned(), tx));
    }
    let driver = tokio::spawn(async move {
        let mut running = FuturesUnordered::new();
        loop {
            tokio::select! {
                permit = limit.clone().acquire_owned(), if !queue.is_empty() => {
                    let permit = permit.expect("never closed");
                    let (run, session, tx) = queue.pop_front().expect("not empty");
                    let fut = AssertUnwindSafe(work(run, session)).catch_unwind();
                    running.push(async move {
                        // A panic drops `tx`: that host alone is failed.
                        if let Ok(run) = fut.await {
                            let _ = tx.send(run);
                        }
                        drop(permit);
                    });
                }
                Some(()) = running.next(), if !running.is_empty() => {}
                else => break,
            }
        }
    });
    Background {
        outcomes,
        driver: driver.abort_handle(),
    }
}

impl Background {
    /// Waits until the work on the hosts at `indices` (those it was started
    /// on) has ended, and puts each back in its place. When `cut_on`
    /// resolves first, it returns `Cut` and leaves the hosts as they were.
    pub async fn join<S: Future<Output = ()>>(
        &mut self,
        runs: &mut [HostRun],
        indices: &[usize],
        cut_on: S,
    ) -> Ended {
        tokio::pin!(cut_on);
        for &i in indices {
            let Some(rx) = self.outcomes.get_mut(&i) else {
                continue;
            };
            tokio::select! {
                outcome = rx => {
                    self.outcomes.remove(&i);
                    match outcome {
                        Ok(run) => runs[i] = run,
                        Err(_) => {
                            // The task died (a bug): the host is failed,
                            // the others go on, and the exit status says so.
                            crate::exec::note_internal_error();
                            runs[i].mark_failed(
                                Status::Failed,
                                "internal error in calico-rollout: a host's task ended without a result",
                            );
                        }
                    }
                }
                () = &mut cut_on => return Ended::Cut,
            }
        }
        Ended::Done
    }

    /// Every host it still works on, in the order started.
    pub fn outstanding(&self) -> Vec<usize> {
        self.outcomes.keys().copied().collect()
    }
}

impl Drop for Background {
    /// What is still running stops: nothing waits for it any more.
    fn drop(&mut self) {
        self.driver.abort();
    }
}

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
            &limit(2),
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
        let two = limit(2);
        let ended = run(
            &mut all,
            &[0, 1],
            &two,
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

    #[tokio::test(start_paused = true)]
    async fn background_work_queues_in_order_and_is_joined_host_by_host() {
        let fleet: Fleet<NoConnector> = Fleet::new(3);
        let mut all = runs(3);
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Every host may work at once, but they share one slot (as uploads
        // do): who gets it first is the order given.
        let slot = Arc::new(Semaphore::new(1));
        let t0 = tokio::time::Instant::now();
        let (log, shared) = (started.clone(), slot.clone());
        let mut bg = spawn(&all, &[2, 0, 1], limit(3), &fleet, move |mut r, _| {
            let (log, slot) = (log.clone(), shared.clone());
            async move {
                let _slot = slot.acquire().await.unwrap();
                log.lock().unwrap().push(r.index);
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                r.resumed = true;
                r
            }
        });
        // The first host in the order is ready after its own work, while
        // the others still wait for the slot.
        assert_eq!(
            bg.join(&mut all, &[2], std::future::pending()).await,
            Ended::Done
        );
        assert_eq!(t0.elapsed(), std::time::Duration::from_secs(10));
        assert!(all[2].resumed && !all[0].resumed && !all[1].resumed);
        assert_eq!(bg.outstanding(), [0, 1]);
        let rest = bg.outstanding();
        assert_eq!(
            bg.join(&mut all, &rest, std::future::pending()).await,
            Ended::Done
        );
        assert_eq!(t0.elapsed(), std::time::Duration::from_secs(30));
        assert!(all.iter().all(|r| r.resumed));
        assert_eq!(*started.lock().unwrap(), [2, 0, 1], "in the order given");
        assert!(bg.outstanding().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_in_background_work_fails_that_host_alone() {
        let fleet: Fleet<NoConnector> = Fleet::new(2);
        let mut all: Vec<HostRun> = (0..2)
            .map(|i| HostRun::waiting(i, agent(Role::Private)))
            .collect();
        let mut bg = spawn(&all, &[0, 1], limit(2), &fleet, |mut r, _| async move {
            assert!(r.index != 0, "a bug in host 0's work");
            r.resumed = true;
            r
        });
        assert_eq!(
            bg.join(&mut all, &[0, 1], std::future::pending()).await,
            Ended::Done
        );
        let cell = all[0].results[0].as_ref().expect("host 0 has a result");
        assert_eq!(cell.status, Status::Failed);
        assert!(cell.message.contains("internal error"), "{}", cell.message);
        assert!(all[1].resumed && !all[1].failed());
    }

    #[tokio::test(start_paused = true)]
    async fn background_work_nobody_waits_for_is_stopped() {
        let fleet: Fleet<NoConnector> = Fleet::new(2);
        let mut all = runs(2);
        let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = finished.clone();
        let mut bg = spawn(&all, &[0, 1], limit(2), &fleet, move |r, _| {
            let count = count.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r
            }
        });
        let cut = bg
            .join(
                &mut all,
                &[0],
                tokio::time::sleep(std::time::Duration::from_secs(1)),
            )
            .await;
        assert_eq!(cut, Ended::Cut);
        drop(bg);
        tokio::time::sleep(std::time::Duration::from_secs(7200)).await;
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(all.iter().all(|r| !r.resumed));
    }
}
