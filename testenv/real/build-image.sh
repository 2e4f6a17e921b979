#!/usr/bin/env bash
# Builds the "real" agent profile's image (cached by content hash):
#   calico-rollout-test/real-base:<hash>   Debian bookworm rootfs with real systemd,
#                                          docker.io 20.10, sshd, etcd (debootstrap + docker import)
#   calico-rollout-test/real-agent:<hash>  the DC/OS agent layer (testenv/real/agent), also :latest
# Same scheme as testenv/build-images.sh: the base hash covers the package list and
# build_base()'s own text, the agent hash every file of the build context plus the
# base tag. It shares that script's .deb cache and its lock, so two builds never
# write the cache at once. A second run with unchanged inputs only checks the tags.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="$HERE/../.cache"
REPO=calico-rollout-test
mkdir -p "$CACHE_DIR"
exec 8>"$CACHE_DIR/build.lock"
flock 8

log() { printf '[real-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "docker engine not reachable"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
hash_text() { sha256sum | cut -c1-16; }

# Removes a build dir without ever descending into mounts a failed debootstrap left behind.
remove_build_dir() {
    local d="$1" m
    [ -d "$d" ] || return 0
    for m in $(awk -v d="$d/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$d"
}

# ---------------------------------------------------------------- base image
REAL_SUITE=bookworm
REAL_MIRROR=http://deb.debian.org/debian
REAL_VARIANT=minbase
# systemd as PID 1, the real dockerd 20.10 (docker.io), real sshd and sudo, etcd for
# the gateway (and the cluster store), python3 for the Mesos-agent stand-in,
# busybox-static for the tiny rootfs the calico images are imported from.
REAL_INCLUDE=systemd,systemd-sysv,dbus,openssh-server,docker.io,iptables,etcd-server,etcd-client,curl,ca-certificates,procps,iproute2,sudo,python3,busybox-static

build_base() {
    local tag="$1" work="$2"
    if [ "$(id -u)" != 0 ]; then die "debootstrap needs root"; fi
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap (apt-get)"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
    fi
    local rootfs="$work/rootfs"
    remove_build_dir "$rootfs"
    mkdir -p "$rootfs" "$CACHE_DIR/debs"
    log "debootstrap $REAL_SUITE ($REAL_VARIANT) with systemd and docker.io into $rootfs (2-3 minutes on a cold cache)"
    if ! debootstrap --variant="$REAL_VARIANT" --include="$REAL_INCLUDE" \
        --cache-dir="$CACHE_DIR/debs" "$REAL_SUITE" "$rootfs" "$REAL_MIRROR" \
        >"$work/debootstrap.log" 2>&1; then
        cp "$work/debootstrap.log" "$CACHE_DIR/real-debootstrap-failed.log"
        tail -n 30 "$work/debootstrap.log" >&2
        die "debootstrap failed (full log: $CACHE_DIR/real-debootstrap-failed.log)"
    fi
    log "trimming rootfs"
    # Host keys and the machine id are made per container at first boot.
    rm -f "$rootfs"/etc/ssh/ssh_host_*
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/var/log/journal/* \
        "$rootfs"/run/* "$rootfs"/tmp/*
    : >"$rootfs"/etc/machine-id
    for bin in /lib/systemd/systemd /usr/sbin/dockerd /usr/bin/docker /usr/bin/etcd /usr/sbin/sshd \
        /usr/bin/sudo /usr/bin/python3 /usr/bin/curl /bin/busybox; do
        [ -x "$rootfs$bin" ] || die "rootfs lacks $bin"
    done
    log "importing rootfs as $tag"
    tar --numeric-owner --one-file-system -C "$rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -m "debootstrap $REAL_SUITE $REAL_VARIANT + systemd, docker.io" - "$tag" >/dev/null
    remove_build_dir "$rootfs"
}

BASE_HASH="$( {
    printf '%s\n' "$REAL_SUITE" "$REAL_MIRROR" "$REAL_VARIANT" "$REAL_INCLUDE"
    declare -f build_base
} | hash_text )"
BASE_TAG="$REPO/real-base:$BASE_HASH"

# ---------------------------------------------------------------- agent image
AGENT_DIR="$HERE/agent"
AGENT_HASH="$( {
    echo "$BASE_TAG"
    (cd "$AGENT_DIR" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum)
} | hash_text )"
AGENT_TAG="$REPO/real-agent:$AGENT_HASH"

prune_old_tags() {
    local repo="$1" keep="$2" t
    for t in $(docker image ls "$repo" --format '{{.Repository}}:{{.Tag}}'); do
        case "$t" in
            "$keep" | "$repo:latest" | *"<none>"*) ;;
            *) if docker rmi "$t" >/dev/null 2>&1; then log "removed stale tag $t"; fi ;;
        esac
    done
}

if image_exists "$BASE_TAG"; then
    log "base image $BASE_TAG is up to date"
else
    start=$SECONDS
    work="$(mktemp -d "$CACHE_DIR/real-base-build.XXXXXX")"
    trap 'remove_build_dir "$work"' EXIT
    build_base "$BASE_TAG" "$work"
    remove_build_dir "$work"
    trap - EXIT
    log "base image $BASE_TAG built in $((SECONDS - start))s"
    prune_old_tags "$REPO/real-base" "$BASE_TAG"
fi

if image_exists "$AGENT_TAG"; then
    log "agent image $AGENT_TAG is up to date"
else
    start=$SECONDS
    log "building agent image $AGENT_TAG"
    if ! DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE_TAG" \
        -t "$AGENT_TAG" "$AGENT_DIR" >"$CACHE_DIR/real-agent-build.log" 2>&1; then
        cat "$CACHE_DIR/real-agent-build.log" >&2
        die "real agent image build failed"
    fi
    log "agent image $AGENT_TAG built in $((SECONDS - start))s"
fi
if [ "$(docker image inspect -f '{{.Id}}' "$REPO/real-agent:latest" 2>/dev/null)" != \
     "$(docker image inspect -f '{{.Id}}' "$AGENT_TAG")" ]; then
    docker tag "$AGENT_TAG" "$REPO/real-agent:latest"
    log "tagged $AGENT_TAG as $REPO/real-agent:latest"
fi
prune_old_tags "$REPO/real-agent" "$AGENT_TAG"
log "images ready: $BASE_TAG, $AGENT_TAG (= $REPO/real-agent:latest)"
