//! The serde shapes that mirror `cluster.yaml` key for key.
//!
//! Every scalar is read as a located string (`Spanned<String>`) and checked
//! by `load`, so that a bad value is reported with its line and column and
//! with wording about what the key means, rather than a generic type error.
//! Unknown keys are rejected here, by serde, with the list of known ones.
//!
//! The one exception is `rollout.batch`, which is a single value or a list
//! ([`RawBatch`]); its list entries are located strings again.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A scalar with the place it was written.
pub(crate) type Str = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInventory {
    pub ssh: Option<Spanned<RawSsh>>,
    pub etcd: Option<Spanned<RawEtcd>>,
    pub docker: Option<Spanned<RawDocker>>,
    pub cni: Option<Spanned<RawCni>>,
    pub libnetwork: Option<Spanned<RawContainer>>,
    pub node: Option<Spanned<RawContainer>>,
    pub rollout: Option<Spanned<RawRollout>>,
    pub templates: Option<Str>,
    pub agents: Option<Spanned<Vec<Spanned<RawAgent>>>>,
}

/// The SSH keys, as a section (`ssh:`) or as overrides on one agent.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSsh {
    pub user: Option<Str>,
    pub port: Option<Str>,
    pub identity_file: Option<Str>,
    pub known_hosts: Option<Str>,
    pub host_key_checking: Option<Str>,
    #[serde(rename = "become")]
    pub become_root: Option<Str>,
    pub connect_timeout: Option<Str>,
    /// `[user@]host[:port]` of a bastion, or `none`.
    pub proxy_jump: Option<Str>,
    /// An OpenSSH client config to read (`ssh:` section only).
    pub config_file: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEtcd {
    pub endpoints: Option<Spanned<Vec<Str>>>,
    pub proxy: Option<Str>,
    pub binary: Option<Spanned<RawBinary>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// `etcd.tls`: the CA and the client certificate and key, local paths.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub ca: Option<Str>,
    pub cert: Option<Str>,
    pub key: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDocker {
    pub enabled: Option<Str>,
    pub cluster_store: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCni {
    pub enabled: Option<Str>,
    pub binaries: Option<Spanned<BinaryMap>>,
    pub plugin_dir: Option<Str>,
    pub config_dir: Option<Str>,
}

/// `libnetwork:` and `node:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContainer {
    pub enabled: Option<Str>,
    pub image: Option<Str>,
    pub env: Option<Spanned<StrMap>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRollout {
    pub batch: Option<Spanned<RawBatch>>,
    pub canary: Option<Str>,
    pub by: Option<Str>,
    pub max_failures: Option<Str>,
    pub min_healthy: Option<Str>,
    pub health_timeout: Option<Str>,
    pub command_timeout: Option<Str>,
    pub pull_timeout: Option<Str>,
    pub revert: Option<Str>,
    pub min_bgp_peers: Option<Str>,
    pub checks: Option<Spanned<Vec<Spanned<RawCheck>>>>,
}

/// One entry of `rollout.checks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub name: Option<Str>,
    pub after: Option<Str>,
    pub command: Option<Str>,
    pub http: Option<Str>,
    pub timeout: Option<Str>,
}

/// One entry of `agents:`. The SSH keys are spelled out (not flattened) so
/// that unknown keys are still rejected and every value keeps its span.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub name: Option<Str>,
    pub address: Option<Str>,
    pub role: Option<Str>,
    pub zone: Option<Str>,
    pub mesos_address: Option<Str>,
    pub user: Option<Str>,
    pub port: Option<Str>,
    pub identity_file: Option<Str>,
    pub known_hosts: Option<Str>,
    pub host_key_checking: Option<Str>,
    #[serde(rename = "become")]
    pub become_root: Option<Str>,
    pub connect_timeout: Option<Str>,
    pub proxy_jump: Option<Str>,
}

impl RawAgent {
    /// This agent's SSH overrides, in the shape of the `ssh:` section.
    pub fn ssh_overrides(&self) -> RawSsh {
        RawSsh {
            user: self.user.clone(),
            port: self.port.clone(),
            identity_file: self.identity_file.clone(),
            known_hosts: self.known_hosts.clone(),
            host_key_checking: self.host_key_checking.clone(),
            become_root: self.become_root.clone(),
            connect_timeout: self.connect_timeout.clone(),
            proxy_jump: self.proxy_jump.clone(),
            config_file: None,
        }
    }
}

