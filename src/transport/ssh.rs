//! The production transport: one russh connection per host, one session
//! channel per command.
//!
//! - Connecting: TCP under `connect_timeout` (or, behind a bastion, a
//!   direct-tcpip channel over the bastion's one shared connection, see
//!   [`super::bastion`]), then key exchange, host-key check (see
//!   [`super::known_hosts`] and [`super::host_certs`]) and authentication
//!   ([`super::auth`]) under one more timeout.
//! - Commands: stdin is streamed while stdout/stderr are read, so a command
//!   that talks while it is being fed cannot deadlock. Channels are closed
//!   explicitly (OpenSSH's `MaxSessions` counts open ones).
//!
//! Stdin contents are never logged; command strings only at `debug`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{Algorithm, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tracing::debug;

use super::bastion::Bastions;
use super::{Connector, ExecOutput, Stdin, Transport, TransportError};
use super::{auth, host_certs, known_hosts};
use crate::inventory::{Agent, HostKeyChecking, SshSettings};

/// Probe an idle connection this often; the server's replies keep it alive.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Unanswered keepalives before the connection is declared dead (~75 s).
const KEEPALIVE_MAX: usize = 4;
/// Nothing at all received for this long (not even keepalive replies): dead.
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(120);
/// Receive window per channel: big command output streams without stalls.
const WINDOW_SIZE: u32 = 16 * 1024 * 1024;
/// The largest packet we accept; russh warns above 65535.
const MAX_PACKET_SIZE: u32 = 65535;
/// Key exchange plus authentication get at least this long.
const MIN_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Stdin files are read and sent in chunks of this size.
const STDIN_CHUNK: u64 = 256 * 1024;

/// Opens [`SshSession`]s. One per process: it shares the client
/// configuration, the lock that serialises known_hosts updates, and the
/// bastion connections.
pub struct SshConnector {
    config: Arc<client::Config>,
    known_hosts_lock: Arc<Mutex<()>>,
    bastions: Bastions,
}

impl SshConnector {
    pub fn new() -> Self {
        Self {
            config: Arc::new(client_config(russh::Preferred::DEFAULT.key, false)),
            known_hosts_lock: Arc::new(Mutex::new(())),
            bastions: Bastions::default(),
        }
    }

    /// The shared configuration, unless the host is known only by keys the
    /// default order would not ask for first, or a certificate authority is
    /// listed for it (then its host certificate is asked for).
    fn config_for(&self, recorded: &[Algorithm], certificates: bool) -> Arc<client::Config> {
        match (host_key_order(recorded), certificates) {
            (None, false) => self.config.clone(),
            (None, true) => Arc::new(client_config(russh::Preferred::DEFAULT.key, true)),
            (Some(order), certificates) => Arc::new(client_config(Cow::Owned(order), certificates)),
        }
    }

