//! The sections that say what to install (`etcd`, `docker`, `cni`,
//! `libnetwork`, `node`) and `templates`, and the assembly of every checked
//! part into an [`Inventory`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::agents::SshLayer;
use super::check::{Checker, FileCheck};
use crate::inventory::raw::{BinaryMap, RawBinary, RawBinaryKeys, RawContainer, RawInventory};
use crate::inventory::values;
use crate::inventory::{
    Agent, BinarySource, CniBinary, CniConfig, ContainerConfig, DockerConfig, Endpoint, EtcdBinary,
    EtcdConfig, ImageRef, Inventory, RemotePath, RolloutConfig,
};

const DEFAULT_ETCD_BINARY: &str = "/usr/bin/etcd";
const DEFAULT_PLUGIN_DIR: &str = "/opt/mesosphere/active/cni";
const DEFAULT_CONFIG_DIR: &str = "/opt/mesosphere/etc/dcos/network/cni";
const DEFAULT_LIBNETWORK_IMAGE: &str = "calico/libnetwork-plugin:v1.1.3";
const DEFAULT_NODE_IMAGE: &str = "calico/node:v2.6.12";
const REQUIRED_CNI_BINARIES: [&str; 2] = ["calico", "calico-ipam"];

/// Everything except the agents' final SSH settings is already typed.
pub(super) struct Parts {
    etcd: EtcdConfig,
    docker: DockerConfig,
    cni: CniConfig,
    libnetwork: ContainerConfig,
    node: ContainerConfig,
    rollout: RolloutConfig,
    templates_dir: Option<PathBuf>,
    agents: Vec<Agent>,
}

impl Parts {
    pub(super) fn into_inventory(self, path: &Path, hash: String) -> Inventory {
        Inventory {
            path: path.to_path_buf(),
            hash,
            etcd: self.etcd,
            docker: self.docker,
            cni: self.cni,
            libnetwork: self.libnetwork,
            node: self.node,
            rollout: self.rollout,
            templates_dir: self.templates_dir,
            agents: self.agents,
        }
    }
}

