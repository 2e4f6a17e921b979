//! Facts: what one agent looks like right now, read in a single round trip.
//!
//! The probe is one shell script that runs every check a step needs and
//! prints one line per check, `KEY EXIT BASE64`, so that no output can be
//! mistaken for another's.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::desired::{self, Desired};
use crate::inventory::Role;
use crate::shell::Cmd;
use crate::steps::rollback::{self, UndoRecord};

/// The exit code the probe uses when it is not running as root.
const NOT_ROOT: u32 = 97;

#[derive(Debug, Clone)]
pub struct Facts {
    /// `dockerd --version`, parsed; `Err` carries why it could not be read.
    pub docker_version: Result<Version, String>,
    /// `Err` with Docker's message when the daemon does not answer.
    pub docker_answering: Result<(), String>,
    /// Unit name → its unit file text, for units that exist.
    pub unit_files: BTreeMap<String, String>,
    /// Unit name → `systemctl is-active` word.
    pub active: BTreeMap<String, String>,
    /// Unit name → `systemctl is-enabled` word.
    pub enabled: BTreeMap<String, String>,
    /// Remote path → sha256 of the files that exist.
    pub hashes: BTreeMap<String, String>,
    /// The agent's daemon.json, when it exists.
    pub daemon_json: Option<Vec<u8>>,
    pub containers: BTreeMap<String, Container>,
    /// Hashes already uploaded to the stage area.
    pub staged: BTreeSet<String>,
    /// Units whose restart an earlier run started but did not finish.
    pub pending: BTreeSet<String>,
    pub etcd_binary_ok: bool,
    /// What the last apply that changed this host recorded as its undo.
    pub undo: Option<UndoRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Reads `Docker version 20.10.24+dfsg1, build 297e128`.
    pub fn parse_docker(text: &str) -> Option<Version> {
        let rest = text.trim().strip_prefix("Docker version ")?;
        let ver = rest.split([',', ' ', '+', '-', '~']).next()?;
        let mut parts = ver.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next().unwrap_or(Ok(0)).ok()?;
        let patch = parts.next().unwrap_or(Ok(0)).ok()?;
        Some(Version(major, minor, patch))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub image: String,
    pub running: bool,
    pub spec_hash: Option<String>,
}

/// Why a host could not be probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    NotRoot(String),
    Failed(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::NotRoot(why) => write!(f, "no root privileges: {why}"),
            ProbeError::Failed(why) => write!(f, "probing the agent failed: {why}"),
        }
    }
}

/// Every unit any step looks at.
/// Both Mesos units are probed so that a role mismatch in the inventory can
/// be named, instead of reported as a missing unit.
const UNITS: [&str; 4] = [
    desired::ETCD_PROXY_UNIT,
    desired::DOCKER_UNIT,
    Role::Private.mesos_unit(),
    Role::Public.mesos_unit(),
];

