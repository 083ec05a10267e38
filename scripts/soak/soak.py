"""The soak run behind scripts/soak.sh (read its header first).

Starts the upstreams (`shardgate echo`, `shardgate-faulty-upstream`) and
the proxy (1 shard) with a config written here, then runs one round of
shardgate-load processes per minute (traffic.py: every stream at a fixed
rate) while a sampler reads the proxy's RSS, descriptors and connections
every second and a reloader rewrites the TLS certificate and sends SIGHUP
every SOAK_SIGHUP_SECONDS. After the last minute it waits for the
descriptors to come back, prints the verdict and exits 0 (pass) or 1.

Only the processes started here are ever signalled, by their own handle.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import probe
import report
import traffic

# Upstream pool idle timeout in the soak config: once a minute's load
# stops, pooled connections close within it (+ the shard's 1 s sweep).
POOL_IDLE_SECONDS = 2
# The quiet end of every minute: shardgate-load drains in-flight requests
# for up to 2 s after its duration, then the pools empty (POOL_IDLE_SECONDS
# + 1 s sweep), then the minute's idle reading is taken. The rounds never
# overlap.
QUIET_SECONDS = 7
# A minute of at least this many seconds (SOAK_MINUTE_SECONDS).
MIN_MINUTE_SECONDS = 15
STARTUP_TIMEOUT = 15.0
# The first seconds of each minute's load are left out of its RSS median:
# connections and handshakes are still ramping up.
RAMP_UP_SECONDS = 2


def env_number(name, default, cast=float):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        sys.exit(f"soak: {name}={raw!r} is not a number")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, what):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"soak: {what} exited during startup (status {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"soak: {what} did not listen on port {port} within {STARTUP_TIMEOUT:.0f}s")


def make_certificate(cert_path, key_path):
    """A fresh self-signed ECDSA P-256 certificate for localhost/127.0.0.1,
    written beside its final name and renamed into place (key first), so a
    reader never sees half a file."""
    tmp_cert, tmp_key = cert_path + ".new", key_path + ".new"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", tmp_key, "-out", tmp_cert,
        ],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.replace(tmp_key, key_path)
    os.replace(tmp_cert, cert_path)


CONFIG = """\
# Written by scripts/soak.sh; rewritten never (SIGHUP reloads re-read it
# unchanged, with a fresh certificate behind the same file names).
[admin]
listen = "127.0.0.1:{admin}"

[[listeners]]
name = "http"
listen = "127.0.0.1:{http}"

[[listeners]]
name = "https"
listen = "127.0.0.1:{https}"
[listeners.tls]
certificates = [{{ cert = "certs/server.pem", key = "certs/server.key" }}]

[[routes]]
name = "faults"
cluster = "faulty"
[routes.match]
path_prefix = "/fault/"

[[routes]]
name = "echo"
cluster = "echo"

[[clusters]]
name = "echo"
endpoints = ["127.0.0.1:{echo}"]
idle_timeout = "{pool_idle}s"

