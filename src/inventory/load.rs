//! Reading `cluster.yaml` into an [`Inventory`]: YAML shape first (serde,
//! unknown keys rejected), then every value, then the rules that tie values
//! together (agent names are unique; with `rollout.by: zone` every agent has
//! a `zone`), then the local files it names. Nothing here opens a network
//! connection.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::raw::{RawAgent, RawBatch, RawContainer, RawInventory, RawSsh, Str, StrMap};
use super::values::{self, InvalidValue};
use super::{
    Agent, BatchSize, CniBinary, CniConfig, ContainerConfig, DockerConfig, Endpoint, EtcdConfig,
    FailureBudget, HostKeyChecking, ImageRef, Inventory, RemotePath, Role, RolloutConfig,
    SshSettings,
};

const DEFAULT_USER: &str = "root";
const DEFAULT_PORT: u16 = 22;
const DEFAULT_KNOWN_HOSTS: &str = "~/.ssh/known_hosts";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_ETCD_BINARY: &str = "/usr/bin/etcd";
const DEFAULT_PLUGIN_DIR: &str = "/opt/mesosphere/active/cni";
const DEFAULT_CONFIG_DIR: &str = "/opt/mesosphere/etc/dcos/network/cni";
const DEFAULT_LIBNETWORK_IMAGE: &str = "calico/libnetwork-plugin:v1.1.3";
const DEFAULT_NODE_IMAGE: &str = "calico/node:v2.6.12";
const REQUIRED_CNI_BINARIES: [&str; 2] = ["calico", "calico-ipam"];

