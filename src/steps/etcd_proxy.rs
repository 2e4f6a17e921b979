//! etcd-proxy: an etcd gateway on 127.0.0.1:2379 as an enabled systemd unit.

use super::{Action, Change, Gate, Plan, Restart, differs, pending_restart};
use crate::desired::{ETCD_PROXY_UNIT, EtcdProxyDesired};
use crate::facts::Facts;

pub fn plan(want: Option<&EtcdProxyDesired>, facts: &Facts) -> Plan {
    let Some(want) = want else {
        return Plan::Skipped(
            "etcd.proxy is false: clients use the etcd endpoints directly".into(),
        );
    };
    if !facts.etcd_binary_ok {
        return Plan::Refused(format!(
            "{} is not an executable file on the agent: install etcd there, or set etcd.binary",
            want.binary
        ));
    }
    let unit = ETCD_PROXY_UNIT;
    let mut change = Change::default();
    let file_changed = differs(facts, &want.unit_file);
    if file_changed {
        change
            .summary
            .push(format!("write {}", want.unit_file.path));
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
    if file_changed || !active || pending_restart(facts, unit) {
        change.summary.push(if active {
            format!("restart {unit}")
        } else {
            format!("start {unit}")
        });
        change.restart = Some(Restart {
            unit: unit.into(),
            gate: Gate::EtcdGateway,
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
        let Plan::Change(c) = plan(want.etcd_proxy.as_ref(), &fresh_facts()) else {
            panic!("expected a change");
        };
        let Action::Install(i) = &c.apply[0] else {
            panic!("{:?}", c.apply[0])
        };
        assert_eq!(i.pending.as_deref(), Some(ETCD_PROXY_UNIT));
        assert_eq!(c.apply[1], Action::DaemonReload);
        assert_eq!(c.restart.unwrap().gate, Gate::EtcdGateway);
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
        assert_eq!(plan(proxy, &converged_facts(&want)), Plan::Ok);
        assert!(
            restart_only(plan(proxy, &stopped)),
            "a stopped gateway is started"
        );
        assert!(
            restart_only(plan(proxy, &pending)),
            "an unfinished restart is redone"
        );
        assert!(matches!(plan(proxy, &no_binary), Plan::Refused(_)));
        assert!(matches!(plan(None, &fresh_facts()), Plan::Skipped(_)));
    }
}