[[clusters]]
name = "faulty"
endpoints = ["127.0.0.1:{faulty}"]
response_timeout = "500ms"   # /fault/slow?ms=2000 must end as 504
idle_timeout = "{pool_idle}s"
"""


class Reloader(threading.Thread):
    """Every `period` seconds: a new certificate into the listener's files,
    SIGHUP, and a check that new handshakes get the new certificate."""

    def __init__(self, proxy, period, cert, key, https_port, log):
        super().__init__(daemon=True)
        self.proxy, self.period, self.cert, self.key, self.port, self.log = proxy, period, cert, key, https_port, log
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.events = []  # (monotonic time, ok, detail)

    def run(self):
        while not self.stop.wait(self.period):
            ok, detail = self.reload_once()
            with self.lock:
                self.events.append((time.monotonic(), ok, detail))
            if not ok:
                self.log(f"soak: SIGHUP reload not served: {detail}")

    def reload_once(self):
        try:
            make_certificate(self.cert, self.key)
            want = probe.file_certificate_der(self.cert)
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            return False, f"cannot make a certificate: {e}"
        if self.proxy.poll() is not None:
            return False, "proxy not running"
        self.proxy.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5.0
        last = "no handshake"
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                if probe.served_certificate_der(self.port) == want:
                    return True, "new certificate served"
                last = "old certificate still served"
            except (OSError, ValueError) as e:
                last = f"handshake failed: {e}"
        return False, last

    def counts_between(self, start, end):
        with self.lock:
            evs = [e for e in self.events if start <= e[0] < end]
        return sum(1 for e in evs if e[1]), sum(1 for e in evs if not e[1])


class Sampler(threading.Thread):
    """The proxy's RSS, descriptors and connections once a second."""

    def __init__(self, pid, listen_ports, t0):
        super().__init__(daemon=True)
        self.pid, self.ports, self.t0 = pid, listen_ports, t0
        self.stop = threading.Event()
        self.samples = []  # (seconds since t0, rss_kib, fds, down, up)

    def read(self):
        down, up = probe.connections(self.pid, self.ports)
        return (time.monotonic() - self.t0, probe.rss_kib(self.pid), probe.fd_count(self.pid), down, up)

    def run(self):
        while not self.stop.wait(1.0):
            try:
                self.samples.append(self.read())
            except (OSError, RuntimeError):
                return  # the proxy is gone; the main loop reports it


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit("usage: scripts/soak.sh MINUTES   (see the header of scripts/soak.sh)")
    minutes = int(sys.argv[1])
    minute_s = env_number("SOAK_MINUTE_SECONDS", 60, int)
    if minute_s < MIN_MINUTE_SECONDS:
        sys.exit(f"soak: SOAK_MINUTE_SECONDS must be >= {MIN_MINUTE_SECONDS}")
    sighup_s = env_number("SOAK_SIGHUP_SECONDS", 30.0)
    rate_scale = env_number("SOAK_RATE_SCALE", 1.0)
    settle_s = env_number("SOAK_SETTLE_SECONDS", 30.0)
    bin_dir = os.environ.get("SOAK_BIN_DIR", "target/release")
    io_driver = os.environ.get("SOAK_IO_DRIVER", "auto")
    out = os.environ.get("SOAK_OUT") or os.path.join("target", "soak", time.strftime("%Y%m%d-%H%M%S"))
    allowed = sorted(os.sched_getaffinity(0))
    proxy_cpu = env_number("SOAK_PROXY_CPU", allowed[0], int) if len(allowed) > 1 else None
    load_cpu = env_number("SOAK_LOAD_CPU", allowed[1], int) if len(allowed) > 1 else None
    quiet_s = env_number("SOAK_QUIET_SECONDS", QUIET_SECONDS, int)
    if not QUIET_SECONDS <= quiet_s <= minute_s - 5:
        sys.exit(f"soak: SOAK_QUIET_SECONDS must be {QUIET_SECONDS}..SOAK_MINUTE_SECONDS-5")
    load_s = minute_s - quiet_s

    os.makedirs(os.path.join(out, "certs"), exist_ok=True)
    os.makedirs(os.path.join(out, "loads"), exist_ok=True)
    cert = os.path.abspath(os.path.join(out, "certs", "server.pem"))
    key = os.path.abspath(os.path.join(out, "certs", "server.key"))
    make_certificate(cert, key)
    shardgate = os.path.join(bin_dir, "shardgate")
    load_bin = os.path.join(bin_dir, "shardgate-load")
    faulty_bin = os.path.join(bin_dir, "shardgate-faulty-upstream")

    def on_load_cpu():
        if load_cpu is not None:
            os.sched_setaffinity(0, {load_cpu})

    children = []
    exited = []

    def log(msg):
        print(msg, flush=True)

    try:
        ports = {"http": free_port(), "https": free_port(), "admin": free_port(), "echo": free_port()}
        echo = subprocess.Popen(
            [shardgate, "echo", "--listen", f"127.0.0.1:{ports['echo']}", "--shards", "1", "--io-driver", io_driver],
            preexec_fn=on_load_cpu, stdout=subprocess.DEVNULL, stderr=open(os.path.join(out, "echo.log"), "w"),
        )
        children.append(("echo upstream", echo))
        faulty = subprocess.Popen(
            [faulty_bin, "--listen", "127.0.0.1:0"], preexec_fn=on_load_cpu,
            stdout=subprocess.PIPE, stderr=open(os.path.join(out, "faulty.log"), "w"), text=True,
        )
        children.append(("faulty upstream", faulty))
        announced = faulty.stdout.readline().strip()
        if not announced.startswith("listening on "):
            sys.exit(f"soak: faulty upstream did not start: {announced!r}")
        ports["faulty"] = int(announced.rsplit(":", 1)[1])
        wait_for_port(ports["echo"], echo, "echo upstream")

        config = os.path.join(out, "shardgate.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(pool_idle=POOL_IDLE_SECONDS, **ports))
        proxy_cmd = [shardgate, "run", "-c", config, "--shards", "1", "--io-driver", io_driver]
        proxy_cmd += ["--cpus", str(proxy_cpu)] if proxy_cpu is not None else ["--no-pin"]
        proxy = subprocess.Popen(proxy_cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(out, "proxy.log"), "w"))
        children.append(("proxy", proxy))
        wait_for_port(ports["http"], proxy, "proxy")
        wait_for_port(ports["https"], proxy, "proxy")

        time.sleep(2)
        baseline_fds = probe.fd_count(proxy.pid)
        baseline_rss = probe.rss_kib(proxy.pid)
        log(f"soak: {minutes} minute(s) of {minute_s}s, load {load_s}s per minute, SIGHUP every {sighup_s:g}s, "
            f"rate x{rate_scale:g} (~{sum(s.rate for s in traffic.STREAMS) * rate_scale:.0f} req/s), "
            f"proxy pid {proxy.pid} on CPU {proxy_cpu}, load on CPU {load_cpu}, io driver {io_driver}")
        log(f"soak: output in {out}; baseline before load: {baseline_fds} fds, {baseline_rss} KiB RSS")
        log(report.header())

        t0 = time.monotonic()
        sampler = Sampler(proxy.pid, {ports["http"], ports["https"]}, t0)
        sampler.start()
        reloader = Reloader(proxy, sighup_s, cert, key, ports["https"], log)
        reloader.start()
        rows = []
        fault_seen = {s.name: False for s in traffic.STREAMS if s.is_fault()}
        csv_path = os.path.join(out, "soak.csv")
        prev_admin = probe.admin_stats(f"127.0.0.1:{ports['admin']}")
        for minute in range(1, minutes + 1):
            start = t0 + (minute - 1) * minute_s
            time.sleep(max(0.0, start - time.monotonic()))
            round_dir = os.path.join(out, "loads", f"minute-{minute:03d}")
            os.makedirs(round_dir, exist_ok=True)
            running = []
            for s in traffic.STREAMS:
                url = f"{s.scheme}://127.0.0.1:{ports[s.scheme]}{s.path}"
                cmd = traffic.load_command(load_bin, s, url, load_s, rate_scale, load_cpu)
                out_f = open(os.path.join(round_dir, f"{s.name}.json"), "w")
                err_f = open(os.path.join(round_dir, f"{s.name}.stderr"), "w")
                running.append((s, subprocess.Popen(cmd, stdout=out_f, stderr=err_f), out_f, err_f))
            # The minute's reading: under load, a second before it stops.
            time.sleep(max(0.0, start + load_s - 1 - time.monotonic()))
            try:
                _, rss, fds, down, up = sampler.read()
            except (OSError, RuntimeError):
                rss = fds = down = up = 0
            admin = probe.admin_stats(f"127.0.0.1:{ports['admin']}")
            # RSS under load: the median and the peak of the once-a-second
            # samples (after the first seconds' ramp-up). Shown, not judged:
            # readings under load swing by +-15 % with the relay buffers in
            # flight and the allocator's trims (docs/reliability.md).
            window = [v for t, v, _, _, _ in list(sampler.samples)
                      if start - t0 + RAMP_UP_SECONDS <= t <= start - t0 + load_s]
            rss_median = statistics.median_low(window) if window else rss
            rss_peak = max(window) if window else rss
            total = traffic.empty_counts()
            for s, p, out_f, err_f in running:
                try:
                    p.wait(timeout=load_s + 15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                out_f.close()
                err_f.close()
                try:
                    with open(out_f.name) as f:
                        result = json.load(f)
                except (OSError, ValueError):
                    result = None
                if result is None:
                    # No report: the whole run counts as one unexpected exit.
                    c = traffic.empty_counts()
                    c["unexpected"]["exit"] = 1
                else:
                    c = traffic.classify(s, result)
                    if s.is_fault() and sum(c["injected"].values()) > 0:
                        fault_seen[s.name] = True
                traffic.add_counts(total, c)
            # The minute's idle reading, at its quiet end: no client, pools
            # empty. What the load left behind, without the buffers in
            # flight that make readings under load swing.
            time.sleep(max(0.0, start + minute_s - 0.5 - time.monotonic()))
            try:
                _, rss_idle, fds_idle, down_idle, up_idle = sampler.read()
            except (OSError, RuntimeError):
                rss_idle = fds_idle = down_idle = up_idle = 0
            ok_reloads, failed_reloads = reloader.counts_between(start, start + minute_s)
            total["unexpected"]["reload"] += failed_reloads
            for what, p in children:
                if p.poll() is not None and not any(what in e for e in exited):
                    exited.append(f"{what} exited with status {p.returncode} in minute {minute}")
                    total["unexpected"]["exit"] += 1
            row = {
                "minute": minute, "rss_kib": rss_idle, "rss_load_kib": rss_median, "rss_peak_kib": rss_peak,
                "fds": fds, "fds_idle": fds_idle, "conns_idle": down_idle + up_idle, "conns_downstream": down, "conns_upstream": up,
                "requests": total["requests"], "ok": total["ok"], "unsent": total["unsent"],
                "proxy_requests": admin.get("requests", 0) - prev_admin.get("requests", 0),
                "injected": total["injected"], "unexpected": total["unexpected"], "sighup_reloads": ok_reloads,
            }
            prev_admin = admin or prev_admin
            rows.append(row)
            log(report.line(row))
            report.write_csv(csv_path, rows)
            if exited:
                break

        reloader.stop.set()
        reloader.join(timeout=10)
        # After the load: pooled upstream connections close after their idle
        # timeout; the descriptors must come back to the baseline.
        settled_fds = None
        deadline = time.monotonic() + settle_s
        while proxy.poll() is None:
            settled_fds = probe.fd_count(proxy.pid)
            if settled_fds <= baseline_fds or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        sampler.stop.set()
        sampler.join(timeout=5)
        log(f"soak: after the load: {settled_fds} fds (baseline {baseline_fds}), "
            f"{len(reloader.events)} SIGHUP reloads, {sum(1 for e in reloader.events if not e[1])} not served")

        results = report.verdict(rows, minutes, baseline_fds, settled_fds, fault_seen, "; ".join(exited))
        passed = all(ok for _, ok, _ in results)
        lines = [f"{'PASS' if ok else 'FAIL'}  {name}: {detail}" for name, ok, detail in results]
        lines.append(f"verdict: {'PASS' if passed else 'FAIL'}")
        for l in lines:
            log(l)
        samples = [(t, rss) for t, rss, _, _, _ in sampler.samples]
        with open(os.path.join(out, "rss.svg"), "w") as f:
            f.write(report.svg_plot(samples, minute_s, rows, minutes))
        with open(os.path.join(out, "samples.csv"), "w") as f:
            f.write("seconds,rss_kib,fds,conns_downstream,conns_upstream\n")
            for t, rss, fds, down, up in sampler.samples:
                f.write(f"{t:.1f},{rss},{fds},{down},{up}\n")
        with open(os.path.join(out, "summary.md"), "w") as f:
            f.write(report.markdown_table(rows))
            f.write("\n" + "\n".join(f"- {l}" for l in lines) + "\n")
        log(f"soak: table {csv_path}, plot {os.path.join(out, 'rss.svg')}, summary {os.path.join(out, 'summary.md')}")
        return 0 if passed else 1
    finally:
        for what, p in reversed(children):
            if p.poll() is None:
                p.terminate()
        for what, p in children:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
