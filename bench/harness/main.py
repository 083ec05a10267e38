"""bench/compare: the command line and the order of things."""

import argparse
import dataclasses
import datetime
import os
import shlex
import sys
import time

from . import certs as certs_mod, chart, contenders as contenders_mod, report, runner, scenarios as scenarios_mod, setup, summary
from .setup import log

# Idle keep-alive connections of the memory scenario (the figure).
MEMORY_CONNECTIONS = 10_000
QUICK_MEMORY_CONNECTIONS = 1_000
# Each process holds this many fds at most: 10,000 client sockets plus
# the harness's own files.
FD_WANTED = 20_000


def parse(argv):
    p = argparse.ArgumentParser(
        prog="bench/compare",
        description="shardgate beside nginx, HAProxy and Envoy on this machine: saturation req/s, latency at a "
                    "fixed rate, CPU per request, memory with idle connections. Results go to "
                    "bench/results/<timestamp>/ (results.md, results.json, chart.svg).")
    p.add_argument("--quick", action="store_true",
                   help="smoke run under a minute: 3 short rounds of the quick scenarios, 1,000 idle connections")
    p.add_argument("--rounds", type=int, help="rounds (default 6; --quick 3)")
    p.add_argument("--duration", type=float, help="measured seconds per load run (default 1.0; --quick 0.4)")
    p.add_argument("--warmup", type=float, help="warmup seconds per load run (default 0.25; --quick 0.2)")
    p.add_argument("--scenarios", help=f"comma list of {', '.join(scenarios_mod.BY_NAME)}, or of the groups "
                                       f"{', '.join(scenarios_mod.GROUPS)} (default {scenarios_mod.DEFAULT_GROUP}; --quick: "
                                       + ", ".join(s.name for s in scenarios_mod.SCENARIOS if s.quick) + ")")
    p.add_argument("--contenders",
                   help=f"comma list of {', '.join(contenders_mod.CLASSES)} (default "
                        f"{','.join(contenders_mod.ORDER)}; with --baseline, baseline after shardgate)")
    p.add_argument("--baseline", metavar="PATH",
                   help="a shardgate binary of another build (say the commit before a change): it takes part in "
                        "every round as contender `baseline`, with the same command line, CPU and upstream as "
                        "shardgate, and the report gives shardgate / baseline paired within each round "
                        "(docs/benchmarks.md)")
    p.add_argument("--open-fraction", type=float, default=0.5,
                   help="open-loop rate as a fraction of the lowest proxy saturation rate of the round "
                        "(default %(default)s)")
    p.add_argument("--memory-connections", type=int,
                   help=f"idle connections of the memory scenario (default {MEMORY_CONNECTIONS:,}; --quick "
                        f"{QUICK_MEMORY_CONNECTIONS:,}; 0 skips it)")
    p.add_argument("--memory-rounds", type=int, default=1, help="memory measurements per contender (default 1)")
    p.add_argument("--proxy-cpu", type=int, default=0, help="CPU of the proxy (default 0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU of the load generator and upstream (default 1)")
    p.add_argument("--no-install", action="store_true", help="do not apt-get / pip install missing contenders")
    p.add_argument("--no-build", action="store_true", help="use the existing target/release binaries")
    p.add_argument("--out", help="results folder (default bench/results/<timestamp>)")
    p.add_argument("--balancing", action="store_true",
                   help="instead: the load-balancing scenarios, three upstream endpoints with one 50 ms slow or "
                        "one dead, errors and latency at a fixed rate (docs/benchmarks.md, \"Load balancing\"); "
                        "--duration is the steady run (default 10 s)")
    p.add_argument("--lb-rate", type=int, default=2000, help="--balancing: fixed rate, req/s (default %(default)s)")
    p.add_argument("--lb-connections", type=int, default=50,
                   help="--balancing: client connections (default %(default)s)")
    p.add_argument("--lb-cold", type=float, default=2.0,
                   help="--balancing: seconds of the cold run from the proxy's start (default %(default)s)")
    p.add_argument("--wrk-check", action="store_true",
                   help="instead: compare shardgate-load with wrk on the same targets (see docs/benchmarks.md)")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (3 if a.quick or a.balancing else 6)
    a.duration = a.duration or (0.4 if a.quick else 10.0 if a.balancing else 1.0)
    a.warmup = a.warmup if a.warmup is not None else (0.2 if a.quick else 0.25)
    if a.memory_connections is None:
        a.memory_connections = QUICK_MEMORY_CONNECTIONS if a.quick else MEMORY_CONNECTIONS
    if a.baseline:
        # Absolute: contenders run with their own folder as working directory.
        a.baseline = os.path.abspath(a.baseline)
        if not (os.path.isfile(a.baseline) and os.access(a.baseline, os.X_OK)):
            p.error(f"--baseline {a.baseline}: not an executable file")
    try:
        a.contenders = contender_names(a.contenders, a.baseline)
    except ValueError as e:
        p.error(str(e))
    return a


