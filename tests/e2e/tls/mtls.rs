//! Client certificates (mTLS): verified against `client_ca`, the verified
//! identity forwarded in `client_cert_header`, everyone else refused at the
//! handshake.

use super::{tls_lines, Pki};
use crate::harness::pki::Ca;
use crate::harness::tls::{tls_totals, TlsClient, Versions};
use crate::harness::*;

/// A one-shard proxy whose `main` listener requires a client certificate
/// from `client_ca` and forwards its identity as `x-client-cert`; listener
/// `public` serves the same certificate without asking for one.
fn mtls_proxy(pki: &Pki, client_ca: &Ca, upstream: &Upstream) -> Proxy {
    let (_, files) = pki.server("mtls", &["mtls.test"]);
    let client_ca_file = client_ca.write(&pki.dir, "client-ca");
    ProxyConfig::new()
        .listener("public", "")
        .tls("public", &tls_lines(&[files.toml()], &[]))
        .tls(
            "main",
            &tls_lines(
                &[files.toml()],
                &[
                    &format!("client_ca = {}", config::toml_str(&client_ca_file.display().to_string())),
                    r#"client_cert_header = "x-client-cert""#,
                ],
            ),
        )
        .everything_to(upstream.addr())
        .start()
}

#[test]
fn a_client_certificate_from_the_ca_is_accepted_and_only_its_verified_identity_reaches_upstream() {
    let pki = Pki::new();
    let client_ca = Ca::new("client ca");
    let alice = client_ca.client("alice", &["alice.client.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = mtls_proxy(&pki, &client_ca, &upstream);

    for versions in [Versions::Only12, Versions::Only13] {
        let client = TlsClient::builder().trust(&pki.ca).versions(versions).client_cert(&alice).build();
        let mut conn = client.connect(proxy.addr(), "mtls.test");
        let plain = conn.request(b"GET /plain HTTP/1.1\r\nHost: mtls.test\r\n\r\n");
        assert_eq!(plain.status, 200, "{versions:?}: {}", plain.text());
        // Forged values, in two fields and two spellings of the name.
        let forged = conn.request(
            b"GET /forged HTTP/1.1\r\nHost: mtls.test\r\nx-client-cert: subject=\"CN=mallory\";san=\"\"\r\n\
              X-Client-Cert: subject=\"CN=root\"\r\n\r\n",
        );
        assert_eq!(forged.status, 200, "{versions:?}: {}", forged.text());

        // A resumed session still carries the verified identity.
        let mut resumed = client.connect(proxy.addr(), "mtls.test");
        assert!(resumed.handshake.resumed(), "{versions:?}: {:?}", resumed.handshake.kind);
        let response = resumed.request(b"GET /resumed HTTP/1.1\r\nHost: mtls.test\r\n\r\n");
        assert_eq!(response.status, 200, "{versions:?}: {}", response.text());
    }

    let requests = upstream.wait_for_requests(6);
    assert_eq!(requests.len(), 6);
    for request in &requests {
        assert_eq!(
            request.header_all("x-client-cert"),
            [r#"subject="CN=alice";san="DNS:alice.client.test""#],
            "{} {}: {:?}",
            request.method,
            request.target,
            String::from_utf8_lossy(&request.raw_head)
        );
    }
}

#[test]
fn clients_without_a_certificate_or_with_one_from_another_ca_are_refused_at_the_handshake() {
    let pki = Pki::new();
    let client_ca = Ca::new("client ca");
    let stranger_ca = Ca::new("stranger ca");
    let mallory = stranger_ca.client("mallory", &["mallory.client.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = mtls_proxy(&pki, &client_ca, &upstream);

    let mut attempts = 0;
    for versions in [Versions::Only12, Versions::Only13] {
        let no_cert = TlsClient::builder().trust(&pki.ca).versions(versions).build();
        let foreign_cert = TlsClient::builder().trust(&pki.ca).versions(versions).client_cert(&mallory).build();
        for (who, client, alert) in [
            ("no certificate", no_cert, "CertificateRequired"),
            ("a certificate from another CA", foreign_cert, "UnknownCA"),
        ] {
            // TLS 1.2 fails inside the handshake; in TLS 1.3 the client's
            // side of the handshake is done before the server checks its
            // certificate, so the refusal (an alert) comes on the first read.
            let result = client.try_get(proxy.addr(), "mtls.test", "mtls.test", "/");
            let error = result.map(|r| r.status).expect_err(&format!("{versions:?}, {who}: served"));
            assert!(error.contains(alert), "{versions:?}, {who}: expected a {alert} alert, got: {error}");
            attempts += 1;
        }
    }

    let mut totals = tls_totals(&proxy);
    let counted = eventually(SLACK, || {
        totals = tls_totals(&proxy);
        totals.tls_failures >= attempts
    });
    assert!(counted, "{attempts} refused handshakes, counters {totals:#?}");
    assert_eq!(totals.tls_handshakes, 0, "{totals:#?}");
    assert_eq!(upstream.heads_received(), 0, "a refused client's request reached the upstream");
}

#[test]
fn a_session_from_a_listener_without_client_auth_does_not_resume_on_the_mtls_listener() {
    let pki = Pki::new();
    let client_ca = Ca::new("client ca");
    let upstream = Upstream::path_echo();
    let proxy = mtls_proxy(&pki, &client_ca, &upstream);

    for versions in [Versions::Only12, Versions::Only13] {
        // One client, one session store: its session for mtls.test comes
        // from the public listener, which asked for no certificate.
        let client = TlsClient::builder().trust(&pki.ca).versions(versions).build();
        let (_, response) = client.get(proxy.listener("public"), "mtls.test", "/public");
        assert_eq!(response.status, 200, "{versions:?}: {}", response.text());

        let result = client.try_get(proxy.addr(), "mtls.test", "mtls.test", "/mtls");
        let served = result.as_ref().map(|r| r.status).ok();
        assert!(served.is_none(), "{versions:?}: served {served:?} without a client certificate");
    }
    let targets: Vec<String> = upstream.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/public", "/public"]);
}

/// configs/tls.toml's shape: one route serves an mTLS listener and
/// listeners that ask for no certificate. The header the mTLS listener
/// asserts is the proxy's word on every listener: a client of the HTTPS
/// or plain listener cannot send it upstream itself.
#[test]
fn a_forged_client_certificate_header_is_dropped_on_listeners_without_client_auth() {
    let pki = Pki::new();
    let client_ca = Ca::new("client ca");
    let upstream = Upstream::ok("hello");
    let (_, files) = pki.server("mtls", &["mtls.test"]);
    let client_ca_file = client_ca.write(&pki.dir, "client-ca");
    let proxy = ProxyConfig::new()
        .listener("https", "")
        .tls("https", &tls_lines(&[files.toml()], &[]))
        .listener("plain", "")
        .tls(
            "main",
            &tls_lines(
                &[files.toml()],
                &[
                    &format!("client_ca = {}", config::toml_str(&client_ca_file.display().to_string())),
                    r#"client_cert_header = "X-Client-Cert""#,
                ],
            ),
        )
        .everything_to(upstream.addr())
        .start();
    let forged = b"GET /forged HTTP/1.1\r\nHost: mtls.test\r\nX-Client-Cert: subject=\"CN=admin\"\r\n\
                   x-client-cert: subject=\"CN=root\"\r\n\r\n";

    let client = TlsClient::builder().trust(&pki.ca).build();
    let over_https = client.connect(proxy.listener("https"), "mtls.test").request(forged);
    assert_eq!(over_https.status, 200, "{}", over_https.text());
    let over_plain = Client::connect(proxy.listener("plain")).request(forged);
    assert_eq!(over_plain.status, 200, "{}", over_plain.text());

    let requests = upstream.wait_for_requests(2);
    for request in &requests {
        assert!(
            !request.has_header("x-client-cert"),
            "a client-written certificate identity reached the upstream:\n{}",
            String::from_utf8_lossy(&request.raw_head)
        );
    }
}
