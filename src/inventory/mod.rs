//! The validated inventory: what `cluster.yaml` means once every value in it
//! has been checked. Nothing touches the network before one of these exists.
//!
//! `raw` holds the serde shapes that mirror the YAML; `load` turns them into
//! these typed values, or into an error that names file, line and column.
//! `values` holds the small validated types and the failure-budget
//! arithmetic ([`FailureBudget::allowed`]); the rollout splits batches.

mod checks;
mod keyfile;
mod load;
mod raw;
mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use checks::{CheckProbe, OperatorCheck};
pub use keyfile::key_too_open;
pub use load::{InventoryError, load};
pub use values::{BatchSize, Endpoint, FailureBudget, ImageRef, RemotePath};

#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory file as given.
    pub path: PathBuf,
    /// sha256 (hex) of the inventory file's bytes.
    pub hash: String,
    pub etcd: EtcdConfig,
    pub docker: DockerConfig,
    pub cni: CniConfig,
    pub libnetwork: ContainerConfig,
    pub node: ContainerConfig,
    pub rollout: RolloutConfig,
    /// Operator templates that override the built-in ones, file by file.
    pub templates_dir: Option<PathBuf>,
    pub agents: Vec<Agent>,
}

#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// At least one.
    pub endpoints: Vec<Endpoint>,
    pub proxy: bool,
    /// The etcd binary that runs the gateway.
    pub binary: EtcdBinary,
    /// Client TLS for `https://` endpoints; set exactly when they are.
    pub tls: Option<EtcdTls>,
}

/// `etcd.tls`: read at load, each file checked to be PEM, the key not
/// readable by group or others.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: TlsFile,
    pub cert: TlsFile,
    /// Secret: its bytes go to the agents over stdin and nowhere else.
    pub key: TlsFile,
}

/// One local TLS file and its bytes. `Debug` names the file and a hash
/// prefix only, so that a key never reaches a log through a `{:?}`.
#[derive(Clone)]
pub struct TlsFile {
    pub path: PathBuf,
    pub content: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for TlsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(&self.content));
        write!(
            f,
            "TlsFile({}, sha256 {}…)",
            self.path.display(),
            &sha[..12]
        )
    }
}

#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub enabled: bool,
    /// Validated `etcd://`, `consul://` or `zk://` URL, when overridden.
    pub cluster_store: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CniConfig {
    pub enabled: bool,
    /// Sorted by name; always holds `calico` and `calico-ipam`. Paths are
    /// resolved against the inventory's folder and exist.
    pub binaries: Vec<CniBinary>,
    pub plugin_dir: RemotePath,
    pub config_dir: RemotePath,
}

#[derive(Debug, Clone)]
pub struct CniBinary {
    /// File name in the plugin directory, e.g. `calico-ipam`.
    pub name: String,
    pub source: BinarySource,
}

/// The etcd binary that runs the gateway: one calico-rollout installs
/// (pushed or downloaded, to a path it owns), or one already on the agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdBinary {
    Managed(BinarySource),
    OnAgent(RemotePath),
}

/// Where a plugin binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySource {
    /// A file on the operator's machine (exists), pushed to each agent.
    Local(PathBuf),
    /// Each agent downloads it; the controller never sends the bytes.
    Url {
        /// `http://` or `https://`.
        url: String,
        /// Lowercase hex; what the download must hash to.
        sha256: String,
    },
}

#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub enabled: bool,
    pub image: ImageRef,
    /// Extra environment; keys are valid variable names, values have no newline.
    pub env: BTreeMap<String, String>,
}

