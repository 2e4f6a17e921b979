#!/usr/bin/env bash
# Removes the etcd-over-TLS world's containers and network (keeps the
# certificates and the client key in testenv/.state/tls/).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CALICO_TLS_CERTS="$REPO_ROOT/testenv/.state/tls/certs" CALICO_TLS_AUTHORIZED_KEYS=
docker-compose -f "$REPO_ROOT/docker-compose.tls.yml" -p calico-rollout-tls down --remove-orphans
