# Shared settings of testenv/*.sh (sourced). One cluster instance is
#   CALICO_TEST_PROJECT     compose project and container-name prefix (default calico-rollout-test)
#   CALICO_TEST_PORT_OFFSET added to every published port (default 0: ssh 22101-22104, etcd 22379)
# The default instance keeps its state in testenv/.state; others in testenv/.state/instances/<project>.
TESTENV="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$TESTENV/.." && pwd)"
PROJECT="${CALICO_TEST_PROJECT:-calico-rollout-test}"
PORT_OFFSET="${CALICO_TEST_PORT_OFFSET:-0}"
if ! [[ $PROJECT =~ ^[a-z0-9][a-z0-9-]*$ ]] || ! [[ $PORT_OFFSET =~ ^[0-9]+$ ]]; then
    echo "CALICO_TEST_PROJECT must be [a-z0-9-]+ and CALICO_TEST_PORT_OFFSET a number" >&2
    exit 1
fi
if [ "$PROJECT" = calico-rollout-test ]; then
    STATE="$TESTENV/.state"
else
    STATE="$TESTENV/.state/instances/$PROJECT"
fi
export CALICO_TEST_PROJECT="$PROJECT"
export CALICO_TEST_PORT_AGENT_1=$((22101 + PORT_OFFSET))
export CALICO_TEST_PORT_AGENT_2=$((22102 + PORT_OFFSET))
export CALICO_TEST_PORT_AGENT_3=$((22103 + PORT_OFFSET))
export CALICO_TEST_PORT_PUB_1=$((22104 + PORT_OFFSET))
export CALICO_TEST_PORT_ETCD=$((22379 + PORT_OFFSET))
# service  container  ssh-port
AGENTS=(
    "agent-1 $PROJECT-agent-1 $CALICO_TEST_PORT_AGENT_1"
    "agent-2 $PROJECT-agent-2 $CALICO_TEST_PORT_AGENT_2"
    "agent-3 $PROJECT-agent-3 $CALICO_TEST_PORT_AGENT_3"
    "pub-1 $PROJECT-pub-1 $CALICO_TEST_PORT_PUB_1"
)
ETCD_CONTAINER="$PROJECT-etcd"
COMPOSE=(docker-compose -f "$REPO_ROOT/docker-compose.test.yml" -p "$PROJECT")