/// Builds the probe script for one agent.
pub fn probe_script(want: &Desired) -> String {
    let mut files: Vec<String> = Vec::new();
    if let Some(p) = &want.etcd_proxy {
        files.push(p.unit_file.path.to_string());
    }
    if let Some(c) = &want.cni {
        files.extend(c.binaries.iter().map(|b| b.path.to_string()));
        files.push(c.config.path.to_string());
    }
    for c in [&want.libnetwork, &want.node].into_iter().flatten() {
        files.push(c.env_file.path.to_string());
    }
    let etcd_binary = want
        .etcd_proxy
        .as_ref()
        .map(|p| p.binary.to_string())
        .unwrap_or_else(|| "/usr/bin/etcd".into());

    let mut s = String::new();
    s.push_str(&format!(
        "[ \"$(id -u)\" = 0 ] || {{ echo 'not running as root: set ssh.become: true (sudo -n), or log in as root' >&2; exit {NOT_ROOT}; }}\n"
    ));
    // p: stdout and stderr together; q: stdout only.
    s.push_str("p() { k=$1; shift; o=$(\"$@\" 2>&1); r=$?; printf '%s %s %s\\n' \"$k\" \"$r\" \"$(printf '%s' \"$o\" | base64 | tr -d '\\n')\"; }\n");
    s.push_str("q() { k=$1; shift; o=$(\"$@\" 2>/dev/null); r=$?; printf '%s %s %s\\n' \"$k\" \"$r\" \"$(printf '%s' \"$o\" | base64 | tr -d '\\n')\"; }\n");
    let mut line = |key: &str, cmd: Cmd| s.push_str(&format!("{key} {cmd}\n"));
    line("p docker_version", Cmd::new("dockerd").arg("--version"));
    line(
        "p docker_answering",
        Cmd::new("docker")
            .arg("version")
            .arg("--format")
            .arg("{{.Server.Version}}"),
    );
    for unit in UNITS {
        line(
            &format!("q unit:{unit}"),
            Cmd::new("systemctl")
                .arg("cat")
                .arg("--")
                .arg(format!("{unit}.service")),
        );
    }
    // One line per unit, in order, unknown units included ("inactive").
    line(
        "q active",
        Cmd::new("systemctl").arg("is-active").arg("--").args(UNITS),
    );
    // Only the gateway's unit is enabled by a step.
    line(
        &format!("q enabled:{}", desired::ETCD_PROXY_UNIT),
        Cmd::new("systemctl")
            .arg("is-enabled")
            .arg("--")
            .arg(desired::ETCD_PROXY_UNIT),
    );
    if !files.is_empty() {
        line("q hashes", Cmd::new("sha256sum").arg("--").args(&files));
    }
    line(
        "p daemon_json_exists",
        Cmd::new("test").arg("-e").arg(desired::DAEMON_JSON_PATH),
    );
    line(
        "q daemon_json",
        Cmd::new("cat").arg("--").arg(desired::DAEMON_JSON_PATH),
    );
    line(
        "q containers",
        Cmd::new("docker")
            .arg("inspect")
            .arg("--type")
            .arg("container")
            .arg("--")
            .arg(desired::LIBNETWORK_CONTAINER)
            .arg(desired::NODE_CONTAINER),
    );
    line(
        "q staged",
        Cmd::new("ls")
            .arg("-1")
            .arg("--")
            .arg(format!("{}/stage", desired::STATE_DIR)),
    );
    line(
        "q pending",
        Cmd::new("ls")
            .arg("-1")
            .arg("--")
            .arg(format!("{}/pending", desired::STATE_DIR)),
    );
    line(
        "p etcd_binary",
        Cmd::new("test").arg("-x").arg(&etcd_binary),
    );
    line(
        "q undo",
        Cmd::new("cat").arg("--").arg(rollback::record_path()),
    );
    s
}

/// One probe line: exit code and decoded output.
struct Probe {
    code: u32,
    out: Vec<u8>,
}

