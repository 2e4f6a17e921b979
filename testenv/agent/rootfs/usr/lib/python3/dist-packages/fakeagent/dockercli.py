"""Fake `docker` CLI: container bookkeeping against the fake dockerd (no real containers).

Containers live in /var/lib/fake-docker/containers/<name>.json in the shape
of `docker inspect`; every daemon command needs the fake dockerd to be up
(docker.service active), like the real CLI needs the daemon socket.
"""

import glob
import json
import os
import random
import re
import signal
import socket
import sys
import time

from . import common
from . import dockerstate
from .common import read_json, write_json, flocked

CONTAINERS_DIR = common.DOCKER_LIB_DIR + "/containers"
IMAGES_FILE = common.DOCKER_LIB_DIR + "/images.json"
LOCK = common.DOCKER_LIB_DIR + "/.lock"
SOCK = "unix:///var/run/docker.sock"
CANNOT_CONNECT = "Cannot connect to the Docker daemon at %s. Is the docker daemon running?" % SOCK
API_VERSION = "1.41"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerError(Exception):
    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.msg = msg
        self.code = code


def out(text=""):
    sys.stdout.write(text + "\n")


# ------------------------------------------------------------------ templates

def go_fmt(v):
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join("%s:%s" % (k, go_fmt(v[k])) for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_fmt(x) for x in v) + "]"
    return str(v)


def go_json(v):
    if isinstance(v, dict) and "_omitempty" in v:
        # Go's `json:",omitempty"`: docker's Info leaves out an unset
        # ClusterStore and ClusterAdvertise.
        v = {k: x for k, x in v.items() if k != "_omitempty" and not (k in v["_omitempty"] and x in ("", None))}
    s = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _lookup(obj, path):
    if path in (".", ""):
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def _tokens(expr):
    return re.findall(r'"(?:[^"\\]|\\.)*"|\S+', expr)


def _eval(expr, obj):
    toks = _tokens(expr.strip())
    if not toks:
        raise DockerError("template: missing value for command")

    def val(t):
        if t.startswith('"'):
            return json.loads(t)
        if t.startswith("."):
            return _lookup(obj, t)
        if re.fullmatch(r"-?\d+", t):
            return int(t)
        raise DockerError('template: function "%s" not defined' % t)

    fn = toks[0]
    if fn == "json":
        return go_json(val(toks[1]) if len(toks) > 1 else obj), True
    if fn == "index":
        cur = val(toks[1])
        for t in toks[2:]:
            k = val(t)
            if isinstance(cur, dict):
                cur = cur.get(k)
            elif isinstance(cur, list) and isinstance(k, int) and 0 <= k < len(cur):
                cur = cur[k]
            else:
                cur = None
        return cur, False
    if fn in ("lower", "upper", "title"):
        v = go_fmt(val(toks[1]))
        return getattr(v, fn)(), True
    if fn == "join":
        return str(val(toks[2])).join(go_fmt(x) for x in (val(toks[1]) or [])), True
    if fn == "println":
        return " ".join(go_fmt(val(t)) for t in toks[1:]) + "\n", True
    if len(toks) == 1:
        return val(fn), False
    raise DockerError('template: function "%s" not defined' % fn)


def render(template, obj):
    res = []
    pos = 0
    for m in re.finditer(r"\{\{-?\s*(.*?)\s*-?\}\}", template):
        res.append(template[pos:m.start()])
        v, raw = _eval(m.group(1), obj)
        res.append(v if raw else go_fmt(v))
        pos = m.end()
    res.append(template[pos:])
    return "".join(res).replace("\\t", "\t").replace("\\n", "\n")


# ---------------------------------------------------------------------- state

def ensure_daemon(prefix=""):
    if not common.is_root() and not common.in_group("docker"):
        raise DockerError(
            "%sGot permission denied while trying to connect to the Docker daemon socket at %s: "
            "Get \"http://%%2Fvar%%2Frun%%2Fdocker.sock/v%s/containers/json\": dial unix /var/run/docker.sock: "
            "connect: permission denied" % (prefix, SOCK, API_VERSION), 1)
    st = read_json(common.DOCKER_STATE_FILE)
    if not st or not common.pid_alive(st.get("Pid"), "dockerd"):
        raise DockerError(prefix + CANNOT_CONNECT, 1)
    return st


def container_path(name):
    return os.path.join(CONTAINERS_DIR, name + ".json")


def all_containers():
    res = []
    if os.path.isdir(CONTAINERS_DIR):
        for fn in os.listdir(CONTAINERS_DIR):
            if fn.endswith(".json"):
                c = read_json(os.path.join(CONTAINERS_DIR, fn))
                if c:
                    res.append(dockerstate.settle(c))
    res.sort(key=lambda c: c.get("Created", ""), reverse=True)
    return res


def find_container(ref):
    """By name (with or without leading /), full id or unique id prefix."""
    ref = ref.lstrip("/") if ref.startswith("/") else ref
    c = read_json(container_path(ref)) if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", ref) else None
    if c:
        return dockerstate.settle(c)
    cands = [c for c in all_containers() if c["Id"] == ref or (len(ref) >= 1 and c["Id"].startswith(ref))]
    if len(cands) == 1:
        return cands[0]
    if len(cands) > 1:
        raise DockerError("Error response from daemon: Multiple IDs found with provided prefix: %s" % ref)
    return None


def save(c):
    write_json(container_path(c["Name"].lstrip("/")), c)


def public(c):
    c = dict(c)
    c.pop("_fake", None)
    return c


def images():
    return read_json(IMAGES_FILE, {}) or {}


def image_id(ref):
    import hashlib

    return "sha256:" + hashlib.sha256(normalize_ref(ref).encode()).hexdigest()


def add_image(ref):
    imgs = images()
    ref = normalize_ref(ref)
    if ref not in imgs:
        imgs[ref] = {"Id": image_id(ref), "Created": common.rfc3339()}
        write_json(IMAGES_FILE, imgs)


REF_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?$")


def valid_ref(ref):
    return bool(REF_RE.match(ref))


def normalize_ref(ref):
    """The name docker lists an image under: calico/node:v9 == docker.io/calico/node:v9."""
    return dockerstate.familiar(ref)


