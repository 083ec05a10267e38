//! Choosing an endpoint with no options set: an endpoint that refuses
//! connections (or does not accept them in time) stops receiving traffic
//! at once and the request that found it dead goes to another endpoint,
//! whatever its method (nginx's `max_fails=1 fail_timeout=10s` with
//! `proxy_next_upstream error timeout`); a cluster whose endpoints are all
//! down answers 503 at once, naming the reason.

use std::time::Duration;

use crate::harness::upstream::{refusing_addr, Blackhole};
use crate::harness::*;

#[test]
fn one_dead_endpoint_of_two_loses_none_of_200_requests() {
    let upstream = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster("app", &[upstream.addr(), refusing_addr()])
        .route(Route::new("all").cluster("app"))
        .start();

    let mut failed = Vec::new();
    let mut keep_alive = Client::connect(proxy.addr());
    for i in 0..200 {
        // Half on a new connection each (spread over both shards), half
        // on one keep-alive connection.
        let path = format!("/r/{i}");
        let response = if i % 2 == 0 { get(proxy.addr(), &path) } else { keep_alive.get(&path) };
        if response.status != 200 || response.text() != format!("GET {path}") {
            failed.push((i, response.status, response.text()));
        }
    }
    assert!(failed.is_empty(), "{} of 200 failed, first: {:?}", failed.len(), failed.first());
    assert_eq!(upstream.requests().len(), 200);
}

#[test]
fn a_post_refused_at_connect_lands_on_another_endpoint() {
    let upstream = Upstream::body_echo();
    // The dead endpoint first: round robin on one shard starts there.
    let proxy = ProxyConfig::new()
        .shards(1)
        .cluster("app", &[refusing_addr(), upstream.addr()])
        .route(Route::new("all").cluster("app"))
        .start();

    let body = "name=value&more=1";
    let raw = format!("POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let response = send_raw(proxy.addr(), raw.as_bytes());

    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), body);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_cluster_with_every_endpoint_down_answers_503_at_once_naming_the_reason() {
    let proxy = ProxyConfig::new()
        .shards(1)
        .cluster("dead", &[refusing_addr(), refusing_addr()])
        .route(Route::new("all").cluster("dead"))
        .start();

    // The first request finds both endpoints refusing: the refusal, 502.
    let first = get(proxy.addr(), "/");
    assert_eq!(first.status, 502, "{}", first.text());
    assert!(first.text().contains("refused"), "{}", first.text());
    // Then both are marked down: 503 without a connect, naming why.
    let second = get(proxy.addr(), "/");
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(second.text().contains("every endpoint of cluster \"dead\""), "{}", second.text());
    // The marks are lifted at most once a second: the requests right
    // after are 503 too.
    let after: Vec<u16> = (0..5).map(|_| get(proxy.addr(), "/").status).collect();
    assert!(after.iter().filter(|&&s| s == 503).count() >= 4, "{after:?}");
    // Past the recovery interval the marks are lifted: a request tries the
    // endpoints again (and finds them still refusing).
    std::thread::sleep(Duration::from_millis(1100));
    let tried: Vec<u16> = (0..3).map(|_| get(proxy.addr(), "/").status).collect();
    assert!(tried.contains(&502), "the marks were never lifted: {tried:?}");
}

#[test]
fn an_endpoint_that_times_out_on_connect_is_passed_over_by_the_next_requests() {
    let Some(blackhole) = Blackhole::start() else {
        eprintln!("SKIPPED: this kernel completes loopback handshakes even with a full accept queue");
        return;
    };
    let upstream = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .shards(1)
        .cluster_with("app", &[blackhole.addr(), upstream.addr()], r#"connect_timeout = "300ms""#)
        .route(Route::new("all").cluster("app"))
        .start();

    // The first request waits out the connect timeout on the silent
    // endpoint, then is served by the other.
    assert_eq!(get(proxy.addr(), "/first").status, 200);
    // The silent endpoint is passed over: every request is served, and
    // none waits on it again (each would take 300 ms).
    let started = std::time::Instant::now();
    for i in 0..10 {
        assert_eq!(get(proxy.addr(), &format!("/next/{i}")).status, 200);
    }
    assert!(started.elapsed() < Duration::from_millis(3000), "requests waited on the silent endpoint");
    assert_eq!(upstream.requests().len(), 11);
}

#[test]
fn a_clusters_only_endpoint_is_never_marked_down() {
    let addr = refusing_addr();
    let proxy = ProxyConfig::new().shards(1).cluster("one", &[addr]).route(Route::new("all").cluster("one")).start();

    // Down: each request finds out for itself (502, refused), never 503.
    for _ in 0..3 {
        assert_eq!(get(proxy.addr(), "/").status, 502);
    }
    // Back at the same address: the next request is served.
    let listener = std::net::TcpListener::bind(addr).expect("rebind the endpoint's address");
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = [0u8; 1024];
        let _ = conn.read(&mut head);
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nback").unwrap();
    });
    let response = get(proxy.addr(), "/");
    assert_eq!((response.status, response.text().as_str()), (200, "back"));
    server.join().unwrap();
}
