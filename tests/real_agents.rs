//! calico-rollout against the real agent profile: systemd as PID 1 and the
//! real dockerd 20.10 (testenv/README.md, "The real agent profile"). These
//! prove against the real daemons what the stand-in agents can only imitate:
//! the cluster store is connected through the gateway, dockerd refuses a bad
//! daemon.json, and restarts go through systemd and its start limits.

mod real;

use real::*;
use serde_json::{Value, json};

const STEPS: [&str; 5] = ["etcd-proxy", "docker", "cni", "libnetwork", "node"];

/// systemd's start properties of the units calico-rollout restarts, per agent.
fn start_state(agent_name: &str) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    let a = agent(agent_name);
    ["docker", a.mesos_unit(), "calico-etcd-proxy"]
        .into_iter()
        .map(|u| (u.to_string(), unit(agent_name, u, &START_PROPS)))
        .collect()
}

/// Docker, the Mesos agent and the gateway run as they did at `before`,
/// and systemd ran no job for them since `mark`.
fn assert_no_unit_started(
    agent_name: &str,
    before: &[(String, std::collections::BTreeMap<String, String>)],
    mark: &Mark,
) {
    assert_eq!(start_state(agent_name), before, "{agent_name}");
    for u in [
        "docker",
        agent(agent_name).mesos_unit(),
        "calico-etcd-proxy",
    ] {
        assert_eq!(
            jobs_since(agent_name, mark, u),
            Vec::<(String, String)>::new(),
            "{agent_name}: no systemd job for {u}"
        );
    }
}

/// What an agent that calico-rollout never reached looks like.
fn assert_untouched(host: &str, docker_before: &std::collections::BTreeMap<String, String>) {
    assert_eq!(
        read(host, DAEMON_JSON),
        read(host, SEED_DAEMON_JSON),
        "{host}: daemon.json is still the seed"
    );
    assert_eq!(
        &unit(host, "docker", &START_PROPS),
        docker_before,
        "{host}: docker was not restarted"
    );
    assert_eq!(read(host, GATEWAY_UNIT), None, "{host}: no gateway unit");
    assert_eq!(read(host, CNI_CONFIG), None, "{host}: no calico.cni");
    assert_eq!(
        calico_containers(host),
        Vec::<String>::new(),
        "{host}: no calico containers"
    );
    assert_eq!(cluster_store(host), "", "{host}: no cluster store");
}

