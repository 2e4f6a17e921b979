#!/usr/bin/env bash
# Removes the benchmark cluster (containers and network). Keeps the client key
# and the pyinfra virtualenv; removes known_hosts and agents.tsv.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
if [ -f "$COMPOSE_FILE" ]; then
    "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 5
else
    # No compose file: remove whatever of the project is left.
    ids=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
    # shellcheck disable=SC2086 # one id a word
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    docker network rm "${PROJECT}_default" >/dev/null 2>&1 || true
fi
rm -f "$STATE/known_hosts" "$STATE/agents.tsv"
