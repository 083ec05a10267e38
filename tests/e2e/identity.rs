//! Who the client is, as the upstream hears it: the effective client
//! address (`trusted_proxies`), the forwarding headers built from it
//! (X-Forwarded-For, X-Real-IP, Forwarded), the request id, request
//! trailers, and the Host an HTTP/1.0 request without one is given.
//!
//! Every client here connects from 127.0.0.1: that peer is untrusted
//! unless the test lists it in `trusted_proxies`.

use std::time::Duration;

use crate::harness::*;

/// A client on an untrusted peer claiming to be someone else in every
/// forwarding header a proxy or application reads.
const SPOOFED: &[u8] = b"GET /who HTTP/1.1\r\n\
    Host: app.test\r\n\
    X-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n\
    Forwarded: for=203.0.113.7;proto=https;host=bank.example\r\n\
    X-Real-IP: 203.0.113.7\r\n\
    X-Forwarded-Proto: https\r\n\
    X-Forwarded-Host: bank.example\r\n\
    X-Request-Id: chosen-by-the-client\r\n\
    \r\n";

#[test]
fn spoofed_forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = Client::connect(proxy.addr()).request(SPOOFED);

    assert_eq!(response.status, 200);
    let request = upstream.only_request();
    let head = String::from_utf8_lossy(&request.raw_head).into_owned();
    assert_eq!(request.header_list("x-forwarded-for"), ["127.0.0.1"], "{head}");
    assert_eq!(request.header_all("x-real-ip"), ["127.0.0.1"], "{head}");
    assert_eq!(request.header_all("forwarded"), ["for=127.0.0.1;proto=http;host=app.test"], "{head}");
    assert_eq!(request.header_all("x-forwarded-proto"), ["http"], "{head}");
    assert_eq!(request.header_all("x-forwarded-host"), ["app.test"], "{head}");
    // The id is ours, on both sides.
    let id = request.header("x-request-id").expect("an id upstream");
    assert_ne!(id, "chosen-by-the-client");
    assert_eq!(response.header("x-request-id"), Some(id));
}

