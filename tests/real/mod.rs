//! The real agent profile, as its tests see it: two DC/OS agents with
//! systemd as PID 1 and the real dockerd 20.10 (docker-compose.real.yml,
//! testenv/README.md "The real agent profile"). Bring them up once, reset
//! both before each test, run the real binary, then ask the real daemons:
//! systemd's own properties and journal, `docker info`, `docker inspect`,
//! the bytes on disk and the etcd server.

#![allow(dead_code)]

#[path = "../harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

// Each test binary uses its own part of these.
#[allow(unused_imports)]
pub use harness::{Agent, Cluster, Run, docker_exec, repo, sh_in, wait_until};

/// The agents of docker-compose.real.yml, in inventory order: one private
/// agent logged into as root, one public agent as `core` with `sudo -n`.
pub const AGENTS: [Agent; 2] = [
    Agent {
        name: "real-1",
        container: "calico-rollout-real-1",
        port: 22201,
        user: "root",
        public: false,
    },
    Agent {
        name: "real-pub-1",
        container: "calico-rollout-real-pub-1",
        port: 22202,
        user: "core",
        public: true,
    },
];

pub const ETCD_CONTAINER: &str = "calico-rollout-real-etcd";
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const SEED_DAEMON_JSON: &str = "/usr/share/real-agent/seed/daemon.json";
pub const CNI_CONFIG: &str = "/opt/mesosphere/etc/dcos/network/cni/calico.cni";
pub const PLUGIN_DIR: &str = "/opt/mesosphere/active/cni";
pub const GATEWAY_UNIT: &str = "/etc/systemd/system/calico-etcd-proxy.service";
/// What the inventory below waits after each restart before the next batch.
pub const MIN_HEALTHY: Duration = Duration::from_secs(2);

pub fn agent(name: &str) -> &'static Agent {
    AGENTS.iter().find(|a| a.name == name).expect("known agent")
}

const WORLD: harness::World = harness::World {
    agents: &AGENTS,
    up: "testenv/real/up.sh",
    reset: "real-agent-reset",
    state: "testenv/.state/real",
    store_reset: &[(ETCD_CONTAINER, harness::FORGET_CALICO)],
};

pub fn state_dir() -> PathBuf {
    WORLD.state_dir()
}

/// Takes the real agents for one test: brings them up the first time
/// (quick when they already run), then puts both back as they booted.
pub fn cluster() -> Cluster {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    WORLD.take(&LOCK, &UP)
}

impl Cluster {
    /// An inventory of both real agents with absolute paths, as JSON (which
    /// is YAML) for a test to edit. It uses the container templates of
    /// testenv/real/templates (no --privileged) and restarts one agent at a
    /// time.
    pub fn inventory(&self) -> Value {
        let mut inv = WORLD.inventory();
        inv["rollout"] = json!({
            "batch": 1,
            "canary": 0,
            "max_failures": 0,
            "health_timeout": "30s",
            "min_healthy": format!("{}s", MIN_HEALTHY.as_secs()),
        });
        inv["templates"] = json!(self.templates_dir());
        inv
    }

    /// This test's templates folder: a copy of testenv/real/templates.
    fn templates_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("templates");
        if !dir.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            for entry in std::fs::read_dir(repo().join("testenv/real/templates")).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            }
        }
        dir
    }

    /// Adds (or replaces) an operator template in this test's templates folder.
    pub fn template(&self, name: &str, text: &str) {
        std::fs::write(self.templates_dir().join(name), text).unwrap();
    }
}

pub fn sh(agent_name: &str, script: &str) -> String {
    sh_in(agent(agent_name).container, script)
}

/// Whether a shell command succeeds on an agent.
pub fn succeeds(agent_name: &str, script: &str) -> bool {
    docker_exec(agent(agent_name).container, script)
        .status
        .success()
}

/// A file's bytes on an agent, or `None` when it does not exist.
pub fn read(agent_name: &str, path: &str) -> Option<Vec<u8>> {
    harness::read_in(agent(agent_name).container, path)
}