def short_id(i):
    return i[:12]


def human_duration(secs):
    secs = max(0, int(secs))
    if secs < 1:
        return "Less than a second"
    if secs < 60:
        return "%d seconds" % secs if secs != 1 else "1 second"
    mins = secs // 60
    if mins < 60:
        return "%d minutes" % mins if mins != 1 else "About a minute"
    hours = mins // 60
    return "%d hours" % hours if hours != 1 else "About an hour"


def parse_ts(s):
    try:
        return time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except (ValueError, TypeError):
        return time.time()


def status_text(c):
    st = c["State"]
    if st.get("Running") and st.get("Restarting"):
        return "Restarting (%d) %s ago" % (st.get("ExitCode", 0),
                                           human_duration(time.time() - parse_ts(st.get("FinishedAt"))))
    if st.get("Running"):
        return "Up " + human_duration(time.time() - parse_ts(st.get("StartedAt")))
    if st.get("Status") == "created":
        return "Created"
    return "Exited (%d) %s ago" % (st.get("ExitCode", 0), human_duration(time.time() - parse_ts(st.get("FinishedAt"))))


# ------------------------------------------------------------------ commands

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")

# run/create flags: name -> (key, takes_value)
RUN_FLAGS = {
    "-d": ("detach", False), "--detach": ("detach", False), "--name": ("name", True),
    "--restart": ("restart", True), "--net": ("network", True), "--network": ("network", True),
    "--privileged": ("privileged", False), "-e": ("env", True), "--env": ("env", True),
    "--env-file": ("env-file", True), "-v": ("volume", True), "--volume": ("volume", True),
    "-l": ("label", True), "--label": ("label", True), "--pid": ("pid", True), "--rm": ("rm", False),
    "-i": ("interactive", False), "--interactive": ("interactive", False), "-t": ("tty", False),
    "--tty": ("tty", False), "--entrypoint": ("entrypoint", True), "-p": ("publish", True),
    "--publish": ("publish", True), "--cap-add": ("cap-add", True), "--cap-drop": ("cap-drop", True),
    "--log-driver": ("log-driver", True), "--log-opt": ("log-opt", True), "-w": ("workdir", True),
    "--workdir": ("workdir", True), "-u": ("user", True), "--user": ("user", True),
    "-h": ("hostname", True), "--hostname": ("hostname", True), "--ipc": ("ipc", True),
    "--uts": ("uts", True), "--security-opt": ("security-opt", True), "-m": ("memory", True),
    "--memory": ("memory", True), "--ulimit": ("ulimit", True), "--add-host": ("add-host", True),
    "--dns": ("dns", True), "--init": ("init", False), "--pull": ("pull", True),
    "--label-file": ("label-file", True), "--stop-timeout": ("stop-timeout", True),
    "--health-cmd": ("health-cmd", True), "--cgroupns": ("cgroupns", True), "--device": ("device", True),
}
MULTI = {"env", "env-file", "volume", "label", "publish", "cap-add", "cap-drop", "log-opt", "security-opt",
         "ulimit", "add-host", "dns", "label-file", "device"}


def parse_flags(args, table, cmd, interspersed=True):
    """pflag-like parser. Returns (opts, positionals). Flags may follow positionals
    (cobra's default) unless interspersed=False (run/create/exec: flags end at IMAGE)."""
    opts = {}
    pos = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return opts, pos + args[i + 1:]
        if not a.startswith("-") or a == "-":
            if not interspersed:
                return opts, pos + args[i:]
            pos.append(a)
            i += 1
            continue
        i += 1
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name not in table:
                raise DockerError("unknown flag: %s\nSee 'docker %s --help'." % (name, cmd), 125)
            key, takes = table[name]
            if takes and not eq:
                if i >= len(args):
                    raise DockerError("flag needs an argument: %s\nSee 'docker %s --help'." % (name, cmd), 125)
                val = args[i]
                i += 1
            elif not takes:
                if eq and val not in ("true", "false", "1", "0"):
                    raise DockerError("invalid argument \"%s\" for \"%s\" flag: strconv.ParseBool: parsing \"%s\": "
                                      "invalid syntax\nSee 'docker %s --help'." % (val, name, val, cmd), 125)
                val = (val in ("true", "1")) if eq else True
        else:
            # short flags, possibly combined (-dit) or with attached value (-eFOO=bar)
            j = 1
            while j < len(a):
                name = "-" + a[j]
                if name not in table:
                    raise DockerError("unknown shorthand flag: '%s' in %s\nSee 'docker %s --help'." % (a[j], a, cmd), 125)
                key, takes = table[name]
                if takes:
                    val = a[j + 1:]
                    if val.startswith("="):
                        val = val[1:]
                    if not val:
                        if i >= len(args):
                            raise DockerError("flag needs an argument: '%s' in %s\nSee 'docker %s --help'."
                                              % (a[j], a, cmd), 125)
                        val = args[i]
                        i += 1
                    break
                val = True
                opts[key] = val
                j += 1
            else:
                continue
        if key in MULTI:
            opts.setdefault(key, []).append(val)
        else:
            opts[key] = val
    return opts, pos


