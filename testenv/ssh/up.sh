#!/usr/bin/env bash
# Brings up the SSH world (testenv/README.md, "The SSH world"): etcd, a bastion
# published on 127.0.0.1:22301, and hidden-1, reachable only through the
# bastion. Each sshd presents a host certificate signed by the world's CA.
# Idempotent; quick when the world already runs.
#
# Writes testenv/.state/ssh/:
#   id_ed25519(.pub)  client key authorized for root and core on both agents
#   ca, ca.pub        the host CA (ssh-keygen), which signs each agent's ed25519 host key
#   known_hosts       "@cert-authority * <ca.pub>" and nothing else
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
TIMEOUT=${CALICO_SSH_UP_TIMEOUT:-120}

LOG_PREFIX=ssh-up
# shellcheck source=../common.sh
. "$HERE/../common.sh"
need_tools
"$HERE/../build-images.sh"
client_key calico-rollout-ssh
CALICO_SSH_AUTHORIZED_KEYS="$(cat "$KEY.pub")"
export CALICO_SSH_AUTHORIZED_KEYS

CA="$STATE/ca"
if [ ! -f "$CA" ]; then
    log "generating host CA $CA"
    ssh-keygen -q -t ed25519 -N '' -C calico-rollout-ssh-ca -f "$CA"
fi
ca_fp="$(ssh-keygen -lf "$CA.pub" | awk '{print $2}')"

compose_up "$PROJECT"

deadline=$((SECONDS + TIMEOUT))
for a in "${AGENTS[@]}"; do
    read -r name container principals <<<"$a"
    until docker exec "$container" test -e /run/fake-agent-booted 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "$name: not booted after ${TIMEOUT}s"
        sleep 0.2
    done
    cert=/etc/ssh/ssh_host_ed25519_key-cert.pub
    # Signed again only when the CA or the host key is not the one signed.
    signed="$(docker exec "$container" sh -c "ssh-keygen -Lf $cert 2>/dev/null" |
        awk '/Signing CA:/ {print $4}' || true)"
    if [ "$signed" != "$ca_fp" ] || ! docker exec "$container" test -e /etc/ssh/sshd_config.d/host-cert.conf; then
        docker exec "$container" cat /etc/ssh/ssh_host_ed25519_key.pub >"$STATE/$name-host.pub"
        ssh-keygen -q -s "$CA" -h -I "$name" -n "$principals" -V -5m:+520w "$STATE/$name-host.pub"
        docker cp "$STATE/$name-host-cert.pub" "$container:$cert"
        docker exec "$container" sh -c "chmod 0644 $cert &&
            echo 'HostCertificate $cert' >/etc/ssh/sshd_config.d/host-cert.conf &&
            sshd -t && kill -HUP \$(cat /run/sshd.pid)"
        log "$name: host certificate for $principals, signed by $ca_fp"
    fi
done

printf '@cert-authority * %s\n' "$(awk '{print $1, $2}' "$CA.pub")" >"$STATE/known_hosts.tmp"
mv "$STATE/known_hosts.tmp" "$STATE/known_hosts"

# Readiness: the bastion directly, hidden-1 through it, each checked against
# the CA as OpenSSH would, and hidden-1 reaching etcd.
ssh_via() {
    local opts=(-i "$KEY" -o BatchMode=yes -o UserKnownHostsFile="$STATE/known_hosts"
        -o StrictHostKeyChecking=yes -o LogLevel=ERROR -o ConnectTimeout=3)
    ssh "${opts[@]}" -o ProxyCommand="ssh ${opts[*]} -p $BASTION_PORT -W %h:%p root@127.0.0.1" \
        "root@$1" true </dev/null >/dev/null 2>&1
}
until ssh_ok "$BASTION_PORT" root; do
    [ $SECONDS -lt $deadline ] || die "bastion: no ssh root@127.0.0.1:$BASTION_PORT after ${TIMEOUT}s"
    sleep 0.2
done
until ssh_via hidden-1; do
    [ $SECONDS -lt $deadline ] || die "hidden-1: no ssh through the bastion after ${TIMEOUT}s"
    sleep 0.2
done
until docker exec calico-rollout-ssh-hidden-1 curl -fsS --max-time 2 -o /dev/null http://etcd:2379/version 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "hidden-1: etcd (http://etcd:2379) not reachable after ${TIMEOUT}s"
    sleep 0.2
done
log "ssh world ready: bastion 127.0.0.1:$BASTION_PORT, hidden-1 through it (host certificates, CA $ca_fp)"
