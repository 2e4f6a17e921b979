#!/usr/bin/env bash
# Checks that agents of the benchmark cluster are converged, through docker exec
# (not over ssh, so it costs the tools nothing): docker info shows the cluster
# store, the etcd gateway unit is enabled and answers /health through to etcd,
# the Mesos agent answers /health, calico-node and calico-libnetwork are running.
# Prints one line per agent: "NAME ok DIGEST" or "NAME FAIL: reasons". DIGEST
# hashes what a rollout leaves behind (file bytes and modes, daemon.json as JSON,
# the containers' image, network, privileges, restart policy, mounts and
# environment), so two tools that did the same job print the same digests.
#   testenv/bench/check.sh [all | NAME...]     default: a sample of about 6 agents
# Exit status 1 if any agent failed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ -f "$STATE/agents.tsv" ] || { echo "no bench cluster: run testenv/bench/up.sh" >&2; exit 1; }
mapfile -t rows <"$STATE/agents.tsv"
total=${#rows[@]}

pick=()
if [ "${1:-}" = all ]; then
    pick=("${rows[@]}")
elif [ $# -gt 0 ]; then
    for want in "$@"; do
        for r in "${rows[@]}"; do [ "${r%%$'\t'*}" = "$want" ] && pick+=("$r"); done
    done
else
    # the first, the last, quartiles, and the first public agent
    idx=(1 $(((total + 3) / 4)) $(((total + 1) / 2)) $(((3 * total + 3) / 4)) "$total")
    for i in $(seq "$total"); do [[ ${rows[i - 1]} == *$'\t'public$'\t'* ]] && { idx+=("$i"); break; }; done
    for i in $(printf '%s\n' "${idx[@]}" | sort -nu); do pick+=("${rows[i - 1]}"); done
fi

# Runs on the agent as root; prints "ok DIGEST" or the reasons.
read -r -d '' PROBE <<'SH' || true
role=$1
bad=""
fail() { bad="$bad; $*"; }
unit=dcos-mesos-slave; port=5051
[ "$role" = public ] && { unit=dcos-mesos-slave-public; port=5052; }
docker info 2>/dev/null | grep -qx ' Cluster Store: etcd://127.0.0.1:2379' || fail "docker info shows no cluster store etcd://127.0.0.1:2379"
[ "$(systemctl is-enabled calico-etcd-proxy 2>/dev/null)" = enabled ] || fail "calico-etcd-proxy not enabled"
curl -fsS --max-time 3 http://127.0.0.1:2379/health >/dev/null 2>&1 || fail "the etcd gateway does not answer /health"
curl -fsS --max-time 3 "http://$(/opt/mesosphere/bin/detect_ip):$port/health" >/dev/null 2>&1 || fail "$unit does not answer /health"
for c in calico-libnetwork calico-node; do
    [ "$(docker inspect --type container --format '{{.State.Running}}' "$c" 2>/dev/null)" = true ] || fail "$c not running"
done
[ -z "$bad" ] || { echo "FAIL:${bad#;}"; exit 1; }
{
    for f in /etc/systemd/system/calico-etcd-proxy.service /opt/mesosphere/active/cni/calico \
        /opt/mesosphere/active/cni/calico-ipam /opt/mesosphere/etc/dcos/network/cni/calico.cni \
        /etc/calico/calico-libnetwork.env /etc/calico/calico-node.env; do
        echo "$f $(stat -c %a "$f") $(sha256sum <"$f")"
    done
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' /etc/docker/daemon.json
    docker inspect --type container calico-libnetwork calico-node | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    h, cfg = c["HostConfig"], c["Config"]
    print(c["Name"], cfg["Image"], h["NetworkMode"], h["Privileged"], h["RestartPolicy"]["Name"],
          sorted(h.get("Binds") or []), sorted(cfg.get("Env") or []))'
} | sha256sum | cut -c1-16 | sed 's/^/ok /'
SH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in "${pick[@]}"; do
    IFS=$'\t' read -r name _ role container <<<"$r"
    docker exec "$container" sh -c "$PROBE" sh "$role" >"$tmp/$name" 2>&1 &
done
wait || true
rc=0
for r in "${pick[@]}"; do
    name=${r%%$'\t'*}
    out=$(cat "$tmp/$name")
    printf '%s %s\n' "$name" "$out"
    [[ $out == ok* ]] || rc=1
done
exit $rc
