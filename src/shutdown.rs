//! Ctrl-C, SIGTERM and SIGHUP (a closed terminal). The first asks the
//! rollout to stop at the next safe point (hosts finish the step they are
//! in, no new batch starts); the second asks it to stop at once.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    Running,
    /// Finish the current step on each host, start nothing new.
    Graceful,
    /// Stop now.
    Abort,
}

/// The rollout's view of shutdown requests: cheap to clone into tasks.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Stop>,
}

impl Shutdown {
    /// Listens for Ctrl-C and SIGTERM for the rest of the process.
    pub fn listen() -> Shutdown {
        let (tx, rx) = watch::channel(Stop::Running);
        tokio::spawn(async move {
            let mut level = Stop::Running;
            while wait_for_signal().await {
                level = if level == Stop::Running {
                    crate::ui::line_to_stderr(
                        "\ncalico-rollout: stopping after the current step on each host \
                         (press Ctrl-C again to stop at once)",
                    );
                    Stop::Graceful
                } else {
                    Stop::Abort
                };
                if tx.send(level).is_err() || level == Stop::Abort {
                    break;
                }
            }
        });
        Shutdown { rx }
    }

    /// A shutdown driven by hand, for tests: send `Graceful`, then `Abort`.
    #[cfg(test)]
    pub fn manual() -> (Shutdown, watch::Sender<Stop>) {
        let (tx, rx) = watch::channel(Stop::Running);
        (Shutdown { rx }, tx)
    }

    pub fn level(&self) -> Stop {
        *self.rx.borrow()
    }

    pub fn requested(&self) -> bool {
        self.level() != Stop::Running
    }

    /// Resolves when the first signal arrives.
    pub async fn stopping(&mut self) {
        if self.rx.wait_for(|s| *s != Stop::Running).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when an abort (the second signal) arrives.
    pub async fn aborted(&mut self) {
        // An error means the sender is gone: no abort can come any more.
        if self.rx.wait_for(|s| *s == Stop::Abort).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits for the next Ctrl-C, SIGTERM or SIGHUP; false if signals cannot
/// be heard. Without a handler, SIGHUP would kill the run mid-step, with
/// no journal and every lock left behind.
async fn wait_for_signal() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return false;
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.is_ok(),
        r = term.recv() => r.is_some(),
        r = hup.recv() => r.is_some(),
    }
}
