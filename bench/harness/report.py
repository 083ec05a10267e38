"""The report: a markdown file for people, a JSON file for scripts."""

import json

from .summary import FLOOR, NOISY_SHARE, PERCENTILES

LABELS = {"p50": "p50", "p90": "p90", "p99": "p99", "p99_9": "p99.9", "p99_99": "p99.99"}


def _num(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt(s, digits=0):
    """"median (min–max)"."""
    if not s:
        return "–"
    if s["n"] == 1:
        return _num(s["median"], digits)
    return f"{_num(s['median'], digits)} ({_num(s['min'], digits)}–{_num(s['max'], digits)})"


def fmt_ratio(s, digits=2):
    if not s:
        return "–"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}×"
    return f"{s['median']:.{digits}f}× ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


# The column of every table: a proxy's CPU per request at the fixed rate
# above the relay floor, over nginx's above it (summary.over_floor_ratios).
OVER_FLOOR = "overhead above relay ÷ nginx's"
# Marks on that column's cells, explained under the ratios table.
NOISY_MARK = "†"
NEW_CONN_MARK = "‡"


def over_floor_cell(sd, contender):
    """The overhead ratio of one contender in one scenario, marked when
    the scenario's figure is too noisy or reads differently."""
    ratio = sd["contenders"][contender].get("over_floor")
    if not ratio:
        return "–"
    floor = sd.get("floor") or {}
    marks = (NOISY_MARK if floor.get("noisy") else "") + (NEW_CONN_MARK if floor.get("new_conn") else "")
    return fmt_ratio(ratio) + (f" {marks}" if marks else "")


def floor_section(summ):
    """What the overhead ratio divides by, per scenario, and how to read
    the marked cells."""
    ref = summ["reference"]
    rows = [(s, sd["floor"]) for s, sd in summ["scenarios"].items() if sd.get("floor")]
    if not rows:
        return []
    lines = [f"### The relay floor: what \"{OVER_FLOOR}\" divides by", "",
             f"{OVER_FLOOR} = (contender − relay) ÷ ({ref} − relay), CPU per request at the fixed rate, inside each "
             f"round; median (min–max) over rounds. Below 1: less work above a bare byte relay than {ref} does.", "",
             f"| scenario | relay CPU µs/req at fixed rate | {ref} − relay µs/req | share of {ref}'s CPU | read as |",
             "|---|---|---|---|---|"]
    for s, f in rows:
        notes = []
        if f.get("above_reference"):
            notes.append(f"the relay costs more than {ref} here: not a floor, no ratio")
        elif f["noisy"]:
            notes.append(f"{NOISY_MARK} too noisy to steer by ({ref} − relay under {NOISY_SHARE:.0%} of {ref}'s CPU)")
        if f["new_conn"]:
            notes.append(f"{NEW_CONN_MARK} the relay also connects upstream per request; proxies reuse pooled "
                         f"connections")
        if f["rounds_without_gap"]:
            notes.append(f"{f['rounds_without_gap']} round(s) with {ref} at or below the relay left out")
        share = f["gap_share"]
        share_cell = (f"{share['median']:.0%} ({share['min']:.0%}–{share['max']:.0%})" if share and share["n"] > 1
                      else f"{share['median']:.0%}" if share else "–")
        lines.append(f"| {s} | {fmt(f['floor_cpu'], 1)} | {fmt(f['gap_us'], 1)} | {share_cell} | "
                     f"{'; '.join(notes) or 'usable'} |")
    lines.append("")
    if any(f["new_conn"] for _, f in rows):
        lines += [f"{NEW_CONN_MARK}: on a new-connection row the relay pays an upstream connect and close per "
                  f"request that the proxies, with their upstream pools, do not. The floor is too high there "
                  f"(on loopback it can cost more than {ref}'s whole request, and then there is no ratio), which "
                  f"pushes the ratio away from 1 both ways (below 1 looks lower than it is, above 1 higher): "
                  f"read the CPU/request ratio there (docs/benchmarks.md, \"The relay floor\").", ""]
    return lines


