//! The final report: text for people, `--json` for scripts.
//!
//! JSON field names are a stable interface (bench scripts and docs read
//! them): rename nothing; add fields only. `JSON_FIELDS` below lists the
//! top-level keys and a test keeps it honest; `bench/README.md` describes
//! each.

use crate::cli::Plan;
use crate::outcome::ErrorKind;
use crate::stats::Stats;
use crate::tls::Trust;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Bumped only if a field's meaning changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// Top-level JSON keys, in output order (checked by a test; listed in
/// bench/README.md).
#[cfg(test)]
const JSON_FIELDS: &[&str] = &[
    "schema_version",
    "command",
    "target",
    "method",
    "threads",
    "cpus",
    "connections",
    "new_conn",
    "mode",
    "rate",
    "warmup_s",
    "duration_s",
    "timeout_s",
    "expect_status",
    "requests",
    "ok",
    "requests_per_sec",
    "bytes_read",
    "errors",
    "error_samples",
    "status_codes",
    "unfinished",
    "unsent",
    "latency_us",
    "exchanges",
    "retried",
    "tls",
];

#[derive(Serialize, Debug)]
pub struct Summary {
    pub schema_version: u32,
    pub command: String,
    pub target: String,
    pub method: String,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
    pub connections: usize,
    pub new_conn: bool,
    /// "closed" or "open".
    pub mode: &'static str,
    /// Target requests/s in open loop; null in closed loop.
    pub rate: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub timeout_s: f64,
    pub expect_status: u16,
    /// ok + all errors: requests intended inside the measured window that
    /// finished one way or another.
    pub requests: u64,
    pub ok: u64,
    /// requests / duration_s.
    pub requests_per_sec: f64,
    pub bytes_read: u64,
    /// Keys: connect, timeout, status, protocol, io, total.
    pub errors: BTreeMap<&'static str, u64>,
    /// Error kind -> first message seen of that kind (only kinds that
    /// occurred).
    pub error_samples: BTreeMap<&'static str, String>,
    /// Status code (as a string key) -> count of complete responses.
    pub status_codes: BTreeMap<String, u64>,
    /// In flight at the hard stop (any phase); not in `requests`.
    pub unfinished: u64,
    /// Open loop: due in the window but never sent, the connection still
    /// busy at the end; not in `requests`.
    pub unsent: u64,
    /// All zero when `count` is 0.
    pub latency_us: Latency,
    /// Every exchange finished in any phase (warmup, window, drain), ok or
    /// failed: the divisor for a server's CPU time over the whole run.
    pub exchanges: u64,
    /// Idempotent requests retried once on a new connection after a reused
    /// one closed before any response byte (see `Stats::retried`).
    pub retried: u64,
    /// https targets only (null for http).
    pub tls: Option<TlsReport>,
}

/// The TLS side of an https run.
#[derive(Serialize, Debug)]
pub struct TlsReport {
    /// Versions offered: "1.2", "1.3" or "any".
    pub version_offered: &'static str,
    /// "cacert" or "insecure".
    pub verify: &'static str,
    /// Sessions were offered for resumption (`--resume`).
    pub resume: bool,
    /// Handshakes of requests in the measured window that got a complete
    /// response: `full + resumed`.
    pub handshakes: u64,
    pub full: u64,
    pub resumed: u64,
    /// handshakes / duration_s.
    pub handshakes_per_sec: f64,
    /// Every handshake of the run, warmup and drain included (like
    /// `exchanges`: the divisor for a server's CPU time).
    pub handshakes_all_phases: u64,
    /// What the server negotiated, name -> handshakes (all phases).
    pub versions: BTreeMap<&'static str, u64>,
    pub cipher_suites: BTreeMap<&'static str, u64>,
    pub key_exchange_groups: BTreeMap<&'static str, u64>,
}

/// Latency of complete responses, microseconds.
#[derive(Serialize, Debug, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub max: u64,
    /// Responses slower than the histogram's 60 s ceiling (counted as 60 s).
    pub clamped: u64,
}