#[test]
fn fresh_apply_converges_on_the_real_daemons() {
    let c = cluster();
    // The store is this profile's own: start it without Docker's keys, so
    // that finding them afterwards proves dockerd wrote them.
    etcd_server_delete_dir("docker");
    let marks: Vec<Mark> = AGENTS.iter().map(|a| journal_mark(a.name)).collect();

    let run = c.run("apply", &c.inventory(), &[]);
    assert_eq!(run.code, 0, "apply succeeds");
    for (host, step, status) in run.cells() {
        assert_eq!(status, "changed", "{host} {step}");
    }

    let calico = std::fs::read(repo().join("inventories/bin/calico")).unwrap();
    let ipam = std::fs::read(repo().join("inventories/bin/calico-ipam")).unwrap();
    for (a, mark) in AGENTS.iter().zip(&marks) {
        let host = a.name;

        // The real dockerd runs with the cluster store, restarted by systemd once.
        assert_eq!(
            cluster_store(host),
            "etcd://127.0.0.1:2379",
            "{host}: docker info"
        );
        assert_eq!(
            starts_since(host, mark, "docker"),
            1,
            "{host}: systemd started docker once ({:?})",
            jobs_since(host, mark, "docker")
        );
        let daemon: Value = serde_json::from_slice(&read(host, DAEMON_JSON).unwrap()).unwrap();
        let mut want: Value =
            serde_json::from_slice(&read(host, SEED_DAEMON_JSON).unwrap()).unwrap();
        want["cluster-store"] = json!("etcd://127.0.0.1:2379");
        assert_eq!(
            daemon, want,
            "{host}: daemon.json is the seed plus the store"
        );

        // dockerd's store client is connected through the gateway. (Once it
        // has synced the member list it also talks to the members' advertised
        // URLs directly: testenv/README.md, "Where the stand-ins still differ".)
        wait_until(
            10,
            &format!("{host}: dockerd connected to 127.0.0.1:2379"),
            || sh(host, "ss -Htnp state established dst 127.0.0.1:2379").contains("\"dockerd\""),
        );

        // The gateway is a real, enabled, active unit, and what is written
        // through it lands in the real etcd server.
        assert_eq!(
            sh(host, "systemctl is-active calico-etcd-proxy"),
            "active\n"
        );
        assert_eq!(
            sh(host, "systemctl is-enabled calico-etcd-proxy"),
            "enabled\n"
        );
        let key = format!("calico-rollout-real/{host}");
        let value = format!("via-{host}-gateway");
        sh(
            host,
            &format!(
                "curl -fsS -X PUT http://127.0.0.1:2379/v2/keys/{key} -d value={value} >/dev/null"
            ),
        );
        let stored = etcd_server_get(&key).expect("key reached the etcd server");
        assert_eq!(stored["node"]["value"], value.as_str(), "{host}: {stored}");

        // The plugins, byte for byte and executable, and calico.cni, which
        // the Mesos agent (restarted once) loaded when it came back.
        assert_eq!(read(host, &format!("{PLUGIN_DIR}/calico")).unwrap(), calico);
        assert_eq!(
            read(host, &format!("{PLUGIN_DIR}/calico-ipam")).unwrap(),
            ipam
        );
        assert_eq!(
            sh(
                host,
                &format!("stat -c %a {PLUGIN_DIR}/calico {PLUGIN_DIR}/calico-ipam")
            ),
            "755\n755\n",
            "{host}: plugin modes"
        );
        let cni: Value = serde_json::from_slice(&read(host, CNI_CONFIG).unwrap()).unwrap();
        assert_eq!(cni["type"], "calico");
        assert_eq!(cni["ipam"]["type"], "calico-ipam");
        assert_eq!(cni["etcd_endpoints"], "http://127.0.0.1:2379");
        assert_eq!(starts_since(host, mark, a.mesos_unit()), 1, "{host}");
        let mesos_log = unit_log_since(host, mark, a.mesos_unit());
        assert!(
            mesos_log.contains(&format!("Loaded CNI network 'calico' from '{CNI_CONFIG}'")),
            "{host}: {mesos_log}"
        );
        sh(
            host,
            &format!(
                "curl -fsS http://$(/opt/mesosphere/bin/detect_ip):{}/health",
                a.mesos_port()
            ),
        );

        // Both containers run in the real dockerd, from the intended images.
        for (name, image) in [
            ("calico-node", "calico/node:v2.6.12"),
            ("calico-libnetwork", "calico/libnetwork-plugin:v1.1.3"),
        ] {
            let ct = container(host, name).unwrap_or_else(|| panic!("{host}: {name} exists"));
            assert_eq!(ct["State"]["Running"], true, "{host}: {name}");
            assert_eq!(ct["Config"]["Image"], image, "{host}: {name}");
            assert_eq!(
                ct["Image"],
                image_id(host, image).as_str(),
                "{host}: {name}"
            );
        }
        // The node's process got its environment from the root-only env
        // file, and reaches the store through the gateway on the host network.
        assert_eq!(
            sh(host, "docker exec calico-node sh -c 'echo $NODENAME'"),
            format!("{host}\n")
        );
        assert_eq!(sh(host, "stat -c %a /etc/calico/calico-node.env"), "600\n");
        let health = sh(
            host,
            "docker exec calico-node wget -qO- http://127.0.0.1:2379/health",
        );
        assert!(health.contains("true"), "{host}: {health}");
    }

    // dockerd itself wrote its keys into the real store.
    wait_until(10, "Docker's keys in the etcd server", || {
        etcd_server_get("docker/network/v1.0").is_some()
    });
}

