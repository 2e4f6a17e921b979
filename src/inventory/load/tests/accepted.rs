//! Inventories that load, and the values, defaults and overrides they produce.

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::*;
use crate::inventory::{BatchSize, FailureBudget, HostKeyChecking, Role, RolloutConfig};
use crate::inventory::{BinarySource, EtcdBinary};

#[test]
fn full_example_parses() {
    let f = Fixture::new();
    let inv = f.ok(EXAMPLE);
    let bytes = fs::read(f.path("cluster.yaml")).unwrap();
    assert_eq!(inv.path, f.path("cluster.yaml"));
    assert_eq!(inv.hash, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(inv.hash.len(), 64);

    let eps: Vec<String> = inv.etcd.endpoints.iter().map(|e| e.to_string()).collect();
    assert_eq!(eps, ["http://10.0.0.5:2379", "http://10.0.0.6:2379"]);
    assert!(inv.etcd.proxy);
    assert_eq!(
        inv.etcd.binary,
        EtcdBinary::OnAgent("/usr/bin/etcd".parse().unwrap())
    );
    assert!(inv.docker.enabled);
    assert_eq!(inv.docker.cluster_store, None);

    assert!(inv.cni.enabled);
    let bins: Vec<(&str, BinarySource)> = inv
        .cni
        .binaries
        .iter()
        .map(|b| (b.name.as_str(), b.source.clone()))
        .collect();
    assert_eq!(
        bins,
        [
            ("calico", BinarySource::Local(f.path("./bin/calico"))),
            (
                "calico-ipam",
                BinarySource::Local(f.path("./bin/calico-ipam"))
            )
        ]
    );
    assert_eq!(inv.cni.plugin_dir.as_str(), "/opt/mesosphere/active/cni");
    assert_eq!(
        inv.cni.config_dir.as_str(),
        "/opt/mesosphere/etc/dcos/network/cni"
    );
    assert_eq!(
        inv.libnetwork.image.as_str(),
        "calico/libnetwork-plugin:v1.1.3"
    );
    assert!(inv.libnetwork.env.is_empty());
    assert_eq!(inv.node.image.as_str(), "calico/node:v2.6.12");
    assert_eq!(
        inv.node.env,
        BTreeMap::from([("CALICO_NETWORKING_BACKEND".into(), "bird".into())])
    );
    assert_eq!(
        inv.rollout,
        RolloutConfig {
            batch: vec![BatchSize::Count(10)],
            ..RolloutConfig::default()
        }
    );
    assert_eq!(inv.templates_dir, None);

    let names: Vec<&str> = inv.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["agent-1", "pub-1", "agent-2"]);
    let a1 = &inv.agents[0];
    assert_eq!(a1.address, "10.0.0.11");
    assert_eq!(a1.role, Role::Private);
    assert_eq!(a1.zone, None);
    assert_eq!(a1.ssh.user, "core");
    assert_eq!(a1.ssh.port, 22);
    assert_eq!(a1.ssh.identity_file, Some(f.home().join(".ssh/id_ed25519")));
    assert_eq!(a1.ssh.known_hosts, f.home().join(".ssh/known_hosts"));
    assert_eq!(a1.ssh.host_key_checking, HostKeyChecking::Strict);
    assert!(a1.ssh.become_root);
    assert!(a1.ssh.needs_sudo());
    assert_eq!(a1.ssh.connect_timeout, Duration::from_secs(10));
    assert_eq!(inv.agents[1].role, Role::Public);
    let a2 = &inv.agents[2];
    assert_eq!((a2.ssh.user.as_str(), a2.ssh.port), ("root", 2222));
    assert!(!a2.ssh.needs_sudo());
}

