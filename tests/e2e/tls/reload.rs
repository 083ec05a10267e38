//! A reload (SIGHUP, POST /reload) re-reads the certificate files: new
//! handshakes get the new certificate, open connections keep working, a
//! broken file leaves the current certificate serving. Changed TLS
//! settings apply to new handshakes; unchanged ones keep the session
//! ticket keys; a listener that turns HTTPS closes its plain connections.

use super::{assert_leaf, tls_lines, Pki};
use crate::harness::pki::replace_file;
use crate::harness::tls::TlsClient;
use crate::harness::*;

/// Fresh connections checked after each reload (a new client each time:
/// a resumed session would report the certificate of its first handshake).
const PROBES: usize = 8;

#[test]
fn sighup_swaps_the_certificate_for_new_handshakes_and_keeps_open_connections() {
    let pki = Pki::new();
    let (first, files) = pki.server("reload-first", &["reload.test"]);
    let second = pki.ca.server("reload-second", &["reload.test"]);
    let third = pki.ca.server("reload-third", &["reload.test"]);
    let upstream = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .shards(2)
        .tls("main", &tls_lines(&[files.toml()], &[]))
        .everything_to(upstream.addr())
        .start();
    let fresh = || TlsClient::trusting(&pki.ca).get(proxy.addr(), "reload.test", "/probe");
    let log_count = |needle: &str| proxy.log().lines().filter(|l| l.contains(needle)).count();

    let mut open = TlsClient::trusting(&pki.ca).connect(proxy.addr(), "reload.test");
    assert_leaf(&open.handshake, &first, "before the reload");
    assert_eq!(open.get("/one").text(), "GET /one");

    // A new certificate (new key, new subject) and SIGHUP.
    second.replace(&files);
    proxy.signal("HUP");
    let reloaded = eventually(SLACK, || log_count("certificates reloaded") >= 1);
    assert!(reloaded, "no `certificates reloaded` line after SIGHUP");
    for i in 0..PROBES {
        let (handshake, response) = fresh();
        assert_leaf(&handshake, &second, &format!("new connection {i} after the reload"));
        assert_eq!(response.status, 200);
    }
    let response = open.get("/two");
    assert_eq!((response.status, response.text().as_str()), (200, "GET /two"), "the open connection after the reload");

    // A file that is not a certificate: the reload fails, the second
    // certificate keeps serving.
    replace_file(&files.cert, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    proxy.signal("HUP");
    let failed = eventually(SLACK, || log_count("reload refused") >= 1);
    assert!(failed, "no `reload refused` line for a broken certificate file");
    for i in 0..PROBES {
        let (handshake, response) = fresh();
        assert_leaf(&handshake, &second, &format!("new connection {i} after the broken reload"));
        assert_eq!(response.status, 200);
    }

    // A valid certificate whose key is not the one in the key file: refused too.
    replace_file(&files.cert, third.cert_pem.as_bytes());
    proxy.signal("HUP");
    let failed = eventually(SLACK, || log_count("reload refused") >= 2);
    assert!(failed, "no `reload refused` line for a certificate that does not match its key");
    for i in 0..PROBES {
        let (handshake, _) = fresh();
        assert_leaf(&handshake, &second, &format!("new connection {i} after the mismatched reload"));
    }

    let response = open.get("/three");
    assert_eq!((response.status, response.text().as_str()), (200, "GET /three"), "the open connection at the end");
    assert_eq!(open.handshake.leaf, first.der, "the open connection was never renegotiated");
}

#[test]
fn a_reloaded_certificate_is_chosen_by_its_new_names() {
    let pki = Pki::new();
    let (default, default_files) = pki.server("default", &["default.test"]);
    let (old, swap_files) = pki.server("swap-old", &["old.test"]);
    let new = pki.ca.server("swap-new", &["new.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new()
        .tls("main", &tls_lines(&[default_files.toml(), swap_files.toml()], &[]))
        .everything_to(upstream.addr())
        .start();
    // Accept any certificate: after the reload old.test gets the default,
    // which does not name it.
    let leaf_for = |name: &str| TlsClient::builder().accept_any_certificate().build().get(proxy.addr(), name, "/").0;

    assert_leaf(&leaf_for("old.test"), &old, "old.test before the reload");
    assert_leaf(&leaf_for("new.test"), &default, "new.test before the reload");

    new.replace(&swap_files);
    proxy.signal("HUP");
    let reloaded = eventually(SLACK, || proxy.log().contains("certificates reloaded"));
    assert!(reloaded, "no `certificates reloaded` line after SIGHUP");

    assert_leaf(&leaf_for("new.test"), &new, "new.test after the reload");
    assert_leaf(&leaf_for("old.test"), &default, "old.test after the reload");
}

/// Proxies the startup test starts, each sent SIGHUP as soon as it reports
/// its listeners.
const EARLY_HUPS: usize = 8;

#[test]
fn sighup_as_soon_as_the_listeners_are_reported_reloads_instead_of_killing_the_proxy() {
    let pki = Pki::new();
    let (_, files) = pki.server("early", &["early.test"]);
    let config = ProxyConfig::new()
        .shards(2)
        .tls("main", &tls_lines(&[files.toml()], &[]))
        .route(crate::harness::Route::new("all").direct(200, "ok"));

    let mut proxies = Vec::new();
    for _ in 0..EARLY_HUPS {
        // `listening` lines are the readiness signal operators and scripts
        // have: a SIGHUP sent right after them must not hit the default
        // disposition (terminate).
        let proxy = config.start();
        proxy.signal("HUP");
        proxies.push(proxy);
    }
    for (i, proxy) in proxies.iter_mut().enumerate() {
        let reloaded = eventually(SLACK, || proxy.log().contains("certificates reloaded"));
        let exited = proxy.try_wait().map(|status| status.to_string());
        assert!(
            reloaded && exited.is_none(),
            "proxy {i} of {EARLY_HUPS}: SIGHUP right after the `listening` lines: reloaded {reloaded}, \
             exit status {exited:?}"
        );
    }
}

/// A reload that makes a plain listener (same name and address) an HTTPS
/// one: new connections speak TLS; a plain keep-alive connection open
/// before cannot, so its next request is served on its own generation and
/// the connection ends with it.
#[test]
fn a_listener_that_becomes_https_serves_new_connections_with_tls_and_closes_plain_ones() {
    let pki = Pki::new();
    let (_, files) = pki.server("becomes-https", &["switch.test"]);
    let upstream = Upstream::path_echo();
    let plain = ProxyConfig::new().shards(1).everything_to(upstream.addr());
    let https = plain.clone().tls("main", &tls_lines(&[files.toml()], &[]));
    let proxy = Proxy::run_toml(&plain.to_toml(), &["main", "admin"]);
    let mut open = Client::connect(proxy.addr());
    assert_eq!(open.get("/before").text(), "GET /before");

    proxy.write_config(&https.to_toml());
    let r = proxy.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, response) = TlsClient::trusting(&pki.ca).get(proxy.addr(), "switch.test", "/tls");
    assert_eq!(response.text(), "GET /tls", "a new connection speaks TLS");

    open.send(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = open.read_response_then_close().expect("the plain connection's last response");
    assert_eq!(response.text(), "GET /after");
    assert!(response.closed, "the plain connection ends after its request");
}

/// Changed TLS settings take effect for new handshakes; unchanged ones
/// keep the listener's session ticket keys, so sessions resume across a
/// reload.
#[test]
fn a_reload_applies_changed_tls_settings_and_keeps_sessions_of_unchanged_ones() {
    use crate::harness::tls::Versions;
    use rustls::HandshakeKind;
    let pki = Pki::new();
    let (_, files) = pki.server("settings", &["settings.test"]);
    let upstream = Upstream::ok("hello");
    let tls12 =
        ProxyConfig::new().shards(2).tls("main", &tls_lines(&[files.toml()], &[])).everything_to(upstream.addr());
    let tls13_only = ProxyConfig::new()
        .shards(2)
        .tls("main", &tls_lines(&[files.toml()], &[r#"min_version = "1.3""#]))
        .everything_to(upstream.addr());
    let proxy = Proxy::run_toml(&tls12.to_toml(), &["main", "admin"]);

    // Unchanged settings: a session from before the reload resumes after it.
    let client = TlsClient::builder().trust(&pki.ca).versions(Versions::Only13).build();
    let (first, _) = client.get(proxy.addr(), "settings.test", "/first");
    assert_eq!(first.kind, HandshakeKind::Full);
    assert_eq!(proxy.reload().status, 200);
    for i in 0..4 {
        let (handshake, response) = client.get(proxy.addr(), "settings.test", &format!("/after/{i}"));
        assert_eq!(response.status, 200);
        assert_eq!(handshake.kind, HandshakeKind::Resumed, "connection {i} after a reload that kept the TLS settings");
    }

    // A TLS 1.2 client is served, then refused once min_version is 1.3.
    let old = TlsClient::builder().trust(&pki.ca).versions(Versions::Only12).build();
    assert_eq!(old.get(proxy.addr(), "settings.test", "/").1.status, 200);
    proxy.write_config(&tls13_only.to_toml());
    let r = proxy.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let refused = old.try_get(proxy.addr(), "settings.test", "settings.test", "/");
    let error = refused.map(|r| r.status).expect_err("a TLS 1.2 client was served after min_version = 1.3");
    assert!(error.contains("ProtocolVersion"), "expected a protocol_version alert, got: {error}");
}
