//! `[clusters.outlier]`: passive outlier detection (Envoy's names), and
//! the cluster's `healthy_panic_threshold`, in all three stages of
//! `file -> validate -> Config`. Each shard applies it to its own traffic
//! (`upstream/health/outlier.rs`).
//!
//! ```toml
//! [clusters.outlier]
//! consecutive_5xx = 5               # 0 turns the rule off
//! consecutive_gateway_failure = 5   # refused, reset, timed out; 0 = off
//! base_ejection_time = "30s"        # x times ejected ...
//! max_ejection_time = "300s"        # ... capped here
//! max_ejection_percent = 10         # at least one endpoint may always be ejected
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::bounds::{check_count, check_duration, MAX_TIMEOUT, MIN_TIMEOUT};
use super::file::DurationText;
use super::spans::FieldPath;
use super::units::{fmt_duration, parse_duration};
use super::validate::Check;

pub const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
pub const DEFAULT_CONSECUTIVE_GATEWAY_FAILURE: u32 = 5;
pub const MAX_CONSECUTIVE: u32 = 1000;
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// Envoy's `healthy_panic_threshold` default (percent).
pub const DEFAULT_HEALTHY_PANIC_THRESHOLD: u32 = 50;

/// `[clusters.outlier]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    pub consecutive_5xx: Option<i64>,
    pub consecutive_gateway_failure: Option<i64>,
    pub base_ejection_time: Option<DurationText>,
    pub max_ejection_time: Option<DurationText>,
    pub max_ejection_percent: Option<i64>,
}

/// The validated `[clusters.outlier]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    /// Consecutive 5xx responses that eject an endpoint; 0 = never.
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (connection refused, connect timeout,
    /// reset or timeout before the response head, 502/503/504 from the
    /// upstream) that eject an endpoint; 0 = never.
    pub consecutive_gateway_failure: u32,
    /// An ejection lasts this times the number of times the endpoint was
    /// ejected ...
    pub base_ejection_time: Duration,
    /// ... at most this.
    pub max_ejection_time: Duration,
    /// At most this share of the cluster's endpoints is ejected at once
    /// (rounded down, but at least one endpoint of a cluster with two or
    /// more).
    pub max_ejection_percent: u32,
}

impl Outlier {
    /// How long the `times`-th ejection lasts (times >= 1).
    pub fn ejection_time(&self, times: u32) -> Duration {
        self.base_ejection_time.saturating_mul(times.max(1)).min(self.max_ejection_time)
    }

    /// How many of `len` endpoints may be ejected at once.
    pub fn max_ejected(&self, len: usize) -> usize {
        if len < 2 {
            return 0;
        }
        (len * self.max_ejection_percent as usize / 100).max(1)
    }

    /// For `shardgate check`.
    pub fn summary(&self) -> String {
        format!(
            "outlier: consecutive_5xx={} consecutive_gateway_failure={} base_ejection_time={} \
             max_ejection_time={} max_ejection_percent={}",
            self.consecutive_5xx,
            self.consecutive_gateway_failure,
            fmt_duration(self.base_ejection_time),
            fmt_duration(self.max_ejection_time),
            self.max_ejection_percent
        )
    }
}

