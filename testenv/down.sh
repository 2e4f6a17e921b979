#!/usr/bin/env bash
# Tears down the calico-rollout test cluster (containers and network). Keeps the
# client key in testenv/.state; removes known_hosts (host keys die with the containers).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CALICO_TEST_AUTHORIZED_KEYS="" docker-compose -f "$ROOT/docker-compose.test.yml" -p calico-rollout-test \
    down --volumes --remove-orphans --timeout 5
rm -f "$HERE/.state/known_hosts" "$HERE/.state/cluster.env"