def markdown(data):
    m, cfg, summ = data["machine"], data["config"], data["summary"]
    ref = summ["reference"]
    lines = [f"# shardgate beside nginx, HAProxy and Envoy — {data['started']}", ""]
    lines += [f"Command: `{data['command']}`", ""]
    lines += ["## Machine", ""]
    lines += [f"- CPU: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), {m['memory_gib']} GiB",
              f"- Kernel {m['kernel']}, {m['os']}; {m['rustc']}",
              f"- Pinning: proxy on CPU {m['pinning']['proxy']}, load generator + upstream "
              f"(`shardgate echo`, 1 shard) on CPU {m['pinning']['load']}",
              f"- Load average at start: {' '.join(m['loadavg_start'])}; at end: {' '.join(data.get('loadavg_end', []))}"]
    for name, version in m["versions"].items():
        lines.append(f"- {name}: {version}")
    lines += ["", "## Method", ""]
    lines += [
        f"{cfg['rounds']} rounds; in each, the contenders in rotated order (round r starts at the r-th), "
        f"each started fresh. Pass 1: closed loop (saturation), {cfg['duration_s']} s measured after "
        f"{cfg['warmup_s']} s warmup, per scenario. Pass 2: open loop at a fixed rate, the same for all "
        f"contenders: {cfg['open_fraction']:.0%} of the lowest saturation rate any proxy reached in pass 1 "
        f"of that round. CPU = time on CPU of all the proxy's threads and processes "
        f"(/proc/PID/task/*/schedstat) over the load run, divided by the exchanges it completed. "
        f"Ratios are contender / {ref} within each round; cells are median (min–max) over rounds."
        + (" shardgate / baseline (another build, the same command line, CPU and upstream) likewise."
           if summ.get("versus_baseline") else "")
        + (" Two contenders are floors, not proxies: `direct`, the load generator straight to the upstream "
           "(the floor of the load generator and upstream), and `relay`, a byte relay with no HTTP "
           "(`shardgate-relay`: one upstream connection per client, epoll, one thread; the floor of a proxy)."
           if FLOOR in cfg["contenders"] else ""),
        "",
    ]

    lines += baseline_section(data)

    lines += [f"## Ratios to {ref} (paired within a round)", ""]
    lines += [f"| scenario | contender | req/s at saturation | CPU/request at fixed rate | {OVER_FLOOR} | p99 | "
              "p99.9 |",
              "|---|---|---|---|---|---|---|"]
    for s, sd in summ["scenarios"].items():
        for c, cd in sd["contenders"].items():
            if c == ref or not cd["rps"]["value"]:
                continue
            cpu = fmt_ratio(cd["cpu"]["ratio"]) if c != "direct" else "–"
            lines.append(f"| {s} | {c} | {fmt_ratio(cd['rps']['ratio'])} | {cpu} | {over_floor_cell(sd, c)} | "
                         f"{fmt_ratio(cd['p99']['ratio'])} | {fmt_ratio(cd['p99_9']['ratio'])} |")
    if summ["memory"]:
        for c, md in summ["memory"].items():
            if c != ref:
                lines.append(f"| memory, {md['connections']:,} idle conns | {c} | | | | | RSS {fmt_ratio(md['ratio'])} |")
    lines.append("")
    lines += floor_section(summ)

    lines += ["## Figures", ""]
    for s, sd in summ["scenarios"].items():
        title = data["scenarios"][s]["title"]
        lines += [f"### {s}: {title} (open loop at {fmt(sd['open_rate'])} req/s)", ""]
        lines += ["| contender | req/s at saturation | CPU µs/req at saturation | CPU µs/req at fixed rate | "
                  f"of which kernel | {OVER_FLOOR} | " + " | ".join(f"{LABELS[p]} µs" for p in PERCENTILES)
                  + " | upstream CPU µs/req | errors (worst round) |",
                  "|---|---|---|---|---|---|" + "---|" * len(PERCENTILES) + "---|---|"]
        for c, cd in sd["contenders"].items():
            if not cd["rps"]["value"]:
                continue
            row = [c, fmt(cd["rps"]["value"]), fmt(cd["cpu_sat"]["value"], 1), fmt(cd["cpu"]["value"], 1),
                   fmt(cd["cpu_kernel"]["value"], 1), over_floor_cell(sd, c)]
            row += [fmt(cd[p]["value"]) for p in PERCENTILES]
            errors = cd["errors"]["value"]
            row += [fmt(cd["upstream_cpu"]["value"], 1), _num(errors["max"]) if errors else "–"]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")

    lines += tls_section(data)

    if summ["memory"]:
        n = next(iter(summ["memory"].values()))["connections"]
        lines += [f"### Memory: resident set with {n:,} idle keep-alive client connections", ""]
        lines += [f"| contender | RSS idle KiB | RSS with connections KiB | bytes per connection | × {ref} |",
                  "|---|---|---|---|---|"]
        for c, md in summ["memory"].items():
            lines.append(f"| {c} | {fmt(md['rss_idle_kib'])} | {fmt(md['rss_kib'])} | "
                         f"{fmt(md['per_connection_bytes'])} | {fmt_ratio(md['ratio'])} |")
        lines.append("")

    if summ["targets"]:
        lines += ["## The issue's targets (shardgate / reference, median of paired ratios)", ""]
        lines += ["| target | bound | measured | met | shardgate's kernel CPU alone |", "|---|---|---|---|---|"]
        for t in summ["targets"]:
            floor = fmt_ratio(t.get("kernel_floor")) if t.get("kernel_floor") else ""
            lines.append(f"| {t['what']} (vs {t['reference']}) | {t['target']} | {fmt_ratio(t['ratio'])} | "
                         f"{'yes' if t['met'] else '**no**'} | {floor} |")
        lines += ["", "Last column, for CPU targets: shardgate's kernel CPU per request alone (socket calls, TCP, "
                  "loopback delivery to the peer), as a ratio to the reference's whole CPU per request. A bound "
                  "well below it is out of reach unless the kernel does less work for the same traffic.", ""]
    lines += ["Every load command is in the JSON file (`rounds[].runs.CONTENDER.SCENARIO.closed|open.command`); "
              "logs of each contender are in `logs/`.", ""]
    return "\n".join(lines)


