//! What `calico-rollout status` found on each host, and its `--json`
//! form. Drift is the planners' own verdict over the facts read, so
//! status and `plan` can never disagree.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::lock::Holder;
use crate::step::StepName;
use crate::steps::{Plan, StepPlan};

/// The whole answer: every selected host, in inventory order.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub inventory_path: String,
    pub inventory_sha256: String,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub host: String,
    /// What was read, or why the host could not be read.
    pub seen: Result<Seen, Unread>,
}

/// Why a host could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// The connection could not be made or dropped (rather than the agent
    /// answering with a failure).
    pub unreachable: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub calico_node: ContainerSeen,
    pub libnetwork: ContainerSeen,
    /// Plugin name → the sha256 of the installed binary, if there is one.
    /// Empty when this inventory does not manage CNI.
    pub cni: BTreeMap<String, Option<String>>,
    /// What `docker info` shows ("" for none), or why it could not be read.
    pub cluster_store: Result<String, String>,
    /// `None` when this inventory runs no gateway.
    pub gateway: Option<Health>,
    pub mesos: Health,
    /// Whether Felix, calico-node's policy agent, says it is ready.
    pub felix: Felix,
    /// calico-node's BGP sessions, as BIRD shows them.
    pub bgp: Bgp,
    /// The operator's own checks (`rollout.checks`), in inventory order.
    pub checks: Vec<CheckSeen>,
    pub lock: LockSeen,
    pub last_run: Option<LastRun>,
    pub drift: Vec<StepDrift>,
}

/// Felix's health endpoint, asked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Felix {
    Ready,
    /// Why not: what the endpoint answered, or that it did not.
    NotReady(String),
    /// Not asked, and why: the endpoint is off, or calico-node does not
    /// run (drift says so, not health).
    NotChecked(String),
}

