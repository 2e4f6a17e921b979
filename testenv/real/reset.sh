#!/usr/bin/env bash
# Puts both real agents back as they booted (real-agent-reset on each, in parallel).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
pids=()
for a in "${AGENTS[@]}"; do
    read -r _ container _ _ <<<"$a"
    docker exec "$container" real-agent-reset "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