impl Summary {
    pub fn new(plan: &Plan, stats: &Stats) -> Summary {
        let h = &stats.latency;
        let empty = h.is_empty();
        let q = |q: f64| if empty { 0 } else { h.value_at_quantile(q) };
        let mut errors: BTreeMap<&'static str, u64> =
            ErrorKind::ALL.iter().map(|&k| (k.name(), stats.error_count(k))).collect();
        errors.insert("total", stats.total_errors());
        let duration_s = plan.duration.as_secs_f64();
        Summary {
            schema_version: SCHEMA_VERSION,
            command: plan.command.clone(),
            target: plan.target.url(),
            method: plan.request.method.clone(),
            threads: plan.threads,
            cpus: plan.cpus.clone(),
            connections: plan.connections,
            new_conn: plan.new_conn,
            mode: if plan.rate.is_some() { "open" } else { "closed" },
            rate: plan.rate,
            warmup_s: plan.warmup.as_secs_f64(),
            duration_s,
            timeout_s: plan.timeout.as_secs_f64(),
            expect_status: plan.expect_status,
            requests: stats.requests(),
            ok: stats.ok,
            requests_per_sec: stats.requests() as f64 / duration_s,
            bytes_read: stats.bytes_read,
            errors,
            error_samples: ErrorKind::ALL
                .iter()
                .filter_map(|&k| Some((k.name(), stats.error_sample(k)?.to_string())))
                .collect(),
            status_codes: stats.statuses().map(|(c, n)| (c.to_string(), n)).collect(),
            unfinished: stats.unfinished,
            unsent: stats.unsent,
            latency_us: Latency {
                count: h.len(),
                min: if empty { 0 } else { h.min() },
                mean: if empty { 0.0 } else { h.mean() },
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p99_9: q(0.999),
                p99_99: q(0.9999),
                max: if empty { 0 } else { h.max() },
                clamped: stats.latency_clamped,
            },
            exchanges: stats.exchanges,
            retried: stats.retried,
            tls: plan.tls_options.as_ref().map(|o| {
                let t = &stats.tls;
                TlsReport {
                    version_offered: o.version.as_str(),
                    verify: match o.trust {
                        Trust::CaFile(_) => "cacert",
                        Trust::Insecure => "insecure",
                    },
                    resume: o.resume,
                    handshakes: t.full + t.resumed,
                    full: t.full,
                    resumed: t.resumed,
                    handshakes_per_sec: (t.full + t.resumed) as f64 / duration_s,
                    handshakes_all_phases: t.all_phases,
                    versions: t.versions.clone(),
                    cipher_suites: t.cipher_suites.clone(),
                    key_exchange_groups: t.groups.clone(),
                }
            }),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("summary serializes: plain data, string keys")
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let conn_mode = if self.new_conn { "new connection per request" } else { "keep-alive" };
        let loop_mode = match self.rate {
            Some(r) => format!("open loop at {r} req/s (latency from intended send time)"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(s, "{} {}", self.method, self.target);
        let _ = writeln!(s, "  {} threads, {} connections, {conn_mode}, {loop_mode}", self.threads, self.connections);
        let _ = writeln!(
            s,
            "  measured {}s after {}s warmup; timeout {}s; expect {}",
            self.duration_s, self.warmup_s, self.timeout_s, self.expect_status
        );
        let _ = writeln!(s, "  command: {}", self.command);
        let _ = writeln!(s);
        let _ = writeln!(s, "  requests/s   {:.1}", self.requests_per_sec);
        let _ = writeln!(s, "  requests     {} ({} ok, {} errors)", self.requests, self.ok, self.errors["total"]);
        let _ = writeln!(s, "  bytes read   {}", self.bytes_read);
        let l = &self.latency_us;
        if l.count == 0 {
            let _ = writeln!(s, "  latency      no complete responses");
        } else {
            let _ = writeln!(s, "  latency (µs) over {} responses:", l.count);
        }
        for (name, v) in
            [("p50", l.p50), ("p90", l.p90), ("p99", l.p99), ("p99.9", l.p99_9), ("p99.99", l.p99_99), ("max", l.max)]
                .into_iter()
                .filter(|_| l.count > 0)
        {
            let _ = writeln!(s, "    {name:<7} {v:>10}");
        }
        if l.count > 0 {
            let _ = writeln!(s, "    {:<7} {:>10.1}", "mean", l.mean);
        }
        let _ = write!(s, "  errors      ");
        for k in ErrorKind::ALL {
            let _ = write!(s, " {} {}", k.name(), self.errors[k.name()]);
        }
        let _ = writeln!(s);
        for (kind, msg) in &self.error_samples {
            let _ = writeln!(s, "    first {kind} error: {msg}");
        }
        if let Some(t) = &self.tls {
            let _ = writeln!(
                s,
                "  TLS          {} handshakes in the window ({} full, {} resumed), {:.1}/s; {} in all phases; \
                 offered {}, verify {}{}",
                t.handshakes,
                t.full,
                t.resumed,
                t.handshakes_per_sec,
                t.handshakes_all_phases,
                t.version_offered,
                t.verify,
                if t.resume { ", resumption on" } else { "" }
            );
            let names = |m: &BTreeMap<&'static str, u64>| {
                m.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(
                s,
                "    negotiated {} / {} / {}",
                names(&t.versions),
                names(&t.cipher_suites),
                names(&t.key_exchange_groups)
            );
        }
        if !self.status_codes.is_empty() {
            let codes: Vec<String> = self.status_codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            let _ = writeln!(s, "  status codes {}", codes.join(", "));
        }
        if self.retried > 0 {
            let _ = writeln!(
                s,
                "  retried {} idempotent requests once, on a new connection: a reused connection closed before any \
                 response byte",
                self.retried
            );
        }
        if self.unfinished > 0 || self.unsent > 0 || l.clamped > 0 {
            let _ = writeln!(
                s,
                "  not counted: {} unfinished at stop, {} never sent (open loop backlog), \
                 {} latencies clamped to 60 s",
                self.unfinished, self.unsent, l.clamped
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Args, Plan};
    use clap::Parser;
    use std::time::Duration;

    fn summary() -> Summary {
        let args = Args::try_parse_from(["shardgate-load", "-d", "2s", "http://127.0.0.1:1/"]).unwrap();
        let plan = Plan::from_args(args, "shardgate-load -d 2s http://127.0.0.1:1/".into()).unwrap();
        let mut stats = Stats::new();
        for i in 1..=100 {
            stats.record_response(Duration::from_micros(i), 200, 10, true);
        }
        stats.record_response(Duration::from_micros(50), 503, 10, false);
        stats.record_failure(ErrorKind::Io, &"reset");
        Summary::new(&plan, &stats)
    }

    #[test]
    fn json_has_exactly_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&summary().to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = JSON_FIELDS.to_vec();
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want);
        let errors: Vec<&str> = v["errors"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(errors, ["connect", "io", "protocol", "status", "timeout", "tls", "total"]);
        // serde_json's map is sorted by key, so compare sorted.
        let lat: Vec<&str> = v["latency_us"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want_lat = ["count", "min", "mean", "p50", "p90", "p99", "p99_9", "p99_99", "max", "clamped"];
        want_lat.sort();
        assert_eq!(lat, want_lat);
    }

    #[test]
    fn counts_add_up() {
        let s = summary();
        assert_eq!(s.requests, 102);
        assert_eq!(s.ok, 100);
        assert_eq!(s.errors["status"], 1);
        assert_eq!(s.errors["io"], 1);
        assert_eq!(s.errors["total"], 2);
        assert_eq!(s.requests_per_sec, 51.0);
        assert_eq!(s.bytes_read, 1010);
        assert_eq!(s.status_codes["503"], 1);
        assert_eq!(s.latency_us.count, 101);
        assert_eq!(s.latency_us.max, 100);
        assert_eq!(s.mode, "closed");
        assert_eq!(s.error_samples["io"], "reset");
        assert_eq!(s.error_samples["status"], "status 503");
        assert!(!s.error_samples.contains_key("connect"));
    }

    #[test]
    fn text_names_every_number() {
        let t = summary().to_text();
        for needle in [
            "requests/s",
            "p50",
            "p90",
            "p99 ",
            "p99.9 ",
            "p99.99",
            "max",
            "bytes read",
            "connect 0",
            "tls 0",
            "timeout 0",
            "status 1",
            "protocol 0",
            "io 1",
            "command:",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }
}
