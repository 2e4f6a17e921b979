"""fake-agent-reset: bring the agent back to a pristine DC/OS agent (quietly, in well under 2 s).

`fake-agent-reset`        stop every fake unit and stray daemon, wipe what a rollout can
                          change, re-seed, start docker + the mesos unit, empty restarts.log
`fake-agent-reset --boot` what the container entrypoint runs: seed on first start only,
                          otherwise forget the runtime state of the previous run, then start
                          docker, the mesos unit and the units enabled since (like a boot)
"""

import glob
import os
import shutil
import signal
import sys
import time

from . import common
from .common import pid_alive, proc_cmdline, read_json

SHARE = "/usr/share/fake-agent"
SEED = SHARE + "/seed"
MANIFEST = SHARE + "/systemd-manifest.txt"
ROLE_FILE = "/etc/fake-agent/role"
SEEDED_MARK = "/var/lib/fake-agent/seeded"
BOOTED_MARK = "/run/fake-agent-booted"
CNI_CONF_DIR = "/opt/mesosphere/etc/dcos/network/cni"
CNI_PLUGIN_DIR = "/opt/mesosphere/active/cni"
SYSTEMD_DIRS = ["/etc/systemd/system", "/lib/systemd/system"]
WIPE = [
    common.SYSTEMD_STATE_DIR, common.SYSTEMD_LOG_DIR, common.DOCKER_LIB_DIR, common.DOCKER_RUN_DIR,
    "/var/lib/calico-rollout", "/opt/calico-rollout", "/etc/calico", "/opt/calico", "/var/lib/calico",
    "/var/run/calico",
    "/etc/docker", CNI_CONF_DIR, CNI_PLUGIN_DIR, "/etc/mesosphere/roles",
]
DAEMON_NAMES = {"dockerd", "mesos-agent", "etcd", "systemctl"}  # systemctl: clients and restart jobs


def role():
    r = os.environ.get("AGENT_ROLE")
    if not r:
        try:
            with open(ROLE_FILE) as f:
                r = f.read().strip()
        except OSError:
            r = ""
    r = r or "private"
    if r not in ("private", "public"):
        raise SystemExit("fake-agent-reset: AGENT_ROLE must be private or public, not %r" % r)
    return r


def mesos_unit(r):
    return "dcos-mesos-slave-public.service" if r == "public" else "dcos-mesos-slave.service"


