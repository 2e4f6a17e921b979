//! Facts: what one agent looks like right now, parsed from the probe's
//! output (the probe itself is `remote::probe`).
//!
//! The probe prints one record per check: a line `KEY EXIT LENGTH`, then
//! exactly LENGTH bytes of output and a newline, so that no output can be
//! mistaken for another's and nothing needs encoding on the agent.

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

/// The probe's records of file contents are keyed by this and the path.
pub const TEXT_RECORD: &str = "text:";
/// The record that says the probe read the text files (there may be none).
pub const TEXTS_READ: &str = "texts";

#[derive(Debug, Clone)]
pub struct Facts {
    /// `dockerd --version`, parsed; `Err` carries why it could not be read.
    pub docker_version: Result<Version, String>,
    /// `Err` with Docker's message when the daemon does not answer.
    pub docker_answering: Result<(), String>,
    /// Every unit in [`UNITS`], as `systemctl show` describes it.
    pub units: BTreeMap<String, Unit>,
    /// Remote path → sha256 of the files that exist.
    pub hashes: BTreeMap<String, String>,
    /// The agent's daemon.json, when it exists.
    pub daemon_json: Option<Vec<u8>>,
    /// Remote path → bytes of the managed text files that exist; `None`
    /// unless the probe was asked for them (plan, to show diffs).
    pub texts: Option<BTreeMap<String, Vec<u8>>>,
    pub containers: BTreeMap<String, Container>,
    /// The images docker already has, normalised (`docker.io/` and
    /// `library/` dropped, `:latest` added).
    pub images: BTreeSet<String>,
    /// Hashes already uploaded to the stage area.
    pub staged: BTreeSet<String>,
    /// Units whose restart an earlier run made necessary but did not finish.
    pub pending: BTreeSet<String>,
    pub etcd_binary_ok: bool,
    /// With TLS behind the gateway: how each etcd member answered
    /// `https://127.0.0.1:2379/health` when reached from this agent.
    /// Empty when not checked.
    pub tls_loopback: Vec<LoopbackTls>,
    /// The address Mesos listens on, as DC/OS's `detect_ip` prints it.
    pub mesos_ip: Option<String>,
    /// What earlier applies changed here, and how far it was taken back.
    pub history: History,
    /// calico-node's BGP sessions as BIRD showed them, when they were
    /// read (calico-node is managed with BGP on); `Err` with why not
    /// (no calico-node running, no BIRD).
    pub bgp: Option<Result<Vec<crate::bgp::Session>, String>>,
}

/// One etcd member's answer to a TLS client that expects 127.0.0.1, as
/// every client behind the gateway does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackTls {
    /// `host:port` of the member.
    pub member: String,
    /// curl's exit status: 0 when the member's certificate holds for
    /// 127.0.0.1 and it answered.
    pub code: u32,
    /// curl's message when it failed, on one line.
    pub error: String,
}

/// Reads the loopback check's lines: `MEMBER CODE MESSAGE…`.
pub fn parse_tls_loopback(out: &[u8]) -> Vec<LoopbackTls> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let member = parts.next()?.to_string();
            let code = parts.next()?.parse().ok()?;
            let error = parts.next().unwrap_or_default().trim().to_string();
            (!member.is_empty()).then_some(LoopbackTls {
                member,
                code,
                error,
            })
        })
        .collect()
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
        Version::parse(text.trim().strip_prefix("Docker version ")?)
    }

    /// Reads `20.10.24+dfsg1`.
    fn parse(text: &str) -> Option<Version> {
        let ver = text.trim().split([',', ' ', '+', '-', '~']).next()?;
        let mut parts = ver.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next().unwrap_or(Ok(0)).ok()?;
        let patch = parts.next().unwrap_or(Ok(0)).ok()?;
        Some(Version(major, minor, patch))
    }
}

/// A systemd unit as `systemctl show` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    /// It has a unit file (`LoadState=loaded`).
    pub loaded: bool,
    /// `ActiveState`: active, activating, failed, inactive…
    pub active: String,
    /// `UnitFileState`: enabled, disabled, static…
    pub enabled: String,
    /// `ExecStart` as systemd shows it: `{ path=… ; argv[]=… ; … }`.
    pub exec_start: String,
}

impl Facts {
    /// What the agent's copy of a managed text file holds: `Some(None)`
    /// when it has none, `None` when the probe did not read it.
    pub fn text(&self, path: &str) -> Option<Option<&[u8]>> {
        match self.texts.as_ref()?.get(path) {
            Some(bytes) => Some(Some(bytes)),
            None if self.hashes.contains_key(path) => None,
            None => Some(None),
        }
    }

    pub fn unit(&self, name: &str) -> Unit {
        self.units.get(name).cloned().unwrap_or_default()
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
    /// The `docker run` options it was started with, when calico-rollout
    /// started it (they are recorded in a label).
    pub options: Option<Vec<String>>,
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

/// One probe record: exit code and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub code: u32,
    pub out: Vec<u8>,
}

impl Record {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).trim().to_string()
    }
}

