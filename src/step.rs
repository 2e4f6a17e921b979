//! The five steps by name, and what one applied change takes back. Shared
//! vocabulary of the planners, the on-agent history and the report.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepName {
    EtcdProxy,
    Docker,
    Cni,
    Libnetwork,
    Node,
}

impl StepName {
    /// In the order a host runs them: each relies on the ones before it.
    pub const ALL: [StepName; 5] = [
        StepName::EtcdProxy,
        StepName::Docker,
        StepName::Cni,
        StepName::Libnetwork,
        StepName::Node,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepName::EtcdProxy => "etcd-proxy",
            StepName::Docker => "docker",
            StepName::Cni => "cni",
            StepName::Libnetwork => "libnetwork",
            StepName::Node => "node",
        }
    }

    pub fn index(self) -> usize {
        StepName::ALL
            .iter()
            .position(|&s| s == self)
            .expect("every step is in ALL")
    }

    pub fn parse(text: &str) -> Option<StepName> {
        StepName::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to take back one applied change. Written to the agent before the
/// change is made, so that a revert or a later `rollback` can take it back
/// even if the controller is gone by then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    /// Put back the version saved by this run before the change, or remove
    /// the file when there was none.
    File {
        target: String,
        existed: bool,
        /// Where the temporary file is made (see `steps::Install::tmp_dir`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tmp_dir: Option<String>,
    },
    /// Put back the container a replacement retired (under `retired`), or
    /// remove the new one when there was none.
    Container {
        name: String,
        /// The retired container's id; none when the name was free.
        previous_id: Option<String>,
        /// Where the retired container waits, stopped.
        retired: String,
        /// Its restart policy before it was retired.
        policy: String,
        /// Whether it was running.
        was_running: bool,
        /// The spec label of the container that replaced it: only that
        /// one is ever removed by the undo.
        spec_hash: String,
    },
}

impl Undo {
    /// Whether taking this back removes `unit`'s unit file, which also
    /// stops the unit: there is then nothing left to restart.
    pub fn removes_unit(&self, unit: &str) -> bool {
        matches!(self, Undo::File { target, existed: false, .. }
            if target.ends_with(&format!("/{unit}.service")))
    }

    /// What taking it back does, in words.
    pub fn describe(&self) -> String {
        match self {
            Undo::File {
                target,
                existed: true,
                ..
            } => format!("put back the previous {target}"),
            Undo::File {
                target,
                existed: false,
                ..
            } => format!("remove {target}"),
            Undo::Container {
                name,
                previous_id: Some(_),
                ..
            } => format!("put back the previous {name} container"),
            Undo::Container {
                name,
                previous_id: None,
                ..
            } => format!("remove the {name} container"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for step in StepName::ALL {
            assert_eq!(StepName::parse(step.as_str()), Some(step));
            assert_eq!(StepName::ALL[step.index()], step);
        }
        assert_eq!(StepName::parse("dockr"), None);
    }

    #[test]
    fn a_fresh_unit_file_removal_removes_the_unit() {
        let fresh = Undo::File {
            target: "/etc/systemd/system/calico-etcd-proxy.service".into(),
            existed: false,
            tmp_dir: None,
        };
        assert!(fresh.removes_unit("calico-etcd-proxy"));
        assert!(!fresh.removes_unit("docker"));
        let old = Undo::File {
            target: "/etc/systemd/system/calico-etcd-proxy.service".into(),
            existed: true,
            tmp_dir: None,
        };
        assert!(!old.removes_unit("calico-etcd-proxy"));
    }
}
