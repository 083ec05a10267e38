//! Lines from real records: a config parsed from text, its generation, a
//! request head parsed from bytes, an outcome as the pipeline fills it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::clock::WallTime;
use super::json_names::JsonNames;
use super::line::write_line;
use super::ShardAccessLog;
use crate::admin::ShardCounters;
use crate::config::Config;
use crate::downstream::outcome::Outcome;
use crate::error::ErrorKind;
use crate::http1::parse::{parse_request, HeadLimits, RequestHead};
use crate::observe::record::Record;
use crate::shard::generation::{Generation, ShardGeneration};
use crate::shard::identity::Identities;
use crate::upstream::balance::Endpoint;

const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 16 * 1024, max_headers: 100, max_uri_bytes: 8 * 1024 };
/// 2000-10-10T20:55:36.007Z
const TIME: WallTime = WallTime(971_211_336_007);

fn generation(access_log: &str) -> ShardGeneration {
    let text = format!(
        "[[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"api\"\ncluster = \"backend\"\n\
         [[clusters]]\nname = \"backend\"\nendpoints = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n\
         [access_log]\n{access_log}\n"
    );
    let config = Config::parse(&text, "t.toml").unwrap();
    let (g, _) = Generation::build(1, Arc::new(config), &mut Identities::default(), None).unwrap();
    ShardGeneration::new(0, Arc::new(g), None)
}

fn head(raw: &[u8]) -> RequestHead {
    let mut head = RequestHead::default();
    assert!(matches!(parse_request(raw, &LIMITS, &mut head), Ok(true)), "{raw:?}");
    head
}

/// A proxied 200: every field filled.
fn proxied(g: &ShardGeneration) -> Outcome {
    let mut o = Outcome::new(Instant::now());
    o.status = 200;
    o.upstream_status = Some(200);
    o.route = Some(0);
    o.cluster = Some(0);
    o.endpoint = Some(Endpoint { cluster: 0, index: 0, id: g.shared.endpoints[0][0] });
    o.retries = 1;
    o.bytes_received = 123;
    o.bytes_sent = 4567;
    o.timings.head_read = Duration::from_micros(15);
    o.timings.upstream_connect = Some(Duration::from_micros(250));
    o.timings.upstream_head = Some(Duration::from_micros(1_500));
    o.timings.total = Duration::from_micros(2_001);
    o
}

struct Req<'a> {
    head: Option<&'a RequestHead>,
    rbuf: &'a [u8],
    path: &'a [u8],
    trace_id: Option<&'a [u8]>,
    tls: Option<&'static str>,
    consumer: Option<&'a str>,
    credential: Option<std::ops::Range<usize>>,
}

fn line(g: &ShardGeneration, req: &Req<'_>, o: &Outcome) -> String {
    let r = Record {
        generation: g,
        listener: 0,
        peer: SocketAddr::from(([10, 0, 0, 9], 54321)),
        client: IpAddr::from([203, 0, 113, 7]),
        head: req.head,
        rbuf: req.rbuf,
        path: req.path,
        request_id: b"0123456789abcdef0123456789abcdef",
        tls_version: req.tls,
        trace_id: req.trace_id,
        trace: None,
        consumer: req.consumer,
        credential: req.credential.clone(),
        outcome: o,
    };
    let log = g.config().access_log.clone().unwrap();
    let mut out = Vec::new();
    write_line(&mut out, &r, &log, &JsonNames::of(g.config()), TIME);
    let text = String::from_utf8(out).expect("lines are UTF-8");
    assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "one line: {text:?}");
    text
}

const GET: &[u8] = b"GET /v1/items?id=7&x=%41 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.0\r\n\
    Referer: https://example.com/\r\nAuthorization: Bearer s3cret\r\nCookie: sid=abc\r\nX-Api-Key: k3y\r\n\
    X-Forwarded-For: 198.51.100.1\r\n\r\n";

