//! `[tracing]`: W3C trace context and OTLP span export, in all three
//! stages of `file -> validate -> Config` (the file shape, its checks, the
//! runtime [`Tracing`]), kept together because nothing else reads them.
//!
//! ```toml
//! [tracing]
//! enabled = true
//! sample_ratio = 0.1              # 0..1, for traces the proxy starts
//! trust_incoming = "trusted"      # "any" | "trusted" | "none"
//! otlp_endpoint = "http://127.0.0.1:4318"   # POST /v1/traces; http only
//! service_name = "shardgate"
//! batch_size = 512                # spans per export request
//! flush_interval = "1s"           # a shard's partial batch waits at most this
//! queue_size = 64                 # batches waiting for the exporter
//! export_timeout = "2s"           # each of connect, write, read
//! ```
//!
//! Only `http://` collector URLs: the exporter speaks plain HTTP/1.1 (a
//! collector is normally a local agent or sidecar). A URL without a path
//! gets the OTLP default `/v1/traces`; a URL with one is used as written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::bounds::{check_count, check_duration, MAX_TIMEOUT};
use super::file::DurationText;
use super::spans::FieldPath;
use super::units::{fmt_duration, parse_duration};
use super::validate::Check;
use super::values::resolve_endpoint;

pub const DEFAULT_SERVICE_NAME: &str = "shardgate";
pub const DEFAULT_BATCH_SIZE: usize = 512;
pub const MIN_BATCH_SIZE: usize = 1;
pub const MAX_BATCH_SIZE: usize = 65_536;
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A shorter interval would send many tiny export requests.
pub const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(10);
pub const DEFAULT_QUEUE_SIZE: usize = 64;
pub const MIN_QUEUE_SIZE: usize = 1;
pub const MAX_QUEUE_SIZE: usize = 65_536;
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(2);
/// The OTLP/HTTP path for traces, appended to a URL without a path.
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

/// `[tracing]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    pub enabled: Option<bool>,
    pub sample_ratio: Option<f64>,
    pub trust_incoming: Option<String>,
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub batch_size: Option<i64>,
    pub flush_interval: Option<DurationText>,
    pub queue_size: Option<i64>,
    pub export_timeout: Option<DurationText>,
}

/// Whose `traceparent` the proxy continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustIncoming {
    /// Every client's.
    Any,
    /// Only from peers in the listener's `trusted_proxies`; anyone else's
    /// trace context is replaced by a new trace.
    Trusted,
    /// Never: every request starts a trace.
    None,
}

impl TrustIncoming {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustIncoming::Any => "any",
            TrustIncoming::Trusted => "trusted",
            TrustIncoming::None => "none",
        }
    }
}

/// The validated `[tracing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// Off: the proxy neither reads nor writes trace context (a client's
    /// traceparent passes as any other header).
    pub enabled: bool,
    /// Share of the traces the proxy starts that are sampled.
    pub sample_ratio: f64,
    pub trust_incoming: TrustIncoming,
    /// Where sampled spans go; `None`: context is propagated, no span is
    /// exported.
    pub export: Option<Arc<OtlpExport>>,
    /// Spans a shard sends in one batch.
    pub batch_size: usize,
    /// A shard's partial batch is sent after at most this.
    pub flush_interval: Duration,
    /// Batches waiting for the exporter thread; a shard drops a batch when
    /// the queue is full. Read once, when the exporter starts.
    pub queue_size: usize,
}

/// The collector and what the exporter thread needs to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpExport {
    /// The URL as written (for `shardgate check`).
    pub url: String,
    pub addr: SocketAddr,
    /// `host[:port]` as written, for the `Host` header.
    pub host: String,
    pub path: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Each of connect, write and read.
    pub timeout: Duration,
}

impl Default for Tracing {
    fn default() -> Tracing {
        Tracing {
            enabled: false,
            sample_ratio: 1.0,
            trust_incoming: TrustIncoming::Trusted,
            export: None,
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            queue_size: DEFAULT_QUEUE_SIZE,
        }
    }
}

