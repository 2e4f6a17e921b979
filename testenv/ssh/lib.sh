# Shared settings of testenv/ssh/*.sh (sourced): the SSH world (bastion, hidden agent, CA).
# shellcheck shell=bash disable=SC2034
SSH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SSH_DIR/../.." && pwd)"
PROJECT=calico-rollout-ssh
STATE="$REPO_ROOT/testenv/.state/ssh"
BASTION_PORT=22301
# name  container  principals (the names the host is dialled by)
AGENTS=(
    "bastion calico-rollout-ssh-bastion 127.0.0.1,bastion"
    "hidden-1 calico-rollout-ssh-hidden-1 hidden-1"
)
COMPOSE=(docker-compose -f "$REPO_ROOT/docker-compose.ssh.yml" -p "$PROJECT")
