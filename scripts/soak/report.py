"""The soak's outputs: the per-minute table (stdout and CSV), the RSS plot
(an SVG written here, no plotting package needed) and the verdict."""

import csv
import math
import statistics

from traffic import INJECTED_KINDS, UNEXPECTED_KINDS

# RSS at the last minute may exceed RSS at the reference minute by this
# much (the pass criterion).
RSS_GROWTH_ALLOWED = 0.05
# The reference minute of a full soak: by then pools, buffers, TLS session
# caches and the allocator's arenas have reached their working size.
REFERENCE_MINUTE = 5

CSV_FIELDS = (
    ["minute", "rss_kib", "rss_load_kib", "rss_peak_kib", "fds", "fds_idle", "conns_idle", "conns_downstream", "conns_upstream", "requests", "ok", "unsent", "proxy_requests"]
    + [f"injected_{k}" for k in INJECTED_KINDS]
    + [f"unexpected_{k}" for k in UNEXPECTED_KINDS]
    + ["sighup_reloads"]
)


# In a soak of 10 minutes or more, "RSS at minute m" is the median of the
# idle readings of the RSS_WINDOW minutes around it (the last minute: the
# last RSS_WINDOW). One idle reading can sit ~10 % off its neighbours
# (heap fragmentation after the minute's last frees: docs/reliability.md);
# a leak moves all of them.
RSS_WINDOW = 3


def rss_windows(minutes):
    """(reference minutes, last minutes) whose idle RSS medians the verdict
    compares."""
    ref = reference_minute(minutes)
    if minutes < 2 * REFERENCE_MINUTE:
        return [ref], [minutes]
    half = RSS_WINDOW // 2
    return list(range(ref - half, ref + half + 1)), list(range(minutes - RSS_WINDOW + 1, minutes + 1))


def reference_minute(minutes):
    """Minute 5 in a soak of 10 minutes or more; in a shorter one (a
    development run) its middle, rounded up: a 2-minute run compares minute
    2 with minute 1."""
    if minutes >= 2 * REFERENCE_MINUTE:
        return REFERENCE_MINUTE
    return max(1, math.ceil(minutes / 2))


def header():
    inj = "/".join(INJECTED_KINDS)
    return (
        f"{'min':>3} {'rss_idle':>8} {'rss_load':>8} {'peak':>6} {'fds':>4} {'idle':>4} {'conns d/u':>9} {'requests':>9} {'ok':>9} "
        f"{'injected ' + inj:>24} {'unexpected':>10} {'hup':>4}"
    )


def _kinds(counts):
    parts = [f"{k}:{n}" for k, n in counts.items() if n]
    return " ".join(parts) if parts else "0"


def line(row):
    inj = "/".join(str(row["injected"][k]) for k in INJECTED_KINDS)
    conns = f"{row['conns_downstream']}/{row['conns_upstream']}"
    return (
        f"{row['minute']:>3} {row['rss_kib']:>8} {row['rss_load_kib']:>8} {row['rss_peak_kib']:>6} {row['fds']:>4} {row['fds_idle']:>4} {conns:>9} {row['requests']:>9} {row['ok']:>9} "
        f"{inj:>24} {_kinds(row['unexpected']):>10} {row['sighup_reloads']:>4}"
    )


def flat(row):
    out = {k: row[k] for k in CSV_FIELDS if k in row}
    for k in INJECTED_KINDS:
        out[f"injected_{k}"] = row["injected"][k]
    for k in UNEXPECTED_KINDS:
        out[f"unexpected_{k}"] = row["unexpected"][k]
    return out


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(flat(r))