    /// Key exchange, host-key check and authentication over `stream`, as
    /// `settings.user` on `settings.host_name:settings.port`.
    pub(super) async fn handshake<R>(
        &self,
        settings: &SshSettings,
        stream: R,
    ) -> Result<Handle<HostKeyHandler>, TransportError>
    where
        R: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let addr = display_addr(&settings.host_name, settings.port);
        let (recorded, certificates) = {
            let (path, host, port) = (
                settings.known_hosts.clone(),
                settings.host_name.clone(),
                settings.port,
            );
            tokio::task::spawn_blocking(move || {
                (
                    known_hosts::recorded_algorithms(&path, &host, port),
                    known_hosts::has_authority(&path, &host, port),
                )
            })
            .await
            .unwrap_or_default()
        };
        let config = self.config_for(&recorded, certificates);
        let verdict = Arc::new(Mutex::new(None));
        let handler = HostKeyHandler {
            host_name: settings.host_name.clone(),
            port: settings.port,
            known_hosts: settings.known_hosts.clone(),
            checking: settings.host_key_checking,
            lock: self.known_hosts_lock.clone(),
            verdict: verdict.clone(),
        };
        let handshake = async {
            let mut handle = match client::connect_stream(config, stream, handler).await {
                Ok(handle) => handle,
                Err(e) => {
                    // A refused host key has its precise reason stashed.
                    let stashed = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
                    return Err(stashed.unwrap_or_else(|| TransportError::Connect {
                        addr: addr.clone(),
                        reason: format!("ssh handshake failed: {e}"),
                    }));
                }
            };
            let method = auth::authenticate(&mut handle, settings, &addr).await?;
            debug!(addr = %addr, user = %settings.user, "authenticated with {method}");
            Ok(handle)
        };
        let limit = settings.connect_timeout.max(MIN_HANDSHAKE_TIMEOUT);
        match tokio::time::timeout(limit, handshake).await {
            Err(_) => Err(TransportError::ConnectTimeout {
                addr,
                secs: limit.as_secs(),
            }),
            Ok(result) => result,
        }
    }

    /// A TCP connection to `settings.host_name:settings.port`, under
    /// `connect_timeout`.
    pub(super) async fn dial(settings: &SshSettings) -> Result<TcpStream, TransportError> {
        let addr = display_addr(&settings.host_name, settings.port);
        let tcp = TcpStream::connect((settings.host_name.as_str(), settings.port));
        let stream = match tokio::time::timeout(settings.connect_timeout, tcp).await {
            Err(_) => {
                return Err(TransportError::ConnectTimeout {
                    addr,
                    secs: settings.connect_timeout.as_secs(),
                });
            }
            Ok(Err(e)) => {
                return Err(TransportError::Connect {
                    addr,
                    reason: e.to_string(),
                });
            }
            Ok(Ok(stream)) => stream,
        };
        // connect_stream, unlike client::connect, leaves this to us.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(addr = %addr, "set_nodelay failed: {e}");
        }
        Ok(stream)
    }
}

impl Default for SshConnector {
    fn default() -> Self {
        Self::new()
    }
}

fn client_config(host_key_order: Cow<'static, [Algorithm]>, certificates: bool) -> client::Config {
    let host_key_certificates = if certificates {
        host_key_order.clone()
    } else {
        Cow::Borrowed(&[][..])
    };
    client::Config {
        inactivity_timeout: Some(INACTIVITY_TIMEOUT),
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET_SIZE,
        preferred: russh::Preferred {
            key: host_key_order,
            host_key_certificates,
            compression: Cow::Borrowed(&[russh::compression::NONE]),
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    }
}
/// Like OpenSSH, ask first for the host-key algorithms the host is already
/// known by: a host recorded with only its ECDSA key must be asked for that
/// key, not flagged as changed for offering its ed25519 one. `None` when
/// the default order already puts a known algorithm first.
fn host_key_order(recorded: &[Algorithm]) -> Option<Vec<Algorithm>> {
    let default = russh::Preferred::DEFAULT.key;
    let known = |a: &Algorithm| {
        recorded.iter().any(|r| {
            r == a || (matches!(r, Algorithm::Rsa { .. }) && matches!(a, Algorithm::Rsa { .. }))
        })
    };
    if default.first().is_none_or(known) {
        return None;
    }
    let (mut order, rest): (Vec<Algorithm>, Vec<Algorithm>) =
        default.iter().cloned().partition(known);
    if order.is_empty() {
        return None;
    }
    order.extend(rest);
    Some(order)
}

/// `address:port`, bracketing IPv6 literals.
pub(super) fn display_addr(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

impl Connector for SshConnector {
    type Session = SshSession;

    async fn connect(&self, target: &Agent) -> Result<SshSession, TransportError> {
        let settings = &target.ssh;
        let addr = display_addr(&settings.host_name, settings.port);
        let handle = match &settings.proxy_jump {
            None => {
                let stream = Self::dial(settings).await?;
                self.handshake(settings, stream).await?
            }
            Some(jump) => {
                let stream = self.bastions.open(self, settings, jump).await?;
                self.handshake(settings, stream).await?
            }
        };
        Ok(SshSession { handle, addr })
    }
}

/// The russh callbacks of one connection: only the host-key check matters.
pub(super) struct HostKeyHandler {
    host_name: String,
    port: u16,
    known_hosts: PathBuf,
    checking: HostKeyChecking,
    lock: Arc<Mutex<()>>,
    /// Why the key was refused: russh itself only learns "no".
    verdict: Arc<Mutex<Option<TransportError>>>,
}

impl client::Handler for HostKeyHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let certificate = server_key.certificate().cloned();
        let key = server_key.public_key();
        let (path, checking, lock) = (self.known_hosts.clone(), self.checking, self.lock.clone());
        let (host, port) = (self.host_name.clone(), self.port);
        // File I/O and a std mutex: off the async workers.
        let result = tokio::task::spawn_blocking(move || match certificate {
            Some(cert) => {
                host_certs::verify_certificate(&path, checking, &lock, &host, port, &cert)
            }
            None => known_hosts::verify_host_key(&path, checking, &lock, &host, port, &key),
        })
        .await
        .unwrap_or_else(|e| Err(TransportError::Ssh(format!("host key check failed: {e}"))));
        match result {
            Ok(()) => Ok(true),
            Err(e) => {
                debug!("host key refused: {e}");
                *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Ok(false)
            }
        }
    }
}

