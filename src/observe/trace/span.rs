//! A finished request as an OTLP span, encoded in the OTLP/HTTP JSON
//! form (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>):
//! lowerCamelCase field names, trace and span ids as lowercase hex, enums
//! as integers, 64-bit integers as decimal strings.
//!
//! Where it sits: `ShardTrace::record` (the record step) makes a [`Span`]
//! of a sampled request and appends its JSON to the shard's batch; the
//! exporter thread wraps a batch in its resource envelope (`export.rs`).
//!
//! Attributes follow the OpenTelemetry HTTP server conventions where one
//! exists (`http.request.method`, `url.path`, `http.response.status_code`,
//! `server.address`, `client.address`, `error.type`), `shardgate.*`
//! otherwise; the timings are `shardgate.duration.*` attributes, seconds.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::context::hex_from;
use super::TraceContext;
use crate::downstream::outcome::Timings;
use crate::observe::record::Record;

/// OTLP `SpanKind` SERVER.
pub const KIND_SERVER: u8 = 2;
/// OTLP `StatusCode` ERROR (UNSET is 0 and written as no status).
pub const STATUS_ERROR: u8 = 2;

/// What one span says; borrowed from the record.
#[derive(Debug)]
pub struct Span<'a> {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub tracestate: &'a [u8],
    /// `None` when the head could not be parsed.
    pub method: Option<&'a [u8]>,
    pub path: &'a [u8],
    pub host: Option<&'a [u8]>,
    pub status: u16,
    pub listener: &'a str,
    pub route: Option<&'a str>,
    pub consumer: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub endpoint: Option<SocketAddr>,
    pub error: Option<&'static str>,
    pub request_id: &'a [u8],
    pub client: IpAddr,
    /// Unix nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
    pub timings: Timings,
}