# The baseline table's columns: (figure, heading).
BASELINE_COLUMNS = [("rps", "req/s at saturation"), ("cpu_sat", "CPU/request at saturation"),
                    ("cpu", "CPU/request at fixed rate"), ("cpu_kernel", "of which kernel")] + [
    (p, LABELS[p]) for p in PERCENTILES]


def _build_line(label, b):
    commit = f"; checkout at `{b['checkout_commit']}`" if b.get("checkout_commit") else ""
    return (f"- {label}: `{b['path']}` — `--version`: `{b['version']}`; sha256 `{b['sha256'][:16]}…`; "
            f"built {b['built']}{commit}")


def _baseline_cell(cell):
    text = fmt_ratio(cell["ratio"], 3)
    if cell["verdict"] in ("better", "worse"):
        return f"**{text} {cell['verdict']}**"
    return text


def baseline_section(data):
    """shardgate / baseline, paired within each round, every figure, with
    which binary the baseline was; nothing without a baseline."""
    vb = data["summary"].get("versus_baseline")
    if not vb:
        return []
    tol = vb["tolerance"]
    lines = ["## shardgate ÷ baseline (another build; paired within a round)", ""]
    builds = data.get("builds", {})
    if "baseline" in builds:
        lines.append(_build_line("baseline", builds["baseline"]))
    if "shardgate" in builds:
        lines.append(_build_line("shardgate (under test)", builds["shardgate"]))
    if builds.get("baseline", {}).get("sha256") and builds["baseline"]["sha256"] == builds.get("shardgate", {}).get(
            "sha256"):
        lines.append("- The same binary twice: an A/A run, its spread is the harness's own noise.")
    lines += ["- Both with the same command line, CPU pinning and upstream (`shardgate echo` of the build under "
              "test), driven by the same load generator; next to each other in every round, each first of the "
              "two in every other round.", ""]
    lines += ["| scenario | " + " | ".join(h for _, h in BASELINE_COLUMNS) + " |",
              "|---|" + "---|" * len(BASELINE_COLUMNS)]
    for s, row in vb["scenarios"].items():
        lines.append(f"| {s} | " + " | ".join(_baseline_cell(row[m]) for m, _ in BASELINE_COLUMNS) + " |")
    if vb["memory"]:
        lines.append(f"| memory, {vb['memory']['connections']:,} idle conns | RSS {_baseline_cell(vb['memory'])} |"
                     + " |" * (len(BASELINE_COLUMNS) - 1))
    lines.append("")
    lines.append(f"Each cell: shardgate / baseline of the same round, median (min–max) over rounds. Below 1 is "
                 f"better for shardgate except req/s at saturation, where above 1 is. No regression "
                 f"(docs/benchmarks.md): every median within {1 - tol:.2f}–{1 + tol:.2f} (±{tol:.0%}); cells "
                 f"outside are in bold, marked better or worse.")
    if vb["outside"]:
        heading = dict(BASELINE_COLUMNS, memory="RSS")
        out = ", ".join(f"{o['scenario'] or 'memory'} {heading[o['metric']]} {o['median']:.3f}× ({o['verdict']})"
                        for o in vb["outside"])
        lines += ["", f"Outside ±{tol:.0%}: {out}."]
    else:
        lines += ["", f"Every median within ±{tol:.0%}."]
    lines.append("")
    return lines


