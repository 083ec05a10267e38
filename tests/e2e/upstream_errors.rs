//! When the upstream fails: refused (502), connect timeout (504), slow
//! response (504), closed without answering (502), a stale pooled
//! connection (retried once on a fresh one, the client never notices), and
//! failures mid response body (closed, stalled, client gone).

use std::time::{Duration, Instant};

use crate::harness::pattern::{self, Verifier};
use crate::harness::upstream::{refusing_addr, Blackhole};
use crate::harness::*;

#[test]
fn a_refused_connection_gets_502_naming_the_reason_and_the_request_id() {
    let proxy = ProxyConfig::new().everything_to(refusing_addr()).start();

    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 502);
    let body = response.text();
    assert!(body.to_ascii_lowercase().contains("refused"), "body does not name the reason: {body:?}");
    let request_id = response.header("x-request-id").expect("x-request-id on the 502");
    assert!(!request_id.is_empty());
    assert!(body.contains(request_id), "body does not name the request id {request_id:?}: {body:?}");
}

#[test]
fn a_connect_timeout_gets_504() {
    let Some(blackhole) = Blackhole::start() else {
        eprintln!(
            "SKIPPED: this kernel completes loopback handshakes even with a full accept \
             queue, so a connect timeout cannot be produced on 127.0.0.1"
        );
        return;
    };
    let proxy = ProxyConfig::new()
        .cluster_with("slow-to-connect", &[blackhole.addr()], r#"connect_timeout = "500ms""#)
        .route(Route::new("all").cluster("slow-to-connect"))
        .start();

    let started = Instant::now();
    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 504, "body: {}", response.text());
    assert!(started.elapsed() < Duration::from_millis(500) + SLACK, "answered after {:?}", started.elapsed());
}

#[test]
fn an_upstream_slower_than_response_timeout_gets_504() {
    let upstream = Upstream::start(|_| Reply::after(Duration::from_secs(10), Reply::ok("too late")));
    let proxy = ProxyConfig::new()
        .cluster_with("slow", &[upstream.addr()], r#"response_timeout = "1s""#)
        .route(Route::new("all").cluster("slow"))
        .start();

    let started = Instant::now();
    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 504);
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK, "answered after {:?}", started.elapsed());
    assert_eq!(upstream.heads_received(), 1, "the request did reach the upstream");
}

#[test]
fn an_upstream_closing_without_answering_gets_502() {
    let upstream = Upstream::start(|_| Reply::Close);
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 502);
    assert!(response.header("x-request-id").is_some());
}

#[test]
fn a_stale_pooled_connection_is_retried_once_on_a_fresh_one() {
    // The upstream closes every connection idle for 100 ms: the proxy's
    // pooled connection goes stale between the two requests.
    let upstream = Upstream::builder()
        .close_idle_after(Duration::from_millis(100))
        .start(|req| Reply::ok(format!("hello {}", req.target)));
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());

    assert_eq!(client.get("/first").text(), "hello /first");
    std::thread::sleep(Duration::from_millis(500));
    let second = client.get("/second");

    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "hello /second");
    assert_eq!(upstream.connections(), 2);
    let connections: Vec<usize> = upstream.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 1], "each request on its own upstream connection");
}

// Failures in the middle of a response body: the status line is gone, so
// the client must be able to tell from the connection (closed short of the
// Content-Length), and the upstream connection must not be reused.

#[test]
fn an_upstream_that_closes_mid_body_ends_the_client_connection_after_the_bytes_it_sent() {
    const DECLARED: u64 = 1024 * 1024;
    const SENT: u64 = 300_000;
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/truncated" => {
            let mut raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {DECLARED}\r\n\r\n").into_bytes();
            pattern::for_each_piece(SENT, |piece| raw.extend_from_slice(piece));
            Reply::RawThenClose(raw)
        }
        _ => Reply::ok("small"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /truncated HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (bytes, closed) = client.read_until_close(Duration::from_secs(10));
    assert!(closed, "the proxy closed the client connection");
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {DECLARED}")), "{head}");
    // Exactly what the upstream sent, nothing invented: the client can tell
    // the body is short of its Content-Length.
    let mut verifier = Verifier::default();
    verifier.feed(&bytes[head_end..]);
    assert_eq!(verifier.len, SENT);
    assert_eq!(verifier.first_mismatch, None);
    // The proxy itself carries on.
    assert_eq!(get(proxy.addr(), "/small").text(), "small");
}

