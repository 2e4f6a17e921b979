//! The `--json` form: one object per run, versioned, so that a script can
//! tell which run of which inventory it reads, and why it stopped early.

use serde::Serialize;

use super::{Report, RunInfo};

/// Bumped when a field changes meaning or goes away; new fields do not.
const VERSION: u32 = 1;

#[derive(Serialize)]
struct Envelope<'a, H: Serialize> {
    version: u32,
    mode: &'a str,
    run_id: &'a str,
    inventory: Inventory<'a>,
    started: String,
    finished: String,
    halted: Option<Halted<'a>>,
    hosts: H,
}

#[derive(Serialize)]
struct Inventory<'a> {
    path: String,
    sha256: &'a str,
}

#[derive(Serialize)]
struct Halted<'a> {
    kind: &'static str,
    reason: &'a str,
}

/// The report as one JSON object, for stdout.
pub fn to_json(report: &Report, info: &RunInfo) -> String {
    envelope(info, report.halt.as_ref(), &report.hosts)
}

/// The same object around another command's hosts (`unlock`'s).
pub fn to_json_with<H: Serialize>(info: &RunInfo, hosts: H) -> String {
    envelope(info, None, hosts)
}

fn envelope<H: Serialize>(info: &RunInfo, halt: Option<&super::Halt>, hosts: H) -> String {
    let envelope = Envelope {
        version: VERSION,
        mode: info.mode,
        run_id: &info.run_id,
        inventory: Inventory {
            path: info.inventory_path.display().to_string(),
            sha256: &info.inventory_sha256,
        },
        started: humantime::format_rfc3339_seconds(info.started).to_string(),
        finished: humantime::format_rfc3339_seconds(info.finished).to_string(),
        halted: halt.map(|h| Halted {
            kind: h.kind(),
            reason: h.reason(),
        }),
        hosts,
    };
    serde_json::to_string_pretty(&envelope).expect("report serializes")
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::report::{Halt, Status, host_with};

    pub fn info() -> RunInfo {
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        RunInfo {
            mode: "apply",
            run_id: "ops-1-42-1796000000".into(),
            inventory_path: "/srv/cluster.yaml".into(),
            inventory_sha256: "ab".repeat(32),
            started,
            finished: started + Duration::from_secs(75),
        }
    }

    #[test]
    fn one_object_describes_the_run_and_keeps_the_hosts_shape() {
        let mut host = host_with(&[Status::Changed, Status::Ok, Status::Skipped]);
        host.steps[0].duration_ms = 1234;
        host.steps[0].restarted = true;
        host.steps[0].message = "set cluster-store".into();
        let report = Report {
            dry_run: false,
            hosts: vec![host],
            halt: None,
            estimate: None,
        };
        let v: serde_json::Value = serde_json::from_str(&to_json(&report, &info())).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["mode"], "apply");
        assert_eq!(v["run_id"], "ops-1-42-1796000000");
        assert_eq!(v["inventory"]["path"], "/srv/cluster.yaml");
        assert_eq!(v["inventory"]["sha256"], "ab".repeat(32));
        assert_eq!(v["started"], "2026-11-30T00:53:20Z");
        assert_eq!(v["finished"], "2026-11-30T00:54:35Z");
        assert!(v["halted"].is_null());
        let step = &v["hosts"][0]["steps"][0];
        assert_eq!(v["hosts"][0]["host"], "agent-1");
        assert_eq!(step["step"], "etcd-proxy");
        assert_eq!(step["status"], "changed");
        assert_eq!(step["message"], "set cluster-store");
        assert_eq!(step["restarted"], true);
        assert_eq!(step["duration_ms"], 1234);
        assert_eq!(v["hosts"][0]["steps"][2]["status"], "skipped");
        assert_eq!(v["hosts"][0]["steps"][2]["duration_ms"], 0);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "version",
                "mode",
                "run_id",
                "inventory",
                "started",
                "finished",
                "halted",
                "hosts"
            ]
        );
    }

    /// The node step of a host whose BGP sessions did not come back.
    pub fn gated_host() -> crate::report::HostReport {
        use crate::report::{GateOutcome, GateResult};
        let mut host = host_with(&[
            Status::Ok,
            Status::Ok,
            Status::Ok,
            Status::Ok,
            Status::Failed,
        ]);
        let gate = |gate: &str, means: &str, outcome| GateResult {
            gate: gate.into(),
            means: means.into(),
            outcome,
        };
        let node = &mut host.steps[4];
        node.message = "health check did not pass within 60s: waiting for 1 BGP peer: \
                        10.0.0.13 Active"
            .into();
        node.gates = vec![
            gate(
                "container:calico-node",
                "calico-node to run",
                GateOutcome::Passed { note: None },
            ),
            gate(
                "bgp",
                "2 BGP sessions to be Established again",
                GateOutcome::Failed {
                    reason: "waiting for 1 BGP peer: 10.0.0.13 Active".into(),
                },
            ),
            gate("check:dns", "check dns to pass", GateOutcome::NotReached),
        ];
        node.notes = vec![
            "Felix's health gate is off: FELIX_HEALTHENABLED is not true in calico-node's \
             environment; the node gate checks that calico-node runs"
                .into(),
        ];
        host
    }

    #[test]
    fn each_step_lists_its_gates_with_their_outcomes() {
        let report = Report {
            dry_run: false,
            hosts: vec![gated_host()],
            halt: None,
            estimate: None,
        };
        let v: serde_json::Value = serde_json::from_str(&to_json(&report, &info())).unwrap();
        let node = &v["hosts"][0]["steps"][4];
        assert_eq!(
            node["gates"],
            serde_json::json!([
                {"gate": "container:calico-node", "means": "calico-node to run", "outcome": "passed"},
                {
                    "gate": "bgp",
                    "means": "2 BGP sessions to be Established again",
                    "outcome": "failed",
                    "reason": "waiting for 1 BGP peer: 10.0.0.13 Active"
                },
                {"gate": "check:dns", "means": "check dns to pass", "outcome": "not_reached"}
            ])
        );
        assert!(
            node["notes"][0]
                .as_str()
                .unwrap()
                .starts_with("Felix's health gate is off: ")
        );
        // A step without gates carries neither key.
        let ok = v["hosts"][0]["steps"][0].as_object().unwrap();
        assert!(
            !ok.contains_key("gates") && !ok.contains_key("notes"),
            "{ok:?}"
        );
    }

    #[test]
    fn a_passed_gate_keeps_what_could_not_be_checked() {
        use crate::report::{GateOutcome, GateResult};
        let gate = GateResult {
            gate: "mesos".into(),
            means: "the Mesos agent's health endpoint and its registration with a master".into(),
            outcome: GateOutcome::Passed {
                note: Some("only /health was checked".into()),
            },
        };
        assert_eq!(
            serde_json::to_value(&gate).unwrap(),
            serde_json::json!({
                "gate": "mesos",
                "means": "the Mesos agent's health endpoint and its registration with a master",
                "outcome": "passed",
                "note": "only /health was checked"
            })
        );
    }

    #[test]
    fn a_halted_run_says_why() {
        let report = Report {
            dry_run: false,
            hosts: Vec::new(),
            halt: Some(Halt::Budget("1 of 4 host(s) failed (agent-1)".into())),
            estimate: None,
        };
        let v: serde_json::Value = serde_json::from_str(&to_json(&report, &info())).unwrap();
        assert_eq!(
            v["halted"],
            serde_json::json!({"kind": "budget", "reason": "1 of 4 host(s) failed (agent-1)"})
        );
    }

    #[test]
    fn unlock_uses_the_same_object_around_its_own_hosts() {
        let mut unlock = info();
        unlock.mode = "unlock";
        let hosts = [serde_json::json!({"host": "agent-1", "status": "removed", "message": "x"})];
        let v: serde_json::Value = serde_json::from_str(&to_json_with(&unlock, hosts)).unwrap();
        assert_eq!(v["mode"], "unlock");
        assert_eq!(v["version"], 1);
        assert!(v["halted"].is_null());
        assert_eq!(v["hosts"][0]["status"], "removed");
    }
}