#[test]
fn defaults_apply() {
    let f = Fixture::new();
    let inv = f.ok(MINIMAL);
    assert!(inv.etcd.proxy);
    assert_eq!(
        inv.etcd.binary,
        EtcdBinary::OnAgent("/usr/bin/etcd".parse().unwrap())
    );
    assert!(inv.docker.enabled);
    assert_eq!(inv.docker.cluster_store, None);
    assert!(inv.cni.enabled);
    assert_eq!(inv.cni.plugin_dir.as_str(), "/opt/mesosphere/active/cni");
    assert_eq!(
        inv.cni.config_dir.as_str(),
        "/opt/mesosphere/etc/dcos/network/cni"
    );
    assert!(inv.libnetwork.enabled && inv.node.enabled);
    assert_eq!(
        inv.libnetwork.image.as_str(),
        "calico/libnetwork-plugin:v1.1.3"
    );
    assert_eq!(inv.node.image.as_str(), "calico/node:v2.6.12");
    assert!(inv.node.env.is_empty());
    let r = &inv.rollout;
    assert_eq!(r.batch, [BatchSize::Percent(10)]);
    assert_eq!(r.canary, 1);
    assert!(!r.by_zone);
    assert_eq!(r.max_failures, FailureBudget::Count(0));
    assert_eq!(r.min_healthy, Duration::from_secs(10));
    assert_eq!(r.health_timeout, Duration::from_secs(60));
    assert!(r.revert);
    assert_eq!(*r, RolloutConfig::default());
    // An empty section is the same as none.
    assert_eq!(f.ok(&format!("{MINIMAL}rollout: {{}}\n")).rollout, *r);
    let a = &inv.agents[0];
    assert_eq!(a.role, Role::Private);
    assert_eq!(a.zone, None);
    assert_eq!(a.ssh.user, "root");
    assert_eq!(a.ssh.port, 22);
    assert_eq!(a.ssh.identity_file, None);
    assert_eq!(a.ssh.known_hosts, f.home().join(".ssh/known_hosts"));
    assert_eq!(a.ssh.host_key_checking, HostKeyChecking::Strict);
    assert!(a.ssh.become_root);
    assert_eq!(a.ssh.connect_timeout, Duration::from_secs(10));
}

#[test]
fn a_binary_can_come_from_a_url_with_its_sha256() {
    let f = Fixture::new();
    let sha = "AB".repeat(32);
    let yaml = MINIMAL.replace(
        "calico: bin/calico",
        &format!("calico: {{url: \"https://mirror.example/calico-v1.11.8\", sha256: {sha}}}"),
    );
    assert_ne!(yaml, MINIMAL, "the fixture names ./bin/calico");
    let inv = f.ok(&yaml);
    assert_eq!(
        inv.cni.binaries[0].source,
        BinarySource::Url {
            url: "https://mirror.example/calico-v1.11.8".into(),
            sha256: "ab".repeat(32),
        }
    );
    for (value, problem) in [
        (
            "{url: \"https://m/c\"}".to_string(),
            "needs the `sha256` its download must have",
        ),
        (
            format!("{{sha256: {sha}}}"),
            "needs a `url` with its `sha256`",
        ),
        (
            format!("{{url: \"ftp://m/c\", sha256: {sha}}}"),
            "must start with http:// or https://",
        ),
        (
            "{url: \"https://m/c\", sha256: abc}".to_string(),
            "must be 64 hexadecimal digits",
        ),
        (
            format!("{{url: \"https://m/c\", sha256: {sha}, md5: x}}"),
            "unknown field `md5`",
        ),
    ] {
        let text = f
            .err(&MINIMAL.replace("calico: bin/calico", &format!("calico: {value}")))
            .to_string();
        assert!(text.contains(problem), "{value}: {text}");
    }
}

