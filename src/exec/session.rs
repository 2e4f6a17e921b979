//! One host's connection as the executor uses it: every command goes
//! through here with its deadline, a dropped connection is told apart
//! from a failed command, and the connection can be made again (a revert
//! and the final lock release do so). It also carries whether this run
//! still holds the host's lock.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::inventory::Agent;
use crate::remote::{Script, TIMED_OUT_EXITS};
use crate::report::{Event, Reporter};
use crate::step::StepName;
use crate::transport::{Connector, ExecOutput, Stdin, Transport, TransportError};

use super::error::StepError;

pub struct HostSession<C: Connector> {
    pub agent: Agent,
    connector: Arc<C>,
    conn: tokio::sync::Mutex<Option<Arc<C::Session>>>,
    /// This run holds the host's lock.
    locked: AtomicBool,
    /// Why this run must not touch the host any more, once it must not.
    lost: Mutex<Option<String>>,
    /// Told of every command as it starts (`-v`), with the step it is for.
    reporter: Option<Arc<dyn Reporter>>,
    step: Mutex<Option<StepName>>,
}

fn transport_error(e: TransportError, script: &Script) -> StepError {
    match e {
        TransportError::TimedOut { .. } => StepError::TimedOut {
            what: script.what.clone(),
            after: script.deadline,
        },
        e if e.is_unreachable() => StepError::Unreachable(e.to_string()),
        e => StepError::Failed(e.to_string()),
    }
}

impl<C: Connector> HostSession<C> {
    pub async fn connect(connector: Arc<C>, agent: Agent) -> Result<Self, TransportError> {
        let session = connector.connect(&agent).await?;
        Ok(HostSession {
            agent,
            connector,
            conn: tokio::sync::Mutex::new(Some(Arc::new(session))),
            locked: AtomicBool::new(false),
            lost: Mutex::new(None),
            reporter: None,
            step: Mutex::new(None),
        })
    }

