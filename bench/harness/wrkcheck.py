"""shardgate-load checked against wrk: same target, same connections,
threads, duration and CPU, run alternately (which tool goes first flips
every round). Closed-loop rates should agree within 10 %.

Targets: the upstream, shardgate and nginx (a load generator must not
favour one server over another), in two placements: as in the comparison (client and upstream share the load
CPU, so a client that spends less CPU per request leaves more to the
upstream and gets a higher rate), and server-bound (proxy and its
upstream both on the proxy CPU, the client alone on the load CPU with
room to spare), where the rate is the server's and any difference in
counting would show. Each tool's own CPU time per request is recorded.

    bench/compare --wrk-check
"""

import json
import os
import re
import resource
import statistics
import subprocess

from . import contenders as contenders_mod, setup
from .setup import log

ROUNDS = 4
DURATION_S = 2
CONNECTIONS = 50
# (label, path, which server: "upstream" | "proxy" | "nginx" | "server-bound")
TARGETS = [("direct, 13 B", "/bytes/13", "upstream"),
           ("shardgate, 13 B", "/bytes/13", "proxy"),
           ("nginx, 13 B", "/bytes/13", "nginx"),
           ("shardgate, 16 KiB", "/bytes/16384", "proxy"),
           ("server-bound shardgate, 13 B", "/bytes/13", "server-bound")]


def _child_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(argv):
    """Run argv; its output and the CPU seconds it used."""
    before = _child_cpu_s()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION_S + 30)
    return out, _child_cpu_s() - before


def wrk_rate(cpu, url):
    argv = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", url]
    out, cpu_s = _timed(argv)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    n = re.search(r"(\d+) requests in", out.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out.stdout)
    if not m or not n:
        raise RuntimeError(f"no rate in wrk output: {out.stdout}\n{out.stderr}")
    return float(m.group(1)), cpu_s * 1e6 / max(int(n.group(1)), 1), " ".join(argv), errors.group(0) if errors else ""


def load_rate(bins, cpu, url):
    argv = ["taskset", "-c", str(cpu), bins["shardgate-load"], "--cpus", str(cpu), "-t", "1", "-c", str(CONNECTIONS),
            "-d", f"{DURATION_S}s", "--warmup", "0s", "--json", url]
    out, cpu_s = _timed(argv)
    d = json.loads(out.stdout)
    errors = f"{d['errors']['total']} errors" if d["errors"]["total"] else ""
    return d["requests_per_sec"], cpu_s * 1e6 / max(d["exchanges"], 1), " ".join(argv), errors


def run(args, bins, folder):
    setup.system_binary("wrk", not args.no_install)
    logs = os.path.join(folder, "logs")
    os.makedirs(logs, exist_ok=True)
    upstream = contenders_mod.Upstream(bins["shardgate"]).start(os.path.join(folder, "run", "upstream"),
                                                                args.load_cpu, logs)
    started = [upstream]
    rows = []
    try:
        sg = contenders_mod.Shardgate(bins["shardgate"])
        proxy = sg.start(os.path.join(folder, "run", "shardgate"), args.proxy_cpu, upstream.port, logs)
        started.append(proxy)
        # Server-bound: a second upstream and proxy, both on the proxy CPU.
        upstream2 = contenders_mod.Upstream(bins["shardgate"]).start(os.path.join(folder, "run", "upstream2"),
                                                                     args.proxy_cpu, logs)
        started.append(upstream2)
        proxy2 = sg.start(os.path.join(folder, "run", "shardgate2"), args.proxy_cpu, upstream2.port, logs)
        started.append(proxy2)
        nginx = contenders_mod.Nginx(setup.system_binary("nginx", not args.no_install)).start(
            os.path.join(folder, "run", "nginx"), args.proxy_cpu, upstream.port, logs)
        started.append(nginx)
        ports = {"upstream": upstream.port, "proxy": proxy.port, "nginx": nginx.port, "server-bound": proxy2.port}
        for r in range(ROUNDS):
            for label, path, server in TARGETS:
                url = f"http://127.0.0.1:{ports[server]}{path}"
                tools = [("wrk", lambda: wrk_rate(args.load_cpu, url)),
                         ("shardgate-load", lambda: load_rate(bins, args.load_cpu, url))]
                if r % 2:
                    tools.reverse()
                got = {}
                for name, fn in tools:
                    got[name] = fn()
                ratio = got["shardgate-load"][0] / got["wrk"][0]
                rows.append({"round": r + 1, "target": label, "wrk": got["wrk"][0],
                             "shardgate_load": got["shardgate-load"][0], "ratio": ratio,
                             "wrk_cpu_us": got["wrk"][1], "load_cpu_us": got["shardgate-load"][1],
                             "commands": [got["wrk"][2], got["shardgate-load"][2]],
                             "notes": " ".join(x for x in (got["wrk"][3], got["shardgate-load"][3]) if x)})
                log(f"round {r + 1} {label:<28} wrk {got['wrk'][0]:>9.0f}  shardgate-load "
                    f"{got['shardgate-load'][0]:>9.0f}  ratio {ratio:.3f}  client CPU us/req "
                    f"{got['wrk'][1]:.1f} / {got['shardgate-load'][1]:.1f}")
    finally:
        for s in reversed(started):
            s.stop()

    lines = ["# shardgate-load against wrk", "",
             f"Closed loop, 1 thread, {CONNECTIONS} connections, {DURATION_S} s, both pinned to CPU "
             f"{args.load_cpu} (upstream too), proxy on CPU {args.proxy_cpu}; the tools alternate, the first "
             f"one flipping each round.", "",
             "| target | round | wrk req/s | shardgate-load req/s | load / wrk | client CPU µs/req wrk / load |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['target']} | {row['round']} | {row['wrk']:,.0f} | {row['shardgate_load']:,.0f} | "
                     f"{row['ratio']:.3f} | {row['wrk_cpu_us']:.1f} / {row['load_cpu_us']:.1f} |")
    lines += ["", "| target | median load / wrk | min–max | median client CPU µs/req wrk / load |",
              "|---|---|---|---|"]
    summary = {}
    for label, _, _ in TARGETS:
        mine = [row for row in rows if row["target"] == label]
        ratios = [row["ratio"] for row in mine]
        wcpu = statistics.median(row["wrk_cpu_us"] for row in mine)
        lcpu = statistics.median(row["load_cpu_us"] for row in mine)
        summary[label] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                          "wrk_cpu_us": wcpu, "load_cpu_us": lcpu}
        lines.append(f"| {label} | {summary[label]['median']:.3f} | {min(ratios):.3f}–{max(ratios):.3f} | "
                     f"{wcpu:.1f} / {lcpu:.1f} |")
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in rows[0]["commands"]), ""]
    with open(os.path.join(folder, "wrk-check.json"), "w") as f:
        json.dump({"rows": rows, "summary": summary}, f, indent=1)
    with open(os.path.join(folder, "wrk-check.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0
