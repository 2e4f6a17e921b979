#!/usr/bin/env bash
# Removes the real agent profile's containers, their /var/lib/docker volumes and
# the network. Keeps the client key; removes known_hosts (host keys die with the agents).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# docker rm -f first: quicker than systemd's clean shutdown with containers inside.
for a in "${AGENTS[@]}"; do
    read -r _ container _ _ <<<"$a"
    docker rm -f -v "$container" >/dev/null 2>&1 || true
done
CALICO_REAL_AUTHORIZED_KEYS="" "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 5
rm -f "$STATE/known_hosts" "$STATE/cluster.env"
