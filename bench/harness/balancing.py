"""bench/compare --balancing: three upstream endpoints, one of them
failing, at a fixed rate; errors and latency per proxy.

Two scenarios (docs/benchmarks.md, "Load balancing"):
  lb_slow  one endpoint of three answers every request 50 ms late
           (`shardgate echo --delay-ms 50`);
  lb_dead  one endpoint of three refuses connections (nothing listens on
           its port).
Each proxy is configured as its operators would for this (bench/peers/
*-lb.*): least-request balancing, active health checks every second where
it has them, passive ejection, a failed connect tried on another endpoint.

Per round and contender (order rotated per round, each started fresh):
  cold    the first `--cold` seconds from start, no warmup: the errors a
          client sees while the proxy learns which endpoint fails;
  steady  right after, `--duration` seconds: errors after ejection, and
          latency (p50, p99, p99.9) at the fixed rate.
The proxy's CPU per request is read around the steady run. The upstream
endpoints and the load generator share the load CPU; the proxy has its own.
"""

import json
import os
import statistics
import time

from . import contenders as contenders_mod, procstat, runner
from .setup import log

SCENARIOS = {
    "lb_slow": "one endpoint of three 50 ms slow",
    "lb_dead": "one endpoint of three dead (connection refused)",
}
SLOW_MS = 50
# The proxies with a balancing configuration in bench/peers/.
CONTENDERS = ["shardgate", "nginx", "haproxy", "envoy"]


class _Lb:
    """Mixin: the contender's `*-lb` config over `self.endpoints`
    (["127.0.0.1:PORT"] * 3), whatever upstream port it is given."""

    endpoints = ()

    def _endpoint_values(self, ports_only=False):
        names = "ABC"
        if ports_only:
            return {f"ENDPOINT_{n}_PORT": e.rsplit(":", 1)[1] for n, e in zip(names, self.endpoints)}
        return {f"ENDPOINT_{n}": e for n, e in zip(names, self.endpoints)}


class ShardgateLb(_Lb, contenders_mod.Shardgate):
    def command(self, rundir, port, upstream_port, cert=None):
        path = os.path.join(rundir, "shardgate-lb.toml")
        with open(path, "w") as f:
            f.write(contenders_mod._fill("shardgate-lb.toml", LISTEN=f"127.0.0.1:{port}", **self._endpoint_values()))
        return [self.binary, "run", "-c", path]


class NginxLb(_Lb, contenders_mod.Nginx):
    def command(self, rundir, port, upstream_port, cert=None):
        with open(os.path.join(rundir, "nginx.conf"), "w") as f:
            f.write(contenders_mod._fill("nginx-lb.conf", LISTEN=f"127.0.0.1:{port}", **self._endpoint_values()))
        return [self.binary, "-p", rundir, "-c", "nginx.conf", "-g", "daemon off;"]


