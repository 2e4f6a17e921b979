//! Safe rolling upgrades: ramps, canaries, zones, health gates, revert,
//! failure budgets, locks, interruption and resume, rollback.

mod common;

use common::*;
use serde_json::{Value, json};

/// Each host's disruption window in this run: its first docker or Mesos
/// restart event to its last.
fn window(host: &str, since: usize) -> (f64, f64) {
    let events: Vec<f64> = restart_log(host)
        .into_iter()
        .skip(since)
        .filter(|r| r.unit == "docker" || r.unit.starts_with("dcos-mesos-slave"))
        .map(|r| r.at)
        .collect();
    assert!(!events.is_empty(), "{host} restarted nothing");
    (
        events.iter().cloned().fold(f64::MAX, f64::min),
        events.iter().cloned().fold(f64::MIN, f64::max),
    )
}

fn log_lengths() -> Vec<usize> {
    AGENTS.iter().map(|a| restart_log(a.name).len()).collect()
}

fn since(lengths: &[usize], host: &str) -> usize {
    lengths[AGENTS.iter().position(|a| a.name == host).unwrap()]
}

/// Asserts the hosts of each group restarted strictly after every host of
/// the group before.
fn assert_groups_in_order(groups: &[&[&str]], lengths: &[usize]) {
    for pair in groups.windows(2) {
        let done = pair[0]
            .iter()
            .map(|h| window(h, since(lengths, h)).1)
            .fold(f64::MIN, f64::max);
        let next = pair[1]
            .iter()
            .map(|h| window(h, since(lengths, h)).0)
            .fold(f64::MAX, f64::min);
        assert!(
            done < next,
            "{:?} began before {:?} was done",
            pair[1],
            pair[0]
        );
    }
}

fn no_restarts(host: &str, lengths: &[usize]) -> bool {
    restart_log(host)
        .into_iter()
        .skip(since(lengths, host))
        .all(|r| r.event != "stop")
}

fn untouched(host: &str) {
    assert_eq!(
        read(host, DAEMON_JSON).unwrap(),
        seed("daemon.json"),
        "{host}"
    );
    assert_eq!(read(host, CNI_CONFIG), None, "{host}");
    assert_eq!(
        read(host, "/etc/systemd/system/calico-etcd-proxy.service"),
        None,
        "{host}"
    );
    assert!(container(host, "calico-node").is_none(), "{host}");
}

#[test]
fn a_ramp_sets_the_batch_sizes_and_batches_never_overlap() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!([1, 2, "50%"]);
    let before = log_lengths();
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0);
    // 1, then 2, then 50% of 4 = 2 but only one host is left.
    assert!(
        run.stderr.contains("batch 1 of 3: agent-1\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("batch 2 of 3: agent-2, agent-3\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("batch 3 of 3: pub-1\n"),
        "{}",
        run.stderr
    );
    assert_groups_in_order(
        &[&["agent-1"], &["agent-2", "agent-3"], &["pub-1"]],
        &before,
    );
}

#[test]
fn zone_batches_never_mix_zones() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["by"] = json!("zone");
    inv["rollout"]["batch"] = json!(2);
    for (i, zone) in ["zone-a", "zone-b", "zone-a", "zone-b"].iter().enumerate() {
        inv["agents"][i]["zone"] = json!(zone);
    }
    let before = log_lengths();
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr.contains("batch 1 of 2: agent-1, agent-3\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("batch 2 of 2: agent-2, pub-1\n"),
        "{}",
        run.stderr
    );
    assert_groups_in_order(&[&["agent-1", "agent-3"], &["agent-2", "pub-1"]], &before);
}

#[test]
fn a_canary_that_fails_its_gate_stops_the_rollout_and_leaves_the_rest_untouched() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["canary"] = json!(1);
    inv["rollout"]["batch"] = json!(3);
    inv["rollout"]["health_timeout"] = json!("6s");
    // A calico.cni naming an IPAM plugin the agents lack: the Mesos agent
    // restarts fine, then crash-loops, as a real one would.
    c.template(
        &mut inv,
        "calico.cni.j2",
        r#"{"name": "calico", "type": "calico", "etcd_endpoints": {{ etcd.client_endpoints | tojson }}, "ipam": {"type": "calico-ipam-v9"}}"#,
    );
    let before = log_lengths();
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 5, "the failure budget stops the rollout");
    assert!(
        run.stderr.contains("batch 1 of 2 (canary): agent-1"),
        "{}",
        run.stderr
    );
    assert_eq!(run.status("agent-1", "cni"), "reverted");
    let why = run.message("agent-1", "cni");
    assert!(
        why.contains("calico-ipam-v9"),
        "the agent's own reason is reported: {why}"
    );
    // The canary is back as it was: no calico.cni, the agent healthy.
    assert_eq!(read("agent-1", CNI_CONFIG), None);
    mesos_healthy("agent-1");
    assert_eq!(read("agent-1", DAEMON_JSON).unwrap(), seed("daemon.json"));
    for host in ["agent-2", "agent-3", "pub-1"] {
        assert!(no_restarts(host, &before), "{host} restarted");
        untouched(host);
    }
}

