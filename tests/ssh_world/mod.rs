//! The SSH world (docker-compose.ssh.yml, testenv/ssh/up.sh), as tests/ssh.rs
//! sees it: a bastion published on 127.0.0.1:22301, and hidden-1, which has
//! no published port and is reached only through the bastion. Both sshds
//! present host certificates signed by the world's CA, and the world's
//! known_hosts holds that CA and nothing else.

#![allow(dead_code)]

#[path = "../harness/mod.rs"]
mod harness;

use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

pub use harness::{Agent, Cluster, read_in, sh_in};

pub const BASTION_PORT: u16 = 22301;
pub const BASTION: &str = "calico-rollout-ssh-bastion";
pub const HIDDEN: &str = "calico-rollout-ssh-hidden-1";

const AGENTS: [Agent; 2] = [
    Agent {
        name: "bastion",
        container: BASTION,
        port: BASTION_PORT,
        user: "root",
        public: false,
    },
    Agent {
        name: "hidden-1",
        container: HIDDEN,
        port: 22,
        user: "root",
        public: false,
    },
];

const WORLD: harness::World = harness::World {
    agents: &AGENTS,
    up: "testenv/ssh/up.sh",
    reset: "fake-agent-reset",
    state: "testenv/.state/ssh",
    store_reset: &[("calico-rollout-ssh-etcd", harness::FORGET_CALICO)],
};

pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const CNI_CONFIG: &str = "/opt/mesosphere/etc/dcos/network/cni/calico.cni";

pub fn state_dir() -> std::path::PathBuf {
    WORLD.state_dir()
}

/// Takes the world for one test, every agent reset.
pub fn world() -> Cluster {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    WORLD.take(&LOCK, &UP)
}

/// The bastion, dialled directly, and hidden-1 behind it (`proxy_jump`),
/// both checked against the CA-only known_hosts.
pub fn inventory() -> Value {
    let mut inv = WORLD.inventory();
    inv["agents"] = json!([
        {"name": "bastion", "address": "127.0.0.1", "port": BASTION_PORT},
        {"name": "hidden-1", "address": "hidden-1",
         "proxy_jump": format!("root@127.0.0.1:{BASTION_PORT}")},
    ]);
    // The bastion registers its address on the outer network, which
    // hidden-1 cannot reach: their BGP session never comes up, as it would
    // not between such hosts in a real cluster. This world is about SSH.
    inv["rollout"] = json!({"batch": 2, "canary": 0, "health_timeout": "20s", "min_healthy": "1s",
        "min_bgp_peers": 0});
    inv
}

/// The CA's public key, as `type base64`.
pub fn ca_public() -> String {
    let text = std::fs::read_to_string(state_dir().join("ca.pub")).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn seed_daemon_json() -> Vec<u8> {
    read_in(HIDDEN, "/usr/share/fake-agent/seed/daemon.json").expect("seed file")
}

/// Nothing calico-rollout would write is on either agent.
pub fn assert_untouched() {
    for container in [BASTION, HIDDEN] {
        assert_eq!(
            read_in(container, DAEMON_JSON).unwrap(),
            seed_daemon_json(),
            "{container}: daemon.json changed"
        );
        assert_eq!(
            read_in(container, "/etc/systemd/system/calico-etcd-proxy.service"),
            None,
            "{container}: the gateway unit was written"
        );
    }
}