/// An authenticated connection to one host.
pub struct SshSession {
    handle: Handle<HostKeyHandler>,
    /// `address:port`, for messages.
    addr: String,
}

impl SshSession {
    fn ssh_error(&self, doing: &str, e: impl std::fmt::Display) -> TransportError {
        TransportError::Ssh(format!("{}: {doing}: {e}", self.addr))
    }

    fn lost(&self, doing: &str) -> TransportError {
        TransportError::Lost {
            addr: self.addr.clone(),
            doing: doing.to_string(),
        }
    }

    /// Runs `command` on an open channel, feeding `stdin` while reading.
    async fn run(
        &self,
        read: &mut ChannelReadHalf,
        write: &ChannelWriteHalf<Msg>,
        command: &str,
        stdin: Stdin<'_>,
    ) -> Result<ExecOutput, TransportError> {
        write.exec(true, command).await.map_err(|e| {
            if self.handle.is_closed() {
                self.lost("sending the command")
            } else {
                self.ssh_error("sending the command", e)
            }
        })?;

        let mut out = ExecOutput::default();
        let upload = send_stdin(write, stdin);
        tokio::pin!(upload);
        let mut uploading = true;
        let mut refused = false;
        loop {
            tokio::select! {
                msg = read.wait() => match msg {
                    None => break,
                    Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        out.stderr.extend_from_slice(&data)
                    }
                    // Output can still follow: read on until the channel ends.
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        out.exit_status = Some(exit_status)
                    }
                    Some(ChannelMsg::ExitSignal { signal_name, core_dumped, .. }) => {
                        out.exit_signal = Some(signal_label(&signal_name, core_dumped))
                    }
                    // The only request we want a reply to is the exec.
                    Some(ChannelMsg::Failure) => {
                        refused = true;
                        break;
                    }
                    Some(_) => {}
                },
                sent = &mut upload, if uploading => {
                    uploading = false;
                    match sent {
                        Ok(()) => {}
                        Err(StdinError::Local(e)) => {
                            // The command must not take a truncated stdin
                            // for a complete one.
                            let _ = write.signal(Sig::KILL).await;
                            return Err(e);
                        }
                        // The command stopped reading (or exited): its
                        // result tells the story.
                        Err(StdinError::Channel(e)) => debug!("stdin not fully sent: {e}"),
                    }
                }
            }
        }
        if refused {
            return Err(self.ssh_error("running the command", "the server refused the request"));
        }
        if out.exit_status.is_none() && out.exit_signal.is_none() {
            // The channel ended without a word: the connection dropped, or
            // is about to be noticed as dropped.
            return Err(self.lost("while the command ran"));
        }
        debug!(
            addr = %self.addr,
            exit_status = ?out.exit_status,
            exit_signal = ?out.exit_signal,
            stdout_bytes = out.stdout.len(),
            stderr_bytes = out.stderr.len(),
            "ssh exec done"
        );
        Ok(out)
    }
}

fn signal_label(sig: &Sig, core_dumped: bool) -> String {
    let name = match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name.as_str(),
    };
    if core_dumped {
        format!("{name} (core dumped)")
    } else {
        name.to_string()
    }
}

enum StdinError {
    /// Reading the local file failed.
    Local(TransportError),
    /// The channel would not take more (closed, or the connection is gone).
    Channel(russh::Error),
}

