//! End to end over TLS: the built `shardgate-load` binary against a small
//! rustls HTTPS server started here on 127.0.0.1:0 (std threads, rustls on
//! aws-lc-rs, a certificate made by rcgen). The server counts the
//! handshakes it completed, full and resumed, so the client's own counts
//! are checked against the other side of the wire.
//!
//! Assertions are on counts, never on timing.

mod common;

use common::{assert_counts_add_up, n, run_load};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Handshakes the server completed, by kind.
#[derive(Default)]
struct Seen {
    full: AtomicU64,
    resumed: AtomicU64,
}

/// A certificate for 127.0.0.1 and "bench.test", written as PEM into a
/// folder of its own (the client's --cacert).
struct Cert {
    dir: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key_pem: String,
}

impl Cert {
    fn new(tag: &str) -> Cert {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "bench.test".to_string()]).unwrap();
        let dir = std::env::temp_dir().join(format!("shardgate-load-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
        Cert { dir, chain: vec![ck.cert.der().clone()], key_pem: ck.signing_key.serialize_pem() }
    }

    fn path(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Start the HTTPS server; it lives until the test process exits.
fn server(cert: &Cert) -> (SocketAddr, Arc<Seen>) {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap())
        .unwrap();
    config.ticketer = aws_lc_rs::Ticketer::new().unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counters = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (config, counters) = (config.clone(), counters.clone());
            std::thread::spawn(move || serve_connection(stream, config, &counters));
        }
    });
    (addr, seen)
}

/// Keep-alive loop over TLS: read a request head, answer 200 "hello",
/// repeat until the client closes or asks to close.
fn serve_connection(tcp: TcpStream, config: Arc<ServerConfig>, seen: &Seen) {
    let _ = tcp.set_nodelay(true);
    let Ok(session) = ServerConnection::new(config) else { return };
    let mut tls = StreamOwned::new(session, tcp);
    let mut counted = false;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            // The first read drives the handshake; a client that refuses
            // our certificate ends it here with an error.
            match tls.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(got) => buf.extend_from_slice(&chunk[..got]),
            }
            if !counted && !tls.conn.is_handshaking() {
                counted = true;
                let counter = match tls.conn.handshake_kind() {
                    Some(HandshakeKind::Resumed) => &seen.resumed,
                    _ => &seen.full,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        };
        let close = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase().contains("\r\nconnection: close");
        buf.drain(..head_end);
        let conn = if close { "Connection: close\r\n" } else { "" };
        let reply = format!("HTTP/1.1 200 OK\r\n{conn}Content-Length: 5\r\n\r\nhello");
        if tls.write_all(reply.as_bytes()).and_then(|()| tls.flush()).is_err() {
            return;
        }
        if close {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return;
        }
    }
}

fn url(addr: SocketAddr) -> String {
    format!("https://{addr}/x")
}

