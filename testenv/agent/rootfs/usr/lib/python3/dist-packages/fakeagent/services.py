"""What the calico containers of a fake agent do while they run.

The fake docker runs no container processes, but the rollout's health gates
look at what calico/node and the libnetwork plugin serve. The fake dockerd
supervises, for each container `docker inspect` shows running (not
restarting), a stand-in service inside its own process, one thread each:

- calico/node (any tag): Felix's health endpoint (FELIX_HEALTHENABLED,
  FELIX_HEALTHPORT), and unless CALICO_NETWORKING_BACKEND=none, BIRD: the node
  registers /calico/bgp/v1/host/<NODENAME>/ip_addr_v4 in the store and listens
  for BGP on <IP>:179 (one banner line per connection). `docker exec ...
  birdcl show protocols` (birdcl() below) reports a mesh session per other
  registered host, Established while that host's BGP port answers.
- calico/libnetwork-plugin (any tag): the plugin's two unix sockets,
  /run/docker/plugins/calico.sock and calico-ipam.sock.

The services end when the container stops, is removed or crash-loops, and with
dockerd. Fault switches (/etc/fake-faults/, image references one a line):
felix-never-ready, bgp-stuck-images, libnetwork-silent-images.
"""

import json
import os
import selectors
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from . import common
from . import dockerstate

CONTAINERS_DIR = common.DOCKER_LIB_DIR + "/containers"
BIRD_STATE_DIR = common.DOCKER_RUN_DIR + "/bird"
PLUGIN_DIR = "/run/docker/plugins"
PLUGIN_SOCKETS = (PLUGIN_DIR + "/calico.sock", PLUGIN_DIR + "/calico-ipam.sock")
BIRD_CTL = "/var/run/calico/bird.ctl"
BIRD6_CTL = "/var/run/calico/bird6.ctl"
BIRD_VERSION = "BIRD v0.3.3+birdv1.6.3 ready."
BGP_PORT = 179
FELIX_READY_AFTER = 0.3  # seconds: Felix's first sync with the datastore (quick, as a test world wants)
TICK = 0.1  # the supervisor's period
SERVICE_TICK = 0.25  # a service re-checks its fault switches and retries binds this often
STORE_TIMEOUT = 0.5
PEER_TIMEOUT = 0.5
PLUGIN_CTYPE = "application/vnd.docker.plugins.v1.2+json"


# ------------------------------------------------------------------ helpers

def repository(image):
    """calico/node of docker.io/calico/node:v2.6.12 (the familiar name without tag or digest)."""
    domain, path, _, _ = dockerstate.split_ref(dockerstate.familiar(image))
    return (domain + "/" if domain else "") + path


def env_of(c):
    env = {}
    for e in c.get("Config", {}).get("Env") or []:
        k, _, v = e.partition("=")
        env[k] = v
    return env


def is_true(v):
    return (v or "").strip().lower() == "true"


def backend(env):
    return (env.get("CALICO_NETWORKING_BACKEND") or "bird").strip().lower()


def node_name(env):
    return env.get("NODENAME") or env.get("HOSTNAME") or socket.gethostname()


