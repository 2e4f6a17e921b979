//! Bounded fan-out: work on many hosts at once, never more than `forks`.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::host::{HostRun, Policy};
use crate::report::Reporter;
use crate::transport::Transport;

/// Runs `work` on every item with at most `permits` at once, keeping order.
/// The permit moves into the task, so a slot frees exactly when a host's
/// work ends.
pub async fn fan_out<T, R, F, Fut>(items: Vec<T>, permits: usize, work: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(permits.max(1)));
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let fut = work(item);
        tasks.push(tokio::spawn(async move {
            let out = fut.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("a host task panicked"));
    }
    out
}

/// Runs `work` on the hosts at `indices` (in parallel, bounded), putting
/// each host back in its place afterwards.
pub async fn run_phase<S, F, Fut>(
    runs: Vec<HostRun<S>>,
    indices: &[usize],
    forks: usize,
    reporter: &Arc<dyn Reporter>,
    policy: &Policy,
    work: F,
) -> Vec<HostRun<S>>
where
    S: Transport,
    F: Fn(HostRun<S>, Arc<dyn Reporter>, Policy) -> Fut,
    Fut: Future<Output = HostRun<S>> + Send + 'static,
{
    let mut slots: Vec<Option<HostRun<S>>> = runs.into_iter().map(Some).collect();
    let taken: Vec<(usize, HostRun<S>)> = indices
        .iter()
        .map(|&i| (i, slots[i].take().expect("each host is in one phase once")))
        .collect();
    let done = fan_out(taken, forks, |(i, run)| {
        let fut = work(run, reporter.clone(), policy.clone());
        async move { (i, fut.await) }
    })
    .await;
    for (i, run) in done {
        slots[i] = Some(run);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every host came back"))
        .collect()
}
