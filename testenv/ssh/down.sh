#!/usr/bin/env bash
# Removes the SSH world (containers and networks). Keeps the client key and the CA.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
CALICO_SSH_AUTHORIZED_KEYS="" "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 5
rm -f "$STATE/known_hosts" "$STATE"/*-host.pub "$STATE"/*-host-cert.pub