    /// Every command this session runs from now on is an event too.
    pub fn reporting(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// The step the host's next commands are for.
    pub fn set_step(&self, step: Option<StepName>) {
        *self.step.lock().unwrap_or_else(|p| p.into_inner()) = step;
    }

    fn sudo(&self) -> bool {
        self.agent.ssh.needs_sudo()
    }

    async fn current(&self) -> Option<Arc<C::Session>> {
        let conn = self.conn.lock().await;
        conn.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// Runs a script; any exit status is returned as it is. Only a dropped
    /// connection or a deadline is an error.
    pub async fn run_raw(
        &self,
        script: &Script,
        stdin: Stdin<'_>,
    ) -> Result<ExecOutput, StepError> {
        let Some(conn) = self.current().await else {
            return Err(StepError::Unreachable(
                "the connection to the agent is gone".into(),
            ));
        };
        if let Some(reporter) = &self.reporter {
            reporter.event(Event::Command {
                host: &self.agent.name,
                step: *self.step.lock().unwrap_or_else(|p| p.into_inner()),
                what: &script.what,
                deadline: script.deadline,
            });
        }
        let result = conn
            .exec(
                &script.command_line(self.sudo()),
                stdin,
                script.client_deadline(),
            )
            .await;
        match result {
            Ok(out)
                if out
                    .exit_status
                    .is_some_and(|c| TIMED_OUT_EXITS.contains(&c)) =>
            {
                Err(StepError::TimedOut {
                    what: script.what.clone(),
                    after: script.deadline,
                })
            }
            Ok(out) => Ok(out),
            Err(e) => {
                let e = transport_error(e, script);
                if matches!(e, StepError::Unreachable(_)) {
                    *self.conn.lock().await = None;
                }
                Err(e)
            }
        }
    }

    /// Runs a script that must succeed: a non-zero exit is a failure that
    /// carries the command's stderr tail.
    pub async fn run(&self, script: &Script, stdin: Stdin<'_>) -> Result<ExecOutput, StepError> {
        let out = self.run_raw(script, stdin).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(StepError::Failed(out.error_tail()))
        }
    }

    /// Makes sure there is a live connection, connecting again if the old
    /// one dropped.
    pub async fn reconnect(&self) -> Result<(), StepError> {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        match self.connector.connect(&self.agent).await {
            Ok(session) => {
                *conn = Some(Arc::new(session));
                Ok(())
            }
            Err(e) => Err(StepError::Unreachable(format!("connecting again: {e}"))),
        }
    }

    /// [`reconnect`](Self::reconnect), tried again after 1, 2 and 4 s: a
    /// network that blinks must not fail a host whose turn, or whose
    /// revert, comes just then.
    pub async fn reconnect_patiently(&self) -> Result<(), StepError> {
        let mut pause = std::time::Duration::from_secs(1);
        for _ in 0..3 {
            if self.reconnect().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        self.reconnect().await
    }

    pub fn set_locked(&self, locked: bool) {
        self.locked.store(locked, Ordering::SeqCst);
    }

    pub fn locked(&self) -> bool {
        self.locked.load(Ordering::SeqCst)
    }

    /// From now on nothing more is done on the host.
    pub fn lose_lock(&self, why: String) {
        self.set_locked(false);
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert(why);
    }

    /// Err when this run may no longer touch the host.
    pub fn touchable(&self) -> Result<(), StepError> {
        match self.lost.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(why) => Err(StepError::LockLost(why.clone())),
            None => Ok(()),
        }
    }

    pub async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::steps::testing::agent;
    use crate::transport::testing::{Reply, Scripted, ScriptedConnector};
    use std::time::Duration;

    async fn session(script: &Arc<Scripted>) -> HostSession<ScriptedConnector> {
        HostSession::connect(
            Arc::new(ScriptedConnector(script.clone())),
            agent(Role::Private),
        )
        .await
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_that_never_returns_ends_at_its_deadline() {
        let script = Arc::new(Scripted::default());
        script.on("systemctl restart", Reply::Hang);
        let s = session(&script).await;
        let restart = crate::remote::service::restart("docker", Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let e = s.run(&restart, Stdin::Empty).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "systemctl restart docker did not finish within 60s"
        );
        // The agent's own bound, its kill grace and the wire's slack.
        assert_eq!(started.elapsed(), Duration::from_secs(70));
        // What the agent was asked to do carries the same bound.
        let sent = script.commands.lock().unwrap()[0].clone();
        assert!(sent.starts_with("timeout -k 5s 60s sh -c "), "{sent}");
    }

    #[tokio::test]
    async fn the_agents_own_timeout_is_a_deadline_too() {
        let script = Arc::new(Scripted::default());
        script.on("probe", Reply::Exit(124, String::new()));
        let s = session(&script).await;
        let e = s
            .run_raw(
                &Script::new("the probe", Duration::from_secs(3), "echo probe"),
                Stdin::Empty,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StepError::TimedOut { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_dropped_connection_is_unreachable_until_connected_again() {
        let script = Arc::new(Scripted::default());
        script.on("drop", Reply::Lost);
        let s = session(&script).await;
        let drop = Script::new("x", Duration::from_secs(3), "drop");
        let e = s.run(&drop, Stdin::Empty).await.unwrap_err();
        assert_eq!(e.status(), crate::report::Status::Unreachable);
        let fine = Script::new("y", Duration::from_secs(3), "true");
        assert!(matches!(
            s.run(&fine, Stdin::Empty).await,
            Err(StepError::Unreachable(_))
        ));
        s.reconnect().await.unwrap();
        assert!(s.run(&fine, Stdin::Empty).await.is_ok());
        assert_eq!(script.connects.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_lost_lock_stops_all_touching() {
        let script = Arc::new(Scripted::default());
        let s = session(&script).await;
        s.set_locked(true);
        assert!(s.touchable().is_ok());
        s.lose_lock("another run took it".into());
        assert!(!s.locked());
        assert_eq!(
            s.touchable(),
            Err(StepError::LockLost("another run took it".into()))
        );
    }
}
