"""Unit tests of the comparison harness's pure parts (no processes, no
sockets beyond 127.0.0.1 in-process).

    cd bench && python3 -m unittest harness.test_harness
"""

import contextlib
import hashlib
import io
import os
import socket
import stat
import tempfile
import threading
import unittest
import xml.dom.minidom

from . import balancing, certs, chart, contenders, main, report, runner, scenarios, summary


def _run(rps, cpu, p99, errors=0):
    lat = {"p50": p99 // 2, "p90": p99 * 3 // 4, "p99": p99, "p99_9": p99 * 2, "p99_99": p99 * 3, "max": p99 * 4,
           "mean": p99 / 2}
    closed = {"requests_per_sec": rps, "cpu_us_per_req": cpu * 0.8, "errors": errors, "latency_us": lat,
              "upstream_cpu_us_per_req": 5.0}
    open_ = {"requests_per_sec": rps / 2, "cpu_us_per_req": cpu, "errors": 0, "latency_us": lat,
             "upstream_cpu_us_per_req": 5.0, "cpu_kernel_us_per_req": cpu * 0.9}
    return {"closed": closed, "open": open_}


def _rounds():
    # Round 2 is a slow round for everyone: paired ratios must not care.
    return [
        {"round": 1, "order": ["shardgate", "nginx"], "open_rate": {"small": 10000},
         "runs": {"shardgate": {"small": _run(60000, 10.0, 500)}, "nginx": {"small": _run(50000, 20.0, 1000)}}},
        {"round": 2, "order": ["nginx", "shardgate"], "open_rate": {"small": 5000},
         "runs": {"shardgate": {"small": _run(30000, 20.0, 1000)}, "nginx": {"small": _run(25000, 40.0, 2000)}}},
        {"round": 3, "order": ["shardgate", "nginx"], "open_rate": {"small": 10000},
         "runs": {"shardgate": {"small": _run(66000, 11.0, 400)}, "nginx": {"small": _run(50000, 20.0, 1000)}}},
    ]


def _baseline_rounds():
    # shardgate against an older build of itself. Round 2 is slow for both
    # (the paired ratio must not care); round 3 saw the baseline slow alone.
    return [
        {"round": 1, "order": ["shardgate", "baseline"], "open_rate": {"small": 10000},
         "runs": {"shardgate": {"small": _run(60000, 10.0, 500)}, "baseline": {"small": _run(60000, 10.4, 500)}}},
        {"round": 2, "order": ["baseline", "shardgate"], "open_rate": {"small": 5000},
         "runs": {"shardgate": {"small": _run(30000, 20.0, 1000)}, "baseline": {"small": _run(31000, 20.0, 1000)}}},
        {"round": 3, "order": ["shardgate", "baseline"], "open_rate": {"small": 10000},
         "runs": {"shardgate": {"small": _run(66000, 11.0, 400)}, "baseline": {"small": _run(55000, 10.0, 500)}}},
    ]


def _executable(folder, name, text="#!/bin/sh\necho 'shardgate 0.0.9'\n"):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


