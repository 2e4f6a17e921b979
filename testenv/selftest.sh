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
a3() { on "$CALICO_TEST_PORT_AGENT_3" root "$@"; }
p1() { on "$CALICO_TEST_PORT_PUB_1" root "$@"; }
reset_all() { for a in "${AGENTS[@]}"; do read -r _ c _ <<<"$a"; docker exec "$c" fake-agent-reset; done; }
check() { # name command... (passes when the command exits 0); SELFTEST_TIMES=1 adds seconds taken
    local name=$1 t0=$SECONDS
    shift
    if out=$("$@" 2>&1); then
        PASS=$((PASS + 1))
        echo "ok   $name${SELFTEST_TIMES:+ ($((SECONDS - t0))s)}"
    else
        FAIL=$((FAIL + 1))
        echo "FAIL $name${SELFTEST_TIMES:+ ($((SECONDS - t0))s)}"
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
# real systemd: the start job fails, but Restart=always still applies (auto-restart, then the start limit)
check "invalid JSON: restart fails, docker auto-restarts (activating), CLI cannot connect" a1 '
    systemctl reset-failed docker; echo "{ \"debug\": false, }" > /etc/docker/daemon.json
    ! systemctl restart docker 2>/tmp/err && grep -q "control process exited with error code" /tmp/err &&
    test "$(systemctl is-active docker)" = activating &&
    test "$(systemctl show -p SubState,Result --value docker | tr "\n" " ")" = "exit-code auto-restart " &&
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
    rm -r /etc/systemd/system/docker.service.d; systemctl daemon-reload; systemctl reset-failed docker
    systemctl restart docker'
check "StartLimitBurst=3: 4th start within 60s refused until reset-failed" a1 '
    systemctl reset-failed docker
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
    a1 'curl -fsS "$(/opt/mesosphere/bin/detect_ip):5051/health"' | grep -qx OK &&
        p1 'ip=$(/opt/mesosphere/bin/detect_ip); curl -fsS $ip:5052/health; ! curl -fsS $ip:5051/health 2>/dev/null' |
        grep -qx OK &&
        p1 '! systemctl cat dcos-mesos-slave >/dev/null 2>&1 && test -e /etc/mesosphere/roles/slave_public'
}
check "mesos health on 5051 (agent-1) and 5052 (pub-1) at detect_ip, one unit per role" mesos_health
check "detect_ip prints eth0's address; mesos listens there only, not on loopback" a1 '
    ip=$(/opt/mesosphere/bin/detect_ip) && [[ $ip =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] &&
    ip -4 -o addr show dev eth0 | grep -q " $ip/" && ! curl -fsS -m 1 127.0.0.1:5051/health 2>/dev/null &&
    curl -fsS $ip:5051/state | jq -e ".address == \"$ip:5051\"" >/dev/null'
check "no-detect-ip: detect_ip fails; a mesos restart crash-loops on it, recovers when it is back" a1 '
    touch /etc/fake-faults/no-detect-ip
    ! /opt/mesosphere/bin/detect_ip 2>/tmp/err >/tmp/out && test ! -s /tmp/out && grep -q "injected fault" /tmp/err &&
    curl -fsS -m 1 "$(hostname -i | cut -d" " -f1):5051/health" >/dev/null && systemctl restart dcos-mesos-slave &&
    for i in $(seq 100); do test "$(systemctl show -P NRestarts dcos-mesos-slave)" -ge 1 && break; sleep 0.1; done &&
    test "$(systemctl show -P NRestarts dcos-mesos-slave)" -ge 1 &&
    grep -q "Failed to execute ./opt/mesosphere/bin/detect_ip." /var/log/fake-systemd/dcos-mesos-slave.log
    rc=$?; rm -f /etc/fake-faults/no-detect-ip; ip=$(/opt/mesosphere/bin/detect_ip)
    for i in $(seq 100); do curl -fsS -m 1 $ip:5051/health >/dev/null 2>&1 && exit $rc; sleep 0.1; done; exit 1'
check "bad calico.cni: mesos crash-loops, health stops, recovers when fixed" a1 '
    echo "{\"name\": \"calico\", \"type\": \"calico\"}" > /opt/mesosphere/etc/dcos/network/cni/calico.cni
    systemctl restart dcos-mesos-slave
    for i in $(seq 100); do test "$(systemctl show -P NRestarts dcos-mesos-slave)" -ge 1 && break; sleep 0.1; done
    ip=$(/opt/mesosphere/bin/detect_ip)
    ! curl -fsS -m 1 $ip:5051/health >/dev/null 2>&1 &&
    test "$(systemctl show -p NRestarts --value dcos-mesos-slave)" -ge 1 &&
    grep -q "Failed to find CNI plugin .calico." /var/log/fake-systemd/dcos-mesos-slave.log &&
    rm /opt/mesosphere/etc/dcos/network/cni/calico.cni &&
    for i in $(seq 100); do curl -fsS -m 1 $ip:5051/health >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1'

# --- etcd gateway unit
check "etcd gateway unit (daemon-reload, enable --now) answers /version and /v2/keys" a2core '
    printf "[Unit]\nDescription=etcd proxy\n[Service]\nExecStart=/usr/bin/etcd gateway start --endpoints=etcd:2379 --listen-addr=127.0.0.1:2379\nRestart=always\n[Install]\nWantedBy=multi-user.target\n" |
        sudo -n tee /etc/systemd/system/calico-etcd-proxy.service >/dev/null &&
    sudo -n systemctl daemon-reload && sudo -n systemctl enable --now calico-etcd-proxy 2>/dev/null &&
    for i in $(seq 50); do curl -fsS 127.0.0.1:2379/version 2>/dev/null | grep -q etcdserver && break; sleep 0.1; done &&
    curl -fsS 127.0.0.1:2379/v2/keys | jq -e .node.dir >/dev/null'

# --- restarts.log
check "restarts.log format and stop..ready bracketing" a1 '
    systemctl reset-failed docker; : > /var/log/fake-systemd/restarts.log; systemctl restart docker; systemctl restart dcos-mesos-slave
    for i in $(seq 50); do grep -q "dcos-mesos-slave ready" /var/log/fake-systemd/restarts.log && break; sleep 0.1; done
    grep -Evq "^[0-9]+\.[0-9]{6} [a-z0-9@_.-]+ (stop|start|ready|failed|exit -?[0-9]+)$" /var/log/fake-systemd/restarts.log && exit 1
    test "$(cut -d" " -f2- /var/log/fake-systemd/restarts.log | tr "\n" ,)" = "docker stop,docker exit 0,docker start,docker ready,dcos-mesos-slave stop,dcos-mesos-slave exit 0,dcos-mesos-slave start,dcos-mesos-slave ready,"'

# --- systemctl show, as systemd prints it
check "show: a block per unit, systemd's order (not the order asked), --value, -P, not-found unit" a1 '
    systemctl reset-failed docker; systemctl restart docker &&
    test "$(systemctl show -p NRestarts,LoadState,Id,ActiveState -- docker.service nosuch.service)" = "$(printf "%s\n" \
        NRestarts=0 Id=docker.service LoadState=loaded ActiveState=active "" \
        NRestarts=0 Id=nosuch.service LoadState=not-found ActiveState=inactive)" &&
    test "$(systemctl show --value -p SubState,MainPID -- nosuch.service dcos-mesos-slave | tr "\n" ,)" = \
        "0,dead,,$(systemctl show -P MainPID dcos-mesos-slave),running," &&
    systemctl show nosuch.service | grep -qx "LoadError=org.freedesktop.systemd1.NoSuchUnit \"Unit nosuch.service not found.\"" &&
    test "$(systemctl show -P ActiveEnterTimestampMonotonic nosuch)" = 0 && ! systemctl show nosuch | grep -q "^Type=" &&
    systemctl show docker | grep -qx StartLimitIntervalUSec=1min && systemctl show docker | grep -qx TimeoutStartUSec=infinity &&
    systemctl show -p Bogus,Id docker | grep -qx Id=docker.service && test "$(systemctl show -p Bogus docker)" = ""'
check "show: ActiveEnterTimestamp(Monotonic) of a notify unit is when it became ready, not when spawned" a1 '
    systemctl reset-failed docker; systemctl restart docker &&
    eval "$(systemctl show -p InactiveExitTimestampMonotonic,ExecMainStartTimestampMonotonic,ActiveEnterTimestampMonotonic,ActiveEnterTimestamp docker |
        sed "s/=\(.*\)/=\"\1\"/")" &&
    test "$InactiveExitTimestampMonotonic" -le "$ExecMainStartTimestampMonotonic" &&
    test "$ExecMainStartTimestampMonotonic" -lt "$ActiveEnterTimestampMonotonic" &&
    now=$(python3 -c "import time; print(int(time.monotonic() * 1e6))") &&
    test $(( now - ActiveEnterTimestampMonotonic )) -ge 0 && test $(( now - ActiveEnterTimestampMonotonic )) -lt 10000000 &&
    ready=$(grep " docker ready$" /var/log/fake-systemd/restarts.log | tail -n1 | cut -d. -f1) &&
    d=$(( $(date -u -d "$ActiveEnterTimestamp" +%s) - ready )) && test ${d#-} -le 1'
check "TimeoutStartSec: 1s fails a notify start (timeout); 0 and infinity mean none" a1 '
    printf "[Service]\nType=notify\nExecStart=/bin/sleep 1000\nTimeoutStartSec=1\n" > /etc/systemd/system/t-notify.service
    printf "[Service]\nType=notify\nExecStart=/bin/sleep 1000\nTimeoutStartSec=0\n" > /etc/systemd/system/t-zero.service
    printf "[Service]\nType=notify\nExecStart=/bin/sleep 1000\nTimeoutStartSec=infinity\n" > /etc/systemd/system/t-inf.service
    systemctl daemon-reload; ! systemctl start t-notify 2>/tmp/err && grep -q "a timeout was exceeded" /tmp/err &&
    test "$(systemctl show -P Result t-notify)" = timeout &&
    test "$(systemctl show -P TimeoutStartUSec t-zero t-inf | tr "\n" ,)" = "infinity,,infinity," &&
    systemctl start --no-block t-zero && sleep 1.5 && test "$(systemctl is-active t-zero)" = activating
    rc=$?; systemctl stop t-zero; rm /etc/systemd/system/t-*.service; systemctl daemon-reload; exit $rc'

# --- fault: a restart that hangs
check "hang-restart-docker (2): restart blocks in activating (start-pre) past TimeoutStartSec; killing the client changes nothing" a1 '
    systemctl reset-failed docker; mkdir -p /etc/systemd/system/docker.service.d
    printf "[Service]\nTimeoutStartSec=1\n" > /etc/systemd/system/docker.service.d/t.conf; systemctl daemon-reload
    echo 2 > /etc/fake-faults/hang-restart-docker
    timeout 3 systemctl restart docker; rc=$?
    for i in $(seq 50); do test "$(systemctl show -P SubState docker)" = start-pre && break; sleep 0.1; done
    test $rc = 124 && test "$(systemctl is-active docker)" = activating &&
    test "$(systemctl show -p SubState,MainPID --value docker | tr "\n" " ")" = "0 start-pre " &&
    cpid=$(systemctl show -P ControlPID docker) && test "$cpid" -gt 0 && kill -0 $cpid &&
    test "$(cat /etc/fake-faults/hang-restart-docker)" = 1 &&
    journalctl -u docker -n 3 | grep -q "start-pre hangs: injected fault" &&
    systemctl status docker | grep -q "Active: activating (start-pre)" &&
    ! timeout 1 systemctl start docker && docker ps 2>&1 | grep -q "Cannot connect"'
check "hang-restart-docker: a later restart/stop cancels the hanging start (client: Job canceled); then it starts" a1 '
    old=$(systemctl show -P ControlPID docker)
    systemctl restart docker 2>/tmp/c.err & c=$!
    for i in $(seq 50); do n=$(systemctl show -P ControlPID docker); [ "$n" != 0 ] && [ "$n" != "$old" ] && break; sleep 0.1; done
    ! kill -0 $old 2>/dev/null && ! test -e /etc/fake-faults/hang-restart-docker &&
    systemctl stop docker && { wait $c; test $? = 1; } && grep -qx "Job for docker.service canceled." /tmp/c.err &&
    ! kill -0 $n 2>/dev/null && test "$(systemctl is-active docker)" = inactive &&
    rm -r /etc/systemd/system/docker.service.d && systemctl daemon-reload && systemctl reset-failed docker &&
    systemctl start docker && systemctl is-active -q docker && docker ps >/dev/null'

# --- fault: a unit that restarts itself
check "crash-after-dcos-mesos-slave: exits 1 after ready; NRestarts climbs, MainPID and ActiveEnterTimestamp change" a1 '
    pid0=$(systemctl show -P MainPID dcos-mesos-slave); t0=$(systemctl show -P ActiveEnterTimestampMonotonic dcos-mesos-slave)
    echo 0.3 > /etc/fake-faults/crash-after-dcos-mesos-slave; seen=
    end=$((SECONDS + 15)); while [ $SECONDS -lt $end ]; do
        seen="$seen $(systemctl is-active dcos-mesos-slave)"
        [[ $seen == *activating* ]] && test "$(systemctl show -P NRestarts dcos-mesos-slave)" -ge 1 && break; sleep 0.1
    done
    n=$(systemctl show -P NRestarts dcos-mesos-slave); pid=$(systemctl show -P MainPID dcos-mesos-slave)
    t=$(systemctl show -P ActiveEnterTimestampMonotonic dcos-mesos-slave)
    rm /etc/fake-faults/crash-after-dcos-mesos-slave
    test "$n" -ge 1 && test "$pid" != "$pid0" && test "$t" -gt "$t0" &&
    test -z "$(echo $seen | tr " " "\n" | grep -vx -e active -e activating)" && [[ $seen == *activating* ]] &&
    grep -q "dcos-mesos-slave exit 1" /var/log/fake-systemd/restarts.log &&
    journalctl -u dcos-mesos-slave | grep -q "Scheduled restart job, restart counter is at 1\." &&
    systemctl restart dcos-mesos-slave && test "$(systemctl show -P NRestarts dcos-mesos-slave)" = 0'
check "crash-after-docker: the start limit ends the loop (failed, start-limit-hit, NRestarts=3); reset-failed zeroes it" a1 '
    systemctl reset-failed docker; mkdir -p /etc/systemd/system/docker.service.d
    printf "[Service]\nRestartSec=200ms\n" > /etc/systemd/system/docker.service.d/t.conf; systemctl daemon-reload
    echo 0.2 > /etc/fake-faults/crash-after-docker; systemctl restart docker
    for i in $(seq 50); do test "$(systemctl is-active docker)" = failed && break; sleep 0.1; done
    test "$(systemctl show -p ActiveState,Result,NRestarts --value docker | tr "\n" " ")" = "start-limit-hit 3 failed " &&
    journalctl -u docker | grep -q "Start request repeated too quickly" &&
    systemctl reset-failed docker && test "$(systemctl show -P NRestarts docker)" = 0
    rc=$?; rm -r /etc/fake-faults/crash-after-docker /etc/systemd/system/docker.service.d; systemctl daemon-reload
    systemctl reset-failed docker; systemctl restart docker && exit $rc'

# --- fault: containers that crash-loop
check "crash-images: run -d succeeds; restarting with backoff, RestartCount climbs, ps says Restarting (1)" a1 '
    echo "docker.io/calico/node:v9" > /etc/fake-faults/crash-images
    id=$(docker run -d --restart=always --name cn calico/node:v9 2>/dev/null) && [[ $id =~ ^[0-9a-f]{64}$ ]] &&
    docker run -d --restart=always --name ok calico/node:v1 >/dev/null 2>&1 && sleep 1 &&
    f="{{.State.Status}} {{.State.Running}} {{.State.Restarting}} {{.State.ExitCode}}" &&
    test "$(docker inspect -f "$f" cn)" = "restarting true true 1" &&
    rc=$(docker inspect -f "{{.RestartCount}}" cn) && test $rc -ge 3 && test $rc -le 5 &&
    s1=$(docker inspect -f "{{.State.StartedAt}}" cn) && fin=$(docker inspect -f "{{.State.FinishedAt}}" cn) &&
    [[ $fin > $s1 ]] &&
    for i in $(seq 40); do test "$(docker inspect -f "{{.State.StartedAt}}" cn)" != "$s1" && break; sleep 0.1; done &&
    test "$(docker inspect -f "{{.State.StartedAt}}" cn)" != "$s1" && test $(docker inspect -f "{{.RestartCount}}" cn) -gt $rc &&
    docker ps --format "{{.Names}} {{.Status}}" | grep -Eq "^cn Restarting \(1\) (Less than a second|[0-9]+ seconds?) ago$" &&
    test "$(docker ps --filter status=restarting --format {{.Names}})" = cn &&
    test "$(docker inspect -f "$f {{.RestartCount}}" ok)" = "running true false 0 0"'
check "crash-images: policy no exits (1); on-failure:2 stops after 2 restarts; --rm is gone; attached run exits 1" a1 '
    docker run -d --name cno calico/node:v9 >/dev/null 2>&1 && docker run -d --restart=on-failure:2 --name cnf calico/node:v9 >/dev/null 2>&1 &&
    docker run -d --rm --name cnr calico/node:v9 >/dev/null 2>&1 && { docker run --name cna calico/node:v9 2>/dev/null; test $? = 1; } &&
    sleep 0.6 &&
    test "$(docker inspect -f "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}" cno cnf cna | tr "\n" ,)" = "exited 1 0,exited 1 2,exited 1 0," &&
    ! docker inspect cnr >/dev/null 2>&1 && docker ps -a --format "{{.Names}} {{.Status}}" | grep -Eq "^cno Exited \(1\) "'