def eth0_ipv4():
    """The first global IPv4 of eth0 (what /opt/mesosphere/bin/detect_ip prints), or ""."""
    try:
        p = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0", "scope", "global"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=2)
        for line in p.stdout.decode().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] == "inet":
                return parts[3].split("/")[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return ""


def node_ip(env):
    ip = (env.get("IP") or "").strip()
    if not ip or ip.lower() == "autodetect":
        ip = eth0_ipv4()
    return ip


def host_path(c, path):
    """A path as the container sees it, on the agent (through the container's binds)."""
    if not path:
        return path
    for b in c.get("HostConfig", {}).get("Binds") or []:
        parts = b.split(":")
        if len(parts) >= 2 and parts[0].startswith("/"):
            src, dst = parts[0].rstrip("/"), parts[1].rstrip("/")
            if path == dst or path.startswith(dst + "/"):
                return src + path[len(dst):]
    return path


def store_endpoint(env):
    eps = env.get("ETCD_ENDPOINTS", "").strip()
    if eps:
        return eps.split(",")[0].strip().rstrip("/")
    scheme = env.get("ETCD_SCHEME") or "http"
    return "%s://%s" % (scheme, env.get("ETCD_AUTHORITY") or "127.0.0.1:2379")


def store_call(c, env, method, key, value=None, query="", timeout=STORE_TIMEOUT):
    """One etcd v2 request to the first of ETCD_ENDPOINTS; the decoded JSON answer."""
    url = store_endpoint(env) + "/v2/keys" + key + query
    handlers = [urllib.request.ProxyHandler({})]
    if url.startswith("https:"):
        ca = host_path(c, env.get("ETCD_CA_CERT_FILE"))
        ctx = ssl.create_default_context(cafile=ca or None)
        cert, keyf = host_path(c, env.get("ETCD_CERT_FILE")), host_path(c, env.get("ETCD_KEY_FILE"))
        if cert:
            ctx.load_cert_chain(cert, keyf or None)
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    data = None
    if value is not None:
        data = urllib.parse.urlencode({"value": value}).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.build_opener(*handlers).open(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "{}")


def http_response(code, body=b"", ctype="text/plain; charset=utf-8", extra=()):
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}.get(code, "")
    head = ["HTTP/1.1 %d %s" % (code, reason),
            "Content-Type: %s" % ctype,
            "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            "Content-Length: %d" % len(body),
            "Connection: close"]
    head.extend(extra)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


NOT_FOUND = (404, b"404 page not found\n", "text/plain; charset=utf-8")


# ------------------------------------------------------------------ services

class Service:
    """A container's stand-in: one thread with a selector over its listeners and connections.

    Subclasses open listeners in refresh() (called at start and every SERVICE_TICK, so a
    bind that failed is retried and fault switches are re-read) and answer HTTP requests
    in handle(method, path) -> (code, body, ctype) | None (None: never answer)."""

    def __init__(self, c):
        self.c = c
        self.name = c["Name"].lstrip("/")
        self.image = c["Config"]["Image"]
        self.env = env_of(c)
        self.started = time.monotonic()
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.listeners = {}  # label -> socket
        self.conns = {}  # socket -> [buffer, deadline or None]
        self.stopping = False
        self.thread = threading.Thread(target=self.run, name="svc-" + self.name, daemon=True)

    # lifecycle
    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        self.thread.join(2)

    def run(self):
        try:
            next_tick = 0.0
            while not self.stopping:
                now = time.monotonic()
                if now >= next_tick:
                    try:
                        self.refresh()
                    except Exception as e:  # a stand-in must not take dockerd down
                        common.err("fake dockerd: %s: %s" % (self.name, e))
                    next_tick = now + SERVICE_TICK
                for key, _ in self.sel.select(timeout=max(0.0, next_tick - time.monotonic())):
                    kind, obj = key.data
                    if kind == "wake":
                        os.read(self.wake_r, 64)
                    elif kind == "listen":
                        self.accept(obj)
                    elif kind == "conn":
                        self.readable(obj)
                now = time.monotonic()
                for s, st in list(self.conns.items()):
                    if st[1] is not None and now > st[1]:
                        self.drop(s)
        finally:
            for s in list(self.conns):
                self.drop(s)
            for label in list(self.listeners):
                self.close_listener(label)
            self.sel.close()
            os.close(self.wake_r)
            os.close(self.wake_w)

    # listeners
    def listen_tcp(self, label, addr, port):
        if label in self.listeners:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
            s.listen(64)
        except OSError:
            s.close()
            return
        self.add_listener(label, s)

    def listen_unix(self, label, path):
        if label in self.listeners:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.unlink(path)  # a stale socket of an earlier run
        except FileNotFoundError:
            pass
        except OSError:
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(path)
            os.chmod(path, 0o660)
            s.listen(64)
        except OSError:
            s.close()
            return
        self.add_listener(label, s)

    def add_listener(self, label, s):
        s.setblocking(False)
        self.listeners[label] = s
        self.sel.register(s, selectors.EVENT_READ, ("listen", label))

    def close_listener(self, label):
        s = self.listeners.pop(label, None)
        if s is not None:
            self.sel.unregister(s)
            s.close()  # a unix socket's file stays: stale, as a dead plugin leaves it

    # connections
    def accept(self, label):
        try:
            conn, _ = self.listeners[label].accept()
        except (OSError, KeyError):
            return
        self.on_accept(label, conn)

    def on_accept(self, label, conn):
        """Default: an HTTP connection, read in the loop, answered when its request is complete."""
        conn.setblocking(False)
        self.conns[conn] = [b"", time.monotonic() + 5.0, label]
        self.sel.register(conn, selectors.EVENT_READ, ("conn", conn))

    def drop(self, conn):
        if self.conns.pop(conn, None) is not None:
            try:
                self.sel.unregister(conn)
            except (KeyError, ValueError):
                pass
        conn.close()

    def readable(self, conn):
        st = self.conns.get(conn)
        if st is None:
            return
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        st[0] += data
        if st[1] is None:  # a silent server: the request is swallowed
            st[0] = b""
            return
        head, sep, body = st[0].partition(b"\r\n\r\n")
        if not sep:
            if len(st[0]) > 65536:
                self.drop(conn)
            return
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for l in lines[1:]:
            k, _, v = l.partition(":")
            if k.strip().lower() == "content-length" and v.strip().isdigit():
                length = int(v.strip())
        if len(body) < length:
            return
        parts = lines[0].split()
        method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "/")
        answer = self.handle(st[2], method, path.split("?")[0])
        if answer is None:
            st[0], st[1] = b"", None  # accepted, never answered
            return
        code, body, ctype = answer[:3]
        extra = answer[3] if len(answer) > 3 else ()
        try:
            conn.setblocking(True)
            conn.settimeout(1.0)
            conn.sendall(http_response(code, b"" if method == "HEAD" else body, ctype, extra))
        except OSError:
            pass
        self.drop(conn)

    # to override
    def refresh(self):
        pass

    def handle(self, label, method, path):
        return NOT_FOUND


