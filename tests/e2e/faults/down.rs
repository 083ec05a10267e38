//! Every endpoint of a cluster down: each request fails fast — 502 naming
//! the refusal for the request that finds them down, then 503 naming the
//! reason while they are marked down — it does not wait on a timeout, and
//! the proxy keeps answering.

use std::time::{Duration, Instant};

use crate::harness::upstream::refusing_addr;
use crate::harness::{get, ProxyConfig, Route};

#[test]
fn all_endpoints_down_gets_a_fast_502_then_503_every_time() {
    let endpoints = [refusing_addr(), refusing_addr(), refusing_addr()];
    let proxy = ProxyConfig::new()
        .cluster_with("down", &endpoints, r#"connect_timeout = "10s""#)
        .route(Route::new("all").cluster("down"))
        .start();

    // Twice round the endpoints.
    for i in 0..6 {
        let started = Instant::now();
        let response = get(proxy.addr(), &format!("/{i}"));
        let took = started.elapsed();
        let text = response.text();
        match response.status {
            502 => assert!(text.to_ascii_lowercase().contains("refused"), "request {i}: {text}"),
            503 => assert!(text.contains("every endpoint of cluster \"down\""), "request {i}: {text}"),
            _ => panic!("request {i}: {text}"),
        }
        if i == 0 {
            assert_eq!(response.status, 502, "the first request finds them refusing: {text}");
        }
        // Loose: far below the connect timeout, nothing waited on.
        assert!(took < Duration::from_secs(2), "request {i} took {took:?}");
    }
}
