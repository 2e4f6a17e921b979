//! Waiting for health gates: a restarted service must answer, twice in a
//! row as the same process, within `health_timeout`; then every changed
//! service of the host must stay so for `min_healthy`. Each poll checks all
//! of a host's gates in one round trip. What each gate showed is kept for
//! the report: a step fails with one reason, CI wants to see which gates
//! held.

use std::time::Duration;

use tokio::time::Instant;

use super::error::StepError;
use super::host::{HostRun, Policy};
use super::session::HostSession;
use crate::remote::{self, gate::Identity};
use crate::report::{Event, GateOutcome, GateResult, Reporter};
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

/// A gate's name in the report: stable words a script can match on.
fn kind(gate: &Gate) -> String {
    match gate {
        Gate::EtcdGateway { .. } => "etcd-gateway".into(),
        Gate::Docker { .. } => "docker".into(),
        Gate::Mesos { .. } => "mesos".into(),
        Gate::Container { name } => format!("container:{name}"),
        Gate::Felix { .. } => "felix".into(),
        Gate::Bgp(_) => "bgp".into(),
        Gate::Plugin => "plugin".into(),
        Gate::Check(c) => format!("check:{}", c.name),
    }
}

/// The report's record of `gates`, none of them checked yet.
pub(super) fn unchecked(gates: &[Gate]) -> Vec<GateResult> {
    gates
        .iter()
        .map(|g| GateResult {
            gate: kind(g),
            means: g.means(),
            outcome: GateOutcome::NotReached,
        })
        .collect()
}

/// How far one gate got, reading after reading.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Unread,
    /// Answered once; a pass needs the same process twice.
    Answered,
    Passed,
    Failed(String),
}

/// What each gate of a wait showed, for the report.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    last: Vec<Option<Identity>>,
    verdicts: Vec<Verdict>,
}

impl Seen {
    pub(super) fn new(gates: usize) -> Self {
        Seen {
            last: vec![None; gates],
            verdicts: vec![Verdict::Unread; gates],
        }
    }

    /// Takes in one reading of every gate.
    pub(super) fn update(&mut self, readings: &[Result<Identity, String>]) {
        for (k, reading) in readings.iter().enumerate().take(self.last.len()) {
            match reading {
                Err(e) => {
                    self.verdicts[k] = Verdict::Failed(e.clone());
                    self.last[k] = None;
                }
                Ok(id) => {
                    self.verdicts[k] = match self.last[k].as_ref().map(|l| l.changed(id)) {
                        None => Verdict::Answered,
                        Some(None) => Verdict::Passed,
                        Some(Some(change)) => Verdict::Failed(change),
                    };
                    self.last[k] = Some(id.clone());
                }
            }
        }
    }

    /// Every gate passed, as the readings that passed them say.
    pub(super) fn passed(&mut self, ids: &[Identity]) {
        self.last = ids.iter().cloned().map(Some).collect();
        self.verdicts = vec![Verdict::Passed; ids.len()];
    }