class Arguments(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="harness-test-")
        self.old = _executable(self.dir, "shardgate")

    def tearDown(self):
        for name in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def refused(self, argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) as cm:
            main.parse(argv)
        self.assertEqual(cm.exception.code, 2)
        return err.getvalue()

    def test_without_baseline_the_default_list_is_unchanged(self):
        a = main.parse([])
        self.assertIsNone(a.baseline)
        self.assertEqual(a.contenders, ["direct", "relay", "shardgate", "nginx", "haproxy", "envoy"])

    def test_baseline_joins_the_default_list_beside_shardgate(self):
        a = main.parse(["--quick", "--baseline", self.old])
        self.assertEqual(a.contenders, ["direct", "relay", "shardgate", "baseline", "nginx", "haproxy", "envoy"])
        self.assertEqual(a.baseline, self.old)

    def test_baseline_path_is_made_absolute(self):
        # Contenders run with their own folder as working directory.
        cwd = os.getcwd()
        try:
            os.chdir(self.dir)
            a = main.parse(["--baseline", "shardgate"])
        finally:
            os.chdir(cwd)
        self.assertEqual(a.baseline, os.path.join(os.path.realpath(self.dir), "shardgate"))

    def test_contenders_may_name_baseline(self):
        a = main.parse(["--baseline", self.old, "--contenders", "baseline,shardgate,baseline"])
        self.assertEqual(a.contenders, ["baseline", "shardgate"])
        a = main.parse(["--baseline", self.old, "--contenders", "shardgate,nginx"])
        self.assertEqual(a.contenders, ["shardgate", "nginx"])

    def test_baseline_contender_needs_the_binary(self):
        self.assertIn("needs --baseline", self.refused(["--contenders", "shardgate,baseline"]))

    def test_baseline_must_be_an_executable_file(self):
        self.assertIn("not an executable file", self.refused(["--baseline", os.path.join(self.dir, "missing")]))
        plain = os.path.join(self.dir, "plain")
        open(plain, "w").close()
        self.assertIn("not an executable file", self.refused(["--baseline", plain]))
        self.assertIn("not an executable file", self.refused(["--baseline", self.dir]))

    def test_unknown_contenders_are_refused_before_any_build(self):
        self.assertIn("unknown contender", self.refused(["--contenders", "shardgate,ngnix"]))

    def test_the_baseline_binary_is_passed_to_its_contender(self):
        paths = main.contender_binaries(["shardgate", "baseline"], {"shardgate": "/new/shardgate"}, False,
                                        self.old)
        self.assertEqual(paths["baseline"], self.old)
        self.assertEqual(paths["shardgate"], "/new/shardgate")

    def test_baseline_runs_shardgates_command_line_from_its_own_binary(self):
        for cert in (None, certs.Cert("rsa", "/c/rsa.crt", "/c/rsa.key", "/c/rsa.pem")):
            new = contenders.Shardgate("/new/shardgate").command(self.dir, 8080, 9000, cert)
            old = contenders.Baseline("/old/shardgate").command(self.dir, 8080, 9000, cert)
            self.assertEqual(old[0], "/old/shardgate")
            self.assertEqual(old[1:], new[1:])
        self.assertEqual(contenders.Baseline.features, contenders.Shardgate.features)
        self.assertTrue(contenders.Baseline.is_proxy)
        self.assertEqual(contenders.CLASSES["baseline"].name, "baseline")

    def test_the_relay_binary_is_passed_to_its_contender(self):
        paths = main.contender_binaries(["relay", "shardgate"], {"shardgate": "/new/shardgate",
                                                                 "shardgate-relay": "/new/shardgate-relay"}, False)
        self.assertEqual(paths["relay"], "/new/shardgate-relay")

    def test_the_relay_is_a_floor_whose_cpu_counts(self):
        argv = contenders.Relay("/b/shardgate-relay").command(self.dir, 8080, 9000)
        self.assertEqual(argv, ["/b/shardgate-relay", "--listen", "127.0.0.1:8080", "--upstream", "127.0.0.1:9000"])
        self.assertFalse(contenders.Relay.is_proxy)
        self.assertTrue(contenders.Relay.measures_cpu)
        self.assertFalse(contenders.Direct.measures_cpu)
        self.assertTrue(contenders.Nginx.measures_cpu)
        # Plain HTTP only: no TLS row runs it.
        self.assertNotIn("tls", contenders.Relay.features)
        with self.assertRaises(ValueError):
            contenders.Relay("/b/r").command(self.dir, 1, 2, certs.Cert("rsa", "c", "k", "p"))

    def test_describe_binary_says_which_build_it_is(self):
        d = contenders.describe_binary(self.old)
        self.assertEqual(d["path"], self.old)
        self.assertEqual(d["version"], "shardgate 0.0.9")
        with open(self.old, "rb") as f:
            self.assertEqual(d["sha256"], hashlib.sha256(f.read()).hexdigest())
        self.assertTrue(d["built"])


class Rounds(unittest.TestCase):
    def test_rotation_starts_each_round_at_the_next_contender(self):
        items = ["a", "b", "c", "d"]
        self.assertEqual([runner.rotate(items, r) for r in range(5)],
                         [list("abcd"), list("bcda"), list("cdab"), list("dabc"), list("abcd")])

    def test_every_contender_takes_every_position_over_len_rounds(self):
        items = ["a", "b", "c", "d", "e"]
        for pos in range(len(items)):
            self.assertEqual(sorted(runner.rotate(items, r)[pos] for r in range(len(items))), items)


    def test_baseline_sits_beside_shardgate_and_goes_first_every_other_round(self):
        names = contenders.default_names(baseline=True)
        others = [n for n in names if n != "baseline"]
        for r in range(2 * len(names)):
            order = runner.round_order(names, r)
            self.assertEqual(sorted(order), sorted(names))
            s, b = order.index("shardgate"), order.index("baseline")
            self.assertEqual(b - s, 1 if r % 2 == 0 else -1, f"round {r}: {order}")
            # The others keep the rotation they have without a baseline.
            self.assertEqual([n for n in order if n != "baseline"], runner.rotate(others, r))

    def test_the_fixed_rate_comes_from_the_slowest_proxy_not_from_a_floor(self):
        def closed(rps):
            return {"small": {"closed": {"requests_per_sec": rps}}}
        record = {"runs": {"direct": closed(120000), "relay": closed(30000), "shardgate": closed(80000),
                           "nginx": closed(61234)}}
        cs = {n: contenders.CLASSES[n]("/bin/true") for n in record["runs"]}
        rates = runner.open_rates(record, cs, [scenarios.BY_NAME["small"]], 0.5)
        self.assertEqual(rates, {"small": 30600})

    def test_without_a_baseline_the_order_is_the_rotation(self):
        for r in range(6):
            self.assertEqual(runner.round_order(contenders.ORDER, r), runner.rotate(contenders.ORDER, r))
        self.assertEqual(runner.round_order(["baseline", "nginx"], 1), ["nginx", "baseline"])