/// The `rollout:` section: how hosts are grouped into batches, and when the
/// rollout stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutConfig {
    /// Batch sizes in order, the last one repeating (`batch: 10` is `[10]`,
    /// `batch: [1, 5, "25%"]` a ramp). Never empty.
    pub batch: Vec<BatchSize>,
    /// This many hosts are restarted first, as a batch of their own, before
    /// the `batch` ramp starts. 0: no canary batch.
    pub canary: usize,
    /// `by: zone`: hosts are grouped by their `zone` (every agent has one).
    /// `by: host` (the default): zones play no part.
    pub by_zone: bool,
    /// How many selected hosts may fail before the rollout stops.
    pub max_failures: FailureBudget,
    /// How long a host must stay healthy after passing its health check
    /// before the next batch starts. Zero: do not wait.
    pub min_healthy: Duration,
    /// How long a restart may take, and then how long the service has to
    /// pass its health gate.
    pub health_timeout: Duration,
    /// The deadline of every other remote command (the probe, installs,
    /// lock and history updates, one health check); uploads get this plus
    /// a second per MiB.
    pub command_timeout: Duration,
    /// The deadline of pulling one image.
    pub pull_timeout: Duration,
    /// Put a host that fails its health check back to what it ran before.
    pub revert: bool,
    /// On a host with no BGP session Established before its calico-node is
    /// replaced, how many must be Established after (or every session BIRD
    /// has, when it has fewer).
    pub min_bgp_peers: usize,
    /// The operator's own checks, each after one step.
    pub checks: Vec<OperatorCheck>,
}

impl Default for RolloutConfig {
    /// What an inventory without a `rollout:` section gets. One canary
    /// first, alone: a bad change fails there and is reverted, before any
    /// other host is touched. Then a tenth of the agents at a time, so that
    /// at most a tenth of the cluster's Mesos agents and docker daemons
    /// restart together, and a 100-agent cluster takes 11 batches rather
    /// than 100. Any failure stops the rollout; every restarted host must
    /// stay healthy, as the same processes, for 10 s.
    fn default() -> Self {
        RolloutConfig {
            batch: vec![BatchSize::Percent(10)],
            canary: 1,
            by_zone: false,
            max_failures: FailureBudget::Count(0),
            min_healthy: Duration::from_secs(10),
            health_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(30),
            pull_timeout: Duration::from_secs(300),
            revert: true,
            min_bgp_peers: 1,
            checks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Private,
    Public,
}

impl Role {
    pub const fn mesos_unit(self) -> &'static str {
        match self {
            Role::Private => "dcos-mesos-slave",
            Role::Public => "dcos-mesos-slave-public",
        }
    }

    pub fn mesos_port(self) -> u16 {
        match self {
            Role::Private => 5051,
            Role::Public => 5052,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    /// Host name or IP address.
    pub address: String,
    pub role: Role,
    /// DC/OS fault domain zone, e.g. `us-east-1a`. Always set when
    /// `rollout.by_zone` is.
    pub zone: Option<String>,
    /// Where Mesos listens, when the agent cannot say (no `detect_ip`)
    /// and it is not the SSH address (NAT, a DNS alias).
    pub mesos_address: Option<String>,
    pub ssh: SshSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyChecking {
    Strict,
    AcceptNew,
}

#[derive(Debug, Clone)]
pub struct SshSettings {
    /// What is dialled: the agent's address, or the `HostName` ssh_config
    /// gives for it. Host keys and certificate principals are checked
    /// against this name.
    pub host_name: String,
    pub user: String,
    pub port: u16,
    /// Explicit key file (exists), `~` expanded. Without one, the ssh-agent
    /// and the default keys in ~/.ssh that exist are tried.
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_checking: HostKeyChecking,
    /// Use `sudo -n` for privileged commands when `user` is not root.
    pub become_root: bool,
    pub connect_timeout: Duration,
    /// Reach the agent through this bastion (one hop), over one SSH
    /// connection shared by every agent behind it.
    pub proxy_jump: Option<ProxyJump>,
}

/// A bastion, fully resolved: its identity and known_hosts are the agent's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyJump {
    pub user: String,
    /// What is dialled (ssh_config's `HostName` for it, when it has one).
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ProxyJump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

impl SshSettings {
    pub fn needs_sudo(&self) -> bool {
        self.become_root && self.user != "root"
    }
}