check "crash-images: start is a no-op while restarting, rm needs -f, stop ends the loop, update --restart=no after the pending restart" a1 '
    docker start cn >/dev/null && test "$(docker inspect -f {{.State.Status}} cn)" = restarting &&
    docker rm cn 2>&1 | grep -q "You cannot remove a restarting container" &&
    docker run -d --restart=always --name cu calico/node:v9 >/dev/null 2>&1 && sleep 0.5 &&
    docker update --restart=no cu >/dev/null && n=$(docker inspect -f {{.RestartCount}} cu) &&
    for i in $(seq 40); do test "$(docker inspect -f {{.State.Status}} cu)" = exited && break; sleep 0.1; done &&
    test "$(docker inspect -f "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}" cu)" = "exited 1 $n" &&
    docker stop cn >/dev/null && sleep 0.3 &&
    test "$(docker inspect -f "{{.State.Status}} {{.State.Restarting}} {{.State.ExitCode}}" cn)" = "exited false 1" &&
    before=$(docker inspect -f {{.RestartCount}} cn) && docker restart cn >/dev/null &&
    test "$(docker inspect -f {{.State.Status}} cn)" = restarting && test $(docker inspect -f {{.RestartCount}} cn) -lt $before'
check "crash-images: a dockerd restart restarts the loop (RestartCount 0); off the list, it comes up at its next restart" a1 '
    sleep 1; before=$(docker inspect -f {{.RestartCount}} cn); systemctl reset-failed docker; systemctl restart docker &&
    test "$(docker inspect -f "{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}" cn cu cno | tr "\n" ,)" = "restarting always,exited no,exited no," &&
    test $(docker inspect -f {{.RestartCount}} cn) -lt $before &&
    : > /etc/fake-faults/crash-images && docker inspect cn >/dev/null &&
    for i in $(seq 30); do test "$(docker inspect -f {{.State.Status}} cn)" = running && break; sleep 0.1; done &&
    test "$(docker inspect -f "{{.State.Status}} {{.State.Restarting}} {{.State.ExitCode}}" cn)" = "running false 0" &&
    docker ps --format "{{.Names}} {{.Status}}" | grep -q "^cn Up " && docker rm -f cn cu cno cnf cna ok >/dev/null'

