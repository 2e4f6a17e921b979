//! `calico-rollout apply` and `plan` against the fake DC/OS cluster.

mod common;

use common::*;
use serde_json::{Value, json};

const STEPS: [&str; 5] = ["etcd-proxy", "docker", "cni", "libnetwork", "node"];

/// Restart-log lines written after `before` lines, per agent.
fn new_restarts(before: &[(String, usize)]) -> Vec<(String, Restart)> {
    before
        .iter()
        .flat_map(|(name, n)| {
            restart_log(name)
                .into_iter()
                .skip(*n)
                .map(|r| (name.clone(), r))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn restart_log_lengths() -> Vec<(String, usize)> {
    AGENTS
        .iter()
        .map(|a| (a.name.to_string(), restart_log(a.name).len()))
        .collect()
}

#[test]
fn fresh_apply_converges_every_agent() {
    let c = cluster();
    let run = c.run("apply", &c.inventory(), &[]);
    assert_eq!(run.code, 0, "apply succeeds");
    for (host, step, status) in run.cells() {
        assert_eq!(status, "changed", "{host} {step}");
    }

    let seed_daemon: Value = serde_json::from_slice(&seed("daemon.json")).unwrap();
    let calico = std::fs::read(repo().join("inventories/bin/calico")).unwrap();
    let ipam = std::fs::read(repo().join("inventories/bin/calico-ipam")).unwrap();
    let first_cni = read("agent-1", CNI_CONFIG).expect("calico.cni written");
    for a in &AGENTS {
        // daemon.json: every prior key kept, in order, plus the cluster store.
        let daemon: Value = serde_json::from_slice(&read(a.name, DAEMON_JSON).unwrap()).unwrap();
        let mut want = seed_daemon.clone();
        want["cluster-store"] = json!("etcd://127.0.0.1:2379");
        assert_eq!(daemon, want, "{}: daemon.json", a.name);
        let keys: Vec<&String> = daemon.as_object().unwrap().keys().collect();
        let seed_keys: Vec<&String> = seed_daemon.as_object().unwrap().keys().collect();
        assert_eq!(
            &keys[..seed_keys.len()],
            &seed_keys[..],
            "{}: key order kept",
            a.name
        );

        // The plugins, byte for byte and executable; DC/OS's own files untouched.
        assert_eq!(
            read(a.name, &format!("{PLUGIN_DIR}/calico")).unwrap(),
            calico
        );
        assert_eq!(
            read(a.name, &format!("{PLUGIN_DIR}/calico-ipam")).unwrap(),
            ipam
        );
        let modes = exec(
            a.name,
            &format!("stat -c %a {PLUGIN_DIR}/calico {PLUGIN_DIR}/calico-ipam"),
        );
        assert_eq!(modes, "755\n755\n", "{}: plugin modes", a.name);
        assert_eq!(
            read(a.name, "/opt/mesosphere/etc/dcos/network/cni/dcos.conf").unwrap(),
            seed("cni/dcos.conf"),
            "{}: dcos.conf untouched",
            a.name
        );
        let cni_config = read(a.name, CNI_CONFIG).unwrap();
        assert_eq!(
            cni_config, first_cni,
            "{}: same calico.cni everywhere",
            a.name
        );
        let cni: Value = serde_json::from_slice(&cni_config).unwrap();
        assert_eq!(cni["type"], "calico");
        assert_eq!(cni["ipam"]["type"], "calico-ipam");
        assert_eq!(cni["etcd_endpoints"], "http://127.0.0.1:2379");

        // The gateway answers on the agent and carries writes to the real store.
        let key = format!(
            "http://127.0.0.1:2379/v2/keys/calico-rollout-test/{}",
            a.name
        );
        exec(
            a.name,
            &format!("curl -fsS -X PUT {key} -d value=via-gateway >/dev/null"),
        );
        let stored = exec_in(
            ETCD_CONTAINER,
            &format!(
                "curl -fsS http://127.0.0.1:2379/v2/keys/calico-rollout-test/{}",
                a.name
            ),
        );
        assert!(stored.contains("via-gateway"), "{}: {stored}", a.name);
        assert_eq!(
            exec(a.name, "systemctl is-enabled calico-etcd-proxy"),
            "enabled\n"
        );

        // The services restarted onto the new configuration and are up.
        assert_eq!(exec(a.name, "systemctl is-active docker"), "active\n");
        let info: Value =
            serde_json::from_str(&exec(a.name, "docker info --format '{{json .}}'")).unwrap();
        assert_eq!(info["ClusterStore"], "etcd://127.0.0.1:2379", "{}", a.name);
        mesos_healthy(a.name);

        // Both containers run the configured images; env values stay in a
        // root-only file, not in the container's command line.
        let node = container(a.name, "calico-node").expect("calico-node exists");
        assert_eq!(node["State"]["Running"], true);
        assert_eq!(node["Config"]["Image"], "calico/node:v2.6.12");
        let env = node["Config"]["Env"].to_string();
        assert!(env.contains(&format!("NODENAME={}", a.name)), "{env}");
        assert!(env.contains("CALICO_NETWORKING_BACKEND=bird"), "{env}");
        assert!(
            env.contains("ETCD_ENDPOINTS=http://127.0.0.1:2379"),
            "{env}"
        );
        assert_eq!(
            exec(a.name, "stat -c %a /etc/calico/calico-node.env"),
            "600\n"
        );
        let lib = container(a.name, "calico-libnetwork").expect("calico-libnetwork exists");
        assert_eq!(lib["State"]["Running"], true);
        assert_eq!(lib["Config"]["Image"], "calico/libnetwork-plugin:v1.1.3");
    }
}

#[test]
fn second_apply_changes_nothing_and_restarts_nothing() {
    let c = cluster();
    let inv = c.inventory();
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    let before = restart_log_lengths();
    let node_ids: Vec<Value> = AGENTS
        .iter()
        .map(|a| container(a.name, "calico-node").unwrap()["Id"].clone())
        .collect();

    let again = c.run("apply", &inv, &[]);
    assert_eq!(again.code, 0);
    for (host, step, status) in again.cells() {
        assert_eq!(status, "ok", "{host} {step} on a converged cluster");
    }
    assert!(
        again.stderr.contains("0 changed, 0 failed; 0 restarts"),
        "{}",
        again.stderr
    );
    let plan = c.run("plan", &inv, &[]);
    assert_eq!(plan.code, 0, "plan on a converged cluster: no drift");
    assert!(
        plan.stderr
            .contains("agent-[1-3], pub-1 (4 hosts):\n  etcd-proxy  ok, nothing to do\n"),
        "identical plans are grouped: {}",
        plan.stderr
    );
    assert!(
        plan.stderr
            .contains("0 step(s) would change on 0 of 4 host(s)"),
        "{}",
        plan.stderr
    );
    let restarts = new_restarts(&before);
    assert!(restarts.is_empty(), "nothing restarted: {restarts:?}");
    for (a, id) in AGENTS.iter().zip(node_ids) {
        assert_eq!(
            container(a.name, "calico-node").unwrap()["Id"],
            id,
            "{}",
            a.name
        );
    }
}

#[test]
fn restarts_never_overlap_across_batches() {
    let c = cluster();
    let before = restart_log_lengths();
    let run = c.run("apply", &c.inventory(), &[]);
    assert_eq!(run.code, 0);

    // batch: 2 over four agents: [agent-1, agent-2] then [agent-3, pub-1].
    // Each host's disruption spans its first docker/mesos stop to its last
    // ready; the second batch may start only after the first is back.
    let window = |host: &str| {
        let events: Vec<f64> = new_restarts(&before)
            .into_iter()
            .filter(|(h, r)| h == host && r.unit != "calico-etcd-proxy")
            .map(|(_, r)| r.at)
            .collect();
        assert!(!events.is_empty(), "{host} restarted something");
        (
            events.iter().cloned().fold(f64::MAX, f64::min),
            events.iter().cloned().fold(f64::MIN, f64::max),
        )
    };
    let first_end = ["agent-1", "agent-2"].map(|h| window(h).1);
    let second_start = ["agent-3", "pub-1"].map(|h| window(h).0);
    let first_done = first_end.iter().cloned().fold(f64::MIN, f64::max);
    let second_began = second_start.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        first_done < second_began,
        "batch 2 began at {second_began} before batch 1 finished at {first_done}"
    );
    for host in ["agent-1", "agent-2", "agent-3", "pub-1"] {
        let units: Vec<String> = new_restarts(&before)
            .into_iter()
            .filter(|(h, r)| h == host && r.event == "stop")
            .map(|(_, r)| r.unit)
            .collect();
        let mesos = if host == "pub-1" {
            "dcos-mesos-slave-public"
        } else {
            "dcos-mesos-slave"
        };
        assert_eq!(units, ["docker", mesos], "{host}: each unit restarted once");
    }
}

#[test]
fn restart_failure_in_first_batch_stops_later_batches() {
    let c = cluster();
    exec("agent-1", "touch /etc/fake-faults/fail-restart-docker");
    let before = restart_log_lengths();
    let run = c.run("apply", &c.inventory(), &[]);

    assert_eq!(run.code, 5, "failure budget exceeded");
    assert_eq!(run.status("agent-1", "docker"), "failed");
    let why = run.message("agent-1", "docker");
    assert!(
        why.contains("injected fault"),
        "the reason is dockerd's own stderr: {why}"
    );
    assert!(run.stderr.contains("STOPPED"), "{}", run.stderr);

    // The second batch was never touched: no restart, no file, no container.
    for host in ["agent-3", "pub-1"] {
        for step in ["docker", "cni", "libnetwork", "node"] {
            assert_eq!(run.status(host, step), "skipped", "{host} {step}");
        }
        let restarts: Vec<_> = new_restarts(&before)
            .into_iter()
            .filter(|(h, r)| h == host && r.unit != "calico-etcd-proxy")
            .collect();
        assert!(restarts.is_empty(), "{host}: {restarts:?}");
        assert_eq!(
            read(host, DAEMON_JSON).unwrap(),
            seed("daemon.json"),
            "{host}"
        );
        assert_eq!(read(host, CNI_CONFIG), None, "{host}");
        assert!(container(host, "calico-node").is_none(), "{host}");
    }
}

#[test]
fn plan_writes_nothing() {
    let c = cluster();
    let before = restart_log_lengths();
    let snapshot = |host: &str| {
        exec(
            host,
            "find /etc /opt/mesosphere /var/lib -xdev -type f -newer /run/fake-agent-booted 2>/dev/null | sort; \
             sha256sum /etc/docker/daemon.json /opt/mesosphere/etc/dcos/network/cni/* /opt/mesosphere/active/cni/*",
        )
    };
    let files_before: Vec<String> = AGENTS.iter().map(|a| snapshot(a.name)).collect();

    let run = c.run("plan", &c.inventory(), &[]);
    assert_eq!(run.code, 2, "changes are pending");
    assert_eq!(run.status("agent-1", "docker"), "changed");
    assert!(
        run.message("pub-1", "cni")
            .contains("restart dcos-mesos-slave-public")
    );
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert!(
        run.stderr.contains("\nagent-[1-3] (3 hosts):\n")
            && run.stderr.contains("\npub-1:\n")
            && run.stderr.contains("would change on 4 of 4 host(s)"),
        "the private agents share one plan, the public one has its own: {}",
        run.stderr
    );

    let files_after: Vec<String> = AGENTS.iter().map(|a| snapshot(a.name)).collect();
    assert_eq!(files_before, files_after, "plan changed files on an agent");
    assert!(new_restarts(&before).is_empty(), "plan restarted a unit");
    for a in &AGENTS {
        assert!(container(a.name, "calico-node").is_none());
        assert_eq!(
            read(a.name, "/etc/systemd/system/calico-etcd-proxy.service"),
            None
        );
    }
}

#[test]
fn plan_shows_what_each_file_and_container_would_become() {
    let c = cluster();
    let on_agent: Value =
        serde_json::from_slice(&read("agent-1", DAEMON_JSON).expect("agents have a daemon.json"))
            .unwrap();
    let keys_before = on_agent.as_object().unwrap().len();

    let plan = c.run("plan", &c.inventory(), &[]);
    assert_eq!(plan.code, 2, "changes are pending");
    let diff = plan.diff("agent-1", "docker");
    assert_eq!(
        diff,
        json!([{"kind": "json", "path": DAEMON_JSON, "created": false,
                "keys": [{"key": "cluster-store", "change": "added", "new": "\"etcd://127.0.0.1:2379\""}],
                "unchanged": keys_before}]),
        "only the added key is named; every key the agent had stays"
    );
    assert!(
        plan.stderr.contains(&format!(
            "              /etc/docker/daemon.json:\n                + cluster-store: \"etcd://127.0.0.1:2379\"\n                ({keys_before} keys unchanged)\n"
        )),
        "{}",
        plan.stderr
    );

    // A converged cluster, then a new image and a new secret in the environment.
    let mut inv = c.inventory();
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    inv["node"]["image"] = json!("calico/node:v2.6.11");
    inv["node"]["env"]["ETCD_PASSWORD"] = json!("hunter2-secret");
    let plan = c.run("plan", &inv, &[]);
    assert_eq!(plan.code, 2);
    assert_eq!(plan.status("agent-1", "docker"), "ok");
    let node = &plan.diff("agent-1", "node")[0];
    assert_eq!(node["kind"], "container");
    assert_eq!(node["from_image"], "calico/node:v2.6.12");
    assert_eq!(node["to_image"], "calico/node:v2.6.11");
    assert_eq!(
        node["options_added"],
        json!([]),
        "the options did not change"
    );
    assert_eq!(
        node["env"],
        json!([{"key": "ETCD_PASSWORD", "change": "added", "masked": true}])
    );
    assert!(
        plan.stderr
            .contains("+ env ETCD_PASSWORD (value hidden; --show-secrets shows it)"),
        "{}",
        plan.stderr
    );
    for out in [&plan.stdout, &plan.stderr] {
        assert!(!out.contains("hunter2"), "a secret was printed: {out}");
    }
    let shown = c.run("plan", &inv, &["--show-secrets"]);
    assert!(
        shown.stderr.contains("+ env ETCD_PASSWORD=hunter2-secret"),
        "{}",
        shown.stderr
    );
}

#[test]
fn docker_23_agent_is_refused_and_its_daemon_json_left_untouched() {
    let c = cluster();
    exec("agent-3", "echo 24.0.7 > /etc/fake-faults/docker-version");
    let mut inv = c.inventory();
    inv["rollout"]["max_failures"] = json!(1);
    let run = c.run("apply", &inv, &[]);

    assert_eq!(run.code, 4, "one host failed, within the budget");
    assert_eq!(run.status("agent-3", "docker"), "failed");
    let why = run.message("agent-3", "docker");
    assert!(
        why.contains("Docker 24.0.7") && why.contains("cluster-store"),
        "{why}"
    );
    assert_eq!(read("agent-3", DAEMON_JSON).unwrap(), seed("daemon.json"));
    assert_eq!(exec("agent-3", "systemctl is-active docker"), "active\n");
    for host in ["agent-1", "agent-2", "pub-1"] {
        for step in STEPS {
            assert_eq!(run.status(host, step), "changed", "{host} {step}");
        }
    }
}

#[test]
fn changed_node_image_replaces_the_container_and_nothing_else() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["node"]["image"] = json!("calico/node:v2.6.11");
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    let before = restart_log_lengths();

    inv["node"]["image"] = json!("calico/node:v2.6.12");
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0);
    for a in &AGENTS {
        assert_eq!(run.status(a.name, "node"), "changed");
        assert_eq!(
            run.message(a.name, "node"),
            "replace calico-node: calico/node:v2.6.11 -> calico/node:v2.6.12"
        );
        for step in ["etcd-proxy", "docker", "cni", "libnetwork"] {
            assert_eq!(run.status(a.name, step), "ok", "{} {step}", a.name);
        }
        let node = container(a.name, "calico-node").unwrap();
        assert_eq!(node["Config"]["Image"], "calico/node:v2.6.12");
        assert_eq!(node["State"]["Running"], true);
    }
    assert!(
        new_restarts(&before).is_empty(),
        "an image change restarts no unit"
    );
}

