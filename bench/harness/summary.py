"""From rounds to figures: medians with spread, ratios paired within a
round, and the issue's targets checked against them.

A ratio "to nginx" is computed inside each round (contender / nginx of the
same round, both measured minutes apart at most), then summarised over
rounds: drift of the shared machine between rounds cancels out. A
baseline build (`--baseline`) is compared with shardgate the same way:
shardgate / baseline inside each round, for every saturation, CPU and
latency figure.

The relay floor: a proxy's overhead above the relay (`shardgate-relay`, a
byte relay with no HTTP) over nginx's overhead above it, in CPU per
request at the fixed rate, (proxy - relay) / (nginx - relay), also inside
each round. It says how much of the work a proxy could avoid it does,
compared with nginx; docs/benchmarks.md, "The relay floor", says when it
is too noisy to read (a small nginx - relay) and how the new-connection
row is read.
"""

import statistics

from .scenarios import BY_NAME as SCENARIOS_BY_NAME

# How each metric is read from one contender's runs of one scenario in one
# round ("closed": saturation pass, "open": fixed-rate pass).
METRICS = {
    "rps": lambda run: run["closed"]["requests_per_sec"],
    "cpu_sat": lambda run: run["closed"]["cpu_us_per_req"],
    "cpu": lambda run: run["open"]["cpu_us_per_req"],
    "cpu_kernel": lambda run: run["open"]["cpu_kernel_us_per_req"],
    "p50": lambda run: run["open"]["latency_us"]["p50"],
    "p90": lambda run: run["open"]["latency_us"]["p90"],
    "p99": lambda run: run["open"]["latency_us"]["p99"],
    "p99_9": lambda run: run["open"]["latency_us"]["p99_9"],
    "p99_99": lambda run: run["open"]["latency_us"]["p99_99"],
    "max": lambda run: run["open"]["latency_us"]["max"],
    "upstream_cpu": lambda run: run["open"]["upstream_cpu_us_per_req"],
    "errors": lambda run: run["closed"]["errors"] + run["open"]["errors"],
}
PERCENTILES = ["p50", "p90", "p99", "p99_9", "p99_99"]

# The targets: (metric, scenario, reference, comparison, bound, what).
# A ratio is shardgate / reference, paired within a round; the median over
# rounds is compared with the bound.
TARGETS = [
    ("cpu", "small", "nginx", "<=", 0.6, "CPU per request at a fixed rate, 13 B"),
    ("cpu", "16k", "nginx", "<=", 0.7, "CPU per request at a fixed rate, 16 KiB"),
    ("cpu", "1m", "nginx", "<=", 0.8, "CPU per request at a fixed rate, 1 MiB"),
    ("cpu", "newconn", "nginx", "<=", 0.8, "CPU per request at a fixed rate, new connection each"),
    ("cpu", "small", "envoy", "<=", 0.2, "CPU per request at a fixed rate, 13 B, vs Envoy"),
    ("rps", "small", "nginx", ">=", 1.3, "requests/s at saturation, 13 B"),
] + [
    (p, s, "nginx", "<=", 1.0, f"{p.replace('_', '.')} latency at a fixed rate, {s}")
    for s in ("small", "16k", "1m", "post4k", "newconn") for p in ("p99", "p99_9")
] + [
    ("memory", None, "nginx", "<=", 1.0, "resident memory with idle keep-alive connections"),
] + [
    # The TLS issue: CPU per full handshake and per keep-alive HTTPS
    # request no higher than nginx's, p99 at a fixed offered rate lower.
    (metric, f"{row}_{key}", "nginx", cmp, 1.0, f"{what}, {label}")
    for key, label in (("ecdsa", "ECDSA P-256"), ("rsa", "RSA 2048"))
    for metric, row, cmp, what in (
        ("cpu", "tls_newconn", "<=", "CPU per full TLS handshake at a fixed rate"),
        ("cpu", "tls_small", "<=", "CPU per keep-alive HTTPS request at a fixed rate"),
        ("p99", "tls_newconn", "<", "p99 latency at a fixed rate, full TLS handshake per request"),
        ("p99", "tls_small", "<", "p99 latency at a fixed rate, keep-alive HTTPS"),
    )
]