def parse_env_file(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DockerError("docker: open %s: %s." % (path, (e.strerror or "").lower()), 125)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DockerError("docker: env file %s contains invalid utf8 bytes at line 1: %r." % (path, data[:20]), 125)
    res = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.lstrip()
        if n == 1:
            line = line.lstrip("\ufeff")
        line = line.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            k, v = line.split("=", 1)
            if not k:
                raise DockerError("docker: no variable name on line '%s'." % line, 125)
            if re.search(r"\s", k):
                raise DockerError("docker: variable '%s' contains whitespaces." % k, 125)
            res.append("%s=%s" % (k, v))
        else:
            k = line.strip()
            if re.search(r"\s", k):
                raise DockerError("docker: variable '%s' contains whitespaces." % k, 125)
            if k in os.environ:
                res.append("%s=%s" % (k, os.environ[k]))
    return res


NAME_ADJ = ["admiring", "brave", "clever", "eager", "focused", "gallant", "happy", "jolly", "keen", "loving"]
NAME_NOUN = ["turing", "hopper", "lovelace", "ritchie", "thompson", "knuth", "dijkstra", "torvalds", "kay"]


def cmd_run(args, create_only=False):
    cmd = "create" if create_only else "run"
    opts, rest = parse_flags(args, RUN_FLAGS, cmd, interspersed=False)
    if not rest:
        raise DockerError("\"docker %s\" requires at least 1 argument.\nSee 'docker %s --help'.\n\n"
                          "Usage:  docker %s [OPTIONS] IMAGE [COMMAND] [ARG...]" % (cmd, cmd, cmd), 1)
    image, command = rest[0], rest[1:]
    pre = "docker: "
    ensure_daemon(pre)
    if not valid_ref(image):
        if re.search(r"[A-Z]", image) and valid_ref(image.lower()):
            raise DockerError("docker: invalid reference format: repository name must be lowercase.\n"
                              "See 'docker %s --help'." % cmd, 125)
        raise DockerError("docker: invalid reference format.\nSee 'docker %s --help'." % cmd, 125)
    restart = opts.get("restart", "no") or "no"
    rname, _, rcount = restart.partition(":")
    if rname not in RESTART_POLICIES:
        raise DockerError("docker: Error response from daemon: invalid restart policy '%s'." % rname, 125)
    if rcount and rname != "on-failure":
        raise DockerError("docker: maximum retry count cannot be used with restart policy '%s'.\n"
                          "See 'docker %s --help'." % (rname, cmd), 125)
    if rcount and not rcount.isdigit():
        raise DockerError("docker: strconv.Atoi: parsing \"%s\": invalid syntax.\nSee 'docker %s --help'."
                          % (rcount, cmd), 125)
    if opts.get("rm") and rname != "no":
        raise DockerError("docker: Conflicting options: --restart and --rm.\nSee 'docker %s --help'." % cmd, 125)
    name = opts.get("name")
    if name is not None and not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
        raise DockerError("docker: Error response from daemon: Invalid container name (%s), only "
                          "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed.\nSee 'docker %s --help'." % (name, cmd), 125)
    env = [DEFAULT_PATH_ENV]
    for f in opts.get("env-file", []):
        env.extend(parse_env_file(f))
    for e in opts.get("env", []):
        if e.startswith("="):
            raise DockerError("docker: invalid environment variable: %s\nSee 'docker %s --help'." % (e, cmd), 125)
        if "=" in e:
            env.append(e)
        elif e in os.environ:
            env.append("%s=%s" % (e, os.environ[e]))
    # later entries override earlier ones with the same key, like the daemon does
    merged = {}
    for e in env:
        merged[e.split("=", 1)[0]] = e
    env = list(merged.values())
    labels = {}
    for lf in opts.get("label-file", []):
        for line in parse_env_file(lf):
            k, _, v = line.partition("=")
            labels[k] = v
    for l in opts.get("label", []):
        k, _, v = l.partition("=")
        labels[k] = v
    binds = []
    mounts = []
    for v in opts.get("volume", []):
        parts = v.split(":")
        if len(parts) == 1:
            if not v.startswith("/"):
                raise DockerError("docker: Error response from daemon: invalid volume specification: '%s'." % v, 125)
            mounts.append({"Type": "volume", "Destination": v, "RW": True})
            continue
        if len(parts) > 3 or not parts[0] or not parts[1].startswith("/"):
            raise DockerError("docker: Error response from daemon: invalid volume specification: '%s'." % v, 125)
        mode = parts[2] if len(parts) == 3 else ""
        valid_modes = {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate",
                       "nocopy", "delegated", "cached", "consistent"}
        if mode and any(m not in valid_modes for m in mode.split(",")):
            raise DockerError("docker: Error response from daemon: invalid mode: %s." % mode, 125)
        binds.append(v)
        mounts.append({"Type": "bind" if parts[0].startswith("/") else "volume", "Source": parts[0],
                       "Destination": parts[1], "Mode": mode, "RW": "ro" not in mode.split(",")})
    net = opts.get("network", "default")
    pid_mode = opts.get("pid", "")
    ensure_image(image, opts.get("pull", "missing"), cmd)
    with flocked(LOCK):
        if net not in ("default", "bridge", "host", "none"):
            if net.startswith("container:"):
                other = find_container(net.split(":", 1)[1])
                if other is None:
                    raise DockerError("docker: Error response from daemon: No such container: %s." % net.split(":", 1)[1], 125)
            else:
                raise DockerError("docker: Error response from daemon: network %s not found." % net, 125)
        if pid_mode not in ("", "host") and not pid_mode.startswith("container:"):
            raise DockerError("docker: Error response from daemon: invalid PID mode: %s." % pid_mode, 125)
        if name is None:
            while True:
                name = "%s_%s" % (random.choice(NAME_ADJ), random.choice(NAME_NOUN))
                if not os.path.exists(container_path(name)):
                    break
        name = name.lstrip("/")
        existing = read_json(container_path(name))
        if existing:
            raise DockerError("docker: Error response from daemon: Conflict. The container name \"/%s\" is already in "
                              "use by container \"%s\". You have to remove (or rename) that container to be able to "
                              "reuse that name.\nSee 'docker %s --help'." % (name, existing["Id"], cmd), 125)
        cid = os.urandom(32).hex()
        now = common.rfc3339()
        entrypoint = None
        if opts.get("entrypoint"):
            entrypoint = [opts["entrypoint"]]
        path = (entrypoint or command or ["/bin/sh"])[0]
        c = {
            "Id": cid,
            "Created": now,
            "Path": path,
            "Args": (entrypoint[1:] + command) if entrypoint else command[1:],
            "State": {"Status": "created" if create_only else "running", "Running": not create_only,
                      "Paused": False, "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": 0,
                      "ExitCode": 0, "Error": "", "StartedAt": "0001-01-01T00:00:00Z" if create_only else now,
                      "FinishedAt": "0001-01-01T00:00:00Z"},
            "Image": image_id(image),
            "Name": "/" + name,
            "RestartCount": 0,
            "HostConfig": {
                "Binds": binds or None,
                "NetworkMode": net,
                "PortBindings": {},
                "RestartPolicy": {"Name": rname, "MaximumRetryCount": int(rcount or 0)},
                "AutoRemove": bool(opts.get("rm")),
                "CapAdd": opts.get("cap-add"),
                "CapDrop": opts.get("cap-drop"),
                "Privileged": bool(opts.get("privileged")),
                "PidMode": pid_mode,
                "IpcMode": opts.get("ipc", "private"),
                "UTSMode": opts.get("uts", ""),
                "LogConfig": {"Type": opts.get("log-driver", "json-file"),
                              "Config": dict(o.partition("=")[::2] for o in opts.get("log-opt", []))},
            },
            "Mounts": mounts,
            "Config": {
                "Hostname": opts.get("hostname") or (socket.gethostname() if net == "host" else cid[:12]),
                "User": opts.get("user", ""),
                "Tty": bool(opts.get("tty")),
                "OpenStdin": bool(opts.get("interactive")),
                "Env": env,
                "Cmd": command or None,
                "Image": image,
                "WorkingDir": opts.get("workdir", ""),
                "Entrypoint": entrypoint,
                "Labels": labels,
            },
            "NetworkSettings": {"Networks": {("bridge" if net == "default" else net): {}}},
            "_fake": {"ManuallyStopped": False},
        }
        os.makedirs(CONTAINERS_DIR, exist_ok=True)
        add_image(image)
        crash = not create_only and dockerstate.crashes(image)
        if crash:
            dockerstate.start_loop(c)
        # a crashing --rm container is gone as soon as it exits
        if not (crash and c["HostConfig"]["AutoRemove"]):
            save(c)
    if create_only or opts.get("detach"):
        out(cid)
        return 0
    if crash:
        return 1  # attached: the container exited 1 (docker restarts it in the background)
    # attached: behave like a foreground container until signalled
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    with flocked(LOCK):
        cur = read_json(container_path(name))
        if cur and cur["Id"] == cid:
            if cur["HostConfig"].get("AutoRemove"):
                os.unlink(container_path(name))
            else:
                cur["State"].update(Status="exited", Running=False, ExitCode=0, FinishedAt=common.rfc3339())
                save(cur)
    return 0


def pull_lines(ref, known):
    ref = normalize_ref(ref)
    name, _, tag = ref.rpartition(":") if "@" not in ref else (ref.split("@")[0], "", ref.split("@")[1])
    return ["%s: Pulling from %s" % (tag, name),
            "Digest: sha256:%s" % image_id(ref)[7:],
            "Status: %s for %s" % ("Image is up to date" if known else "Downloaded newer image", ref)]


def ensure_image(image, pull, cmd):
    """What run/create do about the image: pull it when it is not local (default),
    always or never (--pull), failing like the daemon when the registry cannot serve it."""
    if pull not in ("always", "missing", "never"):
        raise DockerError("docker: invalid pull option: '%s': must be one of \"always\", \"missing\" or "
                          "\"never\".\nSee 'docker %s --help'." % (pull, cmd), 125)
    local = normalize_ref(image) in images()
    if pull == "never" or (pull == "missing" and local):
        if not local:
            raise DockerError("docker: Error response from daemon: No such image: %s.\nSee 'docker %s --help'."
                              % (normalize_ref(image), cmd), 125)
        return
    if not local and pull == "missing":
        sys.stderr.write("Unable to find image '%s' locally\n" % normalize_ref(image))
        sys.stderr.flush()
    why = dockerstate.pull_error(image)
    if why:
        raise DockerError("docker: Error response from daemon: %s.\nSee 'docker %s --help'." % (why, cmd), 125)
    with flocked(LOCK):
        add_image(image)
    sys.stderr.write("\n".join(pull_lines(image, local)) + "\n")
    sys.stderr.flush()


STALE_PLUGIN_STALL = 15.0  # seconds dockerd spends on a plugin socket nobody listens on


def stall_on_stale_plugins():
    """An untyped inspect of a name that is neither container nor image goes on to
    networks, volumes and plugins: dockerd then dials every socket in /run/docker/plugins,
    and one that a stopped plugin left behind (nobody listens) costs it about 15 s of retries
    before the answer comes, as measured on dockerd 20.10."""
    for path in glob.glob("/run/docker/plugins/*.sock"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except ConnectionRefusedError:
            time.sleep(STALE_PLUGIN_STALL)
            return
        except OSError:
            pass
        finally:
            s.close()


def cmd_inspect(args, forced_type=None):
    table = {"-f": ("format", True), "--format": ("format", True), "--type": ("type", True),
             "-s": ("size", False), "--size": ("size", False)}
    opts, rest = parse_flags(args, table, "inspect")
    if not rest:
        raise DockerError("\"docker inspect\" requires at least 1 argument.\nSee 'docker inspect --help'.", 1)
    typ = forced_type or opts.get("type", "")
    if typ not in ("", "container", "image"):
        raise DockerError("\"%s\" is not a valid value for --type" % typ, 1)
    ensure_daemon()
    found, errors = [], []
    for ref in rest:
        obj = None
        if typ in ("", "container"):
            c = find_container(ref)
            if c:
                obj = public(c)
        if obj is None and typ in ("", "image"):
            imgs = images()
            key = normalize_ref(ref) if valid_ref(ref) else ref
            if key in imgs or any(v["Id"] == ref or v["Id"] == "sha256:" + ref for v in imgs.values()):
                if key not in imgs:
                    key = next(k for k, v in imgs.items() if v["Id"] in (ref, "sha256:" + ref))
                obj = {"Id": imgs[key]["Id"], "RepoTags": [key], "RepoDigests": [], "Created": imgs[key]["Created"],
                       "Config": {"Env": [DEFAULT_PATH_ENV], "Cmd": None, "Labels": None},
                       "Architecture": "amd64", "Os": "linux"}
        if obj is None and typ == "":
            stall_on_stale_plugins()
        if obj is None:
            errors.append("Error: No such %s: %s" % ({"": "object"}.get(typ, typ), ref))
        else:
            found.append(obj)
    if opts.get("format"):
        for o in found:
            out(render(opts["format"], o))
    else:
        out(json.dumps(found, indent=4))
    if errors:
        raise DockerError("\n".join(errors), 1)
    return 0


def parse_filters(vals):
    filters = {}
    for f in vals:
        k, eq, v = f.partition("=")
        if not eq:
            raise DockerError("Error response from daemon: Invalid filter '%s'" % f, 1)
        if k not in ("name", "id", "status", "label", "ancestor", "before", "since", "network", "exited"):
            raise DockerError("Error response from daemon: Invalid filter '%s'" % k, 1)
        filters.setdefault(k, []).append(v)
    return filters


def match_filters(c, filters):
    for k, vals in filters.items():
        ok = False
        for v in vals:
            if k == "name":
                n = c["Name"]
                try:
                    ok = bool(re.search(v, n) or re.search(v, n.lstrip("/")))
                except re.error:
                    ok = v in n
            elif k == "id":
                ok = c["Id"].startswith(v)
            elif k == "status":
                ok = c["State"]["Status"] == v
            elif k == "label":
                lk, eq, lv = v.partition("=")
                labels = c["Config"].get("Labels") or {}
                ok = lk in labels and (not eq or labels[lk] == lv)
            elif k == "ancestor":
                ok = normalize_ref(c["Config"]["Image"]) == normalize_ref(v) if valid_ref(v) else False
            elif k == "network":
                ok = c["HostConfig"]["NetworkMode"] == v
            elif k == "exited":
                ok = not c["State"]["Running"] and str(c["State"].get("ExitCode")) == v
            else:
                ok = True
            if ok:
                break
        if not ok:
            return False
    return True


def ps_row(c, no_trunc):
    cmd = " ".join([c.get("Path", "")] + list(c.get("Args") or [])).strip()
    labels = c["Config"].get("Labels") or {}
    return {
        "ID": c["Id"] if no_trunc else short_id(c["Id"]),
        "Image": c["Config"]["Image"],
        "Command": '"%s"' % (cmd if no_trunc or len(cmd) <= 20 else cmd[:19] + "\u2026"),
        "CreatedAt": c["Created"],
        "RunningFor": human_duration(time.time() - parse_ts(c["Created"])) + " ago",
        "Ports": "",
        "State": c["State"]["Status"],
        "Status": status_text(c),
        "Size": "0B",
        "Names": c["Name"].lstrip("/"),
        "Labels": ",".join("%s=%s" % kv for kv in sorted(labels.items())),
        "Mounts": ",".join(m.get("Source", m.get("Destination", "")) for m in c.get("Mounts", [])),
        "Networks": c["HostConfig"]["NetworkMode"] if c["HostConfig"]["NetworkMode"] != "default" else "bridge",
    }


def cmd_ps(args):
    table = {"-a": ("all", False), "--all": ("all", False), "-q": ("quiet", False), "--quiet": ("quiet", False),
             "-f": ("filter", True), "--filter": ("filter", True), "--format": ("format", True),
             "--no-trunc": ("no-trunc", False), "-n": ("last", True), "--last": ("last", True),
             "-l": ("latest", False), "--latest": ("latest", False), "-s": ("size", False), "--size": ("size", False)}
    MULTI.add("filter")
    opts, rest = parse_flags(args, table, "ps")
    if rest:
        raise DockerError("\"docker ps\" accepts no arguments.\nSee 'docker ps --help'.", 1)
    ensure_daemon()
    filters = parse_filters(opts.get("filter", []))
    cs = [c for c in all_containers() if (opts.get("all") or c["State"]["Running"]) and match_filters(c, filters)]
    if opts.get("latest"):
        cs = cs[:1]
    if opts.get("last"):
        cs = cs[: int(opts["last"])]
    rows = [ps_row(c, opts.get("no-trunc")) for c in cs]
    if opts.get("quiet"):
        for r in rows:
            out(r["ID"])
        return 0
    fmt = opts.get("format")
    if fmt and fmt != "table":
        if fmt.startswith("table"):
            fmt = fmt[5:].lstrip()
            header = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: {"ID": "CONTAINER ID"}.get(
                m.group(1), m.group(1).upper()), fmt)
            out(render(header, {}))
        for r in rows:
            out(render(fmt, r))
        return 0
    cols = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
            ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for h, k in cols]
    line = lambda vals: "   ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()
    out(line([h for h, _ in cols]))
    for r in rows:
        out(line([r[k] for _, k in cols]))
    return 0


