//! The lock heartbeat: while a run lives, it refreshes every lock it holds
//! on a timer, so that no live run ever looks stale. A refresh that finds
//! another owner, or no lock, or that keeps failing for half the stale
//! time, makes the run stop touching that host.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::session::HostSession;
use crate::lock::{self, HEARTBEAT, LockState, STALE_AFTER};
use crate::remote;
use crate::report::{Event, Reporter};
use crate::transport::{Connector, Stdin};

/// Every host's session, once it is connected: the heartbeat, the final
/// lock release and an abort all find them here, whatever phase a host's
/// own work is in.
pub struct Fleet<C: Connector> {
    pub hosts: Vec<OnceLock<Arc<HostSession<C>>>>,
}

impl<C: Connector> Fleet<C> {
    pub fn new(hosts: usize) -> Self {
        Fleet {
            hosts: (0..hosts).map(|_| OnceLock::new()).collect(),
        }
    }

    pub fn get(&self, i: usize) -> Option<&Arc<HostSession<C>>> {
        self.hosts[i].get()
    }
}

/// A host's last lock refresh, and when an outage was last told.
type Refreshed = (Instant, Option<Instant>);

/// A running heartbeat; it stops when dropped or told to.
pub struct Heartbeat {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Refreshes the locks of `owner_id` on every locked host every
/// [`HEARTBEAT`], at most `forks` at once; `tick` runs at each beat too
/// (the journal's own sign of life).
pub fn start<C: Connector>(
    fleet: Arc<Fleet<C>>,
    owner_id: String,
    deadline: Duration,
    forks: usize,
    reporter: Arc<dyn Reporter>,
    tick: Box<dyn Fn() + Send + Sync>,
) -> Heartbeat {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(forks.max(1)));
        let last_ok: Arc<Vec<std::sync::Mutex<Refreshed>>> = Arc::new(
            (0..fleet.hosts.len())
                .map(|_| std::sync::Mutex::new((Instant::now(), None)))
                .collect(),
        );
        let mut timer = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            tokio::select! {
                _ = timer.tick() => {}
                _ = stopped.changed() => return,
            }
            tick();
            let beats = (0..fleet.hosts.len()).filter_map(|i| {
                let session = fleet.get(i)?.clone();
                session.locked().then_some((i, session))
            });
            let beats = beats.map(|(i, session)| {
                let (limit, last_ok, owner_id, reporter) = (
                    limit.clone(),
                    last_ok.clone(),
                    owner_id.clone(),
                    reporter.clone(),
                );
                async move {
                    let _permit = limit.acquire_owned().await;
                    let refresh = || async {
                        let script = remote::lock::refresh(&owner_id, deadline);
                        session
                            .run_raw(&script, Stdin::Empty)
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|out| {
                                lock::parse(&String::from_utf8_lossy(&out.stdout))
                                    .map_err(|e| e.to_string())
                            })
                    };
                    // A connection that dropped is made again, and the lock
                    // asked of the agent: only its answer says whether the
                    // lock is still this run's. A host out of reach for a
                    // while keeps its lock, and its next round trip asks too.
                    let mut answer = refresh().await;
                    if answer.is_err() && session.reconnect().await.is_ok() {
                        answer = refresh().await;
                    }
                    let lost = match answer {
                        Ok(LockState::Acquired) => {
                            *last_ok[i].lock().unwrap_or_else(|p| p.into_inner()) =
                                (Instant::now(), None);
                            None
                        }
                        Ok(LockState::Held(holder) | LockState::StaleReplaced(holder)) => Some(
                            format!("stopped: another run took this agent's lock ({holder})"),
                        ),
                        Ok(LockState::Free) => Some(
                            "stopped: this agent's lock was removed by someone else".to_string(),
                        ),
                        Err(e) => {
                            let mut last = last_ok[i].lock().unwrap_or_else(|p| p.into_inner());
                            let (ok, told) = &mut *last;
                            // Said again after a while, not at every beat.
                            if ok.elapsed() > STALE_AFTER / 2
                                && told.is_none_or(|t| t.elapsed() > STALE_AFTER / 4)
                            {
                                reporter.event(Event::Notice(&format!(
                                    "{}: could not refresh its lock for {}s ({e}); still trying",
                                    session.agent.name,
                                    ok.elapsed().as_secs()
                                )));
                                *told = Some(Instant::now());
                            }
                            None
                        }
                    };
                    if let Some(why) = lost {
                        reporter.event(Event::Notice(&format!("{}: {why}", session.agent.name)));
                        session.lose_lock(why);
                    }
                }
            });
            futures::future::join_all(beats).await;
        }
    });
    Heartbeat { stop, task }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::report::Event;
    use crate::steps::testing::agent;
    use crate::transport::testing::{Reply, Scripted, ScriptedConnector};

    struct Quiet;
    impl Reporter for Quiet {
        fn event(&self, _: Event<'_>) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_out_of_reach_for_a_while_keeps_its_lock() {
        let script = Arc::new(Scripted::default());
        let connector = Arc::new(ScriptedConnector(script.clone()));
        let fleet = Arc::new(Fleet::new(1));
        let s = HostSession::connect(connector.clone(), agent(Role::Private))
            .await
            .unwrap();
        s.set_locked(true);
        let _ = fleet.hosts[0].set(Arc::new(s));
        script.on("refreshed", Reply::Exit(0, "lock acquired\n".into()));
        let hb = start(
            fleet.clone(),
            "run-1".into(),
            Duration::from_secs(5),
            1,
            Arc::new(Quiet),
            Box::new(|| {}),
        );
        // The connection drops at the first beat, and the agent stays out
        // of reach for five beats: longer than half the stale time.
        script.once("refreshed", Reply::Lost);
        script.down.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(HEARTBEAT * 5 + Duration::from_millis(10)).await;
        assert!(HEARTBEAT * 5 > STALE_AFTER / 2);
        let host = fleet.get(0).unwrap();
        assert!(
            host.touchable().is_ok(),
            "a missed refresh is not a lost lock"
        );
        assert!(host.locked());
        // Back on the network: connected again, and the agent says the
        // lock is still this run's.
        script
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let connects = script.connects.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(HEARTBEAT).await;
        assert!(script.connects.load(std::sync::atomic::Ordering::SeqCst) > connects);
        assert!(host.touchable().is_ok() && host.locked());
        let asked = script.commands.lock().unwrap().clone();
        assert!(asked.last().unwrap().contains("refreshed"), "{asked:?}");
        hb.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_found_in_other_hands_stops_the_host() {
        let script = Arc::new(Scripted::default());
        let connector = Arc::new(ScriptedConnector(script.clone()));
        let fleet = Arc::new(Fleet::new(2));
        for i in 0..2 {
            let s = HostSession::connect(connector.clone(), agent(Role::Private))
                .await
                .unwrap();
            s.set_locked(true);
            let _ = fleet.hosts[i].set(Arc::new(s));
        }
        script.on("refreshed", Reply::Exit(0, "lock acquired\n".into()));
        let beats = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = beats.clone();
        let hb = start(
            fleet.clone(),
            "run-1".into(),
            Duration::from_secs(5),
            2,
            Arc::new(Quiet),
            Box::new(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        );
        tokio::time::sleep(HEARTBEAT + Duration::from_millis(10)).await;
        assert!(fleet.get(0).unwrap().touchable().is_ok());
        // Someone else's run holds the lock now.
        script.rules.lock().unwrap().insert(
            0,
            (
                "refreshed".into(),
                Reply::Exit(75, "lock held {\"owner\":\"other-run\",\"pid\":7}\n".into()),
            ),
        );
        tokio::time::sleep(HEARTBEAT).await;
        let e = fleet.get(1).unwrap().touchable().unwrap_err();
        assert!(e.to_string().contains("other-run"), "{e}");
        assert!(!fleet.get(1).unwrap().locked());
        hb.stop().await;
        assert_eq!(beats.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
