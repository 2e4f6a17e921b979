//! What a host is waiting for, in the operator's words: the progress
//! display names the real thing ("restarting docker, waiting for the
//! cluster store"), not the step's internal state.

use crate::steps::{Action, Change, Gate};

/// What a passing gate means.
pub fn gate(gate: &Gate) -> String {
    gate.means()
}

/// What passing gates mean, together.
pub fn gates(gates: &[Gate]) -> String {
    gates.iter().map(Gate::means).collect::<Vec<_>>().join(", ")
}

/// What a step's change waits on while it is made.
pub fn change(change: &Change) -> String {
    if let Some(restart) = &change.restart {
        return format!(
            "restarting {}, waiting for {}",
            restart.unit,
            gate(&restart.gate)
        );
    }
    let container = change.apply.iter().find_map(|a| match a {
        Action::ReplaceContainer(spec) => Some(format!("replacing {}", spec.name)),
        Action::StartContainer { name } => Some(format!("starting {name}")),
        _ => None,
    });
    match (container, &change.gate) {
        (Some(doing), Some(g)) => format!("{doing}, waiting for {}", gate(g)),
        (Some(doing), None) => doing,
        (None, Some(g)) => format!("waiting for {}", gate(g)),
        (None, None) => format!("writing: {}", change.summary.join("; ")),
    }
}

/// What one staging action is doing.
pub fn stage(action: &Action) -> String {
    match action {
        Action::Stage { local, size, .. } => format!(
            "uploading {} ({})",
            local.file_name().map_or_else(
                || local.display().to_string(),
                |n| n.to_string_lossy().into()
            ),
            bytes(*size)
        ),
        Action::Pull { image } => format!("pulling {image}"),
        Action::Download { url, .. } => format!("downloading {url}"),
        other => format!("{other:?}"),
    }
}

/// A file size as people read it.
fn bytes(n: u64) -> String {
    match n {
        n if n < 1 << 10 => format!("{n} bytes"),
        n if n < 1 << 20 => format!("{} KiB", n.div_ceil(1 << 10)),
        n => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
    }
}

/// The watch after every change: which services must stay up.
pub fn watch(gates: &[Gate]) -> String {
    let names: Vec<String> = gates
        .iter()
        .map(|g| match g {
            Gate::EtcdGateway { .. } => "the etcd gateway".into(),
            Gate::Docker { .. } => "docker".into(),
            Gate::Mesos { unit, .. } => unit.clone(),
            Gate::Container { name } => name.clone(),
            Gate::Felix { .. } => "Felix".into(),
            Gate::Bgp(_) => "the BGP sessions".into(),
            Gate::Plugin => "the libnetwork plugin".into(),
            Gate::Check(c) => format!("check {}", c.name),
        })
        .collect();
    format!("watching {} stay up (min_healthy)", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Restart;

    #[test]
    fn waits_name_the_real_thing() {
        let docker = Change {
            restart: Some(Restart {
                unit: "docker".into(),
                gate: Gate::Docker {
                    cluster_store: Some("etcd://127.0.0.1:2379".into()),
                },
            }),
            ..Change::default()
        };
        assert_eq!(
            change(&docker),
            "restarting docker, waiting for the cluster store"
        );
        let mesos = Gate::Mesos {
            unit: "dcos-mesos-slave".into(),
            address: "10.0.0.1".into(),
            port: 5051,
            registered: true,
        };
        assert_eq!(
            format!("waiting for {}", gate(&mesos)),
            "waiting for the Mesos agent's health endpoint and its registration with a master"
        );
        let pull = Action::Pull {
            image: "calico/node:v3.1.0".into(),
        };
        assert_eq!(stage(&pull), "pulling calico/node:v3.1.0");
        let upload = Action::Stage {
            local: "/srv/bin/calico".into(),
            sha256: String::new(),
            size: 3 << 19,
        };
        assert_eq!(stage(&upload), "uploading calico (1.5 MiB)");
        assert_eq!(bytes(244), "244 bytes");
        assert_eq!(bytes(5000), "5 KiB");
        assert_eq!(
            watch(&[
                mesos,
                Gate::Container {
                    name: "calico-node".into()
                }
            ]),
            "watching dcos-mesos-slave, calico-node stay up (min_healthy)"
        );
    }
}
