"""The contenders: how each is configured, started, found and stopped.

Every proxy runs alone on the proxy CPU (taskset; everything it spawns
inherits the mask) in front of the same upstream, with one worker /
thread / shard. Configs live in bench/peers/ with @PLACEHOLDERS@ filled in
here. Two contenders are floors, not proxies (plain HTTP only):
"direct" is no proxy at all, the load generator talks to the upstream (the
floor of the load generator and upstream); "relay" is `shardgate-relay`, a
byte relay without HTTP (one upstream connection per client, epoll, one
thread; bench/src/relay/), the floor of any proxy: what a proxy's CPU per
request is above it, over nginx's above it, is the relay overhead ratio
(summary.py).

With a certificate (`cert`, a certs.Cert) a contender listens with TLS
instead, with that certificate and key and otherwise its defaults; the
TLS settings of each are in bench/peers/ (`*-tls.*` fragments for nginx
and Envoy) and docs/benchmarks.md.

Processes are ended by the PIDs started here, never by name.
"""

import datetime
import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import time

from . import procstat

PEERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers")
# How long a contender may take to answer its first request.
READY_TIMEOUT_S = 20.0
# How long a contender may take to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 10.0


def free_port():
    """A port nobody listens on right now (bind 0, read, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_ok(port, path="/bytes/13", timeout=1.0, tls=False):
    """One GET on a fresh connection (over TLS, certificate unchecked,
    with `tls`); True on a 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            s = raw
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(raw)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