def _floor_rounds():
    """relay, shardgate and nginx; CPU per request at the fixed rate per
    round. Round 2 is slow for everyone: the paired ratio must not care."""
    cpu = [  # (relay, shardgate, nginx)
        (8.0, 11.0, 14.0),  # (11-8)/(14-8) = 0.5
        (16.0, 25.0, 28.0),  # 9/12 = 0.75
        (8.0, 12.0, 13.0),  # 4/5 = 0.8
    ]
    rounds = []
    for i, (r, s, n) in enumerate(cpu):
        runs = {"relay": {"small": _run(90000, r, 300)}, "shardgate": {"small": _run(60000, s, 500)},
                "nginx": {"small": _run(50000, n, 1000)}}
        rounds.append({"round": i + 1, "order": list(runs), "open_rate": {"small": 10000}, "runs": runs})
    return rounds


class RelayFloor(unittest.TestCase):
    def test_overhead_above_the_relay_over_nginxs_is_paired_within_a_round(self):
        r = summary.over_floor_ratios(_floor_rounds(), "shardgate", "small")
        self.assertEqual([round(x, 3) for x in r], [0.5, 0.75, 0.8])
        s = summary.summarise(_floor_rounds(), {}, ["relay", "shardgate", "nginx"], ["small"])
        over = s["scenarios"]["small"]["contenders"]["shardgate"]["over_floor"]
        self.assertAlmostEqual(over["median"], 0.75)
        self.assertAlmostEqual(over["min"], 0.5)
        self.assertAlmostEqual(over["max"], 0.8)
        # Not for the floor itself, nor for the reference (1 by definition).
        self.assertIsNone(s["scenarios"]["small"]["contenders"]["relay"]["over_floor"])
        self.assertIsNone(s["scenarios"]["small"]["contenders"]["nginx"]["over_floor"])

    def test_rounds_where_nginx_is_not_above_the_relay_are_left_out(self):
        rounds = _floor_rounds()
        rounds[2]["runs"]["relay"]["small"]["open"]["cpu_us_per_req"] = 13.0  # = nginx
        del rounds[1]["runs"]["relay"]["small"]
        self.assertEqual([None if x is None else round(x, 3)
                          for x in summary.over_floor_ratios(rounds, "shardgate", "small")], [0.5, None, None])
        f = summary.floor_figures(rounds, "small")
        self.assertEqual(f["rounds_without_gap"], 1)
        self.assertEqual(f["floor_cpu"]["n"], 2)

    def test_without_a_relay_there_is_no_ratio(self):
        s = summary.summarise(_rounds(), {}, ["shardgate", "nginx"], ["small"])
        self.assertIsNone(s["scenarios"]["small"]["contenders"]["shardgate"]["over_floor"])
        self.assertIsNone(s["scenarios"]["small"]["floor"])
        self.assertNotIn("relay floor", report.markdown(dict(Output().data(), summary=s)))

    def test_a_small_gap_is_marked_noisy_and_a_new_connection_row_is_marked(self):
        f = summary.floor_figures(_floor_rounds(), "small")
        # nginx - relay: 6, 12, 5 us; shares 6/14, 12/28, 5/13.
        self.assertAlmostEqual(f["gap_us"]["median"], 6.0)
        self.assertAlmostEqual(f["gap_share"]["median"], 6 / 14)
        self.assertFalse(f["noisy"])
        self.assertFalse(f["new_conn"])
        rounds = _floor_rounds()
        for rec in rounds:
            rec["runs"]["relay"]["small"]["open"]["cpu_us_per_req"] = (
                0.8 * rec["runs"]["nginx"]["small"]["open"]["cpu_us_per_req"])
            for c in rec["runs"]:
                rec["runs"][c]["newconn"] = rec["runs"][c].pop("small")
        f = summary.floor_figures(rounds, "newconn")
        self.assertAlmostEqual(f["gap_share"]["median"], 0.2)
        self.assertTrue(f["noisy"])
        self.assertTrue(f["new_conn"])

    def test_every_table_has_the_column_and_the_floor_is_explained(self):
        data = Output().data()
        rounds = _floor_rounds()
        names = ["relay", "shardgate", "nginx"]
        data.update(rounds=rounds, memory={})
        data["config"]["contenders"] = names
        data["summary"] = summary.summarise(rounds, {}, names, ["small"])
        md = report.markdown(data)
        self.assertIn("| scenario | contender | req/s at saturation | CPU/request at fixed rate | "
                      "overhead above relay ÷ nginx's | p99 | p99.9 |", md)
        # shardgate: 0.75 (0.50-0.80); CPU ratio 11/14, 25/28, 12/13.
        self.assertIn("| small | shardgate | 1.20× (1.20–1.20) | 0.89× (0.79–0.92) | 0.75× (0.50–0.80) |", md)
        self.assertIn("| small | relay | 1.80× (1.80–1.80) | 0.57× (0.57–0.62) | – |", md)
        # The figures table: the column after "of which kernel".
        self.assertIn("| contender | req/s at saturation | CPU µs/req at saturation | CPU µs/req at fixed rate | "
                      "of which kernel | overhead above relay ÷ nginx's | p50 µs", md)
        self.assertIn("| shardgate | 60,000 (60,000–60,000) | 9.6 (8.8–20.0) | 12.0 (11.0–25.0) | 10.8 (9.9–22.5) | "
                      "0.75× (0.50–0.80) |", md)
        self.assertIn("| small | 8.0 (8.0–16.0) | 6.0 (5.0–12.0) | 43% (38%–43%) | usable |", md)
        self.assertNotIn("‡", md)
        self.assertIn("`relay`, a byte relay with no HTTP", md)
        self.assertGreater(len(xml.dom.minidom.parseString(chart.svg(data)).getElementsByTagName("polyline")), 2)

    def test_marked_cells_say_why(self):
        rounds = _floor_rounds()
        for rec in rounds:
            for c in rec["runs"]:
                rec["runs"][c]["newconn"] = rec["runs"][c].pop("small")
            rec["runs"]["relay"]["newconn"]["open"]["cpu_us_per_req"] = (
                0.9 * rec["runs"]["nginx"]["newconn"]["open"]["cpu_us_per_req"])
        s = summary.summarise(rounds, {}, ["relay", "shardgate", "nginx"], ["newconn"])
        cell = report.over_floor_cell(s["scenarios"]["newconn"], "shardgate")
        self.assertTrue(cell.endswith(" †‡"), cell)
        md = "\n".join(report.floor_section(s))
        self.assertIn("† too noisy to steer by (nginx − relay under 25% of nginx's CPU)", md)
        self.assertIn("‡: on a new-connection row the relay pays an upstream connect", md)

    def test_a_relay_above_nginx_is_no_floor_and_gives_no_ratio(self):
        # New connections: the relay's upstream connect and close per
        # request can cost more than nginx's whole request.
        rounds = _floor_rounds()
        for rec in rounds:
            for c in rec["runs"]:
                rec["runs"][c]["newconn"] = rec["runs"][c].pop("small")
            rec["runs"]["relay"]["newconn"]["open"]["cpu_us_per_req"] = (
                1.3 * rec["runs"]["nginx"]["newconn"]["open"]["cpu_us_per_req"])
        s = summary.summarise(rounds, {}, ["relay", "shardgate", "nginx"], ["newconn"])
        sd = s["scenarios"]["newconn"]
        self.assertIsNone(sd["contenders"]["shardgate"]["over_floor"])
        self.assertTrue(sd["floor"]["above_reference"])
        self.assertEqual(sd["floor"]["rounds_without_gap"], 3)
        self.assertEqual(report.over_floor_cell(sd, "shardgate"), "–")
        md = "\n".join(report.floor_section(s))
        self.assertIn("the relay costs more than nginx here: not a floor, no ratio; ‡ the relay also connects", md)
        self.assertNotIn("too noisy", md)


