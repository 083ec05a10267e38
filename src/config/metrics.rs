//! `[metrics]`: whether the record step feeds the per-label counters and
//! the latency histograms `/metrics` and `/stats` report (on by default).
//! Off, a request skips that work (the bench compares the two); the
//! per-shard counters (`/stats`, `shardgate_shard_*`, connections, TLS)
//! are counted either way. A reload switches it: requests on the new
//! generation follow the new setting.
//!
//! File shape and runtime shape in one file: the section has one flag,
//! and serde already names the field path and line of a value that is not
//! a boolean.

use serde::Deserialize;

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    pub enabled: Option<bool>,
}

/// The metrics settings a generation runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    pub enabled: bool,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics { enabled: true }
    }
}

impl Metrics {
    pub(super) fn from_file(f: Option<&MetricsFile>) -> Metrics {
        Metrics { enabled: f.and_then(|f| f.enabled).unwrap_or(Metrics::default().enabled) }
    }

    /// The `shardgate check` line.
    pub(super) fn summary(&self) -> String {
        format!("metrics: enabled={}", self.enabled)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const LISTENER: &str = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n";

    #[test]
    fn on_by_default_off_when_asked_and_shown_by_check() {
        let on = Config::parse(LISTENER, "t.toml").unwrap();
        assert!(on.metrics.enabled);
        assert!(on.summary().contains("metrics: enabled=true"), "{}", on.summary());
        let off = Config::parse(&format!("[metrics]\nenabled = false\n{LISTENER}"), "t.toml").unwrap();
        assert!(!off.metrics.enabled);
        assert!(off.summary().contains("metrics: enabled=false"), "{}", off.summary());
    }

    #[test]
    fn a_wrong_value_or_key_names_the_field_and_line() {
        let errs = Config::parse(&format!("{LISTENER}[metrics]\nenabled = \"no\"\n"), "t.toml").unwrap_err();
        let text = errs.to_string();
        assert!(text.contains("metrics.enabled"), "{text}");
        assert!(text.contains("line 5"), "{text}");
        let errs = Config::parse(&format!("{LISTENER}[metrics]\nhistograms = false\n"), "t.toml").unwrap_err();
        assert!(errs.to_string().contains("histograms"), "{errs}");
    }
}