class Running:
    """A started contender: its process, its port, its PIDs."""

    def __init__(self, contender, proc, port, log_path, cert=None):
        self.contender = contender
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.pids = [proc.pid] if proc else []
        # The certs.Cert it serves, None for plain HTTP.
        self.cert = cert

    def wait_ready(self, upstream_port):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.contender.name} exited with {self.proc.returncode}; see {self.log_path}")
            if http_get_ok(self.port, tls=self.cert is not None):
                # Workers exist once the first request is answered.
                self.pids = self.contender.process_ids(self.proc)
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.contender.name} not answering on 127.0.0.1:{self.port}; see {self.log_path}")

    def stop(self):
        if not self.proc:
            return
        pids = list(self.pids)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Children (nginx's worker) follow their master; make sure, by PID.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for pid in pids[1:]:
            while procstat.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if procstat.alive(pid):
                os.kill(pid, signal.SIGKILL)


class Contender:
    name = "?"
    # Features scenarios may need (see scenarios.Scenario.needs).
    features = frozenset()
    # An HTTP proxy: its saturation sets the fixed rate of the round, its
    # memory is measured, the targets are about it.
    is_proxy = True
    # Has processes of its own, whose CPU time is read around each run.
    measures_cpu = True

    def __init__(self, binary):
        self.binary = binary

    def version(self):
        raise NotImplementedError

    def command(self, rundir, port, upstream_port, cert=None):
        """argv (without taskset) after writing any config into rundir;
        with `cert` (certs.Cert), listening with TLS."""
        raise NotImplementedError

    def process_ids(self, proc):
        """Every process whose CPU and memory count for this contender."""
        return [proc.pid]

    def start(self, rundir, cpu, upstream_port, log_dir, cert=None):
        os.makedirs(rundir, exist_ok=True)
        port = free_port()
        argv = ["taskset", "-c", str(cpu)] + self.command(rundir, port, upstream_port, cert)
        log_path = os.path.join(log_dir, f"{self.name}.log")
        with open(log_path, "ab") as log:
            log.write(f"\n== {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, cwd=rundir, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        running = Running(self, proc, port, log_path, cert)
        try:
            running.wait_ready(upstream_port)
        except Exception:
            running.stop()
            raise
        return running


def _fill(template, **values):
    """bench/peers/TEMPLATE with each @KEY@ replaced, in settings only:
    comments name placeholders to document them and stay as written."""
    with open(os.path.join(PEERS, template)) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        if not line.lstrip().startswith("#"):
            for key, value in values.items():
                line = line.replace(f"@{key}@", str(value))
            leftover = re.findall(r"@[A-Z_]+@", line)
            if leftover:
                raise ValueError(f"{template}: placeholders not filled: {leftover}")
        out.append(line)
    return "\n".join(out) + "\n"


def _fragment(template, indent=0, **values):
    """A config fragment from bench/peers/, its comment header (the lines
    before the first blank line) dropped, indented to fit its place."""
    text = _fill(template, **values)
    body = text.split("\n\n", 1)[1] if "\n\n" in text else text
    pad = " " * indent
    return "\n".join(pad + line if line.strip() else line for line in body.strip("\n").splitlines())


def _first_line(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    text = (out.stdout + out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


class Direct(Contender):
    """No proxy: the load generator straight to the upstream."""

    name = "direct"
    is_proxy = False
    measures_cpu = False

    def version(self):
        return "no proxy (load generator -> upstream)"

    def start(self, rundir, cpu, upstream_port, log_dir, cert=None):
        if cert is not None:
            raise ValueError("direct is plain HTTP only (the upstream has no TLS)")
        return Running(self, None, upstream_port, None)


class Relay(Contender):
    """`shardgate-relay`: accept, connect one upstream connection per
    client, copy bytes both ways. Not a proxy (no HTTP, so no pooling and
    nothing it could be asked to do), but its CPU counts: it is the floor a
    proxy's CPU per request is read above."""

    name = "relay"
    is_proxy = False

    def version(self):
        return _first_line([self.binary, "--version"])

    def command(self, rundir, port, upstream_port, cert=None):
        if cert is not None:
            raise ValueError("relay is plain HTTP only (it relays bytes; TLS rows have no relay floor)")
        # One thread; taskset pins it, as it pins the proxies.
        return [self.binary, "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream_port}"]


class Shardgate(Contender):
    name = "shardgate"
    features = frozenset({"tls"})

    def version(self):
        return _first_line([self.binary, "--version"])

    def command(self, rundir, port, upstream_port, cert=None):
        # One shard. taskset leaves one CPU available, so the shard is
        # pinned to it (`--cpus` is the explicit spelling of the same).
        argv = [self.binary, "proxy", "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream_port}",
                "--shards", "1"]
        if cert:
            # Everything else at its defaults: TLS 1.2-1.3, tickets (2 per
            # full TLS 1.3 handshake) and a TLS 1.2 session cache, ALPN
            # http/1.1, the client's cipher suite order.
            argv += ["--tls-cert", cert.cert, "--tls-key", cert.key]
        return argv


class Baseline(Shardgate):
    """Another build of shardgate (`--baseline PATH`): the same command
    line, CPU and upstream as `shardgate`, only the binary differs."""

    name = "baseline"


class _ShardgateConfigured(Shardgate):
    """shardgate from a config file (`shardgate run -c`) rather than the
    `proxy` command line: one shard, one listener, one cluster, plus the
    `EXTRA` sections. Plain HTTP only."""

    features = frozenset()
    EXTRA = ""

    def command(self, rundir, port, upstream_port, cert=None):
        if cert is not None:
            raise ValueError(f"{self.name} is plain HTTP only")
        path = os.path.join(rundir, f"{self.name}.toml")
        with open(path, "w") as f:
            f.write("[server]\nshards = 1\n\n"
                    f"[[listeners]]\nname = \"bench\"\nlisten = \"127.0.0.1:{port}\"\n\n"
                    "[[routes]]\ncluster = \"upstream\"\n\n"
                    f"[[clusters]]\nname = \"upstream\"\nendpoints = [\"127.0.0.1:{upstream_port}\"]\n\n"
                    + self.EXTRA)
        return [self.binary, "run", "-c", path]


class ShardgateQuiet(_ShardgateConfigured):
    """shardgate with metrics recording off and no access log: the
    "off" side of the observability budget (metrics and access log on
    within +5 % CPU per request of off)."""

    name = "shardgate-quiet"
    EXTRA = "[metrics]\nenabled = false\n"


class ShardgateObserved(_ShardgateConfigured):
    """shardgate with metrics on and a JSON access log line per request
    written to a file in its run folder: the "on" side of the budget."""

    name = "shardgate-observed"
    EXTRA = "[metrics]\nenabled = true\n\n[access_log]\npath = \"access.log\"\nformat = \"json\"\n"


class Nginx(Contender):
    name = "nginx"
    features = frozenset({"tls"})

    def version(self):
        # "nginx version: nginx/1.22.1"
        return _first_line([self.binary, "-v"]).split("version:")[-1].strip()

    def command(self, rundir, port, upstream_port, cert=None):
        tls = _fragment("nginx-tls.conf", 8, CERT=cert.cert, KEY=cert.key) if cert else ""
        with open(os.path.join(rundir, "nginx.conf"), "w") as f:
            f.write(_fill("nginx.conf", LISTEN=f"127.0.0.1:{port}", UPSTREAM=f"127.0.0.1:{upstream_port}",
                          LISTEN_SSL=" ssl" if cert else "", TLS=tls))
        return [self.binary, "-p", rundir, "-c", "nginx.conf", "-g", "daemon off;"]

    def process_ids(self, proc):
        # Master plus workers: both count.
        return [proc.pid] + procstat.children(proc.pid)


class Haproxy(Contender):
    name = "haproxy"
    features = frozenset({"tls"})

    def version(self):
        # "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
        return _first_line([self.binary, "-v"]).split(" - ")[0]

    def command(self, rundir, port, upstream_port, cert=None):
        path = os.path.join(rundir, "haproxy.cfg")
        # `crt` takes certificate and key in one file; ALPN as the others.
        bind_tls = f" ssl crt {cert.combined} alpn http/1.1" if cert else ""
        with open(path, "w") as f:
            f.write(_fill("haproxy.cfg", LISTEN=f"127.0.0.1:{port}", UPSTREAM=f"127.0.0.1:{upstream_port}",
                          BIND_TLS=bind_tls))
        # -db: foreground, one process.
        return [self.binary, "-db", "-f", path]


class Envoy(Contender):
    name = "envoy"
    features = frozenset({"tls"})

    def version(self):
        # "envoy  version: HASH/1.40.0/Clean/RELEASE/BoringSSL"
        line = _first_line([self.binary, "--version"])
        return "envoy " + line.split("version:")[-1].strip()

    def command(self, rundir, port, upstream_port, cert=None):
        path = os.path.join(rundir, "envoy.yaml")
        tls = _fragment("envoy-tls.yaml", 6, CERT=cert.cert, KEY=cert.key) if cert else ""
        with open(path, "w") as f:
            f.write(_fill("envoy.yaml", LISTEN_PORT=port, UPSTREAM_PORT=upstream_port, TRANSPORT_SOCKET=tls))
        return [self.binary, "-c", path, "--concurrency", "1", "--disable-hot-restart", "-l", "warning"]


class Upstream:
    """The shared upstream: `shardgate echo`, one shard, on the load CPU
    (`extra_args`: more echo flags, `--delay-ms 50` for a slow one)."""

    def __init__(self, shardgate_binary, extra_args=()):
        self.binary = shardgate_binary
        self.extra_args = list(extra_args)
        self.running = None

    def start(self, rundir, cpu, log_dir):
        os.makedirs(rundir, exist_ok=True)
        port = free_port()
        argv = ["taskset", "-c", str(cpu), self.binary, "echo", "--listen", f"127.0.0.1:{port}", "--shards", "1"]
        argv += self.extra_args
        log_path = os.path.join(log_dir, "upstream.log")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, cwd=rundir, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.running = Running(_UpstreamName(None), proc, port, log_path)
        try:
            self.running.wait_ready(port)
        except Exception:
            self.running.stop()
            raise
        return self.running


class _UpstreamName(Contender):
    name = "upstream"


CLASSES = {"direct": Direct, "relay": Relay, "shardgate": Shardgate, "baseline": Baseline, "nginx": Nginx, "haproxy": Haproxy,
           "envoy": Envoy, "shardgate-quiet": ShardgateQuiet, "shardgate-observed": ShardgateObserved}
ORDER = ["direct", "relay", "shardgate", "nginx", "haproxy", "envoy"]


def default_names(baseline=False):
    """The contenders of a run without --contenders: ORDER, with
    `baseline` right after `shardgate` when a baseline binary is given
    (next to each other in the rotation, so the pair is measured as close
    in time as the order allows)."""
    if not baseline:
        return list(ORDER)
    i = ORDER.index("shardgate") + 1
    return ORDER[:i] + ["baseline"] + ORDER[i:]


def describe_binary(path):
    """What identifies a shardgate binary of another build: its path, its
    `--version` output, a digest of its bytes (`--version` names the crate
    version only, the same for every build of it), its build time, and
    the commit checked out where it sits, if it is inside a git checkout
    (`git worktree add /tmp/base COMMIT` + `cargo build --release`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        version = (out.stdout + out.stderr).strip() or "unknown"
    except (OSError, subprocess.SubprocessError) as e:
        version = f"unknown ({e})"
    try:
        git = subprocess.run(["git", "-C", os.path.dirname(path), "log", "-1", "--format=%h (%cs)"],
                             capture_output=True, text=True, timeout=30)
        commit = git.stdout.strip() if git.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    built = datetime.datetime.fromtimestamp(os.stat(path).st_mtime).isoformat(timespec="seconds")
    return {"path": path, "version": version, "sha256": h.hexdigest(), "built": built, "checkout_commit": commit}