#[test]
fn a_trusted_peer_names_the_client_and_its_chain_is_kept() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new()
        .listener_option("main", r#"trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]"#)
        .everything_to(upstream.addr())
        .start();

    // X-Forwarded-For, walked from the right past the trusted 10.0.0.2:
    // the client is 203.0.113.7, not the leftmost (client-written) entry.
    let response = Client::connect(proxy.addr()).request(
        b"GET /xff HTTP/1.1\r\nHost: app.test\r\n\
          X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\nX-Forwarded-For: 10.0.0.2\r\n\
          X-Real-IP: 198.51.100.1\r\nX-Forwarded-Proto: https\r\nX-Request-Id: edge-id-1\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    // Forwarded only, IPv6 with a port, quoted as RFC 7239 wants.
    let response = Client::connect(proxy.addr()).request(
        b"GET /forwarded HTTP/1.1\r\nHost: app.test\r\n\
          Forwarded: for=\"[2001:db8::1]:4711\";proto=https, for=10.1.2.3\r\n\r\n",
    );
    assert_eq!(response.status, 200);

    let requests = upstream.wait_for_requests(2);
    let xff = &requests[0];
    let head = String::from_utf8_lossy(&xff.raw_head).into_owned();
    assert_eq!(xff.header_all("x-real-ip"), ["203.0.113.7"], "{head}");
    assert_eq!(xff.header_list("x-forwarded-for"), ["198.51.100.1", "203.0.113.7", "10.0.0.2", "127.0.0.1"], "{head}");
    assert_eq!(xff.header_all("forwarded"), ["for=203.0.113.7, for=127.0.0.1;proto=http;host=app.test"], "{head}");
    assert_eq!(xff.header_all("x-forwarded-proto"), ["https"], "the trusted proxy's word on the scheme: {head}");
    assert_eq!(xff.header_all("x-request-id"), ["edge-id-1"], "{head}");

    let fwd = &requests[1];
    let head = String::from_utf8_lossy(&fwd.raw_head).into_owned();
    assert_eq!(fwd.header_all("x-real-ip"), ["2001:db8::1"], "{head}");
    assert_eq!(fwd.header_list("x-forwarded-for"), ["2001:db8::1", "127.0.0.1"], "{head}");
    assert_eq!(
        fwd.header_all("forwarded"),
        [r#"for="[2001:db8::1]:4711";proto=https, for=10.1.2.3, for=127.0.0.1;proto=http;host=app.test"#],
        "{head}"
    );
}

#[test]
fn append_mode_keeps_an_untrusted_chain_but_not_its_claims() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new()
        .listener_option("main", r#"forwarded_headers = "append""#)
        .everything_to(upstream.addr())
        .start();

    Client::connect(proxy.addr()).request(SPOOFED);

    let request = upstream.only_request();
    let head = String::from_utf8_lossy(&request.raw_head).into_owned();
    // nginx's $proxy_add_x_forwarded_for: the list as sent, the peer last.
    assert_eq!(request.header_list("x-forwarded-for"), ["203.0.113.7", "198.51.100.2", "127.0.0.1"], "{head}");
    assert_eq!(
        request.header_all("forwarded"),
        ["for=203.0.113.7;proto=https;host=bank.example, for=127.0.0.1;proto=http;host=app.test"],
        "{head}"
    );
    // Still the peer: an untrusted list names no one.
    assert_eq!(request.header_all("x-real-ip"), ["127.0.0.1"], "{head}");
    assert_eq!(request.header_all("x-forwarded-proto"), ["http"], "{head}");
    assert_ne!(request.header("x-request-id"), Some("chosen-by-the-client"), "{head}");
}

#[test]
fn a_peer_outside_the_trusted_ranges_is_not_trusted() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new()
        .listener_option("main", r#"trusted_proxies = ["10.0.0.0/8", "::1/128"]"#)
        .everything_to(upstream.addr())
        .start();

    Client::connect(proxy.addr()).request(SPOOFED);

    let request = upstream.only_request();
    assert_eq!(request.header_all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(request.header_list("x-forwarded-for"), ["127.0.0.1"]);
}

/// Trailer fields of a chunked request would reach most applications
/// merged into the header fields, past every rule the proxy applies to
/// those: they are dropped (nginx does the same). The trailer arrives with
/// the head in one case, in a later read in the other (two code paths).
#[test]
fn request_trailers_do_not_reach_the_upstream() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    const HEAD: &[u8] = b"POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    const BODY: &[u8] = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\
        X-Forwarded-For: 203.0.113.7\r\n\
        X-Client-Cert: subject=\"CN=admin\"\r\n\
        Authorization: Bearer forged\r\n\
        \r\n";

    let together = Client::connect(proxy.addr()).request(&[HEAD, BODY].concat());
    assert_eq!(together.status, 200);
    let mut client = Client::connect(proxy.addr());
    client.send(HEAD);
    std::thread::sleep(Duration::from_millis(100));
    client.send(BODY);
    let apart = client.read_response();
    assert_eq!(apart.status, 200);
    // The connection stays in sync after the dropped trailer.
    assert_eq!(client.get("/after").status, 200);

    let requests = upstream.wait_for_requests(3);
    for request in &requests[..2] {
        assert_eq!(request.body, b"hello world");
        assert!(request.chunked);
        assert_eq!(request.trailers, [], "trailer fields reached the upstream");
        assert!(!request.has_header("authorization"));
        assert!(!request.has_header("x-client-cert"));
        assert_eq!(request.header_list("x-forwarded-for"), ["127.0.0.1"]);
    }
    assert_eq!(requests[2].target, "/after");
}

/// HTTP/1.0 allows a request without Host; the proxy speaks HTTP/1.1
/// upstream, where Host is required: it sends the endpoint's address, as
/// nginx's `$proxy_host`.
#[test]
fn an_http_1_0_request_without_host_gets_the_endpoint_as_host() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let response = send_raw(proxy.addr(), b"GET /old HTTP/1.0\r\n\r\n");

    assert_eq!(response.status, 200);
    let request = upstream.only_request();
    let head = String::from_utf8_lossy(&request.raw_head).into_owned();
    assert_eq!(request.version, "HTTP/1.1", "{head}");
    assert_eq!(request.header_all("host"), [upstream.addr().to_string().as_str()], "{head}");
    // No client Host, so nothing to report as the original one.
    assert!(!request.has_header("x-forwarded-host"), "{head}");
}

/// Header names with `_` are how a client reaches past the proxy's header
/// rules: CGI-style servers (WSGI, PHP-FPM, Rack) read `X_Forwarded_For` and
/// `X-Forwarded-For` as the same variable, so a client could supply the
/// identity the proxy replaced. Dropped by default, as nginx does
/// (`underscores_in_headers off`); passed when the listener allows them.
const UNDERSCORED: &[u8] = b"GET /who HTTP/1.1\r\n\
    Host: app.test\r\n\
    X_Forwarded_For: 203.0.113.7\r\n\
    X_Real_IP: 203.0.113.7\r\n\
    Transfer_Encoding: chunked\r\n\
    My_Header: kept only when allowed\r\n\
    X-Plain: always\r\n\
    \r\n";

#[test]
fn header_names_with_underscores_are_dropped_unless_the_listener_allows_them() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    assert_eq!(Client::connect(proxy.addr()).request(UNDERSCORED).status, 200);
    let request = upstream.only_request();
    let head = String::from_utf8_lossy(&request.raw_head).into_owned();
    assert!(!head.contains('_'), "an underscored name reached the upstream: {head}");
    assert_eq!(request.header("x-plain"), Some("always"), "{head}");
    assert_eq!(request.header_list("x-forwarded-for"), ["127.0.0.1"], "{head}");

    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new()
        .listener_option("main", "underscores_in_headers = true")
        .everything_to(upstream.addr())
        .start();
    assert_eq!(Client::connect(proxy.addr()).request(UNDERSCORED).status, 200);
    let request = upstream.only_request();
    assert_eq!(request.header("my_header"), Some("kept only when allowed"));
    assert_eq!(request.header("x_forwarded_for"), Some("203.0.113.7"));
}