#[test]
fn the_etcd_binary_is_pushed_downloaded_or_already_there() {
    let f = Fixture::new();
    f.write("bin/etcd", "etcd");
    let with = |binary: &str| {
        MINIMAL.replace(
            "  endpoints: [http://10.0.0.5:2379]\n",
            &format!("  endpoints: [http://10.0.0.5:2379]\n  binary: {binary}\n"),
        )
    };
    assert_eq!(
        f.ok(&with("bin/etcd")).etcd.binary,
        EtcdBinary::Managed(BinarySource::Local(f.path("bin/etcd")))
    );
    let sha = "cd".repeat(32);
    assert_eq!(
        f.ok(&with(&format!(
            "{{url: \"https://mirror.example/etcd\", sha256: {sha}}}"
        )))
        .etcd
        .binary,
        EtcdBinary::Managed(BinarySource::Url {
            url: "https://mirror.example/etcd".into(),
            sha256: sha.clone()
        })
    );
    let missing = f.err(&with("bin/etcd-3.5")).to_string();
    assert!(
        missing.contains("does not exist on this machine"),
        "{missing}"
    );
    assert!(
        missing.contains("on_agent"),
        "the way out is named: {missing}"
    );
    let both = f
        .err(&with(&format!(
            "{{on_agent: /usr/bin/etcd, sha256: {sha}}}"
        )))
        .to_string();
    assert!(both.contains("`on_agent` goes alone"), "{both}");
}

