//! Fixtures for the planners' table tests: a desired state and the facts of
//! a fresh and of a converged agent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::desired::{
    self, Binary, BinaryFrom, CniDesired, ContainerSpec, Desired, DockerDesired, EtcdProxyDesired,
    EtcdRuns, ManagedFile,
};
use crate::facts::{Container, Facts, Unit, Version};
use crate::history::History;
use crate::inventory::{Agent, ContainerConfig, HostKeyChecking, Role, SshSettings};

pub fn agent(role: Role) -> Agent {
    Agent {
        name: "agent-1".into(),
        address: "10.0.0.11".into(),
        role,
        zone: None,
        mesos_address: None,
        ssh: SshSettings {
            host_name: "10.0.0.11".into(),
            user: "root".into(),
            port: 22,
            identity_file: None,
            known_hosts: "/dev/null".into(),
            host_key_checking: HostKeyChecking::Strict,
            become_root: true,
            connect_timeout: Duration::from_secs(10),
            proxy_jump: None,
        },
    }
}

fn container(name: &'static str, image: &str, env: &[(&str, &str)]) -> ContainerSpec {
    let cfg = ContainerConfig {
        enabled: true,
        image: image.parse().unwrap(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let rendered = json!({"options": ["--net=host", "--restart=always"], "env": {"ETCD_ENDPOINTS": "http://127.0.0.1:2379"}});
    desired::container_spec(name, "test", &rendered, &cfg, &[]).unwrap()
}

fn binary(name: &str, sha: char) -> Binary {
    Binary {
        name: name.into(),
        from: BinaryFrom::Local {
            path: format!("/tmp/{name}").into(),
            size: 1024,
        },
        path: format!("/opt/mesosphere/active/cni/{name}")
            .parse()
            .unwrap(),
        sha256: sha.to_string().repeat(64),
    }
}

pub fn desired() -> Desired {
    Desired {
        etcd_proxy: Some(EtcdProxyDesired {
            unit_file: ManagedFile::new(
                "/etc/systemd/system/calico-etcd-proxy.service"
                    .parse()
                    .unwrap(),
                "[Service]\nExecStart=/usr/bin/etcd gateway start\n",
                0o644,
            ),
            binary: EtcdRuns::OnAgent("/usr/bin/etcd".parse().unwrap()),
        }),
        etcd_tls: None,
        docker: Some(DockerDesired {
            managed: json!({"cluster-store": "etcd://127.0.0.1:2379"})
                .as_object()
                .unwrap()
                .clone(),
            reads: Vec::new(),
        }),
        cni: Some(CniDesired {
            binaries: Arc::from(vec![binary("calico", 'a'), binary("calico-ipam", 'b')]),
            config: ManagedFile::new(
                "/opt/mesosphere/etc/dcos/network/cni/calico.cni"
                    .parse()
                    .unwrap(),
                "{\"name\": \"calico\"}\n",
                0o644,
            ),
            config_dir: "/opt/mesosphere/etc/dcos/network/cni".parse().unwrap(),
            unit: "dcos-mesos-slave",
        }),
        libnetwork: Some(container(
            "calico-libnetwork",
            "calico/libnetwork-plugin:v1.1.3",
            &[],
        )),
        node: Some(container(
            "calico-node",
            "calico/node:v2.6.12",
            &[("ETCD_KEY_PASSWORD", "s3cret")],
        )),
        min_bgp_peers: 1,
        checks: Vec::new(),
    }
}

fn unit(loaded: bool, active: &str, enabled: &str, exec_start: &str) -> Unit {
    Unit {
        loaded,
        active: active.into(),
        enabled: enabled.into(),
        exec_start: exec_start.into(),
    }
}

/// A DC/OS agent that has never seen calico-rollout.
pub fn fresh_facts() -> Facts {
    Facts {
        docker_version: Ok(Version(20, 10, 24)),
        docker_answering: Ok(()),
        units: BTreeMap::from([
            (
                "docker".into(),
                unit(
                    true,
                    "active",
                    "enabled",
                    "{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// ; ignore_errors=no }",
                ),
            ),
            (
                "dcos-mesos-slave".into(),
                unit(true, "active", "enabled", ""),
            ),
            ("calico-etcd-proxy".into(), unit(false, "inactive", "", "")),
        ]),
        hashes: BTreeMap::new(),
        daemon_json: Some(br#"{"debug": false}"#.to_vec()),
        texts: None,
        containers: BTreeMap::new(),
        images: BTreeSet::new(),
        staged: BTreeSet::new(),
        pending: BTreeSet::new(),
        etcd_binary_ok: true,
        tls_loopback: Vec::new(),
        mesos_ip: None,
        history: History::default(),
        bgp: None,
    }
}

/// The same agent after a successful rollout of `want`.
pub fn converged_facts(want: &Desired) -> Facts {
    let mut f = fresh_facts();
    let mut file = |m: &ManagedFile| {
        f.hashes.insert(m.path.to_string(), m.sha256.clone());
    };
    let proxy = want.etcd_proxy.as_ref().unwrap();
    file(&proxy.unit_file);
    let cni = want.cni.as_ref().unwrap();
    file(&cni.config);
    for c in [&want.libnetwork, &want.node].into_iter().flatten() {
        file(&c.env_file);
    }
    for b in cni.binaries.iter() {
        f.hashes.insert(b.path.to_string(), b.sha256.clone());
    }
    f.units.insert(
        "calico-etcd-proxy".into(),
        unit(true, "active", "enabled", ""),
    );
    f.daemon_json = Some(br#"{"debug": false, "cluster-store": "etcd://127.0.0.1:2379"}"#.to_vec());
    for c in [&want.libnetwork, &want.node].into_iter().flatten() {
        f.containers.insert(
            c.name.into(),
            Container {
                id: format!("{:0>64}", c.name.len()),
                image: c.image.to_string(),
                running: true,
                restarting: false,
                policy: "always".into(),
                spec_hash: Some(c.spec_hash.clone()),
                options: Some(c.options.clone()),
            },
        );
        f.images.insert(c.image.to_string());
    }
    f
}
