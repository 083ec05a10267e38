"""The SVG chart, written by hand (no plotting library): latency
percentiles per contender at the fixed rate, one panel per scenario, and
the proxy's CPU time per request, one panel per scenario."""

import math
from xml.sax.saxutils import escape

from .summary import PERCENTILES

COLORS = {"direct": "#8c8c8c", "relay": "#c9b037", "shardgate": "#e4572e", "baseline": "#f0a58b", "nginx": "#2e9e44",
          "haproxy": "#3b6fd1", "envoy": "#9b59b6", "shardgate-quiet": "#7a2a12", "shardgate-observed": "#ff9f80"}
LABELS = {"p50": "p50", "p90": "p90", "p99": "p99", "p99_9": "p99.9", "p99_99": "p99.99"}
PANEL_W, PANEL_H, COLS = 300, 220, 3
PAD_L, PAD_R, PAD_T, PAD_B = 52, 12, 28, 30


def _color(c):
    return COLORS.get(c, "#333333")


def _text(x, y, s, size=11, anchor="start", weight="normal", color="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{color}">{escape(str(s))}</text>')


def _log_ticks(lo, hi):
    ticks = []
    for e in range(int(math.floor(math.log10(lo))), int(math.ceil(math.log10(hi))) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def _human_us(v):
    if v >= 1000:
        return f"{v / 1000:g} ms"
    return f"{v:g} µs"


def _latency_panel(x0, y0, scenario, title, per_contender):
    out = [f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="#fff" stroke="#ddd"/>',
           _text(x0 + PANEL_W / 2, y0 + 16, f"{scenario}: {title}", 11, "middle", "bold")]
    series = {c: [v for v in vals] for c, vals in per_contender.items() if any(v for v in vals)}
    flat = [v for vals in series.values() for v in vals if v]
    if not flat:
        return out
    lo, hi = min(flat) / 1.3, max(flat) * 1.3
    lo, hi = 10 ** math.floor(math.log10(lo)), hi
    pw, ph = PANEL_W - PAD_L - PAD_R, PANEL_H - PAD_T - PAD_B

    def px(i):
        return x0 + PAD_L + pw * i / (len(PERCENTILES) - 1)

    def py(v):
        return y0 + PAD_T + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    for t in _log_ticks(lo, hi):
        y = py(t)
        out.append(f'<line x1="{x0 + PAD_L}" y1="{y:.1f}" x2="{x0 + PAD_L + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(_text(x0 + PAD_L - 4, y + 4, _human_us(t), 9, "end", color="#666"))
    for i, p in enumerate(PERCENTILES):
        out.append(_text(px(i), y0 + PANEL_H - 10, LABELS[p], 9, "middle", color="#666"))
    for c, vals in series.items():
        pts = [(px(i), py(v)) for i, v in enumerate(vals) if v]
        out.append(f'<polyline fill="none" stroke="{_color(c)}" stroke-width="2" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{_color(c)}"/>')
    return out


def _cpu_panel(x0, y0, scenario, title, bars):
    out = [f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="#fff" stroke="#ddd"/>',
           _text(x0 + PANEL_W / 2, y0 + 16, f"{scenario}: {title}", 11, "middle", "bold")]
    bars = [(c, v) for c, v in bars if v]
    if not bars:
        return out
    top = max(v for _, v in bars) * 1.15
    pw, ph = PANEL_W - PAD_L - PAD_R, PANEL_H - PAD_T - PAD_B
    slot = pw / len(bars)
    base = y0 + PAD_T + ph
    out.append(f'<line x1="{x0 + PAD_L}" y1="{base}" x2="{x0 + PAD_L + pw}" y2="{base}" stroke="#999"/>')
    for i, (c, v) in enumerate(bars):
        h = ph * v / top
        x = x0 + PAD_L + i * slot + slot * 0.15
        out.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                   f'fill="{_color(c)}"/>')
        out.append(_text(x + slot * 0.35, base - h - 4, f"{v:.1f}", 10, "middle"))
        out.append(_text(x + slot * 0.35, base + 14, c, 9, "middle", color="#444"))
    out.append(_text(x0 + 8, y0 + PAD_T + 6, "µs", 9, color="#666"))
    return out


def svg(data):
    summ = data["summary"]
    scenarios = list(summ["scenarios"])
    # Only contenders with a figure somewhere (direct has none in TLS rows).
    contenders = [c for c in data["config"]["contenders"]
                  if any((sd["contenders"].get(c, {}).get("p99", {}).get("value")) for sd in summ["scenarios"].values())]
    rows = math.ceil(len(scenarios) / COLS)
    width = COLS * PANEL_W + (COLS + 1) * 10
    sec_h = 30 + rows * (PANEL_H + 10)
    height = 60 + 2 * sec_h + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#fafafa"/>',
           _text(10, 22, f"shardgate beside nginx, HAProxy, Envoy — {data['started']} — "
                 f"{data['config']['rounds']} rounds, medians", 14, weight="bold")]
    # Legend.
    x = 10
    for c in contenders:
        out.append(f'<rect x="{x}" y="34" width="14" height="10" fill="{_color(c)}"/>')
        out.append(_text(x + 18, 43, c, 11))
        x += 30 + 8 * len(c)

    y = 60
    out.append(_text(10, y + 18, "Latency percentiles at a fixed rate (open loop, from intended send time; "
                     "log scale)", 12, weight="bold"))
    for i, s in enumerate(scenarios):
        sd = summ["scenarios"][s]
        per = {c: [(sd["contenders"][c][p]["value"] or {}).get("median") for p in PERCENTILES] for c in contenders}
        rate = (sd["open_rate"] or {}).get("median")
        title = f"{data['scenarios'][s]['short']} @ {rate:,.0f}/s" if rate else data["scenarios"][s]["short"]
        out += _latency_panel(10 + (i % COLS) * (PANEL_W + 10), y + 30 + (i // COLS) * (PANEL_H + 10), s, title, per)

    y += sec_h
    out.append(_text(10, y + 18, "Proxy CPU time per request at the same fixed rate (all its threads and "
                     "processes)", 12, weight="bold"))
    for i, s in enumerate(scenarios):
        sd = summ["scenarios"][s]
        bars = [(c, (sd["contenders"][c]["cpu"]["value"] or {}).get("median")) for c in contenders if c != "direct"]
        out += _cpu_panel(10 + (i % COLS) * (PANEL_W + 10), y + 30 + (i // COLS) * (PANEL_H + 10), s,
                          data["scenarios"][s]["short"], bars)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(data, folder):
    with open(f"{folder}/chart.svg", "w") as f:
        f.write(svg(data))
