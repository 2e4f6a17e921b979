//! etcd-proxy: an etcd gateway on 127.0.0.1:2379 as an enabled systemd
//! unit, and the etcd client TLS files every later step's clients read
//! (this step runs first, with or without the gateway).

use std::collections::BTreeSet;

use super::{Action, Change, Gate, Plan, Restart, add_binary, differs, file_diff, pending_restart};
use crate::desired::{ETCD_PROXY_UNIT, EtcdProxyDesired, EtcdRuns, TlsDesired};
use crate::facts::Facts;

pub fn plan(want: Option<&EtcdProxyDesired>, tls: Option<&TlsDesired>, facts: &Facts) -> Plan {
    let mut change = Change::default();
    if let Some(tls) = tls {
        if let Some(why) = super::tls::loopback_refusal(tls, facts) {
            return Plan::Refused(why);
        }
        super::tls::add_files(&mut change, tls, facts);
    }
    let Some(want) = want else {
        if tls.is_some() {
            return Plan::from_change(change);
        }
        return Plan::Skipped(
            "etcd.proxy is false: clients use the etcd endpoints directly".into(),
        );
    };
    let unit = ETCD_PROXY_UNIT;
    // A new etcd binary is an ordinary change: installed from staging and
    // rolled in batches, the gateway restarted onto it.
    let binary_changed = match &want.binary {
        EtcdRuns::OnAgent(path) if !facts.etcd_binary_ok => {
            return Plan::Refused(format!(
                "{path} is not an executable file on the agent: set etcd.binary to a local \
                 path or a {{url, sha256}} for calico-rollout to install, or install etcd there"
            ));
        }
        EtcdRuns::OnAgent(_) => false,
        EtcdRuns::Managed(bin) => {
            let changed = add_binary(&mut change, bin, facts, &mut BTreeSet::new(), Some(unit));
            if changed {
                change.apply.push(Action::ClearStage {
                    sha256s: vec![bin.sha256.clone()],
                });
            }
            changed
        }
    };
    let file_changed = differs(facts, &want.unit_file);
    if file_changed {
        change
            .summary
            .push(format!("write {}", want.unit_file.path));
        change
            .diffs
            .extend(file_diff(facts, &want.unit_file, false));
        let mut install = Action::install(&want.unit_file, facts);
        if let Action::Install(i) = &mut install {
            i.pending = Some(unit.into());
        }
        change.apply.push(install);
        change.apply.push(Action::DaemonReload);
    }
    let state = facts.unit(unit);
    if state.enabled != "enabled" {
        change.summary.push(format!("enable {unit}"));
        change.apply.push(Action::Enable { unit: unit.into() });
    }
    let active = state.active == "active";
    if file_changed || binary_changed || !active || pending_restart(facts, unit) {
        change.summary.push(if active {
            format!("restart {unit}")
        } else {
            format!("start {unit}")
        });
        change.restart = Some(Restart {
            unit: unit.into(),
            gate: Gate::EtcdGateway { tls: tls.is_some() },
        });
    }
    Plan::from_change(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::testing::{converged_facts, desired, fresh_facts};

    #[test]
    fn fresh_agent_gets_unit_enabled_and_started() {
        let want = desired();
        let Plan::Change(c) = plan(want.etcd_proxy.as_ref(), None, &fresh_facts()) else {
            panic!("expected a change");
        };
        let Action::Install(i) = &c.apply[0] else {
            panic!("{:?}", c.apply[0])
        };
        assert_eq!(i.pending.as_deref(), Some(ETCD_PROXY_UNIT));
        assert_eq!(c.apply[1], Action::DaemonReload);
        assert_eq!(c.restart.unwrap().gate, Gate::EtcdGateway { tls: false });
    }

    #[test]
    fn a_managed_etcd_is_installed_before_the_unit_and_restarts_the_gateway() {
        let mut want = desired();
        let proxy = want.etcd_proxy.as_mut().unwrap();
        let bin = crate::desired::Binary {
            name: "etcd".into(),
            from: crate::desired::BinaryFrom::Url("https://mirror.example/etcd".into()),
            path: crate::desired::MANAGED_ETCD_PATH.parse().unwrap(),
            sha256: "e".repeat(64),
        };
        proxy.binary = EtcdRuns::Managed(bin.clone());
        let Plan::Change(c) = plan(want.etcd_proxy.as_ref(), None, &fresh_facts()) else {
            panic!()
        };
        assert!(matches!(&c.stage[..], [Action::Download { .. }]));
        let Action::Install(first) = &c.apply[0] else {
            panic!("{:?}", c.apply)
        };
        assert_eq!(first.target.as_str(), crate::desired::MANAGED_ETCD_PATH);
        assert_eq!(first.mode, 0o755);

        // Only the binary differs: it still restarts the gateway onto it.
        let mut facts = converged_facts(&want);
        facts
            .hashes
            .insert(crate::desired::MANAGED_ETCD_PATH.into(), "0".repeat(64));
        let Plan::Change(c) = plan(want.etcd_proxy.as_ref(), None, &facts) else {
            panic!()
        };
        assert!(c.restart.is_some(), "{:?}", c.summary);
        facts
            .hashes
            .insert(crate::desired::MANAGED_ETCD_PATH.into(), bin.sha256);
        assert_eq!(plan(want.etcd_proxy.as_ref(), None, &facts), Plan::Ok);
    }

    #[test]
    fn table() {
        let want = desired();
        let proxy = want.etcd_proxy.as_ref();
        let mut stopped = converged_facts(&want);
        stopped.units.get_mut(ETCD_PROXY_UNIT).unwrap().active = "failed".into();
        let mut pending = converged_facts(&want);
        pending.pending.insert(ETCD_PROXY_UNIT.into());
        let mut no_binary = converged_facts(&want);
        no_binary.etcd_binary_ok = false;

        let restart_only = |p: Plan| match p {
            Plan::Change(c) => c.apply.is_empty() && c.restart.is_some(),
            _ => false,
        };
        assert_eq!(plan(proxy, None, &converged_facts(&want)), Plan::Ok);
        assert!(
            restart_only(plan(proxy, None, &stopped)),
            "a stopped gateway is started"
        );
        assert!(
            restart_only(plan(proxy, None, &pending)),
            "an unfinished restart is redone"
        );
        assert!(matches!(plan(proxy, None, &no_binary), Plan::Refused(_)));
        assert!(matches!(plan(None, None, &fresh_facts()), Plan::Skipped(_)));
    }
}