impl<'a> Span<'a> {
    /// The span of a finished request; `now`/`now_instant` are one moment
    /// on the wall clock and the monotonic clock, to place the request's
    /// monotonic timings on the wall clock.
    pub fn of(r: &Record<'a>, t: &'a TraceContext, now: SystemTime, now_instant: Instant) -> Span<'a> {
        let config = r.generation.config();
        let o = r.outcome;
        let ago = now_instant.saturating_duration_since(o.timings.start);
        let start = now.checked_sub(ago).unwrap_or(now);
        let start_ns = start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Span {
            trace_id: t.trace_id,
            span_id: t.span_id,
            parent_id: t.parent_id,
            tracestate: &t.tracestate,
            method: r.head.map(|h| h.method_span.of(r.rbuf)),
            // Before routing (a request refused early) the normalised path
            // is not there yet: the target as sent, without its query.
            path: match (r.path, r.head) {
                (b"", Some(h)) => h.target.of(r.rbuf).split(|&b| b == b'?').next().unwrap_or(b""),
                (path, _) => path,
            },
            host: r.head.and_then(|h| h.host).map(|h| h.of(r.rbuf)),
            status: o.status,
            listener: config.listeners.get(r.listener).map_or("", |l| l.name.as_str()),
            route: o.route.and_then(|i| config.routes.get(i)).map(|r| r.name.as_str()),
            consumer: r.consumer,
            cluster: o.cluster.and_then(|i| config.clusters.get(i)).map(|c| c.name.as_str()),
            endpoint: o.endpoint.and_then(|e| config.clusters.get(e.cluster)?.endpoints.get(e.index).copied()),
            error: o.error.map(|e| e.name()),
            request_id: r.request_id,
            client: r.client,
            start_ns,
            end_ns: start_ns.saturating_add(o.timings.total.as_nanos() as u64),
            timings: o.timings,
        }
    }

    /// The span's JSON object, appended to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"traceId\":\"");
        push_hex(out, &self.trace_id);
        out.extend_from_slice(b"\",\"spanId\":\"");
        push_hex(out, &self.span_id);
        out.push(b'"');
        if let Some(parent) = &self.parent_id {
            out.extend_from_slice(b",\"parentSpanId\":\"");
            push_hex(out, parent);
            out.push(b'"');
        }
        if !self.tracestate.is_empty() {
            out.extend_from_slice(b",\"traceState\":");
            push_str(out, self.tracestate);
        }
        // "{method} {route}" (the HTTP conventions' low-cardinality name).
        out.extend_from_slice(b",\"name\":");
        let mut name = self.method.unwrap_or(b"HTTP").to_vec();
        if let Some(route) = self.route {
            name.push(b' ');
            name.extend_from_slice(route.as_bytes());
        }
        push_str(out, &name);
        out.extend_from_slice(format!(",\"kind\":{KIND_SERVER}").as_bytes());
        out.extend_from_slice(
            format!(",\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\"", self.start_ns, self.end_ns).as_bytes(),
        );
        out.extend_from_slice(b",\"attributes\":[");
        let mut a = Attributes { out, first: true };
        if let Some(m) = self.method {
            a.string("http.request.method", m);
        }
        if !self.path.is_empty() {
            a.string("url.path", self.path);
        }
        if self.status != 0 {
            a.int("http.response.status_code", self.status.into());
        }
        if let Some(host) = self.host {
            a.string("server.address", host_without_port(host));
        }
        a.string("client.address", self.client.to_string().as_bytes());
        a.string("shardgate.listener", self.listener.as_bytes());
        if let Some(route) = self.route {
            a.string("shardgate.route", route.as_bytes());
        }
        if let Some(consumer) = self.consumer {
            a.string("shardgate.consumer", consumer.as_bytes());
        }
        if let Some(cluster) = self.cluster {
            a.string("shardgate.cluster", cluster.as_bytes());
        }
        if let Some(endpoint) = self.endpoint {
            a.string("shardgate.endpoint", endpoint.to_string().as_bytes());
        }
        if let Some(error) = self.error {
            a.string("error.type", error.as_bytes());
        }
        a.string("shardgate.request_id", self.request_id);
        a.seconds("shardgate.duration.head_read", self.timings.head_read);
        if let Some(d) = self.timings.upstream_connect {
            a.seconds("shardgate.duration.upstream_connect", d);
        }
        if let Some(d) = self.timings.upstream_head {
            a.seconds("shardgate.duration.upstream_head", d);
        }
        a.seconds("shardgate.duration.total", self.timings.total);
        out.push(b']');
        // Server spans: 5xx is an error, 4xx is the client's (the HTTP
        // conventions); a request that failed with nothing sent is too.
        if self.status >= 500 || (self.status == 0 && self.error.is_some()) {
            out.extend_from_slice(format!(",\"status\":{{\"code\":{STATUS_ERROR}").as_bytes());
            if let Some(error) = self.error {
                out.extend_from_slice(b",\"message\":");
                push_str(out, error.as_bytes());
            }
            out.push(b'}');
        }
        out.push(b'}');
    }
}

/// `host:port` -> `host`; `[v6]:port` -> `v6`.
fn host_without_port(host: &[u8]) -> &[u8] {
    if let Some(rest) = host.strip_prefix(b"[") {
        return rest.split(|&b| b == b']').next().unwrap_or(rest);
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// The `attributes` array being written.
struct Attributes<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl Attributes<'_> {
    fn key(&mut self, key: &str, kind: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(b"{\"key\":\"");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\",\"value\":{\"");
        self.out.extend_from_slice(kind.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, key: &str, value: &[u8]) {
        self.key(key, "stringValue");
        push_str(self.out, value);
        self.out.extend_from_slice(b"}}");
    }

    fn int(&mut self, key: &str, value: i64) {
        self.key(key, "intValue");
        self.out.extend_from_slice(format!("\"{value}\"}}}}").as_bytes());
    }

    fn seconds(&mut self, key: &str, d: Duration) {
        self.key(key, "doubleValue");
        self.out.extend_from_slice(format!("{}}}}}", d.as_secs_f64()).as_bytes());
    }
}

pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let at = out.len();
    out.resize(at + bytes.len() * 2, 0);
    hex_from(&mut out[at..], bytes);
}

