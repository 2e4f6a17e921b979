//! Transports for the executor's own tests.

use super::{Connector, ExecOutput, Stdin, Transport, TransportError};
use crate::inventory::Agent;

/// A connector that never connects: hosts stay unreachable.
pub struct NoConnector;

pub struct NoSession;

impl Transport for NoSession {
    async fn exec(
        &self,
        _command: &str,
        _stdin: Stdin<'_>,
        _deadline: std::time::Duration,
    ) -> Result<ExecOutput, TransportError> {
        Err(TransportError::Lost {
            addr: "nowhere".into(),
            doing: "before anything".into(),
        })
    }

    fn is_closed(&self) -> bool {
        true
    }

    async fn close(&self) {}
}

impl Connector for NoConnector {
    type Session = NoSession;

    async fn connect(&self, target: &Agent) -> Result<NoSession, TransportError> {
        Err(TransportError::Connect {
            addr: target.address.clone(),
            reason: "no network in tests".into(),
        })
    }
}

/// How a scripted session answers a command.
#[derive(Debug, Clone)]
pub enum Reply {
    Exit(u32, String),
    /// Never answers: only a deadline ends it.
    Hang,
    /// The connection drops.
    Lost,
}

/// Answers each command with the reply of the first rule whose needle it
/// contains (`Exit(0, "")` when none does); counts connections.
#[derive(Default)]
pub struct Scripted {
    pub rules: std::sync::Mutex<Vec<(String, Reply)>>,
    once: std::sync::Mutex<Vec<(String, Reply)>>,
    pub connects: std::sync::atomic::AtomicUsize,
    /// While set, the agent cannot be reached: every connect fails.
    pub down: std::sync::atomic::AtomicBool,
    pub commands: std::sync::Mutex<Vec<String>>,
}

impl Scripted {
    pub fn on(&self, needle: &str, reply: Reply) {
        self.rules.lock().unwrap().push((needle.to_string(), reply));
    }

    /// Like `on`, ahead of every other rule, for the next matching command
    /// only.
    pub fn once(&self, needle: &str, reply: Reply) {
        self.once.lock().unwrap().push((needle.to_string(), reply));
    }

    fn reply(&self, command: &str) -> Reply {
        let mut once = self.once.lock().unwrap();
        if let Some(i) = once.iter().position(|(n, _)| command.contains(n.as_str())) {
            return once.remove(i).1;
        }
        self.rules
            .lock()
            .unwrap()
            .iter()
            .find(|(needle, _)| command.contains(needle.as_str()))
            .map(|(_, r)| r.clone())
            .unwrap_or(Reply::Exit(0, String::new()))
    }
}

pub struct ScriptedConnector(pub std::sync::Arc<Scripted>);

pub struct ScriptedSession {
    script: std::sync::Arc<Scripted>,
    closed: std::sync::atomic::AtomicBool,
}

impl Transport for ScriptedSession {
    async fn exec(
        &self,
        command: &str,
        _stdin: Stdin<'_>,
        deadline: std::time::Duration,
    ) -> Result<ExecOutput, TransportError> {
        use std::sync::atomic::Ordering;
        if self.closed.load(Ordering::SeqCst) {
            return Err(TransportError::Lost {
                addr: "scripted".into(),
                doing: "opening a channel".into(),
            });
        }
        self.script
            .commands
            .lock()
            .unwrap()
            .push(command.to_string());
        match self.script.reply(command) {
            Reply::Exit(code, out) => Ok(ExecOutput {
                exit_status: Some(code),
                stdout: out.as_bytes().to_vec(),
                ..ExecOutput::default()
            }),
            Reply::Hang => {
                tokio::time::sleep(deadline).await;
                Err(TransportError::TimedOut { after: deadline })
            }
            Reply::Lost => {
                self.closed.store(true, Ordering::SeqCst);
                Err(TransportError::Lost {
                    addr: "scripted".into(),
                    doing: "while the command ran".into(),
                })
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn close(&self) {}
}

impl Connector for ScriptedConnector {
    type Session = ScriptedSession;

    async fn connect(&self, target: &Agent) -> Result<ScriptedSession, TransportError> {
        self.0
            .connects
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.0.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(TransportError::Connect {
                addr: target.address.clone(),
                reason: "no route to host".into(),
            });
        }
        Ok(ScriptedSession {
            script: self.0.clone(),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }
}
