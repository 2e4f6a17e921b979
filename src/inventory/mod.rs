//! The validated inventory: what `cluster.yaml` means once every value in it
//! has been checked. Nothing touches the network before one of these exists.
//!
//! `raw` holds the serde shapes that mirror the YAML; `load` turns them into
//! these typed values, or into an error that names file, line and column.

mod load;
mod raw;
mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use load::{InventoryError, load};
pub use values::{BatchSize, Endpoint, ImageRef, RemotePath};

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
    /// Where the etcd binary lives on the agents (runs the gateway).
    pub binary: RemotePath,
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
    pub local_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub enabled: bool,
    pub image: ImageRef,
    /// Extra environment; keys are valid variable names, values have no newline.
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct RolloutConfig {
    pub batch: BatchSize,
    pub max_failures: usize,
    pub health_timeout: Duration,
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
    pub ssh: SshSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyChecking {
    Strict,
    AcceptNew,
}

#[derive(Debug, Clone)]
pub struct SshSettings {
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
}

impl SshSettings {
    pub fn needs_sudo(&self) -> bool {
        self.become_root && self.user != "root"
    }
}
