//! The production transport: one russh connection per host, one session
//! channel per command.
//!
//! - Connecting: TCP under `connect_timeout`, then key exchange, host-key check
//!   (see [`super::known_hosts`]) and authentication under one more timeout.
//! - Authentication tries, in order: the inventory's `identity_file`, the keys
//!   in ssh-agent (`SSH_AUTH_SOCK`), and, only without an `identity_file`, the
//!   default keys `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`. It never prompts.
//! - Commands: stdin is streamed while stdout/stderr are read, so a command
//!   that talks while it is being fed cannot deadlock. Channels are closed
//!   explicitly (OpenSSH's `MaxSessions` counts open ones).
//!
//! Stdin contents are never logged; command strings only at `debug`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::agent::client::AgentClient;
use russh::keys::{
    Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Sig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tracing::debug;

use super::known_hosts;
use super::{Connector, ExecOutput, Stdin, Transport, TransportError};
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
/// Tried, when they exist, only when no `identity_file` is set.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Opens [`SshSession`]s. One per process: it shares the client
/// configuration and the lock that serialises known_hosts updates.
pub struct SshConnector {
    config: Arc<client::Config>,
    known_hosts_lock: Arc<Mutex<()>>,
}

impl SshConnector {
    pub fn new() -> Self {
        Self {
            config: Arc::new(client_config(russh::Preferred::DEFAULT.key)),
            known_hosts_lock: Arc::new(Mutex::new(())),
        }
    }

    /// The shared configuration, unless the host is known only by keys the
    /// default order would not ask for first.
    fn config_for(&self, recorded: &[Algorithm]) -> Arc<client::Config> {
        match host_key_order(recorded) {
            None => self.config.clone(),
            Some(order) => Arc::new(client_config(Cow::Owned(order))),
        }
    }
}

impl Default for SshConnector {
    fn default() -> Self {
        Self::new()
    }
}

fn client_config(host_key_order: Cow<'static, [Algorithm]>) -> client::Config {
    client::Config {
        inactivity_timeout: Some(INACTIVITY_TIMEOUT),
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET_SIZE,
        preferred: russh::Preferred {
            key: host_key_order,
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
fn display_addr(address: &str, port: u16) -> String {
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
        let addr = display_addr(&target.address, settings.port);
        let timed_out = |limit: Duration| TransportError::ConnectTimeout {
            addr: addr.clone(),
            secs: limit.as_secs(),
        };

        let recorded = {
            let (path, address, port) = (
                settings.known_hosts.clone(),
                target.address.clone(),
                settings.port,
            );
            tokio::task::spawn_blocking(move || {
                known_hosts::recorded_algorithms(&path, &address, port)
            })
            .await
            .unwrap_or_default()
        };
        let config = self.config_for(&recorded);

        let tcp = TcpStream::connect((target.address.as_str(), settings.port));
        let stream = match tokio::time::timeout(settings.connect_timeout, tcp).await {
            Err(_) => return Err(timed_out(settings.connect_timeout)),
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

        let verdict = Arc::new(Mutex::new(None));
        let handler = HostKeyHandler {
            address: target.address.clone(),
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
            let method = authenticate(&mut handle, settings, &addr).await?;
            debug!(addr = %addr, user = %settings.user, "authenticated with {method}");
            Ok(handle)
        };
        let limit = settings.connect_timeout.max(MIN_HANDSHAKE_TIMEOUT);
        let handle = match tokio::time::timeout(limit, handshake).await {
            Err(_) => return Err(timed_out(limit)),
            Ok(result) => result?,
        };
        Ok(SshSession { handle, addr })
    }
}

/// The russh callbacks of one connection: only the host-key check matters.
struct HostKeyHandler {
    address: String,
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
        // A host certificate is checked as its plain key.
        let key = server_key.public_key();
        let (path, checking, lock) = (self.known_hosts.clone(), self.checking, self.lock.clone());
        let (address, port) = (self.address.clone(), self.port);
        // File I/O and a std mutex: off the async workers.
        let result = tokio::task::spawn_blocking(move || {
            known_hosts::verify_host_key(&path, checking, &lock, &address, port, &key)
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

/// A private key file, as far as we could read it.
enum LoadedKey {
    Usable(Box<PrivateKey>),
    /// Passphrase-protected; its public half when we could find it.
    Encrypted(Option<PublicKey>),
    Broken(String),
}

fn load_key(path: &Path) -> LoadedKey {
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => LoadedKey::Usable(Box::new(key)),
        Err(e) => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let encrypted = matches!(e, russh::keys::Error::KeyIsEncrypted)
                || text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
                || text.contains("Proc-Type: 4,ENCRYPTED");
            if !encrypted {
                return LoadedKey::Broken(e.to_string());
            }
            // The public half: `<key>.pub`, or the clear part of an OpenSSH key.
            let mut pub_path = path.as_os_str().to_owned();
            pub_path.push(".pub");
            let public = russh::keys::load_public_key(PathBuf::from(pub_path))
                .ok()
                .or_else(|| {
                    russh::keys::ssh_key::PrivateKey::from_openssh(text.as_bytes())
                        .ok()
                        .map(|k| k.public_key().clone())
                });
            LoadedKey::Encrypted(public)
        }
    }
}

/// Lazily asks the server which RSA signature hash it wants (up to 1 s wait).
async fn rsa_hash(
    handle: &Handle<HostKeyHandler>,
    cache: &mut Option<Option<HashAlg>>,
) -> Result<Option<HashAlg>, TransportError> {
    if cache.is_none() {
        let best = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| TransportError::Ssh(format!("negotiating the RSA signature hash: {e}")))?;
        *cache = Some(best.flatten());
    }
    Ok(cache.flatten())
}

async fn try_private_key(
    handle: &mut Handle<HostKeyHandler>,
    user: &str,
    key: Box<PrivateKey>,
    rsa_cache: &mut Option<Option<HashAlg>>,
) -> Result<bool, TransportError> {
    let hash = if key.algorithm().is_rsa() {
        rsa_hash(handle, rsa_cache).await?
    } else {
        None
    };
    let key = PrivateKeyWithHashAlg::new(Arc::new(*key), hash);
    match handle.authenticate_publickey(user, key).await {
        Ok(result) => Ok(result.success()),
        Err(e) => {
            debug!("public key authentication failed: {e}");
            Ok(false)
        }
    }
}

/// Authenticates `settings.user`; returns what worked, for the log.
async fn authenticate(
    handle: &mut Handle<HostKeyHandler>,
    settings: &SshSettings,
    addr: &str,
) -> Result<String, TransportError> {
    let user = settings.user.as_str();
    let mut tried: Vec<String> = Vec::new();
    let mut rsa_cache = None;
    // An explicit key that cannot be used without a passphrase: reported
    // as such if nothing else gets in.
    let mut key_problem: Option<TransportError> = None;
    let mut preferred_public: Option<PublicKey> = None;

    if let Some(path) = &settings.identity_file {
        let shown = path.display().to_string();
        match load_key(path) {
            LoadedKey::Usable(key) => {
                if try_private_key(handle, user, key, &mut rsa_cache).await? {
                    return Ok(format!("identity file {shown}"));
                }
                tried.push(format!("identity file {shown}"));
            }
            LoadedKey::Encrypted(public) => {
                preferred_public = public;
                tried.push(format!("identity file {shown} (passphrase-protected)"));
                key_problem = Some(TransportError::Key {
                    path: shown.clone(),
                    reason: format!(
                        "it is passphrase-protected and calico-rollout never prompts; \
                         load it into ssh-agent (`ssh-add {shown}`) and make sure \
                         SSH_AUTH_SOCK is set"
                    ),
                });
            }
            LoadedKey::Broken(reason) => {
                return Err(TransportError::Key {
                    path: shown,
                    reason,
                });
            }
        }
    }

    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match AgentClient::connect_env().await {
            Err(e) => tried.push(format!("ssh-agent (cannot connect: {e})")),
            Ok(mut agent) => match agent.request_identities().await {
                Err(e) => tried.push(format!("ssh-agent (cannot list keys: {e})")),
                Ok(identities) => {
                    let mut keys: Vec<PublicKey> = identities
                        .iter()
                        .map(|i| i.public_key().into_owned())
                        .collect();
                    // The configured key first: servers allow only a few attempts.
                    if let Some(wanted) = &preferred_public {
                        keys.sort_by_key(|k| k.key_data() != wanted.key_data());
                    }
                    for key in &keys {
                        let hash = if key.algorithm().is_rsa() {
                            rsa_hash(handle, &mut rsa_cache).await?
                        } else {
                            None
                        };
                        match handle
                            .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
                            .await
                        {
                            Ok(result) if result.success() => {
                                return Ok(format!(
                                    "ssh-agent key {}",
                                    known_hosts::fingerprint(key)
                                ));
                            }
                            Ok(_) => {}
                            Err(e) => debug!("ssh-agent signing failed: {e}"),
                        }
                        if handle.is_closed() {
                            break;
                        }
                    }
                    tried.push(format!("ssh-agent ({} keys)", keys.len()));
                }
            },
        }
    } else {
        tried.push("ssh-agent (SSH_AUTH_SOCK not set)".into());
    }

    if settings.identity_file.is_none() {
        let ssh_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh"));
        let mut found = false;
        for name in DEFAULT_KEYS.iter().filter(|_| ssh_dir.is_some()) {
            if handle.is_closed() {
                break;
            }
            let path = ssh_dir.as_ref().map(|d| d.join(name)).unwrap_or_default();
            if !path.exists() {
                continue;
            }
            found = true;
            let shown = path.display().to_string();
            match load_key(&path) {
                LoadedKey::Usable(key) => {
                    if try_private_key(handle, user, key, &mut rsa_cache).await? {
                        return Ok(shown);
                    }
                    tried.push(shown);
                }
                LoadedKey::Encrypted(_) => tried.push(format!("{shown} (passphrase-protected)")),
                LoadedKey::Broken(reason) => tried.push(format!("{shown} (unreadable: {reason})")),
            }
        }
        if !found {
            tried.push(format!(
                "no default key in ~/.ssh ({})",
                DEFAULT_KEYS.join(", ")
            ));
        }
    }

    if handle.is_closed() {
        tried.push(format!(
            "then {addr} closed the connection (too many attempts? see sshd MaxAuthTries)"
        ));
    }
    if let Some(problem) = key_problem {
        return Err(problem);
    }
    Err(TransportError::Auth {
        user: user.to_string(),
        tried: tried.join(", "),
    })
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

    /// An ed25519 key encrypted with the passphrase "secret" (ssh-keygen).
    const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBVTxUWZE
IoDeooKqIEWYiaAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIENQdFTEfK23WOu6
uW9HWz5rEJQ7MO9uqr6j1xSbLM7IAAAAkNwWuA4RuToBSm6fhj0UmzBcV+yT9LZY7BBd7M
8e/icdbruLDVAMIu9IiD6EM8lEqf77o8Qb66sb3VJR0sLUmEHIlUOSTO7WymJcB8N7Tbyw
u7uQ4HQs3CAKKK5ktrHjgpZuLejlBE/9yp8mDKuqnGuJSZKH2kcwI4g06QIVlTRKOkqUvd
P73zhJwB8pvFOD4w==
-----END OPENSSH PRIVATE KEY-----
";
    const ENCRYPTED_KEY_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIENQdFTEfK23WOu6uW9HWz5rEJQ7MO9uqr6j1xSbLM7I";

    #[test]
    fn encrypted_keys_are_recognised_and_keep_their_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        std::fs::write(&path, ENCRYPTED_KEY).unwrap();
        let expected = PublicKey::from_openssh(ENCRYPTED_KEY_PUB).unwrap();
        match load_key(&path) {
            LoadedKey::Encrypted(Some(public)) => {
                assert_eq!(public.key_data(), expected.key_data())
            }
            _ => panic!("expected an encrypted key with its public half"),
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_key(&path), LoadedKey::Broken(_)));
    }
}
