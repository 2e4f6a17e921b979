"""Fake `mesos-agent`: validates the CNI network configuration like Mesos's
network/cni isolator does at start-up, then serves GET /health on --port.

It binds where libprocess would: the address printed by --ip_discovery_command
(MESOS_IP_DISCOVERY_COMMAND; DC/OS sets /opt/mesosphere/bin/detect_ip), else
--ip, else every address. A failing discovery command is fatal, as in Mesos.
Any broken CNI config makes it exit 1 (so it crash-loops under Restart=always).

GET /state carries "master_hostname" (and the agent "id") once the agent has
registered with its master, REGISTER_AFTER seconds after it began serving.
Fault switches: /etc/fake-faults/mesos-no-master (it never registers),
/etc/fake-faults/mesos-auth (/state and /flags answer 401 with
`WWW-Authenticate: Mesos realm="mesos"`, as with --authenticate_http_readonly;
/health stays open, as in Mesos).
"""

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import common

VERSION = "1.11.0"
MASTER_HOSTNAME = "master.mesos"
REGISTER_AFTER = 0.4  # seconds from serving to registered with the master
KNOWN_FLAGS = {
    "network_cni_config_dir", "network_cni_plugins_dir", "network_cni_root_dir_persist", "network_cni_metrics",
    "port", "ip", "ip_discovery_command", "advertise_ip", "advertise_port", "hostname", "hostname_lookup",
    "master", "work_dir", "runtime_dir", "log_dir", "logging_level", "logbufsecs", "quiet",
    "containerizers", "isolation", "image_providers", "image_provisioner_backend", "docker",
    "docker_store_dir", "docker_config", "docker_remove_delay", "docker_stop_timeout", "docker_volume_checkpoint",
    "docker_mesos_image", "docker_socket", "docker_registry", "executor_registration_timeout",
    "executor_environment_variables", "executor_shutdown_grace_period", "resources", "attributes",
    "default_role", "modules", "modules_dir", "hooks", "launcher", "launcher_dir", "systemd_enable_support",
    "systemd_runtime_directory", "cgroups_root", "cgroups_hierarchy", "cgroups_enable_cfs",
    "cgroups_limit_swap", "cgroups_cpu_enable_pids_and_tids_count", "recover", "recovery_timeout",
    "strict", "authenticatee", "authenticate_http_readonly", "authenticate_http_readwrite",
    "http_authenticators", "http_credentials", "credential", "acls", "gc_delay", "gc_disk_headroom",
    "disk_watch_interval", "container_logger", "container_disk_watch_interval", "enforce_container_disk_quota",
    "fetcher_cache_dir", "fetcher_cache_size", "frameworks_home", "sandbox_directory", "oversubscribed_resources_interval",
    "qos_controller", "qos_correction_interval_min", "resource_estimator", "max_completed_executors_per_framework",
    "zk_session_timeout", "registration_backoff_factor", "authentication_backoff_factor", "version", "help",
    "switch_user", "dynamic_reservations", "default_container_info", "default_container_dns",
    "network_cni_config_dir_persist", "reconfiguration_policy", "domain", "memory_profiling", "firewall_rules",
}


class StartupError(Exception):
    pass


def parse_flags(argv):
    flags = {}
    for k, v in os.environ.items():
        if k.startswith("MESOS_") and k[6:].lower() in KNOWN_FLAGS:
            flags[k[6:].lower()] = v
    for a in argv:
        if not a.startswith("--"):
            raise StartupError("Failed to load flags: Failed to load non-option argument '%s'" % a)
        name, eq, val = a[2:].partition("=")
        if not eq:
            if name.startswith("no-"):
                name, val = name[3:], "false"
            else:
                val = "true"
        if name not in KNOWN_FLAGS:
            raise StartupError("Failed to load flags: Failed to load unknown flag '%s'" % name)
        flags[name] = val
    return flags


def find_plugin(plugin, dirs):
    for d in dirs:
        p = os.path.join(d, plugin)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def validate_cni(config_dir, plugins_dir):
    """Mirror of NetworkCniIsolatorProcess::_loadNetworkConfigs (Mesos 1.x)."""
    if not plugins_dir:
        raise StartupError("Missing required '--network_cni_plugins_dir' flag")
    dirs = [d for d in plugins_dir.split(":") if d]
    for d in dirs:
        if not os.path.isdir(d):
            raise StartupError("The CNI plugin directory '%s' does not exist" % d)
    try:
        entries = sorted(os.listdir(config_dir))
    except OSError as e:
        raise StartupError("Unable to list the CNI network configuration directory '%s': %s"
                           % (config_dir, e.strerror))
    names = {}
    for entry in entries:
        path = os.path.join(config_dir, entry)
        if os.path.isdir(path):
            continue
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise StartupError("Failed to read CNI network configuration file '%s': %s" % (path, e.strerror))
        try:
            cfg = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise StartupError("Failed to parse CNI network configuration file '%s': %s" % (path, e))
        if not isinstance(cfg, dict):
            raise StartupError("Failed to parse CNI network configuration file '%s': Expecting a JSON object" % path)
        missing = [k for k in ("name", "type") if not isinstance(cfg.get(k), str) or not cfg.get(k)]
        if missing:
            raise StartupError("Failed to parse CNI network configuration file '%s': Protobuf parse failed: "
                               "Missing required fields: %s" % (path, ", ".join(missing)))
        name = cfg["name"]
        if name in names:
            raise StartupError("Multiple CNI network configuration files have same name: %s" % name)
        checks = [cfg["type"]]
        for section in (cfg, cfg.get("delegate") if isinstance(cfg.get("delegate"), dict) else None):
            if section is None:
                continue
            if section is not cfg:
                if not isinstance(section.get("type"), str):
                    raise StartupError("Failed to parse CNI network configuration file '%s': delegate has no "
                                       "'type'" % path)
                checks.append(section["type"])
            ipam = section.get("ipam")
            if ipam is not None:
                if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str):
                    raise StartupError("Failed to parse CNI network configuration file '%s': Protobuf parse "
                                       "failed: Missing required fields: ipam.type" % path)
                checks.append(ipam["type"])
        for plugin in checks:
            if find_plugin(plugin, dirs) is None:
                raise StartupError("Failed to find CNI plugin '%s' used by CNI network configuration file '%s'"
                                   % (plugin, path))
        names[name] = path
    return names


