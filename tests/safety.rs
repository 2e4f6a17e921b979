//! The ordinary ways an upgrade goes wrong, and what an operator finds on
//! the agents afterwards: a restart that hangs, an image that crash-loops
//! or cannot be pulled, a connection that drops mid-step, a service that
//! restarts itself, a lock taken over, a file edited under the run, and
//! signals at awkward moments.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const LOCK: &str = "/run/lock/calico-rollout.lock";
const GATEWAY_UNIT: &str = "/etc/systemd/system/calico-etcd-proxy.service";

fn log_lengths() -> Vec<usize> {
    AGENTS.iter().map(|a| restart_log(a.name).len()).collect()
}

/// Whether `host` stopped any unit since `lengths` was taken.
fn restarted_since(host: &str, lengths: &[usize]) -> bool {
    let i = AGENTS.iter().position(|a| a.name == host).unwrap();
    restart_log(host)
        .into_iter()
        .skip(lengths[i])
        .any(|r| r.event == "stop")
}

/// The agent looks as it did before calico-rollout ever ran.
fn untouched(host: &str) {
    assert_eq!(
        read(host, DAEMON_JSON).unwrap(),
        seed("daemon.json"),
        "{host}: daemon.json"
    );
    assert_eq!(read(host, CNI_CONFIG), None, "{host}: calico.cni");
    assert_eq!(read(host, GATEWAY_UNIT), None, "{host}: gateway unit");
    assert!(
        container(host, "calico-node").is_none(),
        "{host}: calico-node"
    );
}

fn fault(host: &str, name: &str, content: &str) {
    exec(
        host,
        &format!("mkdir -p /etc/fake-faults && printf '%s' '{content}' > /etc/fake-faults/{name}"),
    );
}

fn no_lock_anywhere() {
    for a in &AGENTS {
        assert!(
            read(a.name, LOCK).is_none(),
            "a lock was left on {}",
            a.name
        );
    }
}

/// Converges every agent on `image` for calico-node.
fn converge_on(c: &Cluster, inv: &mut Value, image: &str) {
    inv["node"]["image"] = json!(image);
    let run = c.run("apply", inv, &[]);
    assert_eq!(run.code, 0, "the cluster converges first");
}

#[test]
fn a_restart_that_hangs_ends_at_its_deadline_and_the_host_is_reverted() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    inv["rollout"]["health_timeout"] = json!("8s");
    // The next start of docker hangs in a stuck pre-start, as a wedged
    // dockerd under TimeoutStartSec=0 does; the one after is fine.
    fault("agent-1", "hang-restart-docker", "1");
    let before = log_lengths();
    let started = Instant::now();
    let run = c.run("apply", &inv, &[]);
    let took = started.elapsed();

    assert_eq!(run.code, 5, "the failure budget stops the rollout");
    // 8 s for the restart, plus the agent's kill grace and the revert.
    assert!(took < Duration::from_secs(60), "the run took {took:?}");
    assert_eq!(run.status("agent-1", "docker"), "reverted");
    let why = run.message("agent-1", "docker");
    assert!(
        why.contains("systemctl restart docker did not finish within 8s"),
        "{why}"
    );
    assert_eq!(run.status("agent-1", "etcd-proxy"), "reverted");
    // agent-1 is back as it was, docker running on its old configuration.
    untouched("agent-1");
    assert_eq!(exec("agent-1", "systemctl is-active docker"), "active\n");
    let store = exec("agent-1", "docker info --format '{{json .ClusterStore}}'");
    assert_eq!(store.trim(), "\"\"");
    // Later batches never started.
    for host in ["agent-2", "agent-3", "pub-1"] {
        assert!(!restarted_since(host, &before), "{host} restarted");
        untouched(host);
    }
    no_lock_anywhere();
}

