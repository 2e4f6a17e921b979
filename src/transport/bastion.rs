//! Bastions (`proxy_jump`): one SSH connection per bastion, opened when the
//! first agent behind it needs it and shared by all the others, each of
//! which gets a direct-tcpip channel over it to its own sshd. The bastion's
//! host key is checked against the same known_hosts (port-aware), and it is
//! logged into with the same identity, as the agent behind it.
//!
//! A bastion that refuses us is tried once per run, and one that cannot be
//! reached once per [`RETRY_AFTER`]: every host behind it meanwhile gets
//! the same reason, naming the bastion, rather than each waiting out its
//! own connect timeout, and a network that comes back is used again (a
//! revert, a lock release, a later batch).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::ChannelStream;
use russh::client::{Handle, Msg};
use tracing::{debug, info};

use super::TransportError;
use super::ssh::{HostKeyHandler, SshConnector, display_addr};
use crate::inventory::{ProxyJump, SshSettings};

/// Which connection an agent can share: the same bastion, logged into the
/// same way, checked against the same known_hosts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    jump: ProxyJump,
    identity_file: Option<PathBuf>,
    known_hosts: PathBuf,
}

/// The state of one bastion's connection.
enum Slot {
    Empty,
    Up(Arc<Handle<HostKeyHandler>>),
    /// Why it could not be opened, for every host behind it.
    Down {
        reason: String,
        unreachable: bool,
        at: Instant,
    },
}

/// How long a bastion out of reach is taken at its word before it is
/// tried again.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(10);

impl Slot {
    /// The failure every host behind the bastion gets now, without trying
    /// it again: a refusal for the whole run, being out of reach for
    /// [`RETRY_AFTER`].
    fn remembered(&self, jump: &ProxyJump) -> Option<TransportError> {
        match self {
            Slot::Down {
                reason,
                unreachable,
                at,
            } if !*unreachable || at.elapsed() < RETRY_AFTER => Some(TransportError::Bastion {
                bastion: jump.to_string(),
                reason: reason.clone(),
                unreachable: *unreachable,
            }),
            _ => None,
        }
    }
}

/// The bastion connections of one run.
#[derive(Default)]
pub(super) struct Bastions {
    slots: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Bastions {
    /// A byte stream to `settings.host_name:settings.port`, through `jump`.
    pub(super) async fn open(
        &self,
        connector: &SshConnector,
        settings: &SshSettings,
        jump: &ProxyJump,
    ) -> Result<ChannelStream<Msg>, TransportError> {
        let handle = self.connection(connector, settings, jump).await?;
        let target = display_addr(&settings.host_name, settings.port);
        let opened = tokio::time::timeout(
            settings.connect_timeout,
            handle.channel_open_direct_tcpip(
                settings.host_name.as_str(),
                u32::from(settings.port),
                "127.0.0.1",
                0,
            ),
        )
        .await;
        match opened {
            Ok(Ok(channel)) => Ok(channel.into_stream()),
            Ok(Err(e)) => Err(TransportError::Connect {
                addr: target,
                reason: format!("bastion {jump} could not connect to it: {e}"),
            }),
            Err(_) => Err(TransportError::Connect {
                addr: target,
                reason: format!(
                    "bastion {jump} did not connect to it within {}s",
                    settings.connect_timeout.as_secs()
                ),
            }),
        }
    }

    /// The shared connection to `jump`, opened on first use.
    async fn connection(
        &self,
        connector: &SshConnector,
        settings: &SshSettings,
        jump: &ProxyJump,
    ) -> Result<Arc<Handle<HostKeyHandler>>, TransportError> {
        let key = Key {
            jump: jump.clone(),
            identity_file: settings.identity_file.clone(),
            known_hosts: settings.known_hosts.clone(),
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .entry(key)
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot::Empty)))
                .clone()
        };
        // Held while connecting: the other hosts behind this bastion wait
        // for this one connection instead of opening their own.
        let mut slot = slot.lock().await;
        if let Some(e) = slot.remembered(jump) {
            return Err(e);
        }
        match &*slot {
            Slot::Up(handle) if !handle.is_closed() => return Ok(handle.clone()),
            Slot::Up(_) => debug!(bastion = %jump, "bastion connection lost; reconnecting"),
            Slot::Down { .. } => debug!(bastion = %jump, "trying the bastion again"),
            Slot::Empty => {}
        }
        let bastion = SshSettings {
            host_name: jump.host.clone(),
            user: jump.user.clone(),
            port: jump.port,
            proxy_jump: None,
            ..settings.clone()
        };
        let connected = match SshConnector::dial(&bastion).await {
            Ok(stream) => connector.handshake(&bastion, stream).await,
            Err(e) => Err(e),
        };
        match connected {
            Ok(handle) => {
                info!(bastion = %jump, "connected to bastion");
                let handle = Arc::new(handle);
                *slot = Slot::Up(handle.clone());
                Ok(handle)
            }
            Err(e) => {
                let (reason, unreachable) = (e.to_string(), e.is_unreachable());
                *slot = Slot::Down {
                    reason: reason.clone(),
                    unreachable,
                    at: Instant::now(),
                };
                Err(TransportError::Bastion {
                    bastion: jump.to_string(),
                    reason,
                    unreachable,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bastion_out_of_reach_is_tried_again_and_one_that_refuses_is_not() {
        let jump = ProxyJump {
            user: "ops".into(),
            host: "bastion".into(),
            port: 22,
        };
        let down = |unreachable: bool, ago: Duration| Slot::Down {
            reason: "no route to host".into(),
            unreachable,
            at: Instant::now() - ago,
        };
        let e = down(true, Duration::from_secs(1))
            .remembered(&jump)
            .unwrap();
        assert!(e.to_string().contains("no route to host"), "{e}");
        assert!(e.is_unreachable());
        assert!(
            down(true, RETRY_AFTER + Duration::from_secs(1))
                .remembered(&jump)
                .is_none(),
            "tried again once the network may be back"
        );
        assert!(
            down(false, Duration::from_secs(3600))
                .remembered(&jump)
                .is_some(),
            "a refusal stands for the run"
        );
        assert!(Slot::Empty.remembered(&jump).is_none());
    }
}
