//! Command line -> validated `Plan`.
//!
//! Short flags follow wrk/wrk2 (`-t -c -d -R -H`) so commands translate
//! one-to-one when comparing against them. Everything is checked here, so
//! the workers never meet a bad value.

use crate::request::RequestSpec;
use crate::target::{Scheme, Target};
use crate::tls::{TlsClient, TlsOptions, TlsVersion, Trust};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Most connections in one run: each holds a local port on the loopback,
/// and the ephemeral range has fewer than this.
pub const MAX_CONNECTIONS: usize = 60_000;
/// Most worker threads (one monoio runtime each).
pub const MAX_THREADS: usize = 1024;
/// `--timeout` may not exceed what the latency histogram can hold.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `--duration` / `--warmup`: a benchmark, not a soak test.
pub const MAX_PHASE: Duration = Duration::from_secs(24 * 3600);

#[derive(Parser, Debug)]
#[command(
    name = "shardgate-load",
    version,
    about = "HTTP/1.1 and HTTPS load generator: thread-per-core on monoio, closed loop or \
             coordinated-omission-corrected open loop (--rate)"
)]
pub struct Args {
    /// Target URL, e.g. http://127.0.0.1:8080/path or https://127.0.0.1:8443/.
    pub url: String,

    /// Worker threads, one monoio runtime each. Default: the number of
    /// --cpus given, else 1.
    #[arg(short = 't', long)]
    pub threads: Option<usize>,

    /// Pin threads to these CPUs, round-robin: e.g. `1` or `0,2-3`.
    #[arg(long, value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,

    /// Total connections, spread evenly over the threads.
    #[arg(short = 'c', long, default_value_t = 10)]
    pub connections: usize,

    /// Open a new connection for every request (sends `Connection: close`);
    /// with https, a TLS handshake per request (full unless --resume).
    #[arg(long)]
    pub new_conn: bool,

    /// https: trust the certificates in this PEM file (the server's
    /// certificate must chain to one and carry the server name).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub cacert: Option<PathBuf>,

    /// https: do not check the server's certificate (as `curl -k`); the
    /// handshake signature is still verified.
    #[arg(short = 'k', long)]
    pub insecure: bool,

    /// https: TLS versions offered: 1.2, 1.3 or any (both; servers pick 1.3).
    #[arg(long, default_value = "any", value_parser = TlsVersion::parse)]
    pub tls_version: TlsVersion,

    /// https: offer stored sessions when opening connections (abbreviated
    /// handshakes); default: every handshake is a full one.
    #[arg(long)]
    pub resume: bool,

    /// https: TLS server name (SNI, certificate check); default: the URL host.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,

    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,

    /// Extra request header `Name: value`; repeatable.
    #[arg(short = 'H', long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// Request body of this many bytes ('x'), sent with Content-Length.
    #[arg(long, default_value_t = 0)]
    pub body_size: usize,

    /// Measured time, e.g. 10s, 500ms, 2m.
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Time under load before measuring starts; not recorded.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Open loop at this many requests/s in total (split across
    /// connections); latency from intended send time. Omit for closed loop.
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,

    /// Status counted as success; any other is a `status` error.
    #[arg(long, default_value_t = 200)]
    pub expect_status: u16,

    /// Per-request timeout (connect included when a connection is opened).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Plan {
    pub target: Target,
    pub addr: SocketAddr,
    pub request: RequestSpec,
    /// The encoded request bytes.
    pub wire: Vec<u8>,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
    pub connections: usize,
    pub new_conn: bool,
    /// https only: the TLS flags, and the client built from them.
    pub tls_options: Option<TlsOptions>,
    pub tls: Option<TlsClient>,
    pub duration: Duration,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub expect_status: u16,
    pub timeout: Duration,
    pub json: bool,
    /// The command line, echoed in the report so every number carries the
    /// command that produced it.
    pub command: String,
}

impl Plan {
    pub fn from_args(args: Args, command: String) -> Result<Plan, String> {
        let target = Target::parse(&args.url).map_err(|e| e.to_string())?;
        let addr = target.resolve().map_err(|e| e.to_string())?;
        let cpus = args.cpus.as_ref().map(|c| c.0.clone());
        let threads = args.threads.unwrap_or_else(|| cpus.as_ref().map_or(1, |c| c.len()));
        if threads == 0 || threads > MAX_THREADS {
            return Err(format!("--threads must be 1..={MAX_THREADS}"));
        }
        if args.connections == 0 || args.connections > MAX_CONNECTIONS {
            return Err(format!("--connections must be 1..={MAX_CONNECTIONS}"));
        }
        if args.connections < threads {
            return Err(format!(
                "--connections {} is fewer than --threads {threads}: a thread would idle",
                args.connections
            ));
        }
        if let Some(r) = args.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number of requests/s".into());
            }
        }
        if args.duration.is_zero() || args.duration > MAX_PHASE {
            return Err(format!("--duration must be > 0 and <= {}s", MAX_PHASE.as_secs()));
        }
        if args.warmup > MAX_PHASE {
            return Err(format!("--warmup must be <= {}s", MAX_PHASE.as_secs()));
        }
        if args.timeout.is_zero() || args.timeout > MAX_TIMEOUT {
            return Err(format!("--timeout must be > 0 and <= {}s", MAX_TIMEOUT.as_secs()));
        }
        if !(100..=999).contains(&args.expect_status) {
            return Err("--expect-status must be a three-digit status code".into());
        }
        let tls_options = tls_options(&target, &args)?;
        let tls = match &tls_options {
            Some(o) => Some(TlsClient::new(o, target.bare_host())?),
            None => None,
        };
        let request =
            RequestSpec { method: args.method, headers: args.headers, body_size: args.body_size, close: args.new_conn };
        let wire = request.encode(&target).map_err(|e| e.to_string())?;
        Ok(Plan {
            target,
            addr,
            request,
            wire,
            threads,
            cpus,
            connections: args.connections,
            new_conn: args.new_conn,
            tls_options,
            tls,
            duration: args.duration,
            warmup: args.warmup,
            rate: args.rate,
            expect_status: args.expect_status,
            timeout: args.timeout,
            json: args.json,
            command,
        })
    }

    /// Connection indices (global, 0-based) owned by `thread`: an even
    /// split, the first `connections % threads` threads taking one extra.
    pub fn connections_of(&self, thread: usize) -> std::ops::Range<usize> {
        let base = self.connections / self.threads;
        let extra = self.connections % self.threads;
        let start = thread * base + thread.min(extra);
        let len = base + usize::from(thread < extra);
        start..start + len
    }

    /// CPU for `thread`, if pinning was asked for.
    pub fn cpu_of(&self, thread: usize) -> Option<usize> {
        self.cpus.as_ref().map(|c| c[thread % c.len()])
    }
}