class CalicoNode(Service):
    def __init__(self, c):
        super().__init__(c)
        self.felix = is_true(self.env.get("FELIX_HEALTHENABLED"))
        try:
            self.felix_port = int(self.env.get("FELIX_HEALTHPORT") or 9099)
        except ValueError:
            self.felix_port = 9099
        self.bird = backend(self.env) != "none"
        self.ip = node_ip(self.env) if self.bird else ""
        self.nodename = node_name(self.env)
        self.registered = False
        self.next_register = 0.0

    def refresh(self):
        if self.felix:
            self.listen_tcp("felix", "0.0.0.0", self.felix_port)
        if not self.bird:
            return
        now = time.monotonic()
        if not self.registered and now >= self.next_register:
            self.next_register = now + 1.0
            if self.ip:
                try:
                    store_call(self.c, self.env, "PUT", "/calico/bgp/v1/host/%s/ip_addr_v4" % self.nodename,
                               value=self.ip)
                    self.registered = True
                except Exception:
                    pass
        if dockerstate.listed("bgp-stuck-images", self.image):
            self.close_listener("bgp")
        elif self.ip:
            self.listen_tcp("bgp", self.ip, BGP_PORT)

    def on_accept(self, label, conn):
        if label != "bgp":
            return super().on_accept(label, conn)
        try:
            conn.settimeout(0.2)
            conn.sendall(("BGP %s (calico-node stand-in)\n" % self.nodename).encode())
        except OSError:
            pass
        conn.close()

    def handle(self, label, method, path):
        if method not in ("GET", "HEAD"):
            return (405, b"", "text/plain; charset=utf-8")
        if path == "/liveness":
            return (200, b"", "text/plain; charset=utf-8")
        if path == "/readiness":
            ready = (time.monotonic() - self.started >= FELIX_READY_AFTER
                     and not dockerstate.listed("felix-never-ready", self.image))
            return (200 if ready else 503, b"", "text/plain; charset=utf-8")
        return NOT_FOUND


