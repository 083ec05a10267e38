//! Every request limit trips with its status: 431, 414, 413, 408, idle and
//! body timeouts, and the per-shard connection cap (503). Each test uses
//! small values so it trips quickly, and checks a request just inside the
//! limit still passes.

use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn a_request_head_over_the_limit_gets_431() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().limits("max_request_head_bytes = 1024").everything_to(upstream.addr()).start();

    let inside = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n", "a".repeat(500));
    assert_eq!(get_raw(proxy.addr(), &inside).status, 200);

    let over = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n", "a".repeat(2000));
    let response = send_raw(proxy.addr(), over.as_bytes());

    assert_eq!(response.status, 431);
    assert!(response.closed);
    assert_eq!(upstream.requests().len(), 1, "only the request inside the limit");
}

#[test]
fn too_many_header_fields_get_431() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().limits("max_header_count = 10").everything_to(upstream.addr()).start();
    let with_fields = |n: usize| {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
        for i in 1..n {
            head.push_str(&format!("X-Field-{i}: {i}\r\n"));
        }
        head.push_str("\r\n");
        head
    };

    assert_eq!(get_raw(proxy.addr(), &with_fields(5)).status, 200);
    let response = send_raw(proxy.addr(), with_fields(20).as_bytes());

    assert_eq!(response.status, 431);
    assert!(response.closed);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_uri_over_the_limit_gets_414() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().limits("max_uri_bytes = 64").everything_to(upstream.addr()).start();

    assert_eq!(get(proxy.addr(), &format!("/{}", "a".repeat(40))).status, 200);
    let response =
        send_raw(proxy.addr(), format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(200)).as_bytes());

    assert_eq!(response.status, 414);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_body_over_the_limit_by_content_length_gets_413_up_front() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().limits("max_request_body_bytes = 1000").everything_to(upstream.addr()).start();

    let inside = format!("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{}", "b".repeat(1000));
    assert_eq!(get_raw(proxy.addr(), &inside).body.len(), 1000);

    // Only the head is sent: the proxy must answer from Content-Length alone.
    let mut client = Client::connect(proxy.addr());
    client.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1001\r\n\r\n");
    let response = client.read_response();

    assert_eq!(response.status, 413);
    assert_eq!(upstream.requests().len(), 1, "only the request inside the limit");
}

#[test]
fn a_chunked_body_growing_over_the_limit_gets_413() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().limits("max_request_body_bytes = 1000").everything_to(upstream.addr()).start();
    let chunk = "c".repeat(600);

    let response = send_raw(
        proxy.addr(),
        format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );

    assert_eq!(response.status, 413);
    assert!(response.closed);
    assert!(upstream.requests().is_empty(), "the upstream got a complete over-limit request");
}

#[test]
fn a_route_body_limit_applies_to_that_route_only() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new()
        .cluster("backend", &[upstream.addr()])
        .route(Route::new("small").path_prefix("/small/").max_request_body_bytes(10).cluster("backend"))
        .route(Route::new("rest").cluster("backend"))
        .start();
    let post = |path: &str| format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world");

    assert_eq!(send_raw(proxy.addr(), post("/small/x").as_bytes()).status, 413);
    assert_eq!(get_raw(proxy.addr(), &post("/large/x")).text(), "hello world");
    assert_eq!(upstream.only_request().target, "/large/x");
}

#[test]
fn a_listener_limit_overrides_the_global_one() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().listener("strict", "max_uri_bytes = 32").everything_to(upstream.addr()).start();
    let long_path = format!("/{}", "a".repeat(100));

    assert_eq!(get(proxy.addr(), &long_path).status, 200);
    assert_eq!(get(proxy.listener("strict"), &long_path).status, 414);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_head_not_finished_within_header_timeout_gets_408_and_close() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().limits(r#"header_timeout = "1s""#).everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    let started = Instant::now();
    client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n");
    let response = client.read_response_then_close().expect("a 408 response");

    assert_eq!(response.status, 408);
    assert!(response.closed);
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK, "answered after {:?}", started.elapsed());
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn a_body_stalled_past_body_timeout_closes_the_connection() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "1s""#).everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    let started = Instant::now();
    client.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789");
    let (_, closed) = client.read_until_close(Duration::from_secs(10));

    assert!(closed, "the proxy kept a stalled body open");
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK, "closed after {:?}", started.elapsed());
    assert!(upstream.requests().is_empty(), "the upstream got a complete request");
}

/// A small body (<= 16 KiB to come) is read whole before the upstream is
/// contacted: a client that stalls mid-body gets 408 and the upstream never
/// sees a connection. A large body streams, so its head goes up at once.
#[test]
fn a_small_body_is_read_before_the_upstream_is_contacted() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "1s""#).everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    client.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789");
    let (response, closed) = client.read_until_close(Duration::from_secs(10));
    assert!(closed, "the proxy kept a stalled body open");
    assert!(response.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&response));
    assert_eq!(upstream.connections(), 0, "the upstream was contacted for an incomplete small body");

    let mut client = Client::connect(proxy.addr());
    client.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n0123456789");
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.heads_received() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(upstream.heads_received(), 1, "a large body should stream: its head goes up before the body");
    drop(client);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().limits(r#"idle_timeout = "1s""#).everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/").status, 200);
    let idle_since = Instant::now();

    assert!(
        client.wait_closed(Duration::from_secs(1) + SLACK),
        "idle connection still open after {:?}",
        idle_since.elapsed()
    );
}

#[test]
fn connections_over_the_per_shard_cap_get_503_and_close() {
    let upstream = Upstream::ok("ok");
    let proxy =
        ProxyConfig::new().shards(1).limits("max_connections_per_shard = 2").everything_to(upstream.addr()).start();

    let mut first = Client::connect(proxy.addr());
    let mut second = Client::connect(proxy.addr());
    assert_eq!(first.get("/").status, 200);
    assert_eq!(second.get("/").status, 200);

    let third = send_raw(proxy.addr(), b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(third.status, 503);
    assert!(third.closed);
    assert_eq!(upstream.requests().len(), 2);

    // Closing one frees its slot.
    drop(first);
    let admitted = eventually(SLACK, || get(proxy.addr(), "/").status == 200);
    assert!(admitted, "a closed connection's slot was never released");
    assert_eq!(second.get("/").status, 200);
}

/// Sends a whole raw request on a new connection and reads the response.
fn get_raw(addr: std::net::SocketAddr, raw: &str) -> Response {
    Client::connect(addr).request(raw.as_bytes())
}