class HaproxyLb(_Lb, contenders_mod.Haproxy):
    def command(self, rundir, port, upstream_port, cert=None):
        path = os.path.join(rundir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(contenders_mod._fill("haproxy-lb.cfg", LISTEN=f"127.0.0.1:{port}", **self._endpoint_values()))
        return [self.binary, "-db", "-f", path]


class EnvoyLb(_Lb, contenders_mod.Envoy):
    def command(self, rundir, port, upstream_port, cert=None):
        path = os.path.join(rundir, "envoy.yaml")
        with open(path, "w") as f:
            f.write(contenders_mod._fill("envoy-lb.yaml", LISTEN_PORT=port, **self._endpoint_values(ports_only=True)))
        return [self.binary, "-c", path, "--concurrency", "1", "--disable-hot-restart", "-l", "warning"]


CLASSES = {"shardgate": ShardgateLb, "nginx": NginxLb, "haproxy": HaproxyLb, "envoy": EnvoyLb}


class _Load:
    """What runner.run_load needs of a scenario."""

    def __init__(self, connections):
        self.connections = connections
        self.tls = ""

    def load_args(self, cert=None):
        return ["-c", str(self.connections), "-m", "GET"]

    def url(self, port):
        return f"http://127.0.0.1:{port}/bytes/13"


def _echo(binary, folder, cpu, name, delay_ms=0):
    upstream = contenders_mod.Upstream(binary, ["--delay-ms", str(delay_ms)] if delay_ms else [])
    return upstream.start(os.path.join(folder, "run", name), cpu, os.path.join(folder, "logs"))


def _summary(result):
    lat = result["latency_us"]
    return {"requests": result["requests"], "ok": result["ok"], "errors": result["errors"]["total"],
            "error_kinds": {k: v for k, v in result["errors"].items() if k != "total" and v},
            "status_codes": result.get("status_codes", {}), "unsent": result.get("unsent", 0),
            "latency_us": {k: lat[k] for k in ("p50", "p90", "p99", "p99_9", "max")}}


def run(args, bins, paths, folder):
    """The whole --balancing run; writes results.json and results.md."""
    names = [n for n in args.contenders if n in CLASSES]
    skipped = [n for n in args.contenders if n not in CLASSES]
    if skipped:
        log(f"--balancing: {skipped} have no balancing configuration; not measured")
    contenders = {n: CLASSES[n](paths[n]) for n in names}
    logs = os.path.join(folder, "logs")
    os.makedirs(logs, exist_ok=True)
    load = _Load(args.lb_connections)
    data = {"schema_version": 1, "mode": "balancing", "command": args.command_line,
            "config": {"rounds": args.rounds, "rate": args.lb_rate, "connections": args.lb_connections,
                       "cold_s": args.lb_cold, "duration_s": args.duration, "slow_ms": SLOW_MS,
                       "contenders": names},
            "versions": {n: c.version() for n, c in contenders.items()}, "rounds": []}
    fast = [_echo(bins["shardgate"], folder, args.load_cpu, f"upstream-{i}") for i in (1, 2)]
    slow = _echo(bins["shardgate"], folder, args.load_cpu, "upstream-slow", SLOW_MS)
    t0 = time.monotonic()
    try:
        dead = f"127.0.0.1:{contenders_mod.free_port()}"
        third = {"lb_slow": f"127.0.0.1:{slow.port}", "lb_dead": dead}
        for r in range(args.rounds):
            record = {"round": r + 1, "runs": {}}
            for scenario, failing in third.items():
                for n in runner.rotate(names, r):
                    c = contenders[n]
                    c.endpoints = [f"127.0.0.1:{u.port}" for u in fast] + [failing]
                    running = c.start(os.path.join(folder, "run", n), args.proxy_cpu, fast[0].port, logs)
                    try:
                        cold = runner.run_load(bins, args.load_cpu, running.port, load, args.lb_cold, 0,
                                               args.lb_rate)
                        before = procstat.cpu(running.pids)
                        steady = runner.run_load(bins, args.load_cpu, running.port, load, args.duration, 0,
                                                 args.lb_rate)
                        after = procstat.cpu(running.pids)
                    finally:
                        running.stop()
                    m = {"cold": _summary(cold), "steady": _summary(steady),
                         "cpu_us_per_req": (after["exact_s"] - before["exact_s"]) * 1e6
                         / max(steady.get("exchanges", 0), 1)}
                    record["runs"].setdefault(scenario, {})[n] = m
                    lat = m["steady"]["latency_us"]
                    log(f"round {r + 1} {scenario} {n:<9} cold errors {m['cold']['errors']:>5}  steady errors "
                        f"{m['steady']['errors']:>5}  p50 {lat['p50']} us  p99 {lat['p99']} us  "
                        f"p99.9 {lat['p99_9']} us  cpu {m['cpu_us_per_req']:.1f} us/req")
            data["rounds"].append(record)
    finally:
        for u in fast + [slow]:
            u.stop()
    data["elapsed_s"] = round(time.monotonic() - t0, 1)
    data["summary"] = summarise(data["rounds"], names)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    text = report(data)
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write(text)
    print(text)
    log(f"done in {data['elapsed_s']} s: {folder}/results.md, results.json")
    return 0


def summarise(rounds, names):
    """Per scenario and contender: errors summed over rounds (cold and
    steady), medians of the steady latencies and CPU, and the spread of p99."""
    out = {}
    for scenario in SCENARIOS:
        for n in names:
            runs = [r["runs"][scenario][n] for r in rounds if n in r["runs"].get(scenario, {})]
            if not runs:
                continue
            p99 = [m["steady"]["latency_us"]["p99"] for m in runs]
            out.setdefault(scenario, {})[n] = {
                "cold_errors": sum(m["cold"]["errors"] for m in runs),
                "cold_requests": sum(m["cold"]["requests"] for m in runs),
                "steady_errors": sum(m["steady"]["errors"] for m in runs),
                "steady_requests": sum(m["steady"]["requests"] for m in runs),
                "p50_us": statistics.median(m["steady"]["latency_us"]["p50"] for m in runs),
                "p99_us": statistics.median(p99), "p99_min_us": min(p99), "p99_max_us": max(p99),
                "p99_9_us": statistics.median(m["steady"]["latency_us"]["p99_9"] for m in runs),
                "cpu_us_per_req": statistics.median(m["cpu_us_per_req"] for m in runs),
            }
    return out


def report(data):
    cfg = data["config"]
    lines = ["# Load balancing: one failing endpoint of three", "",
             f"`{data['command']}`: {cfg['rounds']} rounds, {cfg['rate']} req/s fixed rate over "
             f"{cfg['connections']} keep-alive connections; cold = the first {cfg['cold_s']} s from start, "
             f"steady = the next {cfg['duration_s']} s (errors after ejection, latency). Medians over rounds; "
             "p99 range in brackets. Versions: " + "; ".join(f"{n} {v}" for n, v in data["versions"].items()) + ".",
             ""]
    for scenario, title in SCENARIOS.items():
        rows = data["summary"].get(scenario, {})
        if not rows:
            continue
        best_peer = min((s["p99_us"] for n, s in rows.items() if n != "shardgate"), default=None)
        lines += [f"## {title}", "",
                  "| proxy | cold errors | steady errors | p50 µs | p99 µs | p99.9 µs | CPU µs/req |",
                  "|---|---|---|---|---|---|---|"]
        for n, s in rows.items():
            lines.append(f"| {n} | {s['cold_errors']} / {s['cold_requests']} | {s['steady_errors']} / "
                         f"{s['steady_requests']} | {s['p50_us']:.0f} | {s['p99_us']:.0f} [{s['p99_min_us']}–"
                         f"{s['p99_max_us']}] | {s['p99_9_us']:.0f} | {s['cpu_us_per_req']:.1f} |")
        sg = rows.get("shardgate")
        if sg and best_peer:
            met = sg["steady_errors"] == 0 and sg["p99_us"] <= best_peer
            lines += ["", f"Target (zero errors after ejection, p99 ≤ the best peer's {best_peer:.0f} µs): "
                          f"{'met' if met else 'NOT met'} (shardgate: {sg['steady_errors']} errors, p99 "
                          f"{sg['p99_us']:.0f} µs, {sg['p99_us'] / best_peer:.2f}× the best peer)."]
        lines.append("")
    return "\n".join(lines) + "\n"