/// A JSON string of `bytes`: invalid UTF-8 becomes U+FFFD, control
/// characters, `"` and `\` are escaped.
pub fn push_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn span() -> Span<'static> {
        Span {
            trace_id: [0x4b; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_id: Some([0xaa; 8]),
            tracestate: b"a=1",
            method: Some(b"GET"),
            path: b"/api/\"x\"\\\x01\xff",
            host: Some(b"example.com:8080"),
            status: 502,
            listener: "main",
            route: Some("api"),
            consumer: Some("acme"),
            cluster: Some("backend"),
            endpoint: Some("127.0.0.1:9000".parse().unwrap()),
            error: Some("upstream_connect"),
            request_id: b"rid-1",
            client: "10.0.0.1".parse().unwrap(),
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_250_000_000,
            timings: Timings {
                start: Instant::now(),
                head_read: Duration::from_millis(1),
                upstream_connect: Some(Duration::from_millis(2)),
                upstream_head: None,
                total: Duration::from_millis(250),
            },
        }
    }

    fn json(s: &Span<'_>) -> Value {
        let mut out = Vec::new();
        s.encode(&mut out);
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    fn attr<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
        v["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| &a["value"])
    }

    #[test]
    fn encodes_an_otlp_json_span() {
        let v = json(&span());
        assert_eq!(v["traceId"], "4b".repeat(16));
        assert_eq!(v["spanId"], "0102030405060708");
        assert_eq!(v["parentSpanId"], "aa".repeat(8));
        assert_eq!(v["traceState"], "a=1");
        assert_eq!(v["name"], "GET api");
        assert_eq!(v["kind"], 2);
        assert_eq!(v["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(v["endTimeUnixNano"], "1700000000250000000");
        assert_eq!(attr(&v, "http.request.method").unwrap()["stringValue"], "GET");
        // Escaped, and invalid UTF-8 replaced: still one valid string.
        assert_eq!(attr(&v, "url.path").unwrap()["stringValue"], "/api/\"x\"\\\u{1}\u{fffd}");
        assert_eq!(attr(&v, "http.response.status_code").unwrap()["intValue"], "502");
        assert_eq!(attr(&v, "server.address").unwrap()["stringValue"], "example.com");
        assert_eq!(attr(&v, "client.address").unwrap()["stringValue"], "10.0.0.1");
        assert_eq!(attr(&v, "shardgate.route").unwrap()["stringValue"], "api");
        assert_eq!(attr(&v, "shardgate.consumer").unwrap()["stringValue"], "acme");
        assert_eq!(attr(&v, "shardgate.cluster").unwrap()["stringValue"], "backend");
        assert_eq!(attr(&v, "shardgate.endpoint").unwrap()["stringValue"], "127.0.0.1:9000");
        assert_eq!(attr(&v, "error.type").unwrap()["stringValue"], "upstream_connect");
        assert_eq!(attr(&v, "shardgate.request_id").unwrap()["stringValue"], "rid-1");
        assert_eq!(attr(&v, "shardgate.duration.upstream_connect").unwrap()["doubleValue"], 0.002);
        assert_eq!(attr(&v, "shardgate.duration.total").unwrap()["doubleValue"], 0.25);
        assert!(attr(&v, "shardgate.duration.upstream_head").is_none());
        assert_eq!(v["status"]["code"], 2);
        assert_eq!(v["status"]["message"], "upstream_connect");
    }

    #[test]
    fn a_root_span_without_error_has_no_parent_and_no_status() {
        let mut s = span();
        s.parent_id = None;
        s.tracestate = b"";
        s.status = 404;
        s.error = None;
        s.route = None;
        s.host = Some(b"[::1]:80");
        let v = json(&s);
        assert!(v.get("parentSpanId").is_none() && v.get("traceState").is_none() && v.get("status").is_none());
        assert_eq!(v["name"], "GET");
        assert_eq!(attr(&v, "server.address").unwrap()["stringValue"], "::1");
        // A request that failed before any response is an error.
        s.status = 0;
        s.error = Some("downstream_closed");
        s.method = None;
        let v = json(&s);
        assert_eq!(v["status"]["code"], 2);
        assert_eq!(v["name"], "HTTP");
        assert!(attr(&v, "http.response.status_code").is_none());
    }
}