def markdown_table(rows):
    cols = ["minute", "RSS KiB idle", "RSS KiB under load (median)", "(peak)", "fds under load", "fds idle", "conns down/up", "requests", "ok"]
    cols += ["unsent"] + [f"injected {k}" for k in INJECTED_KINDS] + ["unexpected", "SIGHUPs"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    for r in rows:
        cells = [r["minute"], r["rss_kib"], r["rss_load_kib"], r["rss_peak_kib"], r["fds"], r["fds_idle"], f"{r['conns_downstream']}/{r['conns_upstream']}", r["requests"], r["ok"]]
        cells += [r["unsent"]] + [r["injected"][k] for k in INJECTED_KINDS]
        cells += [_kinds(r["unexpected"]), r["sighup_reloads"]]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


def verdict(rows, minutes, baseline_fds, settled_fds, fault_streams_seen, exited):
    """[(criterion, passed, detail)] for the run, in the issue's order."""
    results = []
    if exited:
        results.append(("processes stay up", False, exited))
    if len(rows) < minutes:
        results.append(("every minute ran", False, f"{len(rows)} of {minutes} minutes recorded"))
    ref_rss, ref_desc = _rss_over(rows, rss_windows(minutes)[0])
    last_rss, last_desc = _rss_over(rows, rss_windows(minutes)[1])
    if ref_rss is not None and last_rss is not None:
        limit = ref_rss * (1 + RSS_GROWTH_ALLOWED)
        growth = (last_rss - ref_rss) / max(ref_rss, 1) * 100
        results.append((
            f"RSS at the last minute <= RSS at minute {reference_minute(minutes)} + {RSS_GROWTH_ALLOWED:.0%} (idle readings)",
            last_rss <= limit,
            f"{last_rss} KiB ({last_desc}) vs {ref_rss} KiB ({ref_desc}); limit {limit:.0f} KiB, {growth:+.1f} %",
        ))
    elif rows:
        results.append(("RSS at the last minute <= RSS at minute 5 + 5 %", False, "minutes missing"))
    results.append((
        "descriptors back to baseline after the load",
        settled_fds is not None and settled_fds <= baseline_fds,
        f"{settled_fds} after vs {baseline_fds} before the load",
    ))
    unexpected = {k: sum(r["unexpected"][k] for r in rows) for k in UNEXPECTED_KINDS}
    injected = {k: sum(r["injected"][k] for r in rows) for k in INJECTED_KINDS}
    total_unexpected = sum(unexpected.values())
    results.append((
        "no error besides the injected ones",
        total_unexpected == 0,
        f"{total_unexpected} unexpected ({_kinds(unexpected)}); injected {_kinds(injected)}",
    ))
    missing = [name for name, seen in fault_streams_seen.items() if not seen]
    results.append((
        "every fault was injected",
        not missing,
        "all fault streams saw their fault" if not missing else "no fault seen on " + ", ".join(missing),
    ))
    return results


def _rss_over(rows, window):
    """(median idle RSS of the `window` minutes, how it was made)."""
    values = [r["rss_kib"] for r in rows if r["minute"] in window]
    if len(values) != len(window):
        return None, ""
    if len(window) == 1:
        return values[0], f"minute {window[0]}"
    listed = ", ".join(str(v) for v in values)
    return statistics.median_low(values), f"median of minutes {window[0]}-{window[-1]}: {listed}"


def svg_plot(samples, minute_seconds, rows, minutes, width=720, height=300):
    """RSS over time as an SVG line chart. `samples`: [(seconds, rss_kib)].
    Draws the reference minute's RSS and the +5 % limit as dashed lines."""
    pad_l, pad_r, pad_t, pad_b = 70, 20, 30, 40
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b
    if not samples:
        samples = [(0, 0)]
    t_max = max(max(t for t, _ in samples), minute_seconds * max(minutes, 1))
    ref = reference_minute(minutes)
    ref_rss, _ = _rss_over(rows, rss_windows(minutes)[0])
    hi_vals = [v for _, v in samples] + ([ref_rss * (1 + RSS_GROWTH_ALLOWED)] if ref_rss else [])
    v_max = max(hi_vals) * 1.1 or 1
    v_min = 0

    def x(t):
        return pad_l + pw * t / max(t_max, 1e-9)

    def y(v):
        return pad_t + ph * (1 - (v - v_min) / (v_max - v_min))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">shardgate RSS during the soak (KiB)</text>',
        f'<line x1="{pad_l}" y1="{pad_t + ph}" x2="{pad_l + pw}" y2="{pad_t + ph}" stroke="black"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + ph}" stroke="black"/>',
    ]
    raw_step = v_max / 4
    mag = 10 ** math.floor(math.log10(raw_step)) if raw_step > 0 else 1
    tick = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw_step)
    v_max = tick * math.ceil(v_max / tick)
    for i in range(int(round(v_max / tick)) + 1):
        v = tick * i
        out.append(f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        out.append(f'<line x1="{pad_l}" y1="{y(v):.1f}" x2="{pad_l + pw}" y2="{y(v):.1f}" stroke="#eee"/>')
    step = max(1, math.ceil(minutes / 10))
    for m in range(0, minutes + 1, step):
        t = m * minute_seconds
        out.append(f'<text x="{x(t):.1f}" y="{pad_t + ph + 15}" text-anchor="middle">{m}</text>')
    out.append(f'<text x="{pad_l + pw / 2}" y="{height - 6}" text-anchor="middle">minute</text>')
    if ref_rss:
        # The reference's label below its line, the limit's above, so the
        # two never overlap however close they are.
        for v, label, dy in ((ref_rss, f"minute {ref}, idle", 12), (ref_rss * (1 + RSS_GROWTH_ALLOWED), "+5 % limit", -3)):
            out.append(
                f'<line x1="{pad_l}" y1="{y(v):.1f}" x2="{pad_l + pw}" y2="{y(v):.1f}" '
                f'stroke="#c33" stroke-dasharray="4 3"/>'
            )
            out.append(f'<text x="{pad_l + pw - 4}" y="{y(v) + dy:.1f}" text-anchor="end" fill="#c33">{label}</text>')
    # Each minute's idle reading (the number the verdict uses), at the end
    # of its minute.
    for r in rows:
        cx = x(r["minute"] * minute_seconds)
        out.append(f'<circle cx="{cx:.1f}" cy="{y(r["rss_kib"]):.1f}" r="3" fill="#ff7f0e"/>')
    out.append(
        f'<text x="{pad_l + 6}" y="{pad_t + 12}" fill="#1f77b4">RSS each second</text>'
        f'<text x="{pad_l + 6}" y="{pad_t + 26}" fill="#ff7f0e">idle, end of each minute (judged)</text>'
    )
    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in samples)
    out.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