#[test]
fn limit_touches_only_the_selected_agents() {
    let c = cluster();
    let run = c.run("apply", &c.inventory(), &["--limit", "agent-2,pub-*"]);
    assert_eq!(run.code, 0);
    let hosts: Vec<String> = run
        .hosts()
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, ["agent-2", "pub-1"]);
    assert_eq!(read("agent-1", DAEMON_JSON).unwrap(), seed("daemon.json"));
    assert_eq!(read("agent-3", DAEMON_JSON).unwrap(), seed("daemon.json"));
    assert!(container("agent-2", "calico-node").is_some());
}

/// Serves `file` over HTTP from the store's container, which every agent
/// reaches as `etcd`; stops serving when dropped.
struct FileServer;

impl FileServer {
    fn serve(file: &std::path::Path) -> FileServer {
        let docker = |args: &[&str]| {
            let ok = std::process::Command::new("docker")
                .args(args)
                .status()
                .expect("docker")
                .success();
            assert!(ok, "docker {args:?}");
        };
        docker(&["exec", ETCD_CONTAINER, "mkdir", "-p", "/srv/www"]);
        let to = format!(
            "{ETCD_CONTAINER}:/srv/www/{}",
            file.file_name().unwrap().to_str().unwrap()
        );
        docker(&["cp", file.to_str().unwrap(), &to]);
        docker(&[
            "exec",
            "-d",
            ETCD_CONTAINER,
            "python3",
            "-m",
            "http.server",
            "8088",
            "--directory",
            "/srv/www",
        ]);
        wait_until(30, "the file server", || {
            std::process::Command::new("docker")
                .args([
                    "exec",
                    AGENTS[0].container,
                    "curl",
                    "-fsS",
                    "-o",
                    "/dev/null",
                ])
                .arg("http://etcd:8088/")
                .status()
                .unwrap()
                .success()
        });
        FileServer
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["exec", ETCD_CONTAINER, "pkill", "-f", "http.server 8088"])
            .status();
    }
}

