//! The desired state of one agent: every file, binary and container that
//! calico-rollout manages there, rendered from the inventory and templates
//! before any host is contacted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Value, context};
use sha2::{Digest, Sha256};

use crate::inventory::{Agent, BinarySource, EtcdBinary, ImageRef, Inventory, RemotePath, Role};
use crate::templates::RenderError as Error;
use crate::templates::{self, Templates};

pub const ETCD_PROXY_UNIT: &str = "calico-etcd-proxy";
pub const DOCKER_UNIT: &str = "docker";
pub const DAEMON_JSON_PATH: &str = "/etc/docker/daemon.json";
pub const CNI_CONFIG_NAME: &str = "calico.cni";
pub const NODE_CONTAINER: &str = "calico-node";
pub const LIBNETWORK_CONTAINER: &str = "calico-libnetwork";
/// The libnetwork plugin's sockets, and the driver each serves.
pub const LIBNETWORK_SOCKETS: [(&str, &str); 2] = [
    ("/run/docker/plugins/calico.sock", "NetworkDriver"),
    ("/run/docker/plugins/calico-ipam.sock", "IpamDriver"),
];
/// The container label that records which spec a container was started from.
pub const SPEC_LABEL: &str = "org.projectcalico.rollout.spec";
/// The container label that records its `docker run` options (a JSON
/// list), so that a plan can say which options a replacement changes.
pub const OPTIONS_LABEL: &str = "org.projectcalico.rollout.options";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A small file rendered in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagedFile {
    pub path: RemotePath,
    pub content: Arc<[u8]>,
    pub sha256: String,
    pub mode: u32,
    /// The bytes are a secret (the etcd client key): they go to the agent
    /// over stdin and nowhere else. Plans, diffs and logs name the file and
    /// its hash prefix only; `Debug` leaves them out.
    pub secret: bool,
}

impl ManagedFile {
    pub(crate) fn new(path: RemotePath, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        let content: Vec<u8> = content.into();
        ManagedFile {
            sha256: sha256_hex(&content),
            content: content.into(),
            path,
            mode,
            secret: false,
        }
    }

    /// A file whose bytes must never be shown.
    pub(crate) fn secret(path: RemotePath, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        ManagedFile {
            secret: true,
            ..ManagedFile::new(path, content, mode)
        }
    }
}

impl std::fmt::Debug for ManagedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ManagedFile");
        d.field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("mode", &format_args!("{:04o}", self.mode));
        if self.secret {
            d.field(
                "content",
                &format_args!("<secret, {} bytes>", self.content.len()),
            );
        } else {
            d.field("content", &String::from_utf8_lossy(&self.content));
        }
        d.finish()
    }
}

/// Where the etcd client TLS files live on every agent: one fixed folder,
/// so that a certificate rotated under the same name changes no path in
/// any client's configuration.
pub const TLS_DIR: &str = "/etc/calico-rollout/etcd-tls";
pub const TLS_CA: &str = "/etc/calico-rollout/etcd-tls/ca.pem";
pub const TLS_CERT: &str = "/etc/calico-rollout/etcd-tls/cert.pem";
pub const TLS_KEY: &str = "/etc/calico-rollout/etcd-tls/key.pem";

/// The etcd client TLS files every etcd client on the agent reads:
/// installed by the etcd-proxy step, which runs first.
#[derive(Debug, Clone)]
pub struct TlsDesired {
    /// ca.pem and cert.pem (0644), key.pem (0600, secret).
    pub files: Vec<ManagedFile>,
    /// The unit that reads them only when it starts (docker's cluster
    /// store), marked pending with their install, or none when docker is
    /// left alone.
    pub restarts: Option<&'static str>,
    /// With the gateway: the members (`host:port`) whose certificates must
    /// hold for 127.0.0.1, checked in preflight. Empty without it.
    pub loopback: Vec<String>,
}

fn tls_desired(inv: &Inventory) -> Option<TlsDesired> {
    let tls = inv.etcd.tls.as_ref()?;
    Some(TlsDesired {
        files: vec![
            ManagedFile::new(remote(TLS_CA), tls.ca.content.to_vec(), 0o644),
            ManagedFile::new(remote(TLS_CERT), tls.cert.content.to_vec(), 0o644),
            ManagedFile::secret(remote(TLS_KEY), tls.key.content.to_vec(), 0o600),
        ],
        restarts: inv.docker.enabled.then_some(DOCKER_UNIT),
        loopback: if inv.etcd.proxy {
            inv.etcd.endpoints.iter().map(|e| e.host_port()).collect()
        } else {
            Vec::new()
        },
    })
}