#[test]
fn docker_failing_on_the_new_daemon_json_is_reverted() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    c.template(
        &mut inv,
        "daemon.json.j2",
        r#"{"cluster-store": {{ docker.cluster_store | tojson }}, "not-a-docker-option": true}"#,
    );
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 5);
    assert_eq!(run.status("agent-1", "docker"), "reverted");
    let why = run.message("agent-1", "docker");
    assert!(
        why.contains("not-a-docker-option") && why.contains("reverted"),
        "{why}"
    );
    assert_eq!(
        run.status("agent-1", "etcd-proxy"),
        "reverted",
        "the whole host goes back"
    );
    assert_eq!(
        read("agent-1", DAEMON_JSON).unwrap(),
        seed("daemon.json"),
        "old file back"
    );
    assert_eq!(exec("agent-1", "systemctl is-active docker"), "active\n");
    assert!(run.stderr.contains("reverted"), "{}", run.stderr);
    for host in ["agent-2", "agent-3", "pub-1"] {
        untouched(host);
    }
}

#[test]
fn the_failure_budget_counts_unreachable_hosts() {
    let c = cluster();
    let mut inv = c.inventory();
    // A fifth agent nobody answers for, and a 20% budget: one failure of
    // five is allowed, the second is one too many.
    inv["agents"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "agent-ghost", "address": "127.0.0.1", "port": 22199}));
    inv["rollout"]["max_failures"] = json!("20%");
    inv["rollout"]["batch"] = json!(2);
    exec("agent-1", "touch /etc/fake-faults/fail-restart-docker");
    let before = log_lengths();
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.status("agent-ghost", "docker"), "unreachable");
    assert_eq!(run.code, 5);
    assert!(
        run.stderr
            .contains("2 of 5 host(s) failed (agent-1, agent-ghost)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("stopped after batch 1 of 2"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.status("agent-2", "node"),
        "changed",
        "agent-2 shared batch 1"
    );
    for host in ["agent-3", "pub-1"] {
        assert!(no_restarts(host, &before), "{host}");
        untouched(host);
    }
}

#[test]
fn an_interrupted_run_resumes_and_converges() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    let path = c.write_inventory(&inv);
    let child = spawn_binary("apply", &path, &[]);
    let pid = child.id();
    // The operator's terminal closes (SIGHUP) once the second batch is
    // under way: the run stops as on SIGTERM (which tests/safety.rs sends).
    wait_until(120, "agent-2's batch", || {
        restart_log("agent-2")
            .iter()
            .any(|r| r.unit == "docker" && r.event == "stop")
    });
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = finish(child, "apply, interrupted");
    assert_eq!(
        stopped.code, 130,
        "an interrupted run has its own exit code"
    );
    assert_eq!(stopped.status("agent-1", "node"), "changed");
    assert_eq!(stopped.status("pub-1", "docker"), "skipped");
    let journal: Value = serde_json::from_str(
        &std::fs::read_to_string(c.dir.path().join(".calico-rollout/cluster/journal.json"))
            .expect("journal saved"),
    )
    .unwrap();
    assert_eq!(journal["state"], "interrupted");
    for a in &AGENTS {
        assert!(
            read(a.name, "/run/lock/calico-rollout.lock").is_none(),
            "lock released on {}",
            a.name
        );
    }

    let resumed = run_binary("apply", &path, &["--resume"]);
    assert_eq!(resumed.code, 0);
    assert!(
        resumed
            .message("agent-1", "node")
            .ends_with("(earlier run)")
    );
    assert_eq!(resumed.status("pub-1", "node"), "changed");

    let again = run_binary("apply", &path, &[]);
    assert_eq!(again.code, 0);
    for (host, step, status) in again.cells() {
        assert_eq!(status, "ok", "{host} {step} after convergence");
    }
    let refused = run_binary("apply", &path, &["--resume"]);
    assert_eq!(refused.code, 64, "a finished run has nothing to resume");
}