/// Sends all of `stdin`, then EOF. A file is streamed chunk by chunk.
async fn send_stdin(write: &ChannelWriteHalf<Msg>, stdin: Stdin<'_>) -> Result<(), StdinError> {
    match stdin {
        Stdin::Empty => {}
        Stdin::Bytes(bytes) => {
            if !bytes.is_empty() {
                write
                    .data_bytes(bytes.to_vec())
                    .await
                    .map_err(StdinError::Channel)?;
            }
        }
        Stdin::File(path) => {
            let local = |e: std::io::Error| {
                StdinError::Local(TransportError::LocalFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            };
            let mut file = tokio::fs::File::open(path).await.map_err(local)?;
            loop {
                let mut chunk = Vec::with_capacity(STDIN_CHUNK as usize);
                let n = (&mut file)
                    .take(STDIN_CHUNK)
                    .read_to_end(&mut chunk)
                    .await
                    .map_err(local)?;
                if n == 0 {
                    break;
                }
                write.data_bytes(chunk).await.map_err(StdinError::Channel)?;
            }
        }
    }
    write.eof().await.map_err(StdinError::Channel)
}

impl Transport for SshSession {
    async fn exec(
        &self,
        command: &str,
        stdin: Stdin<'_>,
        deadline: Duration,
    ) -> Result<ExecOutput, TransportError> {
        debug!(addr = %self.addr, command, "ssh exec");
        let opened = tokio::time::timeout(deadline, self.handle.channel_open_session()).await;
        let channel = match opened {
            Err(_) => return Err(TransportError::TimedOut { after: deadline }),
            Ok(Err(e)) if self.handle.is_closed() => {
                return Err(self.lost(&format!("opening a session channel ({e})")));
            }
            Ok(Err(e)) => return Err(self.ssh_error("opening a session channel", e)),
            Ok(Ok(channel)) => channel,
        };
        let (mut read, write) = channel.split();
        let result =
            match tokio::time::timeout(deadline, self.run(&mut read, &write, command, stdin)).await
            {
                Ok(result) => result,
                Err(_) => {
                    // The agent bounds the command itself too (`timeout` in
                    // the remote wrapper); this is for a command, or a
                    // connection, that is past saving.
                    let _ = write.signal(Sig::KILL).await;
                    Err(TransportError::TimedOut { after: deadline })
                }
            };
        // A no-op when the server closed it first.
        let _ = write.close().await;
        result
    }

    fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    async fn close(&self) {
        if let Err(e) = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await
        {
            debug!(addr = %self.addr, "disconnect: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::HashAlg;

    #[test]
    fn addresses_are_shown_with_their_port() {
        assert_eq!(display_addr("10.0.0.5", 22), "10.0.0.5:22");
        assert_eq!(display_addr("fd00::5", 2222), "[fd00::5]:2222");
    }

    #[test]
    fn hosts_known_by_other_algorithms_are_asked_for_them_first() {
        let ecdsa = Algorithm::Ecdsa {
            curve: russh::keys::EcdsaCurve::NistP256,
        };
        assert_eq!(host_key_order(&[]), None);
        assert_eq!(host_key_order(&[Algorithm::Ed25519, ecdsa.clone()]), None);
        let order = host_key_order(std::slice::from_ref(&ecdsa)).unwrap();
        assert_eq!(order[0], ecdsa);
        assert_eq!(order.len(), russh::Preferred::DEFAULT.key.len());
        assert!(order.contains(&Algorithm::Ed25519));
        let order = host_key_order(&[Algorithm::Rsa { hash: None }]).unwrap();
        assert!(
            order[..3]
                .iter()
                .all(|a| matches!(a, Algorithm::Rsa { .. }))
        );
        assert_eq!(
            order[0],
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512)
            }
        );
    }

    #[test]
    fn signals_keep_their_names() {
        assert_eq!(signal_label(&Sig::KILL, false), "KILL");
        assert_eq!(signal_label(&Sig::SEGV, true), "SEGV (core dumped)");
        assert_eq!(signal_label(&Sig::Custom("XCPU".into()), false), "XCPU");
    }
}
