"""Running the measurements: one load run, one memory run, the rounds.

Round r runs the contenders in rotated order (A B C D E, then B C D E A,
...), in two passes (with a baseline build, `baseline` runs right next to
`shardgate`, after it in even rounds and before it in odd ones: the pair
is always minutes apart at most, and neither is always the first of the
two):
  1. closed loop (saturation) for every scenario;
  2. open loop at a fixed rate for every scenario: half the lowest
     saturation rate any proxy reached in pass 1 of this round, so the
     rate is the same for everyone and below every contender's saturation.
Each contender is started fresh for each pass (once per listener: plain,
then TLS with each key type) and stopped after it. The
proxy's CPU time (all its processes and threads) is read before and after
each load run and divided by the exchanges the load generator completed
in that run (warmup included: the CPU was spent on those too).
"""

import json
import os
import resource
import selectors
import socket
import subprocess
import time

from . import procstat
from .scenarios import by_listener
from .setup import log

# Beyond warmup + duration, the load generator needs at most ~2 s to drain
# (its own hard bound) plus process start and exit.
LOAD_SLACK_S = 15.0
REQUEST = b"GET /bytes/13 HTTP/1.1\r\nHost: bench\r\n\r\n"


def rotate(items, r):
    """Order of round r: the list rotated left by r."""
    r %= len(items)
    return items[r:] + items[:r]


def round_order(names, r):
    """The contenders in the order of round r: `names` rotated, except
    that `baseline` is taken out of the rotation and put beside
    `shardgate`, after it in even rounds and before it in odd ones."""
    if "baseline" not in names or "shardgate" not in names:
        return rotate(list(names), r)
    order = rotate([n for n in names if n != "baseline"], r)
    order.insert(order.index("shardgate") + (1 if r % 2 == 0 else 0), "baseline")
    return order


