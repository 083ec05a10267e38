//! Header handling on the way through: hop-by-hop fields stop at the proxy;
//! forwarding fields and a request id are added; end-to-end fields pass in
//! both directions. Who the client is (trusted proxies, the forwarding
//! headers' trust rules, trailers) is in `identity.rs`.

use crate::harness::*;

/// Hop-by-hop fields (RFC 9110 §7.6.1) and the proxy-specific ones that
/// must never reach the upstream.
const HOP_BY_HOP: &[&str] =
    &["keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection", "upgrade", "x-listed-in-connection"];

#[test]
fn hop_by_hop_headers_are_removed_before_the_upstream() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = Client::connect(proxy.addr()).request(
        b"GET /hop HTTP/1.1\r\n\
          Host: localhost\r\n\
          Connection: keep-alive, X-Listed-In-Connection\r\n\
          X-Listed-In-Connection: secret\r\n\
          Keep-Alive: timeout=5\r\n\
          TE: trailers\r\n\
          Trailer: X-Checksum\r\n\
          Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
          Proxy-Connection: keep-alive\r\n\
          Upgrade: h2c\r\n\
          X-End-To-End: kept\r\n\
          \r\n",
    );

    assert_eq!(response.status, 200);
    let request = upstream.only_request();
    for name in HOP_BY_HOP {
        assert!(
            !request.has_header(name),
            "{name} reached the upstream:\n{}",
            String::from_utf8_lossy(&request.raw_head)
        );
    }
    // The proxy may send its own Connection field to the upstream, but not
    // the client's list.
    assert!(
        !request.header_list("connection").iter().any(|t| t.eq_ignore_ascii_case("x-listed-in-connection")),
        "client's Connection list reached the upstream"
    );
    assert_eq!(request.header("x-end-to-end"), Some("kept"));
}

#[test]
fn upstream_receives_forwarding_headers() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = Client::connect(proxy.addr()).request(b"GET / HTTP/1.1\r\nHost: app.example.test\r\n\r\n");

    assert_eq!(response.status, 200);
    let request = upstream.only_request();
    assert_eq!(request.header_list("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(request.header("x-forwarded-proto"), Some("http"));
    assert_eq!(request.header("x-forwarded-host"), Some("app.example.test"));
    let via = request.header_all("via").join(", ");
    assert!(via.to_ascii_lowercase().contains("shardgate"), "Via: {via:?}");
}

/// From a peer that is not a trusted proxy (the default: none is), the
/// client's list is replaced: its leftmost entry, what applications read
/// as "the client", would be the client's own claim. Appending from a
/// trusted peer, and the `append` mode, are in `identity.rs`.
#[test]
fn x_forwarded_for_from_an_untrusted_peer_is_replaced() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    Client::connect(proxy.addr())
        .request(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n\r\n");

    assert_eq!(upstream.only_request().header_list("x-forwarded-for"), vec!["127.0.0.1"]);
}

#[test]
fn x_forwarded_for_from_a_trusted_peer_is_appended_to() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new()
        .listener_option("main", r#"trusted_proxies = ["127.0.0.1/32"]"#)
        .everything_to(upstream.addr())
        .start();

    Client::connect(proxy.addr())
        .request(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n\r\n");

    assert_eq!(
        upstream.only_request().header_list("x-forwarded-for"),
        vec!["203.0.113.7", "198.51.100.2", "127.0.0.1"]
    );
}

#[test]
fn a_request_id_is_generated_forwarded_and_returned() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    let first = client.get("/one");
    let second = client.get("/two");

    let requests = upstream.requests();
    let sent_up: Vec<&str> =
        requests.iter().map(|r| r.header("x-request-id").expect("upstream got x-request-id")).collect();
    assert!(!sent_up[0].is_empty());
    assert_ne!(sent_up[0], sent_up[1], "every request gets its own id");
    assert_eq!(first.header("x-request-id"), Some(sent_up[0]));
    assert_eq!(second.header("x-request-id"), Some(sent_up[1]));
}

/// Only from a trusted proxy: an id from anyone else is replaced (it
/// could be chosen to collide with, or impersonate, another request's).
#[test]
fn a_request_id_from_a_trusted_peer_is_kept() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new()
        .listener_option("main", r#"trusted_proxies = ["127.0.0.1/32"]"#)
        .everything_to(upstream.addr())
        .start();

    let response = Client::connect(proxy.addr())
        .request(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: client-chosen-42\r\n\r\n");

    let request = upstream.only_request();
    assert_eq!(request.header_all("x-request-id"), vec!["client-chosen-42"]);
    assert_eq!(response.header_all("x-request-id"), vec!["client-chosen-42"]);
}

/// A trusted peer's id longer than `MAX_REQUEST_ID_BYTES` (128) or with
/// spaces is replaced by a generated one, upstream and on the response
/// alike.
#[test]
fn an_oversized_or_malformed_client_request_id_is_replaced() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new()
        .listener_option("main", r#"trusted_proxies = ["127.0.0.1/32"]"#)
        .everything_to(upstream.addr())
        .start();
    let longest = "a".repeat(128);
    for (sent, kept) in [(longest.clone(), true), ("a".repeat(129), false), ("has space".to_string(), false)] {
        let raw = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: {sent}\r\n\r\n");
        let response = Client::connect(proxy.addr()).request(raw.as_bytes());
        let id = response.header("x-request-id").expect("a request id").to_string();
        assert_eq!(id == sent, kept, "sent {sent:?}, got {id:?}");
        if !kept {
            assert_eq!(id.len(), 32, "a generated id: {id:?}");
        }
    }
    let ids: Vec<String> =
        upstream.requests().iter().map(|r| r.header("x-request-id").expect("upstream id").to_string()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], longest);
}

#[test]
fn end_to_end_headers_pass_both_ways_in_order() {
    let upstream = Upstream::start(|_| {
        Reply::ok("ok")
            .with_header("X-Upstream", "yes")
            .with_header("Set-Cookie", "a=1")
            .with_header("Set-Cookie", "b=2")
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = Client::connect(proxy.addr())
        .request(b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n");

    assert_eq!(response.header("x-upstream"), Some("yes"));
    assert_eq!(response.header_all("set-cookie"), vec!["a=1", "b=2"]);
    let request = upstream.only_request();
    assert_eq!(request.header("accept"), Some("text/plain"));
    assert_eq!(request.header_list("x-multi"), vec!["1", "2"]);
}