#[test]
fn second_apply_changes_nothing_and_systemd_restarted_nothing() {
    let c = cluster();
    let inv = c.inventory();
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    let before: Vec<_> = AGENTS.iter().map(|a| start_state(a.name)).collect();
    let node_ids: Vec<Value> = AGENTS
        .iter()
        .map(|a| container(a.name, "calico-node").unwrap()["Id"].clone())
        .collect();
    let marks: Vec<Mark> = AGENTS.iter().map(|a| journal_mark(a.name)).collect();

    let again = c.run("apply", &inv, &[]);
    assert_eq!(again.code, 0);
    for (host, step, status) in again.cells() {
        assert_eq!(status, "ok", "{host} {step} on converged agents");
    }
    for (i, a) in AGENTS.iter().enumerate() {
        // docker's ActiveEnterTimestamp (and the Mesos agent's, and the
        // gateway's) is what it was: systemd started nothing again.
        assert_no_unit_started(a.name, &before[i], &marks[i]);
        assert_eq!(
            container(a.name, "calico-node").unwrap()["Id"],
            node_ids[i],
            "{}: calico-node kept",
            a.name
        );
    }
}

#[test]
fn real_dockerd_refuses_an_unknown_daemon_json_key_and_the_host_is_reverted() {
    let c = cluster();
    c.template(
        "daemon.json.j2",
        r#"{
  "cluster-store": {{ docker.cluster_store | tojson }},
  "no-such-directive": true
}
"#,
    );
    let pub_docker = unit("real-pub-1", "docker", &START_PROPS);
    let mark = journal_mark("real-1");

    let run = c.run("apply", &c.inventory(), &[]);
    assert_eq!(run.code, 5, "the failure budget (0) is exceeded");
    assert_eq!(run.status("real-1", "docker"), "reverted");
    let why = run.message("real-1", "docker");
    assert!(
        why.contains(
            "the following directives don't match any configuration option: no-such-directive"
        ),
        "the reason is dockerd's own: {why}"
    );

    // The real dockerd refused it: systemd's start job failed.
    let jobs = jobs_since("real-1", &mark, "docker");
    assert!(
        jobs.contains(&("start".to_string(), "failed".to_string())),
        "systemd saw docker fail to start: {jobs:?}"
    );
    // The host is back as it was: old daemon.json, docker active again
    // without a cluster store, no gateway.
    assert_eq!(
        read("real-1", DAEMON_JSON),
        read("real-1", SEED_DAEMON_JSON),
        "the old daemon.json is back"
    );
    wait_until(30, "docker active on real-1", || {
        succeeds(
            "real-1",
            "systemctl is-active -q docker && docker info >/dev/null",
        )
    });
    assert_eq!(cluster_store("real-1"), "");
    assert_eq!(
        read("real-1", GATEWAY_UNIT),
        None,
        "the gateway unit is gone"
    );
    assert!(!succeeds(
        "real-1",
        "systemctl is-active -q calico-etcd-proxy"
    ));

    // The other real agent's batch never started.
    for step in STEPS {
        assert_eq!(
            run.status("real-pub-1", step),
            "skipped",
            "real-pub-1 {step}"
        );
    }
    assert_untouched("real-pub-1", &pub_docker);
}

