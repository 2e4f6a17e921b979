//! The operator's OpenSSH client config (`~/.ssh/config`, or
//! `ssh.config_file`): what it says about one host, for the keywords
//! calico-rollout uses (`HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump`, `UserKnownHostsFile`). Parsing and `Host` matching are
//! ssh2-config's; the first value found for a keyword wins, as in OpenSSH.
//!
//! A missing `~/.ssh/config` is simply not used; a missing
//! `ssh.config_file` is an error.

use std::fs;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use serde_saphyr::Location;
use ssh2_config::{ParseRule, SshConfig};

use super::check::Checker;
use crate::inventory::raw::Str;

/// A parsed client config and where it came from, for messages.
pub(super) struct ClientConfig {
    pub(super) path: PathBuf,
    config: SshConfig,
}

/// What the client config says about one host; `None` where it is silent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct HostConfig {
    pub(super) host_name: Option<String>,
    pub(super) user: Option<String>,
    pub(super) port: Option<u16>,
    /// In file order; OpenSSH tries each one that exists.
    pub(super) identity_files: Vec<PathBuf>,
    /// Every hop, as written (a chain has more than one).
    pub(super) proxy_jump: Vec<String>,
    pub(super) known_hosts: Option<String>,
    /// Keywords calico-rollout cannot honour and must not ignore, with
    /// their values: `ProxyCommand` (dialling the host itself would reach
    /// another place than `ssh` does) and `HostKeyAlias` (the key would be
    /// checked, or recorded, under another name).
    pub(super) unsupported: Vec<(&'static str, String)>,
}

impl ClientConfig {
    pub(super) fn parse(path: &Path, text: &str, home: Option<&Path>) -> Result<Self, String> {
        let mut config = SshConfig::default();
        if let Some(home) = home {
            config = config.home_dir(home);
        }
        // Keywords calico-rollout does not use are no reason to refuse the
        // operator's file.
        let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let config = config
            .parse(&mut BufReader::new(text.as_bytes()), rules)
            .map_err(|e| e.to_string())?;
        Ok(ClientConfig {
            path: path.to_path_buf(),
            config,
        })
    }

    /// The settings for `host`, as `ssh host` would take them.
    pub(super) fn host(&self, host: &str) -> HostConfig {
        let params = self.config.query(host);
        let known_hosts = params
            .unsupported_fields
            .get("userknownhostsfile")
            .and_then(|files| files.first().cloned());
        let unsupported = [
            ("ProxyCommand", "proxycommand"),
            ("HostKeyAlias", "hostkeyalias"),
        ]
        .into_iter()
        .filter_map(|(keyword, key)| {
            let value = params.unsupported_fields.get(key)?.join(" ");
            // `ProxyCommand none` is OpenSSH's way to say there is none.
            (!value.eq_ignore_ascii_case("none")).then_some((keyword, value))
        })
        .collect();
        HostConfig {
            unsupported,
            host_name: params.host_name,
            user: params.user,
            port: params.port,
            identity_files: params.identity_file.unwrap_or_default(),
            proxy_jump: params.proxy_jump.unwrap_or_default(),
            known_hosts,
        }
    }
}

impl Checker<'_> {
    /// Reads `ssh.config_file`, or else `~/.ssh/config` when there is one.
    pub(super) fn client_config(
        &mut self,
        config_file: Option<&Str>,
        ssh_section: Option<Location>,
        doc: Location,
    ) -> Option<ClientConfig> {
        let (path, at, explicit) = match config_file {
            Some(s) => match self.local_path(&s.value, "config_file") {
                Ok(path) => (path, s.referenced, true),
                Err(e) => {
                    self.report(s.referenced, e.to_string());
                    return None;
                }
            },
            None => (
                self.home?.join(".ssh/config"),
                ssh_section.unwrap_or(doc),
                false,
            ),
        };
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => return None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.report(
                    at,
                    format!("ssh config_file {} does not exist", path.display()),
                );
                return None;
            }
            Err(e) => {
                self.report(
                    at,
                    format!("cannot read ssh config {}: {e}", path.display()),
                );
                return None;
            }
        };
        match ClientConfig::parse(&path, &text, self.home) {
            Ok(config) => Some(config),
            Err(e) => {
                self.report(at, format!("cannot use ssh config {}: {e}", path.display()));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ClientConfig {
        ClientConfig::parse(Path::new("/x/config"), text, Some(Path::new("/home/op"))).unwrap()
    }

    const TEXT: &str = "\
Host bastion
    HostName 203.0.113.7
    User jump
    Port 2222

Host agent-* !agent-9
    User core
    ProxyJump bastion
    IdentityFile ~/.ssh/fleet
    UserKnownHostsFile ~/.ssh/fleet_hosts

Host agent-1
    User ignored-first-wins
    Port 2200

Host *
    User fallback
    IdentityFile ~/.ssh/id_default
    ForwardAgent no
    SomeFutureKeyword yes
";

    #[test]
    fn host_patterns_match_and_the_first_value_wins() {
        let c = config(TEXT);
        let a1 = c.host("agent-1");
        assert_eq!(a1.user.as_deref(), Some("core"));
        assert_eq!(a1.port, Some(2200));
        assert_eq!(a1.proxy_jump, vec!["bastion".to_string()]);
        assert_eq!(a1.known_hosts.as_deref(), Some("~/.ssh/fleet_hosts"));
        assert_eq!(
            a1.identity_files,
            vec![
                PathBuf::from("/home/op/.ssh/fleet"),
                PathBuf::from("/home/op/.ssh/id_default")
            ]
        );
        assert_eq!(a1.host_name, None);

        // Negated: agent-9 only gets the catch-all.
        let a9 = c.host("agent-9");
        assert_eq!(a9.user.as_deref(), Some("fallback"));
        assert!(a9.proxy_jump.is_empty());

        let b = c.host("bastion");
        assert_eq!(b.host_name.as_deref(), Some("203.0.113.7"));
        assert_eq!((b.user.as_deref(), b.port), (Some("jump"), Some(2222)));
    }

    #[test]
    fn keywords_that_would_connect_elsewhere_are_kept_to_refuse() {
        let c = config(
            "Host a\n  ProxyCommand ssh -W %h:%p jump\n  HostKeyAlias fleet\n\
             Host b\n  ProxyCommand none\n",
        );
        assert_eq!(
            c.host("a").unsupported,
            [
                ("ProxyCommand", "ssh -W %h:%p jump".to_string()),
                ("HostKeyAlias", "fleet".to_string())
            ]
        );
        assert!(c.host("b").unsupported.is_empty());
    }

    #[test]
    fn chains_are_kept_hop_by_hop() {
        let c = config("Host a\n  ProxyJump j1,ops@j2:22\n");
        assert_eq!(c.host("a").proxy_jump, vec!["j1", "ops@j2:22"]);
    }

    #[test]
    fn a_bad_value_is_an_error() {
        let err = ClientConfig::parse(Path::new("/x"), "Host a\n  Port many\n", None)
            .err()
            .unwrap();
        assert!(err.contains("port"), "{err}");
    }
}