#[test]
fn agents_download_a_binary_given_by_url_and_check_it_first() {
    let c = cluster();
    let calico = repo().join("inventories/bin/calico");
    let _server = FileServer::serve(&calico);
    let mut inv = c.inventory();
    inv["cni"]["binaries"]["calico"] =
        json!({"url": "http://etcd:8088/calico", "sha256": sha256_local(&calico)});
    let run = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_eq!(run.code, 0);
    assert!(
        run.message("agent-1", "cni")
            .contains("downloaded by the agent"),
        "{}",
        run.message("agent-1", "cni")
    );
    assert_eq!(
        read("agent-1", &format!("{PLUGIN_DIR}/calico")).unwrap(),
        std::fs::read(&calico).unwrap()
    );
    let again = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_eq!(again.code, 0);
    assert_eq!(
        again.status("agent-1", "cni"),
        "ok",
        "converged: nothing to fetch"
    );

    // The mirror serves other bytes than the inventory says: the host
    // fails before its batch, and nothing on it is touched.
    inv["cni"]["binaries"]["calico"]["sha256"] = json!("0".repeat(64));
    let run = c.run("apply", &inv, &["--limit", "agent-2"]);
    assert_eq!(run.code, 5, "no batch was started");
    let why = run.message("agent-2", "cni");
    assert!(
        why.contains("refusing to install the download of http://etcd:8088/calico"),
        "{why}"
    );
    assert_eq!(read("agent-2", &format!("{PLUGIN_DIR}/calico")), None);
    assert_eq!(read("agent-2", DAEMON_JSON).unwrap(), seed("daemon.json"));
}

