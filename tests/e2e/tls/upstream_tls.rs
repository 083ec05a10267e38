//! TLS to upstreams (`[clusters.tls]`): verification by CA and name,
//! failures as 502 naming the TLS failure (never a silent downgrade),
//! upstream mTLS, pooled TLS connections.

use super::Pki;
use crate::harness::config::toml_str;
use crate::harness::pki::{Ca, CertFiles};
use crate::harness::tls::{TlsBehaviour, TlsIdleAct, TlsUpstream};
use crate::harness::*;
use std::time::Duration;

/// `[clusters.tls]` with `lines` under it.
fn cluster_tls(lines: &[String]) -> String {
    format!("[clusters.tls]\n{}", lines.join("\n"))
}

fn ca_line(path: &std::path::Path) -> String {
    format!("ca = {}", toml_str(&path.display().to_string()))
}

/// Asserts a 502 whose body names the upstream TLS failure.
#[track_caller]
fn assert_tls_502(response: &Response, context: &str) {
    assert_eq!(response.status, 502, "{context}: {}", response.text());
    let body = response.text();
    assert!(
        body.contains("upstream TLS handshake failed"),
        "{context}: the 502 does not name the TLS failure: {body:?}"
    );
}

#[test]
fn a_tls_upstream_verified_by_ca_and_server_name_is_proxied_over_a_pooled_connection() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let upstream = TlsUpstream::start(&leaf, None, "secure hello");
    let proxy = ProxyConfig::new()
        .cluster_with(
            "secure",
            &[upstream.addr()],
            &cluster_tls(&[r#"server_name = "upstream.test""#.into(), ca_line(&pki.ca_file)]),
        )
        .route(Route::new("all").cluster("secure"))
        .start();

    let mut client = Client::connect(proxy.addr());
    for path in ["/one", "/two", "/three"] {
        let response = client.get(path);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_eq!(response.text(), "secure hello");
    }

    let requests = upstream.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.sni.as_deref(), Some("upstream.test"), "the SNI the proxy sent");
        assert!(request.head.to_ascii_lowercase().contains("\r\nx-forwarded-proto: http\r\n"), "{}", request.head);
    }
    assert_eq!(upstream.connections(), 1, "the TLS connection to the upstream was not reused: {requests:#?}");
    assert!(upstream.handshake_failures().is_empty(), "{:?}", upstream.handshake_failures());
}

#[test]
fn without_server_name_the_endpoint_ip_address_is_verified_and_no_sni_is_sent() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream-ip", &["127.0.0.1"]);
    let upstream = TlsUpstream::start(&leaf, None, "by address");
    let proxy = ProxyConfig::new()
        .cluster_with("secure", &[upstream.addr()], &cluster_tls(&[ca_line(&pki.ca_file)]))
        .route(Route::new("all").cluster("secure"))
        .start();

    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "by address");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].sni, None, "an IP address is never sent as SNI");
}

