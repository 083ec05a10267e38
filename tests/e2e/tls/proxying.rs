//! Requests through an HTTPS listener: HSTS on every response,
//! `X-Forwarded-Proto: https` upstream, bodies intact both ways, keep-alive.

use super::{tls_lines, Pki};
use crate::harness::tls::TlsClient;
use crate::harness::*;

const HSTS: &str = "max-age=31536000; includeSubDomains";

#[test]
fn hsts_is_on_every_https_response_and_never_on_plain_http() {
    let pki = Pki::new();
    let (_, files) = pki.server("hsts", &["hsts.test"]);
    let upstream = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .tls("main", &tls_lines(&[files.toml()], &[&format!("hsts = {}", config::toml_str(HSTS))]))
        .listener("plain", "")
        .cluster("backend", &[upstream.addr()])
        .route(Route::new("direct").path("/direct").direct(200, "direct answer"))
        .route(Route::new("proxied").path_prefix("/app/").cluster("backend"))
        .start();

    let mut conn = TlsClient::trusting(&pki.ca).connect(proxy.addr(), "hsts.test");
    for (target, status) in [("/app/x", 200), ("/direct", 200), ("/nowhere", 404)] {
        let response = conn.request(format!("GET {target} HTTP/1.1\r\nHost: hsts.test\r\n\r\n").as_bytes());
        assert_eq!(response.status, status, "{target}: {}", response.text());
        assert_eq!(
            response.header_all("strict-transport-security"),
            [HSTS],
            "{target} over TLS: {}",
            String::from_utf8_lossy(&response.raw_head)
        );
    }

    for target in ["/app/x", "/direct", "/nowhere"] {
        let response = get(proxy.listener("plain"), target);
        assert_eq!(response.header("strict-transport-security"), None, "{target} over plain HTTP");
    }
}

#[test]
fn the_upstream_sees_x_forwarded_proto_https_from_the_tls_listener_only() {
    let pki = Pki::new();
    let (_, files) = pki.server("xfp", &["xfp.test"]);
    let upstream = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .tls("main", &tls_lines(&[files.toml()], &[]))
        .listener("plain", "")
        .everything_to(upstream.addr())
        .start();

    let (_, response) = TlsClient::trusting(&pki.ca).get(proxy.addr(), "xfp.test", "/secure");
    assert_eq!(response.text(), "GET /secure");
    assert_eq!(get(proxy.listener("plain"), "/plain").text(), "GET /plain");

    let requests = upstream.wait_for_requests(2);
    let proto = |target: &str| {
        let request = requests.iter().find(|r| r.target == target).expect("request at the upstream");
        request.header_all("x-forwarded-proto").iter().map(|v| v.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(proto("/secure"), ["https"]);
    assert_eq!(proto("/plain"), ["http"]);
}

#[test]
fn large_bodies_cross_a_tls_listener_intact_on_a_kept_alive_connection() {
    const UP: u64 = 2 * 1024 * 1024 + 5;
    const DOWN: u64 = 5 * 1024 * 1024 + 3;
    let pki = Pki::new();
    let (_, files) = pki.server("bodies", &["bodies.test"]);
    let upstream = Upstream::start(|_| Reply::pattern(DOWN));
    let proxy = ProxyConfig::new().tls("main", &tls_lines(&[files.toml()], &[])).everything_to(upstream.addr()).start();
    let mut body = Vec::with_capacity(UP as usize);
    pattern::for_each_piece(UP, |piece| body.extend_from_slice(piece));
    let mut down = Vec::with_capacity(DOWN as usize);
    pattern::for_each_piece(DOWN, |piece| down.extend_from_slice(piece));
    let expected_down = sha256_hex(&down);

    let mut conn = TlsClient::trusting(&pki.ca).connect(proxy.addr(), "bodies.test");
    for round in 0..2 {
        let mut request =
            format!("POST /upload HTTP/1.1\r\nHost: bodies.test\r\nContent-Length: {UP}\r\n\r\n").into_bytes();
        request.extend_from_slice(&body);
        conn.send(&request);
        let mut hash = client::StreamHash::default();
        let response = conn.read_response_streaming(&mut |bytes| hash.feed(bytes));
        assert_eq!(response.status, 200, "round {round}");
        assert_eq!(hash.len, DOWN, "round {round}");
        assert_eq!(hash.hex(), expected_down, "round {round}");
    }

    let requests = upstream.wait_for_requests(2);
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.body_len, UP);
        assert_eq!(request.body_sha256, sha256_hex(&body));
    }
}