    /// Each gate's outcome, `gates` the ones it read.
    pub(super) fn results(&self, gates: &[Gate]) -> Vec<GateResult> {
        let mut results = unchecked(gates);
        for ((r, verdict), last) in results.iter_mut().zip(&self.verdicts).zip(&self.last) {
            r.outcome = match verdict {
                Verdict::Unread => GateOutcome::NotReached,
                Verdict::Answered => GateOutcome::Failed {
                    reason: "it answered, but not twice in a row as the same process, \
                             before the wait ended"
                        .into(),
                },
                Verdict::Passed => GateOutcome::Passed {
                    note: last.as_ref().and_then(|id| id.note.clone()),
                },
                Verdict::Failed(why) => GateOutcome::Failed {
                    reason: why.clone(),
                },
            };
        }
        results
    }
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
        let mut seen = Seen::new(gates.len());
        self.wait_seen(session, gates, policy, reporter, &mut seen)
            .await
    }

    /// `wait_healthy`, keeping in `seen` what each gate showed.
    pub(super) async fn wait_seen<C: Connector>(
        &self,
        session: &HostSession<C>,
        gates: &[Gate],
        policy: &Policy,
        reporter: &dyn Reporter,
        seen: &mut Seen,
    ) -> Result<Vec<Identity>, StepError> {
        let deadline = Instant::now() + policy.health_timeout;
        let mut last: Option<Vec<Identity>> = None;
        let mut why = String::from("no answer yet");
        let mut pause = FIRST_POLL;
        loop {
            session.touchable()?;
            let each = read(session, gates, policy).await?;
            seen.update(&each);
            let readings: Result<Vec<Identity>, String> = each.into_iter().collect();
            match readings {
                Ok(ids) => match last.as_ref().map(|l| changed(l, &ids)) {
                    Some(None) => {
                        self.tell_notes(&ids, reporter);
                        seen.passed(&ids);
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
    /// stays the same process. A gate that falls over is marked failed
    /// under its step.
    pub(super) async fn watch<C: Connector>(
        &mut self,
        session: &HostSession<C>,
        gates: &[(usize, Gate)],
        policy: &Policy,
    ) -> Result<(), (usize, StepError)> {
        let window = policy.min_healthy;
        let only: Vec<Gate> = gates.iter().map(|(_, g)| g.clone()).collect();
        let first = gates[0].0;
        let unhealthy = |this: &mut Self, k: usize, e: String| {
            let i = gates[k].0;
            let why = format!("became unhealthy within {}s: {e}", window.as_secs());
            // Its place among its own step's gates.
            let at = gates[..k].iter().filter(|(j, _)| *j == i).count();
            if let Some(r) = this.gate_results[i].get_mut(at) {
                r.outcome = GateOutcome::Failed {
                    reason: why.clone(),
                };
            }
            (i, StepError::Failed(why))
        };
        let until = Instant::now() + window;
        let mut baseline: Vec<Option<Identity>> = vec![None; gates.len()];
        let mut pause = FIRST_POLL * 2;
        loop {
            session.touchable().map_err(|e| (first, e))?;
            let readings = read(session, &only, policy).await.map_err(|e| (first, e))?;
            for (k, reading) in readings.into_iter().enumerate().take(gates.len()) {
                let id = reading.map_err(|e| unhealthy(self, k, e))?;
                match &baseline[k] {
                    None => baseline[k] = Some(id),
                    Some(was) => {
                        if let Some(change) = was.changed(&id) {
                            return Err(unhealthy(self, k, change));
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

    #[test]
    fn each_gate_says_how_far_it_got() {
        let id = |pid: &str| Identity {
            service: "docker".into(),
            fields: vec![("MainPID", pid.to_string())],
            note: None,
        };
        let gates = [
            Gate::Docker {
                cluster_store: None,
            },
            Gate::Plugin,
            Gate::Container {
                name: "calico-node".into(),
            },
            Gate::Felix { port: 9099 },
        ];
        let mut seen = Seen::new(gates.len());
        assert!(
            seen.results(&gates)
                .iter()
                .all(|r| r.outcome == GateOutcome::NotReached)
        );
        let down = || Err::<Identity, _>("no answer".to_string());
        seen.update(&[Ok(id("1")), down(), Ok(id("7")), down()]);
        seen.update(&[Ok(id("1")), Ok(id("3")), Ok(id("8")), down()]);
        let got: Vec<(String, GateOutcome)> = seen
            .results(&gates)
            .into_iter()
            .map(|r| (r.gate, r.outcome))
            .collect();
        let failed = |why: &str| GateOutcome::Failed { reason: why.into() };
        assert_eq!(
            got,
            [
                ("docker".into(), GateOutcome::Passed { note: None }),
                (
                    "plugin".into(),
                    failed(
                        "it answered, but not twice in a row as the same process, \
                         before the wait ended"
                    )
                ),
                (
                    "container:calico-node".into(),
                    failed("docker restarted (MainPID 7 -> 8)")
                ),
                ("felix".into(), failed("no answer")),
            ]
        );
    }
}