def negotiated(rounds, contender, scenario):
    """What the load generator saw `contender` negotiate in `scenario`,
    over every run of every round: {"versions": {...}, ...} with counts,
    plus full and resumed handshakes in the measured windows."""
    out = {"versions": {}, "cipher_suites": {}, "key_exchange_groups": {}, "full": 0, "resumed": 0}
    for rec in rounds:
        for run in rec["runs"].get(contender, {}).get(scenario, {}).values():
            tls = run.get("tls")
            if not tls:
                continue
            for k in ("versions", "cipher_suites", "key_exchange_groups"):
                for name, n in tls[k].items():
                    out[k][name] = out[k].get(name, 0) + n
            out["full"] += tls["full"]
            out["resumed"] += tls["resumed"]
    return out


def tls_section(data):
    """What each contender negotiated in each TLS scenario, and the
    certificates' commands."""
    tls_rows = [s for s, sd in data["scenarios"].items() if sd.get("tls")]
    if not tls_rows:
        return []
    lines = ["## TLS: what was negotiated", ""]
    for kind, cert in data.get("tls", {}).get("certificates", {}).items():
        lines.append(f"- {cert['label']} certificate: `{cert['command']}`")
    lines += ["", "| scenario | contender | version | cipher suite | key exchange | full handshakes | resumed |",
              "|---|---|---|---|---|---|---|"]
    names = lambda m: ", ".join(f"{k}" if len(m) == 1 else f"{k} ({n:,})" for k, n in sorted(m.items())) or "–"
    for s in tls_rows:
        for c in data["config"]["contenders"]:
            n = negotiated(data["rounds"], c, s)
            if not n["versions"]:
                continue
            lines.append(f"| {s} | {c} | {names(n['versions'])} | {names(n['cipher_suites'])} | "
                         f"{names(n['key_exchange_groups'])} | {n['full']:,} | {n['resumed']:,} |")
    lines += ["", "Counts are over the measured windows of every run; keep-alive rows open their connections "
              "in warmup, so their handshakes are not in a window.", ""]
    return lines


def write(data, folder):
    with open(f"{folder}/results.json", "w") as f:
        json.dump(data, f, indent=1)
    with open(f"{folder}/results.md", "w") as f:
        f.write(markdown(data))
