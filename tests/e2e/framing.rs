//! Strict message framing (request smuggling defence): every ambiguous or
//! malformed request gets an error status, the connection is closed, and
//! the upstream receives nothing. Ambiguous upstream responses get 502 and
//! their connection is never reused.

use crate::harness::client::try_send_raw;
use crate::harness::*;

/// (name, the raw request sent in one write, expected status).
///
/// RFC 9112 §6.1: Transfer-Encoding whose final coding is not chunked → 400,
/// an unknown coding → 501; §6.3: CL with TE, or invalid/conflicting CL →
/// 400; §7.1: malformed chunk framing → 400; §5: field syntax; §3.2: Host.
const CASES: &[(&str, &[u8], u16)] = &[
    (
        "Content-Length together with Transfer-Encoding",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunked is not the final transfer coding",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "unknown transfer coding",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: foo, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        501,
    ),
    (
        "two differing Content-Length fields",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    (
        "Content-Length list with differing values",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\nhello!",
        400,
    ),
    (
        "Content-Length with a plus sign",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
        400,
    ),
    (
        "negative Content-Length",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\nhello",
        400,
    ),
    (
        "Content-Length with an inner space",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5 5\r\n\r\nhello",
        400,
    ),
    (
        "Content-Length with trailing garbage",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5a\r\n\r\nhello",
        400,
    ),
    (
        "Content-Length overflowing 64 bits",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
        400,
    ),
    (
        "chunk size that is not hex",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk size overflowing 64 bits",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "bare LF after the chunk size",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "bare CR after the chunk size",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "NUL in a header value",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Value: a\0b\r\n\r\n",
        400,
    ),
    (
        "bare CR in a header value",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Value: a\rb\r\n\r\n",
        400,
    ),
    (
        "bare LF in a header value",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Value: a\nX-Injected: b\r\n\r\n",
        400,
    ),
    (
        "whitespace between field name and colon",
        b"GET / HTTP/1.1\r\nHost : localhost\r\n\r\n",
        400,
    ),
    (
        "obsolete line folding",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Value: a\r\n b\r\n\r\n",
        400,
    ),
    (
        "invalid character in a field name",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nBa(d: x\r\n\r\n",
        400,
    ),
    ("missing Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    (
        "two identical Host fields",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
        400,
    ),
    (
        "two differing Host fields",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: other.example\r\n\r\n",
        400,
    ),
    ("Host with a space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    (
        "Host with an inner space",
        b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n",
        400,
    ),
    (
        "Host with an unclosed IPv6 bracket",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        400,
    ),
    ("HTTP/0.9 request line", b"GET /\r\n", 400),
    (
        "chunked body in an HTTP/1.0 request",
        b"POST / HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "Content-Length in chunked trailers",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
        400,
    ),
];

#[test]
fn malformed_requests_are_refused_closed_and_never_reach_the_upstream() {
    let upstream = Upstream::ok("must not be reached");
    let proxy = ProxyConfig::new().limits(r#"header_timeout = "2s""#).everything_to(upstream.addr()).start();

    let mut failures = Vec::new();
    for (name, raw, status) in CASES {
        let bytes_before = upstream.bytes_received();
        match try_send_raw(proxy.addr(), raw) {
            Ok(response) => {
                if response.status != *status {
                    failures.push(format!("{name}: got {} {}, want {status}", response.status, response.reason));
                }
                if !response.closed {
                    failures.push(format!("{name}: connection left open after the error"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        let leaked = upstream.bytes_received() - bytes_before;
        if leaked > 0 {
            failures.push(format!("{name}: the upstream received {leaked} bytes"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n  {}", failures.len(), CASES.len(), failures.join("\n  "));
    assert!(upstream.requests().is_empty(), "{:#?}", upstream.requests());

    // The upstream was reachable all along: the refusals were the proxy's.
    assert_eq!(get(proxy.addr(), "/").text(), "must not be reached");
}

#[test]
fn ambiguous_upstream_response_framing_gets_502_and_that_connection_is_dropped() {
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/cl-and-te" => Reply::raw(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        "/two-lengths" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"),
        _ => Reply::ok("fine"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    for bad in ["/cl-and-te", "/two-lengths"] {
        let response = get(proxy.addr(), bad);
        assert_eq!(response.status, 502, "{bad}");

        let after = get(proxy.addr(), "/fine");
        assert_eq!(after.status, 200);
        assert_eq!(after.text(), "fine");

        let requests = upstream.requests();
        let bad_conn = requests.iter().find(|r| r.target == bad).expect("bad request").connection;
        let next_conn = requests.last().expect("next request").connection;
        assert_ne!(bad_conn, next_conn, "the upstream connection that sent an ambiguous response to {bad} was reused");
    }
}