impl Tracing {
    /// One line for `shardgate check`.
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "tracing: off".to_owned();
        }
        let export = match &self.export {
            Some(e) => format!(
                "otlp_endpoint={} ({}{}) service_name={:?} export_timeout={}",
                e.url,
                e.addr,
                e.path,
                e.service_name,
                fmt_duration(e.timeout)
            ),
            None => "otlp_endpoint=none (context only, no spans exported)".to_owned(),
        };
        format!(
            "tracing: sample_ratio={} trust_incoming={} {export} batch_size={} flush_interval={} queue_size={}",
            self.sample_ratio,
            self.trust_incoming.as_str(),
            self.batch_size,
            fmt_duration(self.flush_interval),
            self.queue_size
        )
    }
}

/// `http://host:port[/path]` -> (host as written, path).
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            format!("{url:?}: https is not supported for the collector; use an http:// URL (a local agent)")
        } else {
            format!("{url:?} is not an http:// URL")
        });
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?}: write http://host:port[/path]"));
    }
    if path.contains(['?', '#', ' ']) || path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!("{url:?}: the path may not hold a query, a fragment or spaces"));
    }
    Ok((authority, path))
}

impl Check<'_> {
    pub(super) fn tracing(&mut self, f: Option<&TracingFile>) -> Tracing {
        let mut t = Tracing::default();
        let Some(f) = f else {
            return t;
        };
        let path = FieldPath::root("tracing");
        t.enabled = f.enabled.unwrap_or(true);
        if let Some(r) = f.sample_ratio {
            if (0.0..=1.0).contains(&r) {
                t.sample_ratio = r;
            } else {
                self.error(&path.key("sample_ratio"), format!("{r} is out of range: allowed 0 to 1"));
            }
        }
        match f.trust_incoming.as_deref() {
            None => {}
            Some("any") => t.trust_incoming = TrustIncoming::Any,
            Some("trusted") => t.trust_incoming = TrustIncoming::Trusted,
            Some("none") => t.trust_incoming = TrustIncoming::None,
            Some(other) => self.error(
                &path.key("trust_incoming"),
                format!("unknown trust_incoming {other:?}: use \"any\", \"trusted\" or \"none\""),
            ),
        }
        if let Some(n) = f.batch_size {
            let p = path.key("batch_size");
            if let Some(n) = self.ok(&p, check_count(n, MIN_BATCH_SIZE as i64, MAX_BATCH_SIZE as i64)) {
                t.batch_size = n as usize;
            }
        }
        if let Some(n) = f.queue_size {
            let p = path.key("queue_size");
            if let Some(n) = self.ok(&p, check_count(n, MIN_QUEUE_SIZE as i64, MAX_QUEUE_SIZE as i64)) {
                t.queue_size = n as usize;
            }
        }
        if let Some(d) = &f.flush_interval {
            let p = path.key("flush_interval");
            let d = self.ok(&p, parse_duration(&d.0)).and_then(|d| {
                let checked = check_duration(d, MIN_FLUSH_INTERVAL, MAX_TIMEOUT);
                self.ok(&p, checked)
            });
            t.flush_interval = d.unwrap_or(t.flush_interval);
        }
        let mut timeout = DEFAULT_EXPORT_TIMEOUT;
        if let Some(d) = &f.export_timeout {
            let p = path.key("export_timeout");
            let d = self.ok(&p, parse_duration(&d.0)).and_then(|d| {
                let checked = check_duration(d, super::bounds::MIN_TIMEOUT, MAX_TIMEOUT);
                self.ok(&p, checked)
            });
            timeout = d.unwrap_or(timeout);
        }
        let service_name = f.service_name.clone().unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        if service_name.is_empty() || service_name.chars().any(|c| c.is_control()) {
            self.error(&path.key("service_name"), "must not be empty or hold control characters");
        }
        if let Some(url) = &f.otlp_endpoint {
            let p = path.key("otlp_endpoint");
            if let Some((host, url_path)) = self.ok(&p, split_url(url)) {
                if let Some(addr) = self.ok(&p, resolve_endpoint(host)) {
                    let url_path = if url_path.is_empty() || url_path == "/" { OTLP_TRACES_PATH } else { url_path };
                    t.export = Some(Arc::new(OtlpExport {
                        url: url.clone(),
                        addr,
                        host: host.to_owned(),
                        path: url_path.to_owned(),
                        service_name,
                        timeout,
                    }));
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, TrustIncoming};

    const BASE: &str = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n";

    fn load(tracing: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}\n[tracing]\n{tracing}"), "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn absent_is_off_and_section_turns_it_on() {
        let c = Config::parse(BASE, "t.toml").unwrap();
        assert!(!c.tracing.enabled);
        assert_eq!(c.tracing.summary(), "tracing: off");
        let c = load("").unwrap();
        assert!(c.tracing.enabled);
        assert_eq!(c.tracing.trust_incoming, TrustIncoming::Trusted);
        assert!(c.tracing.export.is_none());
    }

    #[test]
    fn every_field() {
        let c = load(
            "enabled = true\nsample_ratio = 0.25\ntrust_incoming = \"any\"\n\
             otlp_endpoint = \"http://127.0.0.1:4318\"\nservice_name = \"edge\"\nbatch_size = 10\n\
             flush_interval = \"200ms\"\nqueue_size = 3\nexport_timeout = \"500ms\"\n",
        )
        .unwrap();
        let t = &c.tracing;
        assert_eq!((t.sample_ratio, t.trust_incoming, t.batch_size, t.queue_size), (0.25, TrustIncoming::Any, 10, 3));
        assert_eq!(t.flush_interval, std::time::Duration::from_millis(200));
        let e = t.export.as_ref().unwrap();
        assert_eq!(
            (e.addr.to_string().as_str(), e.path.as_str(), e.host.as_str()),
            ("127.0.0.1:4318", "/v1/traces", "127.0.0.1:4318")
        );
        assert_eq!(e.service_name, "edge");
        assert_eq!(e.timeout, std::time::Duration::from_millis(500));
        assert!(c
            .summary()
            .contains("tracing: sample_ratio=0.25 trust_incoming=any otlp_endpoint=http://127.0.0.1:4318"));
        // An explicit path is used as written; ratio 0 and 1 are allowed.
        let c = load("otlp_endpoint = \"http://localhost:9/otel/traces\"\nsample_ratio = 0").unwrap();
        assert_eq!(c.tracing.export.as_ref().unwrap().path, "/otel/traces");
        assert_eq!(c.tracing.sample_ratio, 0.0);
        assert!(load("sample_ratio = 1").is_ok());
    }

    #[test]
    fn errors_name_field_and_line() {
        // Line numbers: the base is 3 lines, a blank, then `[tracing]` on 5.
        let cases: &[(&str, &str)] = &[
            ("sample_ratio = 1.5", "tracing.sample_ratio: 1.5 is out of range: allowed 0 to 1 (line 6)"),
            ("sample_ratio = -0.1", "tracing.sample_ratio: -0.1 is out of range"),
            ("trust_incoming = \"all\"", "tracing.trust_incoming: unknown trust_incoming \"all\""),
            ("otlp_endpoint = \"https://c:4318\"", "tracing.otlp_endpoint: \"https://c:4318\": https is not supported"),
            ("otlp_endpoint = \"127.0.0.1:4318\"", "is not an http:// URL (line 6)"),
            ("otlp_endpoint = \"http://127.0.0.1\"", "tracing.otlp_endpoint: \"127.0.0.1\" has no port"),
            ("otlp_endpoint = \"http://127.0.0.1:1/x?y\"", "may not hold a query"),
            ("batch_size = 0", "tracing.batch_size: 0 is out of range"),
            ("queue_size = 100000", "tracing.queue_size: 100000 is out of range"),
            ("flush_interval = \"1ms\"", "tracing.flush_interval: 1ms is too short"),
            ("flush_interval = 5", "tracing.flush_interval"),
            ("export_timeout = \"0s\"", "tracing.export_timeout"),
            ("service_name = \"\"", "tracing.service_name: must not be empty"),
            ("bogus = 1", "unknown field `bogus`"),
        ];
        for (text, want) in cases {
            let err = load(text).expect_err(text);
            assert!(err.contains(want), "{text}: got {err}");
        }
    }
}