def ancestors():
    res = set()
    pid = os.getpid()
    while pid > 1:
        res.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as f:
                data = f.read()
            pid = int(data[data.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return res


def is_daemon(cmd):
    for i, a in enumerate(cmd[:3]):
        base = os.path.basename(a)
        if base in DAEMON_NAMES:
            return True
        if base == "docker" and "run" in cmd[i + 1:]:
            return True
    return False


def kill_everything():
    """SIGKILL supervisors first (so nothing restarts), then their children and stray daemons."""
    mine = ancestors()
    groups = set()
    for p in glob.glob(os.path.join(common.SYSTEMD_STATE_DIR, "*.state.json")):
        st = read_json(p, {}) or {}
        for key in ("main_pid", "control_pid"):  # a hanging start's stuck process too
            if st.get(key):
                groups.add(st[key])
    supervisors, others = [], []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid == 1 or pid in mine:
            continue
        cmd = proc_cmdline(pid)
        if "__supervise" in cmd:
            supervisors.append(pid)
        elif is_daemon(cmd):
            others.append(pid)
    for pid in supervisors:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in others:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    victims = supervisors + others + list(groups)
    deadline = time.time() + 3
    while time.time() < deadline and any(pid_alive(p) for p in victims):
        time.sleep(0.01)


def remove_plugin_sockets():
    """The libnetwork plugin's sockets (left stale by a stopped plugin, gone at a reboot)."""
    for p in ("/run/docker/plugins/calico.sock", "/run/docker/plugins/calico-ipam.sock"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def wipe_dir_contents(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def prune_systemd_dirs():
    try:
        with open(MANIFEST) as f:
            keep = set(l.rstrip("\n") for l in f if l.strip())
    except OSError:
        keep = None
    for top in SYSTEMD_DIRS:
        if keep is None or not os.path.isdir(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top, topdown=False):
            for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                p = os.path.join(dirpath, n)
                if p not in keep:
                    os.unlink(p)
            for n in dirnames:
                p = os.path.join(dirpath, n)
                if p not in keep and os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)


def copy(src, dst, mode):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def seed(r):
    """Files of a pristine DC/OS agent of role r."""
    copy(SEED + "/daemon.json", "/etc/docker/daemon.json", 0o644)
    copy(SHARE + "/units/docker.service", "/lib/systemd/system/docker.service", 0o644)
    unit = mesos_unit(r)
    copy(SHARE + "/units/" + unit, "/etc/systemd/system/" + unit, 0o644)
    wants = "/etc/systemd/system/multi-user.target.wants"
    os.makedirs(wants, exist_ok=True)
    for name, target in (("docker.service", "/lib/systemd/system/docker.service"),
                         (unit, "/etc/systemd/system/" + unit)):
        link = os.path.join(wants, name)
        if not os.path.lexists(link):
            os.symlink(target, link)
    # DC/OS's ip-detect and the environment file that points Mesos at it
    copy(SEED + "/detect_ip", "/opt/mesosphere/bin/detect_ip", 0o755)
    copy(SEED + "/environment", "/opt/mesosphere/environment", 0o644)
    copy(SEED + "/cni/dcos.conf", CNI_CONF_DIR + "/dcos.conf", 0o644)
    os.chmod(CNI_CONF_DIR, 0o755)
    for p in sorted(glob.glob(SEED + "/cni-plugins/*")):
        copy(p, os.path.join(CNI_PLUGIN_DIR, os.path.basename(p)), 0o755)
    os.chmod(CNI_PLUGIN_DIR, 0o755)
    os.makedirs("/etc/mesosphere/roles", exist_ok=True)
    open("/etc/mesosphere/roles/" + ("slave_public" if r == "public" else "slave"), "w").close()
    os.makedirs(common.FAULT_DIR, exist_ok=True)
    os.makedirs(os.path.dirname(ROLE_FILE), exist_ok=True)
    with open(ROLE_FILE, "w") as f:
        f.write(r + "\n")
    os.makedirs(os.path.dirname(SEEDED_MARK), exist_ok=True)
    open(SEEDED_MARK, "w").close()


def start_units(r, extra_enabled):
    from . import systemd

    os.makedirs(common.SYSTEMD_STATE_DIR, exist_ok=True)
    mesos = mesos_unit(r)
    units = ["docker.service", mesos]
    if extra_enabled:
        keep = set()
        try:
            with open(MANIFEST) as f:
                keep = set(l.strip() for l in f)
        except OSError:
            pass
        for link in sorted(glob.glob("/etc/systemd/system/multi-user.target.wants/*.service")):
            name = os.path.basename(link)
            if name not in units and link not in keep:
                units.append(name)
    errors = []
    for u in units:
        try:
            systemd.do_start(u, no_block=(u != "docker.service"))
        except systemd.Fail as e:
            errors.append(e.msg)
    # wait (bounded) until the mesos agent reports ready, so callers see a steady agent
    deadline = time.time() + 5
    while time.time() < deadline and not systemd.read_state(mesos).get("ready"):
        if systemd.effective_state(mesos)["active"] == "failed":
            break
        time.sleep(0.01)
    return errors


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not common.is_root():
        sys.stderr.write("fake-agent-reset: must run as root\n")
        sys.exit(1)
    boot = "--boot" in argv
    r = role()
    if boot and os.path.exists(SEEDED_MARK):
        # container restart: runtime state of the previous run is gone with its processes
        for d in (common.SYSTEMD_STATE_DIR, common.DOCKER_RUN_DIR):
            shutil.rmtree(d, ignore_errors=True)
        for p in glob.glob("/run/lock/calico-rollout*"):
            wipe_dir_contents(p)
        remove_plugin_sockets()
        errors = start_units(r, extra_enabled=True)
    else:
        kill_everything()
        for p in WIPE:
            wipe_dir_contents(p)
        for p in glob.glob(os.path.join(common.FAULT_DIR, "*")) + glob.glob("/run/lock/calico-rollout*"):
            wipe_dir_contents(p)
        remove_plugin_sockets()
        prune_systemd_dirs()
        os.makedirs("/run/lock", exist_ok=True)
        os.chmod("/run/lock", 0o1777)
        seed(r)
        errors = start_units(r, extra_enabled=False)
        # the log starts empty: it shows only what happened after the reset
        with open(common.RESTARTS_LOG, "w"):
            pass
    if errors:
        sys.stderr.write("fake-agent-reset: %s\n" % "\n".join(errors))
        sys.exit(1)
    if not boot:
        # marks the moment the agent became pristine: `find -newer /run/fake-agent-booted`
        # lists what changed since
        open(BOOTED_MARK, "w").close()
