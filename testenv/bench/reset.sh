#!/usr/bin/env bash
# Resets every agent of the benchmark cluster to a pristine DC/OS agent, all in
# parallel (fake-agent-reset through docker exec). Fails if any reset failed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ -f "$STATE/agents.tsv" ] || { echo "no bench cluster: run testenv/bench/up.sh" >&2; exit 1; }
pids=()
while IFS=$'\t' read -r name _ _ container; do
    docker exec "$container" fake-agent-reset &
    pids+=("$!:$name")
done <"$STATE/agents.tsv"
rc=0
for p in "${pids[@]}"; do
    wait "${p%%:*}" || { echo "reset of ${p#*:} failed" >&2; rc=1; }
done
exit $rc