class Figures(unittest.TestCase):
    def test_spread_ignores_missing_values(self):
        self.assertEqual(summary.spread([3, None, 1, 2]), {"median": 2, "min": 1, "max": 3, "n": 3})
        self.assertIsNone(summary.spread([None]))

    def test_ratios_are_paired_within_a_round(self):
        r = summary.paired_ratios(_rounds(), "shardgate", "nginx", "small", "rps")
        self.assertEqual([round(x, 3) for x in r], [1.2, 1.2, 1.32])
        cpu = summary.paired_ratios(_rounds(), "shardgate", "nginx", "small", "cpu")
        self.assertEqual([round(x, 3) for x in cpu], [0.5, 0.5, 0.55])

    def test_targets_compare_the_median_ratio_with_the_bound(self):
        t = {x["what"]: x for x in summary.check_targets(_rounds(), {}, ["shardgate", "nginx"], ["small"])}
        cpu = t["CPU per request at a fixed rate, 13 B"]
        self.assertTrue(cpu["met"])
        self.assertAlmostEqual(cpu["ratio"]["median"], 0.5)
        rps = t["requests/s at saturation, 13 B"]
        self.assertFalse(rps["met"])  # 1.2x < 1.3x
        self.assertTrue(t["p99 latency at a fixed rate, small"]["met"])
        # Scenarios and references not measured are not judged.
        self.assertNotIn("CPU per request at a fixed rate, 16 KiB", t)
        self.assertNotIn("CPU per request at a fixed rate, 13 B, vs Envoy", t)

    def test_lower_means_strictly_lower(self):
        same = [{"round": 1, "order": ["shardgate", "nginx"], "open_rate": {},
                 "runs": {c: {"tls_small_rsa": _run(1000, 10.0, 500)} for c in ("shardgate", "nginx")}}]
        t = {x["what"]: x for x in summary.check_targets(same, {}, ["shardgate", "nginx"], ["tls_small_rsa"])}
        self.assertTrue(t["CPU per keep-alive HTTPS request at a fixed rate, RSA 2048"]["met"])  # <= 1.0
        self.assertFalse(t["p99 latency at a fixed rate, keep-alive HTTPS, RSA 2048"]["met"])  # < 1.0

    def test_ratios_to_the_baseline_are_paired_within_a_round(self):
        vb = summary.versus_baseline(_baseline_rounds(), {}, ["shardgate", "baseline"], ["small"])
        small = vb["scenarios"]["small"]
        # rps: 60000/60000, 30000/31000, 66000/55000.
        self.assertAlmostEqual(small["rps"]["ratio"]["median"], 1.0)
        self.assertAlmostEqual(small["rps"]["ratio"]["min"], 30000 / 31000)
        self.assertAlmostEqual(small["rps"]["ratio"]["max"], 1.2)
        # cpu at the fixed rate: 10/10.4, 20/20, 11/10.
        self.assertAlmostEqual(small["cpu"]["ratio"]["median"], 1.0)
        self.assertAlmostEqual(small["cpu_sat"]["ratio"]["min"], 10 / 10.4)
        # p99: 500/500, 1000/1000, 400/500.
        self.assertAlmostEqual(small["p99"]["ratio"]["median"], 1.0)
        self.assertAlmostEqual(small["p99"]["ratio"]["min"], 0.8)
        self.assertEqual(set(small), set(summary.BASELINE_METRICS))
        self.assertEqual(vb["outside"], [])
        self.assertIsNone(vb["memory"])

    def test_verdict_is_within_five_percent_or_better_or_worse_by_direction(self):
        def v(metric, median):
            return summary.verdict(metric, {"median": median, "min": median, "max": median, "n": 1})
        self.assertEqual(v("rps", 0.95), "within")
        self.assertEqual(v("rps", 1.05), "within")
        self.assertEqual(v("rps", 0.94), "worse")
        self.assertEqual(v("rps", 1.06), "better")
        self.assertEqual(v("cpu", 1.06), "worse")
        self.assertEqual(v("p99", 0.90), "better")
        self.assertEqual(v("memory", 1.2), "worse")
        self.assertIsNone(summary.verdict("cpu", None))

    def test_figures_outside_the_tolerance_are_listed(self):
        rounds = _baseline_rounds()
        for rec in rounds:
            rec["runs"]["shardgate"]["small"]["open"]["cpu_us_per_req"] *= 1.1
        memory = {"shardgate": [{"connections": 10, "rss_kib": 800, "rss_idle_kib": 100, "per_connection_bytes": 1}],
                  "baseline": [{"connections": 10, "rss_kib": 1000, "rss_idle_kib": 100, "per_connection_bytes": 1}]}
        vb = summary.versus_baseline(rounds, memory, ["shardgate", "baseline"], ["small"])
        self.assertEqual([(o["scenario"], o["metric"], o["verdict"]) for o in vb["outside"]],
                         [("small", "cpu", "worse"), (None, "memory", "better")])
        self.assertAlmostEqual(vb["memory"]["ratio"]["median"], 0.8)

    def test_no_baseline_no_comparison(self):
        self.assertIsNone(summary.versus_baseline(_rounds(), {}, ["shardgate", "nginx"], ["small"]))
        self.assertIsNone(summary.summarise(_rounds(), {}, ["shardgate", "nginx"], ["small"])["versus_baseline"])

    def test_memory_target_uses_the_paired_rss(self):
        memory = {"shardgate": [{"connections": 10, "rss_kib": 800, "rss_idle_kib": 100, "per_connection_bytes": 1}],
                  "nginx": [{"connections": 10, "rss_kib": 1000, "rss_idle_kib": 100, "per_connection_bytes": 1}]}
        t = summary.check_targets([], memory, ["shardgate", "nginx"], [])
        self.assertEqual(len(t), 1)
        self.assertTrue(t[0]["met"])
        self.assertAlmostEqual(t[0]["ratio"]["median"], 0.8)