#[test]
fn node_image_upgrade_replaces_calico_node_on_each_real_agent_in_turn() {
    let c = cluster();
    let mut inv = c.inventory();
    inv["node"]["image"] = json!("calico/node:v2.6.11");
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    let before: Vec<_> = AGENTS.iter().map(|a| start_state(a.name)).collect();

    inv["node"]["image"] = json!("calico/node:v2.6.12");
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0);
    for (i, a) in AGENTS.iter().enumerate() {
        assert_eq!(run.status(a.name, "node"), "changed");
        assert_eq!(
            run.message(a.name, "node"),
            "replace calico-node: calico/node:v2.6.11 -> calico/node:v2.6.12"
        );
        for step in ["etcd-proxy", "docker", "cni", "libnetwork"] {
            assert_eq!(run.status(a.name, step), "ok", "{} {step}", a.name);
        }
        let node = container(a.name, "calico-node").unwrap();
        assert_eq!(node["State"]["Running"], true);
        assert_eq!(node["Config"]["Image"], "calico/node:v2.6.12");
        assert_eq!(
            node["Image"],
            image_id(a.name, "calico/node:v2.6.12").as_str()
        );
        // The old one is kept, stopped, and docker will not start it again.
        let retired = retired(a.name, "calico-node");
        assert_eq!(retired.len(), 1, "{}: one retired calico-node", a.name);
        let old = &retired[0];
        assert_eq!(old["State"]["Running"], false, "{}", a.name);
        assert_eq!(old["Config"]["Image"], "calico/node:v2.6.11");
        assert_eq!(old["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(
            start_state(a.name),
            before[i],
            "{}: an image change restarts no unit",
            a.name
        );
    }

    // In turn: real-pub-1's old node was stopped only after real-1's new
    // one had run for min_healthy.
    let real1_started = unix_time(
        "real-1",
        container("real-1", "calico-node").unwrap()["State"]["StartedAt"]
            .as_str()
            .unwrap(),
    );
    let pub_retired = unix_time(
        "real-pub-1",
        retired("real-pub-1", "calico-node")[0]["State"]["FinishedAt"]
            .as_str()
            .unwrap(),
    );
    assert!(
        pub_retired >= real1_started + MIN_HEALTHY.as_secs_f64(),
        "real-pub-1's calico-node was replaced at {pub_retired}, \
         before real-1's new one (started {real1_started}) had been healthy for {MIN_HEALTHY:?}"
    );
}

#[test]
fn a_calico_cni_naming_a_missing_plugin_crash_loops_the_mesos_agent_and_is_reverted() {
    let c = cluster();
    c.template(
        "calico.cni.j2",
        r#"{
    "name": "calico",
    "cniVersion": "0.3.1",
    "type": "calico",
    "etcd_endpoints": {{ etcd.client_endpoints | tojson }},
    "ipam": {"type": "calico-ipam-v3"}
}
"#,
    );
    let mut inv = c.inventory();
    inv["rollout"]["health_timeout"] = json!("5s");
    let pub_docker = unit("real-pub-1", "docker", &START_PROPS);
    let mark = journal_mark("real-1");

    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 5);
    assert_eq!(run.status("real-1", "cni"), "reverted");
    // Under real systemd, Restart=always keeps the agent coming back; the
    // gate sees it is not serving /health and says why, in its own words.
    let log = unit_log_since("real-1", &mark, "dcos-mesos-slave");
    assert!(
        log.contains("Failed to find CNI plugin 'calico-ipam-v3'"),
        "the Mesos agent refused calico.cni: {log}"
    );
    assert!(
        starts_since("real-1", &mark, "dcos-mesos-slave") >= 2,
        "it crash-looped: {:?}",
        jobs_since("real-1", &mark, "dcos-mesos-slave")
    );

    // Reverted: no calico.cni, and the agent serves /health again.
    assert_eq!(read("real-1", CNI_CONFIG), None);
    wait_until(30, "the Mesos agent healthy on real-1", || {
        succeeds(
            "real-1",
            "curl -fsS -o /dev/null http://$(/opt/mesosphere/bin/detect_ip):5051/health",
        )
    });
    assert_eq!(
        read("real-1", DAEMON_JSON),
        read("real-1", SEED_DAEMON_JSON)
    );
    assert_untouched("real-pub-1", &pub_docker);
}