# The figures compared with a baseline build: saturation, CPU per
# request, latency percentiles at the fixed rate.
BASELINE_METRICS = ["rps", "cpu_sat", "cpu", "cpu_kernel"] + PERCENTILES
# Figures where a higher value is better; for the rest (CPU, latency,
# memory) lower is better.
HIGHER_IS_BETTER = {"rps"}
# "No regression" (docs/benchmarks.md): the median paired ratio
# shardgate / baseline of every figure within 1 ± this.
BASELINE_TOLERANCE = 0.05

# The floor of the overhead ratio, and the contenders it is not computed
# for (the floors themselves; the reference is 1 by definition).
FLOOR = "relay"
NOT_OVER_FLOOR = {"direct", FLOOR}
# Below this share of nginx's CPU per request, nginx - relay is too small a
# denominator: the fixed-rate CPU figure of each contender moves by about
# ±3 % of itself between rounds (A/A runs), which on a 20 % share is ±15 %
# of the ratio or more.
NOISY_SHARE = 0.25

COMPARE = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def values(rounds, contender, scenario, metric):
    """The metric of one contender and scenario, one value per round (None
    where it was not measured)."""
    out = []
    for rec in rounds:
        run = rec["runs"].get(contender, {}).get(scenario)
        try:
            out.append(METRICS[metric](run))
        except (KeyError, TypeError):
            out.append(None)
    return out


def paired_ratios(rounds, contender, reference, scenario, metric):
    """contender / reference inside each round."""
    a = values(rounds, contender, scenario, metric)
    b = values(rounds, reference, scenario, metric)
    return [x / y if x is not None and y else None for x, y in zip(a, b)]


def over_floor_ratios(rounds, contender, scenario, reference="nginx", floor=FLOOR):
    """(contender - floor) / (reference - floor) of CPU per request at the
    fixed rate, inside each round; None for a round missing one of the
    three, or where the reference is not above the floor (no overhead to
    divide by)."""
    out = []
    for p, f, n in zip(values(rounds, contender, scenario, "cpu"), values(rounds, floor, scenario, "cpu"),
                       values(rounds, reference, scenario, "cpu")):
        if p is None or f is None or n is None or n - f <= 0:
            out.append(None)
        else:
            out.append((p - f) / (n - f))
    return out


def floor_figures(rounds, scenario, reference="nginx", floor=FLOOR):
    """What the overhead ratio of a scenario divides by: the floor's CPU per
    request, the reference's overhead above it (µs, and as a share of the
    reference's whole CPU per request), each per round then summarised; the
    ratio is `noisy` when that share's median is under NOISY_SHARE. On a
    new-connection row the floor also accepts and connects per request
    (`new_conn`). None when the floor or the reference did not run."""
    fl = values(rounds, floor, scenario, "cpu")
    ref = values(rounds, reference, scenario, "cpu")
    if not any(v is not None for v in fl) or not any(v is not None for v in ref):
        return None
    pairs = [(f, n) for f, n in zip(fl, ref) if f is not None and n is not None]
    share = spread([(n - f) / n for f, n in pairs if n])
    row = SCENARIOS_BY_NAME.get(scenario)
    return {
        "floor": floor,
        "floor_cpu": spread(fl),
        "gap_us": spread([n - f for f, n in pairs]),
        "gap_share": share,
        "rounds_without_gap": sum(1 for f, n in pairs if n - f <= 0),
        "noisy": share is None or share["median"] < NOISY_SHARE,
        # The floor costs more than the reference (new-connection rows: an
        # upstream connect and close per request): not a floor there.
        "above_reference": share is not None and share["median"] <= 0,
        "new_conn": bool(row and row.new_conn),
    }


def kernel_floor(rounds, subject, reference, scenario):
    """Per round: the subject's kernel CPU per request alone over the
    reference's whole CPU per request, at the fixed rate. A CPU target
    below this cannot be met by any change to the subject's own code: its
    kernel work is the sockets' (the same calls, bytes and packets as the
    reference's)."""
    kernel = values(rounds, subject, scenario, "cpu_kernel")
    total = values(rounds, reference, scenario, "cpu")
    return spread([k / t if k is not None and t else None for k, t in zip(kernel, total)])


