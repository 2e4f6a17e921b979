#!/usr/bin/env bash
# Tears down the calico-rollout test cluster (containers and network). Keeps the
# client key; removes known_hosts (host keys die with the containers).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
CALICO_TEST_AUTHORIZED_KEYS="" "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 5
rm -f "$STATE/known_hosts" "$STATE/cluster.env"