/// The TLS flags of an https target; refused on an http one, where they
/// would silently mean nothing.
fn tls_options(target: &Target, args: &Args) -> Result<Option<TlsOptions>, String> {
    if target.scheme == Scheme::Http {
        let given = [
            ("--cacert", args.cacert.is_some()),
            ("--insecure", args.insecure),
            ("--tls-version", args.tls_version != TlsVersion::Any),
            ("--resume", args.resume),
            ("--server-name", args.server_name.is_some()),
        ];
        return match given.iter().find(|(_, set)| *set) {
            Some((flag, _)) => Err(format!("{flag} needs an https:// URL")),
            None => Ok(None),
        };
    }
    let trust = match (&args.cacert, args.insecure) {
        (Some(path), false) => Trust::CaFile(path.clone()),
        (None, true) => Trust::Insecure,
        _ => return Err("https:// needs --cacert FILE or --insecure".into()),
    };
    Ok(Some(TlsOptions {
        version: args.tls_version,
        trust,
        resume: args.resume,
        server_name: args.server_name.clone(),
    }))
}

/// `10s`, `500ms`, `2m`, `1.5s`, `250us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("bad duration {s:?}: expected e.g. 10s, 500ms, 2m"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("bad duration unit {unit:?} in {s:?}: use us, ms, s, m or h")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > MAX_PHASE.as_secs_f64() {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `1`, `0,2-3`: CPU ids, ranges inclusive, duplicates refused.
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let bad = || format!("bad CPU list {s:?}: expected e.g. 1 or 0,2-3");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?),
            None => {
                let n: usize = part.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo > hi || hi >= MAX_THREADS * 4 {
            return Err(bad());
        }
        for cpu in lo..=hi {
            if cpus.contains(&cpu) {
                return Err(format!("CPU {cpu} listed twice in {s:?}"));
            }
            cpus.push(cpu);
        }
    }
    Ok(CpuList(cpus))
}

