//! SSH the way operators configure it, against the SSH world
//! (tests/ssh_world): an agent reached only through a bastion, host
//! certificates checked against a `@cert-authority`, revoked authorities,
//! and private keys others can read.

#[path = "ssh_world/mod.rs"]
mod world;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;
use world::*;

/// Writes `text` as the run's known_hosts and points the inventory at it.
fn with_known_hosts(c: &Cluster, inv: &mut serde_json::Value, text: &str) {
    let path = c.dir.path().join("known_hosts");
    std::fs::write(&path, text).unwrap();
    inv["ssh"]["known_hosts"] = json!(path);
}

#[test]
fn an_agent_behind_a_bastion_converges_checked_by_its_host_certificate() {
    let c = world();
    let inv = inventory();
    // The world's known_hosts is the CA line alone: every host is trusted
    // by its certificate.
    let known = std::fs::read_to_string(state_dir().join("known_hosts")).unwrap();
    assert_eq!(known, format!("@cert-authority * {}\n", ca_public()));

    let plan = c.run("plan", &inv, &[]);
    assert_eq!(plan.code, 2, "both agents probed, changes pending");

    let apply = c.run("apply", &inv, &[]);
    assert_eq!(apply.code, 0, "apply converges both agents");
    for (host, step, status) in apply.cells() {
        assert_eq!(status, "changed", "{host} {step}");
    }
    let daemon: serde_json::Value =
        serde_json::from_slice(&read_in(HIDDEN, DAEMON_JSON).unwrap()).unwrap();
    assert_eq!(daemon["cluster-store"], "etcd://127.0.0.1:2379");
    let cni = read_in(HIDDEN, CNI_CONFIG).expect("calico.cni on hidden-1");
    assert!(String::from_utf8_lossy(&cni).contains("\"calico\""));
    // The gateway on the hidden agent reaches the store.
    sh_in(
        HIDDEN,
        "curl -fsS -o /dev/null http://127.0.0.1:2379/health",
    );

    let again = c.run("plan", &inv, &[]);
    assert_eq!(again.code, 0, "nothing left to change");
}

#[test]
fn a_certificate_for_another_name_is_refused_and_nothing_is_written() {
    let c = world();
    let mut inv = inventory();
    // The bastion's certificate is for 127.0.0.1 and bastion, not localhost:
    // dialled as localhost, directly or as the bastion, it is refused.
    inv["agents"][0]["address"] = json!("localhost");
    inv["agents"][1]["proxy_jump"] = json!(format!("root@localhost:{BASTION_PORT}"));
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 3, "preflight fails on both: nothing starts");
    let direct = run.message("bastion", "etcd-proxy");
    assert!(
        direct.contains(&format!(
            "host certificate of [localhost]:{BASTION_PORT} refused: it is for 127.0.0.1, \
             bastion, not for localhost, the name dialled"
        )),
        "{direct}"
    );
    let behind = run.message("hidden-1", "etcd-proxy");
    assert!(
        behind.contains(&format!("through bastion root@localhost:{BASTION_PORT}"))
            && behind.contains("not for localhost"),
        "{behind}"
    );
    assert_eq!(run.status("hidden-1", "etcd-proxy"), "failed");
    assert_untouched();
}

#[test]
fn a_revoked_authority_is_refused_though_it_is_listed() {
    let c = world();
    let mut inv = inventory();
    let ca = ca_public();
    with_known_hosts(
        &c,
        &mut inv,
        &format!("@cert-authority * {ca}\n@revoked * {ca}\n"),
    );
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 3);
    for host in ["bastion", "hidden-1"] {
        let why = run.message(host, "etcd-proxy");
        assert!(
            why.contains("its certificate authority SHA256:") && why.contains("is marked @revoked"),
            "{host}: {why}"
        );
    }
    assert_untouched();
}

#[test]
fn an_unreachable_bastion_makes_the_hosts_behind_it_unreachable() {
    let c = world();
    let mut inv = inventory();
    // Nothing listens there (a port of this world's range).
    inv["agents"][1]["proxy_jump"] = json!("root@127.0.0.1:22349");
    inv["rollout"]["max_failures"] = json!(1);
    let run = c.run("apply", &inv, &[]);
    assert_eq!(run.code, 4, "one host failed; the bastion converged");
    assert_eq!(run.status("hidden-1", "etcd-proxy"), "unreachable");
    let why = run.message("hidden-1", "etcd-proxy");
    assert!(
        why.contains("through bastion root@127.0.0.1:22349: cannot connect to 127.0.0.1:22349"),
        "{why}"
    );
    assert_eq!(run.status("bastion", "docker"), "changed");
}

#[test]
fn a_private_key_others_can_read_is_refused() {
    let c = world();
    let mut inv = inventory();
    let key = c.dir.path().join("id_ed25519");
    std::fs::copy(state_dir().join("id_ed25519"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    inv["ssh"]["identity_file"] = json!(key);
    let run = c.run("plan", &inv, &[]);
    assert_eq!(run.code, 64, "an inventory error");
    assert!(
        run.stderr.contains(&format!(
            "permissions 0644 for '{}' are too open",
            key.display()
        )),
        "{}",
        run.stderr
    );
    assert_untouched();
}