#[test]
fn json_has_every_field_with_its_value() {
    let g = generation("fields = [\"all\"]\nheaders = [\"x-forwarded-for\", \"x-absent\"]");
    let h = head(GET);
    let o = proxied(&g);
    let req = Req {
        head: Some(&h),
        rbuf: GET,
        path: b"/v1/items",
        trace_id: Some(b"4bf92f3577b34da6a3ce929d0e0e4736"),
        tls: Some("TLSv1.3"),
        consumer: Some("acme"),
        credential: None,
    };
    let text = line(&g, &req, &o);
    let v: Value = serde_json::from_str(&text).unwrap();
    let want = serde_json::json!({
        "time": "2000-10-10T20:55:36.007Z",
        "request_id": "0123456789abcdef0123456789abcdef",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "listener": "web",
        "client": "203.0.113.7",
        "peer": "10.0.0.9:54321",
        "tls_version": "TLSv1.3",
        "protocol": "HTTP/1.1",
        "method": "GET",
        "host": "api.example.com",
        "path": "/v1/items",
        "query": "id=7&x=%41",
        "status": 200,
        "bytes_received": 123,
        "bytes_sent": 4567,
        "user_agent": "curl/8.0",
        "referer": "https://example.com/",
        "route": "api",
        "consumer": "acme",
        "cluster": "backend",
        "endpoint": "127.0.0.1:9001",
        "upstream_status": 200,
        "retries": 1,
        "error": null,
        "head_read_us": 15,
        "upstream_connect_us": 250,
        "upstream_first_byte_us": 1500,
        "total_us": 2001,
        "headers": {"x-forwarded-for": "198.51.100.1", "x-absent": null},
    });
    assert_eq!(v, want, "{text}");
    // Keys in the documented order.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 29);
    assert!(text.starts_with("{\"time\":\"2000-10-10T20:55:36.007Z\",\"request_id\":"), "{text}");
    // Credentials never appear, whatever the request carried.
    for secret in ["s3cret", "sid=abc", "k3y", "Bearer"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn json_of_a_bad_request_without_head_has_nulls() {
    let g = generation("fields = [\"method\", \"path\", \"query\", \"status\", \"route\", \"endpoint\", \"error\", \"upstream_connect_us\", \"protocol\"]");
    let mut o = Outcome::new(Instant::now());
    o.status = 400;
    o.error = Some(ErrorKind::BadRequest);
    o.bytes_received = 30;
    let req = Req {
        head: None,
        rbuf: b"GARBAGE\r\n\r\n",
        path: b"",
        trace_id: None,
        tls: None,
        consumer: None,
        credential: None,
    };
    let text = line(&g, &req, &o);
    assert_eq!(
        text,
        "{\"method\":null,\"path\":null,\"query\":null,\"status\":400,\"route\":null,\"endpoint\":null,\
         \"error\":\"bad_request\",\"upstream_connect_us\":null,\"protocol\":null}\n"
    );
}

#[test]
fn json_escapes_hostile_bytes_and_stays_one_valid_line() {
    let g = generation("fields = [\"path\", \"user_agent\", \"query\"]");
    // What the parser lets through in a field value (quotes, tab,
    // obs-text that is not UTF-8), and a normalised path with any byte.
    let raw: &[u8] = b"GET /a?q=%22x HTTP/1.1\r\nHost: h\r\nUser-Agent: evil\"}\t\xc3\xa9\xff\r\n\r\n";
    let h = head(raw);
    let req = Req {
        head: Some(&h),
        rbuf: raw,
        path: b"/a\xff\xfe\n{\"\x1b",
        trace_id: None,
        tls: None,
        consumer: None,
        credential: None,
    };
    let text = line(&g, &req, &Outcome::new(Instant::now()));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["path"], "/a\u{ff}\u{fe}\n{\"\u{1b}");
    assert_eq!(v["user_agent"], "evil\"}\t\u{e9}\u{ff}");
    assert_eq!(v["query"], "q=%22x");
}

#[test]
fn an_api_key_in_the_query_is_masked_in_every_format() {
    const RAW: &[u8] = b"GET /v1/items?a=1&api_key=k3y-secret&b=2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let h = head(RAW);
    let at = RAW.windows(10).position(|w| w == b"k3y-secret").unwrap();
    let credential = Some(at..at + 10);
    for (format, want) in [
        ("fields = [\"query\"]", "{\"query\":\"a=1&api_key=***&b=2\"}\n"),
        ("format = \"combined\"", "\"GET /v1/items?a=1&api_key=***&b=2 HTTP/1.1\""),
    ] {
        let g = generation(format);
        let o = proxied(&g);
        let req = Req {
            head: Some(&h),
            rbuf: RAW,
            path: b"/v1/items",
            trace_id: None,
            tls: None,
            consumer: None,
            credential: credential.clone(),
        };
        let text = line(&g, &req, &o);
        assert!(text.contains(want), "{text}");
        assert!(!text.contains("k3y"), "{text}");
    }
}

#[test]
fn combined_is_nginx_combined() {
    let g = generation("format = \"combined\"");
    let h = head(GET);
    let o = proxied(&g);
    let text = line(
        &g,
        &Req {
            head: Some(&h),
            rbuf: GET,
            path: b"/v1/items",
            trace_id: None,
            tls: None,
            consumer: None,
            credential: None,
        },
        &o,
    );
    assert_eq!(
        text,
        "203.0.113.7 - - [10/Oct/2000:20:55:36 +0000] \"GET /v1/items?id=7&x=%41 HTTP/1.1\" 200 4567 \
         \"https://example.com/\" \"curl/8.0\"\n"
    );
}

#[test]
fn combined_escapes_like_nginx_and_dashes_what_is_absent() {
    let g = generation("format = \"combined\"");
    let raw: &[u8] = b"POST /x HTTP/1.0\r\nHost: h\r\nUser-Agent: a\"b\\c\xc3\xa9\r\n\r\n";
    let h = head(raw);
    let mut o = Outcome::new(Instant::now());
    o.status = 502;
    let text = line(
        &g,
        &Req { head: Some(&h), rbuf: raw, path: b"/x", trace_id: None, tls: None, consumer: None, credential: None },
        &o,
    );
    assert_eq!(
        text,
        "203.0.113.7 - - [10/Oct/2000:20:55:36 +0000] \"POST /x HTTP/1.0\" 502 0 \"-\" \"a\\x22b\\x5Cc\\xC3\\xA9\"\n"
    );
    let text = line(
        &g,
        &Req { head: None, rbuf: b"", path: b"", trace_id: None, tls: None, consumer: None, credential: None },
        &o,
    );
    assert_eq!(text, "203.0.113.7 - - [10/Oct/2000:20:55:36 +0000] \"-\" 502 0 \"-\" \"-\"\n");
}

fn record<'a>(g: &'a ShardGeneration, o: &'a Outcome) -> Record<'a> {
    Record::of_outcome(g, o)
}

#[test]
fn sampling_keeps_a_fraction_of_successes_and_every_failure() {
    let g = generation("sample = 0.25\nfields = [\"status\"]");
    let log = ShardAccessLog::default();
    let counters = ShardCounters::default();
    let mut ok = Outcome::new(Instant::now());
    ok.status = 200;
    for _ in 0..4000 {
        log.log(&record(&g, &ok), &counters);
    }
    let (kept, _) = log.buffered();
    assert!((800..1200).contains(&kept), "kept {kept} of 4000 at 0.25");
    let before = kept;
    let mut failed = Outcome::new(Instant::now());
    failed.status = 503;
    let mut left = Outcome::new(Instant::now());
    left.error = Some(ErrorKind::DownstreamClosed);
    for _ in 0..100 {
        log.log(&record(&g, &failed), &counters);
        log.log(&record(&g, &left), &counters);
    }
    assert_eq!(log.buffered().0, before + 200);

    let g = generation("sample = 0.0\nfields = [\"status\"]");
    let log = ShardAccessLog::default();
    log.log(&record(&g, &ok), &counters);
    log.log(&record(&g, &failed), &counters);
    assert_eq!(log.buffered(), (1, b"{\"status\":503}\n".to_vec()));
}

#[test]
fn no_section_no_line() {
    let text = "[[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n";
    let config = Config::parse(text, "t.toml").unwrap();
    let (g, _) = Generation::build(1, Arc::new(config), &mut Identities::default(), None).unwrap();
    let g = ShardGeneration::new(0, Arc::new(g), None);
    let log = ShardAccessLog::default();
    log.log(&record(&g, &Outcome::new(Instant::now())), &ShardCounters::default());
    assert_eq!(log.buffered().0, 0);
}

/// Without a writer to take them (none started in this test process, or
/// its queue full), a flush drops the lines and counts them.
#[test]
fn a_flush_nobody_takes_counts_dropped_lines() {
    let g = generation("fields = [\"status\"]");
    let log = ShardAccessLog::default();
    let counters = ShardCounters::default();
    let mut o = Outcome::new(Instant::now());
    o.status = 200;
    for _ in 0..3 {
        log.log(&record(&g, &o), &counters);
    }
    assert_eq!(log.buffered().0, 3);
    log.flush(&counters);
    assert_eq!(log.buffered().0, 0);
    assert!(log.buffered().1.is_empty());
    assert_eq!(counters.snapshot().access_log_dropped, 3);
    // Nothing buffered: nothing counted.
    log.flush(&counters);
    assert_eq!(counters.snapshot().access_log_dropped, 3);
}