#[test]
fn a_second_concurrent_apply_is_refused_on_every_locked_host() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    let path = c.write_inventory(&inv);
    let first = spawn_binary("apply", &path, &[]);
    wait_until(60, "the first run to lock every agent", || {
        AGENTS
            .iter()
            .all(|a| read(a.name, "/run/lock/calico-rollout.lock").is_some())
    });
    let other_dir = tempfile::tempdir().unwrap();
    let second_path = other_dir.path().join("cluster.yaml");
    std::fs::copy(&path, &second_path).unwrap();
    let second = run_binary("apply", &second_path, &[]);
    // The same inventory again: the live run's journal is kept.
    let third = run_binary("apply", &path, &[]);
    let first = finish(first, "the first apply");
    assert_eq!(third.code, 64, "{}", third.stderr);
    assert!(third.stderr.contains("is still going"), "{}", third.stderr);
    let journal: Value = serde_json::from_str(
        &std::fs::read_to_string(c.dir.path().join(".calico-rollout/cluster/journal.json"))
            .expect("journal saved"),
    )
    .unwrap();
    assert_eq!(journal["state"], "finished", "the first run's own journal");
    assert_eq!(journal["hosts"].as_object().unwrap().len(), AGENTS.len());

    assert_eq!(first.code, 0);
    assert_eq!(second.code, 3, "refused in preflight, nothing changed");
    for a in &AGENTS {
        let why = second.message(a.name, "etcd-proxy");
        assert!(
            why.contains("another rollout is working on this agent"),
            "{why}"
        );
        assert!(why.contains("locked by run"), "the holder is named: {why}");
        // Each unit restarted exactly once: nothing was done twice.
        let stops: Vec<String> = restart_log(a.name)
            .into_iter()
            .filter(|r| r.event == "stop" && r.unit != "calico-etcd-proxy")
            .map(|r| r.unit)
            .collect();
        let mesos = if a.public {
            "dcos-mesos-slave-public"
        } else {
            "dcos-mesos-slave"
        };
        assert_eq!(stops, ["docker", mesos], "{}", a.name);
    }
}

#[test]
fn a_node_upgrade_rolls_in_batches_and_rollback_brings_back_the_old_version() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["node"]["image"] = json!("calico/node:v2.6.11");
    assert_eq!(c.run("apply", &inv, &[]).code, 0);

    inv["node"]["image"] = json!("calico/node:v2.6.12");
    let upgrade = c.run("apply", &inv, &[]);
    assert_eq!(upgrade.code, 0);
    assert!(
        upgrade.stderr.contains(
            "before batch 2 of 2: checking the BGP sessions of the 2 host(s) already done"
        ) && upgrade.stderr.contains("batch 2 of 2"),
        "the first batch's mesh is checked before the second starts: {}",
        upgrade.stderr
    );
    let mut started: Vec<(String, String)> = Vec::new();
    for a in &AGENTS {
        assert_eq!(upgrade.status(a.name, "node"), "changed");
        assert_eq!(upgrade.status(a.name, "docker"), "ok");
        let node = container(a.name, "calico-node").unwrap();
        assert_eq!(node["Config"]["Image"], "calico/node:v2.6.12");
        started.push((
            a.name.to_string(),
            node["State"]["StartedAt"].as_str().unwrap().to_string(),
        ));
        let old = retired(a.name, "calico-node");
        assert_eq!(old.len(), 1, "the old container is kept");
        let old = &old[0];
        assert_eq!(old["Config"]["Image"], "calico/node:v2.6.11");
        assert_eq!(old["State"]["Running"], false);
        assert_eq!(old["HostConfig"]["RestartPolicy"]["Name"], "no");
        let bird = exec(
            a.name,
            "docker exec calico-node birdcl -s /var/run/calico/bird.ctl show protocols",
        );
        let mesh: Vec<&str> = bird.lines().filter(|l| l.starts_with("Mesh_")).collect();
        assert_eq!(mesh.len(), 3, "{bird}");
        assert!(mesh.iter().all(|l| l.contains("Established")), "{bird}");
    }
    // Batches of two: both hosts of the first batch were replaced before
    // either of the second.
    let first_done = started[..2].iter().map(|(_, t)| t.clone()).max().unwrap();
    let second_began = started[2..].iter().map(|(_, t)| t.clone()).min().unwrap();
    assert!(first_done < second_began, "{started:?}");

    let rollback = c.run("rollback", &inv, &[]);
    assert_eq!(rollback.code, 0);
    for a in &AGENTS {
        assert_eq!(rollback.status(a.name, "node"), "changed");
        assert_eq!(
            rollback.status(a.name, "docker"),
            "ok",
            "only the last apply is undone"
        );
        let node = container(a.name, "calico-node").unwrap();
        assert_eq!(node["Config"]["Image"], "calico/node:v2.6.11");
        assert_eq!(node["State"]["Running"], true);
        assert_eq!(node["HostConfig"]["RestartPolicy"]["Name"], "always");
        assert!(retired(a.name, "calico-node").is_empty());
    }
    let plan = c.run("plan", &inv, &[]);
    assert_eq!(
        plan.status("agent-1", "node"),
        "changed",
        "apply would upgrade again"
    );
}