/// Splits what the probe printed into its records, by key.
pub fn records(stdout: &[u8]) -> Result<BTreeMap<String, Record>, ProbeError> {
    let garbled = |why: &str| ProbeError::Failed(format!("garbled probe output: {why}"));
    let mut out = BTreeMap::new();
    let mut rest = stdout;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| garbled("a record without its header line"))?;
        let header = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut words = header.split(' ');
        let (Some(key), Some(code), Some(len), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(garbled(&format!("{header:?} is not a record header")));
        };
        let (Ok(code), Ok(len)) = (code.parse::<u32>(), len.parse::<usize>()) else {
            return Err(garbled(&format!("{header:?} is not a record header")));
        };
        let body = &rest[end + 1..];
        if body.len() < len + 1 || body[len] != b'\n' {
            return Err(garbled(&format!("the output of {key} is cut short")));
        }
        out.insert(
            key.to_string(),
            Record {
                code,
                out: body[..len].to_vec(),
            },
        );
        rest = &body[len + 1..];
    }
    Ok(out)
}

/// Why the probe script itself failed, from its exit status and stderr.
pub fn probe_failure(exit: Option<u32>, stderr: &[u8]) -> Option<ProbeError> {
    let stderr_text = String::from_utf8_lossy(stderr).trim().to_string();
    if exit == Some(NOT_ROOT) {
        return Some(ProbeError::NotRoot(stderr_text));
    }
    if exit == Some(0) {
        return None;
    }
    Some(if stderr_text.starts_with("sudo") {
        ProbeError::NotRoot(format!("sudo -n failed: {stderr_text}"))
    } else if stderr_text.is_empty() {
        ProbeError::Failed(format!("probe ended without success ({exit:?})"))
    } else {
        ProbeError::Failed(stderr_text)
    })
}

/// Parses the probe's output. `exit` and `stderr` are the probe command's own.
#[cfg(test)]
pub fn parse(exit: Option<u32>, stdout: &[u8], stderr: &[u8]) -> Result<Facts, ProbeError> {
    if let Some(e) = probe_failure(exit, stderr) {
        return Err(e);
    }
    from_records(&records(stdout)?)
}