/// `Name: value` -> (name, value); value trimmed of surrounding spaces.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("bad header {s:?}: expected 'Name: value'"))?;
    if name.is_empty() || name != name.trim() {
        return Err(format!("bad header name in {s:?}"));
    }
    Ok((name.to_string(), value.trim_matches([' ', '\t']).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(argv: &[&str]) -> Result<Plan, String> {
        let mut full = vec!["shardgate-load"];
        full.extend_from_slice(argv);
        let args = Args::try_parse_from(full).map_err(|e| e.to_string())?;
        Plan::from_args(args, argv.join(" "))
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("10s", Some(Duration::from_secs(10))),
            ("10", Some(Duration::from_secs(10))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("500ms", Some(Duration::from_millis(500))),
            ("250us", Some(Duration::from_micros(250))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("25h", None),
            ("s", None),
            ("10x", None),
            ("-1s", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s).ok(), *want, "{s}");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("1"), Ok(CpuList(vec![1])));
        assert_eq!(parse_cpu_list("0,2-3"), Ok(CpuList(vec![0, 2, 3])));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("1,1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(parse_header("X-Api-Key: abc:def"), Ok(("X-Api-Key".into(), "abc:def".into())));
        assert_eq!(parse_header("X-Empty:"), Ok(("X-Empty".into(), "".into())));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(" X: v").is_err());
    }

    #[test]
    fn defaults() {
        let p = plan(&["http://127.0.0.1:8080/"]).unwrap();
        assert_eq!((p.threads, p.connections), (1, 10));
        assert_eq!(p.duration, Duration::from_secs(10));
        assert_eq!(p.warmup, Duration::from_secs(2));
        assert_eq!(p.timeout, Duration::from_secs(5));
        assert_eq!(p.expect_status, 200);
        assert_eq!(p.rate, None);
        assert!(!p.new_conn && !p.json);
    }

    #[test]
    fn threads_follow_cpus_unless_given() {
        let p = plan(&["--cpus", "0,2-3", "-c", "6", "http://127.0.0.1:1/"]).unwrap();
        assert_eq!(p.threads, 3);
        assert_eq!(p.cpu_of(1), Some(2));
        let p = plan(&["--cpus", "1", "-t", "2", "http://127.0.0.1:1/"]).unwrap();
        assert_eq!((p.cpu_of(0), p.cpu_of(1)), (Some(1), Some(1)));
    }

    #[test]
    fn connections_split_evenly() {
        let p = plan(&["-t", "3", "-c", "10", "http://127.0.0.1:1/"]).unwrap();
        let ranges: Vec<_> = (0..3).map(|t| p.connections_of(t)).collect();
        assert_eq!(ranges, vec![0..4, 4..7, 7..10]);
    }

    #[test]
    fn full_command_parses() {
        let p = plan(&[
            "-t",
            "2",
            "-c",
            "4",
            "--new-conn",
            "-m",
            "POST",
            "-H",
            "X-A: 1",
            "-H",
            "X-B: 2",
            "--body-size",
            "16",
            "-d",
            "3s",
            "--warmup",
            "0s",
            "-R",
            "1000",
            "--expect-status",
            "201",
            "--timeout",
            "1s",
            "--json",
            "http://127.0.0.1:9/x",
        ])
        .unwrap();
        assert_eq!(p.request.headers.len(), 2);
        assert_eq!(p.rate, Some(1000.0));
        assert!(p.new_conn && p.json);
        assert!(p.wire.ends_with(b"Connection: close\r\n\r\nxxxxxxxxxxxxxxxx"));
    }

    #[test]
    fn limits_trip() {
        let url = "http://127.0.0.1:1/";
        assert!(plan(&["-t", "0", url]).is_err());
        assert!(plan(&["-t", "1025", "-c", "2000", url]).is_err());
        assert!(plan(&["-c", "0", url]).is_err());
        assert!(plan(&["-c", "60001", url]).is_err());
        assert!(plan(&["-c", "60000", url]).is_ok());
        assert!(plan(&["-t", "4", "-c", "2", url]).is_err());
        assert!(plan(&["-R", "0", url]).is_err());
        assert!(plan(&["-R", "NaN", url]).is_err());
        assert!(plan(&["-d", "0s", url]).is_err());
        assert!(plan(&["--timeout", "61s", url]).is_err());
        assert!(plan(&["--timeout", "60s", url]).is_ok());
        assert!(plan(&["--expect-status", "42", url]).is_err());
    }

    #[test]
    fn tls_flags_need_https_and_https_needs_a_trust_choice() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["https://127.0.0.1:1/"], Some("--cacert FILE or --insecure")),
            (&["-k", "http://127.0.0.1:1/"], Some("--insecure needs an https:// URL")),
            (&["--resume", "http://127.0.0.1:1/"], Some("--resume needs an https:// URL")),
            (&["--tls-version", "1.3", "http://127.0.0.1:1/"], Some("--tls-version needs")),
            (&["--tls-version", "1.1", "-k", "https://127.0.0.1:1/"], Some("bad TLS version")),
            (&["--cacert", "/nonexistent.pem", "https://127.0.0.1:1/"], Some("/nonexistent.pem")),
            (&["-k", "https://127.0.0.1:1/"], None),
            (&["-k", "--new-conn", "--resume", "--tls-version", "1.2", "https://127.0.0.1:1/"], None),
        ];
        for (argv, want) in cases {
            match (plan(argv), want) {
                (Ok(p), None) => assert!(p.tls.is_some() && p.tls_options.is_some(), "{argv:?}"),
                (Err(e), Some(w)) => assert!(e.contains(w), "{argv:?}: {e}"),
                (got, want) => panic!("{argv:?}: got {:?}, want {want:?}", got.map(|_| ())),
            }
        }
        let p = plan(&["http://127.0.0.1:1/"]).unwrap();
        assert!(p.tls.is_none() && p.tls_options.is_none());
        let p = plan(&["-k", "--resume", "--tls-version", "1.2", "https://127.0.0.1:1/"]).unwrap();
        let o = p.tls_options.unwrap();
        assert_eq!((o.version, o.trust, o.resume), (TlsVersion::V12, Trust::Insecure, true));
    }
}