class Output(unittest.TestCase):
    def data(self):
        rounds = _rounds()
        memory = {"shardgate": [{"connections": 10, "rss_kib": 800, "rss_idle_kib": 100, "per_connection_bytes": 1}],
                  "nginx": [{"connections": 10, "rss_kib": 1000, "rss_idle_kib": 100, "per_connection_bytes": 1}]}
        s = scenarios.BY_NAME["small"]
        return {
            "started": "T", "command": "bench/compare --quick",
            "machine": {"cpu_model": "cpu", "cores": 2, "cores_usable": 2, "memory_gib": 1, "kernel": "k",
                        "os": "os", "rustc": "rustc", "pinning": {"proxy": 0, "load": 1},
                        "loadavg_start": ["0", "0", "0"], "versions": {"nginx": "1"}},
            "loadavg_end": ["0", "0", "0"],
            "config": {"rounds": 3, "duration_s": 1, "warmup_s": 0.3, "open_fraction": 0.5,
                       "contenders": ["shardgate", "nginx"]},
            "scenarios": {"small": {"title": s.title, "short": s.short}},
            "rounds": rounds, "memory": memory,
            "summary": summary.summarise(rounds, memory, ["shardgate", "nginx"], ["small"]),
        }

    def test_kernel_floor_is_the_subjects_kernel_cpu_over_the_references_whole(self):
        t = [t for t in self.data()["summary"]["targets"] if t["metric"] == "cpu" and t["reference"] == "nginx"][0]
        # shardgate 10/20/11 us at 90 % kernel; nginx 20/40/20 us.
        self.assertAlmostEqual(t["kernel_floor"]["median"], 0.45)
        self.assertAlmostEqual(t["kernel_floor"]["max"], 0.495)
        md = report.markdown(self.data())
        self.assertIn("| <= 0.6x | 0.50× (0.50–0.55) | yes | 0.45× (0.45–0.49) |", md)

    def test_kernel_share_of_a_run_comes_from_the_tick_split(self):
        from . import procstat
        before = {"ticks_s": 1.0, "sys_ticks_s": 0.5, "user_ticks_s": 0.5, "exact_s": 1.0}
        after = {"ticks_s": 2.0, "sys_ticks_s": 1.4, "user_ticks_s": 0.6, "exact_s": 2.0}
        self.assertAlmostEqual(procstat.kernel_share(before, after), 0.9)
        self.assertIsNone(procstat.kernel_share(before, before))

    def test_markdown_holds_ratios_with_spread(self):
        md = report.markdown(self.data())
        self.assertIn("| small | shardgate | 1.20× (1.20–1.32) | 0.50× (0.50–0.55) |", md)
        self.assertIn("RSS 0.80×", md)

    def test_markdown_names_the_baseline_and_its_paired_ratios(self):
        data = self.data()
        for rec, base in zip(data["rounds"], _baseline_rounds()):
            rec["runs"]["baseline"] = base["runs"]["baseline"]
        # The baseline's CPU at the fixed rate 10 % lower than shardgate's
        # in every round: shardgate is 10 % worse there.
        for rec in data["rounds"]:
            rec["runs"]["baseline"]["small"]["open"]["cpu_us_per_req"] = (
                rec["runs"]["shardgate"]["small"]["open"]["cpu_us_per_req"] / 1.1)
        names = ["shardgate", "baseline", "nginx"]
        data["config"]["contenders"] = names
        data["summary"] = summary.summarise(data["rounds"], data["memory"], names, ["small"])
        build = {"version": "shardgate 0.1.0", "sha256": "ab" * 32, "built": "2026-01-01T00:00:00"}
        data["builds"] = {"baseline": dict(build, path="/tmp/base/target/release/shardgate",
                                           checkout_commit="1234abc (2025-12-31)"),
                          "shardgate": dict(build, path="/w/target/release/shardgate", sha256="cd" * 32,
                                            checkout_commit=None)}
        md = report.markdown(data)
        self.assertIn("## shardgate ÷ baseline", md)
        self.assertIn("- baseline: `/tmp/base/target/release/shardgate` — `--version`: `shardgate 0.1.0`; "
                      "sha256 `abababababababab…`; built 2026-01-01T00:00:00; checkout at `1234abc (2025-12-31)`", md)
        self.assertIn("- shardgate (under test): `/w/target/release/shardgate`", md)
        self.assertNotIn("A/A run", md)
        # rps 1.000 (0.968–1.200), cpu at saturation 10/10.4, 20/20, 11/10.
        self.assertIn("| small | 1.000× (0.968–1.200) | 1.000× (0.962–1.100) | "
                      "**1.100× (1.100–1.100) worse** |", md)
        self.assertIn("Outside ±5%: small CPU/request at fixed rate 1.100× (worse).", md)
        # The baseline is also a contender beside nginx.
        self.assertIn("| small | baseline |", md)
        self.assertGreater(len(xml.dom.minidom.parseString(chart.svg(data)).getElementsByTagName("polyline")), 2)

    def test_markdown_without_baseline_has_no_baseline_section(self):
        self.assertNotIn("baseline", report.markdown(self.data()))

    def test_tls_section_says_what_was_negotiated(self):
        tls = {"full": 90, "resumed": 0, "handshakes_per_sec": 90.0, "handshakes_all_phases": 100,
               "versions": {"TLSv1_3": 100}, "cipher_suites": {"TLS13_AES_256_GCM_SHA384": 100},
               "key_exchange_groups": {"X25519": 100}}
        run = _run(1000, 10.0, 500)
        run["closed"]["tls"] = run["open"]["tls"] = tls
        data = {"scenarios": {"tls_newconn_rsa": {"tls": "rsa"}, "small": {"tls": ""}},
                "config": {"contenders": ["direct", "shardgate"]},
                "tls": {"certificates": {"rsa": {"label": "RSA 2048", "command": "openssl req"}}},
                "rounds": [{"runs": {"shardgate": {"tls_newconn_rsa": run}}}]}
        md = "\n".join(report.tls_section(data))
        self.assertIn("| tls_newconn_rsa | shardgate | TLSv1_3 | TLS13_AES_256_GCM_SHA384 | X25519 | 180 | 0 |", md)
        self.assertIn("RSA 2048 certificate: `openssl req`", md)
        self.assertNotIn("direct", md)

    def test_chart_is_well_formed_svg(self):
        doc = xml.dom.minidom.parseString(chart.svg(self.data()))
        self.assertEqual(doc.documentElement.tagName, "svg")
        self.assertGreater(len(doc.getElementsByTagName("polyline")), 1)


