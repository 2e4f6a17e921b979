# shellcheck shell=bash
# Shared settings of testenv/bench/*.sh (sourced): the benchmark cluster, N fake
# agents from calico-rollout-test/agent:latest plus an etcd store, in a compose
# project of its own, apart from the test clusters.
#   BENCH_AGENTS     number of agents (default 50)
#   BENCH_PROJECT    compose project and container-name prefix (default crt-bench)
#   BENCH_PORT_BASE  agent i has ssh on 127.0.0.1:BENCH_PORT_BASE+i (default 23000)
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH/../.." && pwd)"
N="${BENCH_AGENTS:-50}"
PROJECT="${BENCH_PROJECT:-crt-bench}"
PORT_BASE="${BENCH_PORT_BASE:-23000}"
if ! [[ $PROJECT =~ ^[a-z0-9][a-z0-9-]*$ ]] || ! [[ $N =~ ^[1-9][0-9]*$ ]] \
    || ! [[ $PORT_BASE =~ ^[1-9][0-9]*$ ]]; then
    echo "BENCH_PROJECT must be [a-z0-9-]+, BENCH_AGENTS and BENCH_PORT_BASE positive numbers" >&2
    exit 1
fi
case $PROJECT in calico-rollout-test | calico-rollout-real)
    echo "BENCH_PROJECT=$PROJECT is a test cluster's project; pick another" >&2
    exit 1
    ;;
esac
STATE="$BENCH/.state/$PROJECT"
IMAGE=calico-rollout-test/agent:latest
COMPOSE_FILE="$STATE/docker-compose.yml"
COMPOSE=(docker-compose -f "$COMPOSE_FILE" -p "$PROJECT")
ETCD_CONTAINER="$PROJECT-etcd"

# Agent i (1-based): every tenth is public, and at least the last one is.
agent_role() { if [ $(($1 % 10)) = 0 ] || { [ "$1" = "$N" ] && [ "$N" -lt 10 ]; }; then echo public; else echo private; fi; }
agent_name() { if [ "$(agent_role "$1")" = public ]; then printf 'pub-%02d' "$1"; else printf 'agent-%02d' "$1"; fi; }
agent_port() { echo $((PORT_BASE + $1)); }
agent_container() { echo "$PROJECT-$(agent_name "$1")"; }