/// A mapping of scalar keys to scalar values, in file order, each with its
/// position (`env:`, `binaries:`). Duplicate keys are rejected by the YAML
/// reader before this sees them.
#[derive(Debug, Default)]
pub(crate) struct StrMap(pub Vec<(Str, Str)>);

impl<'de> Deserialize<'de> for StrMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = StrMap;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrMap, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Str>()? {
                    let value = map.next_value::<Str>()?;
                    entries.push((key, value));
                }
                Ok(StrMap(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

/// `cni.binaries`: plugin names to a local path, or to `{url, sha256}`.
#[derive(Debug, Default)]
pub(crate) struct BinaryMap(pub Vec<(Str, Spanned<RawBinary>)>);

#[derive(Debug)]
pub(crate) enum RawBinary {
    Path(String),
    Keys(Box<RawBinaryKeys>),
}

/// `{url, sha256}`, or (etcd only) `{on_agent: PATH}`.
#[derive(Debug, Default)]
pub(crate) struct RawBinaryKeys {
    pub url: Option<Str>,
    pub sha256: Option<Str>,
    /// A binary already on the agents.
    pub on_agent: Option<Str>,
    /// Keys that are none of these, to report.
    pub unknown: Vec<Str>,
}

impl<'de> Deserialize<'de> for BinaryMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = BinaryMap;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of plugin names to local paths or {url, sha256}")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BinaryMap, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Str>()? {
                    let value = map.next_value::<Spanned<RawBinary>>()?;
                    entries.push((key, value));
                }
                Ok(BinaryMap(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

impl<'de> Deserialize<'de> for RawBinary {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinaryVisitor;

        impl<'de> Visitor<'de> for BinaryVisitor {
            type Value = RawBinary;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a local path, or {url: …, sha256: …}")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawBinary, E> {
                Ok(RawBinary::Path(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBinary, A::Error> {
                let mut keys = RawBinaryKeys::default();
                while let Some(key) = map.next_key::<Str>()? {
                    let value = map.next_value::<Str>()?;
                    match key.value.as_str() {
                        "url" => keys.url = Some(value),
                        "sha256" => keys.sha256 = Some(value),
                        "on_agent" => keys.on_agent = Some(value),
                        _ => keys.unknown.push(key),
                    }
                }
                Ok(RawBinary::Keys(Box::new(keys)))
            }
        }

        deserializer.deserialize_any(BinaryVisitor)
    }
}

/// `rollout.batch`: one batch size, or a list of them (a ramp).
#[derive(Debug)]
pub(crate) enum RawBatch {
    /// A single value. When YAML read it as something other than a string
    /// (`10`, `1.5`, `yes`), `typed` is set and `text` is only a rendering
    /// of it: the source text is then found through the value's location.
    One { text: String, typed: bool },
    /// A list, each entry with its position.
    Ramp(Vec<Str>),
}

impl<'de> Deserialize<'de> for RawBatch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;

        impl BatchVisitor {
            fn typed<E>(text: impl ToString) -> Result<RawBatch, E> {
                Ok(RawBatch::One {
                    text: text.to_string(),
                    typed: true,
                })
            }
        }

        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = RawBatch;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a batch size (a number or a percentage like \"20%\") or a list of them",
                )
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RawBatch, E> {
                Ok(RawBatch::One {
                    text: s.to_string(),
                    typed: false,
                })
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawBatch, E> {
                Self::typed(v)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawBatch, E> {
                Self::typed(v)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawBatch, E> {
                Self::typed(v)
            }

            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<RawBatch, E> {
                Self::typed(v)
            }

            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<RawBatch, E> {
                Self::typed(v)
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawBatch, E> {
                Self::typed(v)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBatch, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<Str>()? {
                    entries.push(entry);
                }
                Ok(RawBatch::Ramp(entries))
            }
        }

        deserializer.deserialize_any(BatchVisitor)
    }
}
