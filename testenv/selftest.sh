#!/usr/bin/env bash
# Checks that the test cluster behaves like the production agents it stands in for.
# Needs a running cluster (testenv/up.sh). Resets every agent at the end.
# Prints one line per check and "N passed, N failed".
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
KEY="$STATE/id_ed25519"
PASS=0
FAIL=0

[ -f "$STATE/known_hosts" ] || { echo "cluster not up: run testenv/up.sh" >&2; exit 1; }

on() { # port user command...
    local port=$1 user=$2
    shift 2
    ssh -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$STATE/known_hosts" \
        -o LogLevel=ERROR -p "$port" "$user@127.0.0.1" "$@" </dev/null
}
a1() { on "$CALICO_TEST_PORT_AGENT_1" root "$@"; }
a2core() { on "$CALICO_TEST_PORT_AGENT_2" core "$@"; }
p1() { on "$CALICO_TEST_PORT_PUB_1" root "$@"; }
reset_all() { for a in "${AGENTS[@]}"; do read -r _ c _ <<<"$a"; docker exec "$c" fake-agent-reset; done; }
check() { # name command... (passes when the command exits 0)
    local name=$1
    shift
    if out=$("$@" 2>&1); then
        PASS=$((PASS + 1))
        echo "ok   $name"
    else
        FAIL=$((FAIL + 1))
        echo "FAIL $name"
        printf '%s\n' "$out" | sed 's/^/     | /' | tail -n 15
    fi
}

reset_all

# --- ssh and users
check "root@agent-1 key login, host key pinned" a1 true
check "core@agent-2 sudo -n" a2core 'test "$(id -un)" = core && sudo -n true'
check "core without sudo cannot restart units" a2core \
    'systemctl restart docker 2>&1 | grep -q "Interactive authentication required"'
check "core without sudo cannot use docker" a2core 'docker ps 2>&1 | grep -q "permission denied"'
check "stand-ins on PATH" a1 'test "$(command -v systemctl)" = /usr/bin/systemctl && test -x /opt/mesosphere/bin/mesos-agent'

# --- docker.service and daemon.json
check "restart docker on seed config" a1 'systemctl restart docker && systemctl is-active -q docker'
check "invalid JSON: restart fails, unit failed, CLI cannot connect" a1 '
    echo "{ \"debug\": false, }" > /etc/docker/daemon.json
    ! systemctl restart docker 2>/tmp/err && grep -q "control process exited with error code" /tmp/err &&
    test "$(systemctl is-active docker)" = failed &&
    grep -q "invalid character" /var/log/fake-systemd/docker.log &&
    docker ps 2>&1 | grep -q "Cannot connect to the Docker daemon"'
check "unknown directive refused" a1 '
    systemctl reset-failed docker; echo "{\"bogus\": 1}" > /etc/docker/daemon.json
    ! systemctl restart docker 2>/dev/null &&
    grep -q "directives don.t match any configuration option: bogus" /var/log/fake-systemd/docker.log'
check "cluster-store refused on docker 24.0.7" a1 '
    systemctl reset-failed docker; echo 24.0.7 > /etc/fake-faults/docker-version
    echo "{\"cluster-store\": \"etcd://127.0.0.1:2379\"}" > /etc/docker/daemon.json
    ! systemctl restart docker 2>/dev/null && dockerd --validate --config-file /etc/docker/daemon.json 2>&1 |
    grep -q "cluster-store"'
check "cluster-store accepted on 20.10 and reported by docker info" a1 '
    rm /etc/fake-faults/docker-version; systemctl reset-failed docker; systemctl restart docker &&
    docker info | grep -qx " Cluster Store: etcd://127.0.0.1:2379" &&
    test "$(docker info --format "{{.ClusterStore}}")" = etcd://127.0.0.1:2379 &&
    test "$(docker version --format "{{.Server.Version}}")" = 20.10.24 &&
    dockerd --validate 2>&1 | grep -q "unknown flag: --validate"'
check "flag and file both set cluster-store: refused" a1 '
    systemctl reset-failed docker; mkdir -p /etc/systemd/system/docker.service.d
    printf "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --cluster-store=consul://c:8500\n" \
        > /etc/systemd/system/docker.service.d/flag.conf
    test "$(systemctl show -p NeedDaemonReload --value docker)" = yes && systemctl daemon-reload &&
    ! systemctl restart docker 2>/dev/null &&
    grep -q "specified both as a flag and in the configuration file: cluster-store: (from flag: consul://c:8500, from file: etcd://127.0.0.1:2379)" /var/log/fake-systemd/docker.log
    rm -r /etc/systemd/system/docker.service.d; systemctl daemon-reload; systemctl reset-failed docker'
check "StartLimitBurst=3: 4th start within 60s refused until reset-failed" a1 '
    systemctl restart docker && systemctl restart docker && systemctl restart docker &&
    ! systemctl restart docker 2>/tmp/err && grep -qi "start request repeated too quickly" /tmp/err &&
    systemctl reset-failed docker && systemctl restart docker'
check "fault switch fail-restart-docker" a1 '
    systemctl reset-failed docker; touch /etc/fake-faults/fail-restart-docker
    ! systemctl restart docker 2>/dev/null && grep -q "injected fault" /var/log/fake-systemd/docker.log
    rm /etc/fake-faults/fail-restart-docker; systemctl reset-failed docker; systemctl restart docker'

