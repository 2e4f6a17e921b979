//! Gates that prove Calico networks, on the fake cluster: an upgrade whose
//! BGP never comes back, or whose Felix never gets ready, stops at the
//! canary and is put back; an operator's failing check reverts its host;
//! and a batch does not start while the hosts already done have BGP
//! sessions down.

mod common;

use common::*;
use serde_json::{Value, json};

const BIRDCL: &str = "docker exec calico-node birdcl -s /var/run/calico/bird.ctl show protocols";

/// The agent's BGP sessions as its BIRD lists them: (Established, all).
fn sessions(host: &str) -> (usize, usize) {
    let out = exec(host, BIRDCL);
    let mesh: Vec<&str> = out.lines().filter(|l| l.starts_with("Mesh_")).collect();
    let up = mesh.iter().filter(|l| l.contains("Established")).count();
    (up, mesh.len())
}

/// The agent's address, as its peers know it.
fn address(host: &str) -> String {
    exec(host, "/opt/mesosphere/bin/detect_ip")
        .trim()
        .to_string()
}

fn node(host: &str) -> Value {
    container(host, "calico-node").expect("calico-node exists")
}

fn started_at(host: &str) -> String {
    node(host)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every agent runs calico/node:v2.6.12 with its whole mesh up; the
/// rollout then has one canary and one batch of three.
fn installed(c: &Cluster) -> Value {
    let mut inv = c.inventory();
    inv["rollout"]["canary"] = json!(1);
    inv["rollout"]["batch"] = json!(3);
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for a in &AGENTS {
        assert_eq!(sessions(a.name), (3, 3), "{}", a.name);
    }
    inv
}

/// A broken release, `calico/node:v2.6.13`, rolls onto the installed
/// cluster: it must stop at the canary, which runs v2.6.12 again with its
/// sessions Established, and leave the other agents alone.
fn broken_release_stops_at_the_canary(c: &Cluster, mut inv: Value, fault: &str) -> Run {
    for a in &AGENTS {
        exec(
            a.name,
            &format!("echo calico/node:v2.6.13 > /etc/fake-faults/{fault}"),
        );
    }
    let untouched: Vec<(&str, String)> = ["agent-2", "agent-3", "pub-1"]
        .into_iter()
        .map(|h| (h, started_at(h)))
        .collect();
    inv["node"]["image"] = json!("calico/node:v2.6.13");
    inv["rollout"]["health_timeout"] = json!("8s");
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 5, "the failure budget stops it: {}", run.stderr);
    assert_eq!(run.status("agent-1", "node"), "reverted");
    let canary = node("agent-1");
    assert_eq!(canary["Config"]["Image"], "calico/node:v2.6.12");
    assert_eq!(canary["State"]["Running"], true);
    assert_eq!(sessions("agent-1"), (3, 3), "the canary's mesh is back");
    for (host, started) in untouched {
        assert_eq!(run.status(host, "node"), "skipped", "{host}");
        assert_eq!(node(host)["Config"]["Image"], "calico/node:v2.6.12");
        assert_eq!(started_at(host), started, "{host} was not restarted");
        assert_eq!(sessions(host), (3, 3), "{host}");
    }
    run
}

#[test]
fn an_upgrade_whose_bgp_never_establishes_stops_at_the_canary() {
    let c = cluster();
    let inv = installed(&c);
    let run = broken_release_stops_at_the_canary(&c, inv, "bgp-stuck-images");
    // The report names each peer still down, with BIRD's state for it.
    let why = run.message("agent-1", "node");
    for peer in ["agent-2", "agent-3", "pub-1"] {
        assert!(why.contains(&address(peer)), "{peer} in: {why}");
    }
    assert!(why.contains("BGP peers") && why.contains("Idle"), "{why}");
    assert!(
        run.stderr.contains("waiting for 3 BGP peers"),
        "progress names what the canary waits for: {}",
        run.stderr
    );
}

#[test]
fn an_upgrade_whose_felix_never_gets_ready_stops_at_the_canary() {
    let c = cluster();
    let inv = installed(&c);
    let run = broken_release_stops_at_the_canary(&c, inv, "felix-never-ready");
    let why = run.message("agent-1", "node");
    assert!(
        why.contains("Felix is not ready: /readiness answered 503"),
        "{why}"
    );
}

