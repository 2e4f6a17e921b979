//! What both test worlds share (the fake cluster in tests/common, the real
//! agents in tests/real): taking a world for one test, running the real
//! binary and reading its report, and reaching into an agent's container.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
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

/// A test world: its agents, the script that brings it up (cached, quick
/// when it already runs) and the command that puts an agent back as it
/// booted.
pub struct World {
    pub agents: &'static [Agent],
    pub up: &'static str,
    pub reset: &'static str,
    /// Its SSH key and known_hosts, under the repository.
    pub state: &'static str,
    /// Each cluster store's container and the command there that forgets
    /// every node Calico registered: a reset agent is a fresh DC/OS agent,
    /// and a registration left behind would be a mesh peer whose BGP never
    /// answers.
    pub store_reset: &'static [(&'static str, &'static str)],
}

/// Deletes Calico's whole tree from a v2 store on its own loopback (404,
/// nothing there, is fine).
pub const FORGET_CALICO: &str =
    "curl -sS -o /dev/null -X DELETE 'http://127.0.0.1:2379/v2/keys/calico?recursive=true'";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl World {
    pub fn state_dir(&self) -> PathBuf {
        repo().join(self.state)
    }

    /// Exclusive use of the world for one test, every agent freshly reset.
    /// `lock` and `up` are the world's own statics: tests of one binary run
    /// one at a time on it, and it is brought up once.
    pub fn take(&self, lock: &'static Mutex<()>, up: &'static OnceLock<()>) -> Cluster {
        let guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Test binaries that share a world (two `cargo test --test …` at
        // once) take it one at a time too.
        std::fs::create_dir_all(self.state_dir()).expect("state dir");
        let held = std::fs::File::create(self.state_dir().join("tests.lock")).expect("lock file");
        held.lock().expect("lock the world");
        up.get_or_init(|| {
            let status = Command::new(repo().join(self.up))
                .status()
                .unwrap_or_else(|e| panic!("run {}: {e}", self.up));
            assert!(
                status.success(),
                "{} failed: the agents are not up",
                self.up
            );
        });
        std::thread::scope(|s| {
            for a in self.agents {
                s.spawn(move || sh_in(a.container, self.reset));
            }
        });
        for (container, script) in self.store_reset {
            sh_in(container, script);
        }
        Cluster {
            _lock: guard,
            _held: held,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The inventory both worlds start from, as JSON (which is YAML) for a
    /// test to edit: every agent, strict host keys, the gateway, the
    /// repository's small plugins and calico/node. Each world adds its
    /// `rollout` section.
    pub fn inventory(&self) -> Value {
        let state = self.state_dir();
        let bin = repo().join("inventories/bin");
        let agents: Vec<Value> = self
            .agents
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
            "agents": agents,
        })
    }
}

/// A world held by one test, with a temporary folder for its files.
pub struct Cluster {
    _lock: MutexGuard<'static, ()>,
    /// The world's lock among test binaries, released when the file closes.
    _held: std::fs::File,
    pub dir: tempfile::TempDir,
}

impl Cluster {
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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

pub fn run_binary(command: &str, inventory: &Path, extra: &[&str]) -> Run {
    finish(
        spawn_binary(command, inventory, extra),
        &format!("calico-rollout {command}"),
    )
}

/// One run's exit code and output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` object: the run, its inventory, why it halted, and
    /// `hosts`.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", self.stdout))
    }

    /// The report's hosts, each with its steps.
    pub fn hosts(&self) -> Vec<Value> {
        self.json()["hosts"]
            .as_array()
            .unwrap_or_else(|| panic!("--json output has no hosts:\n{}", self.stdout))
            .clone()
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

    /// What plan says the step's change does (`[]` when it says nothing).
    pub fn diff(&self, host: &str, step: &str) -> Value {
        let cell = self.cell(host, step);
        cell.get("diff").cloned().unwrap_or_else(|| json!([]))
    }

    fn cell(&self, host: &str, step: &str) -> Value {
        let h = self
            .hosts()
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
        for h in &self.hosts() {
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

pub fn docker_exec(container: &str, script: &str) -> Output {
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

/// A file's bytes in a container, or `None` when it does not exist.
pub fn read_in(container: &str, path: &str) -> Option<Vec<u8>> {
    let out = Command::new("docker")
        .args(["exec", container, "cat", "--", path])
        .output()
        .expect("docker exec");
    out.status.success().then_some(out.stdout)
}

/// The `docker inspect` view of a container in an agent container's dockerd.
pub fn container_in(container: &str, name: &str) -> Option<Value> {
    let out = Command::new("docker")
        .args([
            "exec",
            container,
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

/// The containers calico-rollout retired in place of `name`
/// (`<name>-previous-<run id>`), as `docker inspect` shows them.
pub fn retired_in(container: &str, name: &str) -> Vec<Value> {
    sh_in(container, "docker ps -a --format '{{.Names}}'")
        .lines()
        .filter(|n| n.starts_with(&format!("{name}-previous-")))
        .filter_map(|n| container_in(container, n))
        .collect()
}
