//! The real agent profile, as its tests see it: two DC/OS agents with
//! systemd as PID 1 and the real dockerd 20.10 (docker-compose.real.yml,
//! testenv/README.md "The real agent profile"). Bring them up once, reset
//! both before each test, run the real binary, then ask the real daemons:
//! systemd's own properties and journal, `docker info`, `docker inspect`,
//! the bytes on disk and the etcd server.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Agent {
    pub name: &'static str,
    pub container: &'static str,
    pub port: u16,
    pub user: &'static str,
    pub public: bool,
}

impl Agent {
    pub fn mesos_unit(&self) -> &'static str {
        if self.public {
            "dcos-mesos-slave-public"
        } else {
            "dcos-mesos-slave"
        }
    }

    pub fn mesos_port(&self) -> u16 {
        if self.public { 5052 } else { 5051 }
    }
}

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

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn state_dir() -> PathBuf {
    repo().join("testenv/.state/real")
}

/// Exclusive use of the real agents, both freshly reset.
pub struct Cluster {
    _lock: MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
}

/// Takes the real agents for one test: brings them up the first time
/// (quick when they already run), then puts both back as they booted.
pub fn cluster() -> Cluster {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    UP.get_or_init(|| {
        let status = Command::new(repo().join("testenv/real/up.sh"))
            .status()
            .expect("run testenv/real/up.sh");
        assert!(
            status.success(),
            "testenv/real/up.sh failed: the real agents are not up"
        );
    });
    std::thread::scope(|s| {
        for a in &AGENTS {
            s.spawn(move || sh(a.name, "real-agent-reset"));
        }
    });
    Cluster {
        _lock: lock,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Cluster {
    /// An inventory of both real agents with absolute paths, as JSON (which
    /// is YAML) for a test to edit. It uses the container templates of
    /// testenv/real/templates (no --privileged) and restarts one agent at a
    /// time.
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
            "rollout": {
                "batch": 1,
                "canary": 0,
                "max_failures": 0,
                "health_timeout": "30s",
                "min_healthy": format!("{}s", MIN_HEALTHY.as_secs()),
            },
            "templates": self.templates_dir(),
            "agents": agents,
        })
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

    /// Runs calico-rollout with `--json` on the given inventory. Its
    /// progress and table are printed: a failing test shows the operator's view.
    pub fn run(&self, command: &str, inv: &Value, extra: &[&str]) -> Run {
        let path = self.dir.path().join("cluster.yaml");
        std::fs::write(&path, serde_json::to_string_pretty(inv).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_calico-rollout"))
            .arg(command)
            .arg("-i")
            .arg(&path)
            .arg("--json")
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run calico-rollout");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "--- calico-rollout {command} (exit {})\n{}",
            run.code, run.stderr
        );
        run
    }
}

/// One run's exit code and output (as in tests/common).
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

    /// The status of one host's step, e.g. `status("real-1", "docker")`.
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

/// Polls `ready` until it holds; panics with `what` after `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn docker_exec(container: &str, script: &str) -> Output {
    Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("docker exec")
}

/// Runs a shell command as root inside a container; panics with its output
/// when it fails.
pub fn sh_in(container: &str, script: &str) -> String {
    let out = docker_exec(container, script);
    assert!(
        out.status.success(),
        "in {container}: `{script}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    let out = Command::new("docker")
        .args(["exec", agent(agent_name).container, "cat", "--", path])
        .output()
        .expect("docker exec");
    out.status.success().then_some(out.stdout)
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
    let out = Command::new("docker")
        .args([
            "exec",
            agent(agent_name).container,
            "docker",
            "inspect",
            "--type",
            "container",
            "--",
            name,
        ])
        .output()
        .expect("docker exec");
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list.as_array()?.first().cloned()
}

/// The retired copies of a container (`<name>-previous-<run id>`), as
/// `docker inspect` shows them.
pub fn retired(agent_name: &str, name: &str) -> Vec<Value> {
    calico_containers(agent_name)
        .into_iter()
        .filter(|n| n.starts_with(&format!("{name}-previous-")))
        .filter_map(|n| container(agent_name, &n))
        .collect()
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