# --- fault: a registry that lacks an image
check "registry-missing: pull fails (manifest unknown, exit 1); run/create: Unable to find image, exit 125, no container" a1 '
    printf "calico/node:v9.9.9\n" > /etc/fake-faults/registry-missing
    { docker pull docker.io/calico/node:v9.9.9 >/dev/null 2>/tmp/err; test $? = 1; } &&
    test "$(cat /tmp/err)" = "Error response from daemon: manifest for calico/node:v9.9.9 not found: manifest unknown: manifest unknown" &&
    { docker run -d --name rm1 calico/node:v9.9.9 >/dev/null 2>/tmp/err; test $? = 125; } &&
    test "$(cat /tmp/err)" = "$(printf "%s\n" "Unable to find image '"'"'calico/node:v9.9.9'"'"' locally" \
        "docker: Error response from daemon: manifest for calico/node:v9.9.9 not found: manifest unknown: manifest unknown." \
        "See '"'"'docker run --help'"'"'.")" &&
    { docker create --name rm1 calico/node:v9.9.9 >/dev/null 2>/tmp/err; test $? = 125; } &&
    grep -q "^See .docker create --help.\.$" /tmp/err &&
    test "$(docker ps -aq)" = "" && test "$(docker image inspect calico/node:v9.9.9 2>/tmp/err)" = "[]" &&
    test "$(cat /tmp/err)" = "Error: No such image: calico/node:v9.9.9"'