impl Checker<'_> {
    pub(super) fn inventory(&mut self, raw: &Spanned<RawInventory>) -> Option<Parts> {
        let doc = raw.referenced;
        let raw = &raw.value;

        let ssh_section = raw.ssh.as_ref().map(|s| s.referenced);
        let defaults = match &raw.ssh {
            Some(ssh) => self.ssh_layer(&ssh.value),
            None => SshLayer::default(),
        };

        let etcd = self.etcd(raw, doc);
        let docker = match &raw.docker {
            Some(d) => DockerConfig {
                enabled: self.flag(d.value.enabled.as_ref(), "enabled", true),
                cluster_store: d
                    .value
                    .cluster_store
                    .as_ref()
                    .and_then(|s| self.check(s, "cluster_store", values::cluster_store)),
            },
            None => DockerConfig {
                enabled: true,
                cluster_store: None,
            },
        };
        let cni = self.cni(raw, doc);
        let libnetwork = self.container(
            raw.libnetwork.as_ref(),
            "libnetwork",
            DEFAULT_LIBNETWORK_IMAGE,
        );
        let node = self.container(raw.node.as_ref(), "node", DEFAULT_NODE_IMAGE);
        let (rollout, by_zone_at) = self.rollout(raw);
        let templates_dir = raw.templates.as_ref().and_then(|s| {
            let dir = self
                .local_path(&s.value, "templates")
                .map_err(|e| self.report(s.referenced, e.to_string()))
                .ok()?;
            self.check_file(&dir, FileCheck::Templates, s.referenced);
            Some(dir)
        });
        let config_file = raw.ssh.as_ref().and_then(|s| s.value.config_file.as_ref());
        let client = self.client_config(config_file, ssh_section, doc);
        let agents = self.agents(
            raw,
            doc,
            &defaults,
            client.as_ref(),
            ssh_section,
            by_zone_at,
        );

        Some(Parts {
            etcd: etcd?,
            docker,
            cni: cni?,
            libnetwork: libnetwork?,
            node: node?,
            rollout,
            templates_dir,
            agents: agents?,
        })
    }

    fn etcd(&mut self, raw: &RawInventory, doc: Location) -> Option<EtcdConfig> {
        let Some(etcd) = &raw.etcd else {
            self.report(
                doc,
                "missing required section `etcd` (with `endpoints`, the etcd client URLs)",
            );
            return None;
        };
        let proxy = self.flag(etcd.value.proxy.as_ref(), "proxy", true);
        let binary = match &etcd.value.binary {
            None => EtcdBinary::OnAgent(default_remote(DEFAULT_ETCD_BINARY)),
            Some(raw) => match &raw.value {
                RawBinary::Keys(keys)
                    if keys.url.is_none()
                        && keys.sha256.is_none()
                        && keys.unknown.is_empty()
                        && keys.on_agent.is_some() =>
                {
                    let path = keys.on_agent.as_ref().expect("checked above");
                    EtcdBinary::OnAgent(
                        self.check(path, "etcd binary", |s| s.parse::<RemotePath>())?,
                    )
                }
                _ => EtcdBinary::Managed(self.binary_source(raw, "the etcd binary", true)?),
            },
        };
        let tls_given = etcd.value.tls.is_some();
        let tls = etcd.value.tls.as_ref().and_then(|t| self.etcd_tls(t));
        let Some(list) = &etcd.value.endpoints else {
            self.report(
                etcd.referenced,
                "`etcd` needs `endpoints`, a list of etcd client URLs such as http://10.0.0.5:2379",
            );
            return None;
        };
        if list.value.is_empty() {
            self.report(
                list.referenced,
                "`endpoints` is empty; list at least one etcd client URL",
            );
            return None;
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut seen: HashMap<Endpoint, u64> = HashMap::new();
        for s in &list.value {
            if let Some(ep) = self.check(s, "etcd endpoint", |v| v.parse::<Endpoint>()) {
                if !self.endpoint_tls(&ep, s.referenced, tls_given) {
                    continue;
                }
                if let Some(first) = seen.get(&ep) {
                    self.report(
                        s.referenced,
                        format!("etcd endpoint {ep} is listed twice (first at line {first})"),
                    );
                } else {
                    seen.insert(ep.clone(), s.referenced.line());
                    endpoints.push(ep);
                }
            }
        }
        if tls_given && tls.is_none() {
            return None;
        }
        Some(EtcdConfig {
            endpoints,
            proxy,
            binary,
            tls,
        })
    }

    fn cni(&mut self, raw: &RawInventory, doc: Location) -> Option<CniConfig> {
        let default_plugin = || default_remote(DEFAULT_PLUGIN_DIR);
        let default_config = || default_remote(DEFAULT_CONFIG_DIR);
        let Some(cni) = &raw.cni else {
            self.report(
                doc,
                "missing section `cni` with `binaries` (local paths of `calico` and `calico-ipam`); \
                 set `cni: {enabled: false}` to skip CNI",
            );
            return None;
        };
        let c = &cni.value;
        let enabled = self.flag(c.enabled.as_ref(), "enabled", true);
        let plugin_dir = self.or_default(
            c.plugin_dir.as_ref(),
            "plugin_dir",
            |s| s.parse::<RemotePath>(),
            default_plugin,
        );
        let config_dir = self.or_default(
            c.config_dir.as_ref(),
            "config_dir",
            |s| s.parse::<RemotePath>(),
            default_config,
        );
        let binaries = match &c.binaries {
            Some(b) => self.cni_binaries(b)?,
            None if enabled => {
                self.report(
                    cni.referenced,
                    "`cni` needs `binaries` (local paths of `calico` and `calico-ipam`) \
                     while it is enabled",
                );
                return None;
            }
            None => Vec::new(),
        };
        Some(CniConfig {
            enabled,
            binaries,
            plugin_dir,
            config_dir,
        })
    }

    /// A binary's source: a local path (that exists), or `{url, sha256}`;
    /// `on_agent` is named in the errors where it is allowed.
    fn binary_source(
        &mut self,
        raw: &Spanned<RawBinary>,
        what: &str,
        on_agent_allowed: bool,
    ) -> Option<BinarySource> {
        match &raw.value {
            RawBinary::Path(path) => match self.local_path(path, what) {
                Ok(local) => {
                    let check = if on_agent_allowed {
                        FileCheck::EtcdBinary
                    } else {
                        FileCheck::CniBinary
                    };
                    self.check_file(&local, check, raw.referenced);
                    Some(BinarySource::Local(local))
                }
                Err(e) => {
                    self.report(raw.referenced, e.to_string());
                    None
                }
            },
            RawBinary::Keys(keys) => {
                let RawBinaryKeys {
                    url,
                    sha256,
                    on_agent,
                    unknown,
                } = keys.as_ref();
                let expected = if on_agent_allowed {
                    "`url` and `sha256`, or `on_agent` alone"
                } else {
                    "`url` or `sha256`"
                };
                for key in unknown
                    .iter()
                    .chain(on_agent.iter().filter(|_| !on_agent_allowed))
                {
                    self.report(
                        key.referenced,
                        format!(
                            "unknown field `{}` of {what}, expected {expected}",
                            key.value
                        ),
                    );
                }
                if let (Some(key), true) = (on_agent, on_agent_allowed) {
                    self.report(
                        key.referenced,
                        format!("{what}: `on_agent` goes alone, without `url` or `sha256`"),
                    );
                    return None;
                }
                let url = match url {
                    Some(u) => self.check(u, &format!("{what} url"), values::download_url),
                    None => {
                        self.report(
                            raw.referenced,
                            format!("{what} needs a `url` with its `sha256`"),
                        );
                        None
                    }
                };
                let sha256 = match sha256 {
                    Some(s) => self.check(s, &format!("{what} sha256"), values::sha256),
                    None => {
                        self.report(
                            raw.referenced,
                            format!(
                                "{what} needs the `sha256` its download must have: \
                                 nothing is installed that was not checked"
                            ),
                        );
                        None
                    }
                };
                match (url, sha256) {
                    (Some(url), Some(sha256)) if unknown.is_empty() && on_agent.is_none() => {
                        Some(BinarySource::Url { url, sha256 })
                    }
                    _ => None,
                }
            }
        }
    }

    fn cni_binaries(&mut self, map: &Spanned<BinaryMap>) -> Option<Vec<CniBinary>> {
        let mut found: BTreeMap<String, BinarySource> = BTreeMap::new();
        let mut ok = true;
        for (name, raw) in &map.value.0 {
            let Some(n) = self.check(name, "CNI binary name", values::file_name) else {
                ok = false;
                continue;
            };
            let what = format!("CNI binary `{n}`");
            let source = self.binary_source(raw, &what, false);
            match source {
                Some(source) => {
                    found.insert(n, source);
                }
                None => ok = false,
            }
        }
        for required in REQUIRED_CNI_BINARIES {
            if !found.contains_key(required) && ok {
                self.report(
                    map.referenced,
                    format!(
                        "`binaries` must include `{required}` (the local path of that plugin, \
                         or its url and sha256)"
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| {
            found
                .into_iter()
                .map(|(name, source)| CniBinary { name, source })
                .collect()
        })
    }

    fn container(
        &mut self,
        raw: Option<&Spanned<RawContainer>>,
        section: &str,
        default_image: &str,
    ) -> Option<ContainerConfig> {
        let Some(raw) = raw else {
            return Some(ContainerConfig {
                enabled: true,
                image: default_image.parse().expect("default image is valid"),
                env: BTreeMap::new(),
            });
        };
        let c = &raw.value;
        let enabled = self.flag(c.enabled.as_ref(), "enabled", true);
        let image = match &c.image {
            Some(s) => self.check(s, &format!("{section} image"), |v| v.parse::<ImageRef>())?,
            None => default_image.parse().expect("default image is valid"),
        };
        let mut env = BTreeMap::new();
        let mut ok = true;
        if let Some(map) = &c.env {
            for (k, v) in &map.value.0 {
                let key = self.check(k, &format!("{section} env name"), values::env_key);
                let value = self.check(v, &format!("{section} env value"), values::env_value);
                match (key, value) {
                    (Some(k), Some(v)) => {
                        env.insert(k, v);
                    }
                    _ => ok = false,
                }
            }
        }
        ok.then_some(ContainerConfig {
            enabled,
            image,
            env,
        })
    }
}

fn default_remote(s: &str) -> RemotePath {
    s.parse().expect("default remote path is valid")
}
