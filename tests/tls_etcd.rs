//! etcd over TLS, against real etcd servers that demand a client
//! certificate (testenv/tls): the files land on every agent, every client
//! names them, the gateway answers over TLS, a member whose certificate
//! does not hold for 127.0.0.1 is refused behind the gateway, and a rotated
//! certificate restarts exactly what reads it.

mod tls;

use serde_json::json;
use tls::*;

const STEPS: [&str; 5] = ["etcd-proxy", "docker", "cni", "libnetwork", "node"];

fn local(name: &str) -> Vec<u8> {
    std::fs::read(cert(name)).unwrap()
}

/// The base64 body of the client key: what must never be printed.
fn key_body(name: &str) -> String {
    let text = String::from_utf8(local(name)).unwrap();
    text.lines().nth(1).unwrap().to_string()
}

fn env_of(agent: &Agent, name: &str) -> Vec<String> {
    let c = container(agent, name).unwrap_or_else(|| panic!("{}: no {name}", agent.name));
    serde_json::from_value(c["Config"]["Env"].clone()).unwrap()
}

/// The files on the agent: bytes, mode and owner.
fn assert_files_installed(agent: &Agent, cert_name: &str, key_name: &str) {
    for (file, local_name, mode) in [
        ("ca.pem", "ca.pem", "644"),
        ("cert.pem", cert_name, "644"),
        ("key.pem", key_name, "600"),
    ] {
        let path = format!("{TLS_DIR}/{file}");
        assert_eq!(
            read(agent, &path).as_deref(),
            Some(&local(local_name)[..]),
            "{}: {path}",
            agent.name
        );
        assert_eq!(
            exec(agent, &format!("stat -c '%a %U' {path}")),
            format!("{mode} root\n"),
            "{}: {path}",
            agent.name
        );
    }
}

fn assert_clients_name_the_files(agent: &Agent, endpoints: &str) {
    for name in ["calico-node", "calico-libnetwork"] {
        let env = env_of(agent, name);
        for want in [
            format!("ETCD_ENDPOINTS={endpoints}"),
            format!("ETCD_CA_CERT_FILE={TLS_DIR}/ca.pem"),
            format!("ETCD_CERT_FILE={TLS_DIR}/cert.pem"),
            format!("ETCD_KEY_FILE={TLS_DIR}/key.pem"),
        ] {
            assert!(
                env.contains(&want),
                "{} {name}: {want} not in {env:?}",
                agent.name
            );
        }
    }
    let cni = json_file(agent, CNI_CONFIG);
    assert_eq!(cni["etcd_endpoints"], endpoints);
    assert_eq!(cni["etcd_ca_cert_file"], format!("{TLS_DIR}/ca.pem"));
    assert_eq!(cni["etcd_cert_file"], format!("{TLS_DIR}/cert.pem"));
    assert_eq!(cni["etcd_key_file"], format!("{TLS_DIR}/key.pem"));
    let daemon = json_file(agent, DAEMON_JSON);
    assert_eq!(
        daemon["cluster-store-opts"],
        json!({
            "kv.cacertfile": format!("{TLS_DIR}/ca.pem"),
            "kv.certfile": format!("{TLS_DIR}/cert.pem"),
            "kv.keyfile": format!("{TLS_DIR}/key.pem"),
        })
    );
    // dockerd was restarted onto it: its own view of the store.
    let info = exec(agent, "docker info --format '{{json .ClusterStore}}'");
    assert_eq!(
        info.trim(),
        format!("{}", daemon["cluster-store"]),
        "{}",
        agent.name
    );
}

fn assert_secret_kept(run: &Run, key_name: &str) {
    let body = key_body(key_name);
    assert!(!run.stdout.contains(&body), "the key is in stdout");
    assert!(!run.stderr.contains(&body), "the key is in stderr");
}

#[test]
fn tls_through_the_gateway_converges_and_every_client_names_the_files() {
    let c = cluster();
    let inv = inventory(MEMBER_LO, true);
    let plan = c.run("plan", &inv, &[]);
    assert_eq!(plan.code, 2, "changes pending:\n{}", plan.stderr);
    assert!(
        plan.stderr
            .contains(&format!("{TLS_DIR}/key.pem (secret, mode 0600, sha256 ")),
        "{}",
        plan.stderr
    );
    assert_secret_kept(&plan, "client-key.pem");

    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0, "apply:\n{}", run.stderr);
    assert_secret_kept(&run, "client-key.pem");
    for a in &AGENTS {
        for step in STEPS {
            assert_eq!(run.status(a.name, step), "changed", "{} {step}", a.name);
        }
        assert_files_installed(a, "client.pem", "client-key.pem");
        assert_clients_name_the_files(a, "https://127.0.0.1:2379");
        assert_eq!(
            json_file(a, DAEMON_JSON)["cluster-store"],
            "etcd://127.0.0.1:2379"
        );
        // The gateway passes TLS through to the member, client certificate
        // and all.
        let health = exec(
            a,
            &format!(
                "curl -fsS --cacert {TLS_DIR}/ca.pem --cert {TLS_DIR}/cert.pem \
                 --key {TLS_DIR}/key.pem https://127.0.0.1:2379/health"
            ),
        );
        assert!(health.contains("\"health\":\"true\""), "{health}");
    }

    let again = c.run("plan", &inv, &[]);
    assert_eq!(again.code, 0, "converged:\n{}", again.stderr);
}