const SHORT: &[&str] = &["-d", "0.5s", "--warmup", "0.1s"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = SHORT.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn keep_alive_https_shakes_hands_once_per_connection() {
    let cert = Cert::new("keepalive");
    let (addr, seen) = server(&cert);
    let (ca, target) = (cert.path(), url(addr));
    let v = run_load(&args(&["-c", "3", "--cacert", &ca, &target]));
    assert_counts_add_up(&v);
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    assert!(n(&v, &["ok"]) > 0, "{v}");
    // Three connections, opened in warmup, never closed by the server.
    assert_eq!(n(&v, &["tls", "handshakes_all_phases"]), 3, "{v}");
    assert_eq!(n(&v, &["tls", "versions", "TLSv1_3"]), 3, "{v}");
    assert_eq!(seen.full.load(Ordering::Relaxed), 3);
    assert_eq!(seen.resumed.load(Ordering::Relaxed), 0);
}

#[test]
fn new_conn_https_is_a_full_handshake_per_request() {
    let cert = Cert::new("full");
    let (addr, seen) = server(&cert);
    let (ca, target) = (cert.path(), url(addr));
    let v = run_load(&args(&["-c", "2", "--new-conn", "--cacert", &ca, &target]));
    assert_counts_add_up(&v);
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    let ok = n(&v, &["ok"]);
    assert!(ok > 0, "{v}");
    assert_eq!(n(&v, &["tls", "full"]), ok, "{v}");
    assert_eq!(n(&v, &["tls", "resumed"]), 0, "{v}");
    assert_eq!(n(&v, &["tls", "handshakes_all_phases"]), n(&v, &["exchanges"]), "{v}");
    assert_eq!(seen.resumed.load(Ordering::Relaxed), 0);
    // The server may also have finished a handshake whose request the
    // client abandoned at its hard stop; never fewer than the client saw.
    assert!(seen.full.load(Ordering::Relaxed) >= n(&v, &["tls", "handshakes_all_phases"]));
}

#[test]
fn resume_reuses_sessions_after_the_first_handshake_of_each_connection() {
    let cert = Cert::new("resume");
    let (addr, seen) = server(&cert);
    let (ca, target) = (cert.path(), url(addr));
    let v = run_load(&args(&["-c", "2", "--new-conn", "--resume", "--cacert", &ca, &target]));
    assert_counts_add_up(&v);
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    assert!(n(&v, &["tls", "resumed"]) > 0, "{v}");
    // At most one full handshake per connection slot (both may start with
    // an empty cache); each handshake brings fresh tickets, so every later
    // one resumes.
    let (full, resumed) = (seen.full.load(Ordering::Relaxed), seen.resumed.load(Ordering::Relaxed));
    assert!((1..=2).contains(&full), "server saw {full} full handshakes");
    assert!(full + resumed >= n(&v, &["tls", "handshakes_all_phases"]), "{full} + {resumed}: {v}");
    assert!(resumed + 2 >= n(&v, &["tls", "handshakes_all_phases"]), "{resumed}: {v}");
}

#[test]
fn tls12_is_offered_alone_when_asked() {
    let cert = Cert::new("tls12");
    let (addr, _) = server(&cert);
    let (ca, target) = (cert.path(), url(addr));
    let v = run_load(&args(&["-c", "1", "--new-conn", "--tls-version", "1.2", "--cacert", &ca, &target]));
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    let all = n(&v, &["tls", "handshakes_all_phases"]);
    assert!(all > 0);
    assert_eq!(n(&v, &["tls", "versions", "TLSv1_2"]), all, "{v}");
    assert_eq!(n(&v, &["tls", "key_exchange_groups", "X25519"]), all, "{v}");
}

#[test]
fn a_certificate_outside_the_ca_file_is_a_tls_error_unless_insecure() {
    let served = Cert::new("served");
    let other = Cert::new("other");
    let (addr, _) = server(&served);
    let (ca, target) = (other.path(), url(addr));
    let v = run_load(&args(&["-c", "1", "--cacert", &ca, &target]));
    assert_counts_add_up(&v);
    assert_eq!(n(&v, &["ok"]), 0, "{v}");
    assert!(n(&v, &["errors", "tls"]) > 0, "{v}");
    assert_eq!(n(&v, &["errors", "tls"]), n(&v, &["errors", "total"]), "{v}");
    assert!(v["error_samples"]["tls"].as_str().unwrap().contains("certificate"), "{v}");

    let v = run_load(&args(&["-c", "1", "--insecure", &target]));
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    assert!(n(&v, &["ok"]) > 0, "{v}");
}

#[test]
fn server_name_is_checked_against_the_certificate() {
    let cert = Cert::new("name");
    let (addr, _) = server(&cert);
    let (ca, target) = (cert.path(), url(addr));
    let v = run_load(&args(&["-c", "1", "--server-name", "bench.test", "--cacert", &ca, &target]));
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    let v = run_load(&args(&["-c", "1", "--server-name", "elsewhere.test", "--cacert", &ca, &target]));
    assert_eq!(n(&v, &["ok"]), 0, "{v}");
    assert!(n(&v, &["errors", "tls"]) > 0, "{v}");
}

#[test]
fn plain_http_reports_no_tls() {
    // An https-only flag on an http URL is refused (exit 2), and a plain
    // run has `tls: null`: checked without a server via a refused connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let v = run_load(&args(&["-c", "1", &format!("http://{closed}/")]));
    assert!(v["tls"].is_null(), "{v}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardgate-load"))
        .args(["--insecure", &format!("http://{closed}/")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