def run_load(bins, cpu, port, scenario, duration_s, warmup_s, rate=None, cert=None):
    """One shardgate-load run against 127.0.0.1:port (with TLS rows, the
    contender serving `cert`); its JSON."""
    argv = ["taskset", "-c", str(cpu), bins["shardgate-load"], "--cpus", str(cpu), "-t", "1",
            "-d", f"{duration_s}s", "--warmup", f"{warmup_s}s", "--timeout", "5s", "--json"]
    argv += scenario.load_args(cert)
    if rate is not None:
        argv += ["-R", str(int(rate))]
    argv.append(scenario.url(port))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + warmup_s + LOAD_SLACK_S)
    if out.returncode != 0:
        raise RuntimeError(f"shardgate-load failed ({out.returncode}): {' '.join(argv)}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def measure(bins, cpu, running, upstream, scenario, duration_s, warmup_s, rate=None):
    """One load run with the CPU of the proxy and of the upstream around it."""
    duration_s, warmup_s = duration_s * scenario.duration_factor, warmup_s * scenario.duration_factor
    before, up_before = procstat.cpu(running.pids), procstat.cpu(upstream.pids)
    result = run_load(bins, cpu, running.port, scenario, duration_s, warmup_s, rate, running.cert)
    after, up_after = procstat.cpu(running.pids), procstat.cpu(upstream.pids)
    exchanges = max(result.get("exchanges", 0), 1)

    def per_request_us(a, b, key):
        return (b[key] - a[key]) * 1e6 / exchanges

    lat = result["latency_us"]
    own_cpu = running.contender.measures_cpu
    share = procstat.kernel_share(before, after) if own_cpu else None
    cpu_us = per_request_us(before, after, "exact_s") if own_cpu else None
    return {
        "requests_per_sec": result["requests_per_sec"],
        "requests": result["requests"],
        "ok": result["ok"],
        "errors": result["errors"]["total"],
        "error_samples": result.get("error_samples", {}),
        "unsent": result.get("unsent", 0),
        "exchanges": result.get("exchanges", 0),
        "rate": rate,
        "latency_us": {k: lat[k] for k in ("p50", "p90", "p99", "p99_9", "p99_99", "max", "mean")},
        "cpu_us_per_req": cpu_us,
        # Of which in the kernel (socket calls, TCP, the loopback's delivery
        # to the peer): the part no proxy code change can remove.
        "cpu_kernel_share": share,
        "cpu_kernel_us_per_req": cpu_us * share if share is not None else None,
        "cpu_tick_us_per_req": per_request_us(before, after, "ticks_s") if own_cpu else None,
        "upstream_cpu_us_per_req": per_request_us(up_before, up_after, "exact_s"),
        "tls": tls_summary(result.get("tls")),
        "command": result["command"],
    }


def tls_summary(tls):
    """The handshake counts and what was negotiated, from the load
    generator's `tls` object (None for plain HTTP)."""
    if not tls:
        return None
    keys = ("full", "resumed", "handshakes_per_sec", "handshakes_all_phases", "versions", "cipher_suites",
            "key_exchange_groups")
    return {k: tls.get(k) for k in keys}


def round_passes(r, contenders, scenarios, ctx):
    """Both passes of round r; returns the round's record."""
    order = round_order(list(contenders), r)
    record = {"round": r + 1, "order": order, "open_rate": {}, "runs": {c: {} for c in order}}

    for c in order:
        for listener, group in by_listener(scenarios):
            group = [s for s in group if s.needs <= contenders[c].features]
            if not group:
                continue
            running = ctx.start(c, listener)
            try:
                for s in group:
                    m = measure(ctx.bins, ctx.load_cpu, running, ctx.upstream, s, ctx.duration_s, ctx.warmup_s)
                    record["runs"][c].setdefault(s.name, {})["closed"] = m
                    log(f"round {r + 1} {c:<9} {s.name:<17} closed {m['requests_per_sec']:>9.0f} req/s"
                        f"  cpu {_fmt(m['cpu_us_per_req'])} us/req  errors {m['errors']}{_tls_note(s, m)}")
            finally:
                running.stop()

    record["open_rate"] = open_rates(record, contenders, scenarios, ctx.open_fraction)

    for c in order:
        for listener, group in by_listener(scenarios):
            group = [s for s in group if s.name in record["runs"][c]]
            if not group:
                continue
            running = ctx.start(c, listener)
            try:
                for s in group:
                    rate = record["open_rate"][s.name]
                    m = measure(ctx.bins, ctx.load_cpu, running, ctx.upstream, s, ctx.duration_s, ctx.warmup_s,
                                rate)
                    record["runs"][c][s.name]["open"] = m
                    lat = m["latency_us"]
                    log(f"round {r + 1} {c:<9} {s.name:<17} open {rate:>7} req/s  p99 {lat['p99']} us"
                        f"  p99.9 {lat['p99_9']} us  cpu {_fmt(m['cpu_us_per_req'])} us/req  errors {m['errors']}"
                        f"{_tls_note(s, m)}")
            finally:
                running.stop()
    return record


def open_rates(record, contenders, scenarios, fraction):
    """The fixed rate of each scenario in pass 2: `fraction` of the lowest
    saturation rate a proxy reached in pass 1 (the floors, direct and relay,
    saturate higher and do not count), rounded down to 100 req/s."""
    out = {}
    for s in scenarios:
        rates = [record["runs"][c][s.name]["closed"]["requests_per_sec"] for c in record["runs"]
                 if contenders[c].is_proxy and s.name in record["runs"][c]]
        lowest = min(rates) if rates else 1000.0
        out[s.name] = max(100, int(lowest * fraction / 100) * 100)
    return out


def _fmt(v):
    return "-" if v is None else f"{v:.1f}"


def _tls_note(scenario, m):
    """For TLS rows: what was negotiated; a loud note if a new-connection
    row saw resumed handshakes (it must measure full ones only)."""
    tls = m.get("tls")
    if not tls:
        return ""
    note = "  " + "/".join(",".join(tls[k]) for k in ("versions", "cipher_suites", "key_exchange_groups"))
    if scenario.new_conn and tls["resumed"]:
        note += f"  WARNING: {tls['resumed']} resumed handshakes"
    return note


def raise_fd_limit(wanted):
    """Soft RLIMIT_NOFILE up to `wanted` (or the hard limit); the new value."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _response_complete(data):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= end + 4 + length


def open_idle_connections(port, count, batch=250, timeout_s=20.0):
    """`count` keep-alive connections, each after one complete exchange
    (so the proxy has served a request on it and holds whatever it keeps
    per connection), then left idle. Returns the open sockets."""
    socks = []
    deadline = time.monotonic() + timeout_s
    while len(socks) < count:
        group = []
        for _ in range(min(batch, count - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
            s.sendall(REQUEST)
            s.setblocking(False)
            group.append(s)
        sel = selectors.DefaultSelector()
        pending = {}
        for s in group:
            sel.register(s, selectors.EVENT_READ)
            pending[s] = b""
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"idle connections: {len(pending)} responses missing after {timeout_s} s")
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("idle connections: the server closed a connection")
                pending[s] += chunk
                if _response_complete(pending[s]):
                    sel.unregister(s)
                    del pending[s]
        sel.close()
        socks.extend(group)
    return socks


def memory_run(contender, ctx, connections, settle_s=1.0):
    """Resident memory of a fresh contender, idle and with `connections`
    idle keep-alive client connections."""
    running = ctx.start(contender)
    socks = []
    try:
        time.sleep(settle_s)
        base = procstat.rss_kib(running.pids)
        socks = open_idle_connections(running.port, connections)
        time.sleep(settle_s)
        loaded = procstat.rss_kib(running.pids)
        return {
            "connections": connections,
            "rss_idle_kib": base,
            "rss_kib": loaded,
            "per_connection_bytes": (loaded - base) * 1024 / connections,
        }
    finally:
        for s in socks:
            s.close()
        running.stop()