#[test]
fn docker_restarts_go_through_systemds_start_limit() {
    let c = cluster();
    // Debian's docker.service allows 3 starts in 60 s, as upstream's does.
    for host in ["real-1", "real-pub-1"] {
        let limits = unit(
            host,
            "docker",
            &["StartLimitBurst", "StartLimitIntervalUSec"],
        );
        assert_eq!(limits["StartLimitBurst"], "3", "{host}");
        assert_eq!(limits["StartLimitIntervalUSec"], "1min", "{host}");
    }
    // Three starts within a minute on each agent; the next one is over the limit.
    let restart_3_times = "systemctl reset-failed docker && \
        systemctl restart docker && systemctl restart docker && systemctl restart docker";
    sh("real-1", restart_3_times);
    sh("real-pub-1", restart_3_times);

    // On real-pub-1, a plain fourth restart is refused by systemd itself.
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            agent("real-pub-1").container,
            "systemctl",
            "restart",
            "docker",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a 4th start in a minute is refused");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("start of the service was attempted too often"),
        "{said}"
    );
    assert_eq!(
        unit("real-pub-1", "docker", &["Result"])["Result"],
        "start-limit-hit"
    );

    // On real-1, calico-rollout's restart is that fourth start, and it goes
    // through: the tool clears the start limit first.
    let mark = journal_mark("real-1");
    let run = c.run("apply", &c.inventory(), &["--limit", "real-1"]);
    assert_eq!(run.code, 0, "apply succeeds");
    assert_eq!(run.status("real-1", "docker"), "changed");
    assert_eq!(starts_since("real-1", &mark, "docker"), 1);
    assert_eq!(cluster_store("real-1"), "etcd://127.0.0.1:2379");
}

#[test]
fn an_image_the_real_dockerd_cannot_pull_fails_before_anything_changes() {
    let c = cluster();
    let mut inv = c.inventory();
    // Not imported into the agents, and there is no registry to pull from.
    inv["node"]["image"] = json!("calico/node:v2.6.13");
    let dockers: Vec<_> = AGENTS
        .iter()
        .map(|a| unit(a.name, "docker", &START_PROPS))
        .collect();

    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 5, "no batch starts");
    for (a, docker) in AGENTS.iter().zip(&dockers) {
        assert_eq!(run.status(a.name, "node"), "failed");
        let why = run.message(a.name, "node");
        assert!(
            why.contains("docker pull calico/node:v2.6.13") && why.contains("registry-1.docker.io"),
            "{}: the reason is the real dockerd's own: {why}",
            a.name
        );
        assert_untouched(a.name, docker);
    }
}

#[test]
fn a_key_the_real_docker_unit_passes_as_a_short_flag_is_refused_before_anything_changes() {
    let c = cluster();
    // Both Debian's and upstream's docker.service run `dockerd -H fd://`:
    // the real dockerd refuses "hosts" in daemon.json as given both ways.
    assert!(sh("real-1", "systemctl cat docker").contains("dockerd -H fd://"));
    c.template(
        "daemon.json.j2",
        r#"{
  "cluster-store": {{ docker.cluster_store | tojson }},
  "hosts": ["unix:///var/run/docker.sock"]
}
"#,
    );
    let docker = unit("real-1", "docker", &START_PROPS);
    let run = c.run("apply", &c.inventory(), &["--limit", "real-1"]);
    assert_eq!(run.code, 3, "refused in preflight: nothing was changed");
    let why = run.message("real-1", "docker");
    assert!(why.contains("hosts"), "{why}");
    assert_untouched("real-1", &docker);
}

/// The BGP sessions `birdcl show protocols` prints inside an agent's
/// calico-node, as `(name, state, info)`.
fn bgp_sessions(host: &str) -> Vec<(String, String, String)> {
    sh(
        host,
        "docker exec calico-node birdcl -s /var/run/calico/bird.ctl show protocols",
    )
    .lines()
    .map(|l| l.split_whitespace().collect::<Vec<_>>())
    .filter(|f| f.len() >= 5 && f[1] == "BGP")
    .map(|f| (f[0].to_string(), f[3].to_string(), f[5..].join(" ")))
    .collect()
}