#[test]
fn rollback_of_a_fresh_install_leaves_the_agents_as_they_were() {
    let c = cluster();
    let inv = c.inventory();
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    let rollback = c.run("rollback", &inv, &[]);
    assert_eq!(rollback.code, 0);
    for a in &AGENTS {
        untouched(a.name);
        assert_eq!(exec(a.name, "systemctl is-active docker"), "active\n");
        assert!(read(a.name, &format!("{PLUGIN_DIR}/calico")).is_none());
        assert_eq!(
            read(a.name, "/opt/mesosphere/etc/dcos/network/cni/dcos.conf").unwrap(),
            seed("cni/dcos.conf")
        );
    }
    let again = c.run("rollback", &inv, &[]);
    assert_eq!(again.code, 0);
    for (host, step, status) in again.cells() {
        assert_eq!(status, "ok", "{host} {step}: nothing left to roll back");
    }
}

#[test]
fn on_docker_23_a_new_daemon_json_must_pass_dockerd_validate_first() {
    let c = cluster();
    exec("agent-1", "echo 24.0.7 > /etc/fake-faults/docker-version");
    // Docker 24 has no cluster store; an operator manages other keys.
    let mut inv = c.inventory();
    c.template(&mut inv, "daemon.json.j2", r#"{"live-restore": true}"#);
    let run = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.status("agent-1", "docker"), "changed");
    let daemon: Value = serde_json::from_slice(&read("agent-1", DAEMON_JSON).unwrap()).unwrap();
    assert_eq!(daemon["live-restore"], true);
    assert_eq!(daemon["storage-driver"], "overlay2", "other keys kept");
    let good = read("agent-1", DAEMON_JSON).unwrap();

    c.template(
        &mut inv,
        "daemon.json.j2",
        r#"{"live-restore": true, "not-a-docker-option": 1}"#,
    );
    let before = restart_log("agent-1").len();
    let run = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_ne!(run.code, 0);
    let why = run.message("agent-1", "docker");
    assert!(
        why.contains("dockerd refuses the new /etc/docker/daemon.json")
            && why.contains("not-a-docker-option"),
        "{why}"
    );
    assert_eq!(
        read("agent-1", DAEMON_JSON).unwrap(),
        good,
        "left unchanged"
    );
    let restarted: Vec<Restart> = restart_log("agent-1")
        .into_iter()
        .skip(before)
        .filter(|r| r.unit == "docker")
        .collect();
    assert!(
        restarted.is_empty(),
        "docker was not restarted: {restarted:?}"
    );
    assert!(
        read("agent-1", "/var/lib/calico-rollout/pending/docker").is_none(),
        "a refused install leaves no restart pending"
    );

    // Back to the good template: nothing changed, so nothing restarts.
    c.template(&mut inv, "daemon.json.j2", r#"{"live-restore": true}"#);
    let before = restart_log("agent-1").len();
    let again = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_eq!(again.code, 0);
    for (host, step, status) in again.cells() {
        if host == "agent-1" {
            assert_eq!(status, "ok", "{step}");
        }
    }
    let stops: Vec<Restart> = restart_log("agent-1")
        .into_iter()
        .skip(before)
        .filter(|r| r.event == "stop")
        .collect();
    assert!(stops.is_empty(), "nothing restarted: {stops:?}");
}

#[test]
fn pause_after_canary_stops_there_and_resume_goes_on() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["canary"] = json!(1);
    inv["rollout"]["batch"] = json!(3);
    let path = c.write_inventory(&inv);
    let before = log_lengths();

    let paused = run_binary("apply", &path, &["--pause-after-canary"]);
    assert_eq!(paused.code, 6, "paused after the canary");
    assert!(paused.stderr.contains("PAUSED"), "{}", paused.stderr);
    assert_eq!(paused.status("agent-1", "node"), "changed");
    for host in ["agent-2", "agent-3", "pub-1"] {
        assert_eq!(paused.status(host, "docker"), "skipped", "{host}");
        assert!(no_restarts(host, &before), "{host}");
        untouched(host);
    }

    let resumed = run_binary("apply", &path, &["--resume"]);
    assert_eq!(resumed.code, 0);
    assert!(
        resumed
            .message("agent-1", "docker")
            .ends_with("(earlier run)")
    );
    for host in ["agent-2", "agent-3", "pub-1"] {
        assert_eq!(resumed.status(host, "node"), "changed", "{host}");
    }
    assert!(
        resumed
            .stderr
            .contains("batch 1 of 1: agent-2, agent-3, pub-1"),
        "the canary is not run again: {}",
        resumed.stderr
    );
}
