//! The etcd-over-TLS world, as its tests see it (docker-compose.tls.yml,
//! testenv/tls/up.sh): two real etcd members that demand a client
//! certificate, one whose certificate holds for 127.0.0.1 and one whose
//! does not, and two fake DC/OS agents.

#![allow(dead_code)]

#[path = "../harness/mod.rs"]
mod harness;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

#[allow(unused_imports)]
pub use harness::{Agent, Cluster, Run, read_in, repo, sh_in};

pub const AGENTS: [Agent; 2] = [
    Agent {
        name: "agent-1",
        container: "calico-rollout-tls-agent-1",
        port: 22351,
        user: "root",
        public: false,
    },
    Agent {
        name: "agent-2",
        container: "calico-rollout-tls-agent-2",
        port: 22352,
        user: "root",
        public: false,
    },
];

/// The member whose certificate names 127.0.0.1, and the one whose does not.
pub const MEMBER_LO: &str = "https://etcd-lo:2379";
pub const MEMBER_NOLO: &str = "https://etcd-nolo:2379";

pub const TLS_DIR: &str = "/etc/calico-rollout/etcd-tls";
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const CNI_CONFIG: &str = "/opt/mesosphere/etc/dcos/network/cni/calico.cni";

/// As `harness::FORGET_CALICO`, with the client certificate each member
/// demands, at the name its certificate holds for.
const FORGET_CALICO_TLS_LO: &str = "curl -sS -o /dev/null --cacert /certs/ca.pem --cert /certs/client.pem \
    --key /certs/client-key.pem -X DELETE 'https://etcd-lo:2379/v2/keys/calico?recursive=true'";
const FORGET_CALICO_TLS_NOLO: &str = "curl -sS -o /dev/null --cacert /certs/ca.pem --cert /certs/client.pem \
    --key /certs/client-key.pem -X DELETE 'https://etcd-nolo:2379/v2/keys/calico?recursive=true'";

const WORLD: harness::World = harness::World {
    agents: &AGENTS,
    up: "testenv/tls/up.sh",
    // The stand-in's reset predates the TLS folder: it goes too.
    reset: "fake-agent-reset && rm -rf /etc/calico-rollout",
    state: "testenv/.state/tls",
    store_reset: &[
        ("calico-rollout-tls-etcd-lo", FORGET_CALICO_TLS_LO),
        ("calico-rollout-tls-etcd-nolo", FORGET_CALICO_TLS_NOLO),
    ],
};

pub fn cluster() -> Cluster {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    WORLD.take(&LOCK, &UP)
}

/// A file of the world's certificates (see testenv/tls/up.sh).
pub fn cert(name: &str) -> PathBuf {
    WORLD.state_dir().join("certs").join(name)
}

/// The shared inventory with TLS to `member`, through the gateway or not.
pub fn inventory(member: &str, proxy: bool) -> Value {
    let mut inv = WORLD.inventory();
    inv["etcd"] = json!({
        "endpoints": [member],
        "proxy": proxy,
        "tls": {"ca": cert("ca.pem"), "cert": cert("client.pem"), "key": cert("client-key.pem")},
    });
    inv["rollout"] = json!({"batch": 2, "canary": 0, "health_timeout": "20s", "min_healthy": "1s"});
    inv
}

pub fn exec(agent: &Agent, script: &str) -> String {
    sh_in(agent.container, script)
}

pub fn read(agent: &Agent, path: &str) -> Option<Vec<u8>> {
    read_in(agent.container, path)
}

pub fn json_file(agent: &Agent, path: &str) -> Value {
    let bytes = read(agent, path).unwrap_or_else(|| panic!("{}: no {path}", agent.name));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {path}: {e}", agent.name))
}

pub fn container(agent: &Agent, name: &str) -> Option<Value> {
    harness::container_in(agent.container, name)
}