impl Check<'_> {
    pub(super) fn outlier(&mut self, cluster: &FieldPath, f: &OutlierFile) -> Outlier {
        let path = cluster.key("outlier");
        let mut count = |key: &str, v: Option<i64>, max: u32, default: u32| {
            v.and_then(|n| self.ok(&path.key(key), check_count(n, 0, max as i64))).map_or(default, |n| n as u32)
        };
        let consecutive_5xx = count("consecutive_5xx", f.consecutive_5xx, MAX_CONSECUTIVE, DEFAULT_CONSECUTIVE_5XX);
        let consecutive_gateway_failure = count(
            "consecutive_gateway_failure",
            f.consecutive_gateway_failure,
            MAX_CONSECUTIVE,
            DEFAULT_CONSECUTIVE_GATEWAY_FAILURE,
        );
        let max_ejection_percent =
            count("max_ejection_percent", f.max_ejection_percent, 100, DEFAULT_MAX_EJECTION_PERCENT);
        let mut duration = |key: &str, v: &Option<DurationText>| {
            let v = v.as_ref()?;
            let p = path.key(key);
            let d = self.ok(&p, parse_duration(&v.0))?;
            self.ok(&p, check_duration(d, MIN_TIMEOUT, MAX_TIMEOUT))
        };
        let base = duration("base_ejection_time", &f.base_ejection_time);
        let max = duration("max_ejection_time", &f.max_ejection_time);
        let base_ejection_time = base.unwrap_or(DEFAULT_BASE_EJECTION_TIME);
        // Unwritten, the cap is at least the base.
        let max_ejection_time = max.unwrap_or(DEFAULT_MAX_EJECTION_TIME.max(base_ejection_time));
        if max_ejection_time < base_ejection_time {
            let msg = format!(
                "{} is shorter than base_ejection_time ({})",
                fmt_duration(max_ejection_time),
                fmt_duration(base_ejection_time)
            );
            self.error(&path.key("max_ejection_time"), msg);
        }
        Outlier {
            consecutive_5xx,
            consecutive_gateway_failure,
            base_ejection_time,
            max_ejection_time,
            max_ejection_percent,
        }
    }

    /// `healthy_panic_threshold` of cluster `path` (percent, 0 = never).
    pub(super) fn panic_threshold(&mut self, cluster: &FieldPath, v: Option<i64>) -> u32 {
        v.and_then(|n| self.ok(&cluster.key("healthy_panic_threshold"), check_count(n, 0, 100)))
            .map_or(DEFAULT_HEALTHY_PANIC_THRESHOLD, |n| n as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n\
                        [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n";

    fn load(cluster: &str, section: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{cluster}\n[clusters.outlier]\n{section}"), "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_every_field_and_ejection_arithmetic() {
        let c = Config::parse(BASE, "t.toml").unwrap();
        assert!(c.clusters[0].outlier.is_none());
        assert_eq!(c.clusters[0].healthy_panic_threshold, 50);
        let c = load("", "").unwrap();
        let o = c.clusters[0].outlier.as_ref().unwrap();
        assert_eq!((o.consecutive_5xx, o.consecutive_gateway_failure, o.max_ejection_percent), (5, 5, 10));
        assert_eq!((o.base_ejection_time, o.max_ejection_time), (Duration::from_secs(30), Duration::from_secs(300)));
        assert_eq!(o.ejection_time(1), Duration::from_secs(30));
        assert_eq!(o.ejection_time(4), Duration::from_secs(120));
        assert_eq!(o.ejection_time(40), Duration::from_secs(300), "capped");
        assert_eq!((o.max_ejected(1), o.max_ejected(2), o.max_ejected(10), o.max_ejected(35)), (0, 1, 1, 3));

        let c = load(
            "healthy_panic_threshold = 0",
            "consecutive_5xx = 0\nconsecutive_gateway_failure = 2\nbase_ejection_time = \"500ms\"\n\
             max_ejection_time = \"1s\"\nmax_ejection_percent = 100\n",
        )
        .unwrap();
        let o = c.clusters[0].outlier.as_ref().unwrap();
        assert_eq!(c.clusters[0].healthy_panic_threshold, 0);
        assert_eq!((o.consecutive_5xx, o.consecutive_gateway_failure, o.max_ejected(2)), (0, 2, 2));
        assert_eq!(o.ejection_time(3), Duration::from_secs(1));
        assert_eq!(
            o.summary(),
            "outlier: consecutive_5xx=0 consecutive_gateway_failure=2 base_ejection_time=500ms \
             max_ejection_time=1s max_ejection_percent=100"
        );
        let summary = c.summary();
        assert!(summary.contains(" healthy_panic_threshold=0\n  outlier: consecutive_5xx=0 "), "{summary}");
        // A long base with no cap written: the cap follows the base.
        let c = load("", "base_ejection_time = \"10m\"").unwrap();
        assert_eq!(c.clusters[0].outlier.as_ref().unwrap().max_ejection_time, Duration::from_secs(600));
    }

    #[test]
    fn errors_name_field_and_line() {
        // The base is 8 lines, a cluster line 9, the section header 10.
        let cases: &[(&str, &str, &str)] = &[
            (
                "",
                "consecutive_5xx = -1",
                "clusters[0].outlier.consecutive_5xx: -1 is out of range: allowed 0 to 1000 (line 11)",
            ),
            (
                "",
                "consecutive_gateway_failure = 1001",
                "clusters[0].outlier.consecutive_gateway_failure: 1001 is out of range",
            ),
            (
                "",
                "max_ejection_percent = 101",
                "clusters[0].outlier.max_ejection_percent: 101 is out of range: allowed 0 to 100",
            ),
            ("", "base_ejection_time = \"0s\"", "clusters[0].outlier.base_ejection_time: 0s is too short"),
            (
                "",
                "base_ejection_time = \"1m\"\nmax_ejection_time = \"30s\"",
                "clusters[0].outlier.max_ejection_time: 30s is shorter than base_ejection_time (1m) (line 12)",
            ),
            (
                "healthy_panic_threshold = 150",
                "",
                "clusters[0].healthy_panic_threshold: 150 is out of range: allowed 0 to 100 (line 9)",
            ),
            ("", "eject = true", "unknown field `eject`"),
        ];
        for (cluster, text, want) in cases {
            let err = load(cluster, text).expect_err(text);
            assert!(err.contains(want), "{text}: got {err}");
        }
    }
}