#[test]
fn added_keys_parse() {
    let f = Fixture::new();
    f.write("tpl/calico.env.j2", "");
    let extra = "\
templates: tpl
docker:
  enabled: false
  cluster_store: etcd://10.0.0.5:2379,10.0.0.6:2379/calico
etcd:
  endpoints: [http://etcd-1.example.com:4001, 'http://[fd00::5]']
  proxy: false
  binary: {on_agent: /opt/etcd/bin/etcd/}
libnetwork:
  enabled: no
  env: {LOG_LEVEL: debug}
node:
  image: quay.io/calico/node:v2.6.12@sha256:DIGEST
rollout:
  batch: 20%
  max_failures: 3
  health_timeout: 1m30s
"
    .replace("DIGEST", &"ab".repeat(32));
    let yaml = (MINIMAL.to_string() + &extra).replacen(
        "etcd:\n  endpoints: [http://10.0.0.5:2379]\n",
        "",
        1,
    );
    let inv = f.ok(&yaml);
    assert_eq!(inv.templates_dir, Some(f.path("tpl")));
    assert!(!inv.docker.enabled);
    assert_eq!(
        inv.docker.cluster_store.as_deref(),
        Some("etcd://10.0.0.5:2379,10.0.0.6:2379/calico")
    );
    let eps: Vec<String> = inv.etcd.endpoints.iter().map(|e| e.host_port()).collect();
    assert_eq!(eps, ["etcd-1.example.com:4001", "[fd00::5]:2379"]);
    assert!(!inv.etcd.proxy);
    assert_eq!(
        inv.etcd.binary,
        EtcdBinary::OnAgent("/opt/etcd/bin/etcd".parse().unwrap())
    );
    assert!(!inv.libnetwork.enabled);
    assert_eq!(inv.libnetwork.env["LOG_LEVEL"], "debug");
    assert!(
        inv.node
            .image
            .as_str()
            .starts_with("quay.io/calico/node:v2.6.12@sha256:")
    );
    assert_eq!(inv.rollout.batch, [BatchSize::Percent(20)]);
    assert_eq!(inv.rollout.batch[0].hosts_per_batch(14), 2);
    assert_eq!(inv.rollout.max_failures, FailureBudget::Count(3));
    assert_eq!(inv.rollout.health_timeout, Duration::from_secs(90));
}

#[test]
fn rollout_keys_parse() {
    let f = Fixture::new();
    let zoned = replace(
        MINIMAL,
        "    address: 10.0.0.11\n",
        "    address: 10.0.0.11\n    zone: us-east-1a\n",
    ) + "  - {name: agent-2, address: 10.0.0.12, zone: us-east-1b}\n";
    let yaml = format!(
        "{zoned}rollout:
  batch: [1, 5, \"25%\"]
  canary: 2
  by: zone
  max_failures: 10%
  min_healthy: 0s
  health_timeout: 2m
  command_timeout: 45s
  pull_timeout: 10m
  revert: false
"
    );
    let inv = f.ok(&yaml);
    assert_eq!(
        inv.rollout,
        RolloutConfig {
            batch: vec![
                BatchSize::Count(1),
                BatchSize::Count(5),
                BatchSize::Percent(25)
            ],
            canary: 2,
            by_zone: true,
            max_failures: FailureBudget::Percent(10),
            min_healthy: Duration::ZERO,
            health_timeout: Duration::from_secs(120),
            command_timeout: Duration::from_secs(45),
            pull_timeout: Duration::from_secs(600),
            revert: false,
            min_bgp_peers: 1,
            checks: Vec::new(),
        }
    );
    assert_eq!(inv.rollout.max_failures.allowed(12), 1);
    let zones: Vec<Option<&str>> = inv.agents.iter().map(|a| a.zone.as_deref()).collect();
    assert_eq!(zones, [Some("us-east-1a"), Some("us-east-1b")]);

    // Other spellings of the same values.
    let cases: &[(&str, RolloutConfig)] = &[
        (
            "rollout:\n  batch:\n    - 2\n    - 50%\n  by: host\n",
            RolloutConfig {
                batch: vec![BatchSize::Count(2), BatchSize::Percent(50)],
                ..RolloutConfig::default()
            },
        ),
        (
            "rollout: {\"batch\": 2, \"max_failures\": 0, \"health_timeout\": \"20s\"}\n",
            RolloutConfig {
                batch: vec![BatchSize::Count(2)],
                health_timeout: Duration::from_secs(20),
                ..RolloutConfig::default()
            },
        ),
        (
            "rollout:\n  batch: [\"20%\"]\n  canary: 0\n  max_failures: 100%\n  revert: yes\n",
            RolloutConfig {
                batch: vec![BatchSize::Percent(20)],
                canary: 0,
                max_failures: FailureBudget::Percent(100),
                ..RolloutConfig::default()
            },
        ),
        (
            "rollout:\n  canary: &n 3\n  batch: *n\n  min_healthy: 1m30s\n",
            RolloutConfig {
                batch: vec![BatchSize::Count(3)],
                canary: 3,
                min_healthy: Duration::from_secs(90),
                ..RolloutConfig::default()
            },
        ),
    ];
    for (section, want) in cases {
        let inv = f.ok(&format!("{zoned}{section}"));
        assert_eq!(inv.rollout, *want, "{section}");
    }
    // Zones are optional unless the rollout goes by zone.
    let inv = f.ok(&format!("{MINIMAL}rollout:\n  by: host\n"));
    assert!(!inv.rollout.by_zone);
    assert_eq!(inv.agents[0].zone, None);
}

#[test]
fn agent_keys_override_ssh_section() {
    let f = Fixture::new();
    f.write("keys/agent-2", "key");
    f.write("kh2", "");
    let yaml = MINIMAL.to_string()
        + "  - name: agent-2
    address: agent-2.example.com
    user: deploy
    port: 2222
    identity_file: keys/agent-2
    known_hosts: kh2
    host_key_checking: accept-new
    become: false
    connect_timeout: 1m
ssh:
  user: core
  port: 22
  identity_file: ~/.ssh/id_ed25519
  become: true
  connect_timeout: 5s
";
    let inv = f.ok(&yaml);
    let (a1, a2) = (&inv.agents[0].ssh, &inv.agents[1].ssh);
    assert_eq!(a1.user, "core");
    assert_eq!(a1.port, 22);
    assert_eq!(a1.identity_file, Some(f.home().join(".ssh/id_ed25519")));
    assert_eq!(a1.known_hosts, f.home().join(".ssh/known_hosts"));
    assert_eq!(a1.host_key_checking, HostKeyChecking::Strict);
    assert!(a1.become_root);
    assert_eq!(a1.connect_timeout, Duration::from_secs(5));

    assert_eq!(inv.agents[1].address, "agent-2.example.com");
    assert_eq!(a2.user, "deploy");
    assert_eq!(a2.port, 2222);
    assert_eq!(a2.identity_file, Some(f.path("keys/agent-2")));
    assert_eq!(a2.known_hosts, f.path("kh2"));
    assert_eq!(a2.host_key_checking, HostKeyChecking::AcceptNew);
    assert!(!a2.become_root);
    assert!(!a2.needs_sudo());
    assert_eq!(a2.connect_timeout, Duration::from_secs(60));
}