def each_container(refs, cmd, fn):
    if not refs:
        raise DockerError("\"docker %s\" requires at least 1 argument.\nSee 'docker %s --help'." % (cmd, cmd), 1)
    ensure_daemon()
    failed = []
    for ref in refs:
        with flocked(LOCK):
            c = find_container(ref)
            if c is None:
                # docker 20.10 wording: rm reports client-side, the others relay the daemon's error
                failed.append(("Error: No such container: %s" if cmd == "rm" else
                               "Error response from daemon: No such container: %s") % ref)
                continue
            msg = fn(c)
        if msg:
            failed.append(msg)
        else:
            out(ref)
    if failed:
        raise DockerError("\n".join(failed), 1)
    return 0


def cmd_rm(args):
    table = {"-f": ("force", False), "--force": ("force", False), "-v": ("volumes", False),
             "--volumes": ("volumes", False), "-l": ("link", False), "--link": ("link", False)}
    opts, rest = parse_flags(args, table, "rm")

    def rm(c):
        if c["State"]["Running"] and not opts.get("force"):
            return ("Error response from daemon: You cannot remove a %s container %s. Stop the container "
                    "before attempting removal or force remove" % (dockerstate.settled_kind(c), c["Id"]))
        dockerstate.end_loop(c)
        os.unlink(container_path(c["Name"].lstrip("/")))
        return None

    return each_container(rest, "rm", rm)


