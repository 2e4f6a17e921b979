//! cni: the calico and calico-ipam plugins and calico.cni, then a restart of
//! the Mesos agent unit when its configuration changed.

use std::collections::BTreeSet;

use super::{Action, Change, Gate, Plan, Restart, add_binary, differs, file_diff, pending_restart};
use crate::desired::CniDesired;
use crate::facts::Facts;
use crate::inventory::{Agent, RemotePath, Role};

/// Where Mesos is reached for its health check: the address DC/OS says it
/// listens on, else the inventory's `mesos_address`, else the SSH address.
pub fn mesos_address(agent: &Agent, facts: &Facts) -> String {
    facts
        .mesos_ip
        .clone()
        .or_else(|| agent.mesos_address.clone())
        .unwrap_or_else(|| agent.address.clone())
}

/// The temp folder for installs into the CNI config folder: beside it, on
/// the same filesystem, never in it.
fn config_tmp_dir(config_dir: &RemotePath) -> RemotePath {
    let dir = config_dir.as_str().trim_end_matches('/');
    let parent = match dir.rsplit_once('/') {
        Some(("", _)) | None => "",
        Some((parent, _)) => parent,
    };
    format!("{parent}/.calico-rollout-tmp")
        .parse()
        .expect("a folder beside an absolute path is absolute")
}