class LibnetworkPlugin(Service):
    ANSWERS = {
        "network": {"/Plugin.Activate": {"Implements": ["NetworkDriver"]},
                    "/NetworkDriver.GetCapabilities": {"Scope": "global"}},
        "ipam": {"/Plugin.Activate": {"Implements": ["IpamDriver"]},
                 "/IpamDriver.GetCapabilities": {"RequiresMACAddress": False}},
    }

    def refresh(self):
        self.listen_unix("network", PLUGIN_SOCKETS[0])
        self.listen_unix("ipam", PLUGIN_SOCKETS[1])

    def on_accept(self, label, conn):
        super().on_accept(label, conn)
        if dockerstate.listed("libnetwork-silent-images", self.image):
            self.conns[conn][1] = None  # accepted, never answered, kept open until the plugin stops

    def handle(self, label, method, path):
        ans = self.ANSWERS[label].get(path)
        if ans is None or method not in ("GET", "POST", "HEAD"):
            return NOT_FOUND
        return (200, (json.dumps(ans, separators=(",", ":")) + "\n").encode(), PLUGIN_CTYPE)


def service_class(c):
    repo = repository(c["Config"]["Image"])
    if repo == "calico/node":
        return CalicoNode
    if repo == "calico/libnetwork-plugin":
        return LibnetworkPlugin
    return None


# ------------------------------------------------------------------ supervisor

class Supervisor:
    """dockerd's thread that keeps one service per running calico container (every TICK)."""

    def __init__(self):
        self.services = {}
        self.thread = threading.Thread(target=self.run, name="container-services", daemon=True)

    def start(self):
        self.thread.start()

    def wanted(self):
        res = {}
        try:
            names = os.listdir(CONTAINERS_DIR)
        except OSError:
            return res
        for fn in names:
            if not fn.endswith(".json"):
                continue
            c = common.read_json(os.path.join(CONTAINERS_DIR, fn))
            if not c or "State" not in c:
                continue
            try:
                cls = service_class(c)
                if cls is None:
                    continue
                dockerstate.settle(c)
            except Exception:
                continue
            st = c["State"]
            if st.get("Running") and not st.get("Restarting"):
                res[(c["Id"], st.get("StartedAt"), cls.__name__)] = (cls, c)
        return res

    def run(self):
        while True:
            try:
                want = self.wanted()
                for key in [k for k in self.services if k not in want]:
                    self.services.pop(key).stop()
                for key, (cls, c) in want.items():
                    if key not in self.services:
                        s = cls(c)
                        self.services[key] = s
                        s.start()
            except Exception as e:
                common.err("fake dockerd: container services: %s" % e)
            time.sleep(TICK)


# ------------------------------------------------------------------ birdcl

def bird_time(ts, now=None):
    """BIRD 1.6's protocol time: HH:MM:SS, or the date when older than 20 hours (UTC)."""
    now = time.time() if now is None else now
    fmt = "%H:%M:%S" if now - ts < 20 * 3600 else "%Y-%m-%d"
    return time.strftime(fmt, time.gmtime(ts))


def parse_rfc3339(text):
    import calendar

    try:
        base = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, TypeError):
        return time.time()
    frac = text[19:].rstrip("Z")
    try:
        return base + (float(frac) if frac.startswith(".") else 0.0)
    except ValueError:
        return base


def proto_line(name, proto, state, since, info=""):
    return "%-8s %-8s %-8s %-6s %-12s%s" % (name, proto, "master", state, since, info)


def mesh_peers(c, env, me, my_ip):
    """[(host, ip)] of the other hosts registered under /calico/bgp/v1/host (sorted by host)."""
    ans = store_call(c, env, "GET", "/calico/bgp/v1/host", query="?recursive=true&sorted=true")
    peers = []
    for hn in ans.get("node", {}).get("nodes") or []:
        host = hn.get("key", "").rsplit("/", 1)[-1]
        ip = ""
        for leaf in hn.get("nodes") or []:
            if leaf.get("key", "").endswith("/ip_addr_v4"):
                ip = (leaf.get("value") or "").strip()
        if host and ip and host != me and ip != my_ip:
            peers.append((host, ip))
    peers.sort()
    return peers