# --- containers
check "docker run / ps / inspect / rm and name conflict" a1 '
    printf "# c\nETCD_ENDPOINTS=http://127.0.0.1:2379\n" > /tmp/e.env
    id=$(docker run -d --restart=always --net=host --privileged --name calico-node --env-file /tmp/e.env \
        -e IP=autodetect -v /lib/modules:/lib/modules:ro calico/node:v3.1.3) && [[ $id =~ ^[0-9a-f]{64}$ ]] &&
    docker run -d --name calico-node calico/node:v3.1.3 2>&1 | grep -q "Conflict. The container name \"/calico-node\" is already in use by container \"$id\""
    test "$(docker ps --filter name=calico-node --format "{{.Names}}")" = calico-node &&
    docker inspect calico-node | jq -e ".[0].Config.Env | index(\"ETCD_ENDPOINTS=http://127.0.0.1:2379\")" >/dev/null &&
    test "$(docker inspect -f "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}} {{.State.Running}}" calico-node)" = "always host true" &&
    ! docker rm calico-node 2>/dev/null && docker rm -f calico-node >/dev/null &&
    test "$(docker inspect calico-node 2>/dev/null)" = "[]" && ! docker run -d --bogus x 2>/dev/null'

# --- mesos agent
mesos_health() {
    a1 'curl -fsS 127.0.0.1:5051/health' | grep -qx OK &&
        p1 'curl -fsS 127.0.0.1:5052/health; ! curl -fsS 127.0.0.1:5051/health 2>/dev/null' | grep -qx OK &&
        p1 '! systemctl cat dcos-mesos-slave >/dev/null 2>&1 && test -e /etc/mesosphere/roles/slave_public'
}
check "mesos health on 5051 (agent-1) and 5052 (pub-1), one unit per role" mesos_health
check "bad calico.cni: mesos crash-loops, health stops, recovers when fixed" a1 '
    echo "{\"name\": \"calico\", \"type\": \"calico\"}" > /opt/mesosphere/etc/dcos/network/cni/calico.cni
    systemctl restart dcos-mesos-slave
    sleep 2.5
    ! curl -fsS -m 1 127.0.0.1:5051/health >/dev/null 2>&1 &&
    test "$(systemctl show -p NRestarts --value dcos-mesos-slave)" -ge 1 &&
    grep -q "Failed to find CNI plugin .calico." /var/log/fake-systemd/dcos-mesos-slave.log &&
    rm /opt/mesosphere/etc/dcos/network/cni/calico.cni &&
    for i in $(seq 50); do curl -fsS -m 1 127.0.0.1:5051/health >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1'

# --- etcd gateway unit
check "etcd gateway unit (daemon-reload, enable --now) answers /version and /v2/keys" a2core '
    printf "[Unit]\nDescription=etcd proxy\n[Service]\nExecStart=/usr/bin/etcd gateway start --endpoints=etcd:2379 --listen-addr=127.0.0.1:2379\nRestart=always\n[Install]\nWantedBy=multi-user.target\n" |
        sudo -n tee /etc/systemd/system/calico-etcd-proxy.service >/dev/null &&
    sudo -n systemctl daemon-reload && sudo -n systemctl enable --now calico-etcd-proxy 2>/dev/null &&
    for i in $(seq 50); do curl -fsS 127.0.0.1:2379/version 2>/dev/null | grep -q etcdserver && break; sleep 0.1; done &&
    curl -fsS 127.0.0.1:2379/v2/keys | jq -e .node.dir >/dev/null'

# --- restarts.log
check "restarts.log format and stop..ready bracketing" a1 '
    : > /var/log/fake-systemd/restarts.log; systemctl restart docker; systemctl restart dcos-mesos-slave
    for i in $(seq 50); do grep -q "dcos-mesos-slave ready" /var/log/fake-systemd/restarts.log && break; sleep 0.1; done
    grep -Evq "^[0-9]+\.[0-9]{6} [a-z0-9@_.-]+ (stop|start|ready|failed|exit -?[0-9]+)$" /var/log/fake-systemd/restarts.log && exit 1
    test "$(cut -d" " -f2- /var/log/fake-systemd/restarts.log | tr "\n" ,)" = "docker stop,docker exit 0,docker start,docker ready,dcos-mesos-slave stop,dcos-mesos-slave exit 0,dcos-mesos-slave start,dcos-mesos-slave ready,"'

# --- reset
check "fake-agent-reset restores a pristine agent, silently, in < 2 s" a1 '
    echo 24.0.7 > /etc/fake-faults/docker-version; echo "{}" > /etc/docker/daemon.json
    mkdir -p /etc/calico; touch /opt/mesosphere/active/cni/calico
    printf "[Service]\nExecStart=/bin/sleep 1000\n" > /etc/systemd/system/x.service; systemctl start x
    docker run -d --name c1 calico/node >/dev/null
    s=$(date +%s%N); out=$(fake-agent-reset 2>&1); e=$(( ($(date +%s%N) - s) / 1000000 ))
    test -z "$out" && test $e -lt 2000 &&
    cmp -s /etc/docker/daemon.json /usr/share/fake-agent/seed/daemon.json && ! test -e /etc/calico &&
    test "$(ls /opt/mesosphere/active/cni | tr "\n" " ")" = "bridge host-local mesos-cni-port-mapper " &&
    test "$(ls /opt/mesosphere/etc/dcos/network/cni)" = dcos.conf && ! test -e /etc/systemd/system/x.service &&
    ! pgrep -f "^/bin/sleep 1000" >/dev/null && test -z "$(ls /etc/fake-faults)" &&
    systemctl is-active -q docker dcos-mesos-slave && curl -fsS 127.0.0.1:5051/health >/dev/null &&
    test "$(docker ps -aq)" = "" && ! test -s /var/log/fake-systemd/restarts.log && echo "reset took ${e}ms"'

reset_all
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