#[test]
fn an_upstream_certificate_from_an_unknown_ca_gets_502_naming_the_tls_failure() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let upstream = TlsUpstream::start(&leaf, None, "must not be seen");
    let other_ca_file = Ca::new("some other ca").write(&pki.dir, "other-ca");
    let proxy = ProxyConfig::new()
        .cluster_with(
            "secure",
            &[upstream.addr()],
            &cluster_tls(&[r#"server_name = "upstream.test""#.into(), ca_line(&other_ca_file)]),
        )
        .route(Route::new("all").cluster("secure"))
        .start();

    let response = get(proxy.addr(), "/");

    assert_tls_502(&response, "unknown CA");
    assert!(upstream.requests().is_empty(), "a request was sent over an unverified connection");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn an_upstream_certificate_for_another_name_gets_502_naming_the_tls_failure() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let upstream = TlsUpstream::start(&leaf, None, "must not be seen");
    let proxy = ProxyConfig::new()
        .cluster_with(
            "secure",
            &[upstream.addr()],
            &cluster_tls(&[r#"server_name = "other.test""#.into(), ca_line(&pki.ca_file)]),
        )
        .route(Route::new("all").cluster("secure"))
        .start();

    let response = get(proxy.addr(), "/");

    assert_tls_502(&response, "wrong name");
    assert!(upstream.requests().is_empty(), "a request was sent over an unverified connection");
}

#[test]
fn verify_false_accepts_an_untrusted_upstream_certificate() {
    let leaf = Ca::new("untrusted ca").server("upstream", &["upstream.test"]);
    let upstream = TlsUpstream::start(&leaf, None, "insecure but working");
    let proxy = ProxyConfig::new()
        .cluster_with(
            "insecure",
            &[upstream.addr()],
            &cluster_tls(&[r#"server_name = "whatever.test""#.into(), "verify = false".into()]),
        )
        .route(Route::new("all").cluster("insecure"))
        .start();

    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "insecure but working");
}

#[test]
fn upstream_mtls_presents_the_cluster_client_certificate() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let client_ca = Ca::new("upstream client ca");
    let proxy_cert = client_ca.client("shardgate-client", &["proxy.client.test"]);
    let proxy_files: CertFiles = proxy_cert.write(&pki.dir, "proxy-client");
    let upstream = TlsUpstream::start(&leaf, Some(&client_ca), "mutual");
    let common = [r#"server_name = "upstream.test""#.to_string(), ca_line(&pki.ca_file)];
    let with_cert = {
        let mut lines = common.to_vec();
        lines.push(format!("client_cert = {}", proxy_files.toml()));
        cluster_tls(&lines)
    };
    let proxy = ProxyConfig::new()
        .cluster_with("mutual", &[upstream.addr()], &with_cert)
        .cluster_with("anonymous", &[upstream.addr()], &cluster_tls(&common))
        .route(Route::new("anonymous").path_prefix("/anonymous").cluster("anonymous"))
        .route(Route::new("mutual").cluster("mutual"))
        .start();

    let response = get(proxy.addr(), "/mutual");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "mutual");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].client_subject.as_deref(), Some("CN=shardgate-client"));

    // Without a client certificate the upstream refuses the handshake.
    let response = get(proxy.addr(), "/anonymous");
    assert_eq!(response.status, 502, "{}", response.text());
    assert_eq!(upstream.requests().len(), 1, "the anonymous request reached the upstream");
}

#[test]
fn a_large_response_from_a_tls_upstream_arrives_intact() {
    const LEN: u64 = 3 * 1024 * 1024 + 17;
    let mut body = Vec::with_capacity(LEN as usize);
    pattern::for_each_piece(LEN, |piece| body.extend_from_slice(piece));
    let expected = sha256_hex(&body);
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let upstream = TlsUpstream::start(&leaf, None, body);
    let proxy = ProxyConfig::new()
        .cluster_with(
            "secure",
            &[upstream.addr()],
            &cluster_tls(&[r#"server_name = "upstream.test""#.into(), ca_line(&pki.ca_file)]),
        )
        .route(Route::new("all").cluster("secure"))
        .start();

    let mut client = Client::connect(proxy.addr());
    for round in 0..2 {
        let mut hash = client::StreamHash::default();
        client.send(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let response = client.read_response_streaming(&mut |bytes| hash.feed(bytes));
        assert_eq!(response.status, 200, "round {round}");
        assert_eq!(hash.len, LEN, "round {round}");
        assert_eq!(hash.hex(), expected, "round {round}");
    }
}

// Pooled TLS connections: what arrives on an idle connection is judged
// after rustls has processed it. TLS housekeeping keeps the connection; a
// close_notify or application bytes retire it.

fn pooled_tls_proxy(upstream: &TlsUpstream, pki: &Pki) -> Proxy {
    ProxyConfig::new()
        .cluster_with(
            "secure",
            &[upstream.addr()],
            &cluster_tls(&[r#"server_name = "upstream.test""#.into(), ca_line(&pki.ca_file)]),
        )
        .route(Route::new("all").cluster("secure"))
        .start()
}

const SMALL_POST: &[u8] = b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn an_idle_tls_connection_that_got_a_key_update_is_reused() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let behaviour = TlsBehaviour::AfterResponse(Duration::from_millis(30), TlsIdleAct::KeyUpdate);
    let upstream = TlsUpstream::start_behaving(&leaf, None, "kept", behaviour);
    let proxy = pooled_tls_proxy(&upstream, &pki);
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/one").text(), "kept");
    std::thread::sleep(Duration::from_millis(300));
    let second = client.request(SMALL_POST);
    assert_eq!((second.status, second.text().as_str()), (200, "kept"));
    assert_eq!(upstream.connections(), 1, "a key update is not application data: the connection was kept");
}

#[test]
fn an_idle_tls_connection_that_got_close_notify_is_not_reused() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let behaviour = TlsBehaviour::AfterResponse(Duration::from_millis(30), TlsIdleAct::CloseNotify);
    let upstream = TlsUpstream::start_behaving(&leaf, None, "fresh", behaviour);
    let proxy = pooled_tls_proxy(&upstream, &pki);
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/one").text(), "fresh");
    std::thread::sleep(Duration::from_millis(300));
    // A POST is not retried: it only succeeds if the closed connection was
    // never used.
    let second = client.request(SMALL_POST);
    assert_eq!((second.status, second.text().as_str()), (200, "fresh"), "{}", second.text());
    assert_eq!(upstream.connections(), 2);
}

#[test]
fn application_bytes_on_an_idle_tls_connection_retire_it() {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let stray = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=A\r\nContent-Length: 6\r\n\r\nstolen".to_vec();
    let behaviour = TlsBehaviour::AfterResponse(Duration::from_millis(30), TlsIdleAct::AppBytes(stray));
    let upstream = TlsUpstream::start_behaving(&leaf, None, "mine", behaviour);
    let proxy = pooled_tls_proxy(&upstream, &pki);
    assert_eq!(get(proxy.addr(), "/a").text(), "mine");
    std::thread::sleep(Duration::from_millis(300));
    let b = get(proxy.addr(), "/b");
    assert_eq!(b.text(), "mine", "client B never reads bytes that arrived while the connection was idle");
    assert!(b.header("set-cookie").is_none());
    assert_eq!(upstream.connections(), 2);
}

/// What an HTTP/1.1 client receives of a close-delimited TLS response.
fn close_delimited_over_tls(close_notify: bool) -> (Vec<u8>, bool) {
    let pki = Pki::new();
    let leaf = pki.ca.server("upstream", &["upstream.test"]);
    let behaviour = TlsBehaviour::CloseDelimited { close_notify };
    let upstream = TlsUpstream::start_behaving(&leaf, None, "part of a body", behaviour);
    let proxy = pooled_tls_proxy(&upstream, &pki);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    client.read_until_close(Duration::from_secs(10))
}

#[test]
fn a_tls_upstream_that_ends_without_close_notify_leaves_the_response_visibly_truncated() {
    let (bytes, closed) = close_delimited_over_tls(false);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("part of a body"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "a truncated body must not get a final chunk: {text:?}");
    assert!(closed, "the client connection is closed");

    // With close_notify the same body ends properly.
    let (bytes, _) = close_delimited_over_tls(true);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.ends_with("0\r\n\r\n"), "a complete close-delimited body ends with the last chunk: {text:?}");
}
