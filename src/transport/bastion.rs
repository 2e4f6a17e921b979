//! Bastions (`proxy_jump`): one SSH connection per bastion, opened when the
//! first agent behind it needs it and shared by all the others, each of
//! which gets a direct-tcpip channel over it to its own sshd. The bastion's
//! host key is checked against the same known_hosts (port-aware), and it is
//! logged into with the same identity, as the agent behind it.
//!
//! A bastion that cannot be reached, or refuses us, is tried once per run:
//! every host behind it gets the same reason, naming the bastion, rather
//! than each waiting out its own connect timeout.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    },
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
        match &*slot {
            Slot::Up(handle) if !handle.is_closed() => return Ok(handle.clone()),
            Slot::Up(_) => debug!(bastion = %jump, "bastion connection lost; reconnecting"),
            Slot::Down {
                reason,
                unreachable,
            } => {
                return Err(TransportError::Bastion {
                    bastion: jump.to_string(),
                    reason: reason.clone(),
                    unreachable: *unreachable,
                });
            }
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