/// The facts, from the probe's records.
pub fn from_records(probes: &BTreeMap<String, Record>) -> Result<Facts, ProbeError> {
    let get = |key: &str| -> Result<&Record, ProbeError> {
        probes
            .get(key)
            .ok_or_else(|| ProbeError::Failed(format!("probe output lacks {key}")))
    };

    let server = get("docker_server")?;
    let docker_answering = if server.code == 0 {
        Ok(())
    } else {
        Err(server.text())
    };
    // The binary's version: what the next restart of docker starts.
    let dv = get("dockerd_version")?;
    let docker_version = if dv.code == 0 {
        Version::parse_docker(&dv.text())
            .ok_or_else(|| format!("cannot read the Docker version from {:?}", dv.text()))
    } else {
        Err(format!("dockerd --version failed: {}", dv.text()))
    };

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

    let dj = get("daemon_json")?;
    let daemon_json = (dj.code == 0).then(|| dj.out.clone());

    let lines = |p: &Record| -> BTreeSet<String> {
        String::from_utf8_lossy(&p.out)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mesos_ip = match probes.get("mesos_ip") {
        Some(p) if p.code == 0 => {
            let ip = p.text();
            ip.parse::<IpAddr>().is_ok().then_some(ip)
        }
        _ => None,
    };
    let history = History::parse(&get("history")?.text())
        .map_err(|e| ProbeError::Failed(format!("the run history on the agent: {e}")))?;
    let inspected = &get("inspect")?.out;
    Ok(Facts {
        docker_version,
        docker_answering,
        units: parse_units(&get("units")?.out),
        hashes,
        daemon_json,
        texts: probes.contains_key(TEXTS_READ).then(|| {
            probes
                .iter()
                .filter_map(|(k, r)| Some((k.strip_prefix(TEXT_RECORD)?, r)))
                .filter(|(_, r)| r.code == 0)
                .map(|(path, r)| (path.to_string(), r.out.clone()))
                .collect()
        }),
        containers: parse_containers(inspected),
        images: probes
            .get("images")
            .map(|r| parse_images(&r.out))
            .unwrap_or_default(),
        staged: lines(get("staged")?),
        pending: lines(get("pending")?),
        etcd_binary_ok: get("etcd_binary")?.code == 0,
        tls_loopback: Vec::new(),
        mesos_ip,
        history,
        bgp: probes.get(BGP_RECORD).map(|r| {
            crate::bgp::parse(&String::from_utf8_lossy(&r.out))
                .map_err(|e| if r.code == 0 { e } else { r.text() })
        }),
    })
}

/// The probe's record of BIRD's sessions.
pub const BGP_RECORD: &str = "bgp";

/// `systemctl show` of several units: a block of `Key=Value` lines each,
/// separated by empty lines, keys in systemd's own order.
fn parse_units(out: &[u8]) -> BTreeMap<String, Unit> {
    let text = String::from_utf8_lossy(out);
    let mut units = BTreeMap::new();
    for block in text.split("\n\n") {
        let props: BTreeMap<&str, &str> = block.lines().filter_map(|l| l.split_once('=')).collect();
        let Some(id) = props.get("Id") else { continue };
        let name = id.strip_suffix(".service").unwrap_or(id);
        units.insert(
            name.to_string(),
            Unit {
                loaded: props.get("LoadState") == Some(&"loaded"),
                active: props.get("ActiveState").unwrap_or(&"").to_string(),
                enabled: props.get("UnitFileState").unwrap_or(&"").to_string(),
                exec_start: props.get("ExecStart").unwrap_or(&"").to_string(),
            },
        );
    }
    units
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

/// `docker inspect` of the containers and images together prints one JSON
/// array with those that exist (and an error for the others): containers
/// are the objects with a `State`.
fn parse_containers(out: &[u8]) -> BTreeMap<String, Container> {
    let all: Vec<serde_json::Value> = serde_json::from_slice(out).unwrap_or_default();
    all.into_iter()
        .filter(|v| v.get("State").is_some())
        .filter_map(|v| serde_json::from_value::<InspectEntry>(v).ok())
        .map(|e| {
            let mut labels = e.config.labels.unwrap_or_default();
            let spec_hash = labels.remove(desired::SPEC_LABEL);
            let options = labels
                .remove(desired::OPTIONS_LABEL)
                .and_then(|o| serde_json::from_str(&o).ok());
            (
                e.name.trim_start_matches('/').to_string(),
                Container {
                    id: e.id,
                    image: e.config.image,
                    running: e.state.running,
                    restarting: e.state.restarting,
                    policy: e.host_config.restart_policy.name,
                    spec_hash,
                    options,
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

/// The images among what `docker inspect` found: the objects with `RepoTags`.
fn parse_images(out: &[u8]) -> BTreeSet<String> {
    let all: Vec<serde_json::Value> = serde_json::from_slice(out).unwrap_or_default();
    all.into_iter()
        .filter(|v| v.get("State").is_none())
        .filter_map(|v| serde_json::from_value::<ImageEntry>(v).ok())
        .flat_map(|e| e.repo_tags.unwrap_or_default())
        .map(|t| normalize_image(&t))
        .collect()
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
        let garbled = parse(Some(0), b"docker_server 0 99\nshort\n", b"");
        assert!(matches!(garbled, Err(ProbeError::Failed(why)) if why.contains("cut short")));
        let short = parse(Some(0), b"docker_server 0 8\n20.10.24\n", b"");
        assert!(matches!(short, Err(ProbeError::Failed(why)) if why.contains("lacks")));
    }

    #[test]
    fn records_carry_any_bytes() {
        let out = b"a 0 3\nx\ny\nb 1 0\n\nc 0 2\n\n\n\n";
        let r = records(out).unwrap();
        assert_eq!(r["a"].out, b"x\ny");
        assert_eq!((r["b"].code, r["b"].out.len()), (1, 0));
        assert_eq!(r["c"].out, b"\n\n");
        assert!(records(b"a 0 3\nxy").is_err());
        assert!(records(b"not a header\n").is_err());
    }

    #[test]
    fn units_are_read_from_one_systemctl_show() {
        let out = b"ExecStart={ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// ; ignore_errors=no }\n\
Id=docker.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n\n\
Id=dcos-mesos-slave-public.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n";
        let units = parse_units(out);
        let docker = &units["docker"];
        assert!(docker.loaded && docker.active == "active" && docker.enabled == "enabled");
        assert!(docker.exec_start.contains("-H fd://"));
        assert!(!units["dcos-mesos-slave-public"].loaded);
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
            br#"[{"RepoTags": ["calico/node:v2.6.12", "docker.io/calico/node:latest"]}, {"RepoTags": null},
                 {"Id": "c", "Name": "/x", "State": {"Running": true}, "Config": {"Image": "y"}, "HostConfig": {"RestartPolicy": {"Name": "no"}}}]"#,
        );
        assert_eq!(found.len(), 2, "containers are not images");
        assert!(found.contains("calico/node:v2.6.12"));
        assert!(found.contains("calico/node:latest"));
    }

    #[test]
    fn containers_carry_what_a_replacement_needs() {
        let out = br#"[{"Id": "abc", "Name": "/calico-node", "Config": {"Image": "calico/node:v1", "Labels": {"org.projectcalico.rollout.spec": "s1",
            "org.projectcalico.rollout.options": "[\"--net=host\", \"--restart=always\"]"}},
            "State": {"Running": true, "Restarting": true}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}]"#;
        let c = &parse_containers(out)["calico-node"];
        assert_eq!(parse_images(out).len(), 0);
        assert_eq!(
            c,
            &Container {
                id: "abc".into(),
                image: "calico/node:v1".into(),
                running: true,
                restarting: true,
                policy: "always".into(),
                spec_hash: Some("s1".into()),
                options: Some(vec!["--net=host".into(), "--restart=always".into()]),
            }
        );
    }
}