#[test]
fn tls_without_the_gateway_talks_to_the_member_directly() {
    let c = cluster();
    // This member's certificate does not name 127.0.0.1: clients that use
    // its own name do not care.
    let inv = inventory(MEMBER_NOLO, false);
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0, "apply:\n{}", run.stderr);
    for a in &AGENTS {
        assert_eq!(run.status(a.name, "etcd-proxy"), "changed", "the TLS files");
        assert_files_installed(a, "client.pem", "client-key.pem");
        assert_clients_name_the_files(a, MEMBER_NOLO);
        assert_eq!(
            json_file(a, DAEMON_JSON)["cluster-store"],
            "etcd://etcd-nolo:2379"
        );
        assert_eq!(
            read(a, "/etc/systemd/system/calico-etcd-proxy.service"),
            None,
            "no gateway"
        );
    }
    let again = c.run("plan", &inv, &[]);
    assert_eq!(again.code, 0, "converged:\n{}", again.stderr);
}

#[test]
fn a_member_certificate_without_127_0_0_1_is_refused_behind_the_gateway() {
    let c = cluster();
    let seed = read(&AGENTS[0], DAEMON_JSON);
    let run = c.run("apply", &inventory(MEMBER_NOLO, true), &[]);
    assert_eq!(
        run.code, 3,
        "every host refused, nothing started:\n{}",
        run.stderr
    );
    for a in &AGENTS {
        assert_eq!(run.status(a.name, "etcd-proxy"), "failed");
        let why = run.message(a.name, "etcd-proxy");
        assert!(
            why.contains("etcd member etcd-nolo:2379 does not accept TLS for 127.0.0.1")
                && why.contains("no alternative certificate subject name")
                && why.contains("set etcd.proxy: false"),
            "{why}"
        );
        assert_eq!(
            exec(a, &format!("test -e {TLS_DIR} || echo absent")),
            "absent\n"
        );
        assert_eq!(
            read(a, DAEMON_JSON),
            seed,
            "{}: daemon.json untouched",
            a.name
        );
        assert_eq!(
            read(a, "/etc/systemd/system/calico-etcd-proxy.service"),
            None
        );
        // The check's temporary copy of the key is gone too.
        assert_eq!(
            exec(
                a,
                "ls -d /run/calico-rollout-tls.* /tmp/calico-rollout-tls.* 2>/dev/null || true"
            ),
            ""
        );
    }
    assert!(
        run.stderr.contains("does not accept TLS for 127.0.0.1"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_rotated_client_certificate_restarts_docker_and_replaces_the_containers_only() {
    let c = cluster();
    let mut inv = inventory(MEMBER_LO, true);
    assert_eq!(c.run("apply", &inv, &[]).code, 0);
    let a = &AGENTS[0];
    let gateway_pid = exec(a, "systemctl show -p MainPID calico-etcd-proxy");
    let node_id = container(a, "calico-node").unwrap()["Id"].clone();
    let restarts = |a: &Agent| {
        String::from_utf8(read(a, "/var/log/fake-systemd/restarts.log").unwrap_or_default())
            .unwrap()
            .lines()
            .count()
    };
    let before = restarts(a);

    inv["etcd"]["tls"]["cert"] = json!(cert("client2.pem"));
    inv["etcd"]["tls"]["key"] = json!(cert("client2-key.pem"));
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 0, "apply:\n{}", run.stderr);
    assert_secret_kept(&run, "client2-key.pem");
    assert_files_installed(a, "client2.pem", "client2-key.pem");
    for (step, status) in [
        ("etcd-proxy", "changed"),
        ("docker", "changed"),
        ("cni", "ok"),
        ("libnetwork", "changed"),
        ("node", "changed"),
    ] {
        assert_eq!(run.status(a.name, step), status, "{step}");
    }
    assert_eq!(
        exec(a, "systemctl show -p MainPID calico-etcd-proxy"),
        gateway_pid,
        "the pass-through gateway never reads the files"
    );
    assert_ne!(container(a, "calico-node").unwrap()["Id"], node_id);
    let log = String::from_utf8(read(a, "/var/log/fake-systemd/restarts.log").unwrap()).unwrap();
    let new: Vec<&str> = log.lines().skip(before).collect();
    assert!(new.iter().any(|l| l.contains(" docker ")), "{new:?}");
    assert!(!new.iter().any(|l| l.contains("mesos")), "{new:?}");
    assert_eq!(c.run("plan", &inv, &[]).code, 0);
}
