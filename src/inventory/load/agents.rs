//! The `agents:` list and its SSH settings: each agent's own keys win over
//! the `ssh:` section, which wins over the operator's ssh_config, which wins
//! over the built-in defaults; then the key and known_hosts files the result
//! names are checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::check::{Checker, FileCheck, Setting};
use super::ssh_config::{ClientConfig, HostConfig};
use crate::inventory::raw::{RawAgent, RawInventory, RawSsh};
use crate::inventory::values::{self, InvalidValue, JumpSpec};
use crate::inventory::{Agent, HostKeyChecking, ProxyJump, Role, SshSettings};

const DEFAULT_USER: &str = "root";
const DEFAULT_PORT: u16 = 22;
const DEFAULT_KNOWN_HOSTS: &str = "~/.ssh/known_hosts";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One layer of SSH settings (the `ssh:` section, or one agent's keys),
/// with each value already checked. A key that was missing or invalid is
/// `None`.
#[derive(Debug, Default, Clone)]
pub(super) struct SshLayer {
    user: Option<Setting<String>>,
    port: Option<Setting<u16>>,
    identity_file: Option<Setting<PathBuf>>,
    known_hosts: Option<Setting<PathBuf>>,
    host_key_checking: Option<Setting<HostKeyChecking>>,
    become_root: Option<Setting<bool>>,
    connect_timeout: Option<Setting<Duration>>,
    proxy_jump: Option<Setting<JumpSpec>>,
}

impl Checker<'_> {
    pub(super) fn ssh_layer(&mut self, raw: &RawSsh) -> SshLayer {
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
            proxy_jump: self.setting(raw.proxy_jump.as_ref(), "proxy_jump", values::proxy_jump),
        }
    }

    pub(super) fn agents(
        &mut self,
        raw: &RawInventory,
        doc: Location,
        defaults: &SshLayer,
        client: Option<&ClientConfig>,
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
            match self.agent(entry, defaults, client, ssh_section, by_zone_at) {
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
        client: Option<&ClientConfig>,
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
        let mesos_address = match &raw.mesos_address {
            Some(s) => self.check(s, "mesos_address", values::address).map(Some),
            None => Some(None),
        };
        let own = self.ssh_layer(&raw.ssh_overrides());
        let address = address?;
        let layers = Layers {
            own: &own,
            defaults,
            client,
            address: &address,
        };
        let ssh = self.resolve_ssh(&layers, entry.referenced, ssh_section)?;
        Some(Agent {
            name: name?,
            address,
            role,
            zone: zone?,
            mesos_address: mesos_address?,
            ssh,
        })
    }

    /// Agent keys win over the `ssh:` section, which wins over ssh_config,
    /// which wins over the defaults; then the local files the result names
    /// are checked.
    fn resolve_ssh(
        &mut self,
        layers: &Layers<'_>,
        agent_at: Location,
        ssh_section: Option<Location>,
    ) -> Option<SshSettings> {
        fn pick<T: Clone>(a: &Option<Setting<T>>, b: &Option<Setting<T>>) -> Option<Setting<T>> {
            a.clone().or_else(|| b.clone())
        }
        let (own, defaults) = (layers.own, layers.defaults);
        let cfg = layers.host_config(layers.address);
        let from_config = self.config_values(layers, &cfg, agent_at);
        let user = pick(&own.user, &defaults.user)
            .map(|s| s.value)
            .or(from_config.user)
            .unwrap_or_else(|| DEFAULT_USER.into());
        let port = pick(&own.port, &defaults.port)
            .map(|s| s.value)
            .or(cfg.port)
            .unwrap_or(DEFAULT_PORT);
        let become_root = pick(&own.become_root, &defaults.become_root).is_none_or(|s| s.value);
        let connect_timeout = pick(&own.connect_timeout, &defaults.connect_timeout)
            .map_or(DEFAULT_CONNECT_TIMEOUT, |s| s.value);
        let checking = pick(&own.host_key_checking, &defaults.host_key_checking);
        let host_key_checking = checking
            .as_ref()
            .map_or(HostKeyChecking::Strict, |s| s.value);

        let identity = pick(&own.identity_file, &defaults.identity_file).or_else(|| {
            // OpenSSH skips the IdentityFile entries that do not exist.
            cfg.identity_files
                .iter()
                .find(|p| p.exists())
                .map(|p| Setting {
                    value: p.clone(),
                    at: None,
                })
        });
        if let Some(id) = &identity {
            let at = id.at.unwrap_or(agent_at);
            self.check_file(&id.value, FileCheck::Identity, at);
        }

        let known_hosts =
            match pick(&own.known_hosts, &defaults.known_hosts).or(from_config.known_hosts) {
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

        let jump = match pick(&own.proxy_jump, &defaults.proxy_jump) {
            Some(s) => Some(s.value),
            None => from_config.proxy_jump?,
        };
        let proxy_jump = match jump {
            None | Some(JumpSpec::Direct) => None,
            Some(JumpSpec::Via {
                user: jump_user,
                host,
                port,
            }) => {
                // The bastion is looked up in ssh_config too, as `ssh -J` does;
                // it is dialled directly (one hop).
                let bastion = layers.host_config(&host);
                for (keyword, value) in &bastion.unsupported {
                    self.report(
                        agent_at,
                        format!(
                            "`{keyword} {value}` in ssh config (Host {host}, the bastion) is not \
                             supported: calico-rollout would connect to the bastion without it"
                        ),
                    );
                }
                Some(ProxyJump {
                    user: jump_user
                        .or_else(|| {
                            bastion
                                .user
                                .clone()
                                .filter(|u| values::user_name(u).is_ok())
                        })
                        .unwrap_or_else(|| user.clone()),
                    host: bastion
                        .host_name
                        .clone()
                        .filter(|h| values::address(h).is_ok())
                        .unwrap_or(host),
                    port: port.or(bastion.port).unwrap_or(DEFAULT_PORT),
                })
            }
        };

        Some(SshSettings {
            host_name: from_config
                .host_name
                .unwrap_or_else(|| layers.address.to_string()),
            user,
            port,
            identity_file: identity.map(|s| s.value),
            known_hosts: known_hosts.value,
            host_key_checking,
            become_root,
            connect_timeout,
            proxy_jump,
        })
    }

    /// ssh_config's values for the agent, checked; a bad one is reported
    /// (naming the config file) and left out.
    fn config_values(
        &mut self,
        layers: &Layers<'_>,
        cfg: &HostConfig,
        agent_at: Location,
    ) -> ConfigValues {
        let mut out = ConfigValues {
            proxy_jump: Some(None),
            ..ConfigValues::default()
        };
        let Some(client) = layers.client else {
            return out;
        };
        let source = format!("in {} (Host {})", client.path.display(), layers.address);
        for (keyword, value) in &cfg.unsupported {
            self.report(
                agent_at,
                format!(
                    "`{keyword} {value}` {source} is not supported: calico-rollout would \
                     connect without it; use ProxyJump (or ssh.proxy_jump) and the host's own \
                     name in known_hosts"
                ),
            );
        }
        let checked = |this: &mut Self,
                       what: &str,
                       value: &str,
                       parse: fn(&str) -> Result<String, InvalidValue>| {
            match parse(value) {
                Ok(v) => Some(v),
                Err(e) => {
                    this.report(agent_at, format!("{} {source}", e.named(what)));
                    None
                }
            }
        };
        out.user = cfg
            .user
            .as_deref()
            .and_then(|u| checked(self, "User", u, values::user_name));
        out.host_name = cfg
            .host_name
            .as_deref()
            .and_then(|h| checked(self, "HostName", h, values::address));
        out.known_hosts = cfg.known_hosts.as_deref().and_then(|k| {
            match self.local_path(k, "UserKnownHostsFile") {
                Ok(value) => Some(Setting { value, at: None }),
                Err(e) => {
                    self.report(agent_at, format!("{e} {source}"));
                    None
                }
            }
        });
        out.proxy_jump = match cfg.proxy_jump.as_slice() {
            [] => Some(None),
            [one] => match values::proxy_jump(one) {
                Ok(spec) => Some(Some(spec)),
                Err(e) => {
                    self.report(agent_at, format!("{} {source}", e.named("ProxyJump")));
                    None
                }
            },
            chain => {
                self.report(
                    agent_at,
                    format!(
                        "ProxyJump {} {source} is a chain of bastions; calico-rollout \
                         connects through one (set `proxy_jump: user@host:port`)",
                        chain.join(",")
                    ),
                );
                None
            }
        };
        out
    }
}

/// The sources of one agent's SSH settings, strongest first.
struct Layers<'a> {
    own: &'a SshLayer,
    defaults: &'a SshLayer,
    client: Option<&'a ClientConfig>,
    address: &'a str,
}

impl Layers<'_> {
    fn host_config(&self, host: &str) -> HostConfig {
        self.client.map(|c| c.host(host)).unwrap_or_default()
    }
}

/// The checked values ssh_config gives an agent.
#[derive(Default)]
struct ConfigValues {
    user: Option<String>,
    host_name: Option<String>,
    known_hosts: Option<Setting<PathBuf>>,
    /// `None`: a bad value, already reported.
    proxy_jump: Option<Option<JumpSpec>>,
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

fn role(s: &str) -> Result<Role, InvalidValue> {
    match s {
        "private" => Ok(Role::Private),
        "public" => Ok(Role::Public),
        _ => Err(InvalidValue::new("role", s, "is not `private` or `public`")),
    }
}
