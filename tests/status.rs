//! `calico-rollout status` against the fake DC/OS cluster: what it shows
//! on pristine and on converged agents, its exit codes, and that it
//! writes nothing on an agent.

mod common;

use common::*;
use serde_json::{Value, json};

const STEPS: [&str; 5] = ["etcd-proxy", "docker", "cni", "libnetwork", "node"];

/// What status must leave as it was on an agent: every file changed since
/// boot under the folders calico-rollout uses, the lock's folder, and the
/// restart log.
fn footprint(host: &str) -> String {
    exec(
        host,
        "find /etc /opt /var/lib /run/lock /tmp -xdev -newer /run/fake-agent-booted 2>/dev/null | sort; \
         ls -la --time-style=+%s /run/lock /var/lib/calico-rollout 2>&1; \
         cat /var/log/fake-systemd/restarts.log 2>/dev/null; \
         sha256sum /etc/docker/daemon.json /opt/mesosphere/etc/dcos/network/cni/* /opt/mesosphere/active/cni/*",
    )
}

fn footprints() -> Vec<String> {
    AGENTS.iter().map(|a| footprint(a.name)).collect()
}

fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .expect("a hosts array")
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("{name} not in the status"))
}

fn drift(h: &Value) -> Vec<(String, String)> {
    h["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["step"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn pristine_agents_drift_on_every_step_and_status_writes_nothing() {
    let c = cluster();
    let before = footprints();

    let run = c.run("status", &c.inventory(), &[]);
    assert_eq!(run.code, 2, "drift: exit 2");
    let report = run.json();
    assert_eq!(
        (report["version"].as_u64(), report["mode"].as_str()),
        (Some(1), Some("status"))
    );
    for a in &AGENTS {
        let h = host(&report, a.name);
        assert_eq!(h["reachable"], true, "{}", a.name);
        let want: Vec<(String, String)> = STEPS
            .iter()
            .map(|s| (s.to_string(), "drift".to_string()))
            .collect();
        assert_eq!(drift(h), want, "{}: every step drifts", a.name);
        assert_eq!(h["calico_node"], json!({"image": null, "running": false}));
        assert_eq!(h["cni"], json!({"calico": null, "calico-ipam": null}));
        assert_eq!(h["cluster_store"], Value::Null, "{}", a.name);
        assert_eq!(
            h["gateway"]["healthy"], false,
            "no gateway yet on {}",
            a.name
        );
        assert_eq!(h["mesos"]["healthy"], true, "{}: {}", a.name, h["mesos"]);
        assert_eq!(h["lock"], Value::Null);
        assert_eq!(h["last_run"], Value::Null);
    }
    assert!(
        run.stderr.contains("\nagent-[1-3] (3 hosts): drift\n")
            && run.stderr.contains("\npub-1: drift\n")
            && run
                .stderr
                .contains("status: 0 of 4 host(s) converged, 4 drifted; nothing was written"),
        "the private agents read the same, the public one has its own: {}",
        run.stderr
    );

    assert_eq!(footprints(), before, "status changed something on an agent");
    for a in &AGENTS {
        assert_eq!(read(a.name, "/run/lock/calico-rollout.lock"), None);
        assert_eq!(read(a.name, "/var/lib/calico-rollout/manifest"), None);
    }
}

#[test]
fn after_apply_status_is_converged_and_names_the_run() {
    let c = cluster();
    let inv = c.inventory();
    let apply = c.run("apply", &inv, &[]);
    assert_eq!(apply.code, 0, "apply succeeds");
    let journal: Value = serde_json::from_str(
        &std::fs::read_to_string(c.dir.path().join(".calico-rollout/cluster/journal.json"))
            .expect("apply keeps a journal"),
    )
    .unwrap();
    let run_id = journal["run_id"]
        .as_str()
        .expect("the journal names its run");
    let before = footprints();

    let run = c.run("status", &inv, &[]);
    assert_eq!(run.code, 0, "converged: exit 0");
    let report = run.json();
    let calico = sha256_local(&repo().join("inventories/bin/calico"));
    let ipam = sha256_local(&repo().join("inventories/bin/calico-ipam"));
    for a in &AGENTS {
        let h = host(&report, a.name);
        assert_eq!(h["converged"], true, "{}", a.name);
        assert_eq!(
            h["calico_node"],
            json!({"image": "calico/node:v2.6.12", "running": true})
        );
        assert_eq!(
            h["libnetwork"],
            json!({"image": "calico/libnetwork-plugin:v1.1.3", "running": true})
        );
        assert_eq!(
            h["cni"],
            json!({"calico": calico, "calico-ipam": ipam}),
            "{}",
            a.name
        );
        assert_eq!(h["cluster_store"], "etcd://127.0.0.1:2379", "{}", a.name);
        assert_eq!(
            h["gateway"]["healthy"], true,
            "{}: {}",
            a.name, h["gateway"]
        );
        assert_eq!(h["mesos"]["healthy"], true, "{}: {}", a.name, h["mesos"]);
        let port = a.mesos_port().to_string();
        assert!(
            h["mesos"]["detail"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{port}/health")),
            "{}: Mesos asked on its role's port: {}",
            a.name,
            h["mesos"]
        );
        assert_eq!(
            h["last_run"],
            json!({"run_id": run_id, "outcome": "applied"})
        );
        assert_eq!(h["lock"], Value::Null, "apply released its lock");
        assert!(
            drift(h).iter().all(|(_, s)| s == "ok"),
            "{}: {:?}",
            a.name,
            drift(h)
        );
    }
    let short = &calico[..12];
    assert!(
        run.stderr
            .contains("\nagent-[1-3], pub-1 (4 hosts): converged\n")
            && run
                .stderr
                .contains(&format!("  cni            calico {short}"))
            && run
                .stderr
                .contains(&format!("  last run       {run_id} (applied)\n"))
            && run
                .stderr
                .contains("status: 4 of 4 host(s) converged, 0 drifted; nothing was written"),
        "{}",
        run.stderr
    );
    assert_eq!(footprints(), before, "status changed something on an agent");
}

#[test]
fn an_agent_that_cannot_be_reached_makes_status_exit_4_and_the_others_are_read() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["agents"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "agent-9", "address": "127.0.0.1", "port": 22199, "user": "root"}));
    // Another run's lock on agent-1: shown, and status still reads it.
    let lock = r#"{"owner":"ops-77-1795340000","user":"bob","host":"ops","pid":77,"since":1795340000,"refreshed":1795340000}"#;
    exec(
        "agent-1",
        &format!("printf '%s\\n' '{lock}' > /run/lock/calico-rollout.lock"),
    );

    let run = c.run(
        "status",
        &inv,
        &["--limit", "agent-1,agent-9", "--forks", "1"],
    );
    exec("agent-1", "rm -f /run/lock/calico-rollout.lock");
    assert_eq!(run.code, 4, "an unreadable host: exit 4");
    let report = run.json();
    assert_eq!(
        report["hosts"].as_array().unwrap().len(),
        2,
        "--limit selects"
    );
    let gone = host(&report, "agent-9");
    assert_eq!(gone["reachable"], false);
    assert!(gone["error"].as_str().unwrap().contains("22199"), "{gone}");
    let one = host(&report, "agent-1");
    assert_eq!(one["reachable"], true);
    assert_eq!(one["lock"]["holder"], "ops-77-1795340000");
    assert_eq!(one["lock"]["stale"], true, "no heartbeat for years");
    assert!(
        run.stderr.contains("\nagent-9: UNREACHABLE: ")
            && run
                .stderr
                .contains("  lock           locked by run ops-77-1795340000 (bob@ops, pid 77)")
            && run.stderr.contains("1 could not be read"),
        "{}",
        run.stderr
    );
}

