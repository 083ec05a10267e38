//! Tracing: W3C trace context as the upstream sees it (continued,
//! replaced, started; trusted or not), and the spans a small OTLP/HTTP
//! collector started by the test receives — or does not, when sampling
//! says no or the collector is down or silent, which must never cost a
//! request anything.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::proxy::{json_u64, shardgate_output};
use crate::harness::tempdir::TempDir;
use crate::harness::upstream::{refusing_addr, Blackhole};
use crate::harness::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const SAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A collector: an HTTP server thread that records every POST's path and
/// JSON body and answers 200.
struct Collector {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the collector");
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let seen = posts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some((head, body)) = read_request(&mut conn) {
                    let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                        panic!("collector got invalid JSON ({e}): {}", String::from_utf8_lossy(&body))
                    });
                    let request_line = head.lines().next().unwrap_or("").to_string();
                    seen.lock().unwrap().push((request_line, head, json));
                }
                let _ =
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
            }
        });
        Collector { addr, posts }
    }

    /// Every span received so far, in arrival order.
    fn spans(&self) -> Vec<Value> {
        let posts = self.posts.lock().unwrap();
        let mut spans = Vec::new();
        for (_, _, body) in posts.iter() {
            for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        spans
    }

    fn wait_for_spans(&self, n: usize) -> Vec<Value> {
        assert!(
            eventually(Duration::from_secs(10), || self.spans().len() >= n),
            "{} spans, want {n}",
            self.spans().len()
        );
        self.spans()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
                .map_or(0, |(_, v)| v.trim().parse().unwrap_or(0));
            if got.len() >= end + 4 + len {
                return Some((head, got[end + 4..end + 4 + len].to_vec()));
            }
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The proxy with `config`, plus a `[tracing]` section of `lines`.
fn start(config: &ProxyConfig, lines: &str) -> Proxy {
    let text = format!("{}\n[tracing]\n{lines}\n", config.to_toml());
    let names = config.listener_names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Proxy::run_toml(&text, &names)
}

fn get_with(addr: SocketAddr, path: &str, headers: &str) -> Response {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n{headers}Connection: close\r\n\r\n");
    Client::connect(addr).request(raw.as_bytes())
}

/// `(version, trace id, parent id, flags)` of the one traceparent the
/// upstream got; panics unless there is exactly one, well-formed.
fn upstream_traceparent(request: &harness::upstream::Request) -> (String, String, String, String) {
    let all = request.header_all("traceparent");
    assert_eq!(all.len(), 1, "one traceparent upstream: {:?}", String::from_utf8_lossy(&request.raw_head));
    let parts: Vec<&str> = all[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{}", all[0]);
    assert!(
        all[0].len() == 55 && all[0].bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    (parts[0].into(), parts[1].into(), parts[2].into(), parts[3].into())
}

use crate::harness;

fn tracing_stats(proxy: &Proxy) -> (u64, u64) {
    let json = proxy.stats_json();
    let at = json.find("\"tracing\":").unwrap_or_else(|| panic!("no tracing in /stats: {json}"));
    let object = &json[at..];
    (json_u64(object, "spans_exported").unwrap(), json_u64(object, "spans_dropped").unwrap())
}

#[test]
fn an_incoming_trace_is_continued_with_the_proxys_span_as_parent() {
    let upstream = Upstream::ok("ok");
    let proxy = start(&ProxyConfig::new().everything_to(upstream.addr()), "trust_incoming = \"any\"\nsample_ratio = 0");

    let response = get_with(
        proxy.addr(),
        "/a",
        &format!("traceparent: {SAMPLED_PARENT}\r\ntracestate: rojo=00f067aa0ba902b7, congo=t61rcWkgMzE\r\n"),
    );

    assert_eq!(response.status, 200);
    let request = upstream.only_request();
    let (version, trace_id, parent_id, flags) = upstream_traceparent(&request);
    assert_eq!((version.as_str(), trace_id.as_str()), ("00", TRACE_ID));
    assert_ne!(parent_id, PARENT_ID, "the proxy is a hop: its own span id is the parent upstream");
    assert_ne!(parent_id, "0000000000000000");
    // The caller's sampled flag is kept, whatever the ratio.
    assert_eq!(flags, "01");
    assert_eq!(request.header_all("tracestate"), ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]);
}

#[test]
fn an_invalid_or_repeated_traceparent_is_replaced_never_forwarded() {
    let upstream = Upstream::ok("ok");
    let proxy = start(&ProxyConfig::new().everything_to(upstream.addr()), "trust_incoming = \"any\"\nsample_ratio = 1");
    let cases = [
        format!("traceparent: {}\r\ntracestate: a=1\r\n", SAMPLED_PARENT.to_uppercase()),
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n".to_string(),
        format!("traceparent: {SAMPLED_PARENT}-extra\r\n"),
        "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n".to_string(),
        format!("traceparent: {SAMPLED_PARENT}\r\ntraceparent: {SAMPLED_PARENT}\r\n"),
    ];
    for headers in &cases {
        assert_eq!(get_with(proxy.addr(), "/", headers).status, 200);
    }

    let requests = upstream.wait_for_requests(cases.len());
    for (request, sent) in requests.iter().zip(&cases) {
        let (version, trace_id, _, flags) = upstream_traceparent(request);
        assert_eq!(version, "00", "{sent}");
        assert_ne!(trace_id.to_lowercase(), TRACE_ID, "{sent}: the client's trace went on");
        assert_ne!(trace_id, "00000000000000000000000000000000");
        assert_eq!(flags, "01", "a new trace sampled at ratio 1");
        assert!(!request.has_header("tracestate"), "{sent}: a replaced trace's tracestate went on");
    }
    // A new trace per request.
    let ids: std::collections::HashSet<String> = requests.iter().map(|r| upstream_traceparent(r).1).collect();
    assert_eq!(ids.len(), cases.len());
}

#[test]
fn an_untrusted_clients_trace_is_ignored_when_trust_is_trusted() {
    let upstream = Upstream::ok("ok");
    let untrusted = ProxyConfig::new().everything_to(upstream.addr());
    let trusted = ProxyConfig::new()
        .listener_option("main", "trusted_proxies = [\"127.0.0.1/32\"]")
        .everything_to(upstream.addr());
    let headers = format!("traceparent: {SAMPLED_PARENT}\r\ntracestate: a=1\r\n");

    let proxy = start(&untrusted, "trust_incoming = \"trusted\"\nsample_ratio = 0");
    assert_eq!(get_with(proxy.addr(), "/", &headers).status, 200);
    let request = upstream.wait_for_requests(1).remove(0);
    let (_, trace_id, _, flags) = upstream_traceparent(&request);
    assert_ne!(trace_id, TRACE_ID, "an untrusted client's trace was continued");
    assert_eq!(flags, "00", "a new trace at ratio 0 is not sampled");
    assert!(!request.has_header("tracestate"));
    drop(proxy);

    let proxy = start(&trusted, "trust_incoming = \"trusted\"\nsample_ratio = 0");
    assert_eq!(get_with(proxy.addr(), "/", &headers).status, 200);
    let request = upstream.wait_for_requests(2).remove(1);
    let (_, trace_id, parent_id, flags) = upstream_traceparent(&request);
    assert_eq!((trace_id.as_str(), flags.as_str()), (TRACE_ID, "01"), "a trusted proxy's trace is continued");
    assert_ne!(parent_id, PARENT_ID);
    assert_eq!(request.header_all("tracestate"), ["a=1"]);
}

#[test]
fn without_tracing_the_clients_fields_pass_untouched() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let bogus = "traceparent: not-a-trace\r\n";
    assert_eq!(get_with(proxy.addr(), "/", bogus).status, 200);
    assert_eq!(upstream.only_request().header_all("traceparent"), ["not-a-trace"]);
}

#[test]
fn sampled_requests_spans_reach_the_collector_with_their_attributes() {
    let collector = Collector::start();
    let upstream = Upstream::start(|r| if r.target == "/teapot" { Reply::status(503, "no") } else { Reply::ok("ok") });
    let config = ProxyConfig::new()
        .cluster("backend", &[upstream.addr()])
        .cluster("gone", &[refusing_addr()])
        .route(Route::new("down").path_prefix("/down").cluster("gone"))
        .route(Route::new("all").path_prefix("/").cluster("backend"));
    let proxy = start(
        &config,
        &format!(
            "sample_ratio = 1\ntrust_incoming = \"any\"\notlp_endpoint = \"http://{}\"\nservice_name = \"edge-test\"\n\
             batch_size = 100\nflush_interval = \"100ms\"",
            collector.addr
        ),
    );

    assert_eq!(get_with(proxy.addr(), "/hello?q=1", &format!("traceparent: {SAMPLED_PARENT}\r\n")).status, 200);
    assert_eq!(get_with(proxy.addr(), "/teapot", "").status, 503);
    assert_eq!(get_with(proxy.addr(), "/down/x", "").status, 502);

    let spans = collector.wait_for_spans(3);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    {
        let posts = collector.posts.lock().unwrap();
        let (line, head, body) = &posts[0];
        assert_eq!(line, "POST /v1/traces HTTP/1.1");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        let resource = &body["resourceSpans"][0]["resource"]["attributes"][0];
        assert_eq!(
            (resource["key"].as_str(), resource["value"]["stringValue"].as_str()),
            (Some("service.name"), Some("edge-test"))
        );
    }
    let attr = |span: &Value, key: &str| -> Value {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map_or(Value::Null, |a| a["value"].clone())
    };
    let by_path = |path: &str| {
        spans
            .iter()
            .find(|s| attr(s, "url.path")["stringValue"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("no span for {path}: {spans:#?}"))
    };
    let upstream_requests = upstream.wait_for_requests(2);

    // The continued trace: the caller's span is the parent, the proxy's
    // span is the parent the upstream saw.
    let hello = by_path("/hello");
    assert_eq!(hello["traceId"], TRACE_ID);
    assert_eq!(hello["parentSpanId"], PARENT_ID);
    let (_, _, upstream_parent, _) = upstream_traceparent(&upstream_requests[0]);
    assert_eq!(hello["spanId"], upstream_parent.as_str());
    assert_eq!(hello["kind"], 2);
    assert_eq!(hello["name"], "GET all");
    assert_eq!(attr(&hello, "http.request.method")["stringValue"], "GET");
    assert_eq!(attr(&hello, "http.response.status_code")["intValue"], "200");
    assert_eq!(attr(&hello, "server.address")["stringValue"], "app.test");
    assert_eq!(attr(&hello, "shardgate.route")["stringValue"], "all");
    assert_eq!(attr(&hello, "shardgate.cluster")["stringValue"], "backend");
    assert_eq!(attr(&hello, "shardgate.endpoint")["stringValue"], upstream.addr().to_string());
    assert_eq!(
        attr(&hello, "shardgate.request_id")["stringValue"].as_str(),
        upstream_requests[0].header("x-request-id"),
        "the span names the request id the upstream got"
    );
    assert!(hello.get("status").is_none(), "a 200 is not an error: {hello}");
    let start: u64 = hello["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u64 = hello["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert!(start <= end && end <= now && now - start < 60_000_000_000, "{start}..{end} (now {now})");
    assert!(attr(&hello, "shardgate.duration.total")["doubleValue"].as_f64().unwrap() >= 0.0);
    assert!(attr(&hello, "shardgate.duration.upstream_head")["doubleValue"].is_f64(), "{hello}");

    // A trace the proxy started: no parent; a 5xx span is an error.
    let teapot = by_path("/teapot");
    assert!(teapot.get("parentSpanId").is_none());
    assert_ne!(teapot["traceId"], TRACE_ID);
    let (_, upstream_trace, _, _) = upstream_traceparent(&upstream_requests[1]);
    assert_eq!(teapot["traceId"], upstream_trace.as_str());
    assert_eq!(attr(&teapot, "http.response.status_code")["intValue"], "503");
    assert_eq!(teapot["status"]["code"], 2);

    let down = by_path("/down/x");
    assert_eq!(attr(&down, "http.response.status_code")["intValue"], "502");
    assert_eq!(attr(&down, "shardgate.cluster")["stringValue"], "gone");
    assert!(attr(&down, "error.type")["stringValue"].is_string(), "{down}");
    assert_eq!(down["status"]["code"], 2);

    assert!(eventually(Duration::from_secs(5), || tracing_stats(&proxy) == (3, 0)), "{:?}", tracing_stats(&proxy));
}

#[test]
fn ratio_zero_exports_nothing_but_still_passes_a_traceparent() {
    let collector = Collector::start();
    let upstream = Upstream::ok("ok");
    let proxy = start(
        &ProxyConfig::new().everything_to(upstream.addr()),
        &format!(
            "sample_ratio = 0\notlp_endpoint = \"http://{}\"\nflush_interval = \"50ms\"\nbatch_size = 1",
            collector.addr
        ),
    );

    for _ in 0..20 {
        assert_eq!(get_with(proxy.addr(), "/", "").status, 200);
    }

    for request in upstream.wait_for_requests(20) {
        let (_, _, _, flags) = upstream_traceparent(&request);
        assert_eq!(flags, "00");
    }
    // Well past the flush interval: still nothing.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(collector.spans().len(), 0);
    assert_eq!(tracing_stats(&proxy), (0, 0));
}

/// Sends `n` requests one after another; all must succeed.
fn requests_all_succeed(proxy: &Proxy, n: usize) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        let response = get_with(proxy.addr(), &format!("/r{i}"), "");
        assert_eq!(response.status, 200, "request {i}");
    }
    started.elapsed()
}

#[test]
fn a_down_collector_costs_dropped_spans_not_requests() {
    let upstream = Upstream::ok("ok");
    let proxy = start(
        &ProxyConfig::new().everything_to(upstream.addr()),
        &format!("sample_ratio = 1\notlp_endpoint = \"http://{}\"\nbatch_size = 1", refusing_addr()),
    );

    requests_all_succeed(&proxy, 30);

    assert!(
        eventually(Duration::from_secs(10), || tracing_stats(&proxy).1 >= 30),
        "dropped spans not counted: {:?}",
        tracing_stats(&proxy)
    );
    assert_eq!(tracing_stats(&proxy).0, 0);
    assert!(proxy.log().contains("span export failed"), "{}", proxy.log());
}

#[test]
fn a_collector_that_never_answers_costs_dropped_spans_not_latency() {
    let silent = Blackhole::silent();
    let upstream = Upstream::ok("ok");
    // One queue slot and a long timeout: the exporter is stuck on the
    // first batch, the next fills the queue, and every other one is
    // dropped by the shard without waiting.
    let proxy = start(
        &ProxyConfig::new().everything_to(upstream.addr()),
        &format!(
            "sample_ratio = 1\notlp_endpoint = \"http://{}\"\nbatch_size = 1\nqueue_size = 1\nexport_timeout = \"30s\"",
            silent.addr()
        ),
    );

    let took = requests_all_succeed(&proxy, 50);

    // Loose on purpose (CI machines stall): the point is that the proxy
    // never waited for the exporter's 30 s timeout.
    assert!(took < Duration::from_secs(20), "50 requests took {took:?}");
    assert!(
        eventually(Duration::from_secs(5), || tracing_stats(&proxy).1 >= 45),
        "queue-full drops not counted: {:?}",
        tracing_stats(&proxy)
    );
    assert!(proxy.stats_json().contains("\"spans_dropped_queue_full\":"));
}

#[test]
fn check_shows_the_tracing_section_and_names_bad_fields() {
    let config = ProxyConfig::new().everything_to("127.0.0.1:9".parse().unwrap()).to_toml();
    let dir = TempDir::new();
    let good = dir.write(
        "good.toml",
        &format!("{config}\n[tracing]\nsample_ratio = 0.5\ntrust_incoming = \"none\"\notlp_endpoint = \"http://127.0.0.1:4318\"\n"),
    );
    let output = shardgate_output(&["check", "-c", &good.display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        stdout.contains("tracing: sample_ratio=0.5 trust_incoming=none otlp_endpoint=http://127.0.0.1:4318 (127.0.0.1:4318/v1/traces)"),
        "{stdout}"
    );

    let lines = config.lines().count();
    let bad = dir.write("bad.toml", &format!("{config}\n[tracing]\nsample_ratio = 2\nqueue_size = 0\n"));
    let output = shardgate_output(&["check", "-c", &bad.display().to_string()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("tracing.sample_ratio: 2 is out of range: allowed 0 to 1 (line {})", lines + 3)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("tracing.queue_size: 0 is out of range: allowed 1 to 65536 (line {})", lines + 4)),
        "{stderr}"
    );
}