/// A plugin binary: pushed from the operator's machine (hashed once,
/// streamed from disk to each host), or downloaded by each agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub name: String,
    pub from: BinaryFrom,
    pub path: RemotePath,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryFrom {
    Local { path: PathBuf, size: u64 },
    Url(String),
}

#[derive(Debug, Clone)]
pub struct DockerDesired {
    /// The daemon.json keys calico-rollout manages, merged into the file.
    pub managed: serde_json::Map<String, serde_json::Value>,
    /// Files dockerd reads only when it starts (the cluster store's TLS
    /// files), installed by an earlier step: when one differs, docker
    /// restarts.
    pub reads: Vec<ManagedFile>,
}

#[derive(Debug, Clone)]
pub struct CniDesired {
    pub binaries: Arc<[Binary]>,
    pub config: ManagedFile,
    /// The folder Mesos loads every network config from.
    pub config_dir: RemotePath,
    pub unit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: &'static str,
    pub image: ImageRef,
    /// `docker run` options from the template, passed through quoted.
    pub options: Vec<String>,
    /// Environment, kept in a root-only file so values never appear in argv.
    pub env_file: ManagedFile,
    /// Hash of image, options and environment: a running container with a
    /// different hash is replaced.
    pub spec_hash: String,
    /// For calico-node: what its environment turns on, which the node
    /// gate checks beyond the container running.
    pub node_checks: Option<NodeChecks>,
}

/// What calico-node's environment says its health gate can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeChecks {
    /// Felix's health port, or why the endpoint is off.
    pub felix: Result<u16, String>,
    /// Whether BIRD6 runs beside BIRD, or why there is no BGP.
    pub bgp: Result<bool, String>,
}

/// Felix's default health port (`FELIX_HEALTHPORT`).
pub const FELIX_HEALTH_PORT: u16 = 9099;

impl NodeChecks {
    /// Read from calico-node's environment as calico/node v2.6 reads it.
    fn from_env(env: &std::collections::BTreeMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).unwrap_or_default();
        let felix = if get("FELIX_HEALTHENABLED").eq_ignore_ascii_case("true") {
            match get("FELIX_HEALTHPORT") {
                "" => Ok(FELIX_HEALTH_PORT),
                p => Ok(p
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("env FELIX_HEALTHPORT {p:?} is not a port"))?),
            }
        } else {
            Err("FELIX_HEALTHENABLED is not true in calico-node's environment".to_string())
        };
        let bgp = if get("CALICO_NETWORKING_BACKEND").eq_ignore_ascii_case("none") {
            Err("CALICO_NETWORKING_BACKEND is none (policy only): there is no BIRD".to_string())
        } else {
            Ok(!matches!(
                get("IP6").to_ascii_lowercase().as_str(),
                "" | "none"
            ))
        };
        Ok(NodeChecks { felix, bgp })
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    pub etcd_proxy: Option<EtcdProxyDesired>,
    /// Installed by the etcd-proxy step, with or without the gateway.
    pub etcd_tls: Option<TlsDesired>,
    pub docker: Option<DockerDesired>,
    pub cni: Option<CniDesired>,
    pub libnetwork: Option<ContainerSpec>,
    pub node: Option<ContainerSpec>,
    /// On a node with no BGP session before, how many its BGP gate needs.
    pub min_bgp_peers: usize,
    /// The operator's own checks, each after one step.
    pub checks: Vec<crate::inventory::OperatorCheck>,
}

#[derive(Debug, Clone)]
pub struct EtcdProxyDesired {
    pub unit_file: ManagedFile,
    pub binary: EtcdRuns,
}

/// Where calico-rollout installs the etcd binary it manages.
pub const MANAGED_ETCD_PATH: &str = "/opt/calico-rollout/bin/etcd";

/// The etcd binary the gateway's unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdRuns {
    /// Installed by calico-rollout at [`MANAGED_ETCD_PATH`].
    Managed(Binary),
    /// Already on the agents.
    OnAgent(RemotePath),
}

impl EtcdRuns {
    pub fn path(&self) -> &str {
        match self {
            EtcdRuns::Managed(b) => b.path.as_str(),
            EtcdRuns::OnAgent(p) => p.as_str(),
        }
    }
}

