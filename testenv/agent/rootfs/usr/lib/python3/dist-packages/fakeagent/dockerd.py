"""Fake `dockerd`: validates its configuration like the real daemon, then idles.

Refuses to start (exit 1, message on stderr) on the errors the real daemon
refuses: unparsable daemon.json, unknown directives, wrong value types,
directives given both as a flag and in the file, cluster-store options on
Docker >= 23 (removed there), and the fail-restart-docker fault switch.
"""

import json
import os
import signal
import socket
import sys
import time

from . import common
from . import dockerstate
from .common import err, read_json, write_json

DEFAULT_CONFIG = "/etc/docker/daemon.json"
CONTAINERS_DIR = common.DOCKER_LIB_DIR + "/containers"

# daemon.json directives (Docker 20.10) and their JSON types.
B, S, L, M, I, O = "bool", "string", "list", "map", "int", "object"
DIRECTIVES = {
    "allow-nondistributable-artifacts": L, "api-cors-header": S, "authorization-plugins": L,
    "bip": S, "bridge": S, "cgroup-parent": S, "cluster-advertise": S, "cluster-store": S,
    "cluster-store-opts": M, "containerd": S, "containerd-namespace": S,
    "containerd-plugins-namespace": S, "data-root": S, "debug": B, "default-address-pools": L,
    "default-cgroupns-mode": S, "default-gateway": S, "default-gateway-v6": S, "default-ipc-mode": S,
    "default-runtime": S, "default-shm-size": S, "default-ulimits": O, "dns": L, "dns-opts": L,
    "dns-search": L, "exec-opts": L, "exec-root": S, "experimental": B, "features": O,
    "fixed-cidr": S, "fixed-cidr-v6": S, "group": S, "hosts": L, "icc": B, "init": B,
    "init-path": S, "insecure-registries": L, "ip": S, "ip-forward": B, "ip-masq": B, "iptables": B,
    "ip6tables": B, "ipv6": B, "labels": L, "live-restore": B, "log-driver": S, "log-format": S,
    "log-level": S, "log-opts": M, "max-concurrent-downloads": I, "max-concurrent-uploads": I,
    "max-download-attempts": I, "mtu": I, "no-new-privileges": B, "node-generic-resources": L,
    "oom-score-adjust": I, "pidfile": S, "raw-logs": B, "registry-mirrors": L, "runtimes": O,
    "seccomp-profile": S, "selinux-enabled": B, "shutdown-timeout": I, "storage-driver": S,
    "storage-opts": L, "swarm-default-advertise-addr": S, "tls": B, "tlscacert": S, "tlscert": S,
    "tlskey": S, "tlsverify": B, "userland-proxy": B, "userland-proxy-path": S, "userns-remap": S,
    "metrics-addr": S, "builder": O, "registry-config": S,
}
REMOVED_IN_23 = ("cluster-store", "cluster-advertise", "cluster-store-opts")