def log(msg):
    t = time.time()
    sys.stderr.write("I%s.%06d %5d fake_mesos_agent.py] %s\n" % (
        time.strftime("%m%d %H:%M:%S", time.localtime(t)), int((t % 1) * 1e6), os.getpid(), msg))
    sys.stderr.flush()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv:
        print("mesos %s" % VERSION)
        return
    try:
        flags = parse_flags(argv)
    except StartupError as e:
        sys.stderr.write("%s\n\nUsage: mesos-agent [options]\n" % e)
        sys.exit(1)
    log("Build: fake mesos-agent %s (calico-rollout test agent)" % VERSION)
    try:
        port = int(flags.get("port", "5051"))
    except ValueError:
        sys.stderr.write("Failed to load flags: Failed to load flag 'port': Failed to load value '%s'\n"
                         % flags.get("port"))
        sys.exit(1)
    if flags.get("ip_discovery_command") and flags.get("ip"):
        sys.stderr.write("EXIT with status 1: Only one of `--ip` or `--ip_discovery_command` should be specified\n")
        sys.exit(1)
    bind = "0.0.0.0"
    if flags.get("ip_discovery_command"):
        cmd = flags["ip_discovery_command"]
        p = subprocess.run(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            sys.stderr.write("EXIT with status 1: Failed to execute '%s'; the command was either not found or "
                             "exited with a non-zero exit status: %d\n" % (cmd, p.returncode))
            sys.exit(1)
        bind = p.stdout.decode(errors="replace").strip()
    elif flags.get("ip"):
        bind = flags["ip"]
    try:
        ipaddress.IPv4Address(bind)
    except ValueError:
        sys.stderr.write("EXIT with status 1: Failed to initialize: Failed to obtain the IP address for '%s'; the "
                         "DNS service may not be able to resolve it: Name or service not known\n" % bind)
        sys.exit(1)

    networks = {}
    if flags.get("network_cni_config_dir"):
        try:
            networks = validate_cni(flags["network_cni_config_dir"], flags.get("network_cni_plugins_dir"))
        except StartupError as e:
            sys.stderr.write("EXIT with status 1: Failed to create a containerizer: Could not create "
                             "MesosContainerizer: Failed to create isolator 'network/cni': %s\n" % e)
            sys.exit(1)
        for n, p in sorted(networks.items()):
            log("Loaded CNI network '%s' from '%s'" % (n, p))

    started = time.time()
    serving = []

    def registered():
        """Registered with the master REGISTER_AFTER s after serving began, unless
        /etc/fake-faults/mesos-no-master keeps it from finding one."""
        return (bool(serving) and time.monotonic() - serving[0] >= REGISTER_AFTER
                and not common.fault_active("mesos-no-master"))
    state = {"version": VERSION, "hostname": socket.gethostname(), "flags": flags, "address": "%s:%d" % (bind, port),
             "cni_networks": sorted(networks), "start_time": started, "pid": os.getpid()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *a):
            pass

        def send_body(self, code, body, ctype):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?")[0]
            protected = ("/state", "/slave(1)/state", "/state.json", "/flags", "/slave(1)/flags")
            if path in protected and common.fault_active("mesos-auth"):
                # an agent with --authenticate_http_readonly, asked without credentials
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Mesos realm="mesos"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path == "/health":
                self.send_body(200, "OK", "text/plain")
            elif path in ("/state", "/slave(1)/state", "/state.json"):
                cur = dict(state)
                if registered():
                    cur["id"] = "%s-S0" % uuid.uuid5(uuid.NAMESPACE_DNS, state["hostname"])
                    cur["master_hostname"] = MASTER_HOSTNAME
                self.send_body(200, json.dumps(cur), "application/json")
            elif path in ("/flags", "/slave(1)/flags"):
                self.send_body(200, json.dumps({"flags": flags}), "application/json")
            elif path == "/version":
                self.send_body(200, json.dumps({"version": VERSION}), "application/json")
            else:
                self.send_body(404, "", "text/plain")

        do_HEAD = do_GET

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    try:
        server = ThreadingHTTPServer((bind, port), Handler)
    except OSError as e:
        sys.stderr.write("EXIT with status 1: Failed to initialize: Failed to bind on %s:%d: %s\n"
                         % (bind, port, e.strerror))
        sys.exit(1)

    def on_term(sig, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log("Agent started on %s:%d" % (bind, port))
    serving.append(time.monotonic())
    common.notify_ready()
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    log("Agent terminating")
