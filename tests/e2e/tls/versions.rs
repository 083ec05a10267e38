//! Protocol versions (1.2 and 1.3, `min_version`) and ALPN.

use rustls::ProtocolVersion;

use super::{tls_lines, Pki};
use crate::harness::tls::{tls_totals, TlsClient, Versions};
use crate::harness::*;

#[test]
fn tls12_and_tls13_clients_are_both_served_and_counted() {
    let pki = Pki::new();
    let (_, files) = pki.server("v", &["v.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new().tls("main", &tls_lines(&[files.toml()], &[])).everything_to(upstream.addr()).start();

    for (versions, want) in [(Versions::Only12, ProtocolVersion::TLSv1_2), (Versions::Only13, ProtocolVersion::TLSv1_3)]
    {
        let client = TlsClient::builder().trust(&pki.ca).versions(versions).build();
        let (handshake, response) = client.get(proxy.addr(), "v.test", "/");
        assert_eq!(handshake.version, want);
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "hello");
    }
    // A client offering both gets 1.3.
    let (handshake, _) = TlsClient::trusting(&pki.ca).get(proxy.addr(), "v.test", "/");
    assert_eq!(handshake.version, ProtocolVersion::TLSv1_3);

    let mut totals = tls_totals(&proxy);
    let counted = eventually(SLACK, || {
        totals = tls_totals(&proxy);
        totals.tls_handshakes == 3
    });
    assert!(counted, "{totals:#?}");
    assert_eq!((totals.tls12, totals.tls13, totals.tls_failures), (1, 2, 0), "{totals:#?}");
    // The same per listener in /metrics, summed over the shards.
    let metrics = Client::connect(proxy.admin())
        .request(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .text();
    let sum = |family: &str, version: Option<&str>| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains("listener=\"main\""))
            .filter(|l| version.is_none_or(|v| l.contains(&format!("version=\"{v}\""))))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let handshakes = "shardgate_listener_tls_handshakes_total";
    assert_eq!((sum(handshakes, Some("1.2")), sum(handshakes, Some("1.3"))), (1, 2), "{metrics}");
    assert_eq!(sum("shardgate_listener_tls_failures_total", None), 0, "{metrics}");
}

#[test]
fn min_version_13_refuses_a_tls12_only_client() {
    let pki = Pki::new();
    let (_, files) = pki.server("v", &["v.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new()
        .tls("main", &tls_lines(&[files.toml()], &[r#"min_version = "1.3""#]))
        .everything_to(upstream.addr())
        .start();

    let old = TlsClient::builder().trust(&pki.ca).versions(Versions::Only12).build();
    let refused = old.try_get(proxy.addr(), "v.test", "v.test", "/");
    let error = refused.map(|r| r.status).expect_err("a TLS 1.2 client was served");
    assert!(error.contains("ProtocolVersion"), "expected a protocol_version alert, got: {error}");

    let (handshake, response) =
        TlsClient::builder().trust(&pki.ca).versions(Versions::Only13).build().get(proxy.addr(), "v.test", "/");
    assert_eq!(handshake.version, ProtocolVersion::TLSv1_3);
    assert_eq!(response.status, 200);

    let mut totals = tls_totals(&proxy);
    let counted = eventually(SLACK, || {
        totals = tls_totals(&proxy);
        totals.tls_failures >= 1 && totals.tls_handshakes >= 1
    });
    assert!(counted, "{totals:#?}");
    assert_eq!((totals.tls12, totals.tls13), (0, 1), "{totals:#?}");
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn alpn_offers_only_http11() {
    let pki = Pki::new();
    let (_, files) = pki.server("alpn", &["alpn.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new().tls("main", &tls_lines(&[files.toml()], &[])).everything_to(upstream.addr()).start();

    for versions in [Versions::Only12, Versions::Only13] {
        let client = TlsClient::builder().trust(&pki.ca).versions(versions).alpn(&["h2", "http/1.1"]).build();
        let (handshake, response) = client.get(proxy.addr(), "alpn.test", "/");
        assert_eq!(
            handshake.alpn.as_deref(),
            Some(&b"http/1.1"[..]),
            "{versions:?}: negotiated {:?}",
            handshake.alpn.as_deref().map(String::from_utf8_lossy)
        );
        assert_eq!(response.status, 200);
    }

    // A client that offers no ALPN is served too, with none negotiated.
    let (handshake, response) = TlsClient::trusting(&pki.ca).get(proxy.addr(), "alpn.test", "/");
    assert_eq!(handshake.alpn, None);
    assert_eq!(response.status, 200);
}