class Scenarios(unittest.TestCase):
    def test_flags(self):
        post = scenarios.BY_NAME["post4k"].load_args()
        self.assertEqual(post[:4], ["-c", "50", "-m", "POST"])
        self.assertIn("--body-size", post)
        self.assertIn("--new-conn", scenarios.BY_NAME["newconn"].load_args())

    def test_selection(self):
        self.assertEqual([s.name for s in scenarios.select(quick=True)], ["small"])
        self.assertEqual([s.name for s in scenarios.select()], ["small", "16k", "1m", "post4k", "newconn"],
                         "the default run: the plain rows")
        self.assertEqual(len(scenarios.select(["all"])), len(scenarios.SCENARIOS))
        with self.assertRaises(ValueError):
            scenarios.select(["nope"])

    def test_groups_select_rows_once_in_table_order(self):
        tls = [s.name for s in scenarios.select(["tls"])]
        self.assertEqual(tls, ["tls_small_ecdsa", "tls_small_rsa", "tls_newconn_ecdsa", "tls_newconn_rsa"])
        self.assertEqual([s.name for s in scenarios.select(["tls_newconn_rsa", "small", "tls"])][:2],
                         ["small", "tls_small_ecdsa"])
        self.assertNotIn("tls_small_ecdsa", [s.name for s in scenarios.select(["plain"])])

    def test_tls_rows_need_tls_and_trust_the_served_certificate(self):
        row = scenarios.BY_NAME["tls_newconn_rsa"]
        self.assertIn("tls", row.needs)
        self.assertEqual(row.url(8443), "https://127.0.0.1:8443/bytes/13")
        args = row.load_args(certs.Cert("rsa", "/c/rsa.crt", "/c/rsa.key", "/c/rsa.pem"))
        self.assertEqual(args[args.index("--cacert") + 1], "/c/rsa.crt")
        self.assertIn("--new-conn", args)
        self.assertNotIn("--resume", args)  # full handshakes only
        self.assertEqual(scenarios.BY_NAME["small"].url(80), "http://127.0.0.1:80/bytes/13")

    def test_contenders_start_once_per_listener(self):
        groups = scenarios.by_listener(scenarios.select(["all"]))
        self.assertEqual([g for g, _ in groups], ["plain", "ecdsa", "rsa"])
        self.assertEqual([s.name for s in dict(groups)["rsa"]], ["tls_small_rsa", "tls_newconn_rsa"])


