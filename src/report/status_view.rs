//! `status` for people: one block per group of hosts whose status reads
//! the same (`agent-[1-3] (3 hosts): converged`), one line per item, and a
//! host that could not be read in one line with its reason.

use std::fmt::Write;

use super::hosts::{group_by_text, heading};
use super::status::{Bgp, ContainerSeen, DriftStatus, Felix, Health, HostStatus, LockSeen, Seen};
use super::status::{Standing, StatusReport, Unread};

/// Labels line up at this width ("cluster store").
const LABEL: usize = 13;

/// Short enough to read, long enough to tell builds apart.
const SHORT_HASH: usize = 12;

pub fn render_status(report: &StatusReport) -> String {
    let groups = group_by_text(report.hosts.iter().map(|h| (h.host.as_str(), block(h))));
    let mut out = String::new();
    for (text, hosts) in &groups {
        let _ = write!(out, "{}: {text}", heading(hosts));
    }
    let count = |want: &[Standing]| {
        report
            .hosts
            .iter()
            .filter(|h| want.contains(&h.standing()))
            .count()
    };
    let _ = write!(
        out,
        "\nstatus: {} of {} host(s) converged, {} drifted",
        count(&[Standing::Converged]),
        report.hosts.len(),
        count(&[Standing::Drifted, Standing::Refused]),
    );
    let unhealthy = count(&[Standing::Unhealthy]);
    if unhealthy > 0 {
        let _ = write!(out, ", {unhealthy} unhealthy");
    }
    let unread = count(&[Standing::Unreadable]);
    if unread > 0 {
        let _ = write!(out, ", {unread} could not be read");
    }
    let _ = writeln!(out, "; nothing was written");
    out
}

/// A host's status after its name: its standing, then its items.
fn block(host: &HostStatus) -> String {
    let seen = match &host.seen {
        Err(Unread {
            unreachable: true,
            reason,
        }) => return format!("UNREACHABLE: {reason}\n"),
        Err(Unread { reason, .. }) => return format!("COULD NOT BE READ: {reason}\n"),
        Ok(seen) => seen,
    };
    let standing = match host.standing() {
        Standing::Converged => "converged",
        Standing::Drifted => "drift",
        Standing::Unhealthy => "unhealthy",
        Standing::Refused => "refused",
        Standing::Unreadable => unreachable!("a host that was read"),
    };
    let mut out = format!("{standing}\n");
    let mut line = |label: &str, text: &str| {
        let _ = writeln!(out, "  {label:<LABEL$}  {text}");
    };
    line("calico-node", &container(&seen.calico_node));
    line("libnetwork", &container(&seen.libnetwork));
    line("cni", &cni(seen));
    line(
        "cluster store",
        &match &seen.cluster_store {
            Ok(store) if store.is_empty() => "none".to_string(),
            Ok(store) => store.clone(),
            Err(why) => format!("unknown: {why}"),
        },
    );
    line(
        "gateway",
        &seen
            .gateway
            .as_ref()
            .map(health)
            .unwrap_or_else(|| "not run by calico-rollout (etcd.proxy is false)".into()),
    );
    line("mesos", &health(&seen.mesos));
    line(
        "felix",
        &match &seen.felix {
            Felix::Ready => "ready".to_string(),
            Felix::NotReady(why) => format!("NOT READY: {why}"),
            Felix::NotChecked(why) => why.clone(),
        },
    );
    line("bgp", &bgp(&seen.bgp));
    let failed = seen.checks.iter().filter(|c| c.result.is_err()).count();
    if seen.checks.is_empty() {
        line("checks", "none (rollout.checks is empty)");
    } else if failed == 0 {
        let names: Vec<&str> = seen.checks.iter().map(|c| c.name.as_str()).collect();
        line("checks", &format!("all pass: {}", names.join(", ")));
    } else {
        line(
            "checks",
            &format!("{failed} of {} FAILED", seen.checks.len()),
        );
        for c in &seen.checks {
            let text = match &c.result {
                Ok(()) => "pass",
                Err(why) => why,
            };
            line(&format!("  {}", c.name), text);
        }
    }
    line(
        "lock",
        &match &seen.lock {
            LockSeen::Free => "free".to_string(),
            LockSeen::Held(holder) => holder.to_string(),
            LockSeen::Unknown(why) => format!("unknown: {why}"),
        },
    );
    line(
        "last run",
        &seen
            .last_run
            .as_ref()
            .map(|r| format!("{} ({})", r.run_id, r.outcome))
            .unwrap_or_else(|| "none".into()),
    );
    let off: Vec<_> = seen
        .drift
        .iter()
        .filter(|d| matches!(d.status, DriftStatus::Drift | DriftStatus::Refused))
        .collect();
    if off.is_empty() {
        line("drift", "none");
    } else {
        line(
            "drift",
            &format!("{} of {} step(s)", off.len(), seen.drift.len()),
        );
        for d in &seen.drift {
            let text = match d.status {
                DriftStatus::Ok => "ok".to_string(),
                DriftStatus::Drift => format!("drift: {}", d.summary),
                DriftStatus::Skipped => format!("skipped ({})", d.summary),
                DriftStatus::Refused => format!("REFUSED: {}", d.summary),
            };
            let _ = writeln!(out, "    {:<11}  {text}", d.step.as_str());
        }
    }
    out
}

