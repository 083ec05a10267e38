//! `[clusters.health_check]`: active health checks of a cluster's
//! endpoints, in all three stages of `file -> validate -> Config` (the
//! file shape, its checks, the runtime [`HealthCheck`]). The prober that
//! runs them is `upstream/health/`.
//!
//! ```toml
//! [clusters.health_check]
//! type = "http"                    # "http" | "tcp" (connect only)
//! method = "GET"                   # http only
//! path = "/healthz"                # http only; default "/"
//! host = "api.internal"            # http only; default the endpoint's host as written
//! expected_statuses = ["200-299", "404"]   # http only; default ["200-399"]
//! body_contains = "ok"             # http only; optional
//! interval = "5s"
//! timeout = "2s"                   # at most the interval
//! jitter = "500ms"                 # default 10 % of the interval
//! healthy_threshold = 2
//! unhealthy_threshold = 3
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::bounds::{check_count, check_duration, MAX_TIMEOUT, MIN_TIMEOUT};
use super::file::DurationText;
use super::spans::FieldPath;
use super::units::{fmt_duration, parse_duration};
use super::validate::Check;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Shorter intervals probe every endpoint dozens of times a second.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60 * 60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Jitter defaults to this share of the interval (percent).
pub const DEFAULT_JITTER_PERCENT: u32 = 10;
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
pub const MIN_THRESHOLD: u32 = 1;
pub const MAX_THRESHOLD: u32 = 1000;
/// Longest `body_contains`: the probe reads at most
/// `upstream::health::probe::MAX_PROBE_RESPONSE_BYTES` of the response.
pub const MAX_BODY_CONTAINS_BYTES: usize = 1024;
pub const DEFAULT_METHOD: &str = "GET";
pub const DEFAULT_PATH: &str = "/";
/// `expected_statuses` when not written: success and redirects (nginx
/// plus's `match` default, HAProxy's `http-check expect` default 2xx/3xx).
pub const DEFAULT_STATUSES: (u16, u16) = (200, 399);

/// `[clusters.health_check]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expected_statuses: Option<Vec<String>>,
    pub body_contains: Option<String>,
    pub interval: Option<DurationText>,
    pub timeout: Option<DurationText>,
    pub jitter: Option<DurationText>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A TCP connect (and the TLS handshake when the cluster speaks TLS).
    Tcp,
    Http(HttpProbe),
}

/// An HTTP/1.1 probe request and what its response must show.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpProbe {
    pub method: String,
    pub path: String,
    /// `None`: each endpoint's host as written (`Cluster::proxy_hosts`).
    pub host: Option<String>,
    /// Inclusive status ranges; a response passes when its status is in one.
    pub expected_statuses: Vec<(u16, u16)>,
    pub body_contains: Option<String>,
}

impl HttpProbe {
    pub fn expects(&self, status: u16) -> bool {
        self.expected_statuses.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

/// The validated `[clusters.health_check]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval: Duration,
    /// Each probe's whole time: connect, TLS, request, response.
    pub timeout: Duration,
    /// Up to this much is added to each interval at random, so probes of
    /// many endpoints do not fall in step.
    pub jitter: Duration,
    /// Consecutive passing probes that make an unhealthy endpoint healthy.
    pub healthy_threshold: u32,
    /// Consecutive failing probes that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

impl HealthCheck {
    /// For `shardgate check`.
    pub fn summary(&self) -> String {
        let probe = match &self.probe {
            Probe::Tcp => "tcp".to_owned(),
            Probe::Http(h) => {
                let statuses: Vec<String> = h
                    .expected_statuses
                    .iter()
                    .map(|&(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
                    .collect();
                let mut s = format!("http {} {} expect={}", h.method, h.path, statuses.join(","));
                if let Some(host) = &h.host {
                    s.push_str(&format!(" host={host:?}"));
                }
                if let Some(body) = &h.body_contains {
                    s.push_str(&format!(" body_contains={body:?}"));
                }
                s
            }
        };
        format!(
            "health_check: {probe} interval={} timeout={} jitter={} healthy_threshold={} unhealthy_threshold={}",
            fmt_duration(self.interval),
            fmt_duration(self.timeout),
            fmt_duration(self.jitter),
            self.healthy_threshold,
            self.unhealthy_threshold
        )
    }
}

/// `"200-299"` or `"404"` -> an inclusive range of statuses 100..=599.
fn status_range(text: &str) -> Result<(u16, u16), String> {
    let parse = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) => Ok(n),
            _ => Err(format!("{text:?}: write a status 100..599 or a range such as \"200-299\"")),
        }
    };
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let n = parse(text)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("{text:?}: the range is empty ({lo} > {hi})"));
    }
    Ok((lo, hi))
}

