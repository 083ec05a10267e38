"""Unit tests of the soak's bookkeeping: how load reports are classified,
the verdict, the reference minute and the plot. Run from cargo test
(bench/tests/soak_script.rs) or `python3 -m unittest test_soak` here."""

import unittest
import xml.dom.minidom

import report
import traffic

STREAMS = {s.name: s for s in traffic.STREAMS}


def load_report(ok=0, errors=None, statuses=None, unsent=0):
    errors = errors or {}
    total = sum(errors.values())
    return {
        "requests": ok + total,
        "ok": ok,
        "errors": dict(errors, total=total),
        "status_codes": statuses or {},
        "unsent": unsent,
    }


def row(minute, rss, unexpected=None, injected=None):
    return {
        "minute": minute, "rss_kib": rss, "rss_load_kib": rss + 50, "rss_peak_kib": rss + 100,
        "fds": 10, "fds_idle": 10, "conns_idle": 0, "conns_downstream": 1, "conns_upstream": 1,
        "requests": 10, "ok": 10, "unsent": 0, "proxy_requests": 10, "sighup_reloads": 2,
        "injected": dict({k: 0 for k in traffic.INJECTED_KINDS}, **(injected or {})),
        "unexpected": dict({k: 0 for k in traffic.UNEXPECTED_KINDS}, **(unexpected or {})),
    }


class Classify(unittest.TestCase):
    def test_every_request_lands_in_exactly_one_bucket(self):
        cases = [
            ("keepalive-small", load_report(ok=90, errors={"io": 3, "status": 2}, statuses={"200": 90, "502": 2})),
            ("fault-reset", load_report(ok=40, errors={"status": 1, "timeout": 2}, statuses={"502": 40, "200": 1})),
            ("fault-slow", load_report(ok=40, statuses={"504": 40})),
            ("fault-truncate", load_report(ok=1, errors={"protocol": 30, "io": 2, "status": 3}, statuses={"200": 1, "502": 2, "500": 1})),
        ]
        for name, rep in cases:
            c = traffic.classify(STREAMS[name], rep)
            total = c["ok"] + sum(c["injected"].values()) + sum(c["unexpected"].values())
            self.assertEqual(total, rep["requests"], name)

    def test_errors_on_a_normal_stream_are_unexpected(self):
        c = traffic.classify(STREAMS["tls-keepalive"], load_report(ok=5, errors={"tls": 1, "io": 2}))
        self.assertEqual((c["ok"], c["unexpected"]["tls"], c["unexpected"]["io"]), (5, 1, 2))
        self.assertEqual(sum(c["injected"].values()), 0)

    def test_a_fault_status_is_injected_and_anything_else_unexpected(self):
        c = traffic.classify(STREAMS["fault-slow"], load_report(ok=7, errors={"status": 1}, statuses={"504": 7, "200": 1}))
        self.assertEqual(c["injected"]["504"], 7)
        self.assertEqual(c["unexpected"]["status"], 1)
        self.assertEqual(c["ok"], 0)

    def test_truncation_counts_cut_bodies_and_502_and_flags_a_normal_answer_as_missed(self):
        rep = load_report(ok=1, errors={"protocol": 4, "io": 1, "status": 3}, statuses={"200": 1, "502": 2, "500": 1})
        c = traffic.classify(STREAMS["fault-truncate"], rep)
        self.assertEqual((c["injected"]["truncated"], c["injected"]["502"]), (5, 2))
        self.assertEqual((c["unexpected"]["missed"], c["unexpected"]["status"]), (1, 1))

    def test_streams_match_the_documented_mix(self):
        faults = [s for s in traffic.STREAMS if s.is_fault()]
        self.assertTrue(all(s.path.startswith("/fault/") for s in faults))
        self.assertTrue(all(not s.path.startswith("/fault/") for s in traffic.STREAMS if not s.is_fault()))
        total = sum(s.rate for s in traffic.STREAMS)
        self.assertTrue(2000 <= total <= 4000, total)
        self.assertLess(sum(s.rate for s in faults) / total, 0.05)
        cmd = traffic.load_command("L", STREAMS["fault-slow"], "http://x/fault/slow", 57, 0.5, 1)
        self.assertEqual(cmd[cmd.index("-R") + 1], "5")
        self.assertEqual(cmd[cmd.index("--expect-status") + 1], "504")
        self.assertEqual(cmd[cmd.index("--cpus") + 1], "1")