class PeerConfigs(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="harness-test-")
        self.cert = certs.Cert("ecdsa", "/certs/ecdsa.crt", "/certs/ecdsa.key", "/certs/ecdsa.pem")

    def tearDown(self):
        for name in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def config(self, cls, name, cert):
        cls("/bin/true").command(self.dir, 8443, 9000, cert)
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def settings(self, text):
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def test_nginx_listens_with_tls_1_3_and_the_given_certificate_only_when_asked(self):
        tls = self.settings(self.config(contenders.Nginx, "nginx.conf", self.cert))
        self.assertIn("listen 127.0.0.1:8443 reuseport backlog=4096 ssl;", tls)
        self.assertIn("ssl_protocols TLSv1.2 TLSv1.3;", tls)
        self.assertIn("ssl_certificate /certs/ecdsa.crt;", tls)
        self.assertIn("ssl_certificate_key /certs/ecdsa.key;", tls)
        plain = self.settings(self.config(contenders.Nginx, "nginx.conf", None))
        self.assertIn("listen 127.0.0.1:8443 reuseport backlog=4096;", plain)
        self.assertFalse([line for line in plain if "ssl" in line])

    def test_envoy_tls_context_sits_in_the_filter_chain(self):
        lines = self.config(contenders.Envoy, "envoy.yaml", self.cert).splitlines()
        filters = next(i for i, line in enumerate(lines) if line == "    - filters:")
        ts = lines.index("      transport_socket:")
        clusters = lines.index("  clusters:")
        self.assertTrue(filters < ts < clusters)
        self.assertIn('              private_key: { filename: "/certs/ecdsa.key" }', lines)
        self.assertNotIn("transport_socket", self.config(contenders.Envoy, "envoy.yaml", None))

    def test_haproxy_binds_with_the_combined_pem(self):
        cfg = self.settings(self.config(contenders.Haproxy, "haproxy.cfg", self.cert))
        self.assertIn("bind 127.0.0.1:8443 ssl crt /certs/ecdsa.pem alpn http/1.1", cfg)

    def test_shardgate_gets_the_flags(self):
        argv = contenders.Shardgate("/bin/shardgate").command(self.dir, 8443, 9000, self.cert)
        self.assertEqual(argv[-4:], ["--tls-cert", "/certs/ecdsa.crt", "--tls-key", "/certs/ecdsa.key"])

    def test_unfilled_placeholders_are_refused(self):
        with self.assertRaises(ValueError):
            contenders._fill("nginx.conf", LISTEN="x", UPSTREAM="y")

    def test_certificate_command_is_end_entity_for_name_and_address(self):
        argv = " ".join(certs.req_argv("rsa", "c.crt", "c.key"))
        self.assertIn("-newkey rsa:2048", argv)
        self.assertIn("subjectAltName=DNS:bench.test,IP:127.0.0.1", argv)
        self.assertIn("basicConstraints=critical,CA:FALSE", argv)
        self.assertIn("ec_paramgen_curve:prime256v1", " ".join(certs.req_argv("ecdsa", "c", "k")))