def cmd_stop(args, kill=False):
    table = {"-t": ("time", True), "--time": ("time", True), "-s": ("signal", True), "--signal": ("signal", True)}
    opts, rest = parse_flags(args, table, "kill" if kill else "stop")

    def stop(c):
        if c["State"]["Running"]:
            if c["HostConfig"].get("AutoRemove"):
                dockerstate.end_loop(c)
                os.unlink(container_path(c["Name"].lstrip("/")))
                return None
            if c["State"].get("Restarting"):
                # no process to signal: the restart is canceled and the last exit stays
                c["State"].update(Status="exited", Running=False, Restarting=False)
            else:
                c["State"].update(Status="exited", Running=False, ExitCode=137 if kill else 0,
                                  FinishedAt=common.rfc3339())
            dockerstate.end_loop(c)
            c["_fake"]["ManuallyStopped"] = True
            save(c)
        elif kill:
            return "Error response from daemon: Cannot kill container: %s: Container %s is not running" % (
                c["Name"].lstrip("/"), c["Id"])
        return None

    return each_container(rest, "kill" if kill else "stop", stop)


def cmd_start(args, restart=False):
    table = {"-a": ("attach", False), "--attach": ("attach", False), "-i": ("interactive", False),
             "-t": ("time", True), "--time": ("time", True)}
    opts, rest = parse_flags(args, table, "restart" if restart else "start")

    def start(c):
        # a restarting container counts as running: `docker start` leaves its loop alone
        if restart or not c["State"]["Running"]:
            dockerstate.end_loop(c)
            c["State"].update(Status="running", Running=True, Restarting=False, StartedAt=common.rfc3339(),
                              ExitCode=0)
            c["RestartCount"] = 0
            c["_fake"]["ManuallyStopped"] = False
            if dockerstate.crashes(c["Config"]["Image"]):
                dockerstate.start_loop(c)
            save(c)
        return None

    try:
        return each_container(rest, "restart" if restart else "start", start)
    except DockerError as e:
        if not restart and "No such container" in e.msg:
            bad = [r for r in rest if "No such container: %s" % r in e.msg]
            raise DockerError(e.msg + "\nError: failed to start containers: " + ", ".join(bad), 1)
        raise