#[test]
fn a_file_changed_by_hand_is_found_even_at_the_same_size() {
    let c = cluster();
    let inv = c.inventory();
    assert_eq!(c.run("apply", &inv, &["--limit", "agent-1"]).code, 0);
    let cni = read("agent-1", CNI_CONFIG).unwrap();
    // Same size, other bytes, and the old mtime put back: only the ctime
    // tells, and no one can set that back.
    let mut edited = cni.clone();
    let at = edited.iter().position(|&b| b == b'c').unwrap();
    edited[at] = b'C';
    exec(
        "agent-1",
        &format!(
            "t=$(stat -c %y {CNI_CONFIG}); printf '%s' '{}' > {CNI_CONFIG}; touch -d \"$t\" {CNI_CONFIG}",
            String::from_utf8(edited).unwrap()
        ),
    );
    let run = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.status("agent-1", "cni"), "changed");
    assert_eq!(read("agent-1", CNI_CONFIG).unwrap(), cni, "put back");
}

#[test]
fn verify_hashes_what_the_manifest_would_vouch_for() {
    let c = cluster();
    let inv = c.inventory();
    assert_eq!(c.run("apply", &inv, &["--limit", "agent-1"]).code, 0);
    // A manifest that lies about calico.cni's hash: a plain plan trusts it
    // (the file's stat matches), --verify hashes the file itself.
    let manifest = "/var/lib/calico-rollout/manifest";
    exec(
        "agent-1",
        &format!(
            "sed -i 's#^\\({CNI_CONFIG}|.*|\\)[0-9a-f]\\{{64\\}}$#\\1{}#' {manifest}",
            "0".repeat(64)
        ),
    );
    let lie = String::from_utf8(read("agent-1", manifest).unwrap()).unwrap();
    assert!(lie.contains(&"0".repeat(64)), "{lie}");
    let plan = c.run("plan", &inv, &["--limit", "agent-1"]);
    assert_eq!(
        plan.status("agent-1", "cni"),
        "changed",
        "the manifest's hash differs from the desired one"
    );
    let verified = c.run("plan", &inv, &["--limit", "agent-1", "--verify"]);
    assert_eq!(
        verified.status("agent-1", "cni"),
        "ok",
        "the file itself is right"
    );
}