class Balancing(unittest.TestCase):
    ENDPOINTS = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]

    def config(self, name):
        """The argv and the one config file of peer `name`."""
        c = balancing.CLASSES[name]("/bin/true")
        c.endpoints = self.ENDPOINTS
        with tempfile.TemporaryDirectory(prefix="harness-test-") as folder:
            argv = c.command(folder, 8080, 1, None)
            files = os.listdir(folder)
            self.assertEqual(len(files), 1, files)
            with open(os.path.join(folder, files[0])) as f:
                return argv, f.read()

    def test_every_peer_config_names_the_three_endpoints_and_not_the_single_upstream(self):
        for name in balancing.CLASSES:
            argv, text = self.config(name)
            for port in ("9001", "9002", "9003"):
                self.assertIn(port, text, name)
            self.assertNotIn("127.0.0.1:1\n", text, name)
            self.assertIn("8080", text, name)

    def test_each_peer_balances_by_least_requests_and_retries_a_failed_connect(self):
        self.assertIn('lb = "least_request"', self.config("shardgate")[1])
        nginx = self.config("nginx")[1]
        self.assertIn("least_conn;", nginx)
        self.assertIn("proxy_next_upstream error timeout;", nginx)
        haproxy = self.config("haproxy")[1]
        self.assertIn("balance leastconn", haproxy)
        self.assertIn("option redispatch 1", haproxy)
        envoy = self.config("envoy")[1]
        self.assertIn("lb_policy: LEAST_REQUEST", envoy)
        self.assertIn("retry_on: \"connect-failure,reset\"", envoy)

    def test_report_checks_the_target_against_the_best_peer(self):
        def run(errors, p99):
            lat = {"p50": 100, "p90": 200, "p99": p99, "p99_9": p99 * 2, "max": p99 * 3}
            part = {"requests": 1000, "ok": 1000 - errors, "errors": errors, "latency_us": lat}
            return {"cold": dict(part, errors=3), "steady": part, "cpu_us_per_req": 30.0}

        rounds = [{"round": 1, "runs": {"lb_dead": {"shardgate": run(0, 900), "nginx": run(0, 1000),
                                                    "envoy": run(5, 800)}}}]
        data = {"command": "bench/compare --balancing", "versions": {"shardgate": "x"},
                "config": {"rounds": 1, "rate": 2000, "connections": 50, "cold_s": 2, "duration_s": 10},
                "summary": balancing.summarise(rounds, ["shardgate", "nginx", "envoy"])}
        self.assertEqual(data["summary"]["lb_dead"]["shardgate"]["cold_errors"], 3)
        text = balancing.report(data)
        # Envoy's p99 (800) is the best peer's: 900 is not <= 800.
        self.assertIn("NOT met", text)
        self.assertIn("| envoy | 3 / 1000 | 5 / 1000 |", text)


class IdleConnections(unittest.TestCase):
    def test_response_framing(self):
        self.assertFalse(runner._response_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"))
        self.assertTrue(runner._response_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"))
        self.assertTrue(runner._response_complete(b"HTTP/1.1 204 No Content\r\n\r\n"))

    def test_connections_stay_open_after_one_exchange(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        held = []

        def serve():
            for _ in range(20):
                c, _ = srv.accept()
                c.recv(4096)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                held.append(c)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        socks = runner.open_idle_connections(srv.getsockname()[1], 20, batch=7, timeout_s=10)
        self.assertEqual(len(socks), 20)
        for s in socks + held:
            s.close()
        srv.close()


if __name__ == "__main__":
    unittest.main()
