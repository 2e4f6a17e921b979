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
