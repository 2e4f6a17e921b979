#!/usr/bin/env bash
# Builds a test world's images, cached by content hash:
#   testenv/build-images.sh        the fake agents (testenv/agent):
#     calico-rollout-test/base:<hash>        Debian bookworm minbase rootfs (debootstrap + docker import)
#     calico-rollout-test/agent:<hash>       the fake DC/OS agent layer, also tagged :latest
#   testenv/build-images.sh real   the real agent profile (testenv/real/agent):
#     calico-rollout-test/real-base:<hash>   the same with real systemd, docker.io 20.10, sshd, etcd
#     calico-rollout-test/real-agent:<hash>  the DC/OS agent layer, also tagged :latest
# The base hash covers the profile's package list and build_base()'s own text;
# the agent hash every file of the build context plus the base tag. Both
# profiles share the .deb cache and one lock, so two builds never write the
# cache at once. A second run with unchanged inputs only checks the tags.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="$HERE/.cache"
REPO=calico-rollout-test
PROFILE=${1:-fake}

log() { printf '[build-images %s] %s\n' "$PROFILE" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# Everything that defines a base image lives in these variables and in
# build_base(); the tag hash is computed from their text.
BASE_SUITE=bookworm
BASE_MIRROR=http://deb.debian.org/debian
BASE_VARIANT=minbase
case $PROFILE in
fake)
    BASE_NAME=base
    AGENT_NAME=agent
    AGENT_DIR="$HERE/agent"
    BASE_INCLUDE=openssh-server,sudo,python3,curl,procps,iproute2,etcd-server,etcd-client,jq,ca-certificates,less,netcat-openbsd
    # Commands on the rootfs's PATH, or absolute paths.
    BASE_NEEDS="etcd sshd sudo python3 curl jq ip ps"
    ;;
real)
    BASE_NAME=real-base
    AGENT_NAME=real-agent
    AGENT_DIR="$HERE/real/agent"
    # systemd as PID 1, the real dockerd 20.10 (docker.io), real sshd and sudo,
    # etcd for the gateway (and the cluster store), python3 for the Mesos-agent
    # stand-in, busybox-static for the tiny rootfs the calico images are
    # imported from.
    BASE_INCLUDE=systemd,systemd-sysv,dbus,openssh-server,docker.io,iptables,etcd-server,etcd-client,curl,ca-certificates,procps,iproute2,sudo,python3,busybox-static
    BASE_NEEDS="/lib/systemd/systemd dockerd docker etcd sshd sudo python3 curl busybox"
    ;;
*) die "unknown profile '$PROFILE' (fake or real)" ;;
esac

mkdir -p "$CACHE_DIR"
# one build at a time (a second caller waits, then finds the images built)
exec 8>"$CACHE_DIR/build.lock"
flock 8

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

build_base() {
    local tag="$1" work="$2" need
    if [ "$(id -u)" != 0 ]; then die "debootstrap needs root"; fi
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap (apt-get)"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
    fi
    local rootfs="$work/rootfs"
    remove_build_dir "$rootfs"
    mkdir -p "$rootfs" "$CACHE_DIR/debs"
    log "debootstrap $BASE_SUITE ($BASE_VARIANT) into $rootfs (a few minutes on a cold cache)"
    if ! debootstrap --variant="$BASE_VARIANT" --include="$BASE_INCLUDE" \
        --cache-dir="$CACHE_DIR/debs" "$BASE_SUITE" "$rootfs" "$BASE_MIRROR" \
        >"$work/debootstrap.log" 2>&1; then
        cp "$work/debootstrap.log" "$CACHE_DIR/$BASE_NAME-debootstrap-failed.log"
        tail -n 30 "$work/debootstrap.log" >&2
        die "debootstrap failed (full log: $CACHE_DIR/$BASE_NAME-debootstrap-failed.log)"
    fi
    log "trimming rootfs"
    # Host keys and the machine id are made per container at first start,
    # never baked in.
    rm -f "$rootfs"/etc/ssh/ssh_host_*
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/var/log/journal/* \
        "$rootfs"/run/* "$rootfs"/tmp/*
    : >"$rootfs"/etc/machine-id
    for need in $BASE_NEEDS; do
        case $need in
        /*) [ -x "$rootfs$need" ] || die "rootfs lacks $need" ;;
        *) chroot "$rootfs" /bin/sh -c "command -v $need" >/dev/null 2>&1 ||
            [ -x "$rootfs/usr/sbin/$need" ] || die "rootfs lacks $need" ;;
        esac
    done
    log "importing rootfs as $tag"
    tar --numeric-owner --one-file-system -C "$rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -m "debootstrap $BASE_SUITE $BASE_VARIANT: $BASE_INCLUDE" - "$tag" >/dev/null
    remove_build_dir "$rootfs"
}

BASE_HASH="$( {
    printf '%s\n' "$BASE_SUITE" "$BASE_MIRROR" "$BASE_VARIANT" "$BASE_INCLUDE" "$BASE_NEEDS"
    declare -f build_base
} | hash_text)"
BASE_TAG="$REPO/$BASE_NAME:$BASE_HASH"

# Content hash of every file in the build context (modes are normalised by the
# Dockerfile, so only content and paths count), plus the base tag.
AGENT_HASH="$( {
    echo "$BASE_TAG"
    (cd "$AGENT_DIR" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum)
} | hash_text)"
AGENT_TAG="$REPO/$AGENT_NAME:$AGENT_HASH"

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
    work="$(mktemp -d "$CACHE_DIR/$BASE_NAME-build.XXXXXX")"
    trap 'remove_build_dir "$work"' EXIT
    build_base "$BASE_TAG" "$work"
    remove_build_dir "$work"
    trap - EXIT
    log "base image $BASE_TAG built in $((SECONDS - start))s"
    prune_old_tags "$REPO/$BASE_NAME" "$BASE_TAG"
fi

if image_exists "$AGENT_TAG"; then
    log "agent image $AGENT_TAG is up to date"
else
    start=$SECONDS
    log "building agent image $AGENT_TAG"
    if ! DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE_TAG" \
        -t "$AGENT_TAG" "$AGENT_DIR" >"$CACHE_DIR/$AGENT_NAME-build.log" 2>&1; then
        cat "$CACHE_DIR/$AGENT_NAME-build.log" >&2
        die "agent image build failed"
    fi
    log "agent image $AGENT_TAG built in $((SECONDS - start))s"
fi
# :latest always points at the image built from the current sources.
if [ "$(docker image inspect -f '{{.Id}}' "$REPO/$AGENT_NAME:latest" 2>/dev/null)" != \
    "$(docker image inspect -f '{{.Id}}' "$AGENT_TAG")" ]; then
    docker tag "$AGENT_TAG" "$REPO/$AGENT_NAME:latest"
    log "tagged $AGENT_TAG as $REPO/$AGENT_NAME:latest"
fi
prune_old_tags "$REPO/$AGENT_NAME" "$AGENT_TAG"
log "images ready: $BASE_TAG, $AGENT_TAG (= $REPO/$AGENT_NAME:latest)"
