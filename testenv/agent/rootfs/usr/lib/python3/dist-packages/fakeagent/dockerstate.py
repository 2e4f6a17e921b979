"""State of fake docker containers that the fake derives instead of storing:
crash loops (fault switch /etc/fake-faults/crash-images) and image references.

The fake runs no container processes. A container started from a crash image
"exits 1 at once"; what docker's restart manager would do with it is computed
on every read from when the loop began, the restart policy and docker's
backoff (100 ms, doubling, at most 1 min; daemon/restartmanager):

    run 0 starts at t0, exits RUN_TIME later (exit 1); after exit m the
    restart m waits min(100ms * 2^(m-1), 1min), then runs and exits again.

While it waits, docker inspect shows State.Restarting=true, Running=true,
Status "restarting", ExitCode 1, FinishedAt = the exit, RestartCount = m
(counted when the restart is scheduled, like the daemon's monitor). A start
and its exit become visible together, so a crash-looping container never
reads as plainly running. The loop lives in c["_fake"]["loop"].
"""

import os
import re
import time

from . import common

RUN_TIME = 0.02
FIRST_DELAY = 0.1
MAX_DELAY = 60.0
LOOPS_DIR = common.DOCKER_LIB_DIR + "/loops"
NEVER = "0001-01-01T00:00:00Z"


# ------------------------------------------------------------------ references

def split_ref(ref):
    """(domain or "", path, tag or "", digest or "") of an image reference."""
    name, _, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    domain = ""
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, name = first, rest
    path, tag = name, ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = name.rsplit(":", 1)
    return domain, path, tag, digest


def familiar(ref):
    """The name docker prints for a reference (reference.FamiliarString of the
    tagged name): docker.io/ and library/ dropped, :latest added when untagged."""
    domain, path, tag, digest = split_ref(ref)
    if domain in ("docker.io", "index.docker.io"):
        domain = ""
    if not domain and path.startswith("library/") and path.count("/") == 1:
        path = path[len("library/"):]
    out = (domain + "/" if domain else "") + path
    if tag:
        out += ":" + tag
    elif not digest:
        out += ":latest"
    if digest:
        out += "@" + digest
    return out


def canonical(ref):
    """The fully qualified name (what `docker pull` prints last)."""
    domain, path, _, _ = split_ref(ref)
    fam = familiar(ref)
    if domain and domain not in ("docker.io", "index.docker.io"):
        return fam
    if "/" not in path or path.startswith("library/"):
        return "docker.io/library/" + fam
    return "docker.io/" + fam


def registry_host(ref):
    domain = split_ref(ref)[0]
    return "registry-1.docker.io" if domain in ("", "docker.io", "index.docker.io") else domain


def listed(fault, ref):
    """Whether ref is one of the references listed in a fault file (normalized)."""
    want = familiar(ref)
    return any(familiar(l) == want for l in common.fault_lines(fault))


def crashes(image):
    return listed("crash-images", image)


def nameserver():
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return ("[%s]:53" if ":" in parts[1] else "%s:53") % parts[1]
    except OSError:
        pass
    return "127.0.0.11:53"


def pull_error(ref):
    """The daemon's error for pulling ref (without "Error response from daemon: "), or None."""
    if common.fault_active("registry-down"):
        host = registry_host(ref)
        return 'Get "https://%s/v2/": dial tcp: lookup %s on %s: no such host' % (host, host, nameserver())
    if listed("registry-missing", ref):
        return "manifest for %s not found: manifest unknown: manifest unknown" % familiar(ref)
    return None


# -------------------------------------------------------------- crash loops

def start_loop(c, t0=None):
    """The container starts now from a crash image: the loop begins, RestartCount 0.
    Its first run is over at once (it began RUN_TIME ago), so it never reads as running."""
    policy = c["HostConfig"]["RestartPolicy"]
    c["_fake"]["loop"] = {"t0": (time.time() if t0 is None else t0) - RUN_TIME,
                          "segments": [[1, policy["Name"], policy.get("MaximumRetryCount", 0)]]}
    c["RestartCount"] = 0
    settle(c)


def end_loop(c):
    """Drop the loop record (after settle(), whose State stays)."""
    loop = c["_fake"].pop("loop", None)
    if loop:
        try:
            os.unlink(recover_path(c, loop))
        except FileNotFoundError:
            pass


def in_loop(c):
    return "loop" in c.get("_fake", {})


def restart_allowed(loop, m):
    """Whether docker's restart manager restarts after exit number m (exit code 1)."""
    seg = [s for s in loop["segments"] if s[0] <= m][-1]
    name, most = seg[1], seg[2]
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return not most or m <= most
    return False


def recover_path(c, loop):
    return os.path.join(LOOPS_DIR, "%s-%d.recover" % (c["Id"][:12], int(loop["t0"] * 1e6)))


def _read_recover(c, loop):
    try:
        with open(recover_path(c, loop)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _write_recover(c, loop, k):
    """The first decision wins (O_EXCL), so concurrent readers agree."""
    try:
        os.makedirs(LOOPS_DIR, exist_ok=True)
        fd = os.open(recover_path(c, loop), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    except OSError:
        return  # not root: the decision waits for a reader that can record it
    try:
        os.write(fd, b"%d\n" % k)
    finally:
        os.close(fd)


def loop_state(loop, now, recover=None):
    """(kind, started, finished, count): kind running | restarting | exited."""
    s, k, prev_exit = loop["t0"], 0, None
    prev = None
    while True:
        if recover is not None and k >= recover:
            return "running", s, prev_exit, k
        e = s + RUN_TIME
        if now < e:
            if prev is None:
                return "running", s, None, 0
            return prev
        m = k + 1
        if not restart_allowed(loop, m):
            return "exited", s, e, k
        nxt = e + min(FIRST_DELAY * 2 ** (m - 1), MAX_DELAY)
        prev = ("restarting", s, e, m)
        if now < nxt:
            return prev
        s, k, prev_exit = nxt, m, e


def settle(c, now=None):
    """Write the derived State/RestartCount of a crash-looping container into c (in memory)."""
    loop = c.get("_fake", {}).get("loop")
    if not loop:
        return c
    now = time.time() if now is None else now
    recover = _read_recover(c, loop)
    kind, started, finished, count = loop_state(loop, now, recover)
    if kind == "restarting" and recover is None and not crashes(c["Config"]["Image"]):
        # the image no longer crashes: the pending restart comes up and stays up
        _write_recover(c, loop, count)
        recover = _read_recover(c, loop)
        kind, started, finished, count = loop_state(loop, now, recover)
    st = c["State"]
    st.update(Paused=False, Pid=0, Error="", OOMKilled=False, Dead=False,
              StartedAt=common.rfc3339(started))
    if finished is not None:
        st["FinishedAt"] = common.rfc3339(finished)
    if kind == "running":
        st.update(Status="running", Running=True, Restarting=False, ExitCode=0)
    elif kind == "restarting":
        st.update(Status="restarting", Running=True, Restarting=True, ExitCode=1)
    else:
        st.update(Status="exited", Running=False, Restarting=False, ExitCode=1)
    c["RestartCount"] = count
    return c


def settled_kind(c):
    """running | restarting | exited | created of a settled container."""
    st = c["State"]
    if st.get("Restarting"):
        return "restarting"
    if st.get("Running"):
        return "running"
    return st.get("Status", "exited")


def valid_ts(text):
    return bool(text) and text != NEVER and re.match(r"\d{4}-", text) is not None
