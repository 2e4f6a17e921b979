# shellcheck shell=bash
# What the up scripts of every test world share (testenv/up.sh,
# testenv/real/up.sh, testenv/bench/up.sh; sourced after the world's own
# lib.sh, which sets STATE, COMPOSE and PROJECT): the tools they need, the
# client key, compose up, readiness over ssh and host keys read through a
# trusted channel.
#   LOG_PREFIX  what log lines start with (up, real-up, bench-up)

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# docker-compose must be there; the OpenSSH client is installed when missing.
need_tools() {
    command -v docker-compose >/dev/null || die "docker-compose not found"
    if ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
        log "installing the OpenSSH client (apt-get)"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >&2
    fi
}

# client_key COMMENT: the world's state folder (0700; fd 9 holds its lock, so
# one up script runs per world at a time) and the client key $KEY in it.
client_key() {
    mkdir -p "$STATE"
    chmod 0700 "$STATE"
    exec 9>"$STATE/.up.lock"
    flock 9
    KEY="$STATE/id_ed25519"
    if [ ! -f "$KEY" ]; then
        log "generating client key $KEY"
        ssh-keygen -q -t ed25519 -N '' -C "$1" -f "$KEY"
    fi
    chmod 0600 "$KEY"
}

# compose_up WHAT: docker-compose up, with the end of its log when it fails.
compose_up() {
    log "docker-compose up -d ($1)"
    "${COMPOSE[@]}" up -d --remove-orphans >"$STATE/compose-up.log" 2>&1 || {
        tail -30 "$STATE/compose-up.log" >&2
        die "docker-compose up failed (log: $STATE/compose-up.log)"
    }
}

# ssh_ok PORT USER [COMMAND]: whether a key login works and COMMAND succeeds.
# Readiness only, so the host key is not checked here: known_hosts is written
# from host_key_line.
ssh_ok() {
    ssh -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o ConnectTimeout=3 -p "$1" "$2@127.0.0.1" "${3:-true}" </dev/null >/dev/null 2>&1
}

# host_key_line CONTAINER PORT: the known_hosts line of an agent's ed25519 host
# key, read through docker exec rather than trusted on first use.
host_key_line() {
    local key
    key="$(docker exec "$1" cat /etc/ssh/ssh_host_ed25519_key.pub | awk '{print $1, $2}')"
    [ -n "$key" ] || return 1
    printf '[127.0.0.1]:%s %s\n' "$2" "$key"
}

# write_known_hosts FILE: every agent of the world's AGENTS ("name container
# port ...") as host_key_line gives it, written whole or not at all.
write_known_hosts() {
    local tmp="$1.tmp" a name container port
    : >"$tmp"
    for a in "${AGENTS[@]}"; do
        read -r name container port _ <<<"$a"
        host_key_line "$container" "$port" >>"$tmp" || die "$name: no ed25519 host key"
    done
    mv "$tmp" "$1"
}
