//! Certificate selection by SNI: exact names, `*.suffix` wildcards,
//! `server_names` overriding the certificate's own names, the first
//! certificate as the default, and `strict_sni`.

use super::{assert_leaf, tls_lines, Pki};
use crate::harness::tls::{tls_totals, TlsClient};
use crate::harness::*;

#[test]
fn sni_picks_among_three_certificates_and_the_first_is_the_default() {
    let pki = Pki::new();
    // The default also names 127.0.0.1, so a client without SNI can verify it.
    let (default, default_files) = pki.server("default", &["default.test", "127.0.0.1"]);
    let (a, a_files) = pki.server("a", &["a.test"]);
    let (b, b_files) = pki.server("b", &["b.test", "also-b.test"]);
    let (wild, wild_files) = pki.server("wild", &["*.wild.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new()
        .tls(
            "main",
            &tls_lines(
                &[default_files.toml(), a_files.toml(), b_files.toml_with_names(&["b.test"]), wild_files.toml()],
                &[],
            ),
        )
        .everything_to(upstream.addr())
        .start();

    // Verified against the CA: each name gets its own certificate.
    let client = TlsClient::trusting(&pki.ca);
    for (name, want) in [("a.test", &a), ("b.test", &b), ("x.wild.test", &wild), ("default.test", &default)] {
        let (handshake, response) = client.get(proxy.addr(), name, "/");
        assert_leaf(&handshake, want, name);
        assert_eq!(response.status, 200, "{name}: {}", response.text());
        assert_eq!(response.text(), "hello");
    }

    // An IP address as the server name: rustls sends no SNI.
    let (handshake, response) = client.get(proxy.addr(), "127.0.0.1", "/");
    assert_leaf(&handshake, &default, "no SNI");
    assert_eq!(response.status, 200);

    // Names no certificate covers get the default; `server_names` replaces a
    // certificate's own names (b's also-b.test is not served); a wildcard
    // covers one label only.
    let any = TlsClient::builder().accept_any_certificate().build();
    for (name, want) in
        [("unknown.test", &default), ("also-b.test", &default), ("wild.test", &default), ("y.x.wild.test", &default)]
    {
        let (handshake, response) = any.get(proxy.addr(), name, "/");
        assert_leaf(&handshake, want, name);
        assert_eq!(response.status, 200);
    }
    assert_eq!(upstream.requests().len(), 9);
}

#[test]
fn strict_sni_refuses_unknown_and_missing_names_and_counts_the_failures() {
    let pki = Pki::new();
    let (a, a_files) = pki.server("a", &["a.test", "127.0.0.1"]);
    let (_, b_files) = pki.server("b", &["b.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new()
        .tls("main", &tls_lines(&[a_files.toml(), b_files.toml()], &["strict_sni = true"]))
        .everything_to(upstream.addr())
        .start();

    let (handshake, response) = TlsClient::trusting(&pki.ca).get(proxy.addr(), "a.test", "/");
    assert_leaf(&handshake, &a, "a.test");
    assert_eq!(response.status, 200);
    assert_eq!(tls_totals(&proxy).tls_failures, 0);

    let any = TlsClient::builder().accept_any_certificate().build();
    for name in ["unknown.test", "127.0.0.1"] {
        let result = any.try_get(proxy.addr(), name, "a.test", "/");
        let error = result.map(|r| r.status).expect_err(&format!("{name}: strict SNI served it"));
        assert!(error.contains("alert"), "{name}: refused without an alert: {error}");
    }

    let mut totals = tls_totals(&proxy);
    let counted = eventually(SLACK, || {
        totals = tls_totals(&proxy);
        totals.tls_failures >= 2
    });
    assert!(counted, "two refused handshakes, counters {totals:#?}");
    assert_eq!(totals.tls_handshakes, 1, "{totals:#?}");
    assert_eq!(upstream.requests().len(), 1);
}
