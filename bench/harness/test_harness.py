"""Unit tests of the comparison harness's pure parts (no processes, no
sockets beyond 127.0.0.1 in-process).

    cd bench && python3 -m unittest harness.test_harness
"""

import socket
import threading
import unittest
import xml.dom.minidom

from . import chart, report, runner, scenarios, summary


def _run(rps, cpu, p99, errors=0):
    lat = {"p50": p99 // 2, "p90": p99 * 3 // 4, "p99": p99, "p99_9": p99 * 2, "p99_99": p99 * 3, "max": p99 * 4,
           "mean": p99 / 2}
    closed = {"requests_per_sec": rps, "cpu_us_per_req": cpu * 0.8, "errors": errors, "latency_us": lat,
              "upstream_cpu_us_per_req": 5.0}
    open_ = {"requests_per_sec": rps / 2, "cpu_us_per_req": cpu, "errors": 0, "latency_us": lat,
             "upstream_cpu_us_per_req": 5.0}
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


class Rounds(unittest.TestCase):
    def test_rotation_starts_each_round_at_the_next_contender(self):
        items = ["a", "b", "c", "d"]
        self.assertEqual([runner.rotate(items, r) for r in range(5)],
                         [list("abcd"), list("bcda"), list("cdab"), list("dabc"), list("abcd")])

    def test_every_contender_takes_every_position_over_len_rounds(self):
        items = ["a", "b", "c", "d", "e"]
        for pos in range(len(items)):
            self.assertEqual(sorted(runner.rotate(items, r)[pos] for r in range(len(items))), items)


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

    def test_markdown_holds_ratios_with_spread(self):
        md = report.markdown(self.data())
        self.assertIn("| small | shardgate | 1.20× (1.20–1.32) | 0.50× (0.50–0.55) |", md)
        self.assertIn("RSS 0.80×", md)

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
        self.assertEqual(len(scenarios.select()), len(scenarios.SCENARIOS))
        with self.assertRaises(ValueError):
            scenarios.select(["nope"])


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