#[test]
fn an_upgrade_to_a_crash_looping_node_is_taken_back_on_the_first_host() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    inv["rollout"]["min_healthy"] = json!("3s");
    converge_on(&c, &mut inv, "calico/node:v2.6.11");
    let before: Vec<Value> = AGENTS
        .iter()
        .map(|a| container(a.name, "calico-node").unwrap())
        .collect();
    // The new image's process exits at once; docker restarts it again and
    // again, and shows it running in between.
    for a in &AGENTS {
        fault(a.name, "crash-images", "calico/node:v2.6.13\n");
    }

    inv["node"]["image"] = json!("calico/node:v2.6.13");
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 5);
    assert_eq!(run.status("agent-1", "node"), "reverted");
    let why = run.message("agent-1", "node");
    assert!(why.contains("restart"), "the crash loop is named: {why}");
    // agent-1 runs its old calico-node again, under its own name, with its
    // restart policy; nothing retired is left behind.
    let node = container("agent-1", "calico-node").unwrap();
    assert_eq!(node["Id"], before[0]["Id"], "the very same container");
    assert_eq!(node["Config"]["Image"], "calico/node:v2.6.11");
    assert_eq!(node["State"]["Running"], true);
    assert_eq!(node["State"]["Restarting"], false);
    assert_eq!(node["HostConfig"]["RestartPolicy"]["Name"], "always");
    assert!(retired("agent-1", "calico-node").is_empty());
    // The other hosts were not touched.
    for (i, a) in AGENTS.iter().enumerate().skip(1) {
        assert_eq!(run.status(a.name, "node"), "skipped", "{}", a.name);
        let node = container(a.name, "calico-node").unwrap();
        assert_eq!(node["Id"], before[i]["Id"], "{}", a.name);
        assert_eq!(node["State"]["StartedAt"], before[i]["State"]["StartedAt"]);
    }
}

#[test]
fn an_upgrade_to_an_image_that_cannot_be_pulled_stops_nothing() {
    let c = cluster();
    let mut inv = c.inventory();
    converge_on(&c, &mut inv, "calico/node:v2.6.11");
    let before_ids: Vec<Value> = AGENTS
        .iter()
        .map(|a| container(a.name, "calico-node").unwrap()["Id"].clone())
        .collect();
    for a in &AGENTS {
        fault(a.name, "registry-missing", "calico/node:v9.9.9\n");
    }
    let lengths = log_lengths();

    inv["node"]["image"] = json!("calico/node:v9.9.9");
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 5);
    assert!(
        run.stderr.contains("no batch was started"),
        "{}",
        run.stderr
    );
    for (i, a) in AGENTS.iter().enumerate() {
        assert_eq!(run.status(a.name, "node"), "failed", "{}", a.name);
        let why = run.message(a.name, "node");
        assert!(
            why.contains("manifest for calico/node:v9.9.9 not found"),
            "docker's own message: {why}"
        );
        let node = container(a.name, "calico-node").unwrap();
        assert_eq!(node["Id"], before_ids[i], "{}: not replaced", a.name);
        assert_eq!(node["State"]["Running"], true);
        assert!(!restarted_since(a.name, &lengths), "{} restarted", a.name);
    }
}

#[test]
fn a_connection_dropped_mid_step_is_reconnected_and_the_host_reverted() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    // The SSH session of the next `systemctl restart docker` is killed.
    fault("agent-1", "drop-ssh-on-restart-docker", "1");
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 5);
    assert_eq!(run.status("agent-1", "docker"), "reverted");
    let why = run.message("agent-1", "docker");
    assert!(why.contains("connection lost"), "{why}");
    untouched("agent-1");
    assert_eq!(exec("agent-1", "systemctl is-active docker"), "active\n");
    for host in ["agent-2", "agent-3", "pub-1"] {
        untouched(host);
    }
    no_lock_anywhere();
}

#[test]
fn a_service_that_restarts_itself_fails_the_watch() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    inv["rollout"]["min_healthy"] = json!("4s");
    // Once up, the Mesos agent dies every second; systemd brings it back
    // each time, so it is "active" at most looks.
    fault("agent-1", "crash-after-dcos-mesos-slave", "1");
    let run = c.run("apply", &inv, &["--limit", "agent-1,agent-2"]);

    assert_ne!(run.code, 0);
    assert_eq!(run.status("agent-1", "cni"), "reverted");
    let why = run.message("agent-1", "cni");
    // Never the same process twice in a row, so its gate never passes; or,
    // if it does between two crashes, the watch sees the next one.
    assert!(
        why.contains("dcos-mesos-slave")
            && (why.contains("became unhealthy within 4s") || why.contains("is not healthy")),
        "{why}"
    );
    assert_eq!(read("agent-1", CNI_CONFIG), None, "calico.cni taken back");
    untouched("agent-2");
}