/// BIRD's name for the mesh session to an agent: `Mesh_172_19_0_4`.
fn mesh_session_to(host: &str) -> String {
    let ip = sh(host, "/opt/mesosphere/bin/detect_ip");
    format!("Mesh_{}", ip.trim().replace('.', "_"))
}

fn established(host: &str, session: &str) -> bool {
    bgp_sessions(host)
        .iter()
        .any(|(name, state, info)| name == session && state == "up" && info == "Established")
}

#[test]
fn a_node_image_whose_bgp_never_comes_up_stops_at_the_first_real_agent_and_is_reverted() {
    let c = cluster();
    let mut inv = c.inventory();
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    // Both nodes peer with each other before the upgrade.
    let to_pub = mesh_session_to("real-pub-1");
    let to_real1 = mesh_session_to("real-1");
    wait_until(20, "real-1 <-> real-pub-1 BGP Established", || {
        established("real-1", &to_pub) && established("real-pub-1", &to_real1)
    });
    let pub_node = container("real-pub-1", "calico-node").unwrap();
    let before: Vec<_> = AGENTS.iter().map(|a| start_state(a.name)).collect();
    let marks: Vec<Mark> = AGENTS.iter().map(|a| journal_mark(a.name)).collect();

    // BIRD runs in this image, but it never gets a session Established.
    inv["node"]["image"] = json!("calico/node:v2.6.12-bgp-stuck");
    inv["rollout"]["health_timeout"] = json!("10s");
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 5, "the failure budget (0) is exceeded");

    // real-1 went first: its node was replaced, the BGP gate waited for the
    // session to real-pub-1, and the host was reverted.
    assert_eq!(run.status("real-1", "node"), "reverted");
    let why = run.message("real-1", "node");
    let pub_ip = sh("real-pub-1", "/opt/mesosphere/bin/detect_ip");
    assert!(
        why.contains(&format!("{} Active", pub_ip.trim())),
        "the reason names the peer whose session stayed down: {why}"
    );
    for step in ["etcd-proxy", "docker", "cni", "libnetwork"] {
        assert_eq!(run.status("real-1", step), "ok", "real-1 {step}");
    }
    let node = container("real-1", "calico-node").unwrap();
    assert_eq!(node["State"]["Running"], true);
    assert_eq!(node["Config"]["Image"], "calico/node:v2.6.12");
    assert_eq!(
        node["Image"],
        image_id("real-1", "calico/node:v2.6.12").as_str()
    );
    for old in retired("real-1", "calico-node") {
        assert_eq!(old["State"]["Running"], false, "real-1: {old}");
    }
    // Its BIRD peers with real-pub-1 again.
    wait_until(
        20,
        "real-1's session to real-pub-1 Established again",
        || established("real-1", &to_pub),
    );

    // real-pub-1's batch never started: the same calico-node, untouched.
    assert_eq!(run.status("real-pub-1", "node"), "skipped");
    for step in ["etcd-proxy", "docker", "cni", "libnetwork"] {
        assert_eq!(run.status("real-pub-1", step), "ok", "real-pub-1 {step}");
    }
    let node = container("real-pub-1", "calico-node").unwrap();
    assert_eq!(node["Id"], pub_node["Id"], "real-pub-1: calico-node kept");
    assert_eq!(node["Config"]["Image"], "calico/node:v2.6.12");
    assert_eq!(node["State"]["StartedAt"], pub_node["State"]["StartedAt"]);
    assert_eq!(retired("real-pub-1", "calico-node"), Vec::<Value>::new());

    // An image change restarts no unit on either agent.
    for (i, a) in AGENTS.iter().enumerate() {
        assert_no_unit_started(a.name, &before[i], &marks[i]);
    }
}
