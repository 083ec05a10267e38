//! Clients that are not ours: curl and `openssl s_client` against an HTTPS
//! listener, and `shardgate proxy --tls-cert --tls-key`.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{assert_leaf, tls_lines, Pki};
use crate::harness::proxy::{run_to_completion, shardgate_output};
use crate::harness::tls::TlsClient;
use crate::harness::*;

/// How long an external client may run.
const TOOL_DEADLINE: Duration = Duration::from_secs(20);

/// Whether `tool` can be run (`tool --version` or `tool version`).
fn installed(tool: &str, version_arg: &str) -> bool {
    Command::new(tool).arg(version_arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Runs `command` with `stdin` as its input; kills it after
/// [`TOOL_DEADLINE`].
fn run(command: Command, stdin: &[u8]) -> Output {
    run_to_completion(command, stdin, TOOL_DEADLINE)
}

#[test]
fn curl_fetches_through_the_https_listener_verifying_the_certificate() {
    if !installed("curl", "--version") {
        panic!("curl is not installed (.ci/run installs it)");
    }
    let pki = Pki::new();
    let (_, files) = pki.server("curl", &["curl.test"]);
    let upstream = Upstream::start(|req| Reply::ok(format!("{} {} from upstream", req.method, req.target)));
    let proxy = ProxyConfig::new()
        .tls("main", &tls_lines(&[files.toml()], &[r#"hsts = "max-age=60""#]))
        .everything_to(upstream.addr())
        .start();
    let port = proxy.addr().port();

    for version in ["--tlsv1.2", "--tlsv1.3"] {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--http1.1", version, "--max-time", "10", "-i", "--cacert"])
            .arg(&pki.ca_file)
            .args(["--resolve", &format!("curl.test:{port}:127.0.0.1")])
            .arg(format!("https://curl.test:{port}/hello?who=curl"));
        let output = run(curl, b"");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "curl {version} failed ({}): {}\n{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.starts_with("HTTP/1.1 200"), "curl {version}: {stdout}");
        assert!(stdout.to_ascii_lowercase().contains("\r\nstrict-transport-security: max-age=60\r\n"), "{stdout}");
        assert!(stdout.ends_with("\r\n\r\nGET /hello?who=curl from upstream"), "curl {version}: {stdout}");
    }

    // A CA that did not issue the certificate: curl refuses to talk.
    let other_ca = crate::harness::pki::Ca::new("not the issuer").write(&pki.dir, "other-ca");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&other_ca)
        .args(["--resolve", &format!("curl.test:{port}:127.0.0.1")])
        .arg(format!("https://curl.test:{port}/"));
    let output = run(curl, b"");
    assert!(!output.status.success(), "curl accepted a certificate its CA did not issue");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.header("x-forwarded-proto") == Some("https")), "{requests:#?}");
}

#[test]
fn openssl_s_client_fetches_through_the_https_listener() {
    if !installed("openssl", "version") {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let pki = Pki::new();
    let (_, files) = pki.server("openssl", &["openssl.test"]);
    let upstream = Upstream::ok("hello openssl");
    let proxy = ProxyConfig::new().tls("main", &tls_lines(&[files.toml()], &[])).everything_to(upstream.addr()).start();

    for (flag, protocol) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let mut openssl = Command::new("openssl");
        openssl
            .args(["s_client", "-connect", &proxy.addr().to_string(), "-servername", "openssl.test"])
            .args(["-verify_hostname", "openssl.test", "-verify_return_error", "-brief", "-ign_eof", flag])
            .args(["-alpn", "h2,http/1.1", "-CAfile"])
            .arg(&pki.ca_file);
        let output = run(openssl, b"GET /s_client HTTP/1.1\r\nHost: openssl.test\r\nConnection: close\r\n\r\n");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stdout.starts_with("HTTP/1.1 200"), "openssl {flag}: stdout {stdout:?}\nstderr {stderr}");
        assert!(stdout.ends_with("hello openssl"), "openssl {flag}: {stdout:?}");
        assert!(stderr.contains(&format!("Protocol version: {protocol}")), "openssl {flag}: {stderr}");
        assert!(stderr.contains("Verification: OK"), "openssl {flag}: {stderr}");
    }
    assert_eq!(upstream.requests().len(), 2);
}

#[test]
fn proxy_command_with_tls_cert_and_key_serves_https() {
    let pki = Pki::new();
    let (leaf, files) = pki.server("quick", &["localhost"]);
    let upstream = Upstream::path_echo();
    let cert = files.cert.display().to_string();
    let key = files.key.display().to_string();
    let proxy = Proxy::proxy_command(&[upstream.addr()], &["--tls-cert", &cert, "--tls-key", &key]);

    let (handshake, response) = TlsClient::trusting(&pki.ca).get(proxy.addr(), "localhost", "/quick");

    assert_leaf(&handshake, &leaf, "shardgate proxy --tls-cert");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "GET /quick");
    assert_eq!(upstream.only_request().header("x-forwarded-proto"), Some("https"));
    // Plain HTTP on the same port is not served.
    let plain = client::try_send_raw(proxy.addr(), b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(plain.map(|r| r.status).unwrap_or(0) != 200, "plain HTTP was served on the HTTPS port");
}

#[test]
fn proxy_command_with_an_unreadable_tls_key_fails_naming_the_file() {
    let pki = Pki::new();
    let (_, files) = pki.server("quick", &["localhost"]);
    let missing = pki.dir.path().join("missing.key").display().to_string();
    let cert = files.cert.display().to_string();

    let output = shardgate_output(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--tls-cert",
        &cert,
        "--tls-key",
        &missing,
    ]);

    assert!(!output.status.success(), "started with a missing key file");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.key"), "the error does not name the key file: {stderr}");
}