#[test]
fn an_upstream_that_stalls_mid_body_is_cut_off_at_the_body_timeout() {
    const DECLARED: u64 = 1024 * 1024;
    let upstream = Upstream::start(|_| {
        // Raw: the upstream then keeps the connection open, silent.
        let mut raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {DECLARED}\r\n\r\n").into_bytes();
        pattern::for_each_piece(100_000, |piece| raw.extend_from_slice(piece));
        Reply::raw(raw)
    });
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "1s""#).everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /stalls HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let started = Instant::now();
    let (bytes, closed) = client.read_until_close(Duration::from_secs(10));
    assert!(closed, "the proxy gave up on the stalled body");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the body timeout");
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    assert_eq!((bytes.len() - head_end) as u64, 100_000, "the bytes that came, and no more");
}

#[test]
fn a_client_that_leaves_mid_body_does_not_leave_its_upstream_connection_in_the_pool() {
    // Far more than the client will read before it leaves.
    const ENDLESS: u64 = 16 * 1024 * 1024 * 1024;
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/large" => Reply::pattern(ENDLESS),
        _ => Reply::ok("small"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    {
        let mut client = Client::connect(proxy.addr());
        client.send(b"GET /large HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let (bytes, _) = client.read_until_close(Duration::from_millis(300));
        assert!(bytes.len() > 100_000, "the body was flowing ({} bytes)", bytes.len());
        assert!((bytes.len() as u64) < ENDLESS, "and the client left before its end");
        // Dropped here, mid body.
    }
    // The abandoned exchange's upstream connection still had body bytes in
    // flight: reusing it would hand them to the next request.
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/small").text(), "small");
    assert_eq!(upstream.connections(), 2, "a fresh upstream connection for the next request");
}

#[test]
fn an_upstream_status_outside_100_to_599_gets_502_and_the_client_connection_stays_in_step() {
    // Each bad status line comes with a body: forwarded as bodiless (as the
    // status 000-099 once was), those bytes would be read as the next answer.
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/000" => Reply::raw("HTTP/1.1 000 Weird\r\nContent-Length: 5\r\n\r\nhello"),
        "/099" => Reply::raw("HTTP/1.1 099 Weird\r\nContent-Length: 5\r\n\r\nhello"),
        "/600" => Reply::raw("HTTP/1.1 600 Weird\r\nContent-Length: 5\r\n\r\nhello"),
        "/999" => Reply::raw("HTTP/1.1 999 Weird\r\nContent-Length: 5\r\n\r\nhello"),
        "/two-digits" => Reply::raw("HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello"),
        "/four-digits" => Reply::raw("HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello"),
        _ => Reply::ok("fine"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());

    for bad in ["/000", "/099", "/600", "/999", "/two-digits", "/four-digits"] {
        let response = client.get(bad);
        assert_eq!(response.status, 502, "{bad}: {:?} {}", response.raw_head, response.text());
        assert!(response.text().contains("status"), "{bad}: the 502 names no reason: {}", response.text());

        // The same client connection: the next answer is the next request's.
        let after = client.get("/fine");
        assert_eq!((after.status, after.text().as_str()), (200, "fine"), "after {bad}");

        let requests = upstream.requests();
        let bad_conn = requests.iter().find(|r| r.target == bad).expect("bad request reached upstream").connection;
        let next_conn = requests.last().expect("next request").connection;
        assert_ne!(bad_conn, next_conn, "the upstream connection that answered {bad} was reused");
    }
}