check "registry-missing: an image already present runs; image inspect finds it (docker.io/ or not)" a1 '
    docker pull calico/node:v9.9.8 >/dev/null && echo calico/node:v9.9.8 >> /etc/fake-faults/registry-missing &&
    ! docker pull calico/node:v9.9.8 >/dev/null 2>&1 &&
    docker run -d --name rm2 docker.io/calico/node:v9.9.8 >/dev/null 2>/tmp/err && test ! -s /tmp/err &&
    test "$(docker image inspect -f "{{.RepoTags}}" docker.io/calico/node:v9.9.8)" = "[calico/node:v9.9.8]" &&
    docker rm -f rm2 >/dev/null'
check "registry-down: every pull fails with a DNS error" a1 '
    touch /etc/fake-faults/registry-down; ns=$(awk "/^nameserver/ {print \$2; exit}" /etc/resolv.conf)
    { docker pull busybox >/tmp/out 2>/tmp/err; test $? = 1; } && grep -qx "Using default tag: latest" /tmp/out &&
    grep -qx "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on $ns:53: no such host" /tmp/err &&
    { docker run -d quay.io/calico/node:v3 >/dev/null 2>/tmp/err; test $? = 125; } &&
    grep -q "lookup quay.io on $ns:53: no such host\.$" /tmp/err
    rc=$?; rm /etc/fake-faults/registry-down /etc/fake-faults/registry-missing; exit $rc'

