#!/usr/bin/env bash
# Brings up the etcd-over-TLS world (docker-compose.tls.yml, compose project
# calico-rollout-tls): certificates made here with openssl (once), two real
# etcd servers with --client-cert-auth, two fake agents with ssh on
# 127.0.0.1:22351-22352. Idempotent; waits until both agents accept the key
# and both members answer over TLS.
#
# Writes testenv/.state/tls/:
#   certs/ca.pem                    the CA of members and client
#   certs/etcd-lo(-key).pem         member certificate for etcd-lo and IP:127.0.0.1
#   certs/etcd-nolo(-key).pem       member certificate for etcd-nolo only
#   certs/client(-key).pem          the client certificate (key 0600)
#   certs/client2(-key).pem         a second client certificate, for rotations
#   id_ed25519(.pub), known_hosts   the ssh client key and the agents' host keys
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
STATE="$REPO_ROOT/testenv/.state/tls"
PROJECT=calico-rollout-tls
COMPOSE=(docker-compose -f "$REPO_ROOT/docker-compose.tls.yml" -p "$PROJECT")
AGENTS=("agent-1 $PROJECT-agent-1 22351" "agent-2 $PROJECT-agent-2 22352")
TIMEOUT=${CALICO_TLS_UP_TIMEOUT:-120}

LOG_PREFIX=tls-up
# shellcheck source=../common.sh
. "$REPO_ROOT/testenv/common.sh"
need_tools
if ! command -v openssl >/dev/null; then
    log "installing openssl (apt-get)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2
fi
if ! docker image inspect calico-rollout-test/agent:latest >/dev/null 2>&1; then
    "$REPO_ROOT/testenv/build-images.sh"
fi
client_key calico-rollout-tls

# cert NAME SUBJECT_ALT_NAME EXTENDED_KEY_USAGE: a key and a certificate
# signed by the world's CA, kept once made.
CERTS="$STATE/certs"
cert() {
    [ -s "$CERTS/$1.pem" ] && return 0
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$1" \
        -keyout "$CERTS/$1-key.pem" -out "$CERTS/$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" >"$CERTS/$1.ext"
    openssl x509 -req -in "$CERTS/$1.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca-key.pem" \
        -CAcreateserial -days 3650 -extfile "$CERTS/$1.ext" -out "$CERTS/$1.pem.tmp" 2>/dev/null
    chmod 0600 "$CERTS/$1-key.pem"
    rm -f "$CERTS/$1.csr" "$CERTS/$1.ext"
    mv "$CERTS/$1.pem.tmp" "$CERTS/$1.pem"
}
mkdir -p "$CERTS"
if [ ! -s "$CERTS/ca.pem" ]; then
    log "generating the CA and certificates in $CERTS (openssl)"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=calico-rollout-tls test CA" \
        -keyout "$CERTS/ca-key.pem" -out "$CERTS/ca.pem.tmp" 2>/dev/null
    chmod 0600 "$CERTS/ca-key.pem"
    mv "$CERTS/ca.pem.tmp" "$CERTS/ca.pem"
fi
cert etcd-lo "DNS:etcd-lo,IP:127.0.0.1" serverAuth
cert etcd-nolo "DNS:etcd-nolo" serverAuth
cert client "DNS:calico-rollout-client" clientAuth
cert client2 "DNS:calico-rollout-client" clientAuth
# etcd reads its key as root inside the container; the bind mount is read-only.
export CALICO_TLS_CERTS="$CERTS"
CALICO_TLS_AUTHORIZED_KEYS="$(cat "$KEY.pub")"
export CALICO_TLS_AUTHORIZED_KEYS

compose_up "$PROJECT"

deadline=$((SECONDS + TIMEOUT))
pending=("${AGENTS[@]}")
while :; do
    still=()
    for a in "${pending[@]}"; do
        read -r svc _ port <<<"$a"
        ssh_ok "$port" root 'test -e /run/fake-agent-booted' || still+=("$a")
    done
    pending=("${still[@]+"${still[@]}"}")
    [ ${#pending[@]} = 0 ] && break
    [ $SECONDS -lt $deadline ] || die "agents not ready after ${TIMEOUT}s: ${pending[*]}"
    sleep 0.5
done
# The members answer TLS from an agent with the client certificate (and
# refuse a client without one).
for m in etcd-lo etcd-nolo; do
    docker cp -q "$CERTS/ca.pem" "$PROJECT-agent-1:/tmp/ca.pem"
    until docker exec "$PROJECT-agent-1" sh -c "curl -fsS --max-time 2 --cacert /tmp/ca.pem -o /dev/null https://$m:2379/health 2>&1 | grep -q 'alert\|certificate required\|handshake'"; do
        [ $SECONDS -lt $deadline ] || die "$m does not answer TLS after ${TIMEOUT}s"
        sleep 0.5
    done
    log "$m: TLS on https://$m:2379, client certificate required"
done
docker exec "$PROJECT-agent-1" rm -f /tmp/ca.pem

write_known_hosts "$STATE/known_hosts"
log "TLS world ready: ssh -i $KEY -o UserKnownHostsFile=$STATE/known_hosts -p 22351 root@127.0.0.1"