class Verdict(unittest.TestCase):
    def check(self, rows, minutes=10, settled=10, seen=None, exited=""):
        seen = seen if seen is not None else {"fault-reset": True}
        return {name.split(" ")[0] + ("" if ok else "!"): ok for name, ok, _ in
                report.verdict(rows, minutes, 10, settled, seen, exited)}

    def test_reference_minute(self):
        self.assertEqual([report.reference_minute(m) for m in (1, 2, 3, 4, 9, 10, 30)], [1, 1, 2, 2, 5, 5, 5])

    def test_pass(self):
        rows = [row(m, 10000 + m) for m in range(1, 11)]
        self.assertTrue(all(self.check(rows).values()))

    def test_rss_growth_past_5_percent_fails(self):
        rows = [row(m, 10000) for m in range(1, 11)]
        for r in rows[-3:]:
            r["rss_kib"] = 10501
        results = report.verdict(rows, 10, 10, 10, {}, "")
        self.assertFalse(results[0][1], results[0])
        self.assertIn("minute 5", results[0][0])
        self.assertIn("minutes 4-6", results[0][2])
        self.assertIn("minutes 8-10", results[0][2])
        for r in rows[-3:]:
            r["rss_kib"] = 10500
        self.assertTrue(report.verdict(rows, 10, 10, 10, {}, "")[0][1])

    def test_one_stray_idle_reading_is_not_a_leak(self):
        rows = [row(m, 10000) for m in range(1, 31)]
        rows[-1]["rss_kib"] = 10900
        self.assertTrue(report.verdict(rows, 30, 10, 10, {}, "")[0][1])
        rows[-2]["rss_kib"] = 10900
        self.assertFalse(report.verdict(rows, 30, 10, 10, {}, "")[0][1])

    def test_short_runs_compare_single_minutes(self):
        self.assertEqual(report.rss_windows(2), ([1], [2]))
        self.assertEqual(report.rss_windows(10), ([4, 5, 6], [8, 9, 10]))
        self.assertEqual(report.rss_windows(30), ([4, 5, 6], [28, 29, 30]))
        rows = [row(1, 10000), row(2, 10600)]
        self.assertFalse(report.verdict(rows, 2, 10, 10, {}, "")[0][1])

    def test_descriptors_not_back_fail(self):
        rows = [row(m, 1) for m in range(1, 3)]
        self.assertFalse(all(self.check(rows, 2, settled=11).values()))
        self.assertFalse(all(self.check(rows, 2, settled=None).values()))

    def test_any_unexpected_error_fails_injected_ones_do_not(self):
        rows = [row(1, 1, injected={"502": 50}), row(2, 1)]
        self.assertTrue(all(self.check(rows, 2).values()))
        rows[1]["unexpected"]["reload"] = 1
        self.assertFalse(all(self.check(rows, 2).values()))

    def test_a_fault_never_seen_fails(self):
        rows = [row(1, 1), row(2, 1)]
        self.assertFalse(all(self.check(rows, 2, seen={"fault-reset": False}).values()))

    def test_missing_minutes_and_exits_fail(self):
        self.assertFalse(all(self.check([row(1, 1)], 2).values()))
        self.assertFalse(all(self.check([row(1, 1), row(2, 1)], 2, exited="proxy exited").values()))


class Outputs(unittest.TestCase):
    def test_svg_is_well_formed_and_draws_every_sample(self):
        rows = [row(m, 1000 + m) for m in range(1, 3)]
        svg = report.svg_plot([(t, 1000 + t) for t in range(0, 30)], 15, rows, 2)
        doc = xml.dom.minidom.parseString(svg)
        points = doc.getElementsByTagName("polyline")[0].getAttribute("points").split()
        self.assertEqual(len(points), 30)
        self.assertIn("+5 % limit", svg)

    def test_table_lines_and_markdown(self):
        r = row(3, 12345, unexpected={"io": 2}, injected={"502": 7})
        self.assertIn("io:2", report.line(r))
        self.assertIn("| 3 | 12345 | 12395 | 12445 | 10 | 10 |", report.markdown_table([r]))


if __name__ == "__main__":
    unittest.main()
