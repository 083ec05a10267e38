//! Message bodies: Content-Length and chunked in both directions, re-framing
//! for HTTP/1.0 and close-delimited responses, HEAD and 204, and 64 MiB
//! streamed each way byte-exact with bounded proxy memory.

use crate::harness::client::{BodyFraming, StreamHash};
use crate::harness::pattern::{self, Verifier};
use crate::harness::proc_status::RssSampler;
use crate::harness::*;

/// Size of the large-body transfers.
const LARGE: u64 = 64 * 1024 * 1024;
/// How much the proxy's resident memory may grow while streaming `LARGE`
/// bytes: half of it, so buffering a whole body cannot pass.
const MAX_RSS_GROWTH: u64 = 32 * 1024 * 1024;

#[test]
fn content_length_request_body_reaches_the_upstream() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = Client::connect(proxy.addr())
        .request(b"POST /items HTTP/1.1\r\nHost: localhost\r\nContent-Length: 13\r\n\r\n{\"id\": 12345}");

    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "{\"id\": 12345}");
    let request = upstream.only_request();
    assert_eq!(request.body, b"{\"id\": 12345}");
    assert_eq!(request.header("content-length"), Some("13"));
}

#[test]
fn chunked_request_body_reaches_the_upstream_exactly() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = Client::connect(proxy.addr()).request(
        b"POST /stream HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n\
          1;ext=1\r\n \r\n\
          A\r\n0123456789\r\n\
          0\r\n\r\n",
    );

    assert_eq!(response.status, 200);
    let request = upstream.only_request();
    assert_eq!(request.body, b"hello 0123456789");
    // Either forwarded chunked or re-framed with the exact length; never both.
    if request.chunked {
        assert!(!request.has_header("content-length"));
    } else {
        assert_eq!(request.header("content-length"), Some("16"));
    }
}

#[test]
fn chunked_response_reaches_an_http11_client_chunked() {
    let upstream = Upstream::start(|_| Reply::chunked(&[b"first ", b"second ", b"third"]));
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 200);
    assert_eq!(response.framing, BodyFraming::Chunked);
    assert_eq!(response.text(), "first second third");
}

#[test]
fn chunked_response_reaches_an_http10_client_close_delimited() {
    let upstream = Upstream::start(|_| Reply::chunked(&[b"old ", b"school"]));
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = send_raw(proxy.addr(), b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");

    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), None, "HTTP/1.0 clients do not understand chunked");
    assert_eq!(response.framing, BodyFraming::Close);
    assert_eq!(response.text(), "old school");
    assert!(response.closed);
}

#[test]
fn close_delimited_response_reaches_an_http11_client_chunked() {
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/until-close" => Reply::close_delimited("ends when the upstream closes"),
        _ => Reply::ok("next"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    let response = client.get("/until-close");

    assert_eq!(response.status, 200);
    assert_eq!(response.framing, BodyFraming::Chunked);
    assert_eq!(response.text(), "ends when the upstream closes");
    // Re-framed, so the client connection survives the upstream's close.
    assert_eq!(client.get("/next").text(), "next");
}

#[test]
fn head_response_has_no_body_and_the_connection_continues() {
    let upstream = Upstream::ok("a body of some length");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    client.send(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("21"));

    // Had the proxy sent body bytes after the HEAD response, they would be
    // read here as the next response.
    let next = client.get("/");
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), "a body of some length");
}

#[test]
fn no_content_response_has_no_body_and_the_connection_continues() {
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/empty" => Reply::raw("HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n"),
        _ => Reply::ok("after"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    let empty = client.get("/empty");
    assert_eq!(empty.status, 204);
    assert_eq!(empty.header("x-empty"), Some("yes"));
    assert!(empty.body.is_empty());
    assert_eq!(client.get("/after").text(), "after");
}

#[test]
fn large_upload_is_streamed_byte_exact_with_bounded_memory() {
    let upstream = Upstream::ok("stored");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/warm-up").status, 200);
    let rss_before = proxy.rss();
    let sampler = RssSampler::start(proxy.pid());

    client.send(format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {LARGE}\r\n\r\n").as_bytes());
    let mut sent = StreamHash::default();
    pattern::for_each_piece(LARGE, |piece| {
        sent.feed(piece);
        client.send(piece);
    });
    let response = client.read_response();
    let rss_peak = sampler.peak();

    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "stored");
    let received = upstream.requests().pop().expect("upload reached the upstream");
    assert_eq!(received.body_len, LARGE);
    assert_eq!(received.body_sha256, sent.hex());
    let growth = rss_peak.saturating_sub(rss_before);
    eprintln!("proxy RSS: before {} KiB, peak {} KiB", rss_before / 1024, rss_peak / 1024);
    assert!(
        growth < MAX_RSS_GROWTH,
        "proxy RSS grew by {} KiB while streaming {} MiB up (before {} KiB, peak {} KiB)",
        growth / 1024,
        LARGE >> 20,
        rss_before / 1024,
        rss_peak / 1024
    );
}

#[test]
fn large_download_is_streamed_byte_exact_with_bounded_memory() {
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/large" => Reply::pattern(LARGE),
        _ => Reply::ok("small"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/warm-up").status, 200);
    let rss_before = proxy.rss();
    let sampler = RssSampler::start(proxy.pid());

    client.send(b"GET /large HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut received = StreamHash::default();
    let mut verifier = Verifier::default();
    let response = client.read_response_streaming(&mut |bytes| {
        received.feed(bytes);
        verifier.feed(bytes);
    });
    let rss_peak = sampler.peak();

    assert_eq!(response.status, 200);
    assert_eq!(verifier.len, LARGE);
    assert_eq!(verifier.first_mismatch, None, "first differing byte offset");
    let mut sent = StreamHash::default();
    pattern::for_each_piece(LARGE, |piece| sent.feed(piece));
    assert_eq!(received.hex(), sent.hex());
    let growth = rss_peak.saturating_sub(rss_before);
    eprintln!("proxy RSS: before {} KiB, peak {} KiB", rss_before / 1024, rss_peak / 1024);
    assert!(
        growth < MAX_RSS_GROWTH,
        "proxy RSS grew by {} KiB while streaming {} MiB down (before {} KiB, peak {} KiB)",
        growth / 1024,
        LARGE >> 20,
        rss_before / 1024,
        rss_peak / 1024
    );
    // The connection is still usable: the body was framed exactly.
    assert_eq!(client.get("/after").text(), "small");
}