/// The address an agent's calico-node peers with, as DC/OS detects it.
fn node_address(name: &str) -> String {
    exec(name, "/opt/mesosphere/bin/detect_ip")
        .trim()
        .to_string()
}

#[test]
fn after_apply_status_shows_calico_networking_and_runs_the_operators_checks() {
    let c = cluster();
    let mut inv = c.inventory();
    let apply = c.run("apply", &inv, &[]);
    assert_eq!(apply.code, 0, "apply succeeds: {}", apply.stderr);

    let run = c.run("status", &inv, &[]);
    assert_eq!(run.code, 0, "networking and converged: {}", run.stderr);
    let report = run.json();
    for a in &AGENTS {
        let h = host(&report, a.name);
        assert_eq!(h["healthy"], true, "{}: {h}", a.name);
        assert_eq!(
            h["felix"],
            json!({"healthy": true, "detail": "ready"}),
            "{}",
            a.name
        );
        assert_eq!(
            h["bgp"],
            json!({"healthy": true, "established": 3, "total": 3, "down": [], "detail": null}),
            "{}: a session with each of the other three",
            a.name
        );
        assert_eq!(h["checks"], json!([]));
    }
    assert!(
        run.stderr
            .contains("\nagent-[1-3], pub-1 (4 hosts): converged\n")
            && run.stderr.contains("\n  felix          ready\n")
            && run.stderr.contains("\n  bgp            3/3 Established\n"),
        "{}",
        run.stderr
    );

    // The operator's check, run once per host by status: it passes where
    // its service answers, and makes agent-3 unhealthy where it does not.
    inv["rollout"]["checks"] = json!([{
        "name": "smoke",
        "after": "node",
        "command": "test -e /run/status-smoke-ok || { echo 'the smoke service does not answer'; exit 3; }",
        "timeout": "3s",
    }]);
    for a in ["agent-1", "agent-2", "pub-1"] {
        exec(a, "touch /run/status-smoke-ok");
    }
    let run = c.run("status", &inv, &[]);
    for a in ["agent-1", "agent-2", "pub-1"] {
        exec(a, "rm -f /run/status-smoke-ok");
    }
    assert_eq!(
        run.code, 4,
        "a failing check is an unhealthy host: {}",
        run.stderr
    );
    let report = run.json();
    for a in ["agent-1", "agent-2", "pub-1"] {
        assert_eq!(
            host(&report, a)["checks"],
            json!([{"name": "smoke", "passed": true, "detail": null}]),
            "{a}"
        );
    }
    let three = host(&report, "agent-3");
    assert_eq!(three["healthy"], false);
    assert_eq!(
        three["checks"][0]["detail"],
        "check smoke failed (exit 3): the smoke service does not answer"
    );
    assert!(
        run.stderr.contains("\nagent-3: unhealthy\n")
            && run.stderr.contains(
                "\n    smoke        check smoke failed (exit 3): the smoke service does not answer\n"
            )
            && run.stderr.contains("\n  checks         all pass: smoke\n")
            && run.stderr.contains(", 1 unhealthy;"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_stopped_calico_node_shows_as_a_peer_down_on_the_others_and_status_exits_4() {
    let c = cluster();
    let inv = c.inventory();
    let apply = c.run("apply", &inv, &[]);
    assert_eq!(apply.code, 0, "apply succeeds: {}", apply.stderr);
    let gone = node_address("pub-1");

    exec("pub-1", "docker stop calico-node");
    wait_until(20, "agent-1's session with pub-1 to drop", || {
        !exec(
            "agent-1",
            "docker exec calico-node birdcl -s /var/run/calico/bird.ctl show protocols",
        )
        .lines()
        .any(|l| {
            l.starts_with(&format!("Mesh_{}", gone.replace('.', "_"))) && l.contains("Established")
        })
    });
    let run = c.run("status", &inv, &[]);

    assert_eq!(
        run.code, 4,
        "a mesh with a session down is unhealthy: {}",
        run.stderr
    );
    let report = run.json();
    for a in ["agent-1", "agent-2", "agent-3"] {
        let h = host(&report, a);
        assert_eq!(h["healthy"], false, "{a}: {h}");
        assert_eq!(
            (&h["bgp"]["established"], &h["bgp"]["total"]),
            (&json!(2), &json!(3)),
            "{a}: {}",
            h["bgp"]
        );
        let down = h["bgp"]["down"].as_array().unwrap();
        assert_eq!(down.len(), 1, "{a}: {down:?}");
        assert!(
            down[0].as_str().unwrap().starts_with(&format!("{gone} ")),
            "{a}: pub-1's address, with its BIRD state: {down:?}"
        );
        assert_eq!(h["felix"]["healthy"], true, "{a}");
    }
    let pub1 = host(&report, "pub-1");
    assert_eq!(pub1["calico_node"]["running"], false);
    assert_eq!(
        pub1["felix"],
        json!({"healthy": null, "detail": "calico-node is not running"}),
        "nothing to ask of a stopped calico-node"
    );
    assert_eq!(pub1["bgp"]["healthy"], Value::Null);
    assert!(
        run.stderr.contains(&format!(
            "\n  bgp            2/3 Established, DOWN: {gone} "
        )) && run
            .stderr
            .contains("\n  bgp            calico-node is not running\n")
            && run.stderr.contains(", 3 unhealthy;"),
        "{}",
        run.stderr
    );
}
