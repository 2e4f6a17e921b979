"""calico-rollout's job as a pyinfra deploy, for the side-by-side benchmark.

On each agent it does what `calico-rollout apply` does with the benchmark's
inventory (scripts/bench-vs-pyinfra writes both), idempotently: a converged
agent gets no upload, no write and no restart.

    pyinfra -y --parallel 10 testenv/bench/inventory.py testenv/bench/deploy.py \
        --data cni_binaries=DIR     # DIR holds calico and calico-ipam

The values calico-rollout takes from its inventory and templates are fixed here:
etcd at etcd:2379 through the local gateway, calico/node:v2.6.12 and
calico/libnetwork-plugin:v1.1.3, the DC/OS paths.
"""

import hashlib
import json
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.facts.docker import DockerContainer
from pyinfra.facts.files import FileContents
from pyinfra.operations import docker, files, systemd

REPO = Path(__file__).resolve().parents[2]
CNI_BINARIES = Path(
    host.data.get("cni_binaries")
    or Path(__file__).resolve().parent / ".state" / "crt-bench" / "run" / "bin"
)

ETCD_ENDPOINTS = "etcd:2379"  # the gateway's upstream, as host:port
CLIENT_ENDPOINTS = "http://127.0.0.1:2379"  # what Docker, Calico and the CNI plugin use
CLUSTER_STORE = "etcd://127.0.0.1:2379"
DAEMON_JSON = "/etc/docker/daemon.json"
PLUGIN_DIR = "/opt/mesosphere/active/cni"
CONFIG_DIR = "/opt/mesosphere/etc/dcos/network/cni"
MESOS_UNIT = "dcos-mesos-slave-public" if "public" in host.groups else "dcos-mesos-slave"
SPEC_LABEL = "bench.pyinfra.spec"  # which spec a container was started from

# 1. etcd-proxy: the gateway on 127.0.0.1:2379, from calico-rollout's own template.
unit = files.template(
    name="etcd gateway unit",
    src=str(REPO / "templates" / "calico-etcd-proxy.service.j2"),
    dest="/etc/systemd/system/calico-etcd-proxy.service",
    mode="644",
    etcd={"binary": "/usr/bin/etcd", "gateway_endpoints": ETCD_ENDPOINTS},
)
systemd.service(
    name="etcd gateway enabled and running",
    service="calico-etcd-proxy.service",
    running=True,
    enabled=True,
    daemon_reload=unit.will_change,
    restarted=unit.will_change,
)

# 2. docker: merge cluster-store into daemon.json, every other key kept;
#    compared as JSON, so only a real change rewrites it and restarts docker.
lines = host.get_fact(FileContents, path=DAEMON_JSON)
daemon = json.loads("\n".join(lines)) if lines and "".join(lines).strip() else {}
if daemon.get("cluster-store") != CLUSTER_STORE:
    daemon["cluster-store"] = CLUSTER_STORE
    files.put(
        name="cluster-store in daemon.json",
        src=StringIO(json.dumps(daemon, indent=2) + "\n"),
        dest=DAEMON_JSON,
        mode="644",
    )
    systemd.service(name="restart docker", service="docker.service", restarted=True)

# 3. cni: the plugins (uploaded only when their sha1 differs) and calico.cni;
#    the Mesos agent reads calico.cni when it starts, so only that restarts it.
for plugin in ("calico", "calico-ipam"):
    files.put(
        name=f"CNI plugin {plugin}",
        src=str(CNI_BINARIES / plugin),
        dest=f"{PLUGIN_DIR}/{plugin}",
        mode="755",
    )
calico_cni = {
    "name": "calico",
    "cniVersion": "0.3.1",
    "type": "calico",
    "etcd_endpoints": CLIENT_ENDPOINTS,
    "ipam": {"type": "calico-ipam"},
}
cni = files.put(
    name="calico.cni",
    src=StringIO(json.dumps(calico_cni, indent=2) + "\n"),
    dest=f"{CONFIG_DIR}/calico.cni",
    mode="644",
)
systemd.service(
    name=f"restart {MESOS_UNIT}",
    service=f"{MESOS_UNIT}.service",
    restarted=True,
    _if=cni.did_change,
)

# 4-5. libnetwork and node: containers from an env file; a container whose
#      spec label differs from the wanted spec is replaced.
CONTAINERS = [
    (
        "calico-libnetwork",
        "calico/libnetwork-plugin:v1.1.3",
        ["/run/docker/plugins:/run/docker/plugins"],
        {"ETCD_ENDPOINTS": CLIENT_ENDPOINTS},
    ),
    (
        "calico-node",
        "calico/node:v2.6.12",
        [
            "/var/log/calico:/var/log/calico",
            "/var/run/calico:/var/run/calico",
            "/lib/modules:/lib/modules",
            "/run/docker/plugins:/run/docker/plugins",
            "/var/run/docker.sock:/var/run/docker.sock",
        ],
        {
            "NODENAME": host.name,
            "ETCD_ENDPOINTS": CLIENT_ENDPOINTS,
            "CALICO_NETWORKING_BACKEND": "bird",
        },
    ),
]
for name, image, volumes, env in CONTAINERS:
    env_text = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
    env_file = f"/etc/calico/{name}.env"
    files.put(name=f"{name} env file", src=StringIO(env_text), dest=env_file, mode="600")
    docker.image(name=f"{image} pulled", image=image)
    spec = hashlib.sha256(json.dumps([image, volumes, env_text]).encode()).hexdigest()
    running = host.get_fact(DockerContainer, object_id=name)
    labels = (running[0]["Config"].get("Labels") or {}) if running else {}
    docker.container(
        name=f"{name} container",
        container=name,
        image=image,
        networks=["host"],
        privileged=True,
        restart_policy="always",
        volumes=volumes,
        env_files=[env_file],
        labels=[f"{SPEC_LABEL}={spec}"],
        force=bool(running) and labels.get(SPEC_LABEL) != spec,
    )
