//! Waiting for health gates: a restarted service must answer, twice in a
//! row as the same process, within `health_timeout`; then every changed
//! service of the host must stay so for `min_healthy`. Each poll checks all
//! of a host's gates in one round trip.

use std::time::Duration;

use tokio::time::Instant;

use super::error::StepError;
use super::host::{HostRun, Policy};
use super::session::HostSession;
use crate::remote::{self, gate::Identity};
use crate::report::{Event, Reporter};
use crate::steps::Gate;
use crate::transport::{Connector, Stdin};

/// How often a gate is checked while a service comes back (a pass needs
/// two answers in a row from the same process), and while a host must stay
/// healthy: fast at first, when most services come back or fall over, then
/// slower, to spare the agents.
const FIRST_POLL: Duration = Duration::from_millis(250);
const LAST_POLL: Duration = Duration::from_secs(2);

/// The next interval after `now`.
fn slower(now: Duration) -> Duration {
    (now * 3 / 2).min(LAST_POLL)
}

/// The first change of process among two readings of the same gates.
pub(super) fn changed(before: &[Identity], now: &[Identity]) -> Option<String> {
    before.iter().zip(now).find_map(|(a, b)| a.changed(b))
}

/// One reading of `gates`, in one round trip.
async fn read<C: Connector>(
    session: &HostSession<C>,
    gates: &[Gate],
    policy: &Policy,
) -> Result<Vec<Result<Identity, String>>, StepError> {
    let script = remote::gate::gates(gates, policy.command_timeout);
    let out = session.run(&script, Stdin::Empty).await?;
    Ok(remote::gate::readings(gates, &out.stdout))
}

impl HostRun {
    /// Polls the gates until they pass together, each the same process
    /// answering twice in a row, or `health_timeout` runs out.
    pub(super) async fn wait_healthy<C: Connector>(
        &self,
        session: &HostSession<C>,
        gates: &[Gate],
        policy: &Policy,
        reporter: &dyn Reporter,
    ) -> Result<Vec<Identity>, StepError> {
        let deadline = Instant::now() + policy.health_timeout;
        let mut last: Option<Vec<Identity>> = None;
        let mut why = String::from("no answer yet");
        let mut pause = FIRST_POLL;
        loop {
            session.touchable()?;
            let readings: Result<Vec<Identity>, String> =
                read(session, gates, policy).await?.into_iter().collect();
            match readings {
                Ok(ids) => match last.as_ref().map(|l| changed(l, &ids)) {
                    Some(None) => {
                        self.tell_notes(&ids, reporter);
                        return Ok(ids);
                    }
                    Some(Some(change)) => {
                        why = change;
                        last = Some(ids);
                    }
                    None => last = Some(ids),
                },
                Err(e) => {
                    if e != why {
                        reporter.event(Event::Progress {
                            host: &self.agent.name,
                            what: &e,
                        });
                    }
                    why = e;
                    last = None;
                }
            }
            if Instant::now() >= deadline {
                return Err(StepError::Failed(format!(
                    "health check did not pass within {}s: {why}",
                    policy.health_timeout.as_secs()
                )));
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = slower(pause);
        }
    }

    /// What the operator should know about how gates were checked.
    pub(super) fn tell_notes(&self, ids: &[Identity], reporter: &dyn Reporter) {
        for note in ids.iter().filter_map(|id| id.note.as_deref()) {
            reporter.event(Event::Notice(&format!("{}: {note}", self.agent.name)));
        }
    }

    /// Checks every gate once a second until `min_healthy` has passed: a
    /// service that crash-loops passes a check now and then, but never
    /// stays the same process.
    pub(super) async fn watch<C: Connector>(
        &self,
        session: &HostSession<C>,
        gates: &[(usize, Gate)],
        policy: &Policy,
    ) -> Result<(), (usize, StepError)> {
        let window = policy.min_healthy;
        let only: Vec<Gate> = gates.iter().map(|(_, g)| g.clone()).collect();
        let first = gates[0].0;
        let unhealthy = |i: usize, e: String| {
            (
                i,
                StepError::Failed(format!(
                    "became unhealthy within {}s: {e}",
                    window.as_secs()
                )),
            )
        };
        let until = Instant::now() + window;
        let mut baseline: Vec<Option<Identity>> = vec![None; gates.len()];
        let mut pause = FIRST_POLL * 2;
        loop {
            session.touchable().map_err(|e| (first, e))?;
            let readings = read(session, &only, policy).await.map_err(|e| (first, e))?;
            for (k, ((i, _), reading)) in gates.iter().zip(readings).enumerate() {
                let id = reading.map_err(|e| unhealthy(*i, e))?;
                match &baseline[k] {
                    None => baseline[k] = Some(id),
                    Some(was) => {
                        if let Some(change) = was.changed(&id) {
                            return Err(unhealthy(*i, change));
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep(pause.min(until - now)).await;
            pause = slower(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_start_fast_and_slow_down() {
        let mut p = FIRST_POLL;
        let mut seen = vec![p];
        for _ in 0..8 {
            p = slower(p);
            seen.push(p);
        }
        assert_eq!(seen[1], Duration::from_millis(375));
        assert_eq!(*seen.last().unwrap(), LAST_POLL);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }
}
