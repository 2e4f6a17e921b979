# Shared settings of testenv/real/*.sh (sourced): the real agent profile's cluster.
# shellcheck shell=bash disable=SC2034
REAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$REAL_DIR/../.." && pwd)"
PROJECT=calico-rollout-real
STATE="$REPO_ROOT/testenv/.state/real"
# name  container  ssh-port  login
AGENTS=(
    "real-1 calico-rollout-real-1 22201 root"
    "real-pub-1 calico-rollout-real-pub-1 22202 core"
)
ETCD_PORT=22280
COMPOSE=(docker-compose -f "$REPO_ROOT/docker-compose.real.yml" -p "$PROJECT")
