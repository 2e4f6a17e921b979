//! The fake DC/OS cluster, as the integration tests see it: bring it up
//! once, reset every agent before each test, run the real binary against
//! it, and read what landed on the agents.

#![allow(dead_code)]

#[path = "../harness/mod.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

// Each test binary uses its own part of these.
#[allow(unused_imports)]
pub use harness::{
    Agent, Cluster, Run, finish, repo, run_binary, sh_in as exec_in, spawn_binary, wait_until,
};

/// The four agents of docker-compose.test.yml, in inventory order.
pub const AGENTS: [Agent; 4] = [
    Agent {
        name: "agent-1",
        container: "calico-rollout-test-agent-1",
        port: 22101,
        user: "root",
        public: false,
    },
    Agent {
        name: "agent-2",
        container: "calico-rollout-test-agent-2",
        port: 22102,
        user: "core",
        public: false,
    },
    Agent {
        name: "agent-3",
        container: "calico-rollout-test-agent-3",
        port: 22103,
        user: "root",
        public: false,
    },
    Agent {
        name: "pub-1",
        container: "calico-rollout-test-pub-1",
        port: 22104,
        user: "root",
        public: true,
    },
];

const WORLD: harness::World = harness::World {
    agents: &AGENTS,
    up: "testenv/up.sh",
    reset: "fake-agent-reset",
    state: "testenv/.state",
    store_reset: &[(ETCD_CONTAINER, harness::FORGET_CALICO)],
};

pub const ETCD_CONTAINER: &str = "calico-rollout-test-etcd";
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const CNI_CONFIG: &str = "/opt/mesosphere/etc/dcos/network/cni/calico.cni";
pub const PLUGIN_DIR: &str = "/opt/mesosphere/active/cni";

pub fn agent(name: &str) -> &'static Agent {
    AGENTS.iter().find(|a| a.name == name).expect("known agent")
}

pub fn state_dir() -> std::path::PathBuf {
    WORLD.state_dir()
}

/// Takes the cluster for one test: brings it up the first time (quick when
/// it already runs), then resets every agent to a pristine DC/OS agent.
pub fn cluster() -> Cluster {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    WORLD.take(&LOCK, &UP)
}

impl Cluster {
    /// The demo inventory's content with absolute paths, as a JSON value
    /// (JSON is YAML) that a test can edit before writing it.
    pub fn inventory(&self) -> Value {
        let mut inv = WORLD.inventory();
        inv["rollout"] = json!({"batch": 2, "canary": 0, "max_failures": 0, "health_timeout": "20s", "min_healthy": "1s"});
        inv
    }

    /// Writes an operator template into a `templates/` folder and points
    /// the inventory at it.
    pub fn template(&self, inv: &mut Value, name: &str, text: &str) {
        let dir = self.dir.path().join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
        inv["templates"] = json!(dir);
    }
}

pub fn exec(agent_name: &str, script: &str) -> String {
    harness::sh_in(agent(agent_name).container, script)
}

/// Asks the agent's Mesos for its health where it listens, as DC/OS says
/// (`detect_ip`); panics if it does not answer 200.
pub fn mesos_healthy(agent_name: &str) {
    let port = agent(agent_name).mesos_port();
    exec(
        agent_name,
        &format!("curl -fsS -o /dev/null http://$(/opt/mesosphere/bin/detect_ip):{port}/health"),
    );
}

/// A file's bytes on an agent, or `None` when it does not exist.
pub fn read(agent_name: &str, path: &str) -> Option<Vec<u8>> {
    harness::read_in(agent(agent_name).container, path)
}

pub fn seed(name: &str) -> Vec<u8> {
    read("agent-1", &format!("/usr/share/fake-agent/seed/{name}")).expect("seed file")
}

/// One line of the agent's restart log: `<unix time> <unit> <event>`.
#[derive(Debug, Clone)]
pub struct Restart {
    pub at: f64,
    pub unit: String,
    pub event: String,
}

pub fn restart_log(agent_name: &str) -> Vec<Restart> {
    let text = read(agent_name, "/var/log/fake-systemd/restarts.log").unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            Some(Restart {
                at: parts.next()?.parse().ok()?,
                unit: parts.next()?.to_string(),
                event: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// The `docker inspect` view of a container on an agent, if it exists.
pub fn container(agent_name: &str, name: &str) -> Option<Value> {
    harness::container_in(agent(agent_name).container, name)
}

/// The containers calico-rollout retired on an agent in place of `name`
/// (`<name>-previous-<run>`), as `docker inspect` shows them.
pub fn retired(agent_name: &str, name: &str) -> Vec<Value> {
    harness::retired_in(agent(agent_name).container, name)
}

pub fn sha256_local(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