# command line flags: flag -> (directive, takes_value)
FLAGS = {
    "--add-runtime": ("runtimes", True), "--allow-nondistributable-artifacts": ("allow-nondistributable-artifacts", True),
    "--api-cors-header": ("api-cors-header", True), "--authorization-plugin": ("authorization-plugins", True),
    "-b": ("bridge", True), "--bridge": ("bridge", True), "--bip": ("bip", True),
    "--cgroup-parent": ("cgroup-parent", True), "--cluster-advertise": ("cluster-advertise", True),
    "--cluster-store": ("cluster-store", True), "--cluster-store-opt": ("cluster-store-opts", True),
    "--config-file": (None, True), "--containerd": ("containerd", True),
    "--containerd-namespace": ("containerd-namespace", True), "--data-root": ("data-root", True),
    "-D": ("debug", False), "--debug": ("debug", False), "--default-gateway": ("default-gateway", True),
    "--default-runtime": ("default-runtime", True), "--default-address-pool": ("default-address-pools", True),
    "--dns": ("dns", True), "--dns-opt": ("dns-opts", True), "--dns-search": ("dns-search", True),
    "--exec-opt": ("exec-opts", True), "--exec-root": ("exec-root", True),
    "--experimental": ("experimental", False), "--fixed-cidr": ("fixed-cidr", True),
    "-G": ("group", True), "--group": ("group", True), "-H": ("hosts", True), "--host": ("hosts", True),
    "--icc": ("icc", False), "--init": ("init", False), "--insecure-registry": ("insecure-registries", True),
    "--ip": ("ip", True), "--ip-forward": ("ip-forward", False), "--ip-masq": ("ip-masq", False),
    "--iptables": ("iptables", False), "--ipv6": ("ipv6", False), "--label": ("labels", True),
    "--live-restore": ("live-restore", False), "--log-driver": ("log-driver", True),
    "-l": ("log-level", True), "--log-level": ("log-level", True), "--log-opt": ("log-opts", True),
    "--max-concurrent-downloads": ("max-concurrent-downloads", True),
    "--max-concurrent-uploads": ("max-concurrent-uploads", True), "--mtu": ("mtu", True),
    "-p": ("pidfile", True), "--pidfile": ("pidfile", True), "--registry-mirror": ("registry-mirrors", True),
    "--selinux-enabled": ("selinux-enabled", False), "-s": ("storage-driver", True),
    "--storage-driver": ("storage-driver", True), "--storage-opt": ("storage-opts", True),
    "--tls": ("tls", False), "--tlscacert": ("tlscacert", True), "--tlscert": ("tlscert", True),
    "--tlskey": ("tlskey", True), "--tlsverify": ("tlsverify", False),
    "--userland-proxy": ("userland-proxy", False), "--userns-remap": ("userns-remap", True),
    "--metrics-addr": ("metrics-addr", True), "--validate": (None, False),
}


class Refuse(Exception):
    pass


def go_json_error(text, e):
    """Approximate Go's encoding/json error text for a Python JSONDecodeError."""
    pos = e.pos
    rest = text[pos:]
    if not rest.strip():
        return "unexpected end of JSON input"
    ch = rest[0]
    shown = ch if ch != "'" else "\\'"
    msg = e.msg
    if "property name" in msg:
        ctx = "looking for beginning of object key string"
    elif "':' delimiter" in msg:
        ctx = "after object key"
    elif "',' delimiter" in msg:
        # are we inside an object or an array?
        depth = []
        in_str = esc = False
        for c in text[:pos]:
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "[{":
                depth.append(c)
            elif c in "]}" and depth:
                depth.pop()
        ctx = "after object key:value pair" if depth and depth[-1] == "{" else "after array element"
    elif "Extra data" in msg:
        ctx = "after top-level value"
    else:
        ctx = "looking for beginning of value"
    return "invalid character '%s' %s" % (shown, ctx)