def probe(ip):
    """BGP state of a session to ip as this node sees it: (state, info)."""
    deadline = time.monotonic() + PEER_TIMEOUT
    try:
        s = socket.create_connection((ip, BGP_PORT), timeout=PEER_TIMEOUT)
    except ConnectionRefusedError:
        return "start", "%-14s%s" % ("Active", "Socket: Connection refused")
    except socket.timeout:
        return "start", "Connect"
    except OSError:
        return "start", "Idle"
    try:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        data = s.recv(256)
    except OSError:
        data = b""
    finally:
        s.close()
    if data.endswith(b"\n"):
        return "up", "%-14s" % "Established"
    return "start", "Connect"


def session_since(c, states):
    """{ip: since timestamp}: when each session last changed state as this node saw it.

    Kept per container in BIRD_STATE_DIR/<id>.json; a session first seen gets the
    container's start time."""
    started = parse_rfc3339(c["State"].get("StartedAt", ""))
    path = os.path.join(BIRD_STATE_DIR, c["Id"] + ".json")
    now = time.time()
    res = {}
    try:
        with common.flocked(path + ".lock"):
            old = common.read_json(path, {}) or {}
            new = {}
            for ip, st in states.items():
                prev = old.get(ip)
                if prev and prev[0] == st:
                    new[ip] = prev
                else:
                    new[ip] = [st, now if prev else started]
                res[ip] = new[ip][1]
            if new != old:
                common.write_json(path, new)
    except OSError:
        res = {ip: started for ip in states}
    return res


def birdcl(c, argv):
    """`docker exec <calico/node> birdcl|birdcl6 [-s SOCKET] show protocols`: (code, out, err),
    or None when the command is not one the stand-in knows."""
    prog = os.path.basename(argv[0])
    v6 = prog == "birdcl6"
    sock = BIRD6_CTL if v6 else BIRD_CTL
    words = []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-s" and i + 1 < len(args):
            sock = args[i + 1]
            i += 2
            continue
        if a.startswith("-s") and len(a) > 2:
            sock = a[2:]
        elif a in ("-v", "-r", "-l"):
            pass
        elif a.startswith("-"):
            return None
        else:
            words.append(a.lower())
        i += 1
    env = env_of(c)
    own = BIRD6_CTL if v6 else BIRD_CTL
    if backend(env) == "none" or ("/var" + sock if sock.startswith("/run/") else sock) != own:
        return (1, "", "Unable to connect to server control socket (%s): No such file or directory\n" % sock)
    if not (len(words) == 2 and len(words[0]) >= 2 and "show".startswith(words[0])
            and len(words[1]) >= 3 and "protocols".startswith(words[1])):
        return None
    start = bird_time(parse_rfc3339(c["State"].get("StartedAt", "")))
    lines = [BIRD_VERSION, "name     proto    table    state  since       info"]
    for name, proto in (("static1", "Static"), ("kernel1", "Kernel"), ("device1", "Device"), ("direct1", "Direct")):
        lines.append(proto_line(name, proto, "up", start))
    if not v6:
        peers = []
        my_ip = node_ip(env)
        try:
            peers = mesh_peers(c, env, node_name(env), my_ip)
        except Exception:
            pass  # the store cannot be read: no mesh sessions listed
        stuck = dockerstate.listed("bgp-stuck-images", c["Config"]["Image"])
        results = {}

        def run(ip):
            results[ip] = ("start", "Idle") if stuck else probe(ip)

        threads = [threading.Thread(target=run, args=(ip,), daemon=True) for _, ip in peers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PEER_TIMEOUT * 2 + 0.5)
        states = {ip: results.get(ip, ("start", "Connect")) for _, ip in peers}
        since = session_since(c, {ip: "%s %s" % st for ip, st in states.items()})
        for _, ip in peers:
            st, info = states[ip]
            lines.append(proto_line("Mesh_" + ip.replace(".", "_"), "BGP", st, bird_time(since[ip]), info))
    return (0, "\n".join(lines) + "\n", "")