pub fn plan(agent: &Agent, want: Option<&CniDesired>, facts: &Facts) -> Plan {
    let Some(want) = want else {
        return Plan::Skipped("cni.enabled is false".into());
    };
    let unit = want.unit;
    if !facts.unit(unit).loaded {
        let other = match agent.role {
            Role::Private => Role::Public,
            Role::Public => Role::Private,
        }
        .mesos_unit();
        return Plan::Refused(if facts.unit(other).loaded {
            format!(
                "this agent runs {other}, not {unit}: fix its role in the inventory (role: {})",
                if other == Role::Public.mesos_unit() {
                    "public"
                } else {
                    "private"
                }
            )
        } else {
            format!("unit {unit}.service not found: is this a DC/OS agent?")
        });
    }

    let mut change = Change::default();
    let mut staged_now = BTreeSet::new();
    for bin in want.binaries.iter() {
        // calico and calico-ipam are often the same file: upload it once.
        add_binary(&mut change, bin, facts, &mut staged_now, None);
    }
    if !change.apply.is_empty() {
        let shas: BTreeSet<String> = want.binaries.iter().map(|b| b.sha256.clone()).collect();
        change.apply.push(Action::ClearStage {
            sha256s: shas.into_iter().collect(),
        });
    }
    // Plugins are executed per task, so new binaries alone need no restart;
    // the agent reads calico.cni only when it starts.
    let config_changed = differs(facts, &want.config);
    if config_changed {
        change.summary.push(format!("write {}", want.config.path));
        change.diffs.extend(file_diff(facts, &want.config, true));
        let mut install = Action::install(&want.config, facts);
        if let Action::Install(i) = &mut install {
            i.pending = Some(unit.into());
            i.tmp_dir = Some(config_tmp_dir(&want.config_dir));
        }
        change.apply.push(install);
    }
    if config_changed || pending_restart(facts, unit) {
        change.summary.push(format!("restart {unit}"));
        change.restart = Some(Restart {
            unit: unit.into(),
            gate: Gate::Mesos {
                unit: unit.into(),
                address: mesos_address(agent, facts),
                port: agent.role.mesos_port(),
                registered: true,
            },
        });
    }
    Plan::from_change(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::BinaryFrom;
    use crate::facts::Unit;
    use crate::steps::testing::{agent, converged_facts, desired, fresh_facts};

    #[test]
    fn fresh_agent_stages_binaries_then_installs_and_restarts() {
        let want = desired();
        let Plan::Change(c) = plan(&agent(Role::Private), want.cni.as_ref(), &fresh_facts()) else {
            panic!("expected a change")
        };
        assert_eq!(c.stage.len(), 2, "two distinct binaries are uploaded");
        let installs = c
            .apply
            .iter()
            .filter(|a| matches!(a, Action::Install(_)))
            .count();
        assert_eq!(installs, 3, "two binaries and calico.cni");
        let Some(Action::Install(config)) = c.apply.last() else {
            panic!("calico.cni is written last")
        };
        assert_eq!(
            config.tmp_dir.as_ref().map(|d| d.as_str()),
            Some("/opt/mesosphere/etc/dcos/network/.calico-rollout-tmp"),
            "never a half-written file in the folder Mesos loads"
        );
        let restart = c.restart.unwrap();
        assert_eq!(restart.unit, "dcos-mesos-slave");
        assert_eq!(
            restart.gate,
            Gate::Mesos {
                unit: "dcos-mesos-slave".into(),
                address: "10.0.0.11".into(),
                port: 5051,
                registered: true,
            }
        );
    }

    #[test]
    fn the_mesos_gate_asks_where_mesos_listens() {
        let want = desired();
        let mut facts = fresh_facts();
        let mut a = agent(Role::Private);
        assert_eq!(mesos_address(&a, &facts), "10.0.0.11");
        a.mesos_address = Some("10.1.0.11".into());
        assert_eq!(mesos_address(&a, &facts), "10.1.0.11");
        facts.mesos_ip = Some("172.18.0.4".into());
        let Plan::Change(c) = plan(&a, want.cni.as_ref(), &facts) else {
            panic!("expected a change")
        };
        assert!(
            matches!(c.restart.unwrap().gate, Gate::Mesos { address, .. } if address == "172.18.0.4")
        );
    }

    #[test]
    fn binary_upgrade_alone_does_not_restart_the_agent() {
        let want = desired();
        let mut facts = converged_facts(&want);
        let calico = &want.cni.as_ref().unwrap().binaries[0];
        facts.hashes.insert(calico.path.to_string(), "0".repeat(64));
        let Plan::Change(c) = plan(&agent(Role::Private), want.cni.as_ref(), &facts) else {
            panic!("expected a change")
        };
        assert_eq!(c.stage.len(), 1);
        assert!(c.restart.is_none());
    }

    #[test]
    fn a_binary_from_a_url_is_downloaded_by_the_agent() {
        let mut want = desired();
        let cni = want.cni.as_mut().unwrap();
        let mut bins = cni.binaries.to_vec();
        bins[0].from = BinaryFrom::Url("https://mirror.example/calico".into());
        cni.binaries = bins.into();
        let Plan::Change(c) = plan(&agent(Role::Private), want.cni.as_ref(), &fresh_facts()) else {
            panic!("expected a change")
        };
        assert_eq!(
            c.stage[0],
            Action::Download {
                url: "https://mirror.example/calico".into(),
                sha256: "a".repeat(64)
            }
        );
        assert!(matches!(c.stage[1], Action::Stage { .. }));
        assert!(
            c.summary[0].contains("downloaded by the agent"),
            "{}",
            c.summary[0]
        );
    }

    #[test]
    fn already_staged_binaries_are_not_sent_again() {
        let want = desired();
        let mut facts = fresh_facts();
        for b in want.cni.as_ref().unwrap().binaries.iter() {
            facts.staged.insert(b.sha256.clone());
        }
        let Plan::Change(c) = plan(&agent(Role::Private), want.cni.as_ref(), &facts) else {
            panic!("expected a change")
        };
        assert!(c.stage.is_empty());
    }

    #[test]
    fn table() {
        let want = desired();
        let cni = want.cni.as_ref();
        let converged = converged_facts(&want);
        let mut public_unit = converged.clone();
        public_unit.units.remove("dcos-mesos-slave");
        public_unit.units.insert(
            "dcos-mesos-slave-public".into(),
            Unit {
                loaded: true,
                ..Unit::default()
            },
        );
        let mut no_unit = converged.clone();
        no_unit.units.remove("dcos-mesos-slave");

        assert_eq!(plan(&agent(Role::Private), cni, &converged), Plan::Ok);
        assert!(matches!(
            plan(&agent(Role::Private), None, &converged),
            Plan::Skipped(_)
        ));
        match plan(&agent(Role::Private), cni, &public_unit) {
            Plan::Refused(why) => assert!(why.contains("role: public"), "{why}"),
            other => panic!("{other:?}"),
        }
        match plan(&agent(Role::Private), cni, &no_unit) {
            Plan::Refused(why) => assert!(why.contains("not found"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