def load_config(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise Refuse("unable to configure the Docker daemon with file %s: %s" % (path, e.strerror))
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return {}
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise Refuse("unable to configure the Docker daemon with file %s: %s" % (path, go_json_error(text, e)))
    if not isinstance(cfg, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}.get(type(cfg), "value")
        raise Refuse("unable to configure the Docker daemon with file %s: json: cannot unmarshal %s into Go value "
                     "of type map[string]interface {}" % (path, kind))
    return cfg


def go_kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def check_types(path, cfg):
    gotype = {B: "bool", S: "string", L: "[]string", M: "map[string]string", I: "int", O: "struct"}
    for k, v in cfg.items():
        want = DIRECTIVES.get(k)
        if want is None or v is None:
            continue
        ok = {
            B: isinstance(v, bool),
            S: isinstance(v, str),
            L: isinstance(v, list),
            M: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
            I: isinstance(v, int) and not isinstance(v, bool),
            O: isinstance(v, (dict, list)),
        }[want]
        if not ok:
            bad = v
            if want == M and isinstance(v, dict):
                bad = next(x for x in v.values() if not isinstance(x, str))
            raise Refuse("unable to configure the Docker daemon with file %s: json: cannot unmarshal %s into Go "
                         "struct field Config.%s of type %s" % (path, go_kind(bad), k,
                                                               "string" if want == M and isinstance(v, dict) else gotype[want]))


def parse_flags(argv):
    """Returns (flags {directive: [values]}, config_file, validate, version)."""
    flags = {}
    config_file = DEFAULT_CONFIG
    validate = version = False
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a in ("-v", "--version"):
            version = True
            continue
        if a in ("-h", "--help"):
            print("Usage:\tdockerd [OPTIONS]\n\nA self-sufficient runtime for containers.")
            sys.exit(0)
        if not a.startswith("-"):
            raise Refuse("\"dockerd\" accepts no arguments.\nSee 'dockerd --help'.")
        name, eq, val = a.partition("=")
        if name not in FLAGS:
            err("unknown flag: %s\nSee 'dockerd --help'." % name)
            sys.exit(125)
        directive, takes = FLAGS[name]
        if takes and not eq:
            if i >= len(argv):
                err("flag needs an argument: %s\nSee 'dockerd --help'." % name)
                sys.exit(125)
            val = argv[i]
            i += 1
        elif not takes:
            val = val if eq else "true"
        if name == "--config-file":
            config_file = val
        elif name == "--validate":
            validate = True
        else:
            flags.setdefault(directive, []).append(val)
    return flags, config_file, validate, version


def validate_config(path, cfg, flags, version):
    unknown = sorted(k for k in cfg if k not in DIRECTIVES)
    if common.version_tuple(version) >= (23, 0, 0):
        unknown = sorted(set(unknown) | {k for k in cfg if k in REMOVED_IN_23})
    if unknown:
        raise Refuse("unable to configure the Docker daemon with file %s: the following directives don't match "
                     "any configuration option: %s" % (path, ", ".join(unknown)))
    check_types(path, cfg)
    conflicts = []
    for k in sorted(flags):
        if k in cfg:
            fv = flags[k][0] if len(flags[k]) == 1 else "[%s]" % " ".join(flags[k])
            filev = cfg[k]
            if isinstance(filev, list):
                filev = "[%s]" % " ".join(str(x) for x in filev)
            elif isinstance(filev, dict):
                filev = "map[%s]" % " ".join("%s:%s" % kv for kv in sorted(filev.items()))
            elif isinstance(filev, bool):
                filev = "true" if filev else "false"
            conflicts.append("%s: (from flag: %s, from file: %s)" % (k, fv, filev))
    if conflicts:
        raise Refuse("unable to configure the Docker daemon with file %s: the following directives are specified "
                     "both as a flag and in the configuration file: %s" % (path, ", ".join(conflicts)))
    eff = dict(cfg)
    for k, vals in flags.items():
        eff[k] = vals[-1] if DIRECTIVES.get(k) not in (L, M) else vals
    adv = eff.get("cluster-advertise")
    if adv:
        host, sep, port = str(adv).rpartition(":")
        if not sep or not host or not port.isdigit():
            raise Refuse("discovery advertise parsing failed (invalid cluster advertise IP address or interface "
                         "name (%s))" % adv)
    store = eff.get("cluster-store")
    if store and "://" not in str(store):
        raise Refuse("invalid cluster-store %q: missing scheme (expected etcd://, consul:// or zk://)".replace("%q", '"%s"') % store)
    return eff


def apply_restart_policies(live_restore):
    if not os.path.isdir(CONTAINERS_DIR):
        return
    with common.flocked(common.DOCKER_LIB_DIR + "/.lock"):
        _apply_restart_policies(live_restore)


def _apply_restart_policies(live_restore):
    for fn in sorted(os.listdir(CONTAINERS_DIR)):
        if not fn.endswith(".json"):
            continue
        path = os.path.join(CONTAINERS_DIR, fn)
        c = read_json(path)
        if not c:
            continue
        looping = dockerstate.in_loop(c)
        # a crash-looping container has no process to keep, live-restore or not
        if live_restore and c["State"].get("Running") and not looping:
            continue
        dockerstate.settle(c)
        dockerstate.end_loop(c)
        policy = c["HostConfig"]["RestartPolicy"]
        manual = c.get("_fake", {}).get("ManuallyStopped")
        st = c["State"]
        # what the daemon's restore asks the restart manager (ShouldRestart with the last exit)
        run = policy["Name"] == "always" or (policy["Name"] == "unless-stopped" and not manual) or (
            policy["Name"] == "on-failure" and (st.get("Running") or st.get("ExitCode", 0) != 0)
            and dockerstate.valid_ts(st.get("StartedAt"))
            and (not policy.get("MaximumRetryCount") or c.get("RestartCount", 0) < policy["MaximumRetryCount"]))
        if run:
            st.update(Status="running", Running=True, Restarting=False, StartedAt=common.rfc3339(), ExitCode=0,
                      Pid=0)
            c["RestartCount"] = 0
            if dockerstate.crashes(c["Config"]["Image"]):
                dockerstate.start_loop(c)
        elif st.get("Running"):
            st.update(Status="exited", Running=False, Restarting=False, FinishedAt=common.rfc3339(),
                      ExitCode=255)
        write_json(path, c)


def stop_containers():
    if not os.path.isdir(CONTAINERS_DIR):
        return
    with common.flocked(common.DOCKER_LIB_DIR + "/.lock"):
        _stop_containers()


def _stop_containers():
    for fn in os.listdir(CONTAINERS_DIR):
        path = os.path.join(CONTAINERS_DIR, fn)
        c = read_json(path)
        if not c:
            continue
        changed = dockerstate.in_loop(c)
        if changed:
            dockerstate.settle(c)
            dockerstate.end_loop(c)
        if c["State"].get("Restarting"):
            # shutdown cancels the pending restart; the last exit stays
            c["State"].update(Status="exited", Running=False, Restarting=False)
        elif c["State"].get("Running"):
            c["State"].update(Status="exited", Running=False, FinishedAt=common.rfc3339(), ExitCode=0)
        elif not changed:
            continue
        write_json(path, c)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    version = common.docker_version()
    try:
        flags, config_file, validate, show_version = parse_flags(argv)
    except Refuse as e:
        err(str(e))
        sys.exit(1)
    if show_version:
        print("Docker version %s, build %s" % (version, common.docker_build(version)))
        return
    if validate:
        if common.version_tuple(version) < (23, 0, 0):
            err("unknown flag: --validate\nSee 'dockerd --help'.")
            sys.exit(125)
        try:
            validate_config(config_file, load_config(config_file), flags, version)
        except Refuse as e:
            err(str(e))
            sys.exit(1)
        print("configuration OK")
        return

    def log(level, msg):
        sys.stderr.write('time="%s" level=%s msg="%s"\n' % (common.rfc3339(), level, msg))
        sys.stderr.flush()

    if common.fault_active("fail-restart-docker") or common.fault_active("fail-restart-docker.service"):
        err("failed to start daemon: injected fault (/etc/fake-faults/fail-restart-docker)")
        sys.exit(1)
    try:
        eff = validate_config(config_file, load_config(config_file), flags, version)
    except Refuse as e:
        err(str(e))
        sys.exit(1)
    log("info", "Starting up (fake dockerd %s)" % version)
    if eff.get("cluster-store"):
        log("info", "Initializing discovery with TTL 20s, cluster store %s" % eff["cluster-store"])

    # block the stop signals now and wait for them synchronously at the end (no race)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    live_restore = bool(eff.get("live-restore"))
    apply_restart_policies(live_restore)
    state = {
        "Pid": os.getpid(),
        "ServerVersion": version,
        "GitCommit": common.docker_build(version),
        "ConfigFile": config_file,
        "ClusterStore": eff.get("cluster-store", ""),
        "ClusterAdvertise": eff.get("cluster-advertise", ""),
        "ClusterStoreOpts": eff.get("cluster-store-opts", {}),
        "Debug": bool(eff.get("debug", False)),
        "LoggingDriver": eff.get("log-driver", "json-file"),
        "Driver": eff.get("storage-driver", "overlay2"),
        "DockerRootDir": eff.get("data-root", "/var/lib/docker"),
        "LiveRestoreEnabled": live_restore,
        "Labels": eff.get("labels", []),
        "InsecureRegistries": eff.get("insecure-registries", []),
        "RegistryMirrors": eff.get("registry-mirrors", []),
        "Name": socket.gethostname(),
        "StartedAt": common.rfc3339(),
        "EffectiveConfig": eff,
    }
    os.makedirs(common.DOCKER_RUN_DIR, exist_ok=True)
    write_json(common.DOCKER_STATE_FILE, state)
    # the calico containers' stand-in processes (Felix health, BIRD, the libnetwork plugin)
    from . import services
    services.Supervisor().start()
    log("info", "Daemon has completed initialization")
    log("info", "API listen on /var/run/docker.sock")
    common.notify_ready()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    log("info", "Processing signal 'terminated'")
    cur = read_json(common.DOCKER_STATE_FILE, {}) or {}
    if cur.get("Pid") == os.getpid():
        try:
            os.unlink(common.DOCKER_STATE_FILE)
        except FileNotFoundError:
            pass
    if not live_restore:
        stop_containers()
    log("info", "Daemon shutdown complete")
