//! The fake DC/OS cluster, as the integration tests see it: bring it up
//! once, reset every agent before each test, run the real binary against
//! it, and read what landed on the agents.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::{Value, json};

pub struct Agent {
    pub name: &'static str,
    pub container: &'static str,
    pub port: u16,
    pub user: &'static str,
    pub public: bool,
}

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

pub const ETCD_CONTAINER: &str = "calico-rollout-test-etcd";
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const CNI_CONFIG: &str = "/opt/mesosphere/etc/dcos/network/cni/calico.cni";
pub const PLUGIN_DIR: &str = "/opt/mesosphere/active/cni";

pub fn agent(name: &str) -> &'static Agent {
    AGENTS.iter().find(|a| a.name == name).expect("known agent")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn state_dir() -> PathBuf {
    repo().join("testenv/.state")
}

/// Exclusive use of the cluster, with every agent freshly reset.
pub struct Cluster {
    _lock: MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
}

/// Takes the cluster for one test: brings it up the first time (quick when
/// it already runs), then resets every agent to a pristine DC/OS agent.
pub fn cluster() -> Cluster {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    UP.get_or_init(|| {
        let status = Command::new(repo().join("testenv/up.sh"))
            .status()
            .expect("run testenv/up.sh");
        assert!(
            status.success(),
            "testenv/up.sh failed: the fake cluster is not up"
        );
    });
    std::thread::scope(|s| {
        for a in &AGENTS {
            s.spawn(move || exec(a.name, "fake-agent-reset"));
        }
    });
    Cluster {
        _lock: lock,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Cluster {
    /// The demo inventory's content with absolute paths, as a JSON value
    /// (JSON is YAML) that a test can edit before writing it.
    pub fn inventory(&self) -> Value {
        let state = state_dir();
        let bin = repo().join("inventories/bin");
        let agents: Vec<Value> = AGENTS
            .iter()
            .map(|a| {
                let mut v =
                    json!({"name": a.name, "address": "127.0.0.1", "port": a.port, "user": a.user});
                if a.public {
                    v["role"] = json!("public");
                }
                v
            })
            .collect();
        json!({
            "ssh": {
                "identity_file": state.join("id_ed25519"),
                "known_hosts": state.join("known_hosts"),
                "host_key_checking": "strict",
                "become": true,
                "connect_timeout": "10s",
            },
            "etcd": {"endpoints": ["http://etcd:2379"], "proxy": true},
            "cni": {"binaries": {"calico": bin.join("calico"), "calico-ipam": bin.join("calico-ipam")}},
            "node": {"image": "calico/node:v2.6.12", "env": {"CALICO_NETWORKING_BACKEND": "bird"}},
            "rollout": {"batch": 2, "canary": 0, "max_failures": 0, "health_timeout": "20s", "min_healthy": "2s"},
            "agents": agents,
        })
    }

    /// Writes an operator template into a `templates/` folder and points
    /// the inventory at it.
    pub fn template(&self, inv: &mut Value, name: &str, text: &str) {
        let dir = self.dir.path().join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
        inv["templates"] = json!(dir);
    }

    pub fn write_inventory(&self, inv: &Value) -> PathBuf {
        let path = self.dir.path().join("cluster.yaml");
        std::fs::write(&path, serde_json::to_string_pretty(inv).unwrap()).unwrap();
        path
    }

    /// Runs calico-rollout with `--json` on the given inventory.
    pub fn run(&self, command: &str, inv: &Value, extra: &[&str]) -> Run {
        let path = self.write_inventory(inv);
        run_binary(command, &path, extra)
    }
}

/// Starts calico-rollout in the background (for signals and races).
pub fn spawn_binary(command: &str, inventory: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_calico-rollout"))
        .arg(command)
        .arg("-i")
        .arg(inventory)
        .arg("--json")
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start calico-rollout")
}

/// Waits for a run to end and collects its exit code and output. The
/// output is printed too: a failing test shows the operator's view.
pub fn finish(child: std::process::Child, what: &str) -> Run {
    let out = child.wait_with_output().expect("wait for calico-rollout");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("--- {what} (exit {})\n{}", run.code, run.stderr);
    run
}

/// Polls `ready` until it holds; panics with `what` after `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn run_binary(command: &str, inventory: &Path, extra: &[&str]) -> Run {
    finish(
        spawn_binary(command, inventory, extra),
        &format!("calico-rollout {command}"),
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", self.stdout))
    }

    /// The status of one host's step, e.g. `status("agent-1", "docker")`.
    pub fn status(&self, host: &str, step: &str) -> String {
        self.cell(host, step)["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn message(&self, host: &str, step: &str) -> String {
        self.cell(host, step)["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn cell(&self, host: &str, step: &str) -> Value {
        let report = self.json();
        let h = report
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .unwrap_or_else(|| panic!("{host} not in report"))
            .clone();
        h["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .unwrap_or_else(|| panic!("{host} has no step {step}"))
            .clone()
    }

    /// Every (host, step, status) cell of the report.
    pub fn cells(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for h in self.json().as_array().unwrap() {
            for s in h["steps"].as_array().unwrap() {
                out.push((
                    h["host"].as_str().unwrap().to_string(),
                    s["step"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                ));
            }
        }
        out
    }
}

/// Runs a shell command inside a container; panics with its output on failure.
pub fn exec_in(container: &str, script: &str) -> String {
    let out = Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("docker exec");
    assert!(
        out.status.success(),
        "in {container}: `{script}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn exec(agent_name: &str, script: &str) -> String {
    exec_in(agent(agent_name).container, script)
}

/// Asks the agent's Mesos for its health where it listens, as DC/OS says
/// (`detect_ip`); panics if it does not answer 200.
pub fn mesos_healthy(agent_name: &str) {
    let port = if agent(agent_name).public { 5052 } else { 5051 };
    exec(
        agent_name,
        &format!("curl -fsS -o /dev/null http://$(/opt/mesosphere/bin/detect_ip):{port}/health"),
    );
}

/// A file's bytes on an agent, or `None` when it does not exist.
pub fn read(agent_name: &str, path: &str) -> Option<Vec<u8>> {
    let out = Command::new("docker")
        .args(["exec", agent(agent_name).container, "cat", "--", path])
        .output()
        .expect("docker exec");
    out.status.success().then_some(out.stdout)
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
    let out = Command::new("docker")
        .args([
            "exec",
            agent(agent_name).container,
            "docker",
            "inspect",
            "--",
            name,
        ])
        .output()
        .expect("docker exec");
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list.as_array()?.first().cloned()
}

/// The containers calico-rollout retired on an agent in place of `name`
/// (`<name>-previous-<run>`), as `docker inspect` shows them.
pub fn retired(agent_name: &str, name: &str) -> Vec<Value> {
    let names = exec(agent_name, "docker ps -a --format '{{.Names}}'");
    names
        .lines()
        .filter(|n| n.starts_with(&format!("{name}-previous-")))
        .filter_map(|n| container(agent_name, n))
        .collect()
}

pub fn sha256_local(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