/// systemd's own view of a unit: `systemctl show -p ...`.
pub fn unit(agent_name: &str, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
    let text = sh(
        agent_name,
        &format!("systemctl show -p {} -- {unit}", props.join(",")),
    );
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The properties that change whenever systemd starts a unit again.
pub const START_PROPS: [&str; 4] = [
    "ActiveEnterTimestamp",
    "ActiveEnterTimestampMonotonic",
    "InvocationID",
    "MainPID",
];

/// A point in an agent's journal; `starts_since` counts what came after.
pub struct Mark(String);

pub fn journal_mark(agent_name: &str) -> Mark {
    let out = sh(agent_name, "journalctl -n 0 --show-cursor --no-pager");
    let cursor = out
        .lines()
        .find_map(|l| l.strip_prefix("-- cursor: "))
        .unwrap_or_else(|| panic!("{agent_name}: no journal cursor in {out:?}"));
    Mark(cursor.trim().to_string())
}

/// systemd's job messages about `unit` since `mark`, as `(JOB_TYPE,
/// JOB_RESULT)` pairs: ("start", "done") is "Started", ("start",
/// "failed") "Failed to start".
pub fn jobs_since(agent_name: &str, mark: &Mark, unit: &str) -> Vec<(String, String)> {
    let out = sh(
        agent_name,
        &format!(
            "journalctl --no-pager -o json --after-cursor='{}' _PID=1 UNIT={unit}.service",
            mark.0
        ),
    );
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| {
            Some((
                e["JOB_TYPE"].as_str()?.to_string(),
                e["JOB_RESULT"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// How often systemd started `unit` (successfully) since `mark`.
pub fn starts_since(agent_name: &str, mark: &Mark, unit: &str) -> usize {
    jobs_since(agent_name, mark, unit)
        .iter()
        .filter(|(t, r)| t == "start" && r == "done")
        .count()
}

/// The unit's own log lines (its processes, not systemd's) since `mark`.
pub fn unit_log_since(agent_name: &str, mark: &Mark, unit: &str) -> String {
    sh(
        agent_name,
        &format!(
            "journalctl --no-pager -o cat --after-cursor='{}' _SYSTEMD_UNIT={unit}.service",
            mark.0
        ),
    )
}

/// `docker info --format '{{.ClusterStore}}'` of the agent's real dockerd.
pub fn cluster_store(agent_name: &str) -> String {
    sh(agent_name, "docker info --format '{{.ClusterStore}}'")
        .trim()
        .to_string()
}

/// The `docker inspect` view of a container in the agent's dockerd.
pub fn container(agent_name: &str, name: &str) -> Option<Value> {
    harness::container_in(agent(agent_name).container, name)
}

/// The retired copies of a container (`<name>-previous-<run id>`), as
/// `docker inspect` shows them.
pub fn retired(agent_name: &str, name: &str) -> Vec<Value> {
    harness::retired_in(agent(agent_name).container, name)
}

/// The id of an image in the agent's dockerd.
pub fn image_id(agent_name: &str, image: &str) -> String {
    sh(
        agent_name,
        &format!("docker image inspect --format '{{{{.Id}}}}' {image}"),
    )
    .trim()
    .to_string()
}

/// Names of the calico containers in the agent's dockerd.
pub fn calico_containers(agent_name: &str) -> Vec<String> {
    sh(
        agent_name,
        "docker ps -a --filter name=^calico- --format '{{.Names}}'",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// A docker timestamp (RFC 3339, nanoseconds) as Unix seconds, read by the
/// agent's own `date`.
pub fn unix_time(agent_name: &str, rfc3339: &str) -> f64 {
    sh(agent_name, &format!("date -d '{rfc3339}' +%s.%N"))
        .trim()
        .parse()
        .unwrap()
}

/// GET on the real etcd server itself (not through any gateway), v2 API.
pub fn etcd_server_get(key: &str) -> Option<Value> {
    let out = docker_exec(
        ETCD_CONTAINER,
        &format!("curl -fsS http://127.0.0.1:2379/v2/keys/{key}"),
    );
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("etcd answers JSON"))
}

pub fn etcd_server_delete_dir(key: &str) {
    // 404 (not there) is fine.
    docker_exec(
        ETCD_CONTAINER,
        &format!("curl -sS -X DELETE 'http://127.0.0.1:2379/v2/keys/{key}?recursive=true'"),
    );
}