fn container(c: &ContainerSeen) -> String {
    match (&c.image, c.running) {
        (None, _) => "no container".to_string(),
        (Some(image), true) => format!("{image}, running"),
        (Some(image), false) => format!("{image}, NOT RUNNING"),
    }
}

/// `3/3 Established`, and the sessions that are not, with BIRD's state.
fn bgp(b: &Bgp) -> String {
    match b {
        Bgp::Sessions {
            established,
            total,
            down,
        } if down.is_empty() => format!("{established}/{total} Established"),
        Bgp::Sessions {
            established,
            total,
            down,
        } => format!(
            "{established}/{total} Established, DOWN: {}",
            down.join(", ")
        ),
        Bgp::Unreadable(why) => format!("UNREADABLE: {why}"),
        Bgp::NotChecked(why) => why.clone(),
    }
}

fn cni(seen: &Seen) -> String {
    if seen.cni.is_empty() {
        return "not managed (cni.enabled is false)".into();
    }
    let parts: Vec<String> = seen
        .cni
        .iter()
        .map(|(name, sha)| match sha {
            Some(sha) => format!("{name} {}", &sha[..SHORT_HASH.min(sha.len())]),
            None => format!("{name} missing"),
        })
        .collect();
    parts.join(", ")
}

/// Healthy, or why not. Where it was asked is left out when healthy: it
/// differs per host, and would keep hosts that agree from being grouped.
fn health(h: &Health) -> String {
    if h.healthy {
        "healthy".into()
    } else {
        format!("UNHEALTHY: {}", h.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Holder;
    use crate::report::status::{CheckSeen, LastRun, StepDrift, converged_host};
    use crate::step::StepName;

    const SNAPSHOT: &str = "src/report/snapshots/status.txt";

    /// Compares `got` with the file byte for byte; `UPDATE_SNAPSHOTS=1`
    /// writes it instead. A mismatch names the first line that differs.
    fn assert_snapshot(path: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want == got {
            return;
        }
        let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
        let at = (0..w.len().max(g.len()))
            .find(|&i| w.get(i) != g.get(i))
            .unwrap_or(w.len());
        panic!(
            "{} differs from the output, first at line {}:\n  snapshot: {:?}\n  output:   {:?}\n\
             whole output:\n{got}\n(run with UPDATE_SNAPSHOTS=1 to accept the output)",
            path.display(),
            at + 1,
            w.get(at).copied().unwrap_or("<end of file>"),
            g.get(at).copied().unwrap_or("<end of output>"),
        );
    }

    /// Three converged agents, one that drifted (and is held by a run),
    /// one where Calico does not network, one whose docker is refused (and
    /// runs Calico for policy only), and one unreachable.
    fn fleet() -> StatusReport {
        let mut drifted = converged_host("agent-4");
        if let Ok(s) = &mut drifted.seen {
            s.calico_node.image = Some("calico/node:v2.6.11".into());
            s.cni.insert("calico".into(), Some("c".repeat(64)));
            s.cni.insert("calico-ipam".into(), None);
            s.mesos = Health {
                healthy: false,
                detail: "dcos-mesos-slave is activating (auto-restart): Failed to bind".into(),
            };
            s.lock = LockSeen::Held(Holder {
                owner: "ops-1-1795340000".into(),
                user: "bob".into(),
                host: "ops".into(),
                pid: 77,
                space: String::new(),
                since: 1_795_340_000,
                refreshed: 1_795_340_030,
                stale: false,
                now: 1_795_340_035,
            });
            s.last_run = Some(LastRun {
                run_id: "ops-1-1795340000".into(),
                outcome: "applying".into(),
            });
            s.drift[2] = StepDrift {
                step: StepName::Cni,
                status: DriftStatus::Drift,
                summary:
                    "install /opt/mesosphere/active/cni/calico (sha256 aaaaaaaaaaaa…, 1024 bytes)"
                        .into(),
            };
            s.drift[4] = StepDrift {
                step: StepName::Node,
                status: DriftStatus::Drift,
                summary: "replace calico-node: calico/node:v2.6.11 -> calico/node:v2.6.12".into(),
            };
        }
        let mut sick = converged_host("agent-5");
        if let Ok(s) = &mut sick.seen {
            s.felix = Felix::NotReady("Felix is not ready: /readiness answered 503".into());
            s.bgp = Bgp::Sessions {
                established: 1,
                total: 3,
                down: vec![
                    "10.0.0.13 Active (Socket: Connection refused)".into(),
                    "10.0.0.14 Connect".into(),
                ],
            };
            s.checks.push(CheckSeen {
                name: "app".into(),
                result: Err("check app failed (exit 3): starting | no route to 10.0.9.1".into()),
            });
        }
        let mut refused = converged_host("pub-1");
        if let Ok(s) = &mut refused.seen {
            s.felix = Felix::NotChecked(
                "off: FELIX_HEALTHENABLED is not true in calico-node's environment".into(),
            );
            s.bgp = Bgp::NotChecked(
                "off: CALICO_NETWORKING_BACKEND is none (policy only): there is no BIRD".into(),
            );
            s.checks.clear();
            s.cluster_store = Ok(String::new());
            s.gateway = None;
            s.last_run = None;
            s.drift[0].status = DriftStatus::Skipped;
            s.drift[0].summary =
                "etcd.proxy is false: clients use the etcd endpoints directly".into();
            s.drift[1].status = DriftStatus::Refused;
            s.drift[1].summary =
                "docker 24.0.7 does not start with cluster-store in daemon.json".into();
        }
        StatusReport {
            inventory_path: "cluster.yaml".into(),
            inventory_sha256: "0".repeat(64),
            hosts: vec![
                converged_host("agent-1"),
                converged_host("agent-2"),
                converged_host("agent-3"),
                drifted,
                sick,
                refused,
                HostStatus {
                    host: "pub-2".into(),
                    seen: Err(Unread {
                        unreachable: true,
                        reason:
                            "cannot connect to 127.0.0.1:22199: Connection refused (os error 111)"
                                .into(),
                    }),
                },
            ],
        }
    }

    #[test]
    fn the_fleets_status_reads_as_the_snapshot() {
        assert_snapshot(SNAPSHOT, &render_status(&fleet()));
    }

    #[test]
    fn hosts_that_read_the_same_are_one_block() {
        let text = render_status(&fleet());
        assert!(
            text.starts_with("agent-[1-3] (3 hosts): converged\n"),
            "{text}"
        );
        assert_eq!(text.matches(": converged\n").count(), 1, "{text}");
        // One agent told apart by its lock alone is a block of its own.
        let mut fleet = fleet();
        if let Ok(s) = &mut fleet.hosts[1].seen {
            s.lock = LockSeen::Unknown("garbled".into());
        }
        let text = render_status(&fleet);
        assert!(
            text.starts_with("agent-1, agent-3 (2 hosts): converged\n"),
            "{text}"
        );
        assert!(text.contains("\nagent-2: converged\n"), "{text}");
    }

    #[test]
    fn a_host_where_calico_does_not_network_names_what_is_down() {
        let text = render_status(&fleet());
        for want in [
            "\nagent-5: unhealthy\n",
            "\n  felix          NOT READY: Felix is not ready: /readiness answered 503\n",
            "\n  bgp            1/3 Established, DOWN: 10.0.0.13 Active (Socket: Connection refused), 10.0.0.14 Connect\n",
            "\n  checks         1 of 2 FAILED\n    dns          pass\n    app          check app failed (exit 3): starting | no route to 10.0.9.1\n",
            "\n  bgp            3/3 Established\n",
            "\n  felix          ready\n",
            "\n  checks         all pass: dns\n",
            "\n  bgp            off: CALICO_NETWORKING_BACKEND is none",
            "\n  checks         none (rollout.checks is empty)\n",
            ", 1 unhealthy, 1 could not be read;",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    }

    #[test]
    fn an_unreadable_host_is_one_line() {
        let fleet = StatusReport {
            hosts: vec![HostStatus {
                host: "agent-9".into(),
                seen: Err(Unread {
                    unreachable: false,
                    reason: "no root privileges: sudo -n failed".into(),
                }),
            }],
            ..fleet()
        };
        assert_eq!(
            render_status(&fleet),
            "agent-9: COULD NOT BE READ: no root privileges: sudo -n failed\n\
             \nstatus: 0 of 1 host(s) converged, 0 drifted, 1 could not be read; nothing was written\n"
        );
    }
}