/// BIRD's sessions. A session that is down, or a BIRD that cannot be
/// read, is a mesh that does not carry this host's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bgp {
    Sessions {
        established: usize,
        total: usize,
        /// Each session that is not Established, with its BIRD state:
        /// `10.0.0.13 Active (Socket: Connection refused)`.
        down: Vec<String>,
    },
    Unreadable(String),
    /// Not read, and why: BGP is off, or calico-node does not run.
    NotChecked(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSeen {
    pub name: String,
    /// Passed, or how it failed and its last lines of output.
    pub result: Result<(), String>,
}

impl Seen {
    /// Why Calico does not network here, as the exit code counts it:
    /// Felix not ready, a BGP session down or BIRD unreadable, an
    /// operator's check failing. Empty when none.
    pub fn unhealthy(&self) -> Vec<String> {
        let mut why = Vec::new();
        if let Felix::NotReady(r) = &self.felix {
            why.push(r.clone());
        }
        match &self.bgp {
            Bgp::Sessions { down, .. } if !down.is_empty() => {
                why.push(format!("BGP down: {}", down.join(", ")));
            }
            Bgp::Unreadable(r) => why.push(r.clone()),
            _ => {}
        }
        why.extend(self.checks.iter().filter_map(|c| c.result.clone().err()));
        why
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSeen {
    /// `None` when there is no such container.
    pub image: Option<String>,
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    /// Where it was asked when healthy; why not, when not.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockSeen {
    Free,
    Held(Holder),
    /// The lock check's answer could not be read.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub run_id: String,
    /// The run's state on the agent: applied, reverted, rolled-back…
    pub outcome: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftStatus {
    Ok,
    Drift,
    Skipped,
    /// The planner will not touch this step here: apply would fail it.
    Refused,
}

impl DriftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::Ok => "ok",
            DriftStatus::Drift => "drift",
            DriftStatus::Skipped => "skipped",
            DriftStatus::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDrift {
    pub step: StepName,
    pub status: DriftStatus,
    /// What apply would change, why the step is skipped, or why refused.
    pub summary: String,
}

impl StepDrift {
    /// A planner's verdict as status shows it.
    pub fn from_plan(plan: &StepPlan) -> StepDrift {
        let (status, summary) = match &plan.plan {
            Plan::Ok => (DriftStatus::Ok, String::new()),
            Plan::Skipped(why) => (DriftStatus::Skipped, why.clone()),
            Plan::Refused(why) => (DriftStatus::Refused, why.clone()),
            Plan::Change(c) => (DriftStatus::Drift, c.summary.join("; ")),
        };
        StepDrift {
            step: plan.step,
            status,
            summary,
        }
    }
}

/// Where a host stands, from best to worst; the fleet's exit code is its
/// worst host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    Converged,
    Drifted,
    /// Read, but Calico does not network here (see `Seen::unhealthy`).
    Unhealthy,
    /// Read, but some step refuses: apply would fail here.
    Refused,
    Unreadable,
}

impl HostStatus {
    pub fn standing(&self) -> Standing {
        let Ok(seen) = &self.seen else {
            return Standing::Unreadable;
        };
        let any = |s: DriftStatus| seen.drift.iter().any(|d| d.status == s);
        if any(DriftStatus::Refused) {
            Standing::Refused
        } else if !seen.unhealthy().is_empty() {
            Standing::Unhealthy
        } else if any(DriftStatus::Drift) {
            Standing::Drifted
        } else {
            Standing::Converged
        }
    }
}

impl StatusReport {
    /// The worst standing among the hosts (`Converged` for none).
    pub fn standing(&self) -> Standing {
        self.hosts
            .iter()
            .map(HostStatus::standing)
            .max()
            .unwrap_or(Standing::Converged)
    }

    pub fn to_json(&self) -> String {
        let doc = json!({
            "version": 1,
            "mode": "status",
            "inventory": {"path": self.inventory_path, "sha256": self.inventory_sha256},
            "hosts": self.hosts.iter().map(host_json).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&doc).expect("status serializes")
    }
}

fn host_json(h: &HostStatus) -> Value {
    let s = match &h.seen {
        Err(e) => {
            return json!({
                "host": h.host,
                "reachable": false,
                "error": e.reason,
                "unreachable": e.unreachable,
            });
        }
        Ok(s) => s,
    };
    let container = |c: &ContainerSeen| json!({"image": c.image, "running": c.running});
    let health = |h: &Health| json!({"healthy": h.healthy, "detail": h.detail});
    let mut v = json!({
        "host": h.host,
        "reachable": true,
        "converged": h.standing() == Standing::Converged,
        "healthy": s.unhealthy().is_empty(),
        "calico_node": container(&s.calico_node),
        "libnetwork": container(&s.libnetwork),
        "cni": s.cni,
        "cluster_store": match &s.cluster_store {
            Ok(store) if !store.is_empty() => json!(store),
            _ => Value::Null,
        },
        "gateway": s.gateway.as_ref().map(health),
        "mesos": health(&s.mesos),
        "felix": match &s.felix {
            Felix::Ready => json!({"healthy": true, "detail": "ready"}),
            Felix::NotReady(why) => json!({"healthy": false, "detail": why}),
            Felix::NotChecked(why) => json!({"healthy": null, "detail": why}),
        },
        "bgp": bgp_json(&s.bgp),
        "checks": s.checks.iter().map(|c| json!({
            "name": c.name,
            "passed": c.result.is_ok(),
            "detail": c.result.as_ref().err(),
        })).collect::<Vec<_>>(),
        "lock": match &s.lock {
            LockSeen::Free => Value::Null,
            LockSeen::Held(holder) => json!({
                "holder": holder.owner,
                "user": holder.user,
                "host": holder.host,
                "pid": holder.pid,
                "since": holder.since,
                "refreshed": holder.refreshed,
                "stale": holder.stale,
                "text": holder.to_string(),
            }),
            LockSeen::Unknown(why) => json!({"error": why}),
        },
        "last_run": s.last_run.as_ref().map(|r| json!({"run_id": r.run_id, "outcome": r.outcome})),
        "drift": s.drift.iter().map(|d| json!({
            "step": d.step.as_str(),
            "status": d.status.as_str(),
            "summary": d.summary,
        })).collect::<Vec<_>>(),
    });
    if let Err(why) = &s.cluster_store {
        v["cluster_store_error"] = json!(why);
    }
    v
}

/// `healthy` is null when BIRD was not read; `established` and `total`
/// are null when its sessions are not known.
fn bgp_json(b: &Bgp) -> Value {
    match b {
        Bgp::Sessions {
            established,
            total,
            down,
        } => json!({
            "healthy": down.is_empty(),
            "established": established,
            "total": total,
            "down": down,
            "detail": null,
        }),
        Bgp::Unreadable(why) => json!({
            "healthy": false, "established": null, "total": null, "down": [], "detail": why,
        }),
        Bgp::NotChecked(why) => json!({
            "healthy": null, "established": null, "total": null, "down": [], "detail": why,
        }),
    }
}

/// A converged host, for tests of what reads a status.
#[cfg(test)]
pub(crate) fn converged_host(name: &str) -> HostStatus {
    HostStatus {
        host: name.into(),
        seen: Ok(Seen {
            calico_node: ContainerSeen {
                image: Some("calico/node:v2.6.12".into()),
                running: true,
            },
            libnetwork: ContainerSeen {
                image: Some("calico/libnetwork-plugin:v1.1.3".into()),
                running: true,
            },
            cni: BTreeMap::from([
                ("calico".into(), Some("a".repeat(64))),
                ("calico-ipam".into(), Some("b".repeat(64))),
            ]),
            cluster_store: Ok("etcd://127.0.0.1:2379".into()),
            gateway: Some(Health {
                healthy: true,
                detail: "http://127.0.0.1:2379/health".into(),
            }),
            mesos: Health {
                healthy: true,
                detail: "http://10.0.0.11:5051/health".into(),
            },
            felix: Felix::Ready,
            bgp: Bgp::Sessions {
                established: 3,
                total: 3,
                down: Vec::new(),
            },
            checks: vec![CheckSeen {
                name: "dns".into(),
                result: Ok(()),
            }],
            lock: LockSeen::Free,
            last_run: Some(LastRun {
                run_id: "laptop-4242-1795340400".into(),
                outcome: "applied".into(),
            }),
            drift: StepName::ALL
                .iter()
                .map(|&step| StepDrift {
                    step,
                    status: DriftStatus::Ok,
                    summary: String::new(),
                })
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::plan_host;
    use crate::steps::testing::{agent, converged_facts, desired, fresh_facts};

    fn drift_of(facts: &crate::facts::Facts) -> Vec<(StepName, DriftStatus)> {
        plan_host(&agent(crate::inventory::Role::Private), &desired(), facts)
            .iter()
            .map(StepDrift::from_plan)
            .map(|d| (d.step, d.status))
            .collect()
    }

    #[test]
    fn drift_is_the_planners_verdict_per_step() {
        let want = desired();
        assert!(
            drift_of(&converged_facts(&want))
                .iter()
                .all(|(_, s)| *s == DriftStatus::Ok)
        );
        assert!(
            drift_of(&fresh_facts())
                .iter()
                .all(|(_, s)| *s == DriftStatus::Drift),
            "a pristine agent drifts on every step"
        );
        let mut old_node = converged_facts(&want);
        old_node.containers.get_mut("calico-node").unwrap().image = "calico/node:v2.6.11".into();
        old_node
            .containers
            .get_mut("calico-node")
            .unwrap()
            .spec_hash = Some("old".into());
        let drift = drift_of(&old_node);
        assert_eq!(drift[4], (StepName::Node, DriftStatus::Drift));
        assert!(drift[..4].iter().all(|(_, s)| *s == DriftStatus::Ok));
        // A role that does not match the agent's Mesos unit is refused.
        let mut public = converged_facts(&want);
        public.units.remove("dcos-mesos-slave");
        let d = plan_host(&agent(crate::inventory::Role::Private), &want, &public);
        let cni = StepDrift::from_plan(&d[2]);
        assert_eq!(cni.status, DriftStatus::Refused);
        assert!(cni.summary.contains("dcos-mesos-slave"), "{}", cni.summary);
        let skipped = StepDrift::from_plan(&StepPlan {
            step: StepName::Libnetwork,
            plan: Plan::Skipped("libnetwork.enabled is false".into()),
        });
        assert_eq!(
            (skipped.status, skipped.summary.as_str()),
            (DriftStatus::Skipped, "libnetwork.enabled is false")
        );
    }

    #[test]
    fn the_worst_host_decides_the_fleets_standing() {
        let ok = converged_host("agent-1");
        let mut drifted = converged_host("agent-2");
        if let Ok(s) = &mut drifted.seen {
            s.drift[1].status = DriftStatus::Drift;
        }
        let mut refused = converged_host("agent-3");
        if let Ok(s) = &mut refused.seen {
            s.drift[2].status = DriftStatus::Refused;
        }
        let mut skipped = converged_host("agent-4");
        if let Ok(s) = &mut skipped.seen {
            s.drift[3].status = DriftStatus::Skipped;
        }
        let gone = HostStatus {
            host: "pub-1".into(),
            seen: Err(Unread {
                unreachable: true,
                reason: "connection refused".into(),
            }),
        };
        let fleet = |hosts: Vec<HostStatus>| StatusReport {
            inventory_path: "cluster.yaml".into(),
            inventory_sha256: "0".repeat(64),
            hosts,
        };
        use Standing::*;
        assert_eq!(fleet(vec![]).standing(), Converged);
        assert_eq!(fleet(vec![ok.clone(), skipped]).standing(), Converged);
        assert_eq!(fleet(vec![ok.clone(), drifted.clone()]).standing(), Drifted);
        assert_eq!(fleet(vec![drifted.clone(), refused]).standing(), Refused);
        assert_eq!(fleet(vec![gone, drifted, ok]).standing(), Unreadable);
    }

    #[test]
    fn calico_that_does_not_network_is_an_unhealthy_host_and_exit_4() {
        let down = Bgp::Sessions {
            established: 2,
            total: 3,
            down: vec!["10.0.0.13 Active".into()],
        };
        let failed = CheckSeen {
            name: "dns".into(),
            result: Err("check dns failed (exit 1): NXDOMAIN".into()),
        };
        type Edit = Box<dyn Fn(&mut Seen)>;
        let table: Vec<(&str, Edit, Standing, i32)> = vec![
            ("converged", Box::new(|_| {}), Standing::Converged, 0),
            (
                "a session down",
                Box::new(move |s| s.bgp = down.clone()),
                Standing::Unhealthy,
                4,
            ),
            (
                "BIRD unreadable",
                Box::new(|s| s.bgp = Bgp::Unreadable("birdcl printed nothing".into())),
                Standing::Unhealthy,
                4,
            ),
            (
                "Felix not ready",
                Box::new(|s| s.felix = Felix::NotReady("/readiness answered 503".into())),
                Standing::Unhealthy,
                4,
            ),
            (
                "a check failed",
                Box::new(move |s| s.checks.push(failed.clone())),
                Standing::Unhealthy,
                4,
            ),
            (
                "BGP and Felix off",
                Box::new(|s| {
                    s.felix = Felix::NotChecked("off: FELIX_HEALTHENABLED is not true".into());
                    s.bgp = Bgp::NotChecked("off: CALICO_NETWORKING_BACKEND is none".into());
                }),
                Standing::Converged,
                0,
            ),
            (
                "drifted and unhealthy: the worse counts",
                Box::new(|s| {
                    s.drift[4].status = DriftStatus::Drift;
                    s.felix = Felix::NotReady("/readiness answered 503".into());
                }),
                Standing::Unhealthy,
                4,
            ),
            (
                "refused is worse than unhealthy",
                Box::new(|s| {
                    s.drift[1].status = DriftStatus::Refused;
                    s.felix = Felix::NotReady("/readiness answered 503".into());
                }),
                Standing::Refused,
                4,
            ),
        ];
        for (name, edit, standing, code) in table {
            let mut h = converged_host("agent-1");
            if let Ok(s) = &mut h.seen {
                edit(s);
            }
            assert_eq!(h.standing(), standing, "{name}");
            let fleet = StatusReport {
                inventory_path: "cluster.yaml".into(),
                inventory_sha256: String::new(),
                hosts: vec![converged_host("agent-2"), h],
            };
            assert_eq!(crate::error::status_exit_code(&fleet), code, "{name}");
        }
    }

    #[test]
    fn json_carries_felix_bgp_and_the_checks() {
        let mut sick = converged_host("agent-2");
        if let Ok(s) = &mut sick.seen {
            s.felix = Felix::NotReady("Felix is not ready: /readiness answered 503".into());
            s.bgp = Bgp::Sessions {
                established: 2,
                total: 3,
                down: vec!["10.0.0.13 Active (Socket: Connection refused)".into()],
            };
            s.checks.push(CheckSeen {
                name: "app".into(),
                result: Err("check app failed (exit 3): no route".into()),
            });
        }
        let mut off = converged_host("agent-3");
        if let Ok(s) = &mut off.seen {
            s.felix = Felix::NotChecked("calico-node is not running".into());
            s.bgp = Bgp::NotChecked("calico-node is not running".into());
        }
        let report = StatusReport {
            inventory_path: "cluster.yaml".into(),
            inventory_sha256: String::new(),
            hosts: vec![converged_host("agent-1"), sick, off],
        };
        let v: Value = serde_json::from_str(&report.to_json()).unwrap();
        let ok = &v["hosts"][0];
        assert_eq!(ok["healthy"], true);
        assert_eq!(ok["felix"], json!({"healthy": true, "detail": "ready"}));
        assert_eq!(
            ok["bgp"],
            json!({"healthy": true, "established": 3, "total": 3, "down": [], "detail": null})
        );
        assert_eq!(
            ok["checks"],
            json!([{"name": "dns", "passed": true, "detail": null}])
        );
        let bad = &v["hosts"][1];
        assert_eq!(
            (&bad["healthy"], &bad["converged"]),
            (&json!(false), &json!(false))
        );
        assert_eq!(bad["felix"]["healthy"], false);
        assert_eq!(
            bad["bgp"],
            json!({"healthy": false, "established": 2, "total": 3,
                   "down": ["10.0.0.13 Active (Socket: Connection refused)"], "detail": null})
        );
        assert_eq!(
            bad["checks"][1],
            json!({"name": "app", "passed": false, "detail": "check app failed (exit 3): no route"})
        );
        let not = &v["hosts"][2];
        assert_eq!(
            not["felix"],
            json!({"healthy": null, "detail": "calico-node is not running"})
        );
        assert_eq!(not["bgp"]["healthy"], Value::Null);
        assert_eq!(not["bgp"]["established"], Value::Null);
        assert_eq!(not["healthy"], true, "not running is drift, not health");
    }

    #[test]
    fn json_names_every_item_per_host() {
        let mut locked = converged_host("agent-2");
        if let Ok(s) = &mut locked.seen {
            s.lock = LockSeen::Held(Holder {
                owner: "r2".into(),
                ..Holder::default()
            });
            s.gateway = None;
            s.cni.insert("calico-ipam".into(), None);
        }
        let gone = HostStatus {
            host: "pub-1".into(),
            seen: Err(Unread {
                unreachable: true,
                reason: "connection refused".into(),
            }),
        };
        let report = StatusReport {
            inventory_path: "/srv/cluster.yaml".into(),
            inventory_sha256: "f".repeat(64),
            hosts: vec![converged_host("agent-1"), locked, gone],
        };
        let v: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            (v["version"].as_u64(), v["mode"].as_str()),
            (Some(1), Some("status"))
        );
        assert_eq!(v["inventory"]["path"], "/srv/cluster.yaml");
        let h = &v["hosts"][0];
        assert_eq!(h["reachable"], true);
        assert_eq!(h["calico_node"]["image"], "calico/node:v2.6.12");
        assert_eq!(h["calico_node"]["running"], true);
        assert_eq!(h["cni"]["calico"], "a".repeat(64));
        assert_eq!(h["cluster_store"], "etcd://127.0.0.1:2379");
        assert_eq!(h["gateway"]["healthy"], true);
        assert_eq!(h["mesos"]["healthy"], true);
        assert_eq!(h["lock"], Value::Null);
        assert_eq!(h["last_run"]["run_id"], "laptop-4242-1795340400");
        assert_eq!(h["last_run"]["outcome"], "applied");
        assert_eq!(h["drift"][1]["step"], "docker");
        assert_eq!(h["drift"][1]["status"], "ok");
        let l = &v["hosts"][1];
        assert_eq!(l["lock"]["holder"], "r2");
        assert_eq!(l["gateway"], Value::Null);
        assert_eq!(l["cni"]["calico-ipam"], Value::Null);
        let g = &v["hosts"][2];
        assert_eq!(g["reachable"], false);
        assert_eq!(g["error"], "connection refused");
    }
}