/// One located message about the inventory file. `line` and `column` are
/// 1-based; 0 means the position is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Problem {
    fn at(loc: Location, message: impl Into<String>) -> Self {
        Problem {
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        }
    }

    /// `file:line:col: message`.
    fn render(&self, path: &Path) -> String {
        if self.line == 0 {
            format!("{}: {}", path.display(), self.message)
        } else {
            format!(
                "{}:{}:{}: {}",
                path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

/// Why an inventory could not be loaded. Every message names the file, and
/// all but `Read` the line and column.
#[derive(Debug, Error)]
pub enum InventoryError {
    /// The file could not be read at all.
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// Not YAML, or YAML of the wrong shape (unknown key, a list where a
    /// value belongs, …). Only the first such problem is known.
    #[error("{}", problem.render(path))]
    Yaml { path: PathBuf, problem: Problem },
    /// Well-formed YAML with bad values or missing files: all of them, one
    /// per line, in file order.
    #[error("{}", render_all(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

#[cfg(test)]
impl InventoryError {
    /// The located problems (none for `Read`).
    pub fn problems(&self) -> &[Problem] {
        match self {
            InventoryError::Read { .. } => &[],
            InventoryError::Yaml { problem, .. } => std::slice::from_ref(problem),
            InventoryError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_all(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.render(path))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates the inventory at `path`. `~` expands with `$HOME`;
/// relative local paths resolve against the inventory's folder.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    load_with_home(path, home.as_deref())
}

fn load_with_home(path: &Path, home: Option<&Path>) -> Result<Inventory, InventoryError> {
    let bytes = fs::read(path).map_err(|error| InventoryError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let hash = hex::encode(Sha256::digest(&bytes));
    let yaml_error = |problem| InventoryError::Yaml {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let (line, column) = line_col(&bytes[..e.valid_up_to()]);
        yaml_error(Problem {
            line,
            column,
            message: "the file is not valid UTF-8 text".into(),
        })
    })?;
    let raw: Spanned<RawInventory> =
        serde_saphyr::from_str(text).map_err(|e| yaml_error(yaml_problem(&e)))?;

    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base_dir = std::path::absolute(&folder).unwrap_or(folder);
    let mut checker = Checker {
        source: text,
        base_dir: &base_dir,
        home,
        problems: Vec::new(),
        files_checked: HashSet::new(),
        home_reported: false,
    };
    let parts = checker.inventory(&raw);
    let mut problems = checker.problems;
    match parts {
        Some(parts) if problems.is_empty() => Ok(parts.into_inventory(path, hash)),
        _ => {
            problems.sort_by_key(|p| (p.line, p.column));
            problems.dedup();
            Err(InventoryError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }
}

/// 1-based line and column (in characters) just after `prefix`.
fn line_col(prefix: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(prefix);
    let line = text.matches('\n').count() as u64 + 1;
    let last = text.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() as u64 + 1)
}

// ---------------------------------------------------------------------------
// YAML errors

fn yaml_problem(err: &serde_saphyr::Error) -> Problem {
    let message = escape_controls(&yaml_message(err));
    match err.location() {
        Some(loc) => Problem::at(loc, message),
        None => Problem {
            line: 0,
            column: 0,
            message,
        },
    }
}

/// serde-saphyr's user-facing wording, with the shape errors this file can
/// run into reworded for an operator.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match err {
        E::WithSnippet { error, .. } | E::AliasError { error, .. } => yaml_message(error),
        E::SerdeUnknownField {
            field, expected, ..
        } => format!("unknown field `{field}`, expected {}", one_of(expected)),
        E::SerdeMissingField { field, .. } => format!("missing required key `{field}`"),
        E::Unexpected { expected, .. } => match *expected {
            "mapping start" | "empty mapping start" => {
                "expected a mapping (`key: value` entries) here".into()
            }
            "sequence start" => "expected a list here".into(),
            "string scalar" | "scalar" | "str expected" => {
                "expected a single value here, not a list or a mapping".into()
            }
            _ => UserMessageFormatter.format_message(err).into_owned(),
        },
        E::NullIntoString { .. } => "expected a value here, found nothing (null)".into(),
        _ => UserMessageFormatter.format_message(err).into_owned(),
    }
}

/// serde's wording for a list of allowed keys.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "no keys here".into(),
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => format!(
            "one of {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Values

/// A value and where it was set (`None`: built-in default).
#[derive(Debug, Clone)]
struct Setting<T> {
    value: T,
    at: Option<Location>,
}

/// One layer of SSH settings (the `ssh:` section, or one agent's keys),
/// with each value already checked. A key that was missing or invalid is
/// `None`.
#[derive(Debug, Default, Clone)]
struct SshLayer {
    user: Option<Setting<String>>,
    port: Option<Setting<u16>>,
    identity_file: Option<Setting<PathBuf>>,
    known_hosts: Option<Setting<PathBuf>>,
    host_key_checking: Option<Setting<HostKeyChecking>>,
    become_root: Option<Setting<bool>>,
    connect_timeout: Option<Setting<Duration>>,
}

/// Everything except the agents' final SSH settings is already typed.
struct Parts {
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
    fn into_inventory(self, path: &Path, hash: String) -> Inventory {
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

struct Checker<'a> {
    /// The inventory's text, for values whose source spelling serde does
    /// not keep (see [`RawBatch::One`]).
    source: &'a str,
    base_dir: &'a Path,
    home: Option<&'a Path>,
    problems: Vec<Problem>,
    /// Local files already checked, with the check done, so that a shared
    /// setting is reported once.
    files_checked: HashSet<(PathBuf, FileCheck)>,
    home_reported: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FileCheck {
    Identity,
    KnownHostsStrict,
    KnownHostsAcceptNew,
    CniBinary,
    Templates,
}

impl Checker<'_> {
    fn report(&mut self, at: Location, message: impl Into<String>) {
        self.problems
            .push(Problem::at(at, escape_controls(&message.into())));
    }

    /// Checks one value; on failure records a problem naming it `what`.
    fn check<T>(
        &mut self,
        s: &Str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        match parse(&s.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.report(s.referenced, e.named(what).to_string());
                None
            }
        }
    }

    fn setting<T>(
        &mut self,
        s: Option<&Str>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<Setting<T>> {
        let s = s?;
        self.check(s, what, parse).map(|value| Setting {
            value,
            at: Some(s.referenced),
        })
    }

    /// The checked value, or `default` when missing (or invalid: the
    /// problem is recorded, so the value is never used).
    fn or_default<T>(
        &mut self,
        s: Option<&Str>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
        default: impl FnOnce() -> T,
    ) -> T {
        s.and_then(|s| self.check(s, what, parse))
            .unwrap_or_else(default)
    }

    fn flag(&mut self, s: Option<&Str>, what: &str, default: bool) -> bool {
        self.or_default(s, what, values::boolean, || default)
    }

    /// A local path: `~` and `~/…` expand with `$HOME`, relative paths
    /// resolve against the inventory's folder.
    fn local_path(&self, raw: &str, what: &str) -> Result<PathBuf, InvalidValue> {
        let bad = |problem: &str| InvalidValue::new(what, raw, problem);
        if raw.is_empty() {
            return Err(bad("is empty"));
        }
        if raw.contains('\0') {
            return Err(bad("contains a NUL character"));
        }
        let rest = if raw == "~" {
            Some("")
        } else if let Some(rest) = raw.strip_prefix("~/") {
            Some(rest)
        } else if raw.starts_with('~') {
            return Err(bad(
                "uses ~user, which is not supported (write ~/… or a full path)",
            ));
        } else {
            None
        };
        match rest {
            Some(rest) => match self.home {
                Some(home) if rest.is_empty() => Ok(home.to_path_buf()),
                Some(home) => Ok(home.join(rest)),
                None => Err(bad("starts with ~ but $HOME is not set")),
            },
            None => Ok(self.base_dir.join(raw)),
        }
    }

    fn ssh_layer(&mut self, raw: &RawSsh) -> SshLayer {
        SshLayer {
            user: self.setting(raw.user.as_ref(), "user", values::user_name),
            port: self.setting(raw.port.as_ref(), "port", values::port),
            identity_file: {
                let parsed = raw
                    .identity_file
                    .as_ref()
                    .map(|s| (s, self.local_path(&s.value, "identity_file")));
                self.located_result(parsed)
            },
            known_hosts: {
                let parsed = raw
                    .known_hosts
                    .as_ref()
                    .map(|s| (s, self.local_path(&s.value, "known_hosts")));
                self.located_result(parsed)
            },
            host_key_checking: self.setting(
                raw.host_key_checking.as_ref(),
                "host_key_checking",
                host_key_checking,
            ),
            become_root: self.setting(raw.become_root.as_ref(), "become", values::boolean),
            connect_timeout: self.setting(
                raw.connect_timeout.as_ref(),
                "connect_timeout",
                values::parse_duration,
            ),
        }
    }

    fn located_result<T>(
        &mut self,
        parsed: Option<(&Str, Result<T, InvalidValue>)>,
    ) -> Option<Setting<T>> {
        match parsed? {
            (s, Ok(value)) => Some(Setting {
                value,
                at: Some(s.referenced),
            }),
            (s, Err(e)) => {
                self.report(s.referenced, e.to_string());
                None
            }
        }
    }

    fn inventory(&mut self, raw: &Spanned<RawInventory>) -> Option<Parts> {
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
        let agents = self.agents(raw, doc, &defaults, ssh_section, by_zone_at);

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

    /// The `rollout:` section, and where `by: zone` was set, if it was.
    fn rollout(&mut self, raw: &RawInventory) -> (RolloutConfig, Option<Location>) {
        let defaults = RolloutConfig::default();
        let Some(r) = &raw.rollout else {
            return (defaults, None);
        };
        let r = &r.value;
        let batch = r
            .batch
            .as_ref()
            .and_then(|b| self.batch(b))
            .unwrap_or_else(|| defaults.batch.clone());
        let by_zone_at = match &r.by {
            Some(s) => self
                .check(s, "by", grouping)
                .and_then(|by_zone| by_zone.then_some(s.referenced)),
            None => None,
        };
        let rollout = RolloutConfig {
            batch,
            canary: self.or_default(r.canary.as_ref(), "canary", count, || defaults.canary),
            by_zone: by_zone_at.is_some(),
            max_failures: self.or_default(
                r.max_failures.as_ref(),
                "max_failures",
                |s| s.parse::<FailureBudget>(),
                || defaults.max_failures,
            ),
            min_healthy: self.or_default(
                r.min_healthy.as_ref(),
                "min_healthy",
                values::parse_wait,
                || defaults.min_healthy,
            ),
            health_timeout: self.or_default(
                r.health_timeout.as_ref(),
                "health_timeout",
                values::parse_duration,
                || defaults.health_timeout,
            ),
            revert: self.flag(r.revert.as_ref(), "revert", defaults.revert),
        };
        (rollout, by_zone_at)
    }

    /// `batch:` as a one-entry ramp, or the list it is.
    fn batch(&mut self, raw: &Spanned<RawBatch>) -> Option<Vec<BatchSize>> {
        let parse = |s: &str| s.parse::<BatchSize>();
        match &raw.value {
            RawBatch::One { text, typed } => {
                let text = if *typed {
                    self.source_text(raw.defined).unwrap_or(text)
                } else {
                    text
                };
                match parse(text) {
                    Ok(size) => Some(vec![size]),
                    Err(e) => {
                        self.report(raw.referenced, e.named("batch").to_string());
                        None
                    }
                }
            }
            RawBatch::Ramp(entries) if entries.is_empty() => {
                self.report(
                    raw.referenced,
                    "`batch` is an empty list; give a batch size such as 10 or \"20%\", \
                     or a ramp such as [1, 5, \"25%\"]",
                );
                None
            }
            RawBatch::Ramp(entries) => {
                let sizes: Vec<Option<BatchSize>> = entries
                    .iter()
                    .map(|s| self.check(s, "batch", parse))
                    .collect();
                sizes.into_iter().collect()
            }
        }
    }

    /// The text of the value at `at` as written in the file, for a plain
    /// scalar that YAML read as a number or a boolean.
    fn source_text(&self, at: Location) -> Option<&str> {
        let span = at.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let text = self.source.get(start..start.checked_add(len)?)?.trim();
        (!text.is_empty()).then_some(text)
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
        let binary = self.or_default(
            etcd.value.binary.as_ref(),
            "etcd binary",
            |s| s.parse::<RemotePath>(),
            || default_remote(DEFAULT_ETCD_BINARY),
        );
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
        Some(EtcdConfig {
            endpoints,
            proxy,
            binary,
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

    fn cni_binaries(&mut self, map: &Spanned<StrMap>) -> Option<Vec<CniBinary>> {
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut ok = true;
        for (name, path) in &map.value.0 {
            let Some(n) = self.check(name, "CNI binary name", values::file_name) else {
                ok = false;
                continue;
            };
            let what = format!("CNI binary `{n}`");
            match self.local_path(&path.value, &what) {
                Ok(local) => {
                    self.check_file(&local, FileCheck::CniBinary, path.referenced);
                    found.insert(n, local);
                }
                Err(e) => {
                    self.report(path.referenced, e.to_string());
                    ok = false;
                }
            }
        }
        for required in REQUIRED_CNI_BINARIES {
            if !found.contains_key(required) && ok {
                self.report(
                    map.referenced,
                    format!("`binaries` must include `{required}` (the local path of that plugin)"),
                );
                ok = false;
            }
        }
        ok.then(|| {
            found
                .into_iter()
                .map(|(name, local_path)| CniBinary { name, local_path })
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

    fn agents(
        &mut self,
        raw: &RawInventory,
        doc: Location,
        defaults: &SshLayer,
        ssh_section: Option<Location>,
        by_zone_at: Option<Location>,
    ) -> Option<Vec<Agent>> {
        let Some(list) = &raw.agents else {
            self.report(
                doc,
                "missing required list `agents` (each with a `name` and an `address`)",
            );
            return None;
        };
        if list.value.is_empty() {
            self.report(
                list.referenced,
                "`agents` is empty; list at least one agent",
            );
            return None;
        }
        let mut agents = Vec::new();
        let mut ok = true;
        let mut names: HashMap<String, u64> = HashMap::new();
        for entry in &list.value {
            if let Some(name) = &entry.value.name
                && values::agent_name(&name.value).is_ok()
            {
                if let Some(first) = names.get(&name.value) {
                    self.report(
                        name.referenced,
                        format!(
                            "agent name \"{}\" is used twice (first at line {first})",
                            name.value
                        ),
                    );
                    ok = false;
                } else {
                    names.insert(name.value.clone(), name.referenced.line());
                }
            }
            match self.agent(entry, defaults, ssh_section, by_zone_at) {
                Some(agent) => agents.push(agent),
                None => ok = false,
            }
        }
        ok.then_some(agents)
    }

    fn agent(
        &mut self,
        entry: &Spanned<RawAgent>,
        defaults: &SshLayer,
        ssh_section: Option<Location>,
        by_zone_at: Option<Location>,
    ) -> Option<Agent> {
        let raw = &entry.value;
        let name = match &raw.name {
            Some(s) => self.check(s, "agent name", values::agent_name),
            None => {
                self.report(entry.referenced, "agent needs a `name`");
                None
            }
        };
        let address = match &raw.address {
            Some(s) => self.check(s, "agent address", values::address),
            None => {
                self.report(
                    entry.referenced,
                    format!("agent{} needs an `address`", who(raw)),
                );
                None
            }
        };
        let role = self.or_default(raw.role.as_ref(), "role", role, || Role::Private);
        let zone = match (&raw.zone, by_zone_at) {
            (Some(s), _) => self.check(s, "zone", values::zone).map(Some),
            (None, Some(by_at)) => {
                self.report(
                    entry.referenced,
                    format!(
                        "agent{} needs a `zone`: the rollout goes zone by zone \
                         (`by: zone` at line {})",
                        who(raw),
                        by_at.line()
                    ),
                );
                None
            }
            (None, None) => Some(None),
        };
        let own = self.ssh_layer(&raw.ssh_overrides());
        let ssh = self.resolve_ssh(&own, defaults, entry.referenced, ssh_section)?;
        Some(Agent {
            name: name?,
            address: address?,
            role,
            zone: zone?,
            ssh,
        })
    }

    /// Agent keys win over the `ssh:` section, which wins over the defaults;
    /// then the local files the result names are checked.
    fn resolve_ssh(
        &mut self,
        own: &SshLayer,
        defaults: &SshLayer,
        agent_at: Location,
        ssh_section: Option<Location>,
    ) -> Option<SshSettings> {
        fn pick<T: Clone>(a: &Option<Setting<T>>, b: &Option<Setting<T>>) -> Option<Setting<T>> {
            a.clone().or_else(|| b.clone())
        }
        let user = pick(&own.user, &defaults.user).map_or(DEFAULT_USER.into(), |s| s.value);
        let port = pick(&own.port, &defaults.port).map_or(DEFAULT_PORT, |s| s.value);
        let become_root = pick(&own.become_root, &defaults.become_root).is_none_or(|s| s.value);
        let connect_timeout = pick(&own.connect_timeout, &defaults.connect_timeout)
            .map_or(DEFAULT_CONNECT_TIMEOUT, |s| s.value);
        let checking = pick(&own.host_key_checking, &defaults.host_key_checking);
        let host_key_checking = checking
            .as_ref()
            .map_or(HostKeyChecking::Strict, |s| s.value);

        let identity = pick(&own.identity_file, &defaults.identity_file);
        if let Some(id) = &identity {
            let at = id.at.unwrap_or(agent_at);
            self.check_file(&id.value, FileCheck::Identity, at);
        }

        let known_hosts = match pick(&own.known_hosts, &defaults.known_hosts) {
            Some(k) => k,
            None => match self.home {
                Some(home) => Setting {
                    value: home.join(".ssh/known_hosts"),
                    at: None,
                },
                None => {
                    if !self.home_reported {
                        self.home_reported = true;
                        self.report(
                            ssh_section.unwrap_or(agent_at),
                            format!(
                                "the default known_hosts {DEFAULT_KNOWN_HOSTS} needs $HOME, \
                                 which is not set; set `ssh.known_hosts`"
                            ),
                        );
                    }
                    return None;
                }
            },
        };
        let at = known_hosts
            .at
            .or(checking.as_ref().and_then(|c| c.at))
            .or(ssh_section)
            .unwrap_or(agent_at);
        let check = match host_key_checking {
            HostKeyChecking::Strict => FileCheck::KnownHostsStrict,
            HostKeyChecking::AcceptNew => FileCheck::KnownHostsAcceptNew,
        };
        self.check_file(&known_hosts.value, check, at);

        Some(SshSettings {
            user,
            port,
            identity_file: identity.map(|s| s.value),
            known_hosts: known_hosts.value,
            host_key_checking,
            become_root,
            connect_timeout,
        })
    }

    /// Checks a local file or folder once per (path, check), reporting at `at`.
    fn check_file(&mut self, path: &Path, check: FileCheck, at: Location) {
        if !self.files_checked.insert((path.to_path_buf(), check)) {
            return;
        }
        let shown = path.display();
        let meta = match fs::metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.report(at, format!("cannot inspect {shown}: {e}"));
                return;
            }
        };
        let message = match (check, meta) {
            (FileCheck::Templates, None) => {
                Some(format!("templates folder {shown} does not exist"))
            }
            (FileCheck::Templates, Some(m)) if !m.is_dir() => {
                Some(format!("templates {shown} is not a folder"))
            }
            (FileCheck::Templates, Some(_)) => fs::read_dir(path)
                .err()
                .map(|e| format!("cannot read templates folder {shown}: {e}")),
            (FileCheck::KnownHostsAcceptNew, None) => None,
            (FileCheck::KnownHostsStrict, None) => Some(format!(
                "known_hosts file {shown} does not exist; strict host key checking needs it \
                 (or use accept-new)"
            )),
            (FileCheck::Identity, None) => Some(format!("identity_file {shown} does not exist")),
            (FileCheck::CniBinary, None) => Some(format!("CNI binary {shown} does not exist")),
            (kind, Some(m)) => {
                let label = match kind {
                    FileCheck::Identity => "identity_file",
                    FileCheck::CniBinary => "CNI binary",
                    _ => "known_hosts file",
                };
                if !m.is_file() {
                    Some(format!("{label} {shown} is not a regular file"))
                } else {
                    fs::File::open(path)
                        .err()
                        .map(|e| format!("cannot read {label} {shown}: {e}"))
                }
            }
        };
        if let Some(message) = message {
            self.report(at, message);
        }
    }
}

fn default_remote(s: &str) -> RemotePath {
    s.parse().expect("default remote path is valid")
}

fn host_key_checking(s: &str) -> Result<HostKeyChecking, InvalidValue> {
    match s {
        "strict" => Ok(HostKeyChecking::Strict),
        "accept-new" => Ok(HostKeyChecking::AcceptNew),
        _ => Err(InvalidValue::new(
            "host_key_checking",
            s,
            "is not `strict` or `accept-new`",
        )),
    }
}

/// ` "name"` of an agent entry, for messages; empty without a name.
fn who(raw: &RawAgent) -> String {
    raw.name
        .as_ref()
        .map_or(String::new(), |n| format!(" \"{}\"", n.value))
}

/// `by:`: `true` for `zone`, `false` for `host`.
fn grouping(s: &str) -> Result<bool, InvalidValue> {
    match s {
        "host" => Ok(false),
        "zone" => Ok(true),
        _ => Err(InvalidValue::new("by", s, "is not `host` or `zone`")),
    }
}

fn role(s: &str) -> Result<Role, InvalidValue> {
    match s {
        "private" => Ok(Role::Private),
        "public" => Ok(Role::Public),
        _ => Err(InvalidValue::new("role", s, "is not `private` or `public`")),
    }
}

/// A non-negative whole number.
fn count(s: &str) -> Result<usize, InvalidValue> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse()
            .map_err(|_| InvalidValue::new("number", s, "is too large"))
    } else {
        Err(InvalidValue::new(
            "number",
            s,
            "is not a whole number (0 or more)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The example from the contract, verbatim.
    const EXAMPLE: &str = r#"ssh:                         # defaults for every agent; any key can be overridden per agent
  user: core
  port: 22
  identity_file: ~/.ssh/id_ed25519     # also use a running ssh-agent when present
  known_hosts: ~/.ssh/known_hosts
  host_key_checking: strict            # strict | accept-new
  become: true                         # sudo -n for privileged commands when user is not root
  connect_timeout: 10s
etcd:
  endpoints: [http://10.0.0.5:2379, http://10.0.0.6:2379]
  proxy: true
docker:
  enabled: true
  cluster_store: null                  # default etcd://127.0.0.1:2379 with the proxy, else the first endpoint
cni:
  enabled: true
  binaries: {calico: ./bin/calico, calico-ipam: ./bin/calico-ipam}   # paths relative to this file
  plugin_dir: /opt/mesosphere/active/cni
  config_dir: /opt/mesosphere/etc/dcos/network/cni
libnetwork:
  enabled: true
  image: calico/libnetwork-plugin:v1.1.3
node:
  enabled: true
  image: calico/node:v2.6.12
  env: {CALICO_NETWORKING_BACKEND: bird}
rollout:
  batch: 10                            # or "20%"
  max_failures: 0
agents:
  - {name: agent-1, address: 10.0.0.11}
  - {name: pub-1, address: 10.0.0.21, role: public}
  - {name: agent-2, address: 10.0.0.12, user: root, port: 2222}
"#;

    /// The smallest inventory that loads (known_hosts comes from $HOME).
    const MINIMAL: &str = "\
etcd:
  endpoints: [http://10.0.0.5:2379]
cni:
  binaries:
    calico: bin/calico
    calico-ipam: bin/calico-ipam
agents:
  - name: agent-1
    address: 10.0.0.11
";

    /// A temp folder holding the inventory, dummy binaries, and a fake
    /// home with `.ssh/known_hosts` and `.ssh/id_ed25519`.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let f = Fixture {
                dir: tempfile::tempdir().unwrap(),
            };
            f.write("bin/calico", "#!/bin/sh\n");
            f.write("bin/calico-ipam", "#!/bin/sh\n");
            f.write("home/.ssh/known_hosts", "");
            f.write("home/.ssh/id_ed25519", "key");
            f
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn home(&self) -> PathBuf {
            self.path("home")
        }

        fn write(&self, rel: &str, text: &str) {
            let p = self.path(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }

        fn load(&self, yaml: &str) -> Result<Inventory, InventoryError> {
            self.write("cluster.yaml", yaml);
            load_with_home(&self.path("cluster.yaml"), Some(&self.home()))
        }

        fn ok(&self, yaml: &str) -> Inventory {
            self.load(yaml)
                .unwrap_or_else(|e| panic!("inventory should load, got:\n{e}"))
        }

        fn err(&self, yaml: &str) -> InventoryError {
            match self.load(yaml) {
                Ok(_) => panic!("inventory should be rejected:\n{yaml}"),
                Err(e) => e,
            }
        }

        /// `…/cluster.yaml:` as errors print it.
        fn prefix(&self) -> String {
            format!("{}:", self.path("cluster.yaml").display())
        }
    }

    /// 1-based line and column of the first `needle` in `text`.
    fn pos(text: &str, needle: &str) -> (u64, u64) {
        let at = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in text"));
        line_col(&text.as_bytes()[..at])
    }

    fn replace(text: &str, old: &str, new: &str) -> String {
        assert!(text.contains(old), "{old:?} not in text");
        text.replacen(old, new, 1)
    }

    #[test]
    fn full_example_parses() {
        let f = Fixture::new();
        let inv = f.ok(EXAMPLE);
        let bytes = fs::read(f.path("cluster.yaml")).unwrap();
        assert_eq!(inv.path, f.path("cluster.yaml"));
        assert_eq!(inv.hash, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(inv.hash.len(), 64);

        let eps: Vec<String> = inv.etcd.endpoints.iter().map(|e| e.to_string()).collect();
        assert_eq!(eps, ["http://10.0.0.5:2379", "http://10.0.0.6:2379"]);
        assert!(inv.etcd.proxy);
        assert_eq!(inv.etcd.binary.as_str(), "/usr/bin/etcd");
        assert!(inv.docker.enabled);
        assert_eq!(inv.docker.cluster_store, None);

        assert!(inv.cni.enabled);
        let bins: Vec<(&str, PathBuf)> = inv
            .cni
            .binaries
            .iter()
            .map(|b| (b.name.as_str(), b.local_path.clone()))
            .collect();
        assert_eq!(
            bins,
            [
                ("calico", f.path("./bin/calico")),
                ("calico-ipam", f.path("./bin/calico-ipam"))
            ]
        );
        assert_eq!(inv.cni.plugin_dir.as_str(), "/opt/mesosphere/active/cni");
        assert_eq!(
            inv.cni.config_dir.as_str(),
            "/opt/mesosphere/etc/dcos/network/cni"
        );
        assert_eq!(
            inv.libnetwork.image.as_str(),
            "calico/libnetwork-plugin:v1.1.3"
        );
        assert!(inv.libnetwork.env.is_empty());
        assert_eq!(inv.node.image.as_str(), "calico/node:v2.6.12");
        assert_eq!(
            inv.node.env,
            BTreeMap::from([("CALICO_NETWORKING_BACKEND".into(), "bird".into())])
        );
        assert_eq!(
            inv.rollout,
            RolloutConfig {
                batch: vec![BatchSize::Count(10)],
                ..RolloutConfig::default()
            }
        );
        assert_eq!(inv.templates_dir, None);

        let names: Vec<&str> = inv.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["agent-1", "pub-1", "agent-2"]);
        let a1 = &inv.agents[0];
        assert_eq!(a1.address, "10.0.0.11");
        assert_eq!(a1.role, Role::Private);
        assert_eq!(a1.zone, None);
        assert_eq!(a1.ssh.user, "core");
        assert_eq!(a1.ssh.port, 22);
        assert_eq!(a1.ssh.identity_file, Some(f.home().join(".ssh/id_ed25519")));
        assert_eq!(a1.ssh.known_hosts, f.home().join(".ssh/known_hosts"));
        assert_eq!(a1.ssh.host_key_checking, HostKeyChecking::Strict);
        assert!(a1.ssh.become_root);
        assert!(a1.ssh.needs_sudo());
        assert_eq!(a1.ssh.connect_timeout, Duration::from_secs(10));
        assert_eq!(inv.agents[1].role, Role::Public);
        let a2 = &inv.agents[2];
        assert_eq!((a2.ssh.user.as_str(), a2.ssh.port), ("root", 2222));
        assert!(!a2.ssh.needs_sudo());
    }

    #[test]
    fn defaults_apply() {
        let f = Fixture::new();
        let inv = f.ok(MINIMAL);
        assert!(inv.etcd.proxy);
        assert_eq!(inv.etcd.binary.as_str(), "/usr/bin/etcd");
        assert!(inv.docker.enabled);
        assert_eq!(inv.docker.cluster_store, None);
        assert!(inv.cni.enabled);
        assert_eq!(inv.cni.plugin_dir.as_str(), "/opt/mesosphere/active/cni");
        assert_eq!(
            inv.cni.config_dir.as_str(),
            "/opt/mesosphere/etc/dcos/network/cni"
        );
        assert!(inv.libnetwork.enabled && inv.node.enabled);
        assert_eq!(
            inv.libnetwork.image.as_str(),
            "calico/libnetwork-plugin:v1.1.3"
        );
        assert_eq!(inv.node.image.as_str(), "calico/node:v2.6.12");
        assert!(inv.node.env.is_empty());
        let r = &inv.rollout;
        assert_eq!(r.batch, [BatchSize::Count(1)]);
        assert_eq!(r.canary, 0);
        assert!(!r.by_zone);
        assert_eq!(r.max_failures, FailureBudget::Count(0));
        assert_eq!(r.min_healthy, Duration::from_secs(10));
        assert_eq!(r.health_timeout, Duration::from_secs(60));
        assert!(r.revert);
        assert_eq!(*r, RolloutConfig::default());
        // An empty section is the same as none.
        assert_eq!(f.ok(&format!("{MINIMAL}rollout: {{}}\n")).rollout, *r);
        let a = &inv.agents[0];
        assert_eq!(a.role, Role::Private);
        assert_eq!(a.zone, None);
        assert_eq!(a.ssh.user, "root");
        assert_eq!(a.ssh.port, 22);
        assert_eq!(a.ssh.identity_file, None);
        assert_eq!(a.ssh.known_hosts, f.home().join(".ssh/known_hosts"));
        assert_eq!(a.ssh.host_key_checking, HostKeyChecking::Strict);
        assert!(a.ssh.become_root);
        assert_eq!(a.ssh.connect_timeout, Duration::from_secs(10));
    }

    #[test]
    fn added_keys_parse() {
        let f = Fixture::new();
        f.write("tpl/calico.env.j2", "");
        let extra = "\
templates: tpl
docker:
  enabled: false
  cluster_store: etcd://10.0.0.5:2379,10.0.0.6:2379/calico
etcd:
  endpoints: [https://etcd-1.example.com:4001, 'http://[fd00::5]']
  proxy: false
  binary: /opt/etcd/bin/etcd/
libnetwork:
  enabled: no
  env: {LOG_LEVEL: debug}
node:
  image: quay.io/calico/node:v2.6.12@sha256:DIGEST
rollout:
  batch: 20%
  max_failures: 3
  health_timeout: 1m30s
"
        .replace("DIGEST", &"ab".repeat(32));
        let yaml = (MINIMAL.to_string() + &extra).replacen(
            "etcd:\n  endpoints: [http://10.0.0.5:2379]\n",
            "",
            1,
        );
        let inv = f.ok(&yaml);
        assert_eq!(inv.templates_dir, Some(f.path("tpl")));
        assert!(!inv.docker.enabled);
        assert_eq!(
            inv.docker.cluster_store.as_deref(),
            Some("etcd://10.0.0.5:2379,10.0.0.6:2379/calico")
        );
        let eps: Vec<String> = inv.etcd.endpoints.iter().map(|e| e.host_port()).collect();
        assert_eq!(eps, ["etcd-1.example.com:4001", "[fd00::5]:2379"]);
        assert!(!inv.etcd.proxy);
        assert_eq!(inv.etcd.binary.as_str(), "/opt/etcd/bin/etcd");
        assert!(!inv.libnetwork.enabled);
        assert_eq!(inv.libnetwork.env["LOG_LEVEL"], "debug");
        assert!(
            inv.node
                .image
                .as_str()
                .starts_with("quay.io/calico/node:v2.6.12@sha256:")
        );
        assert_eq!(inv.rollout.batch, [BatchSize::Percent(20)]);
        assert_eq!(inv.rollout.batch[0].hosts_per_batch(14), 2);
        assert_eq!(inv.rollout.max_failures, FailureBudget::Count(3));
        assert_eq!(inv.rollout.health_timeout, Duration::from_secs(90));
    }

    #[test]
    fn rollout_keys_parse() {
        let f = Fixture::new();
        let zoned = replace(
            MINIMAL,
            "    address: 10.0.0.11\n",
            "    address: 10.0.0.11\n    zone: us-east-1a\n",
        ) + "  - {name: agent-2, address: 10.0.0.12, zone: us-east-1b}\n";
        let yaml = format!(
            "{zoned}rollout:
  batch: [1, 5, \"25%\"]
  canary: 2
  by: zone
  max_failures: 10%
  min_healthy: 0s
  health_timeout: 2m
  revert: false
"
        );
        let inv = f.ok(&yaml);
        assert_eq!(
            inv.rollout,
            RolloutConfig {
                batch: vec![
                    BatchSize::Count(1),
                    BatchSize::Count(5),
                    BatchSize::Percent(25)
                ],
                canary: 2,
                by_zone: true,
                max_failures: FailureBudget::Percent(10),
                min_healthy: Duration::ZERO,
                health_timeout: Duration::from_secs(120),
                revert: false,
            }
        );
        assert_eq!(inv.rollout.max_failures.allowed(12), 1);
        let zones: Vec<Option<&str>> = inv.agents.iter().map(|a| a.zone.as_deref()).collect();
        assert_eq!(zones, [Some("us-east-1a"), Some("us-east-1b")]);

        // Other spellings of the same values.
        let cases: &[(&str, RolloutConfig)] = &[
            (
                "rollout:\n  batch:\n    - 2\n    - 50%\n  by: host\n",
                RolloutConfig {
                    batch: vec![BatchSize::Count(2), BatchSize::Percent(50)],
                    ..RolloutConfig::default()
                },
            ),
            (
                "rollout: {\"batch\": 2, \"max_failures\": 0, \"health_timeout\": \"20s\"}\n",
                RolloutConfig {
                    batch: vec![BatchSize::Count(2)],
                    health_timeout: Duration::from_secs(20),
                    ..RolloutConfig::default()
                },
            ),
            (
                "rollout:\n  batch: [\"20%\"]\n  canary: 0\n  max_failures: 100%\n  revert: yes\n",
                RolloutConfig {
                    batch: vec![BatchSize::Percent(20)],
                    max_failures: FailureBudget::Percent(100),
                    ..RolloutConfig::default()
                },
            ),
            (
                "rollout:\n  canary: &n 3\n  batch: *n\n  min_healthy: 1m30s\n",
                RolloutConfig {
                    batch: vec![BatchSize::Count(3)],
                    canary: 3,
                    min_healthy: Duration::from_secs(90),
                    ..RolloutConfig::default()
                },
            ),
        ];
        for (section, want) in cases {
            let inv = f.ok(&format!("{zoned}{section}"));
            assert_eq!(inv.rollout, *want, "{section}");
        }
        // Zones are optional unless the rollout goes by zone.
        let inv = f.ok(&format!("{MINIMAL}rollout:\n  by: host\n"));
        assert!(!inv.rollout.by_zone);
        assert_eq!(inv.agents[0].zone, None);
    }

    #[test]
    fn by_zone_needs_a_zone_on_every_agent() {
        let f = Fixture::new();
        let yaml = replace(EXAMPLE, "max_failures: 0", "max_failures: 0\n  by: zone");
        let yaml = replace(
            &yaml,
            "address: 10.0.0.11}",
            "address: 10.0.0.11, zone: us-east-1a}",
        );
        let yaml = replace(&yaml, "port: 2222}", "port: 2222, zone: us-east-1b}");
        let (by_line, _) = pos(&yaml, "by: zone");
        let (line, col) = pos(&yaml, "{name: pub-1");
        let err = f.err(&yaml);
        assert_eq!(
            err.to_string(),
            format!(
                "{}{line}:{col}: agent \"pub-1\" needs a `zone`: the rollout goes zone by zone \
                 (`by: zone` at line {by_line})",
                f.prefix()
            )
        );

        let yaml = replace(&yaml, "role: public}", "role: public, zone: us-east-1a}");
        let inv = f.ok(&yaml);
        assert!(inv.rollout.by_zone);
        let zones: Vec<&str> = inv.agents.iter().flat_map(|a| a.zone.as_deref()).collect();
        assert_eq!(zones, ["us-east-1a", "us-east-1a", "us-east-1b"]);

        // Every agent without one is reported; one with a bad zone is
        // reported for the zone only.
        let yaml = format!(
            "{}rollout:\n  by: zone\n",
            replace(
                MINIMAL,
                "    address: 10.0.0.11\n",
                "    address: 10.0.0.11\n    zone: us_east-1.a\n  - {address: 10.0.0.12}\n  \
                 - {name: agent-3, address: 10.0.0.13}\n  - {name: agent-4, address: 10.0.0.14, zone: -x}\n",
            )
        );
        let err = f.err(&yaml);
        let got: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "11:5: agent needs a `name`",
                "11:5: agent needs a `zone`: the rollout goes zone by zone (`by: zone` at line 15)",
                "12:5: agent \"agent-3\" needs a `zone`: the rollout goes zone by zone \
                 (`by: zone` at line 15)",
                "13:47: zone \"-x\" must be 1 to 63 letters, digits, '.', '_' or '-', \
                 starting with a letter or digit",
            ],
            "{yaml}"
        );
    }

    #[test]
    fn batch_values_are_read_as_written() {
        let f = Fixture::new();
        // YAML reads these as numbers or booleans; the message quotes the file.
        for (value, problem) in [
            ("0x10", "is not a whole number or a percentage like \"20%\""),
            ("1.50", "is not a whole number or a percentage like \"20%\""),
            ("1e3", "is not a whole number or a percentage like \"20%\""),
            ("-3", "is not a whole number or a percentage like \"20%\""),
            ("yes", "is not a whole number or a percentage like \"20%\""),
            ("0", "must be at least 1"),
            ("'0'", "must be at least 1"),
            ("101%", "must be a percentage between 1% and 100%"),
        ] {
            let yaml = replace(EXAMPLE, "batch: 10 ", &format!("batch: {value} "));
            let (line, col) = pos(&yaml, &format!("{value} "));
            let shown = value.trim_matches('\'');
            assert_eq!(
                f.err(&yaml).to_string(),
                format!("{}{line}:{col}: batch \"{shown}\" {problem}", f.prefix()),
                "{value}"
            );
        }
        // Every bad entry of a ramp is reported at its place.
        let yaml = replace(EXAMPLE, "batch: 10 ", "batch: [0, 5, 1.5, \"200%\"] ");
        let err = f.err(&yaml);
        let got: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "28:11: batch \"0\" must be at least 1",
                "28:17: batch \"1.5\" is not a whole number or a percentage like \"20%\"",
                "28:22: batch \"200%\" must be a percentage between 1% and 100%",
            ]
        );
    }

    #[test]
    fn agent_keys_override_ssh_section() {
        let f = Fixture::new();
        f.write("keys/agent-2", "key");
        f.write("kh2", "");
        let yaml = MINIMAL.to_string()
            + "  - name: agent-2
    address: agent-2.example.com
    user: deploy
    port: 2222
    identity_file: keys/agent-2
    known_hosts: kh2
    host_key_checking: accept-new
    become: false
    connect_timeout: 1m
ssh:
  user: core
  port: 22
  identity_file: ~/.ssh/id_ed25519
  become: true
  connect_timeout: 5s
";
        let inv = f.ok(&yaml);
        let (a1, a2) = (&inv.agents[0].ssh, &inv.agents[1].ssh);
        assert_eq!(a1.user, "core");
        assert_eq!(a1.port, 22);
        assert_eq!(a1.identity_file, Some(f.home().join(".ssh/id_ed25519")));
        assert_eq!(a1.known_hosts, f.home().join(".ssh/known_hosts"));
        assert_eq!(a1.host_key_checking, HostKeyChecking::Strict);
        assert!(a1.become_root);
        assert_eq!(a1.connect_timeout, Duration::from_secs(5));

        assert_eq!(inv.agents[1].address, "agent-2.example.com");
        assert_eq!(a2.user, "deploy");
        assert_eq!(a2.port, 2222);
        assert_eq!(a2.identity_file, Some(f.path("keys/agent-2")));
        assert_eq!(a2.known_hosts, f.path("kh2"));
        assert_eq!(a2.host_key_checking, HostKeyChecking::AcceptNew);
        assert!(!a2.become_root);
        assert!(!a2.needs_sudo());
        assert_eq!(a2.connect_timeout, Duration::from_secs(60));
    }

    #[test]
    fn unknown_key_names_position_and_expected_keys() {
        let f = Fixture::new();
        let cases = [
            (
                "  batch: 10 ",
                "  bacth: 10 ",
                "bacth",
                "unknown field `bacth`, expected one of `batch`, `canary`, `by`, `max_failures`, \
                 `min_healthy`, `health_timeout`, `revert`",
            ),
            (
                "{name: agent-1,",
                "{name: agent-1, adress: x,",
                "adress",
                "unknown field `adress`, expected one of `name`, `address`, `role`, `zone`, \
                 `user`, `port`, `identity_file`, `known_hosts`, `host_key_checking`, `become`, \
                 `connect_timeout`",
            ),
            (
                "rollout:",
                "rollouts:",
                "rollouts",
                "unknown field `rollouts`, expected one of `ssh`, `etcd`, `docker`, `cni`, \
                 `libnetwork`, `node`, `rollout`, `templates`, `agents`",
            ),
            (
                "  proxy: true",
                "  proxy: true\n  prxy: false",
                "prxy",
                "unknown field `prxy`, expected one of `endpoints`, `proxy`, `binary`",
            ),
        ];
        for (old, new, at, message) in cases {
            let yaml = replace(EXAMPLE, old, new);
            let (line, col) = pos(&yaml, at);
            let err = f.err(&yaml);
            assert!(matches!(err, InventoryError::Yaml { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!("{}{line}:{col}: {message}", f.prefix())
            );
        }
    }

    #[test]
    fn shape_errors_read_well() {
        let f = Fixture::new();
        let cases = [
            (
                "rollout:\n",
                "rollout: 3\n",
                "rollout: 3",
                "expected a mapping (`key: value` entries) here",
            ),
            (
                "  endpoints: [http://10.0.0.5:2379, http://10.0.0.6:2379]",
                "  endpoints: http://10.0.0.5:2379",
                "http://10.0.0.5:2379",
                "expected a list here",
            ),
            (
                "  user: core",
                "  user: [core]",
                "[core]",
                "expected a single value here, not a list or a mapping",
            ),
            (
                "  max_failures: 0",
                "  max_failures: 0\n  max_failures: 1",
                "  max_failures: 1",
                "duplicate mapping key `max_failures` is not allowed here",
            ),
            (
                "  batch: 10 ",
                "  batch: {size: 10} ",
                "{size: 10}",
                "expected a batch size (a number or a percentage like \"20%\") or a list of them",
            ),
            (
                "  batch: 10 ",
                "  batch: [1, [2, 3]] ",
                "[2, 3]",
                "expected a single value here, not a list or a mapping",
            ),
            (
                "{calico: ./bin/calico,",
                "{calico: ./bin/calico, calico: ./bin/calico,",
                "calico: ./bin/calico, calico: ./bin/calico,",
                "duplicate mapping key `calico` is not allowed here",
            ),
            (
                "  env: {CALICO_NETWORKING_BACKEND: bird}",
                "  env: {CALICO_NETWORKING_BACKEND: ~}",
                "~}",
                "expected a value here, found nothing (null)",
            ),
        ];
        for (old, new, at, message) in cases {
            let yaml = replace(EXAMPLE, old, new);
            let err = f.err(&yaml);
            let (line, _) = pos(&yaml, at);
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("{}{line}:", f.prefix())) && text.ends_with(message),
                "for {new:?} (line {line}) got:\n{text}"
            );
            assert_eq!(text.lines().count(), 1, "{text}");
        }
        // Not YAML at all.
        let err = f.err("etcd: [\n");
        assert!(err.to_string().starts_with(&f.prefix()), "{err}");
        let err = f.err("ssh:\n  user: 'core\n");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}3:1: ", f.prefix())) && text.contains("quoted scalar"),
            "{text}"
        );
    }

    #[test]
    fn bad_values_are_located() {
        let f = Fixture::new();
        // (replace, with, where the bad value starts, expected message)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "address: 10.0.0.11",
                "address: 10.0.0.300",
                "10.0.0.300",
                "agent address \"10.0.0.300\" is not a valid host name or IP address",
            ),
            (
                "name: agent-2",
                "name: -agent-2",
                "-agent-2",
                "agent name \"-agent-2\" must be 1 to 63 letters",
            ),
            (
                "image: calico/node:v2.6.12",
                "image: calico/Node:v2.6.12",
                "calico/Node",
                "node image \"calico/Node:v2.6.12\" has an invalid name component \"Node\"",
            ),
            (
                "image: calico/libnetwork-plugin:v1.1.3",
                "image: calico/libnetwork-plugin:-v1",
                "calico/libnetwork-plugin:-v1",
                "libnetwork image \"calico/libnetwork-plugin:-v1\" has an invalid tag",
            ),
            (
                "plugin_dir: /opt/mesosphere/active/cni",
                "plugin_dir: opt/cni",
                "opt/cni",
                "plugin_dir \"opt/cni\" must be absolute (start with /)",
            ),
            (
                "config_dir: /opt/mesosphere/etc/dcos/network/cni",
                "config_dir: /opt/../etc",
                "/opt/../etc",
                "config_dir \"/opt/../etc\" must not contain a \"..\" component",
            ),
            (
                "http://10.0.0.6:2379",
                "10.0.0.6:2379",
                "10.0.0.6:2379",
                "etcd endpoint \"10.0.0.6:2379\" must start with http:// or https://",
            ),
            (
                "http://10.0.0.6:2379",
                "http://10.0.0.6:99999",
                "http://10.0.0.6:99999",
                "etcd endpoint \"http://10.0.0.6:99999\" has a port that is not between 1 and 65535",
            ),
            (
                "proxy: true",
                "proxy: true\n  binary: bin/etcd",
                "bin/etcd",
                "etcd binary \"bin/etcd\" must be absolute (start with /)",
            ),
            (
                "batch: 10 ",
                "batch: \"120%\" ",
                "\"120%\"",
                "batch \"120%\" must be a percentage between 1% and 100%",
            ),
            (
                "batch: 10 ",
                "batch: 0 ",
                "0 ",
                "batch \"0\" must be at least 1",
            ),
            (
                "batch: 10 ",
                "batch: [1, 5, 25%x] ",
                "25%x",
                "batch \"25%x\" is not a whole number or a percentage like \"20%\"",
            ),
            (
                "batch: 10 ",
                "batch: [1, 0] ",
                "0] ",
                "batch \"0\" must be at least 1",
            ),
            (
                "batch: 10 ",
                "batch: [] ",
                "[] ",
                "`batch` is an empty list; give a batch size such as 10 or \"20%\", \
                 or a ramp such as [1, 5, \"25%\"]",
            ),
            (
                "max_failures: 0",
                "max_failures: -1",
                "-1",
                "max_failures \"-1\" is not a whole number (0 or more) or a percentage like \"10%\"",
            ),
            (
                "max_failures: 0",
                "max_failures: \"150%\"",
                "\"150%\"",
                "max_failures \"150%\" must be a percentage between 0% and 100%",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  canary: -1",
                "-1",
                "canary \"-1\" is not a whole number (0 or more)",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  canary: two",
                "two\n",
                "canary \"two\" is not a whole number (0 or more)",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  canary: 1.5",
                "1.5",
                "canary \"1.5\" is not a whole number (0 or more)",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  by: rack",
                "rack",
                "by \"rack\" is not `host` or `zone`",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  min_healthy: 5",
                "5\n",
                "min_healthy \"5\" is not a duration like 10s, 500ms, 2m or 1m30s",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  health_timeout: 0s",
                "0s\nagents",
                "health_timeout \"0s\" must be longer than zero",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  revert: perhaps",
                "perhaps",
                "revert \"perhaps\" is not true or false",
            ),
            (
                "role: public}",
                "role: public, zone: us east-1a}",
                "us east-1a",
                "zone \"us east-1a\" must be 1 to 63 letters, digits, '.', '_' or '-', \
                 starting with a letter or digit",
            ),
            (
                "max_failures: 0",
                "max_failures: 0\n  health_timeout: 1d",
                "1d",
                "health_timeout \"1d\" is not a duration like 10s, 500ms, 2m or 1m30s",
            ),
            (
                "connect_timeout: 10s",
                "connect_timeout: 10",
                "10\n",
                "connect_timeout \"10\" is not a duration like 10s, 500ms, 2m or 1m30s",
            ),
            (
                "port: 2222",
                "port: 70000",
                "70000",
                "port \"70000\" is not a number between 1 and 65535",
            ),
            (
                "user: core",
                "user: Core",
                "Core",
                "user \"Core\" is not a valid user name",
            ),
            (
                "role: public",
                "role: master",
                "master",
                "role \"master\" is not `private` or `public`",
            ),
            (
                "become: true",
                "become: maybe",
                "maybe",
                "become \"maybe\" is not true or false",
            ),
            (
                "host_key_checking: strict",
                "host_key_checking: no",
                "no ",
                "host_key_checking \"no\" is not `strict` or `accept-new`",
            ),
            (
                "cluster_store: null",
                "cluster_store: http://10.0.0.5:2379",
                "http://10.0.0.5:2379 ",
                "cluster_store \"http://10.0.0.5:2379\" must start with etcd://, consul:// or zk://",
            ),
            (
                "cluster_store: null",
                "cluster_store: etcd://10.0.0.5",
                "etcd://10.0.0.5",
                "cluster_store \"etcd://10.0.0.5\" has \"10.0.0.5\" without a port",
            ),
            (
                "{CALICO_NETWORKING_BACKEND: bird}",
                "{CALICO_NETWORKING_BACKEND: bird, 9LIVES: x}",
                "9LIVES",
                "node env name \"9LIVES\" must be letters, digits and '_', not starting with a digit",
            ),
            (
                "{CALICO_NETWORKING_BACKEND: bird}",
                "{CALICO_NETWORKING_BACKEND: \"a\\nb\"}",
                "\"a\\nb\"",
                "node env value \"a\\nb\" must not contain a line break or NUL",
            ),
            (
                "calico-ipam: ./bin/calico-ipam}",
                "calico-ipam: ./bin/calico-ipam, ../x: ./bin/calico}",
                "../x",
                "CNI binary name \"../x\" must be a plain file name",
            ),
            (
                "identity_file: ~/.ssh/id_ed25519",
                "identity_file: ~bob/.ssh/id_ed25519",
                "~bob",
                "identity_file \"~bob/.ssh/id_ed25519\" uses ~user, which is not supported",
            ),
            (
                "enabled: true\n  image: calico/node",
                "enabled: sometimes\n  image: calico/node",
                "sometimes",
                "enabled \"sometimes\" is not true or false",
            ),
        ];
        for (old, new, at, message) in cases {
            let yaml = replace(EXAMPLE, old, new);
            let (line, col) = pos(&yaml, at);
            let err = f.err(&yaml);
            let text = err.to_string();
            assert!(
                matches!(err, InventoryError::Invalid { .. }),
                "{new:?}: expected a value error, got:\n{text}"
            );
            let want = format!("{}{line}:{col}: {message}", f.prefix());
            assert!(
                text.starts_with(&want),
                "{new:?}:\n  want {want}\n  got  {text}"
            );
            assert_eq!(err.problems().len(), 1, "{text}");
        }
    }

    #[test]
    fn required_parts() {
        let f = Fixture::new();
        let cases: &[(String, &str)] = &[
            (
                MINIMAL.replacen("etcd:\n  endpoints: [http://10.0.0.5:2379]\n", "", 1),
                "1:1: missing required section `etcd`",
            ),
            (
                MINIMAL.replacen("endpoints: [http://10.0.0.5:2379]", "proxy: false", 1),
                "2:3: `etcd` needs `endpoints`",
            ),
            (
                MINIMAL.replacen("[http://10.0.0.5:2379]", "[]", 1),
                "2:14: `endpoints` is empty",
            ),
            (
                MINIMAL.replacen(
                    "agents:\n  - name: agent-1\n    address: 10.0.0.11\n",
                    "",
                    1,
                ),
                "1:1: missing required list `agents`",
            ),
            (
                MINIMAL.replacen(
                    "agents:\n  - name: agent-1\n    address: 10.0.0.11\n",
                    "agents: []\n",
                    1,
                ),
                "7:9: `agents` is empty",
            ),
            (
                MINIMAL.replacen("    address: 10.0.0.11\n", "", 1),
                "8:5: agent \"agent-1\" needs an `address`",
            ),
            (
                MINIMAL.replacen("  - name: agent-1\n    address", "  - address", 1),
                "8:5: agent needs a `name`",
            ),
            (
                MINIMAL.replacen("    calico: bin/calico\n", "", 1),
                "5:5: `binaries` must include `calico`",
            ),
            (
                MINIMAL.replacen(
                    "  binaries:\n    calico: bin/calico\n    calico-ipam: bin/calico-ipam\n",
                    "  plugin_dir: /opt/cni\n",
                    1,
                ),
                "4:3: `cni` needs `binaries`",
            ),
            (
                MINIMAL.replacen(
                    "cni:\n  binaries:\n    calico: bin/calico\n    calico-ipam: bin/calico-ipam\n",
                    "",
                    1,
                ),
                "1:1: missing section `cni` with `binaries`",
            ),
            (String::new(), "1:1: missing required section `etcd`"),
        ];
        for (yaml, want) in cases {
            let text = f.err(yaml).to_string();
            let want = format!("{}{want}", f.prefix());
            assert!(
                text.lines().any(|l| l.starts_with(&want)),
                "want {want}\ngot:\n{text}\nfor:\n{yaml}"
            );
        }
        // CNI can be switched off, and then needs no binaries.
        let yaml = MINIMAL.replacen(
            "  binaries:\n    calico: bin/calico\n    calico-ipam: bin/calico-ipam\n",
            "  enabled: false\n",
            1,
        );
        let inv = f.ok(&yaml);
        assert!(!inv.cni.enabled);
        assert!(inv.cni.binaries.is_empty());
    }

    #[test]
    fn duplicate_agent_names() {
        let f = Fixture::new();
        let yaml = replace(EXAMPLE, "name: agent-2", "name: agent-1");
        let (line, col) = pos(&yaml, "agent-1, address: 10.0.0.12");
        let err = f.err(&yaml);
        assert_eq!(
            err.to_string(),
            format!(
                "{}{line}:{col}: agent name \"agent-1\" is used twice (first at line 31)",
                f.prefix()
            )
        );
    }

    #[test]
    fn missing_cni_binary() {
        let f = Fixture::new();
        fs::remove_file(f.path("bin/calico-ipam")).unwrap();
        let err = f.err(EXAMPLE);
        let (line, col) = pos(EXAMPLE, "./bin/calico-ipam");
        assert_eq!(
            err.to_string(),
            format!(
                "{}{line}:{col}: CNI binary {} does not exist",
                f.prefix(),
                f.path("./bin/calico-ipam").display()
            )
        );
        // A folder is not a binary.
        fs::create_dir(f.path("bin/calico-ipam")).unwrap();
        let text = f.err(EXAMPLE).to_string();
        assert!(
            text.ends_with("calico-ipam is not a regular file"),
            "{text}"
        );
    }

    #[test]
    fn missing_identity_file() {
        let f = Fixture::new();
        fs::remove_file(f.home().join(".ssh/id_ed25519")).unwrap();
        let err = f.err(EXAMPLE);
        let (line, col) = pos(EXAMPLE, "~/.ssh/id_ed25519");
        assert_eq!(
            err.to_string(),
            format!(
                "{}{line}:{col}: identity_file {} does not exist",
                f.prefix(),
                f.home().join(".ssh/id_ed25519").display()
            )
        );
        // Reported once, at the agent that set it when that is where it came from.
        let yaml = replace(
            MINIMAL,
            "address: 10.0.0.11\n",
            "address: 10.0.0.11\n    identity_file: keys/none\n",
        );
        let err = f.err(&yaml);
        assert_eq!(err.problems().len(), 1);
        assert_eq!(err.problems()[0].line, 10);
        assert_eq!(err.problems()[0].column, 20);
    }

    #[test]
    fn known_hosts_strict_vs_accept_new() {
        let f = Fixture::new();
        fs::remove_file(f.home().join(".ssh/known_hosts")).unwrap();
        let kh = f.home().join(".ssh/known_hosts");

        // Strict (the default) needs the file; reported once for all agents.
        let err = f.err(EXAMPLE);
        let (line, col) = pos(EXAMPLE, "~/.ssh/known_hosts");
        assert_eq!(
            err.to_string(),
            format!(
                "{}{line}:{col}: known_hosts file {} does not exist; strict host key checking \
                 needs it (or use accept-new)",
                f.prefix(),
                kh.display()
            )
        );

        // Defaulted known_hosts: reported where strict checking was chosen
        // (here: nowhere, so the agent entry).
        let err = f.err(MINIMAL);
        assert_eq!(err.problems().len(), 1, "{err}");
        assert_eq!((err.problems()[0].line, err.problems()[0].column), (8, 5));

        // accept-new: a missing file is fine, it will be created.
        let yaml = replace(
            EXAMPLE,
            "host_key_checking: strict",
            "host_key_checking: accept-new",
        );
        let inv = f.ok(&yaml);
        assert_eq!(inv.agents[0].ssh.known_hosts, kh);
        assert_eq!(
            inv.agents[0].ssh.host_key_checking,
            HostKeyChecking::AcceptNew
        );

        // Per agent: one agent on accept-new, the others strict.
        let yaml = replace(
            EXAMPLE,
            "{name: agent-1, address: 10.0.0.11}",
            "{name: agent-1, address: 10.0.0.11, host_key_checking: accept-new}",
        );
        let err = f.err(&yaml);
        assert_eq!(err.problems().len(), 1, "{err}");

        // But a known_hosts that is a folder is wrong either way.
        fs::create_dir_all(&kh).unwrap();
        let yaml = replace(
            EXAMPLE,
            "host_key_checking: strict",
            "host_key_checking: accept-new",
        );
        let text = f.err(&yaml).to_string();
        assert!(
            text.ends_with("known_hosts is not a regular file"),
            "{text}"
        );
    }

    #[test]
    fn tilde_and_relative_paths() {
        let f = Fixture::new();
        f.write("home/keys/k1", "key");
        f.write("home/kh", "");
        f.write("sub/kh", "");
        let yaml = format!(
            "{MINIMAL}ssh:\n  identity_file: ~/keys/k1\n  known_hosts: ~/kh\n\
             templates: \"~\"\n"
        );
        let inv = f.ok(&yaml);
        let ssh = &inv.agents[0].ssh;
        assert_eq!(ssh.identity_file, Some(f.home().join("keys/k1")));
        assert_eq!(ssh.known_hosts, f.home().join("kh"));
        assert_eq!(inv.templates_dir, Some(f.home()));

        // Relative paths resolve against the inventory's folder, not the
        // working directory.
        let yaml = format!("{MINIMAL}ssh:\n  known_hosts: sub/kh\n");
        let inv = f.ok(&yaml);
        assert_eq!(inv.agents[0].ssh.known_hosts, f.path("sub/kh"));
        assert!(inv.cni.binaries[0].local_path.is_absolute());

        // Without $HOME, ~ cannot expand.
        f.write(
            "cluster.yaml",
            &format!("{MINIMAL}ssh:\n  known_hosts: ~/kh\n"),
        );
        let err = load_with_home(&f.path("cluster.yaml"), None).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("known_hosts \"~/kh\" starts with ~ but $HOME is not set"),
            "{err}"
        );
    }

    #[test]
    fn templates_folder_must_exist() {
        let f = Fixture::new();
        let yaml = format!("{MINIMAL}templates: no-such-dir\n");
        let text = f.err(&yaml).to_string();
        assert!(
            text.starts_with(&format!("{}10:12: templates folder ", f.prefix()))
                && text.ends_with("no-such-dir does not exist"),
            "{text}"
        );
    }

    #[test]
    fn all_value_problems_are_reported_together() {
        let f = Fixture::new();
        let yaml = replace(EXAMPLE, "port: 2222", "port: 0");
        let yaml = replace(&yaml, "batch: 10", "batch: ten");
        let yaml = replace(&yaml, "user: core", "user: Core");
        fs::remove_file(f.path("bin/calico")).unwrap();
        let err = f.err(&yaml);
        let lines: Vec<u64> = err.problems().iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 17, 28, 33], "{err}");
        assert_eq!(err.to_string().lines().count(), 4);
        for line in err.to_string().lines() {
            assert!(line.starts_with(&f.prefix()), "{line}");
        }
    }

    #[test]
    fn unreadable_or_non_utf8_file() {
        let f = Fixture::new();
        let missing = f.path("nope.yaml");
        let err = load(&missing).unwrap_err();
        assert!(matches!(err, InventoryError::Read { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}: ", missing.display())),
            "{err}"
        );
        fs::write(f.path("bad.yaml"), b"etcd:\n  proxy: \xff\n").unwrap();
        let err = load(&f.path("bad.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2:10: the file is not valid UTF-8 text",
                f.path("bad.yaml").display()
            )
        );
    }
}
