"""Fake systemd for the test agents: the `systemctl` CLI and the per-unit supervisor.

Unit definitions are snapshotted when first used and refreshed by
`daemon-reload` (and enable/disable), like systemd's loaded units: a unit file
edited without a daemon-reload keeps running with the old definition and is
reported by `show -p NeedDaemonReload`.

State lives in /run/fake-systemd/<unit>.state.json, every start/stop event is
appended to /var/log/fake-systemd/restarts.log, process output goes to
/var/log/fake-systemd/<unit>.log (what `journalctl -u` and `status` show).
"""

import glob
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from . import common
from .common import err, log_event, pid_alive, read_json, write_json, flocked

STATE_DIR = common.SYSTEMD_STATE_DIR
LOG_DIR = common.SYSTEMD_LOG_DIR
SNAP_DIR = STATE_DIR + "/units"
UNIT_DIRS = ["/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
DROPIN_DIRS = ["/lib/systemd/system", "/usr/lib/systemd/system", "/run/systemd/system", "/etc/systemd/system"]
SYSTEMD_VERSION = "252 (252.22-1~deb12u1)"
DEFAULT_TIMEOUT_START = 90.0  # DefaultTimeoutStartSec
DEFAULT_TIMEOUT_STOP = 10.0  # the fake never waits longer for a stop (systemd's default is 90 s)
DEFAULT_RESTART_SEC = 0.1
INACTIVE_STATES = ("inactive", "failed")
ACTIVE_STATES = ("active", "reloading")

MODIFYING_VERBS = {
    "start", "stop", "restart", "try-restart", "reload-or-restart", "reload", "enable",
    "disable", "daemon-reload", "reset-failed", "kill", "mask", "unmask",
}


class Fail(Exception):
    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.msg = msg
        self.code = code


# --------------------------------------------------------------------- parsing

def unit_name(name):
    name = name.strip()
    if "." not in name.rsplit("/", 1)[-1] or not name.rsplit(".", 1)[-1] in (
        "service", "socket", "target", "timer", "mount", "path", "slice", "scope",
    ):
        name += ".service"
    return name


def parse_timespan(text, default):
    text = (text or "").strip()
    if not text:
        return default
    if text in ("infinity", "0"):
        return None if text == "infinity" else 0.0
    units = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0,
             "second": 1.0, "seconds": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
             "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0}
    total = 0.0
    for part in text.replace(" ", "\0").split("\0"):
        if not part:
            continue
        num = ""
        i = 0
        while i < len(part) and (part[i].isdigit() or part[i] == "."):
            num += part[i]
            i += 1
        suffix = part[i:] or "s"
        if not num or suffix not in units:
            raise ValueError("invalid time span %r" % text)
        total += float(num) * units[suffix]
    return total


def parse_unit_text(files):
    """files: list of (path, text). Returns ordered {section: [(key, value)]}."""
    sections = {}
    for path, text in files:
        section = None
        pending = ""
        for raw in text.splitlines():
            line = raw.rstrip()
            if pending:
                line = pending + " " + line.lstrip()
                pending = ""
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                section = stripped[1:-1]
                sections.setdefault(section, [])
                continue
            if "=" not in stripped or section is None:
                continue
            k, v = stripped.split("=", 1)
            sections.setdefault(section, []).append((k.strip(), v.strip()))
    return sections


class Unit:
    """A loaded unit definition."""

    LIST_KEYS = {"ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop", "ExecStopPost",
                 "Environment", "EnvironmentFile", "WantedBy", "RequiredBy"}

    def __init__(self, name, files, masked=False):
        self.name = name
        self.files = files  # [(path, text)] fragment first, then drop-ins
        self.masked = masked
        self.fragment = files[0][0] if files else ""
        self.dropins = [p for p, _ in files[1:]]
        self.sections = parse_unit_text(files) if not masked else {}
        self.errors = []
        self._derive()

    def _values(self, section, key):
        vals = []
        for k, v in self.sections.get(section, []):
            if k == key:
                if key in self.LIST_KEYS and v == "":
                    vals = []
                else:
                    vals.append(v)
        return vals

    def get(self, section, key, default=None):
        vals = self._values(section, key)
        return vals[-1] if vals else default

    def _derive(self):
        S = "Service"
        self.description = self.get("Unit", "Description", self.name)
        self.type = self.get(S, "Type", "simple")
        if self.type not in ("simple", "exec", "notify", "oneshot"):
            self.errors.append("unsupported Type=%s (fake systemd knows simple, exec, notify, oneshot)" % self.type)
        self.restart = self.get(S, "Restart", "no")
        if self.restart not in ("no", "always", "on-failure", "on-success", "on-abnormal", "on-abort", "on-watchdog"):
            self.errors.append("invalid Restart=%s" % self.restart)
        try:
            self.restart_sec = parse_timespan(self.get(S, "RestartSec"), DEFAULT_RESTART_SEC) or 0.0
            t = self.get(S, "TimeoutStartSec", self.get(S, "TimeoutSec"))
            self.timeout_start = parse_timespan(t, DEFAULT_TIMEOUT_START)
            if self.timeout_start == 0:
                self.timeout_start = None
            t = self.get(S, "TimeoutStopSec", self.get(S, "TimeoutSec"))
            self.timeout_stop_set = parse_timespan(t, 90.0) or None  # 0 = infinity, as shown
            self.timeout_stop = parse_timespan(t, DEFAULT_TIMEOUT_STOP)
            if not self.timeout_stop or self.timeout_stop > DEFAULT_TIMEOUT_STOP:
                self.timeout_stop = DEFAULT_TIMEOUT_STOP
            burst = self.get("Unit", "StartLimitBurst", self.get(S, "StartLimitBurst"))
            self.start_limit_burst = int(burst) if burst else None
            self.start_limit_burst_shown = int(burst) if burst else 5
            interval = self.get("Unit", "StartLimitIntervalSec",
                                self.get("Unit", "StartLimitInterval",
                                         self.get(S, "StartLimitIntervalSec", self.get(S, "StartLimitInterval"))))
            self.start_limit_interval = parse_timespan(interval, 10.0)
        except ValueError as e:
            self.errors.append(str(e))
            self.restart_sec, self.timeout_start, self.timeout_stop = 0.1, DEFAULT_TIMEOUT_START, 10.0
            self.timeout_stop_set = 90.0
            self.start_limit_burst, self.start_limit_interval = None, 10.0
            self.start_limit_burst_shown = 5
        if not self.start_limit_interval:
            self.start_limit_burst = None  # StartLimitInterval=0 disables rate limiting
        self.exec_start = self._values(S, "ExecStart")
        self.exec_start_pre = self._values(S, "ExecStartPre")
        self.exec_start_post = self._values(S, "ExecStartPost")
        self.exec_stop = self._values(S, "ExecStop")
        self.exec_stop_post = self._values(S, "ExecStopPost")
        self.remain_after_exit = self.get(S, "RemainAfterExit", "no") in ("yes", "true", "1", "on")
        self.ready_file = self.get(S, "X-FakeSystemd-ReadyFile", "no") in ("yes", "true", "1", "on")
        self.working_dir = self.get(S, "WorkingDirectory")
        self.environment = {}
        for v in self._values(S, "Environment"):
            try:
                for item in shlex.split(v):
                    if "=" in item:
                        k, val = item.split("=", 1)
                        self.environment[k] = val
            except ValueError as e:
                self.errors.append("invalid Environment=%s: %s" % (v, e))
        self.environment_files = self._values(S, "EnvironmentFile")
        self.wanted_by = []
        for v in self._values("Install", "WantedBy") + self._values("Install", "RequiredBy"):
            self.wanted_by.extend(v.split())
        if not self.masked and self.name.endswith(".service"):
            if self.type != "oneshot" and len(self.exec_start) != 1:
                self.errors.append(
                    "Service has %s ExecStart= setting, which is only allowed for Type=oneshot services. Refusing."
                    % ("no" if not self.exec_start else "more than one"))
            if self.type == "oneshot" and not self.exec_start and not self.exec_stop:
                self.errors.append("Service has no ExecStart= and no ExecStop= setting. Refusing.")

    @property
    def load_state(self):
        if self.masked:
            return "masked"
        return "bad-setting" if self.errors else "loaded"

    def content_hash(self):
        h = hashlib.sha256()
        for p, t in self.files:
            h.update(p.encode() + b"\0" + t.encode() + b"\0")
        return h.hexdigest()


def disk_files(name):
    """Current on-disk files of a unit: ([(path, text)], masked)."""
    fragment = None
    for d in UNIT_DIRS:
        p = os.path.join(d, name)
        if os.path.lexists(p):
            fragment = p
            break
    if fragment is None:
        return [], False
    if os.path.realpath(fragment) == "/dev/null":
        return [(fragment, "")], True
    try:
        with open(fragment) as f:
            files = [(fragment, f.read())]
    except OSError:
        return [], False
    dropins = {}
    for d in DROPIN_DIRS:
        for p in glob.glob(os.path.join(d, name + ".d", "*.conf")):
            dropins[os.path.basename(p)] = p  # later dirs (/etc) override
    for base in sorted(dropins):
        try:
            with open(dropins[base]) as f:
                files.append((dropins[base], f.read()))
        except OSError:
            pass
    return files, False


def snap_path(name):
    return os.path.join(SNAP_DIR, name + ".json")


def write_snapshot(name, files, masked):
    write_json(snap_path(name), {"files": files, "masked": masked, "loaded_at": time.time()})


def load_unit(name, create=True):
    """The loaded definition of a unit (snapshot), loading it from disk on first use."""
    snap = read_json(snap_path(name))
    if snap and snap.get("files"):
        return Unit(name, [tuple(x) for x in snap["files"]], snap.get("masked", False))
    files, masked = disk_files(name)
    if not files:
        return None
    if create:
        write_snapshot(name, files, masked)
    return Unit(name, files, masked)


def need_daemon_reload(name):
    snap = read_json(snap_path(name))
    if not snap:
        return False
    files, masked = disk_files(name)
    return [list(x) for x in files] != snap.get("files") or masked != snap.get("masked", False)


def daemon_reload():
    os.makedirs(SNAP_DIR, exist_ok=True)
    for p in glob.glob(os.path.join(SNAP_DIR, "*.json")):
        name = os.path.basename(p)[:-5]
        files, masked = disk_files(name)
        if files:
            write_snapshot(name, files, masked)
        elif not supervisor_alive(name):
            os.unlink(p)


# ----------------------------------------------------------------------- state

def state_path(name):
    return os.path.join(STATE_DIR, name + ".state.json")


def lock_path(name):
    return os.path.join(STATE_DIR, name + ".lock")


def job_lock_path(name):
    return os.path.join(STATE_DIR, name + ".job.lock")


def ready_path(name):
    short = name[: -len(".service")] if name.endswith(".service") else name
    return os.path.join(STATE_DIR, short + ".ready")


def unit_log_path(name):
    short = name[: -len(".service")] if name.endswith(".service") else name
    return os.path.join(LOG_DIR, short + ".log")


def read_state(name):
    st = read_json(state_path(name), None) or {}
    st.setdefault("active", "inactive")
    st.setdefault("sub", "dead")
    st.setdefault("result", "success")
    st.setdefault("main_pid", 0)
    st.setdefault("supervisor_pid", 0)
    st.setdefault("n_restarts", 0)
    st.setdefault("start_times", [])
    st.setdefault("ready", False)
    return st


def apply_changes(st, changes):
    """st.update(changes); a change of ActiveState/SubState stamps systemd's transition
    timestamps (realtime and CLOCK_MONOTONIC): StateChange, InactiveExit, ActiveEnter,
    ActiveExit, InactiveEnter. `_via` is an ActiveState passed through on the way (an
    automatic restart goes running -> failed/dead -> auto-restart, as in systemd 252)."""
    changes = dict(changes)
    via = changes.pop("_via", None)
    changes.pop("state_change", None)
    if "active" in changes or "sub" in changes:
        now, mono = time.time(), time.monotonic()
        ts = st.setdefault("ts", {})
        old = st.get("active", "inactive")
        for new in ([via] if via else []) + [changes.get("active", old)]:
            if old in INACTIVE_STATES and new not in INACTIVE_STATES:
                ts["inactive_exit"] = [now, mono]
            if old not in ACTIVE_STATES and new in ACTIVE_STATES:
                ts["active_enter"] = [now, mono]
            if old in ACTIVE_STATES and new not in ACTIVE_STATES:
                ts["active_exit"] = [now, mono]
            if old not in INACTIVE_STATES and new in INACTIVE_STATES:
                ts["inactive_enter"] = [now, mono]
            old = new
        ts["state_change"] = [now, mono]
        st["state_change"] = now
    st.update(changes)
    return st


def update_state(name, **changes):
    with flocked(lock_path(name)):
        st = read_state(name)
        apply_changes(st, changes)
        write_json(state_path(name), st)
        return st


def job_result(st, sup):
    return (st.get("jobs") or {}).get(str(sup))


def set_job_result(st, sup, result):
    """Result of the start job that spawned supervisor sup (first one wins)."""
    jobs = st.setdefault("jobs", {})
    if str(sup) in jobs:
        return False
    jobs[str(sup)] = result
    while len(jobs) > 8:
        jobs.pop(next(iter(jobs)))
    return True


def supervisor_needle(name):
    return "__supervise\0" + name


def supervisor_alive(name, st=None):
    st = st if st is not None else read_state(name)
    return pid_alive(st.get("supervisor_pid"), supervisor_needle(name))


def effective_state(name):
    """State with a dead supervisor (killed, container restarted) folded in."""
    st = read_state(name)
    if (st["active"] in ("active", "activating", "deactivating") and st["sub"] != "exited"
            and not supervisor_alive(name, st)):
        st["active"] = "failed" if st["result"] != "success" else "inactive"
        st["sub"] = "failed" if st["active"] == "failed" else "dead"
        st["main_pid"] = 0
    return st


def unit_journal(name, text):
    os.makedirs(LOG_DIR, exist_ok=True)
    stamp = time.strftime("%b %d %H:%M:%S")
    line = "%s %s systemd[1]: %s\n" % (stamp, socket.gethostname(), text)
    fd = os.open(unit_log_path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def short(name):
    return name[: -len(".service")] if name.endswith(".service") else name


# ------------------------------------------------------------------ supervisor

def expand_command(cmdline, env):
    """Split an Exec*= line like systemd: prefixes, $VAR (word split) and ${VAR}."""
    ignore = False
    while cmdline and cmdline[0] in "-@+!:":
        if cmdline[0] == "-":
            ignore = True
        cmdline = cmdline[1:]
    words = shlex.split(cmdline)
    out = []
    for w in words:
        if w.startswith("$") and not w.startswith("${") and w[1:].replace("_", "a").isalnum():
            out.extend(env.get(w[1:], "").split())
            continue
        res = ""
        i = 0
        while i < len(w):
            if w.startswith("${", i) and "}" in w[i:]:
                j = w.index("}", i)
                res += env.get(w[i + 2:j], "")
                i = j + 1
            else:
                res += w[i]
                i += 1
        out.append(res)
    if out and not out[0].startswith("/"):
        for d in common.SYSTEM_PATH.split(":"):
            if os.access(os.path.join(d, out[0]), os.X_OK):
                out[0] = os.path.join(d, out[0])
                break
    return out, ignore


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def unit_env(unit):
    env = {
        "PATH": common.SYSTEM_PATH,
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "INVOCATION_ID": os.urandom(16).hex(),
        "NOTIFY_FILE": ready_path(unit.name),
        "FAKE_SYSTEMD_UNIT": unit.name,
    }
    for ef in unit.environment_files:
        optional = ef.startswith("-")
        path = ef.lstrip("-")
        try:
            env.update(read_env_file(path))
        except OSError as e:
            if not optional:
                raise Fail("Failed to load environment files: %s" % e)
    env.update(unit.environment)
    return env


def _child_setup():
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(s, signal.SIG_DFL)
    os.setpgid(0, 0)


class Supervisor:
    SIGS = [signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP]

    def __init__(self, name):
        self.name = name
        self.stop_requested = False
        self.child = None
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGS)
        self.log_fd = None

    def journal(self, text):
        unit_journal(self.name, text)

    def out_fd(self):
        os.makedirs(LOG_DIR, exist_ok=True)
        return os.open(unit_log_path(self.name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def wait_event(self, timeout):
        """Sleep until a signal or timeout; note stop requests."""
        try:
            info = signal.sigtimedwait(self.SIGS, max(timeout, 0.001))
        except InterruptedError:
            info = None
        if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.stop_requested = True
        return info

    def spawn(self, argv, env, fd):
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                close_fds=True, preexec_fn=_child_setup,
                                cwd=self.unit.working_dir or "/")

    def end_process(self, p, first=signal.SIGTERM):
        """Signal a process group, SIGKILL it after the stop timeout; returns its exit code."""
        try:
            os.killpg(p.pid, first)
        except ProcessLookupError:
            pass
        deadline = time.time() + (self.unit.timeout_stop or DEFAULT_TIMEOUT_STOP)
        while p.poll() is None:
            if time.time() > deadline:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.time() + 5
            self.wait_event(0.05)
        return p.returncode if p.returncode >= 0 else 128 - p.returncode

    def control_exited(self, code):
        if code >= 128:
            sig = code - 128
            self.journal("%s: Control process exited, code=killed, status=%d/%s" % (self.name, sig, signame(sig)))
        else:
            self.journal("%s: Control process exited, code=exited, status=%d/FAILURE" % (self.name, code))

    def run_aux(self, lines, env, what, started=None):
        """Run ExecStartPre/Post/Stop lines to completion. Returns "success", "exit-code",
        "timeout" (start phases past TimeoutStartSec) or "stopped" (a stop job came)."""
        for line in lines:
            argv, ignore = expand_command(line, env)
            fd = self.out_fd()
            try:
                p = self.spawn(argv, env, fd)
            except OSError as e:
                self.journal("%s: Failed to execute %s: %s" % (self.name, what, e))
                p, code = None, 203
            finally:
                os.close(fd)
            if p is not None:
                update_state(self.name, control_pid=p.pid)
                timeout = self.unit.timeout_start if what in ("ExecStartPre", "ExecStartPost") else None
                while p.poll() is None:
                    stopping = self.stop_requested and what not in ("ExecStop", "ExecStopPost")
                    late = timeout is not None and started is not None and time.time() - started > timeout
                    if stopping or late:
                        if late:
                            self.journal("%s: %s operation timed out. Terminating." % (
                                self.name, "start-pre" if what == "ExecStartPre" else "start-post"))
                        self.control_exited(self.end_process(p))
                        update_state(self.name, control_pid=0)
                        return "stopped" if stopping else "timeout"
                    self.wait_event(0.2)
                code = p.returncode if p.returncode >= 0 else 128 - p.returncode
                update_state(self.name, control_pid=0)
            if code != 0 and not ignore:
                self.control_exited(code)
                return "exit-code"
        return "success"

    def hang(self, fault):
        """The injected stuck start phase: a control process that never exits. The start
        job stays pending whatever TimeoutStartSec says; only a stop (or restart) ends it."""
        msg = "%s: start-pre hangs: injected fault (%s)" % (self.name, common.fault_file(fault))
        fd = self.out_fd()
        try:
            p = self.spawn(["/bin/sh", "-c", 'echo "$0"; exec sleep infinity', msg], {"PATH": common.SYSTEM_PATH}, fd)
        finally:
            os.close(fd)
        update_state(self.name, control_pid=p.pid)
        while not self.stop_requested and p.poll() is None:
            self.wait_event(1.0)
        code = self.end_process(p)
        self.control_exited(code)
        update_state(self.name, control_pid=0)
        return code

    def kill_child(self, sig):
        if self.child is not None and self.child.poll() is None:
            try:
                os.killpg(self.child.pid, sig)
            except ProcessLookupError:
                pass

    def job(self, result):
        """Record the outcome of the start job that spawned this supervisor (first call wins)."""
        with flocked(lock_path(self.name)):
            st = read_state(self.name)
            if set_job_result(st, os.getpid(), result):
                write_json(state_path(self.name), st)

    def finish(self, active, result, main_code=None, event=None):
        self.job("done" if result == "success" and not self.stop_requested else
                 ("canceled" if self.stop_requested else result))
        if event:
            log_event(short(self.name), event)
        changes = dict(active=active, sub="failed" if active == "failed" else "dead", result=result, main_pid=0,
                       control_pid=0, supervisor_pid=0, ready=False)
        if main_code is not None:
            changes.update(exec_main_status=main_code)
        update_state(self.name, **changes)

    def stop_child(self, env):
        if self.unit.exec_stop and self.child is not None and self.child.poll() is None:
            env = dict(env, MAINPID=str(self.child.pid))
            self.run_aux(self.unit.exec_stop, env, "ExecStop")
        self.kill_child(signal.SIGTERM)
        deadline = time.time() + (self.unit.timeout_stop or DEFAULT_TIMEOUT_STOP)
        while self.child is not None and self.child.poll() is None:
            if time.time() > deadline:
                self.journal("%s: State 'stop-sigterm' timed out. Killing." % self.name)
                self.kill_child(signal.SIGKILL)
                deadline = time.time() + 5
            self.wait_event(0.1)

    def crash_after(self, cands):
        """Seconds after ready at which the crash-after fault kills the main process, or None."""
        for cand in cands:
            if common.fault_active(cand):
                return max(common.fault_number(cand, 1.0), 0.0), cand
        return None, None

    def run(self):
        name = self.name
        short_name = short(name)
        first = True
        while True:
            self.unit = load_unit(name)
            if self.unit is None:
                self.finish("failed", "resources", event="failed")
                return
            unit = self.unit
            if not first:
                # the restart job after RestartSec: it counts (NRestarts first, as systemd
                # counts the job it enqueues) and then meets the start rate limit
                with flocked(lock_path(name)):
                    st = read_state(name)
                    st["n_restarts"] = st.get("n_restarts", 0) + 1
                    hit, times = start_limit_check(unit, st)
                    if not hit:
                        st["start_times"] = times
                    write_json(state_path(name), st)
                self.journal("%s: Scheduled restart job, restart counter is at %d." % (name, st["n_restarts"]))
                if hit:
                    self.journal("%s: Start request repeated too quickly." % name)
                    self.journal("%s: Failed with result 'start-limit-hit'." % name)
                    self.journal("Failed to start %s." % unit.description)
                    self.finish("failed", "start-limit-hit", event="failed")
                    return
                if self.stop_requested:
                    self.finish("inactive", "success")
                    return
            try:
                env = unit_env(unit)
            except Fail as e:
                self.journal("%s: %s" % (name, e.msg))
                self.finish("failed", "resources", event="failed")
                return
            try:
                os.unlink(ready_path(name))
            except FileNotFoundError:
                pass
            update_state(name, active="activating", sub="start-pre", ready=False, main_pid=0,
                         invocation_id=env["INVOCATION_ID"], _via=None if first else "inactive")
            started = time.time()
            first = False
            hang = common.consume_fault(["hang-restart-" + short_name, "hang-restart-" + name])
            if hang:
                self.journal("Starting %s..." % unit.description)
                code = self.hang(hang)
                if self.stop_requested:
                    self.journal("Stopped %s." % unit.description)
                    self.finish("inactive", "success")
                else:  # the stuck process was killed by someone else
                    result = "signal" if code >= 128 else "exit-code"
                    self.journal("%s: Failed with result '%s'." % (name, result))
                    self.journal("Failed to start %s." % unit.description)
                    self.finish("failed", result, event="failed")
                return
            pre = self.run_aux(unit.exec_start_pre, env, "ExecStartPre", started)
            if pre == "stopped" or self.stop_requested:
                self.journal("Stopped %s." % unit.description)
                self.finish("inactive", "success")
                return
            if pre != "success":
                self.journal("%s: Failed with result '%s'." % (name, pre))
                self.journal("Failed to start %s." % unit.description)
                self.finish("failed", pre, event="failed")
                return

            # main process
            fault = None
            for cand in ("fail-restart-" + short_name, "fail-restart-" + name):
                if common.fault_active(cand):
                    fault = cand
            if unit.type == "oneshot" and not unit.exec_start:
                argv = None
            elif fault:
                argv = [sys.executable, "-c",
                        "import sys; sys.stderr.write(%r); sys.exit(1)"
                        % ("%s: injected fault (%s)\n" % (short_name, common.fault_file(fault)))]
            else:
                argv, _ = expand_command(unit.exec_start[0], env)
            fd = self.out_fd()
            code = None
            try:
                self.child = self.spawn(argv, env, fd) if argv else None
            except OSError as e:
                self.journal("%s: Failed to execute %s: %s" % (name, argv[0], e.strerror))
                self.child = None
                code = 203
            finally:
                os.close(fd)
            now = time.time()
            notify = unit.type == "notify"
            waits_ready = notify or unit.ready_file
            activating = notify or unit.type == "oneshot"
            if self.child is not None:
                log_event(short_name, "start")
                self.journal("Started %s (pid %d)." % (unit.description, self.child.pid)
                             if not notify else "Starting %s..." % unit.description)
                update_state(name, main_pid=self.child.pid, last_main_pid=self.child.pid, started_at=now,
                             exec_main_start=[now, time.monotonic()],
                             exec_main_exit=None, exec_main_code=0, exec_main_status=0,
                             active="activating" if activating else "active",
                             sub="start" if activating else "running", exec_start=argv)
                if not waits_ready and unit.type != "oneshot":
                    log_event(short_name, "ready")
                    update_state(name, ready=True)
                if unit.type != "notify" and unit.type != "oneshot":
                    self.job("done")
            ready = not waits_ready
            ready_at = now if ready else None
            timed_out = crashed = False
            crash_cands = ("crash-after-" + short_name, "crash-after-" + name)
            while self.child is not None and self.child.poll() is None:
                if self.stop_requested:
                    self.stop_child(env)
                    break
                if not ready and os.path.exists(ready_path(name)):
                    ready = True
                    ready_at = time.time()
                    log_event(short_name, "ready")
                    update_state(name, ready=True, active="active", sub="running")
                    if notify:
                        self.journal("Started %s." % unit.description)
                        self.job("done")
                    if unit.exec_start_post:
                        self.run_aux(unit.exec_start_post, env, "ExecStartPost", started)
                    continue
                if (notify and not ready and unit.timeout_start is not None
                        and time.time() - now > unit.timeout_start):
                    self.journal("%s: start operation timed out. Terminating." % name)
                    timed_out = True
                    self.stop_child(env)
                    break
                wait = 0.05 if not ready else 2.0
                if ready and unit.type != "oneshot":
                    after, _ = self.crash_after(crash_cands)
                    if after is not None:
                        left = ready_at + after - time.time()
                        if left <= 0:
                            # the injected crash: the main process dies, exit status 1
                            self.kill_child(signal.SIGKILL)
                            self.child.wait()
                            crashed = True
                            break
                        wait = min(wait, left)
                self.wait_event(wait)
            if self.child is not None:
                rc = self.child.returncode
                code = rc if rc >= 0 else 128 - rc
                self.child = None
            if crashed:
                code = 1
            if code is None:
                code = 0
            exited = [time.time(), time.monotonic()]
            if argv is not None:
                log_event(short_name, "exit %d" % code)
                self.journal("%s: Main process exited, code=%s, status=%d/%s" % (
                    name, "exited" if code < 128 else "killed",
                    code if code < 128 else code - 128,
                    "SUCCESS" if code == 0 else ("FAILURE" if code < 128 else signame(code - 128))))
                update_state(name, exec_main_exit=exited, exec_main_code=1 if code < 128 else 2,
                             exec_main_status=code if code < 128 else code - 128)
            if self.stop_requested:
                self.run_aux(unit.exec_stop_post, env, "ExecStopPost")
                self.journal("Stopped %s." % unit.description)
                self.finish("inactive", "success")
                return
            if unit.type == "oneshot" and not timed_out:
                if code != 0:
                    self.finish("failed", "exit-code", event="failed")
                else:
                    self.job("done")
                    if unit.remain_after_exit:
                        update_state(name, active="active", sub="exited", main_pid=0, ready=True,
                                     supervisor_pid=0)
                        log_event(short_name, "ready")
                    else:
                        self.finish("inactive", "success")
                return
            result = ("timeout" if timed_out else "success" if code == 0 else
                      "exit-code" if code < 128 else "signal")
            restart = {
                "always": True,
                "on-failure": result != "success",
                "on-success": result == "success",
                "on-abnormal": result in ("signal", "timeout"),
                "on-abort": result == "signal",
            }.get(unit.restart, False)
            if result != "success":
                self.journal("%s: Failed with result '%s'." % (name, result))
            if waits_ready and not ready and notify:
                # the start job fails; Restart= still applies to the unit (auto-restart)
                self.journal("Failed to start %s." % unit.description)
                self.job(result if result != "success" else "exit-code")
            if not restart:
                if result != "success":
                    self.finish("failed", result, event="failed")
                else:
                    self.finish("inactive", "success")
                return
            if result != "success":
                log_event(short_name, "failed")
            update_state(name, active="activating", sub="auto-restart", main_pid=0, ready=False, result=result,
                         _via="inactive" if result == "success" else "failed")
            deadline = time.time() + unit.restart_sec
            while not self.stop_requested and time.time() < deadline:
                self.wait_event(deadline - time.time())
            if self.stop_requested:
                self.finish("inactive", "success")
                return


def signame(sig):
    try:
        return signal.Signals(sig).name[3:]
    except ValueError:
        return str(sig)


def supervise_main(name):
    sup = Supervisor(name)
    try:
        sup.run()
    except Exception as e:  # keep the state file honest if the supervisor itself breaks
        unit_journal(name, "fake-systemd supervisor crashed: %r" % e)
        sup.kill_child(signal.SIGKILL)
        sup.finish("failed", "resources", event="failed")
        raise


# ------------------------------------------------------------------ operations

def start_limit_check(unit, st):
    """(hit, updated start_times) for one more start now."""
    now = time.time()
    times = [t for t in st.get("start_times", []) if unit.start_limit_interval and now - t < unit.start_limit_interval]
    if unit.start_limit_burst is not None and len(times) >= unit.start_limit_burst:
        return True, times
    return False, times + [now]


def job_failed(name, why):
    reasons = {
        "exit-code": "because the control process exited with error code",
        "timeout": "because a timeout was exceeded",
        "resources": "because of unavailable resources or another system error",
        "start-limit-hit": "because start of the service was attempted too often",
        "signal": "because a fatal signal was delivered to the control process",
    }
    if why == "canceled":
        raise Fail("Job for %s canceled." % name, 1)
    msg = "Job for %s failed %s.\nSee \"systemctl status %s\" and \"journalctl -xeu %s\" for details." % (
        name, reasons.get(why, "because the control process exited with error code"), name, name)
    if why == "start-limit-hit":
        msg = ("%s: Start request repeated too quickly.\n" % name) + msg + (
            "\nTo force a start use \"systemctl reset-failed %s\"\nfollowed by \"systemctl start %s\" again." % (name, name))
    raise Fail(msg, 1)


def require_unit(name, verb):
    unit = load_unit(name)
    if unit is None:
        raise Fail("Failed to %s %s: Unit %s not found." % (verb, name, name), 5)
    if unit.masked:
        raise Fail("Failed to %s %s: Unit %s is masked." % (verb, name, name), 1)
    if unit.errors:
        for e in unit.errors:
            unit_journal(name, "%s: %s" % (unit.fragment, e))
        raise Fail("Failed to %s %s: Unit %s has a bad unit file setting.\n"
                   "See system logs and 'systemctl status %s' for details." % (verb, name, name, name), 1)
    return unit


def warn_reload(name):
    if need_daemon_reload(name):
        err("Warning: The unit file, source configuration file or drop-ins of %s changed on disk. "
            "Run 'systemctl daemon-reload' to reload units." % name)


def _drain_and_reap(r, pid):
    """Everything a forked child writes to pipe end r, once it closes; then the child is reaped."""
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data


def spawn_supervisor(name):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            pid2 = os.fork()
            if pid2 == 0:
                os.close(w)
                devnull = os.open("/dev/null", os.O_RDWR)
                os.makedirs(LOG_DIR, exist_ok=True)
                logfd = os.open(unit_log_path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.dup2(devnull, 0)
                os.dup2(logfd, 1)
                os.dup2(logfd, 2)
                os.closerange(3, 65536)
                os.execv(sys.executable, [sys.executable, "-I", "/usr/bin/systemctl", "__supervise", name])
            os.write(w, str(pid2).encode())
        finally:
            os._exit(0)
    os.close(w)
    return int(_drain_and_reap(r, pid) or 0)


def do_start(name, no_block=False):
    unit = require_unit(name, "start")
    warn_reload(name)
    with flocked(job_lock_path(name)):
        sup = start_job(name, unit)
    # the job belongs to the manager: the client only waits for it, outside the lock,
    # so a later stop can cancel it; killing the client changes nothing
    if sup and not no_block:
        wait_started(name, unit, sup)


def start_job(name, unit):
    """Enqueue a start (job lock held): spawns the supervisor. Returns the supervisor
    whose start job to wait for, or None when there is nothing to wait for."""
    with flocked(lock_path(name)):
        st = effective_state(name)
        if st["active"] in ("active", "activating") and supervisor_alive(name, st):
            sup = st["supervisor_pid"]
            # a start job still running (a start merges into it) or an active unit
            return sup if job_result(st, sup) is None else None
        if st["active"] == "active" and unit.type == "oneshot":
            return None
        hit, times = start_limit_check(unit, st)
        if hit:
            apply_changes(st, dict(active="failed", sub="failed", result="start-limit-hit", supervisor_pid=0,
                                   main_pid=0, control_pid=0))
            write_json(state_path(name), st)
            unit_journal(name, "%s: Start request repeated too quickly." % name)
            unit_journal(name, "%s: Failed with result 'start-limit-hit'." % name)
            unit_journal(name, "Failed to start %s." % unit.description)
            log_event(short(name), "failed")
            job_failed(name, "start-limit-hit")
        # not an automatic restart: the restart counter starts again (service_start)
        apply_changes(st, dict(active="activating", sub="start", result="success", ready=False, main_pid=0,
                               control_pid=0, start_times=times, n_restarts=0, supervisor_pid=0))
        write_json(state_path(name), st)
        sup = spawn_supervisor(name)
        st["supervisor_pid"] = sup
        write_json(state_path(name), st)
    return sup


def wait_started(name, unit, sup):
    """Wait for the start job of supervisor sup, however long it takes (systemctl has no
    timeout of its own: the unit's TimeoutStartSec ends a start, or nothing does)."""
    delay = 0.02
    while True:
        st = read_state(name)
        jr = job_result(st, sup)
        # no cmdline check here: right after the fork the supervisor has not exec'd yet
        if jr is None and not pid_alive(sup):
            jr = job_result(read_state(name), sup) or "resources"
        if jr == "done":
            return
        if jr is not None:
            job_failed(name, jr)
        time.sleep(delay)
        delay = min(delay * 1.2, 0.25)


def kill_groups(st):
    for key in ("main_pid", "control_pid"):
        if st.get(key):
            try:
                os.killpg(st[key], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def do_stop(name, quiet_missing=False):
    unit = load_unit(name)
    if unit is None:
        st = read_state(name)
        if not os.path.exists(state_path(name)):
            raise Fail("Failed to stop %s: Unit %s not loaded." % (name, name), 5)
    with flocked(job_lock_path(name)):
        st = read_state(name)
        sup = st.get("supervisor_pid")
        if supervisor_alive(name, st):
            log_event(short(name), "stop")
            if unit is not None:
                unit_journal(name, "Stopping %s..." % unit.description)
            update_state(name, active="deactivating", sub="stop")
            try:
                os.kill(sup, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.time() + DEFAULT_TIMEOUT_STOP + 10
            while pid_alive(sup, supervisor_needle(name)) and time.time() < deadline:
                time.sleep(0.01)
            if pid_alive(sup, supervisor_needle(name)):
                os.kill(sup, signal.SIGKILL)
                kill_groups(read_state(name))
            with flocked(lock_path(name)):
                st = read_state(name)
                if set_job_result(st, sup, "canceled"):
                    write_json(state_path(name), st)
            st = read_state(name)
            if st["active"] in ("deactivating", "active", "activating"):
                update_state(name, active="inactive", sub="dead", main_pid=0, control_pid=0, supervisor_pid=0,
                             ready=False)
        else:
            if st["active"] == "active" and st.get("sub") == "exited":  # oneshot RemainAfterExit
                log_event(short(name), "stop")
                env = unit_env(unit) if unit else {}
                for line in (unit.exec_stop + unit.exec_stop_post) if unit else []:
                    argv, _ = expand_command(line, env)
                    subprocess.call(argv, env=env, stdin=subprocess.DEVNULL)
                update_state(name, active="inactive", sub="dead")
            elif st["active"] in ("active", "activating", "deactivating"):
                update_state(name, active="inactive", sub="dead", main_pid=0, control_pid=0, supervisor_pid=0)


def run_detached(fn):
    """Run fn in a process of its own (new session, no terminal, no client fds) and return
    its result: what the manager does for a job goes on when the client dies."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)
                devnull = os.open("/dev/null", os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                try:
                    res = {"ok": True, "value": fn()}
                except Fail as e:
                    res = {"ok": False, "msg": e.msg, "code": e.code}
                except Exception as e:  # noqa: BLE001 - reported to the client
                    res = {"ok": False, "msg": "fake systemd: %r" % e, "code": 1}
                try:
                    os.write(w, json.dumps(res).encode())
                except OSError:
                    pass
        finally:
            os._exit(0)
    os.close(w)
    data = _drain_and_reap(r, pid)
    try:
        res = json.loads(data.decode() or "{}")
    except ValueError:
        res = {}
    if not res:
        raise Fail("Failed to restart: the fake systemd job did not report back.", 1)
    if not res["ok"]:
        raise Fail(res["msg"], res["code"])
    return res["value"]


def do_restart(name):
    unit = require_unit(name, "restart")
    warn_reload(name)

    def job():
        # one restart job: stop, then start, whatever becomes of the client
        try:
            do_stop(name)
        except Fail:
            pass
        with flocked(job_lock_path(name)):
            return start_job(name, load_unit(name) or unit)

    sup = run_detached(job)
    if sup:
        wait_started(name, unit, sup)


def install_paths(unit):
    return [os.path.join("/etc/systemd/system", t + ".wants", unit.name) for t in unit.wanted_by]


def enable_state(name):
    files, masked = disk_files(name)
    if masked:
        return "masked"
    if not files:
        return None
    unit = Unit(name, files)
    if not unit.wanted_by:
        return "static"
    for p in glob.glob("/etc/systemd/system/*.wants/" + name):
        if os.path.lexists(p):
            return "enabled"
    return "disabled"


def do_enable(name, quiet):
    files, masked = disk_files(name)
    if not files:
        raise Fail("Failed to enable unit: Unit file %s does not exist." % name, 1)
    if masked:
        raise Fail("Failed to enable unit: Unit file %s is masked." % name, 1)
    unit = Unit(name, files)
    if not unit.wanted_by:
        if not quiet:
            err("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
                "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
                "units). This means they are not meant to be enabled or disabled using systemctl.")
        return
    for link in install_paths(unit):
        if os.path.lexists(link):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(unit.fragment, link)
        if not quiet:
            err("Created symlink %s \u2192 %s." % (link, unit.fragment))


def do_disable(name, quiet):
    files, _ = disk_files(name)
    found = False
    for p in sorted(glob.glob("/etc/systemd/system/*.wants/" + name)):
        found = True
        os.unlink(p)
        if not quiet:
            err("Removed \"%s\"." % p)
    if not files and not found:
        raise Fail("Failed to disable unit: Unit file %s does not exist." % name, 1)


def exec_text(unit, lines, st, main=False):
    """An Exec*= property as systemctl show prints it."""
    if unit is None:
        return ""
    parts = []
    for line in lines:
        argv, ignore = expand_command(line, unit.environment)
        if not argv:
            continue
        start = st.get("exec_main_start") if main else None
        stop = st.get("exec_main_exit") if main else None
        pid = (st.get("main_pid") or 0) if main else 0
        parts.append("{ path=%s ; argv[]=%s ; ignore_errors=%s ; start_time=[%s] ; stop_time=[%s] ; "
                     "pid=%d ; code=%s ; status=%s }"
                     % (argv[0], " ".join(argv), "yes" if ignore else "no",
                        fmt_ts(start[0]) if start else "n/a", fmt_ts(stop[0]) if stop else "n/a", pid,
                        {1: "exited", 2: "killed"}.get(st.get("exec_main_code") or 0, "(null)") if main else "(null)",
                        "%d/%s" % (st.get("exec_main_status") or 0,
                                   signame(st.get("exec_main_status") or 0) if st.get("exec_main_code") == 2
                                   else ("SUCCESS" if not st.get("exec_main_status") else "FAILURE"))
                        if main and stop else "0/0"))
    return " ".join(parts)


def fmt_ts(ts):
    if not ts:
        return ""
    return time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def fmt_timespan(sec):
    """systemd's format_timespan (accuracy 1us): 1min 30s, 100ms, 2s, infinity, 0."""
    if sec is None:
        return "infinity"
    t = int(round(sec * 1e6))
    if t <= 0:
        return "0"
    table = [("y", 31557600000000), ("month", 2629800000000), ("w", 604800000000), ("d", 86400000000),
             ("h", 3600000000), ("min", 60000000), ("s", 1000000), ("ms", 1000), ("us", 1)]
    parts = []
    for suffix, u in table:
        if t <= 0:
            break
        if t < u:
            continue
        a, b = divmod(t, u)
        if t < 60000000 and b > 0 and u > 1:
            parts.append("%d.%0*d%s" % (a, len(str(u)) - 1, b, suffix))
            break
        parts.append("%d%s" % (a, suffix))
        t = b
    return " ".join(parts)


def fmt_pair(st, key):
    """(realtime text, monotonic usec) of a transition timestamp; ("", "0") when never."""
    v = (st.get("ts") or {}).get(key)
    if not v:
        return "", "0"
    return fmt_ts(v[0]), str(int(v[1] * 1e6))


def properties(name):
    """The unit's properties in systemd's own order (the Service interface, then Unit)."""
    unit = load_unit(name, create=False)
    st = effective_state(name)
    loaded = unit is not None
    main_start = st.get("exec_main_start")
    main_exit = st.get("exec_main_exit")
    if not loaded:
        load_error = 'org.freedesktop.systemd1.NoSuchUnit "Unit %s not found."' % name
    elif unit.masked:
        load_error = 'org.freedesktop.systemd1.UnitMasked "Unit %s is masked."' % name
    elif unit.errors:
        load_error = 'org.freedesktop.systemd1.BadUnitSetting "Unit %s has a bad unit file setting."' % name
    else:
        load_error = ""
    good = loaded and not unit.masked
    running = st["active"] not in INACTIVE_STATES
    props = [
        ("Type", unit.type if good else ""),
        ("Restart", unit.restart if good else "no"),
        ("NotifyAccess", "main" if good and unit.type == "notify" else "none"),
        ("RestartUSec", fmt_timespan(unit.restart_sec if good else DEFAULT_RESTART_SEC)),
        ("TimeoutStartUSec", fmt_timespan(unit.timeout_start if good else DEFAULT_TIMEOUT_START)),
        ("TimeoutStopUSec", fmt_timespan(unit.timeout_stop_set if good else 90.0)),
        ("RemainAfterExit", "yes" if good and unit.remain_after_exit else "no"),
        ("MainPID", str(st.get("main_pid") or 0)),
        ("ControlPID", str(st.get("control_pid") or 0)),
        ("Result", st.get("result", "success")),
        ("NRestarts", str(st.get("n_restarts") or 0)),
        ("ExecMainStartTimestamp", fmt_ts(main_start[0]) if main_start else ""),
        ("ExecMainStartTimestampMonotonic", str(int(main_start[1] * 1e6)) if main_start else "0"),
        ("ExecMainExitTimestamp", fmt_ts(main_exit[0]) if main_exit else ""),
        ("ExecMainExitTimestampMonotonic", str(int(main_exit[1] * 1e6)) if main_exit else "0"),
        ("ExecMainPID", str(st.get("main_pid") or (st.get("last_main_pid") or 0))),
        ("ExecMainCode", str(st.get("exec_main_code") or 0)),
        ("ExecMainStatus", str(st.get("exec_main_status") or 0)),
        ("ExecStartPre", exec_text(unit, unit.exec_start_pre, st) if good else ""),
        ("ExecStart", exec_text(unit, unit.exec_start, st, main=True) if good else ""),
        ("ExecStartPost", exec_text(unit, unit.exec_start_post, st) if good else ""),
        ("ExecStop", exec_text(unit, unit.exec_stop, st) if good else ""),
        ("ExecStopPost", exec_text(unit, unit.exec_stop_post, st) if good else ""),
        ("Slice", "system.slice" if good else ""),
        ("ControlGroup", "/system.slice/%s" % name if good and running else ""),
        ("Environment", " ".join("%s=%s" % kv for kv in unit.environment.items()) if good else ""),
        ("EnvironmentFiles", " ".join("%s (ignore_errors=%s)" % (f.lstrip("-"), "yes" if f.startswith("-") else "no")
                                      for f in unit.environment_files) if good else ""),
        ("Id", name),
        ("Names", name),
        ("Description", unit.description if good else name),
        ("LoadState", unit.load_state if loaded else "not-found"),
        ("ActiveState", st["active"]),
        ("FreezerState", "running"),
        ("SubState", st["sub"]),
        ("FragmentPath", unit.fragment if loaded else ""),
        ("DropInPaths", " ".join(unit.dropins) if good else ""),
        ("UnitFileState", enable_state(name) or ""),
        ("UnitFilePreset", "enabled" if loaded else ""),
    ]
    for key, ts in (("StateChange", "state_change"), ("InactiveExit", "inactive_exit"),
                    ("ActiveEnter", "active_enter"), ("ActiveExit", "active_exit"),
                    ("InactiveEnter", "inactive_enter")):
        text, mono = fmt_pair(st, ts)
        props += [(key + "Timestamp", text), (key + "TimestampMonotonic", mono)]
    props += [
        ("CanStart", "yes" if good and not unit.errors else "no"),
        ("CanStop", "yes" if good else "no"),
        ("NeedDaemonReload", "yes" if need_daemon_reload(name) else "no"),
        ("LoadError", load_error),
        ("StartLimitIntervalUSec", fmt_timespan(unit.start_limit_interval) if good else "10s"),
        ("StartLimitBurst", str(unit.start_limit_burst_shown) if good else "5"),
        ("InvocationID", st.get("invocation_id", "") if running else ""),
    ]
    return props


def do_status(name):
    unit = load_unit(name, create=False)
    if unit is None and not os.path.exists(state_path(name)):
        raise Fail("Unit %s could not be found." % name, 4)
    st = effective_state(name)
    dot = {"active": "\u25cf", "failed": "\u00d7"}.get(st["active"], "\u25cb")
    out = ["%s %s - %s" % (dot, name, unit.description if unit else name)]
    if unit:
        out.append("     Loaded: %s (%s; %s; preset: enabled)" % (unit.load_state, unit.fragment,
                                                                     enable_state(name) or "static"))
        if unit.dropins:
            out.append("    Drop-In: %s" % "\n             ".join(unit.dropins))
    else:
        out.append("     Loaded: not-found (Reason: Unit %s not found.)" % name)
    since = st.get("state_change")
    ago = ""
    if since:
        ago = " since %s; %ds ago" % (fmt_ts(since), int(time.time() - since))
    sub = st["sub"]
    detail = "(Result: %s)" % st["result"] if st["active"] == "failed" else "(%s)" % sub
    if st["active"] != "failed" and st.get("result", "success") != "success":
        detail += " (Result: %s)" % st["result"]
    out.append("     Active: %s %s%s" % (st["active"], detail, ago))
    if st.get("main_pid"):
        exe = os.path.basename((st.get("exec_start") or ["?"])[0])
        out.append("   Main PID: %d (%s)" % (st["main_pid"], exe))
    if st.get("control_pid"):
        cmd = common.proc_cmdline(st["control_pid"])
        out.append("  Cntrl PID: %d (%s)" % (st["control_pid"], os.path.basename(cmd[0]) if cmd and cmd[0] else "?"))
    if need_daemon_reload(name):
        out.append("Warning: The unit file, source configuration file or drop-ins of %s changed on disk. "
                   "Run 'systemctl daemon-reload' to reload units." % name)
    out.append("")
    try:
        with open(unit_log_path(name), errors="replace") as f:
            out.extend(l.rstrip("\n") for l in f.readlines()[-10:])
    except OSError:
        pass
    print("\n".join(out))
    return 0 if st["active"] == "active" else 3


def do_cat(name):
    files, masked = disk_files(name)
    if not files:
        raise Fail("No files found for %s." % name, 1)
    if masked:
        raise Fail("Unit %s is masked." % name, 1)
    chunks = []
    for p, t in files:
        chunks.append("# %s\n%s" % (p, t if t.endswith("\n") or not t else t + "\n"))
    sys.stdout.write("\n".join(chunks))
    warn_reload(name)


def known_units():
    names = set()
    for d in UNIT_DIRS:
        for p in glob.glob(os.path.join(d, "*.service")):
            names.add(os.path.basename(p))
    for p in glob.glob(os.path.join(STATE_DIR, "*.service.state.json")):
        names.add(os.path.basename(p)[: -len(".state.json")])
    return sorted(names)


def do_list_units(patterns, all_units, legend, state_filter):
    import fnmatch

    rows = []
    for name in known_units():
        if patterns and not any(fnmatch.fnmatch(name, unit_name(p) if "*" not in p else p) for p in patterns):
            continue
        st = effective_state(name)
        if not all_units and st["active"] == "inactive" and not patterns:
            continue
        if state_filter and st["active"] not in state_filter and st["sub"] not in state_filter:
            continue
        unit = load_unit(name, create=False)
        rows.append((name, unit.load_state if unit else "not-found", st["active"], st["sub"],
                     unit.description if unit else name))
    if legend:
        print("%-40s %-9s %-10s %-12s %s" % ("UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"))
    for r in rows:
        print("%-40s %-9s %-10s %-12s %s" % r)
    if legend:
        print("\n%d loaded units listed." % len(rows))


def do_list_unit_files(patterns, legend):
    import fnmatch

    rows = []
    for name in known_units():
        if patterns and not any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name, unit_name(p)) for p in patterns):
            continue
        state = enable_state(name)
        if state:
            rows.append((name, state))
    if legend:
        print("%-40s %-15s %s" % ("UNIT FILE", "STATE", "PRESET"))
    for n, s in rows:
        print("%-40s %-15s %s" % (n, s, "enabled"))
    if legend:
        print("\n%d unit files listed." % len(rows))


# ------------------------------------------------------------------------- CLI

def parent_pid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        return int(data[data.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def proc_comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def ssh_session_pids():
    """The sshd processes of the SSH session this command runs under (through sudo and
    shells), nearest first; the listening daemon (the topmost sshd) is not one of them."""
    chain = []
    pid = os.getppid()
    while pid > 1:
        if proc_comm(pid) in ("sshd", "sshd-session"):
            chain.append(pid)
        pid = parent_pid(pid)
    return chain[:-1]


def drop_ssh(verb, units):
    """Fault drop-ssh-on-<verb>-<unit>: the SSH connection dies as the verb is asked for
    (its sshd processes are SIGKILLed) and the verb is not done (exit 255)."""
    session = ssh_session_pids()
    if not session:
        return
    cands = []
    for u in units:
        cands += ["drop-ssh-on-%s-%s" % (verb, short(u)), "drop-ssh-on-%s-%s" % (verb, u)]
    if not cands or not common.consume_fault(cands):
        return
    for pid in session:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(255)


USAGE = "systemctl [OPTIONS...] COMMAND ...\n(fake systemd of the calico-rollout test agents)"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["__supervise"]:
        supervise_main(argv[1])
        return
    try:
        sys.exit(cli(argv))
    except Fail as e:
        err(e.msg)
        sys.exit(e.code)
    except BrokenPipeError:
        sys.exit(1)


def cli(argv):
    quiet = False
    now = False
    no_block = False
    value_only = False
    all_units = False
    legend = True
    props = []
    state_filter = []
    args = []
    i = 0
    only_args = False
    while i < len(argv):
        a = argv[i]
        i += 1
        if only_args or not a.startswith("-") or a == "-":
            args.append(a)
            continue
        if a == "--":
            only_args = True
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a in ("--no-pager", "--no-ask-password", "--system", "-l", "--full", "--plain", "--force"):
            pass
        elif a == "--now":
            now = True
        elif a == "--no-block":
            no_block = True
        elif a == "--value":
            value_only = True
        elif a in ("-a", "--all"):
            all_units = True
        elif a == "--no-legend":
            legend = False
        elif a in ("-p", "--property"):
            if i >= len(argv):
                raise Fail("systemctl: option requires an argument -- 'p'", 1)
            props.extend(argv[i].split(","))
            i += 1
        elif a.startswith("--property="):
            props.extend(a.split("=", 1)[1].split(","))
        elif a.startswith("-p") and len(a) > 2:
            props.extend(a[2:].split(","))
        elif a == "-P":
            # -P NAME: --value --property=NAME
            if i >= len(argv):
                raise Fail("systemctl: option requires an argument -- 'P'", 1)
            props.extend(argv[i].split(","))
            value_only = True
            i += 1
        elif a.startswith("-P") and len(a) > 2:
            props.extend(a[2:].split(","))
            value_only = True
        elif a.startswith("--type=") or a.startswith("-t"):
            if a == "-t":
                i += 1
        elif a.startswith("--state="):
            state_filter.extend(a.split("=", 1)[1].split(","))
        elif a == "--version":
            print("systemd %s" % SYSTEMD_VERSION)
            return 0
        elif a in ("-h", "--help"):
            print(USAGE)
            return 0
        else:
            raise Fail("systemctl: unrecognized option '%s'" % a, 1)
    if not args:
        args = ["list-units"]
    verb, units = args[0], [unit_name(u) for u in args[1:]]
    drop_ssh(verb, units)
    if verb in MODIFYING_VERBS and not common.is_root():
        if verb == "daemon-reload":
            raise Fail("Failed to reload daemon: Interactive authentication required.", 1)
        target = units[0] if units else ""
        raise Fail("Failed to %s %s: Interactive authentication required.\n"
                   "See system logs and 'systemctl status %s' for details." % (verb, target, target), 1)
    os.makedirs(STATE_DIR, exist_ok=True) if common.is_root() else None
    needs_units = {"start", "stop", "restart", "try-restart", "reload-or-restart", "enable", "disable",
                   "is-active", "is-enabled", "is-failed", "cat", "kill", "mask", "unmask", "reload"}
    if verb in needs_units and not units:
        raise Fail("Too few arguments.", 1)

    if verb == "daemon-reload":
        daemon_reload()
        return 0
    if verb in ("start", "stop", "restart", "try-restart", "reload-or-restart", "reload"):
        for u in units:
            if verb == "start":
                do_start(u, no_block)
            elif verb == "stop":
                do_stop(u)
            elif verb in ("restart", "reload-or-restart", "reload"):
                do_restart(u)
            elif verb == "try-restart":
                if effective_state(u)["active"] == "active":
                    do_restart(u)
        return 0
    if verb in ("enable", "disable"):
        for u in units:
            (do_enable if verb == "enable" else do_disable)(u, quiet)
        daemon_reload()
        if now:
            for u in units:
                if verb == "enable":
                    do_start(u, no_block)
                else:
                    do_stop(u)
        return 0
    if verb in ("mask", "unmask"):
        for u in units:
            link = os.path.join("/etc/systemd/system", u)
            if verb == "mask":
                if os.path.lexists(link) and os.path.realpath(link) != "/dev/null":
                    raise Fail("Failed to mask unit: File %s already exists." % link, 1)
                if not os.path.lexists(link):
                    os.symlink("/dev/null", link)
            elif os.path.islink(link) and os.path.realpath(link) == "/dev/null":
                os.unlink(link)
        daemon_reload()
        return 0
    if verb == "is-active":
        rc = 0
        for u in units:
            state = effective_state(u)["active"]
            if not quiet:
                print(state)
            if state != "active":
                rc = 3
        return rc
    if verb == "is-failed":
        rc = 1
        for u in units:
            state = effective_state(u)["active"]
            if not quiet:
                print(state)
            if state == "failed":
                rc = 0
        return rc
    if verb == "is-enabled":
        rc = 0
        for u in units:
            state = enable_state(u)
            if state is None:
                raise Fail("Failed to get unit file state for %s: No such file or directory" % u, 1)
            if not quiet:
                print(state)
            if state not in ("enabled", "static"):
                rc = 1
        return rc
    if verb == "status":
        rc = 0
        for u in units or []:
            rc = max(rc, do_status(u))
        if not units:
            print("State: running")
        return rc
    if verb == "cat":
        for u in units:
            do_cat(u)
        return 0
    if verb == "show":
        if not units:
            units = []
            if not props:
                print("Version=%s" % SYSTEMD_VERSION.split()[0])
                return 0
        # one block per unit, blank line between; properties in systemd's order, asked-for
        # ones even when empty, unknown names skipped; without -p empty ones only with --all
        first = True
        for u in units:
            if not first:
                print()
            first = False
            for k, v in properties(u):
                if props and k not in props:
                    continue
                if not props and not all_units and v == "":
                    continue
                print(v if value_only else "%s=%s" % (k, v))
        return 0
    if verb == "reset-failed":
        for u in units or [os.path.basename(p)[: -len(".state.json")]
                           for p in glob.glob(os.path.join(STATE_DIR, "*.state.json"))]:
            with flocked(lock_path(u)):
                # service_reset_failed + the start rate limit: NRestarts and the limit start over
                st = effective_state(u)
                st["start_times"] = []
                st["n_restarts"] = 0
                st["result"] = "success"
                if st["active"] == "failed":
                    apply_changes(st, dict(active="inactive", sub="dead"))
                write_json(state_path(u), st)
        return 0
    if verb == "kill":
        for u in units:
            st = effective_state(u)
            if st.get("main_pid"):
                os.kill(st["main_pid"], signal.SIGTERM)
        return 0
    if verb == "list-units":
        do_list_units(units and args[1:], all_units, legend, state_filter)
        return 0
    if verb == "list-unit-files":
        do_list_unit_files(args[1:], legend)
        return 0
    raise Fail("Unknown command verb '%s'." % verb, 1)