def summarise(rounds, memory, contenders, scenarios, reference="nginx"):
    """Everything the report shows, as plain data."""
    out = {"reference": reference, "scenarios": {}, "memory": {}, "targets": []}
    for s in scenarios:
        per = {}
        with_floor = FLOOR in contenders and reference in contenders
        for c in contenders:
            per[c] = {
                m: {"value": spread(values(rounds, c, s, m)),
                    "ratio": spread(paired_ratios(rounds, c, reference, s, m)) if reference in contenders else None}
                for m in METRICS
            }
            per[c]["over_floor"] = (spread(over_floor_ratios(rounds, c, s, reference))
                                    if with_floor and c not in NOT_OVER_FLOOR and c != reference else None)
        out["scenarios"][s] = {"open_rate": spread([rec["open_rate"].get(s) for rec in rounds]), "contenders": per,
                               "floor": floor_figures(rounds, s, reference) if with_floor else None}
    for c, runs in memory.items():
        rss = [m["rss_kib"] for m in runs]
        ratio = None
        if reference in memory:
            ratio = spread([a["rss_kib"] / b["rss_kib"] for a, b in zip(runs, memory[reference])])
        out["memory"][c] = {
            "connections": runs[0]["connections"],
            "rss_kib": spread(rss),
            "rss_idle_kib": spread([m["rss_idle_kib"] for m in runs]),
            "per_connection_bytes": spread([m["per_connection_bytes"] for m in runs]),
            "ratio": ratio,
        }
    out["targets"] = check_targets(rounds, memory, contenders, scenarios)
    out["versus_baseline"] = versus_baseline(rounds, memory, contenders, scenarios)
    return out


def verdict(metric, ratio, tolerance=BASELINE_TOLERANCE):
    """"within" when the median ratio is within 1 ± tolerance, else
    "better" or "worse" for the subject (direction from the metric)."""
    if ratio is None:
        return None
    # A hair of slack: 0.95 itself, computed as 19/20, is within.
    if abs(ratio["median"] - 1.0) <= tolerance + 1e-9:
        return "within"
    higher = ratio["median"] > 1.0
    return "better" if higher == (metric in HIGHER_IS_BETTER) else "worse"


def versus_baseline(rounds, memory, contenders, scenarios, subject="shardgate", baseline="baseline"):
    """subject / baseline paired within each round, per scenario and
    figure, each with its verdict; None without both contenders."""
    if subject not in contenders or baseline not in contenders:
        return None
    out = {"subject": subject, "baseline": baseline, "tolerance": BASELINE_TOLERANCE, "scenarios": {},
           "memory": None, "outside": []}
    for s in scenarios:
        row = {}
        for m in BASELINE_METRICS:
            ratio = spread(paired_ratios(rounds, subject, baseline, s, m))
            row[m] = {"ratio": ratio, "verdict": verdict(m, ratio)}
        if any(cell["ratio"] for cell in row.values()):
            out["scenarios"][s] = row
    if subject in memory and baseline in memory:
        ratio = spread([a["rss_kib"] / b["rss_kib"] for a, b in zip(memory[subject], memory[baseline])])
        out["memory"] = {"connections": memory[subject][0]["connections"], "ratio": ratio,
                         "verdict": verdict("memory", ratio)}
    for s, row in out["scenarios"].items():
        for m, cell in row.items():
            if cell["verdict"] in ("better", "worse"):
                out["outside"].append({"scenario": s, "metric": m, "median": cell["ratio"]["median"],
                                       "verdict": cell["verdict"]})
    if out["memory"] and out["memory"]["verdict"] in ("better", "worse"):
        out["outside"].append({"scenario": None, "metric": "memory", "median": out["memory"]["ratio"]["median"],
                               "verdict": out["memory"]["verdict"]})
    return out


def check_targets(rounds, memory, contenders, scenarios, subject="shardgate"):
    results = []
    for metric, scenario, ref, cmp, bound, what in TARGETS:
        if subject not in contenders or ref not in contenders:
            continue
        if metric == "memory":
            if subject not in memory or ref not in memory:
                continue
            ratio = spread([a["rss_kib"] / b["rss_kib"] for a, b in zip(memory[subject], memory[ref])])
        else:
            if scenario not in scenarios:
                continue
            ratio = spread(paired_ratios(rounds, subject, ref, scenario, metric))
        if ratio is None:
            continue
        met = COMPARE[cmp](ratio["median"], bound)
        floor = kernel_floor(rounds, subject, ref, scenario) if metric == "cpu" else None
        results.append({"what": what, "metric": metric, "scenario": scenario, "reference": ref,
                        "target": f"{cmp} {bound}x", "ratio": ratio, "met": met, "kernel_floor": floor})
    return results