#[test]
fn a_run_whose_lock_is_taken_over_stops_touching_that_host() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    inv["rollout"]["max_failures"] = json!(1);
    let path = c.write_inventory(&inv);
    let child = spawn_binary("apply", &path, &[]);
    wait_until(60, "the run to lock every agent", || {
        AGENTS.iter().all(|a| read(a.name, LOCK).is_some())
    });
    // Someone else's run takes pub-1's lock, as a takeover would.
    let now = exec("pub-1", "date +%s");
    let theirs = format!(
        "{{\"owner\":\"other-run-1\",\"user\":\"bob\",\"host\":\"desk\",\"pid\":7,\"since\":{n},\"refreshed\":{n}}}",
        n = now.trim()
    );
    // Under the lock's guard, as every lock script writes it.
    exec(
        "pub-1",
        &format!(
            "printf '%s\\n' '{theirs}' > /run/lock/theirs.tmp && \
             flock /run/lock/.calico-rollout.lock.guard mv /run/lock/theirs.tmp {LOCK}"
        ),
    );
    let run = finish(child, "apply, with pub-1's lock taken");

    assert_eq!(run.status("agent-1", "node"), "changed");
    let why = run.message("pub-1", "etcd-proxy");
    assert!(
        why.contains("another run took this agent's lock") && why.contains("other-run-1"),
        "{why}"
    );
    untouched("pub-1");
    // Its lock is the other run's, still.
    let lock = String::from_utf8(read("pub-1", LOCK).unwrap()).unwrap();
    assert!(lock.contains("other-run-1"), "{lock}");
    for host in ["agent-1", "agent-2", "agent-3"] {
        assert!(read(host, LOCK).is_none(), "{host} lock released");
    }
}

#[test]
fn resume_is_refused_while_the_run_it_would_resume_is_alive() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    let path = c.write_inventory(&inv);
    let first = spawn_binary("apply", &path, &[]);
    wait_until(60, "the first run to lock agent-1", || {
        read("agent-1", LOCK).is_some()
    });
    let resumed = run_binary("apply", &path, &["--resume"]);
    let first = finish(first, "the first apply");

    assert_eq!(resumed.code, 64, "refused before any host is contacted");
    assert!(
        resumed.stderr.contains("is still going"),
        "{}",
        resumed.stderr
    );
    assert_eq!(first.code, 0, "the first run was not disturbed");
}

#[test]
fn rollback_after_a_reverted_apply_restores_the_state_before_the_last_good_apply() {
    let c = cluster();
    let mut inv = c.inventory();
    let limit = ["--limit", "agent-1"];
    // Run 1 installs the gateway.
    assert_eq!(c.run("apply", &inv, &limit).code, 0);
    let first_unit = read("agent-1", GATEWAY_UNIT).unwrap();
    // Run 2 changes it, and sticks.
    let unit_v2 = "# second version\n[Unit]\nDescription=etcd gateway\n[Service]\n\
        ExecStart={{ etcd.binary }} gateway start --endpoints={{ etcd.gateway_endpoints }} --listen-addr=127.0.0.1:2379\n\
        Restart=always\n[Install]\nWantedBy=multi-user.target\n";
    c.template(&mut inv, "calico-etcd-proxy.service.j2", unit_v2);
    assert_eq!(c.run("apply", &inv, &limit).code, 0);
    let second_unit = read("agent-1", GATEWAY_UNIT).unwrap();
    assert_ne!(first_unit, second_unit);
    // Run 3 points the gateway at a dead endpoint: it fails its gate and
    // is reverted to run 2's version.
    inv["etcd"]["endpoints"] = json!(["http://127.0.0.1:1"]);
    let bad = c.run("apply", &inv, &limit);
    assert_ne!(bad.code, 0);
    assert_eq!(bad.status("agent-1", "etcd-proxy"), "reverted");
    assert_eq!(read("agent-1", GATEWAY_UNIT).unwrap(), second_unit);

    // Rollback takes back run 2, the last apply that changed the host.
    let rollback = c.run("rollback", &inv, &limit);
    assert_eq!(rollback.code, 0);
    assert_eq!(rollback.status("agent-1", "etcd-proxy"), "changed");
    assert_eq!(
        read("agent-1", GATEWAY_UNIT).unwrap(),
        first_unit,
        "the version from before run 2, not an intermediate one"
    );
    assert_eq!(
        exec("agent-1", "systemctl is-active calico-etcd-proxy"),
        "active\n"
    );
    exec("agent-1", "curl -fsS http://127.0.0.1:2379/health");

    // A second rollback finds nothing to do, and changes nothing.
    let again = c.run("rollback", &inv, &limit);
    assert_eq!(again.code, 0);
    for (host, step, status) in again.cells() {
        if host == "agent-1" {
            assert_eq!(status, "ok", "{step}");
        }
    }
    assert_eq!(read("agent-1", GATEWAY_UNIT).unwrap(), first_unit);
}