def contender_names(listed, baseline):
    """The contenders of the run, in order: `listed` (the --contenders
    comma list) or the default list, which holds `baseline` only when a
    baseline binary is given."""
    if not listed:
        return contenders_mod.default_names(baseline=bool(baseline))
    names = [n.strip() for n in listed.split(",") if n.strip()]
    unknown = [n for n in names if n not in contenders_mod.CLASSES]
    if unknown:
        raise ValueError(f"unknown contender(s) {unknown}; known: {list(contenders_mod.CLASSES)}")
    if "baseline" in names and not baseline:
        raise ValueError("contender baseline needs --baseline PATH (the binary of the other build)")
    return list(dict.fromkeys(names))


class Context:
    """What every measurement needs: binaries, CPUs, the upstream, how to
    start a contender."""

    def __init__(self, args, bins, contenders, upstream, folder, certs=None):
        self.bins = bins
        # {key type: certs.Cert} for the TLS scenarios.
        self.certs = certs or {}
        self.contenders = contenders
        self.upstream = upstream
        self.load_cpu = args.load_cpu
        self.proxy_cpu = args.proxy_cpu
        self.duration_s = args.duration
        self.warmup_s = args.warmup
        self.open_fraction = args.open_fraction
        self.folder = folder
        self.logs = os.path.join(folder, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def start(self, name, listener="plain"):
        """Start contender `name` listening plain or with TLS and the
        certificate of key type `listener`."""
        c = self.contenders[name]
        cert = None if listener == "plain" else self.certs[listener]
        return c.start(os.path.join(self.folder, "run", name), self.proxy_cpu, self.upstream.port, self.logs, cert)


def contender_binaries(names, bins, install, baseline=None):
    paths = {"direct": None, "relay": bins.get("shardgate-relay"), "shardgate": bins["shardgate"],
             "baseline": baseline, "shardgate-quiet": bins["shardgate"], "shardgate-observed": bins["shardgate"]}
    for n in names:
        if n in ("nginx", "haproxy"):
            paths[n] = setup.system_binary(n, install)
        elif n == "envoy":
            paths[n] = setup.envoy_binary(install)
    return paths


def main(argv):
    args = parse(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if args.proxy_cpu not in cpus or args.load_cpu not in cpus or args.proxy_cpu == args.load_cpu:
        log(f"need two distinct usable CPUs for --proxy-cpu and --load-cpu; usable: {cpus}")
        return 2
    started = datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    # Absolute: contenders run with their own folder as working directory.
    folder = os.path.abspath(args.out or os.path.join(setup.BENCH, "results", started))
    os.makedirs(folder, exist_ok=True)
    # The harness itself (and the fds of the memory scenario, and every
    # process it starts) stays on the load CPU, away from the proxy.
    usable = len(cpus)
    os.sched_setaffinity(0, {args.load_cpu})
    fd_limit = runner.raise_fd_limit(FD_WANTED)

    bins = setup.build(args.no_build)
    if args.wrk_check:
        from . import wrkcheck
        return wrkcheck.run(args, bins, folder)
    if args.balancing:
        from . import balancing
        args.command_line = "bench/compare " + " ".join(shlex.quote(a) for a in argv)
        return balancing.run(args, bins, contender_binaries(args.contenders, bins, not args.no_install), folder)

    names = args.contenders
    if args.baseline and "baseline" not in names:
        log(f"--baseline given but --contenders leaves baseline out: {args.baseline} is not measured")
    scen = scenarios_mod.select(args.scenarios.split(",") if args.scenarios else None, args.quick)
    paths = contender_binaries(names, bins, not args.no_install, args.baseline)
    contenders = {n: contenders_mod.CLASSES[n](paths[n]) for n in names}
    versions = {n: c.version() for n, c in contenders.items() if n != "direct"}
    versions["shardgate-load"] = setup._run([bins["shardgate-load"], "--version"])
    if args.memory_connections and args.memory_connections + 100 > fd_limit:
        log(f"fd limit {fd_limit}: memory scenario lowered to {fd_limit - 100} connections")
        args.memory_connections = fd_limit - 100

    data = {
        "schema_version": 1,
        "started": started,
        "command": "bench/compare " + " ".join(shlex.quote(a) for a in argv),
        "machine": setup.machine(versions, {"proxy": args.proxy_cpu, "load": args.load_cpu}, usable),
        "config": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                   "open_fraction": args.open_fraction, "contenders": names, "quick": args.quick,
                   "memory_connections": args.memory_connections, "fd_limit": fd_limit},
        "scenarios": {s.name: {**dataclasses.asdict(s), "needs": sorted(s.needs)} for s in scen},
        "rounds": [],
        "memory": {},
    }
    if "baseline" in names:
        # Which two builds the paired ratios compare; the upstream and the
        # load generator are this build's for both.
        data["builds"] = {"shardgate": contenders_mod.describe_binary(os.path.abspath(bins["shardgate"])),
                          "baseline": contenders_mod.describe_binary(args.baseline)}
        data["config"]["baseline"] = args.baseline
        if data["builds"]["shardgate"]["sha256"] == data["builds"]["baseline"]["sha256"]:
            log("--baseline is the same binary as shardgate: an A/A run (the harness's own noise)")
    t0 = time.monotonic()
    os.makedirs(os.path.join(folder, "logs"), exist_ok=True)
    # TLS rows: a fresh certificate per key type, in this run's folder.
    kinds = sorted({s.tls for s in scen if s.tls})
    certs = certs_mod.generate(os.path.join(folder, "run", "certs"), kinds) if kinds else {}
    if certs:
        data["tls"] = {"certificates": {k: {"label": c.label, "command": " ".join(
            certs_mod.req_argv(k, f"{k}.crt", f"{k}.key"))} for k, c in certs.items()},
            "openssl": setup._run(["openssl", "version"])}
    upstream = contenders_mod.Upstream(bins["shardgate"])
    up = upstream.start(os.path.join(folder, "run", "upstream"), args.load_cpu, os.path.join(folder, "logs"))
    ctx = Context(args, bins, contenders, up, folder, certs)
    try:
        for r in range(args.rounds):
            data["rounds"].append(runner.round_passes(r, contenders, scen, ctx))
        if args.memory_connections:
            proxies = [n for n in names if contenders[n].is_proxy]
            for r in range(args.memory_rounds):
                for n in runner.round_order(proxies, r):
                    m = runner.memory_run(n, ctx, args.memory_connections)
                    data["memory"].setdefault(n, []).append(m)
                    log(f"memory {n:<9} {m['rss_kib']:>8} KiB with {m['connections']} idle connections "
                        f"({m['per_connection_bytes']:.0f} B each)")
    finally:
        up.stop()
    data["elapsed_s"] = round(time.monotonic() - t0, 1)
    data["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    data["summary"] = summary.summarise(data["rounds"], data["memory"], names, [s.name for s in scen])
    report.write(data, folder)
    chart.write(data, folder)
    print(open(os.path.join(folder, "results.md")).read())
    log(f"done in {data['elapsed_s']} s: {folder}/results.md, results.json, chart.svg")
    return 0