#[test]
fn an_etcd_binary_from_this_machine_is_pushed_and_runs_the_gateway() {
    let c = cluster();
    // The agents' own etcd, copied here, pushed back to the path
    // calico-rollout owns.
    let local = c.dir.path().join("etcd");
    std::fs::write(&local, read("agent-1", "/usr/bin/etcd").unwrap()).unwrap();
    let mut inv = c.inventory();
    inv["etcd"]["binary"] = json!(local);
    let run = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_eq!(run.code, 0);
    let managed = "/opt/calico-rollout/bin/etcd";
    assert!(
        run.message("agent-1", "etcd-proxy")
            .contains(&format!("install {managed}")),
        "{}",
        run.message("agent-1", "etcd-proxy")
    );
    assert_eq!(
        read("agent-1", managed).unwrap(),
        std::fs::read(&local).unwrap()
    );
    assert_eq!(exec("agent-1", &format!("stat -c %a {managed}")), "755\n");
    let unit = String::from_utf8(
        read("agent-1", "/etc/systemd/system/calico-etcd-proxy.service").unwrap(),
    )
    .unwrap();
    assert!(
        unit.contains(&format!("ExecStart={managed} gateway start")),
        "{unit}"
    );
    exec("agent-1", "curl -fsS http://127.0.0.1:2379/health");
    let again = c.run("apply", &inv, &["--limit", "agent-1"]);
    assert_eq!(again.status("agent-1", "etcd-proxy"), "ok");
}