#[test]
fn a_failing_operator_check_reverts_its_host() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["canary"] = json!(1);
    inv["rollout"]["batch"] = json!(3);
    inv["rollout"]["health_timeout"] = json!("6s");
    inv["rollout"]["checks"] = json!([{
        "name": "smoke",
        "after": "node",
        "command": "test -e /var/lib/calico/smoke-ok || { echo 'the smoke service does not answer'; exit 3; }",
        "timeout": "3s",
    }]);
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(run.status("agent-1", "node"), "reverted");
    let why = run.message("agent-1", "node");
    assert!(
        why.contains("check smoke failed (exit 3)")
            && why.contains("the smoke service does not answer"),
        "the check's own output is reported: {why}"
    );
    // A fresh install taken back whole: no calico-node, the seed daemon.json.
    assert!(container("agent-1", "calico-node").is_none());
    assert_eq!(read("agent-1", DAEMON_JSON).unwrap(), seed("daemon.json"));
    for host in ["agent-2", "agent-3", "pub-1"] {
        assert!(container(host, "calico-node").is_none(), "{host}");
    }

    for a in &AGENTS {
        exec(
            a.name,
            "mkdir -p /var/lib/calico && touch /var/lib/calico/smoke-ok",
        );
    }
    let fixed = c.run("apply", &inv, &[]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    for a in &AGENTS {
        assert_eq!(fixed.status(a.name, "node"), "changed", "{}", a.name);
    }
}

#[test]
fn resume_waits_for_the_mesh_of_the_hosts_already_done() {
    let c = cluster();
    let mut inv = installed(&c);
    inv["node"]["image"] = json!("calico/node:v2.6.13");
    inv["rollout"]["health_timeout"] = json!("6s");
    let path = c.write_inventory(&inv);
    let paused = run_binary("apply", &path, &["--pause-after-canary"]);
    assert_eq!(paused.code, 6, "{}", paused.stderr);
    assert_eq!(node("agent-1")["Config"]["Image"], "calico/node:v2.6.13");

    // While the rollout is paused, a peer of the canary goes down.
    exec("pub-1", "docker stop calico-node");
    let waiting: Vec<(&str, String)> = ["agent-2", "agent-3"]
        .into_iter()
        .map(|h| (h, started_at(h)))
        .collect();
    let stopped = run_binary("apply", &path, &["--resume"]);
    assert_eq!(stopped.code, 5, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("the BGP mesh is not whole again")
            && stopped.stderr.contains(&address("pub-1")),
        "{}",
        stopped.stderr
    );
    for (host, started) in waiting {
        assert_eq!(node(host)["Config"]["Image"], "calico/node:v2.6.12");
        assert_eq!(started_at(host), started, "{host} was not restarted");
    }

    exec("pub-1", "docker start calico-node");
    let resumed = run_binary("apply", &path, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    for a in &AGENTS {
        assert_eq!(node(a.name)["Config"]["Image"], "calico/node:v2.6.13");
        assert_eq!(sessions(a.name), (3, 3), "{}", a.name);
    }
}

#[test]
fn plugin_sockets_left_behind_do_not_stall_the_facts() {
    let c = cluster();
    let inv = c.inventory();
    // A libnetwork plugin that was stopped or removed leaves its sockets;
    // dockerd dials them whenever a lookup reaches plugins.
    exec(
        "agent-1",
        "mkdir -p /run/docker/plugins && python3 -c 'import socket\n\
         for p in (\"calico.sock\", \"calico-ipam.sock\"):\n    \
         socket.socket(socket.AF_UNIX).bind(\"/run/docker/plugins/\" + p)'",
    );
    let plan = c.run("plan", &inv, &["--limit", "agent-1"]);
    assert_eq!(plan.code, 2, "planned, with changes: {}", plan.stderr);
    assert_eq!(plan.status("agent-1", "libnetwork"), "changed");
    assert_eq!(plan.status("agent-1", "node"), "changed");
}
