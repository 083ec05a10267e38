//! When the upstream fails: refused (502), connect timeout (504), slow
//! response (504), closed without answering (502), and a stale pooled
//! connection (retried once on a fresh one, the client never notices).

use std::time::{Duration, Instant};

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