def cmd_rename(args):
    if len(args) != 2:
        raise DockerError('"docker rename" requires exactly 2 arguments.\nSee \'docker rename --help\'.\n\n'
                          'Usage:  docker rename CONTAINER NEW_NAME', 1)
    ensure_daemon()
    old, new = args
    c = find_container(old)
    if c is None:
        raise DockerError("Error response from daemon: No such container: %s" % old, 1)
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", new):
        raise DockerError("Error response from daemon: Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                          "are allowed" % new, 1)
    clash = find_container(new)
    if clash is not None:
        raise DockerError('Error response from daemon: Conflict. The container name "/%s" is already in use by '
                          'container "%s". You have to remove (or rename) that container to be able to reuse '
                          "that name." % (new, clash["Id"]), 1)
    with flocked(LOCK):
        os.unlink(container_path(c["Name"].lstrip("/")))
        c["Name"] = "/" + new
        save(c)
    return 0


def cmd_update(args):
    table = {"--restart": ("restart", True)}
    opts, rest = parse_flags(args, table, "update")
    if not rest:
        raise DockerError('"docker update" requires at least 1 argument.', 1)
    policy = opts.get("restart")
    if policy is not None:
        name, _, count = policy.partition(":")
        if name not in ("no", "always", "unless-stopped", "on-failure"):
            raise DockerError("Error response from daemon: invalid restart policy '%s'" % policy, 1)

    def update(c):
        if policy is not None:
            c["HostConfig"]["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
            loop = c["_fake"].get("loop")
            if loop:
                if dockerstate.settled_kind(c) == "restarting":
                    # the restart already scheduled still happens; the new policy decides after it
                    loop["segments"].append([c["RestartCount"] + 1, name, int(count or 0)])
                else:
                    dockerstate.end_loop(c)
            save(c)
        return None

    return each_container(rest, "update", update)


def cmd_logs(args):
    table = {"-f": ("follow", False), "--follow": ("follow", False), "--tail": ("tail", True),
             "-n": ("tail", True), "-t": ("timestamps", False), "--timestamps": ("timestamps", False),
             "--since": ("since", True), "--until": ("until", True), "--details": ("details", False)}
    opts, rest = parse_flags(args, table, "logs")
    if len(rest) != 1:
        raise DockerError("\"docker logs\" requires exactly 1 argument.\nSee 'docker logs --help'.", 1)
    ensure_daemon()
    if find_container(rest[0]) is None:
        raise DockerError("Error: No such container: %s" % rest[0], 1)
    return 0


def cmd_exec(args):
    table = {"-d": ("detach", False), "--detach": ("detach", False), "-i": ("interactive", False),
             "--interactive": ("interactive", False), "-t": ("tty", False), "--tty": ("tty", False),
             "-e": ("env", True), "--env": ("env", True), "-u": ("user", True), "--user": ("user", True),
             "-w": ("workdir", True), "--workdir": ("workdir", True), "--privileged": ("privileged", False)}
    opts, rest = parse_flags(args, table, "exec", interspersed=False)
    if len(rest) < 2:
        raise DockerError("\"docker exec\" requires at least 2 arguments.\nSee 'docker exec --help'.", 1)
    ensure_daemon()
    c = find_container(rest[0])
    if c is None:
        raise DockerError("Error: No such container: %s" % rest[0], 1)
    if not c["State"]["Running"]:
        raise DockerError("Error response from daemon: Container %s is not running" % c["Id"], 1)
    if c["State"].get("Restarting"):
        raise DockerError("Error response from daemon: Container %s is restarting, wait until the container is "
                          "running" % c["Id"], 1)
    from . import services

    if services.repository(c["Config"]["Image"]) == "calico/node" and \
            os.path.basename(rest[1]) in ("birdcl", "birdcl6"):
        res = services.birdcl(c, rest[1:])
        if res is not None:
            code, stdout, stderr = res
            sys.stdout.write(stdout)
            sys.stdout.flush()
            sys.stderr.write(stderr)
            return code
    raise DockerError("OCI runtime exec failed: the fake docker of the test agents runs no container processes: "
                      "unknown", 126)


def cmd_pull(args):
    table = {"-q": ("quiet", False), "--quiet": ("quiet", False), "-a": ("all-tags", False),
             "--platform": ("platform", True)}
    opts, rest = parse_flags(args, table, "pull")
    if len(rest) != 1:
        raise DockerError("\"docker pull\" requires exactly 1 argument.\nSee 'docker pull --help'.", 1)
    ensure_daemon()
    ref = rest[0]
    if not valid_ref(ref):
        raise DockerError("invalid reference format", 1)
    _, _, tag, digest = dockerstate.split_ref(ref)
    if not tag and not digest and not opts.get("quiet"):
        out("Using default tag: latest")
    why = dockerstate.pull_error(ref)
    if why:
        raise DockerError("Error response from daemon: %s" % why, 1)
    with flocked(LOCK):
        known = normalize_ref(ref) in images()
        add_image(ref)
    if not opts.get("quiet"):
        for line in pull_lines(ref, known):
            out(line)
    out(dockerstate.canonical(ref))
    return 0


def cmd_images(args):
    table = {"-q": ("quiet", False), "--quiet": ("quiet", False), "-a": ("all", False),
             "--format": ("format", True), "--no-trunc": ("no-trunc", False), "-f": ("filter", True)}
    opts, rest = parse_flags(args, table, "images")
    ensure_daemon()
    rows = []
    for ref, v in sorted(images().items()):
        repo, _, tag = ref.rpartition(":")
        if rest and not normalize_ref(rest[0]).startswith(rest[0]) and rest[0] != repo:
            continue
        rows.append({"Repository": repo, "Tag": tag, "ID": v["Id"][7:19], "CreatedSince": "1 minute ago", "Size": "0B"})
    if opts.get("quiet"):
        for r in rows:
            out(r["ID"])
    elif opts.get("format"):
        for r in rows:
            out(render(opts["format"], r))
    else:
        out("%-40s %-12s %-14s %-16s %s" % ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"))
        for r in rows:
            out("%-40s %-12s %-14s %-16s %s" % (r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"]))
    return 0


def cmd_rmi(args):
    table = {"-f": ("force", False), "--force": ("force", False)}
    opts, rest = parse_flags(args, table, "rmi")
    ensure_daemon()
    errs = []
    with flocked(LOCK):
        imgs = images()
        for ref in rest:
            key = normalize_ref(ref) if valid_ref(ref) else ref
            if key not in imgs:
                errs.append("Error: No such image: %s" % ref)
                continue
            users = [c for c in all_containers() if normalize_ref(c["Config"]["Image"]) == key]
            if users and not opts.get("force"):
                errs.append("Error response from daemon: conflict: unable to remove repository reference \"%s\" "
                            "(must force) - container %s is using its referenced image %s"
                            % (ref, short_id(users[0]["Id"]), imgs[key]["Id"][7:19]))
                continue
            out("Untagged: %s" % key)
            del imgs[key]
        write_json(IMAGES_FILE, imgs)
    if errs:
        raise DockerError("\n".join(errs), 1)
    return 0


def cmd_load(args):
    import tarfile

    table = {"-i": ("input", True), "--input": ("input", True), "-q": ("quiet", False), "--quiet": ("quiet", False)}
    opts, rest = parse_flags(args, table, "load")
    ensure_daemon()
    try:
        if opts.get("input"):
            tf = tarfile.open(opts["input"])
        else:
            tf = tarfile.open(fileobj=sys.stdin.buffer, mode="r|*")
        manifest = None
        for m in tf:
            if m.name.lstrip("./") == "manifest.json":
                manifest = json.load(tf.extractfile(m))
                break
    except FileNotFoundError as e:
        raise DockerError("open %s: no such file or directory" % opts.get("input"), 1)
    except (tarfile.TarError, OSError, ValueError) as e:
        raise DockerError("Error processing tar file(exit status 1): unexpected EOF", 1)
    if not manifest:
        raise DockerError("open /var/lib/docker/tmp/docker-import-000000000/repositories: no such file or directory", 1)
    with flocked(LOCK):
        for entry in manifest:
            for tag in entry.get("RepoTags") or []:
                add_image(tag)
                out("Loaded image: %s" % tag)
    return 0


def cmd_version(args):
    table = {"-f": ("format", True), "--format": ("format", True)}
    opts, rest = parse_flags(args, table, "version")
    cv = common.docker_version()
    client = {"Platform": {"Name": ""}, "Version": cv, "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
              "GitCommit": common.docker_build(cv), "GoVersion": "go1.19.8", "Os": "linux", "Arch": "amd64",
              "Context": "default", "Experimental": True}
    try:
        st = ensure_daemon()
        server = {"Platform": {"Name": "Docker Engine - Community"}, "Version": st["ServerVersion"],
                  "ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "GitCommit": st.get("GitCommit", ""),
                  "GoVersion": "go1.19.8", "Os": "linux", "Arch": "amd64", "KernelVersion": os.uname().release,
                  "Components": [{"Name": "Engine", "Version": st["ServerVersion"]}]}
        down = None
    except DockerError as e:
        server, down = None, e
    if opts.get("format"):
        if down:
            raise down
        out(render(opts["format"], {"Client": client, "Server": server}))
        return 0
    out("Client: Docker Engine - Community\n Version:           %s\n API version:       %s\n Go version:        "
        "go1.19.8\n Git commit:        %s\n OS/Arch:           linux/amd64\n Context:           default"
        % (cv, API_VERSION, client["GitCommit"]))
    if down:
        raise down
    out("\nServer: Docker Engine - Community\n Engine:\n  Version:          %s\n  API version:      %s (minimum "
        "version 1.12)\n  Go version:       go1.19.8\n  Git commit:       %s\n  OS/Arch:          linux/amd64\n"
        "  Experimental:     false" % (server["Version"], API_VERSION, server["GitCommit"]))
    return 0


def cmd_info(args):
    table = {"-f": ("format", True), "--format": ("format", True)}
    opts, rest = parse_flags(args, table, "info")
    try:
        st = ensure_daemon()
    except DockerError as e:
        if opts.get("format"):
            raise
        out("Client:\n Context:    default\n Debug Mode: false\n\nServer:")
        raise DockerError("ERROR: %s\nerrors pretty printing info" % CANNOT_CONNECT, 1)
    cs = all_containers()
    # the daemon's state counter: a restarting container counts as stopped
    running = sum(1 for c in cs if c["State"]["Running"] and not c["State"].get("Restarting"))
    info = {
        "ID": "FAKE:" + socket.gethostname().upper(),
        "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": 0,
        "ContainersStopped": len(cs) - running, "Images": len(images()),
        "Driver": st.get("Driver", "overlay2"), "DriverStatus": [["Backing Filesystem", "extfs"]],
        "DockerRootDir": st.get("DockerRootDir", "/var/lib/docker"), "Debug": st.get("Debug", False),
        "LoggingDriver": st.get("LoggingDriver", "json-file"), "CgroupDriver": "cgroupfs", "CgroupVersion": "1",
        "KernelVersion": os.uname().release, "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSType": "linux",
        "Architecture": "x86_64", "IndexServerAddress": "https://index.docker.io/v1/",
        "NCPU": os.cpu_count(), "Name": socket.gethostname(), "Labels": st.get("Labels", []),
        "ExperimentalBuild": False, "ServerVersion": st["ServerVersion"],
        "ClusterStore": st.get("ClusterStore", ""), "ClusterAdvertise": st.get("ClusterAdvertise", ""),
        "LiveRestoreEnabled": st.get("LiveRestoreEnabled", False),
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": st.get("RegistryMirrors", [])},
        "Warnings": [],
        "_omitempty": ["ClusterStore", "ClusterAdvertise"],
    }
    if opts.get("format"):
        out(render(opts["format"], info))
        return 0
    lines = ["Client:", " Context:    default", " Debug Mode: false", "", "Server:",
             " Containers: %d" % info["Containers"], "  Running: %d" % running, "  Paused: 0",
             "  Stopped: %d" % info["ContainersStopped"], " Images: %d" % info["Images"],
             " Server Version: %s" % info["ServerVersion"], " Storage Driver: %s" % info["Driver"],
             " Logging Driver: %s" % info["LoggingDriver"], " Cgroup Driver: cgroupfs", " Cgroup Version: 1",
             " Kernel Version: %s" % info["KernelVersion"], " Operating System: %s" % info["OperatingSystem"],
             " OSType: linux", " Architecture: x86_64", " CPUs: %d" % info["NCPU"], " Name: %s" % info["Name"],
             " ID: %s" % info["ID"], " Docker Root Dir: %s" % info["DockerRootDir"],
             " Debug Mode: %s" % ("true" if info["Debug"] else "false")]
    if info["ClusterStore"]:
        lines.append(" Cluster Store: %s" % info["ClusterStore"])
    if info["ClusterAdvertise"]:
        lines.append(" Cluster Advertise: %s" % info["ClusterAdvertise"])
    lines += [" Registry: https://index.docker.io/v1/", " Experimental: false", " Insecure Registries:",
              "  127.0.0.0/8", " Live Restore Enabled: %s" % ("true" if info["LiveRestoreEnabled"] else "false")]
    out("\n".join(lines))
    return 0


COMMANDS = {
    "run": cmd_run, "create": lambda a: cmd_run(a, create_only=True), "inspect": cmd_inspect, "ps": cmd_ps,
    "rm": cmd_rm, "stop": cmd_stop, "kill": lambda a: cmd_stop(a, kill=True), "start": cmd_start,
    "restart": lambda a: cmd_start(a, restart=True), "logs": cmd_logs, "exec": cmd_exec, "pull": cmd_pull,
    "images": cmd_images, "rmi": cmd_rmi, "load": cmd_load, "version": cmd_version, "info": cmd_info,
    "rename": cmd_rename, "update": cmd_update,
}
CONTAINER_SUB = {"run": "run", "create": "create", "inspect": "inspect", "ls": "ps", "list": "ps", "ps": "ps",
                 "rm": "rm", "remove": "rm", "stop": "stop", "kill": "kill", "start": "start",
                 "restart": "restart", "logs": "logs", "exec": "exec", "rename": "rename",
                 "update": "update"}
IMAGE_SUB = {"inspect": "image-inspect", "ls": "images", "list": "images", "pull": "pull", "rm": "rmi",
             "remove": "rmi", "load": "load"}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # global options
    while argv and argv[0].startswith("-"):
        a = argv.pop(0)
        if a in ("-v", "--version"):
            v = common.docker_version()
            out("Docker version %s, build %s" % (v, common.docker_build(v)))
            return 0
        if a in ("-D", "--debug", "--tls", "--tlsverify"):
            continue
        if a in ("-H", "--host", "-l", "--log-level", "-c", "--context", "--config", "--tlscacert", "--tlscert",
                 "--tlskey"):
            if argv:
                argv.pop(0)
            continue
        if a.split("=")[0] in ("--host", "--log-level", "--context", "--config"):
            continue
        if a in ("-h", "--help"):
            out("Usage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers (fake)")
            return 0
        sys.stderr.write("unknown flag: %s\nSee 'docker --help'.\n" % a)
        return 125
    if not argv:
        out("Usage:  docker [OPTIONS] COMMAND")
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == "container" and args and args[0] in CONTAINER_SUB:
        cmd, args = CONTAINER_SUB[args[0]], args[1:]
    elif cmd == "image" and args and args[0] in IMAGE_SUB:
        cmd, args = IMAGE_SUB[args[0]], args[1:]
    try:
        if cmd == "image-inspect":
            return cmd_inspect(args, forced_type="image")
        if cmd == "container" and False:
            pass
        if cmd not in COMMANDS:
            sys.stderr.write("docker: '%s' is not a docker command.\nSee 'docker --help'\n" % cmd)
            return 1
        return COMMANDS[cmd](args)
    except DockerError as e:
        msg = e.msg
        if cmd in ("run", "create") and msg == "docker: " + CANNOT_CONNECT:
            msg = "docker: %s.\nSee 'docker %s --help'." % (CANNOT_CONNECT, cmd)
            e.code = 125
        sys.stderr.write(msg + "\n")
        return e.code
    except BrokenPipeError:
        return 1


def entry():
    sys.exit(main())
