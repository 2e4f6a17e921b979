//! Tests of `load`, on inventory files written to a temporary folder. This
//! file holds the shared fixtures; each submodule covers one kind of outcome.

mod accepted;
mod bad_values;
mod local_files;
mod required;
mod shape;
mod ssh;
mod tls;

use std::fs;
use std::path::PathBuf;

use super::{InventoryError, line_col, load_with_home};
use crate::inventory::Inventory;

/// The example from the contract, verbatim.
const EXAMPLE: &str = r#"ssh:                         # defaults for every agent; any key can be overridden per agent
  user: core
  port: 22
  identity_file: ~/.ssh/id_ed25519     # also use a running ssh-agent when present
  known_hosts: ~/.ssh/known_hosts
  host_key_checking: strict            # strict | accept-new
  become: true                         # sudo -n for privileged commands when user is not root
  connect_timeout: 10s
etcd:
  endpoints: [http://10.0.0.5:2379, http://10.0.0.6:2379]
  proxy: true
docker:
  enabled: true
  cluster_store: null                  # default etcd://127.0.0.1:2379 with the proxy, else the first endpoint
cni:
  enabled: true
  binaries: {calico: ./bin/calico, calico-ipam: ./bin/calico-ipam}   # paths relative to this file
  plugin_dir: /opt/mesosphere/active/cni
  config_dir: /opt/mesosphere/etc/dcos/network/cni
libnetwork:
  enabled: true
  image: calico/libnetwork-plugin:v1.1.3
node:
  enabled: true
  image: calico/node:v2.6.12
  env: {CALICO_NETWORKING_BACKEND: bird}
rollout:
  batch: 10                            # or "20%"
  max_failures: 0
agents:
  - {name: agent-1, address: 10.0.0.11}
  - {name: pub-1, address: 10.0.0.21, role: public}
  - {name: agent-2, address: 10.0.0.12, user: root, port: 2222}
"#;

/// The smallest inventory that loads (known_hosts comes from $HOME).
const MINIMAL: &str = "\
etcd:
  endpoints: [http://10.0.0.5:2379]
cni:
  binaries:
    calico: bin/calico
    calico-ipam: bin/calico-ipam
agents:
  - name: agent-1
    address: 10.0.0.11
";

/// A temp folder holding the inventory, dummy binaries, and a fake
/// home with `.ssh/known_hosts` and `.ssh/id_ed25519`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write("bin/calico", "#!/bin/sh\n");
        f.write("bin/calico-ipam", "#!/bin/sh\n");
        f.write("home/.ssh/known_hosts", "");
        f.write("home/.ssh/id_ed25519", "key");
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        // As ssh-keygen leaves a key: a key others can read is refused.
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }

    fn load(&self, yaml: &str) -> Result<Inventory, InventoryError> {
        self.write("cluster.yaml", yaml);
        load_with_home(&self.path("cluster.yaml"), Some(&self.home()))
    }

    fn ok(&self, yaml: &str) -> Inventory {
        self.load(yaml)
            .unwrap_or_else(|e| panic!("inventory should load, got:\n{e}"))
    }

    fn err(&self, yaml: &str) -> InventoryError {
        match self.load(yaml) {
            Ok(_) => panic!("inventory should be rejected:\n{yaml}"),
            Err(e) => e,
        }
    }

    /// `…/cluster.yaml:` as errors print it.
    fn prefix(&self) -> String {
        format!("{}:", self.path("cluster.yaml").display())
    }
}

/// 1-based line and column of the first `needle` in `text`.
fn pos(text: &str, needle: &str) -> (u64, u64) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    line_col(&text.as_bytes()[..at])
}

fn replace(text: &str, old: &str, new: &str) -> String {
    assert!(text.contains(old), "{old:?} not in text");
    text.replacen(old, new, 1)
}