# --- fault: a dropped SSH connection
ssh_drop() { # port user sudo-prefix
    local port=$1 user=$2 sudo=$3 pid0
    pid0=$(on "$port" "$user" "$sudo sh -c ': > /var/log/fake-systemd/restarts.log; echo 1 > /etc/fake-faults/drop-ssh-on-restart-docker'
        systemctl show -P MainPID docker") || return 1
    on "$port" "$user" "$sudo systemctl restart docker; echo survived" >/tmp/ssh-drop.$$ 2>&1
    [ $? = 255 ] && ! grep -q survived /tmp/ssh-drop.$$ &&
        test "$(on "$port" "$user" "systemctl show -P MainPID docker")" = "$pid0" &&
        on "$port" "$user" '! test -e /etc/fake-faults/drop-ssh-on-restart-docker && ! grep -q " docker " /var/log/fake-systemd/restarts.log' &&
        on "$port" "$user" "$sudo systemctl reset-failed docker; $sudo systemctl restart docker && systemctl is-active -q docker"
    local rc=$?
    rm -f /tmp/ssh-drop.$$
    return $rc
}
check "drop-ssh-on-restart-docker: the client sees the connection drop (255), docker not restarted, sshd still serves" \
    ssh_drop "$CALICO_TEST_PORT_AGENT_1" root ""
check "drop-ssh-on-restart-docker through sudo (core@agent-2)" ssh_drop "$CALICO_TEST_PORT_AGENT_2" core "sudo -n"
drop_every_time() {
    local f=/etc/fake-faults/drop-ssh-on-stop-dcos-mesos-slave.service i
    a3 "touch $f && systemctl restart dcos-mesos-slave" || return 1
    for i in 1 2; do
        a3 'systemctl stop dcos-mesos-slave' >/dev/null 2>&1
        [ $? = 255 ] || return 1
    done
    a3 "test -e $f && systemctl is-active -q dcos-mesos-slave && rm $f && systemctl stop dcos-mesos-slave &&
        systemctl start dcos-mesos-slave"
}
check "drop-ssh: an empty file drops every time; other verbs of the unit go through" drop_every_time

# --- reset
check "fake-agent-reset restores a pristine agent, silently, in < 2 s" a1 '
    echo 24.0.7 > /etc/fake-faults/docker-version; echo "{}" > /etc/docker/daemon.json
    mkdir -p /etc/calico; touch /opt/mesosphere/active/cni/calico
    printf "[Service]\nExecStart=/bin/sleep 1000\n" > /etc/systemd/system/x.service; systemctl start x
    docker run -d --name c1 calico/node >/dev/null
    echo calico/node:v9 > /etc/fake-faults/crash-images; docker run -d --restart=always --name c2 calico/node:v9 >/dev/null 2>&1
    touch /etc/fake-faults/{registry-down,no-detect-ip,drop-ssh-on-restart-docker,hang-restart-dcos-mesos-slave}
    echo 5 > /etc/fake-faults/crash-after-docker; timeout 1 systemctl restart dcos-mesos-slave; rm /opt/mesosphere/bin/detect_ip
    s=$(date +%s%N); out=$(fake-agent-reset 2>&1); e=$(( ($(date +%s%N) - s) / 1000000 ))
    test -z "$out" && test $e -lt 2000 &&
    cmp -s /etc/docker/daemon.json /usr/share/fake-agent/seed/daemon.json && ! test -e /etc/calico &&
    test "$(ls /opt/mesosphere/active/cni | tr "\n" " ")" = "bridge host-local mesos-cni-port-mapper " &&
    test "$(ls /opt/mesosphere/etc/dcos/network/cni)" = dcos.conf && ! test -e /etc/systemd/system/x.service &&
    ! pgrep -f "^/bin/sleep 1000" >/dev/null && test -z "$(ls /etc/fake-faults)" &&
    ! pgrep -f "^sleep infinity" >/dev/null && test -x /opt/mesosphere/bin/detect_ip &&
    systemctl is-active -q docker dcos-mesos-slave && curl -fsS "$(/opt/mesosphere/bin/detect_ip):5051/health" >/dev/null &&
    test "$(systemctl show -P NRestarts,SubState docker dcos-mesos-slave | tr "\n" ,)" = "0,running,,0,running," &&
    test "$(docker ps -aq)" = "" && ! test -s /var/log/fake-systemd/restarts.log && echo "reset took ${e}ms"'

reset_all
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
