"""Shared helpers of the fake DC/OS agent stand-ins (stdlib only)."""

import contextlib
import fcntl
import json
import os
import sys
import time

SYSTEMD_STATE_DIR = "/run/fake-systemd"
SYSTEMD_LOG_DIR = "/var/log/fake-systemd"
RESTARTS_LOG = SYSTEMD_LOG_DIR + "/restarts.log"
FAULT_DIR = "/etc/fake-faults"
DOCKER_RUN_DIR = "/run/fake-docker"
DOCKER_LIB_DIR = "/var/lib/fake-docker"
DOCKER_STATE_FILE = DOCKER_RUN_DIR + "/daemon-state.json"
DEFAULT_DOCKER_VERSION = "20.10.24"
DOCKER_BUILDS = {"20.10.24": "297e128"}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def err(msg):
    sys.stderr.write(msg if msg.endswith("\n") else msg + "\n")
    sys.stderr.flush()


def log_event(unit, event):
    """Append '<unix time.micro> <unit> <event>' to the restarts log (one write, O_APPEND)."""
    os.makedirs(SYSTEMD_LOG_DIR, exist_ok=True)
    line = "%.6f %s %s\n" % (time.time(), unit, event)
    fd = os.open(RESTARTS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def fault_file(name):
    return os.path.join(FAULT_DIR, name)


def fault_active(name):
    return os.path.exists(fault_file(name))


FAULT_LOCK = "/run/fake-faults.lock"


def consume_fault(names):
    """Whether a counted fault switch fires now (first existing of names).

    Empty (or non-numeric) content: fires every time. A number N: fires N more
    times; each firing decrements it and the file goes away at 0. Root only
    (the switches are root's files); returns the file name that fired or None.
    """
    if not is_root() or not any(os.path.exists(fault_file(n)) for n in names):
        return None
    with flocked(FAULT_LOCK):
        for name in names:
            path = fault_file(name)
            try:
                with open(path) as f:
                    text = f.read().strip()
            except OSError:
                continue
            if not text.isdigit():
                return name
            n = int(text)
            if n <= 1:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                if n == 0:
                    continue
            else:
                with open(path, "w") as f:
                    f.write("%d\n" % (n - 1))
            return name
    return None


def fault_lines(name):
    """Non-empty, non-comment lines of a fault file ([] when absent)."""
    try:
        with open(fault_file(name)) as f:
            return [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]
    except OSError:
        return []


def fault_number(name, default):
    """The number a fault file holds (float), default when empty or unreadable."""
    try:
        with open(fault_file(name)) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return default


def docker_version():
    """Version the fake docker reports: /etc/fake-faults/docker-version or the default."""
    try:
        with open(fault_file("docker-version")) as f:
            v = f.read().strip()
            if v:
                return v
    except OSError:
        pass
    return DEFAULT_DOCKER_VERSION


def docker_build(version):
    return DOCKER_BUILDS.get(version, "afacb8b")


def version_tuple(v):
    out = []
    for part in v.split("-")[0].split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        out.append(int(digits or 0))
    while len(out) < 3:
        out.append(0)
    return tuple(out)


def proc_state(pid):
    """Single-letter state of a process from /proc, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        return data[data.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return None


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def pid_alive(pid, needle=None):
    """True if pid runs (not a zombie) and, when needle is given, its cmdline contains it."""
    if not pid or pid <= 0:
        return False
    st = proc_state(pid)
    if st is None or st in "ZX":
        return False
    if needle is not None:
        return needle in "\0".join(proc_cmdline(pid))
    return True


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, obj, mode=0o644):
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@contextlib.contextmanager
def flocked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a"):
        pass


def notify_ready():
    """Signal readiness the fake-systemd way (touch $NOTIFY_FILE), if supervised."""
    path = os.environ.get("NOTIFY_FILE")
    if path:
        touch(path)


def is_root():
    return os.geteuid() == 0


def in_group(name):
    import grp

    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        return False
    return gid in os.getgroups() or os.getegid() == gid


def rfc3339(ts=None):
    ts = time.time() if ts is None else ts
    frac = ("%.9f" % (ts % 1))[2:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + "." + frac + "Z"


def unit_active_state(unit):
    """ActiveState of a fake-systemd unit as seen in its state file (no validation)."""
    if not unit.endswith(".service"):
        unit += ".service"
    st = read_json(os.path.join(SYSTEMD_STATE_DIR, unit + ".state.json"), {}) or {}
    sup = st.get("supervisor_pid")
    if st.get("active") in ("active", "activating", "deactivating") and not pid_alive(
        sup, "__supervise\0" + unit
    ):
        return "failed" if st.get("result", "success") != "success" else "inactive"
    return st.get("active", "inactive")