/// Parses the probe's output. `exit` and `stderr` are the probe command's own.
pub fn parse(exit: Option<u32>, stdout: &[u8], stderr: &[u8]) -> Result<Facts, ProbeError> {
    let stderr_text = String::from_utf8_lossy(stderr).trim().to_string();
    if exit == Some(NOT_ROOT) {
        return Err(ProbeError::NotRoot(stderr_text));
    }
    if exit != Some(0) {
        return Err(if stderr_text.starts_with("sudo") {
            ProbeError::NotRoot(format!("sudo -n failed: {stderr_text}"))
        } else if stderr_text.is_empty() {
            ProbeError::Failed(format!("probe ended without success ({exit:?})"))
        } else {
            ProbeError::Failed(stderr_text)
        });
    }
    let mut probes: BTreeMap<String, Probe> = BTreeMap::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(key), Some(code), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(code) = code.parse() else { continue };
        let out = base64_decode(b64)
            .ok_or_else(|| ProbeError::Failed(format!("garbled probe output for {key}")))?;
        probes.insert(key.to_string(), Probe { code, out });
    }
    let get = |key: &str| -> Result<&Probe, ProbeError> {
        probes
            .get(key)
            .ok_or_else(|| ProbeError::Failed(format!("probe output lacks {key}")))
    };
    let text = |p: &Probe| String::from_utf8_lossy(&p.out).trim().to_string();

    let dv = get("docker_version")?;
    let docker_version = if dv.code == 0 {
        Version::parse_docker(&text(dv))
            .ok_or_else(|| format!("cannot read the Docker version from {:?}", text(dv)))
    } else {
        Err(format!("dockerd --version failed: {}", text(dv)))
    };
    let da = get("docker_answering")?;
    let docker_answering = if da.code == 0 { Ok(()) } else { Err(text(da)) };

    let mut unit_files = BTreeMap::new();
    let mut active = BTreeMap::new();
    let mut enabled = BTreeMap::new();
    for (key, probe) in &probes {
        if let Some(unit) = key.strip_prefix("unit:") {
            if probe.code == 0 {
                unit_files.insert(unit.to_string(), text(probe));
            }
        } else if let Some(unit) = key.strip_prefix("enabled:") {
            enabled.insert(unit.to_string(), text(probe));
        }
    }

    let states = String::from_utf8_lossy(&get("active")?.out).into_owned();
    for (unit, state) in UNITS.iter().zip(states.lines()) {
        active.insert(unit.to_string(), state.trim().to_string());
    }

    let mut hashes = BTreeMap::new();
    if let Some(h) = probes.get("hashes") {
        for l in String::from_utf8_lossy(&h.out).lines() {
            if let Some((sha, path)) = l.split_once("  ")
                && sha.len() == 64
                && sha.bytes().all(|b| b.is_ascii_hexdigit())
            {
                hashes.insert(path.to_string(), sha.to_string());
            }
        }
    }

    let daemon_json = if get("daemon_json_exists")?.code == 0 {
        let dj = get("daemon_json")?;
        if dj.code != 0 {
            return Err(ProbeError::Failed(format!(
                "{} exists but cannot be read",
                desired::DAEMON_JSON_PATH
            )));
        }
        Some(dj.out.clone())
    } else {
        None
    };

    let lines = |p: &Probe| -> BTreeSet<String> {
        String::from_utf8_lossy(&p.out)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(Facts {
        docker_version,
        docker_answering,
        unit_files,
        active,
        enabled,
        hashes,
        daemon_json,
        containers: parse_containers(&get("containers")?.out),
        staged: lines(get("staged")?),
        pending: lines(get("pending")?),
        etcd_binary_ok: get("etcd_binary")?.code == 0,
        undo: match get("undo")? {
            p if p.code != 0 => None,
            p => Some(serde_json::from_slice(&p.out).map_err(|e| {
                ProbeError::Failed(format!(
                    "the undo record {} is unreadable ({e})",
                    rollback::record_path()
                ))
            })?),
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectEntry {
    name: String,
    config: InspectConfig,
    state: InspectState,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    running: bool,
}

/// `docker inspect` prints a JSON array of the containers that exist (and
/// `[]` plus an error for the ones that don't).
fn parse_containers(out: &[u8]) -> BTreeMap<String, Container> {
    let entries: Vec<InspectEntry> = serde_json::from_slice(out).unwrap_or_default();
    entries
        .into_iter()
        .map(|e| {
            let spec_hash = e
                .config
                .labels
                .and_then(|mut l| l.remove(desired::SPEC_LABEL));
            (
                e.name.trim_start_matches('/').to_string(),
                Container {
                    image: e.config.image,
                    running: e.state.running,
                    spec_hash,
                },
            )
        })
        .collect()
}

pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::testing::desired;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// Runs the real probe script under sh, with stand-ins for the agent's
    /// programs first on PATH, and parses what it printed.
    fn probe_with(stubs: &[(&str, &str)]) -> Result<Facts, ProbeError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in stubs {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(probe_script(&desired()))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .output()
            .unwrap();
        parse(
            out.status.code().map(|c| c as u32),
            &out.stdout,
            &out.stderr,
        )
    }

    const AGENT: [(&str, &str); 5] = [
        ("id", "echo 0"),
        (
            "dockerd",
            "echo 'Docker version 20.10.24+dfsg1, build 297e128'",
        ),
        (
            "docker",
            r#"case "$1" in version) echo 20.10.24 ;; inspect) echo '[{"Name": "/calico-node", "Config": {"Image": "calico/node:v2.6.11", "Labels": {"org.projectcalico.rollout.spec": "abc"}}, "State": {"Running": true}}]'; exit 1 ;; esac"#,
        ),
        (
            "systemctl",
            r#"case "$1" in
  cat) case "$3" in docker.service|dcos-mesos-slave.service) echo "[Service]" ;; *) echo "No files found for $3." >&2; exit 1 ;; esac ;;
  is-active) echo active; echo active; echo activating; echo inactive; exit 3 ;;
  is-enabled) echo disabled; exit 1 ;;
esac"#,
        ),
        (
            "cat",
            r#"[ "$2" = /etc/docker/daemon.json ] && echo '{"debug": true}' || exit 1"#,
        ),
    ];

    #[test]
    fn the_probe_reads_an_agent_in_one_script() {
        let facts = probe_with(&AGENT).unwrap();
        assert_eq!(facts.docker_version, Ok(Version(20, 10, 24)));
        assert_eq!(facts.docker_answering, Ok(()));
        let units: Vec<&String> = facts.unit_files.keys().collect();
        assert_eq!(units, ["dcos-mesos-slave", "docker"]);
        assert_eq!(facts.active["calico-etcd-proxy"], "active");
        assert_eq!(facts.active["dcos-mesos-slave"], "activating");
        assert_eq!(facts.active["dcos-mesos-slave-public"], "inactive");
        assert_eq!(facts.enabled["calico-etcd-proxy"], "disabled");
        // `test` is a shell builtin: existence checks see this machine's files.
        let daemon_json = std::path::Path::new("/etc/docker/daemon.json").exists();
        assert_eq!(
            facts.daemon_json.as_deref(),
            daemon_json.then_some(&b"{\"debug\": true}"[..])
        );
        let node = &facts.containers["calico-node"];
        assert_eq!(node.image, "calico/node:v2.6.11");
        assert_eq!(node.spec_hash.as_deref(), Some("abc"));
        let etcd = Command::new("sh")
            .args(["-c", "test -x /usr/bin/etcd"])
            .status();
        assert_eq!(facts.etcd_binary_ok, etcd.unwrap().success());
        assert!(facts.hashes.is_empty() && facts.staged.is_empty() && facts.undo.is_none());
    }

    #[test]
    fn the_probe_refuses_without_root() {
        let mut agent = AGENT.to_vec();
        agent[0] = ("id", "echo 1000");
        match probe_with(&agent) {
            Err(ProbeError::NotRoot(why)) => assert!(why.contains("become"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_table() {
        let sudo = parse(Some(1), b"", b"sudo: a password is required\n");
        assert_eq!(
            sudo.unwrap_err(),
            ProbeError::NotRoot("sudo -n failed: sudo: a password is required".into())
        );
        let lost = parse(None, b"", b"");
        assert!(matches!(lost, Err(ProbeError::Failed(_))), "{lost:?}");
        let garbled = parse(Some(0), b"docker_version 0 !!!\n", b"");
        assert!(matches!(garbled, Err(ProbeError::Failed(why)) if why.contains("garbled")));
        let short = parse(Some(0), b"docker_version 0 \n", b"");
        assert!(matches!(short, Err(ProbeError::Failed(why)) if why.contains("lacks")));
    }

    #[test]
    fn docker_versions() {
        let cases = [
            (
                "Docker version 20.10.24+dfsg1, build 297e128",
                Some(Version(20, 10, 24)),
            ),
            (
                "Docker version 24.0.7, build afdd53b",
                Some(Version(24, 0, 7)),
            ),
            ("Docker version 1.13.1", Some(Version(1, 13, 1))),
            ("dockerd: command not found", None),
        ];
        for (text, want) in cases {
            assert_eq!(Version::parse_docker(text), want, "{text}");
        }
    }
}
