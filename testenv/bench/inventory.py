# pyinfra inventory of the benchmark cluster (testenv/bench/up.sh), read from
# its agents.tsv. Groups: `private` and `public`, as the agents' Mesos role.
# BENCH_STATE names the cluster's state folder (default: crt-bench's).
import os
from pathlib import Path

_state = Path(
    os.environ.get("BENCH_STATE") or Path(__file__).resolve().parent / ".state" / "crt-bench"
)

private = []
public = []
for _line in (_state / "agents.tsv").read_text().splitlines():
    _name, _port, _role, _container = _line.split("\t")
    _host = (
        _name,
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": int(_port),
            "ssh_user": "root",
            "ssh_key": str(_state / "id_ed25519"),
            "ssh_known_hosts_file": str(_state / "known_hosts"),
            "ssh_strict_host_key_checking": "yes",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
        },
    )
    (public if _role == "public" else private).append(_host)