/// The etcd binary of the run, hashed once for every agent.
pub fn etcd_runs(inv: &Inventory) -> Result<EtcdRuns, Error> {
    Ok(match &inv.etcd.binary {
        EtcdBinary::OnAgent(path) => EtcdRuns::OnAgent(path.clone()),
        EtcdBinary::Managed(source) => {
            let (from, sha256) = binary_from(source)?;
            EtcdRuns::Managed(Binary {
                name: "etcd".into(),
                from,
                path: remote(MANAGED_ETCD_PATH),
                sha256,
            })
        }
    })
}

fn binary_from(source: &BinarySource) -> Result<(BinaryFrom, String), Error> {
    Ok(match source {
        BinarySource::Local(path) => {
            let (sha256, size) = hash_file(path)?;
            let path = path.clone();
            (BinaryFrom::Local { path, size }, sha256)
        }
        BinarySource::Url { url, sha256 } => (BinaryFrom::Url(url.clone()), sha256.clone()),
    })
}

/// Hashes the CNI binaries once for the whole run.
pub fn hash_binaries(inv: &Inventory) -> Result<Arc<[Binary]>, Error> {
    let mut out = Vec::new();
    for b in &inv.cni.binaries {
        let (from, sha256) = binary_from(&b.source)?;
        out.push(Binary {
            name: b.name.clone(),
            from,
            path: inv.cni.plugin_dir.join(&b.name),
            sha256,
        });
    }
    Ok(out.into())
}