#[test]
fn daemon_json_edited_during_the_run_is_merged_not_clobbered() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["batch"] = json!(1);
    let path = c.write_inventory(&inv);
    let child = spawn_binary("apply", &path, &[]);
    // agent-2 was probed in preflight; its batch comes after agent-1's.
    wait_until(120, "agent-1's docker restart", || {
        restart_log("agent-1")
            .iter()
            .any(|r| r.unit == "docker" && r.event == "stop")
    });
    exec(
        "agent-2",
        r#"printf '{"debug": false, "log-driver": "json-file", "log-level": "warn"}\n' > /etc/docker/daemon.json"#,
    );
    let run = finish(child, "apply, with agent-2's daemon.json edited");

    assert_eq!(run.code, 0);
    let daemon: Value = serde_json::from_slice(&read("agent-2", DAEMON_JSON).unwrap()).unwrap();
    assert_eq!(daemon["log-level"], "warn", "the operator's edit is kept");
    assert_eq!(daemon["cluster-store"], "etcd://127.0.0.1:2379");
    assert!(
        run.stderr.contains("changed since it was read"),
        "{}",
        run.stderr
    );
}

#[test]
fn sigterm_during_preflight_exits_promptly_and_leaves_no_lock() {
    let c = cluster();
    // A fifth agent that accepts the TCP connection and then says nothing:
    // its preflight hangs in the SSH handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
        }
    });
    let mut inv = c.inventory();
    inv["agents"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "agent-silent", "address": "127.0.0.1", "port": port}));
    let path = c.write_inventory(&inv);
    let child = spawn_binary("apply", &path, &[]);
    let pid = child.id();
    wait_until(60, "the four agents to be locked", || {
        AGENTS.iter().all(|a| read(a.name, LOCK).is_some())
    });
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = finish(child, "apply, SIGTERM during preflight");
    let took = signalled.elapsed();

    assert_eq!(run.code, 130);
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    no_lock_anywhere();
    for a in &AGENTS {
        untouched(a.name);
    }
    assert_eq!(run.status("agent-silent", "docker"), "skipped");
}

#[test]
fn a_second_signal_keeps_the_lock_where_a_command_may_still_run() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["rollout"]["health_timeout"] = json!("30s");
    // agent-1's docker restart hangs; the operator presses Ctrl-C twice.
    fault("agent-1", "hang-restart-docker", "1");
    let path = c.write_inventory(&inv);
    let child = spawn_binary("apply", &path, &["--limit", "agent-1"]);
    let pid = child.id().to_string();
    wait_until(60, "agent-1's docker restart to hang", || {
        restart_log("agent-1")
            .iter()
            .any(|r| r.unit == "docker" && r.event == "stop")
    });
    for _ in 0..2 {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    let run = finish(child, "apply, aborted mid-restart");

    assert_eq!(run.code, 131, "{}", run.stderr);
    assert_eq!(run.status("agent-1", "docker"), "unknown");
    let lock = String::from_utf8(read("agent-1", LOCK).expect("the lock is kept")).unwrap();
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    assert!(lock.contains(&run_id), "still this run's lock: {lock}");
    assert!(
        run.stderr.contains("agent-1: its lock is kept"),
        "{}",
        run.stderr
    );
}
