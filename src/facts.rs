//! Facts: what one agent looks like right now, parsed from the probe's
//! output (the probe itself is `remote::probe`).
//!
//! The probe prints one line per check, `KEY EXIT BASE64`, so that no
//! output can be mistaken for another's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;

use crate::desired;
use crate::history::History;

/// The exit code the probe uses when it is not running as root.
pub const NOT_ROOT: u32 = 97;

/// Every unit any step looks at. Both Mesos units are probed so that a
/// role mismatch in the inventory can be named, instead of reported as a
/// missing unit.
pub const UNITS: [&str; 4] = [
    desired::ETCD_PROXY_UNIT,
    desired::DOCKER_UNIT,
    "dcos-mesos-slave",
    "dcos-mesos-slave-public",
];

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
    /// The images docker already has, normalised (`docker.io/` and
    /// `library/` dropped, `:latest` added).
    pub images: BTreeSet<String>,
    /// Hashes already uploaded to the stage area.
    pub staged: BTreeSet<String>,
    /// Units whose restart an earlier run made necessary but did not finish.
    pub pending: BTreeSet<String>,
    pub etcd_binary_ok: bool,
    /// The address Mesos listens on, as DC/OS's `detect_ip` prints it.
    pub mesos_ip: Option<String>,
    /// What earlier applies changed here, and how far it was taken back.
    pub history: History,
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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    pub id: String,
    pub image: String,
    pub running: bool,
    /// Docker is waiting to restart it: it crashed.
    pub restarting: bool,
    pub policy: String,
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

/// An image reference as docker lists it among its `RepoTags`.
pub fn normalize_image(reference: &str) -> String {
    let mut r = reference.trim();
    r = r.strip_prefix("docker.io/").unwrap_or(r);
    r = r.strip_prefix("library/").unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || last.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
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
    let mesos_ip = match probes.get("mesos_ip") {
        Some(p) if p.code == 0 => {
            let ip = text(p);
            ip.parse::<IpAddr>().is_ok().then_some(ip)
        }
        _ => None,
    };
    let history = History::parse(&text(get("history")?), base64_decode)
        .map_err(|e| ProbeError::Failed(format!("the run history on the agent: {e}")))?;
    Ok(Facts {
        docker_version,
        docker_answering,
        unit_files,
        active,
        enabled,
        hashes,
        daemon_json,
        containers: parse_containers(&get("containers")?.out),
        images: parse_images(&get("images")?.out),
        staged: lines(get("staged")?),
        pending: lines(get("pending")?),
        etcd_binary_ok: get("etcd_binary")?.code == 0,
        mesos_ip,
        history,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectEntry {
    id: String,
    name: String,
    config: InspectConfig,
    state: InspectState,
    host_config: InspectHostConfig,
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
    #[serde(default)]
    restarting: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHostConfig {
    restart_policy: InspectPolicy,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectPolicy {
    name: String,
}

/// `docker inspect` prints a JSON array of the containers that exist (and
/// an error for the ones that don't).
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
                    id: e.id,
                    image: e.config.image,
                    running: e.state.running,
                    restarting: e.state.restarting,
                    policy: e.host_config.restart_policy.name,
                    spec_hash,
                },
            )
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImageEntry {
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

/// `docker image inspect` of the images the host will run: the ones it has.
fn parse_images(out: &[u8]) -> BTreeSet<String> {
    let entries: Vec<ImageEntry> = serde_json::from_slice(out).unwrap_or_default();
    entries
        .into_iter()
        .flat_map(|e| e.repo_tags.unwrap_or_default())
        .map(|t| normalize_image(&t))
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

    #[test]
    fn image_references_compare_as_docker_lists_them() {
        let cases = [
            ("calico/node:v2.6.12", "calico/node:v2.6.12"),
            ("docker.io/calico/node:v2.6.12", "calico/node:v2.6.12"),
            ("busybox", "busybox:latest"),
            ("docker.io/library/busybox", "busybox:latest"),
            (
                "registry:5000/calico/node",
                "registry:5000/calico/node:latest",
            ),
            ("quay.io/calico/node:v3", "quay.io/calico/node:v3"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_image(input), want, "{input}");
        }
        let found = parse_images(
            br#"[{"RepoTags": ["calico/node:v2.6.12", "docker.io/calico/node:latest"]}, {"RepoTags": null}]"#,
        );
        assert!(found.contains("calico/node:v2.6.12"));
        assert!(found.contains("calico/node:latest"));
    }

    #[test]
    fn containers_carry_what_a_replacement_needs() {
        let out = br#"[{"Id": "abc", "Name": "/calico-node", "Config": {"Image": "calico/node:v1", "Labels": {"org.projectcalico.rollout.spec": "s1"}},
            "State": {"Running": true, "Restarting": true}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}]"#;
        let c = &parse_containers(out)["calico-node"];
        assert_eq!(
            c,
            &Container {
                id: "abc".into(),
                image: "calico/node:v1".into(),
                running: true,
                restarting: true,
                policy: "always".into(),
                spec_hash: Some("s1".into()),
            }
        );
    }
}