fn hash_file(path: &Path) -> Result<(String, u64), Error> {
    use std::io::Read;
    let err = |e: std::io::Error| Error::LocalFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The cluster store Docker should use: the override, else the local proxy,
/// else the first real endpoint.
pub fn cluster_store(inv: &Inventory) -> String {
    if let Some(store) = &inv.docker.cluster_store {
        return store.clone();
    }
    if inv.etcd.proxy {
        "etcd://127.0.0.1:2379".to_string()
    } else {
        format!("etcd://{}", inv.etcd.endpoints[0].host_port())
    }
}

/// What Calico and the CNI plugin use to reach etcd.
fn client_endpoints(inv: &Inventory) -> String {
    if inv.etcd.proxy {
        // The gateway passes TLS through: clients still speak it.
        let scheme = if inv.etcd.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:2379")
    } else {
        inv.etcd
            .endpoints
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn template_context(inv: &Inventory, agent: &Agent, etcd: &EtcdRuns) -> Value {
    let endpoints: Vec<String> = inv.etcd.endpoints.iter().map(|e| e.to_string()).collect();
    let gateway: Vec<String> = inv.etcd.endpoints.iter().map(|e| e.host_port()).collect();
    context! {
        agent => context! {
            name => agent.name.clone(),
            address => agent.address.clone(),
            role => match agent.role { Role::Private => "private", Role::Public => "public" },
        },
        etcd => context! {
            endpoints => endpoints,
            gateway_endpoints => gateway.join(","),
            client_endpoints => client_endpoints(inv),
            proxy => inv.etcd.proxy,
            binary => etcd.path(),
            tls => inv.etcd.tls.as_ref().map(|_| context! {
                dir => TLS_DIR, ca => TLS_CA, cert => TLS_CERT, key => TLS_KEY,
            }),
        },
        docker => context! { cluster_store => cluster_store(inv) },
        cni => context! {
            plugin_dir => inv.cni.plugin_dir.as_str(),
            config_dir => inv.cni.config_dir.as_str(),
        },
        node => context! { image => inv.node.image.as_str() },
        libnetwork => context! { image => inv.libnetwork.image.as_str() },
    }
}

/// Renders the desired state of one agent.
pub fn for_agent(
    inv: &Inventory,
    agent: &Agent,
    templates: &Templates,
    binaries: &Arc<[Binary]>,
    etcd: &EtcdRuns,
) -> Result<Desired, Error> {
    let ctx = template_context(inv, agent, etcd);
    let etcd_tls = tls_desired(inv);
    let tls_files: &[ManagedFile] = etcd_tls.as_ref().map_or(&[], |t| &t.files);

    let etcd_proxy = if inv.etcd.proxy {
        let unit = templates.render(templates::ETCD_PROXY_UNIT, &ctx)?;
        Some(EtcdProxyDesired {
            unit_file: ManagedFile::new(
                remote(&format!("/etc/systemd/system/{ETCD_PROXY_UNIT}.service")),
                unit,
                0o644,
            ),
            binary: etcd.clone(),
        })
    } else {
        None
    };

    let docker = if inv.docker.enabled {
        let rendered = templates.render_json(templates::DAEMON_JSON, &ctx)?;
        let serde_json::Value::Object(managed) = rendered else {
            return Err(Error::Template {
                name: templates::DAEMON_JSON.into(),
                reason: "must render a JSON object".into(),
            });
        };
        Some(DockerDesired {
            managed,
            reads: tls_files.to_vec(),
        })
    } else {
        None
    };

    let cni = if inv.cni.enabled {
        let rendered = templates.render_json(templates::CALICO_CNI, &ctx)?;
        let mut text = serde_json::to_string_pretty(&rendered).expect("JSON value serializes");
        text.push('\n');
        Some(CniDesired {
            binaries: binaries.clone(),
            config: ManagedFile::new(inv.cni.config_dir.join(CNI_CONFIG_NAME), text, 0o644),
            config_dir: inv.cni.config_dir.clone(),
            unit: agent.role.mesos_unit(),
        })
    } else {
        None
    };

    let container = |name: &'static str,
                     template: &str,
                     cfg: &crate::inventory::ContainerConfig|
     -> Result<Option<ContainerSpec>, Error> {
        if !cfg.enabled {
            return Ok(None);
        }
        let rendered = templates.render_json(template, &ctx)?;
        container_spec(name, template, &rendered, cfg, tls_files).map(Some)
    };
    let libnetwork = container(
        LIBNETWORK_CONTAINER,
        templates::LIBNETWORK_CONTAINER,
        &inv.libnetwork,
    )?;
    let node = container(NODE_CONTAINER, templates::NODE_CONTAINER, &inv.node)?;

    Ok(Desired {
        etcd_proxy,
        etcd_tls,
        docker,
        cni,
        libnetwork,
        node,
        min_bgp_peers: inv.rollout.min_bgp_peers,
        checks: inv.rollout.checks.clone(),
    })
}

/// Options calico-rollout sets itself; a template that sets them would fight
/// the tool over the container's identity.
const RESERVED_OPTIONS: [&str; 6] = ["--name", "-d", "--detach", "--env-file", "-e", "--env"];

pub(crate) fn container_spec(
    name: &'static str,
    template: &str,
    rendered: &serde_json::Value,
    cfg: &crate::inventory::ContainerConfig,
    reads: &[ManagedFile],
) -> Result<ContainerSpec, Error> {
    let bad = |reason: String| Error::Template {
        name: template.to_string(),
        reason,
    };
    let options: Vec<String> = match rendered.get("options") {
        None => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("options must be strings, found {v}")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(format!("options must be a list, found {other}"))),
    };
    for opt in &options {
        let flag = opt.split('=').next().unwrap_or_default();
        if RESERVED_OPTIONS.contains(&flag) || flag == "-l" || flag == "--label" {
            return Err(bad(format!(
                "option {opt:?} is set by calico-rollout itself; use \"env\" for environment"
            )));
        }
    }
    let mut env = std::collections::BTreeMap::new();
    match rendered.get("env") {
        None => {}
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| bad(format!("env {k} must be a string, found {v}")))?;
                env.insert(k.clone(), v.to_string());
            }
        }
        Some(other) => return Err(bad(format!("env must be an object, found {other}"))),
    }
    // The inventory's env wins over the template's.
    env.extend(cfg.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut env_text = String::new();
    for (k, v) in &env {
        if v.contains('\n') || v.contains('\0') {
            return Err(bad(format!(
                "env {k} has a newline, which an env file cannot carry"
            )));
        }
        env_text.push_str(&format!("{k}={v}\n"));
    }
    let env_file = ManagedFile::new(remote(&format!("/etc/calico/{name}.env")), env_text, 0o600);
    let mut spec = serde_json::json!({
        "image": cfg.image.as_str(),
        "options": options,
        "env_sha256": env_file.sha256,
    });
    // calico/node and libnetwork load the etcd TLS files once, when they
    // start: a rotated certificate replaces them. Left out without TLS, so
    // that the hashes of running containers stay what they were.
    if !reads.is_empty() {
        let files: serde_json::Map<String, serde_json::Value> = reads
            .iter()
            .map(|f| (f.path.to_string(), f.sha256.clone().into()))
            .collect();
        spec["reads"] = files.into();
    }
    let node_checks = match name {
        NODE_CONTAINER => Some(NodeChecks::from_env(&env).map_err(bad)?),
        _ => None,
    };
    Ok(ContainerSpec {
        name,
        image: cfg.image.clone(),
        options,
        spec_hash: sha256_hex(spec.to_string().as_bytes()),
        env_file,
        node_checks,
    })
}

fn remote(path: &str) -> RemotePath {
    path.parse().expect("built-in paths are valid")
}
