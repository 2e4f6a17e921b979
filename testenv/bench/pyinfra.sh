#!/usr/bin/env bash
# Runs the pinned pyinfra from testenv/bench/.venv (gitignored), creating the
# virtualenv from PyPI on first use:  testenv/bench/pyinfra.sh [pyinfra args...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION=3.10.0
VENV="$HERE/.venv"
if [ "$("$VENV/bin/pyinfra" --version 2>/dev/null)" != "pyinfra: v$VERSION" ]; then
    echo "[bench] installing pyinfra $VERSION into $VENV" >&2
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "pyinfra==$VERSION" >&2
fi
exec "$VENV/bin/pyinfra" "$@"