impl Check<'_> {
    /// The health check of cluster `path` (`clusters[i]`).
    pub(super) fn health_check(&mut self, cluster: &FieldPath, f: &HealthCheckFile) -> HealthCheck {
        let path = cluster.key("health_check");
        let http = match f.kind.as_deref() {
            None | Some("http") => true,
            Some("tcp") => false,
            Some(other) => {
                self.error(&path.key("type"), format!("unknown type {other:?}: use \"http\" or \"tcp\""));
                true
            }
        };
        if !http {
            let http_only = [
                ("method", f.method.is_some()),
                ("path", f.path.is_some()),
                ("host", f.host.is_some()),
                ("expected_statuses", f.expected_statuses.is_some()),
                ("body_contains", f.body_contains.is_some()),
            ];
            for (key, set) in http_only {
                if set {
                    self.error(&path.key(key), "only for type = \"http\"");
                }
            }
        }
        let method = f.method.clone().unwrap_or_else(|| DEFAULT_METHOD.to_owned());
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            self.error(&path.key("method"), format!("{method:?}: write an HTTP method in capitals, such as \"GET\""));
        }
        let probe_path = f.path.clone().unwrap_or_else(|| DEFAULT_PATH.to_owned());
        if !probe_path.starts_with('/') || !probe_path.bytes().all(|b| b.is_ascii_graphic()) {
            self.error(&path.key("path"), format!("{probe_path:?}: must start with / and hold no spaces or controls"));
        }
        if let Some(host) = &f.host {
            if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
                self.error(&path.key("host"), format!("{host:?}: must not be empty or hold spaces or controls"));
            }
        }
        let mut expected_statuses = Vec::new();
        match &f.expected_statuses {
            None => expected_statuses.push(DEFAULT_STATUSES),
            Some(list) if list.is_empty() => {
                self.error(&path.key("expected_statuses"), "an empty list: no response could pass")
            }
            Some(list) => {
                for (j, text) in list.iter().enumerate() {
                    if let Some(range) = self.ok(&path.key("expected_statuses").index(j), status_range(text)) {
                        expected_statuses.push(range);
                    }
                }
            }
        }
        if let Some(body) = &f.body_contains {
            if body.is_empty() || body.len() > MAX_BODY_CONTAINS_BYTES {
                let msg = format!("must hold 1 to {MAX_BODY_CONTAINS_BYTES} bytes (it has {})", body.len());
                self.error(&path.key("body_contains"), msg);
            }
        }
        let mut duration = |key: &str, v: &Option<DurationText>, min: Duration, max: Duration| {
            let v = v.as_ref()?;
            let p = path.key(key);
            let d = self.ok(&p, parse_duration(&v.0))?;
            self.ok(&p, check_duration(d, min, max))
        };
        let interval = duration("interval", &f.interval, MIN_INTERVAL, MAX_INTERVAL).unwrap_or(DEFAULT_INTERVAL);
        let timeout_written = duration("timeout", &f.timeout, MIN_TIMEOUT, MAX_TIMEOUT);
        let jitter = duration("jitter", &f.jitter, Duration::ZERO, MAX_INTERVAL)
            .unwrap_or(interval * DEFAULT_JITTER_PERCENT / 100);
        let timeout = timeout_written.unwrap_or(DEFAULT_TIMEOUT.min(interval));
        if timeout_written.is_some_and(|t| t > interval) {
            let msg = format!("{} is longer than the interval ({})", fmt_duration(timeout), fmt_duration(interval));
            self.error(&path.key("timeout"), msg);
        }
        let mut threshold = |key: &str, v: Option<i64>, default: u32| {
            v.and_then(|n| self.ok(&path.key(key), check_count(n, MIN_THRESHOLD as i64, MAX_THRESHOLD as i64)))
                .map_or(default, |n| n as u32)
        };
        let healthy_threshold = threshold("healthy_threshold", f.healthy_threshold, DEFAULT_HEALTHY_THRESHOLD);
        let unhealthy_threshold = threshold("unhealthy_threshold", f.unhealthy_threshold, DEFAULT_UNHEALTHY_THRESHOLD);
        let probe = match http {
            false => Probe::Tcp,
            true => Probe::Http(HttpProbe {
                method,
                path: probe_path,
                host: f.host.clone(),
                expected_statuses,
                body_contains: f.body_contains.clone(),
            }),
        };
        HealthCheck { probe, interval, timeout, jitter, healthy_threshold, unhealthy_threshold }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n\
                        [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n";

    fn load(section: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}[clusters.health_check]\n{section}"), "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_every_field() {
        let c = load("").unwrap();
        let h = c.clusters[0].health_check.as_ref().unwrap();
        assert_eq!((h.interval, h.timeout, h.jitter), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Duration::from_millis(500)));
        assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (2, 3));
        let Probe::Http(p) = &h.probe else { panic!("http by default") };
        assert_eq!((p.method.as_str(), p.path.as_str(), p.host.as_deref()), ("GET", "/", None));
        assert!(p.expects(200) && p.expects(399) && !p.expects(404) && !p.expects(500));

        let c = load(
            "type = \"http\"\nmethod = \"HEAD\"\npath = \"/healthz?full=1\"\nhost = \"api\"\n\
             expected_statuses = [\"200-299\", \"404\"]\nbody_contains = \"ok\"\ninterval = \"200ms\"\n\
             timeout = \"100ms\"\njitter = \"0s\"\nhealthy_threshold = 1\nunhealthy_threshold = 5\n",
        )
        .unwrap();
        let h = c.clusters[0].health_check.as_ref().unwrap();
        let Probe::Http(p) = &h.probe else { panic!() };
        assert!(p.expects(204) && p.expects(404) && !p.expects(301));
        assert_eq!(p.body_contains.as_deref(), Some("ok"));
        assert_eq!(
            (h.interval, h.timeout, h.jitter),
            (Duration::from_millis(200), Duration::from_millis(100), Duration::ZERO)
        );
        assert_eq!(
            h.summary(),
            "health_check: http HEAD /healthz?full=1 expect=200-299,404 host=\"api\" body_contains=\"ok\" \
             interval=200ms timeout=100ms jitter=0s healthy_threshold=1 unhealthy_threshold=5"
        );
        assert!(
            c.summary().contains("\n  health_check: http HEAD /healthz?full=1 expect=200-299,404"),
            "{}",
            c.summary()
        );
        // A short interval without a timeout: the timeout is the interval.
        let c = load("type = \"tcp\"\ninterval = \"500ms\"\n").unwrap();
        let h = c.clusters[0].health_check.as_ref().unwrap();
        assert_eq!((h.probe.clone(), h.timeout), (Probe::Tcp, Duration::from_millis(500)));
    }

    #[test]
    fn errors_name_field_and_line() {
        // The base is 8 lines, the section header line 9: fields from 10.
        let cases: &[(&str, &str)] = &[
            (
                "type = \"udp\"",
                "clusters[0].health_check.type: unknown type \"udp\": use \"http\" or \"tcp\" (line 10)",
            ),
            ("type = \"tcp\"\npath = \"/x\"", "clusters[0].health_check.path: only for type = \"http\" (line 11)"),
            ("method = \"get\"", "clusters[0].health_check.method: \"get\": write an HTTP method in capitals"),
            ("path = \"healthz\"", "clusters[0].health_check.path: \"healthz\": must start with /"),
            ("host = \"a b\"", "clusters[0].health_check.host"),
            ("expected_statuses = []", "clusters[0].health_check.expected_statuses: an empty list"),
            ("expected_statuses = [\"200\", \"299-200\"]", "expected_statuses[1]: \"299-200\": the range is empty"),
            ("expected_statuses = [\"2xx\"]", "expected_statuses[0]: \"2xx\": write a status 100..599"),
            ("expected_statuses = [\"600\"]", "expected_statuses[0]: \"600\""),
            ("body_contains = \"\"", "clusters[0].health_check.body_contains: must hold 1 to 1024 bytes"),
            ("interval = \"1ms\"", "clusters[0].health_check.interval: 1ms is too short: at least 10ms"),
            (
                "interval = \"1s\"\ntimeout = \"2s\"",
                "clusters[0].health_check.timeout: 2s is longer than the interval (1s)",
            ),
            (
                "healthy_threshold = 0",
                "clusters[0].health_check.healthy_threshold: 0 is out of range: allowed 1 to 1000",
            ),
            ("unhealthy_threshold = -1", "unhealthy_threshold: -1 is out of range"),
            ("bogus = 1", "unknown field `bogus`"),
        ];
        for (text, want) in cases {
            let err = load(text).expect_err(text);
            assert!(err.contains(want), "{text}: got {err}");
        }
    }
}
