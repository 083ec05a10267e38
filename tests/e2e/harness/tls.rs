//! TLS on both sides of the proxy, for the tests: a rustls client that
//! reports what its handshake negotiated, a std-thread TLS upstream, and the
//! per-shard TLS counters of the admin `/stats` endpoint.
//!
//! ```ignore
//! let client = TlsClient::builder().trust(&ca).alpn(&["h2", "http/1.1"]).build();
//! let mut conn = client.connect(proxy.addr(), "a.test");
//! assert_eq!(conn.handshake.leaf, leaf.der);
//! assert_eq!(conn.get("/").status, 200);
//! ```
//! One [`TlsClient`] is one rustls `ClientConfig`, hence one session store:
//! connections made through the same client resume each other's sessions.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection,
    StreamOwned, SupportedProtocolVersion,
};

use super::client::{Client, Response, Transport, READ_TIMEOUT};
use super::pki::{Ca, Leaf};
use super::proxy::{json_u64, shard_objects, Proxy};
use super::upstream::find;

/// How long a handshake may take before the test gives up on it.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Transport for StreamOwned<ClientConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

/// Which TLS versions a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Both,
    Only12,
    Only13,
}

impl Versions {
    fn list(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static ONLY13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            Versions::Both => &BOTH,
            Versions::Only12 => &ONLY12,
            Versions::Only13 => &ONLY13,
        }
    }
}

pub struct TlsClientBuilder {
    roots: RootCertStore,
    versions: Versions,
    alpn: Vec<Vec<u8>>,
    client_cert: Option<Leaf>,
    verify: bool,
}

impl TlsClientBuilder {
    /// Trust certificates issued by `ca`.
    pub fn trust(mut self, ca: &Ca) -> TlsClientBuilder {
        self.roots.add(ca.der.clone()).expect("add test CA to roots");
        self
    }

    pub fn versions(mut self, versions: Versions) -> TlsClientBuilder {
        self.versions = versions;
        self
    }

    /// ALPN protocols offered, in preference order.
    pub fn alpn(mut self, protocols: &[&str]) -> TlsClientBuilder {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Present `leaf` when the server asks for a client certificate.
    pub fn client_cert(mut self, leaf: &Leaf) -> TlsClientBuilder {
        self.client_cert = Some(leaf.clone());
        self
    }

    /// Accept any server certificate (to see which one a server picks for
    /// a name it has no certificate for).
    pub fn accept_any_certificate(mut self) -> TlsClientBuilder {
        self.verify = false;
        self
    }

    pub fn build(self) -> TlsClient {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(self.versions.list())
            .expect("protocol versions");
        let builder = if self.verify {
            builder.with_root_certificates(self.roots)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(
                shardgate::tls::client_config::AcceptAnyServerCert::new(provider),
            ))
        };
        let mut config = match &self.client_cert {
            Some(leaf) => builder.with_client_auth_cert(leaf.chain(), leaf.private_key()).expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        TlsClient { config: Arc::new(config) }
    }
}

/// A TLS client: one rustls config and its session store.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

/// What a handshake negotiated, as the client saw it.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub kind: HandshakeKind,
    pub version: ProtocolVersion,
    pub alpn: Option<Vec<u8>>,
    /// The server's leaf certificate.
    pub leaf: CertificateDer<'static>,
}

impl Handshake {
    pub fn resumed(&self) -> bool {
        self.kind == HandshakeKind::Resumed
    }
}

/// An established TLS connection: a [`Client`] (raw HTTP/1.1 over TLS) and
/// what its handshake negotiated.
pub struct TlsConn {
    pub handshake: Handshake,
    client: Client,
}

impl Deref for TlsConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for TlsConn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl TlsConn {
    /// Writes `raw` and reads one response, returning any failure (a TLS
    /// alert from the server included) instead of panicking.
    pub fn try_request(&mut self, raw: &[u8]) -> Result<Response, String> {
        self.client.try_send(raw).map_err(|e| format!("write: {e}"))?;
        self.client.try_read_response(false, None)
    }
}

impl TlsClient {
    pub fn builder() -> TlsClientBuilder {
        TlsClientBuilder {
            roots: RootCertStore::empty(),
            versions: Versions::Both,
            alpn: Vec::new(),
            client_cert: None,
            verify: true,
        }
    }

    /// Every default, trusting `ca`.
    pub fn trusting(ca: &Ca) -> TlsClient {
        TlsClient::builder().trust(ca).build()
    }

    /// Connects and completes the handshake with `server_name` (a DNS name:
    /// sent as SNI; an IP address: no SNI is sent). Panics on failure.
    pub fn connect(&self, addr: SocketAddr, server_name: &str) -> TlsConn {
        self.try_connect(addr, server_name)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr} as {server_name:?} failed: {e}"))
    }

    /// Same, returning the handshake error.
    pub fn try_connect(&self, addr: SocketAddr, server_name: &str) -> Result<TlsConn, String> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|e| format!("bad server name: {e}"))?;
        let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        sock.set_read_timeout(Some(READ_TIMEOUT)).expect("set read timeout");
        sock.set_nodelay(true).expect("nodelay");
        let mut conn = ClientConnection::new(self.config.clone(), name).map_err(|e| format!("client: {e}"))?;
        let deadline = Instant::now() + HANDSHAKE_DEADLINE;
        while conn.is_handshaking() {
            if Instant::now() >= deadline {
                return Err(format!("handshake not done within {HANDSHAKE_DEADLINE:?}"));
            }
            match conn.complete_io(&mut sock) {
                Ok((0, 0)) if conn.is_handshaking() => return Err("connection closed during the handshake".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let handshake = Handshake {
            kind: conn.handshake_kind().expect("handshake kind after the handshake"),
            version: conn.protocol_version().expect("protocol version after the handshake"),
            alpn: conn.alpn_protocol().map(|p| p.to_vec()),
            leaf: conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.clone().into_owned())
                .expect("server certificate"),
        };
        Ok(TlsConn { handshake, client: Client::over(Box::new(StreamOwned::new(conn, sock))) })
    }

    /// Connects, sends one `GET path` with `Host: host` and reads the
    /// response; any failure on the way (handshake refused, alert instead
    /// of a response) is the error.
    pub fn try_get(&self, addr: SocketAddr, server_name: &str, host: &str, path: &str) -> Result<Response, String> {
        let mut conn = self.try_connect(addr, server_name)?;
        conn.try_request(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
    }

    /// `GET path` with `Host: server_name` on a new connection; panics on failure.
    pub fn get(&self, addr: SocketAddr, server_name: &str, path: &str) -> (Handshake, Response) {
        let mut conn = self.connect(addr, server_name);
        let response = conn
            .try_request(format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\n\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("GET {path} over TLS: {e}"));
        (conn.handshake.clone(), response)
    }
}

/// The common name of a certificate, for messages ("CN=a.test").
pub fn subject_of(der: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => cert.subject().to_string(),
        Err(e) => format!("<unparsable certificate: {e}>"),
    }
}

// ---------------------------------------------------------------------------
// Admin counters

/// One shard's connection and TLS counters from `GET /stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsStats {
    pub shard: u64,
    pub accepted: u64,
    pub requests: u64,
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    pub tls13: u64,
    pub tls12: u64,
    pub tls_failures: u64,
}

impl TlsStats {
    /// The sum over shards (`shard` is the shard count).
    pub fn total(shards: &[TlsStats]) -> TlsStats {
        shards.iter().fold(TlsStats { shard: shards.len() as u64, ..TlsStats::default() }, |t, s| TlsStats {
            shard: t.shard,
            accepted: t.accepted + s.accepted,
            requests: t.requests + s.requests,
            tls_handshakes: t.tls_handshakes + s.tls_handshakes,
            tls_resumed: t.tls_resumed + s.tls_resumed,
            tls13: t.tls13 + s.tls13,
            tls12: t.tls12 + s.tls12,
            tls_failures: t.tls_failures + s.tls_failures,
        })
    }
}

/// Per-shard TLS counters of `proxy`.
pub fn tls_stats(proxy: &Proxy) -> Vec<TlsStats> {
    let json = proxy.stats_json();
    parse_tls_stats(&json).unwrap_or_else(|| panic!("no TLS counters in /stats: {json}"))
}

/// The sum of every shard's counters.
pub fn tls_totals(proxy: &Proxy) -> TlsStats {
    TlsStats::total(&tls_stats(proxy))
}

fn parse_tls_stats(json: &str) -> Option<Vec<TlsStats>> {
    shard_objects(json)?
        .into_iter()
        .map(|o| {
            Some(TlsStats {
                shard: json_u64(o, "shard")?,
                accepted: json_u64(o, "accepted")?,
                requests: json_u64(o, "requests")?,
                tls_handshakes: json_u64(o, "tls_handshakes")?,
                tls_resumed: json_u64(o, "tls_resumed")?,
                tls13: json_u64(o, "tls13")?,
                tls12: json_u64(o, "tls12")?,
                tls_failures: json_u64(o, "tls_failures")?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A TLS upstream

/// One request as the TLS upstream received it.
#[derive(Debug, Clone)]
pub struct TlsRequest {
    /// Index of the TLS connection it arrived on.
    pub connection: usize,
    /// The SNI the proxy sent, if any.
    pub sni: Option<String>,
    /// Subject of the client certificate the proxy presented, if any.
    pub client_subject: Option<String>,
    /// The request head as received.
    pub head: String,
}

#[derive(Default)]
struct TlsLog {
    connections: usize,
    handshake_failures: Vec<String>,
    requests: Vec<TlsRequest>,
}

/// What a TLS upstream does beyond answering `200` with its body.
#[derive(Debug, Clone, Default)]
pub enum TlsBehaviour {
    /// Keep connections alive, nothing else.
    #[default]
    WellBehaved,
    /// After each response, wait, then do this on the idle connection.
    AfterResponse(Duration, TlsIdleAct),
    /// Answer close-delimited (no Content-Length), then end the TCP
    /// connection with (`true`) or without (`false`) close_notify.
    CloseDelimited { close_notify: bool },
}

/// Something a TLS upstream does to an idle keep-alive connection.
#[derive(Debug, Clone)]
pub enum TlsIdleAct {
    /// A TLS 1.3 KeyUpdate: housekeeping, not application data.
    KeyUpdate,
    /// close_notify, then close.
    CloseNotify,
    /// Application bytes nobody asked for.
    AppBytes(Vec<u8>),
}

/// A TLS HTTP/1.1 upstream: std threads, rustls `ServerConnection`, every
/// request answered `200` with a fixed body; connections kept alive.
pub struct TlsUpstream {
    addr: SocketAddr,
    log: Arc<Mutex<TlsLog>>,
    stopped: Arc<AtomicBool>,
}

impl TlsUpstream {
    /// Serves `leaf`; with `client_ca`, requires a client certificate
    /// issued by it.
    pub fn start(leaf: &Leaf, client_ca: Option<&Ca>, body: impl Into<Vec<u8>>) -> TlsUpstream {
        TlsUpstream::start_behaving(leaf, client_ca, body, TlsBehaviour::WellBehaved)
    }

    /// As `start`, misbehaving as `behaviour` says.
    pub fn start_behaving(
        leaf: &Leaf,
        client_ca: Option<&Ca>,
        body: impl Into<Vec<u8>>,
        behaviour: TlsBehaviour,
    ) -> TlsUpstream {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der.clone()).expect("client CA");
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(builder.with_single_cert(leaf.chain(), leaf.private_key()).expect("upstream cert"));

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS upstream");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(TlsLog::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let body: Arc<Vec<u8>> = Arc::new(body.into());
        let (accept_log, accept_stopped) = (log.clone(), stopped.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (config, log, body) = (config.clone(), accept_log.clone(), body.clone());
                let behaviour = behaviour.clone();
                std::thread::spawn(move || serve_tls(stream, config, log, body, behaviour));
            }
        });
        TlsUpstream { addr, log, stopped }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Completed TLS handshakes.
    pub fn connections(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).connections
    }

    /// Why handshakes failed, one entry per failed handshake.
    pub fn handshake_failures(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).handshake_failures.clone()
    }

    pub fn requests(&self) -> Vec<TlsRequest> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).requests.clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_tls(
    sock: TcpStream,
    config: Arc<ServerConfig>,
    log: Arc<Mutex<TlsLog>>,
    body: Arc<Vec<u8>>,
    behaviour: TlsBehaviour,
) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = ServerConnection::new(config) else { return };
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        match tls.conn.complete_io(&mut tls.sock) {
            Ok((0, 0)) if tls.conn.is_handshaking() => return,
            Ok(_) => {}
            Err(e) => {
                log.lock().unwrap_or_else(|e| e.into_inner()).handshake_failures.push(e.to_string());
                return;
            }
        }
    }
    let sni = tls.conn.server_name().map(str::to_string);
    let client_subject = tls.conn.peer_certificates().and_then(|c| c.first()).map(subject_of);
    let connection = {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.connections += 1;
        log.connections - 1
    };

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            match tls.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
        let body_len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + body_len {
            match tls.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + body_len);
        log.lock().unwrap_or_else(|e| e.into_inner()).requests.push(TlsRequest {
            connection,
            sni: sni.clone(),
            client_subject: client_subject.clone(),
            head,
        });
        if let TlsBehaviour::CloseDelimited { close_notify } = behaviour {
            let mut response = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            response.extend_from_slice(&body);
            let _ = tls.write_all(&response).and_then(|_| tls.flush());
            if close_notify {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            // Dropping the stream closes TCP; rustls sends nothing more.
            return;
        }
        let mut response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        response.extend_from_slice(&body);
        if tls.write_all(&response).and_then(|_| tls.flush()).is_err() {
            return;
        }
        if let TlsBehaviour::AfterResponse(delay, act) = &behaviour {
            std::thread::sleep(*delay);
            match act {
                TlsIdleAct::KeyUpdate => {
                    if tls.conn.refresh_traffic_keys().is_err() || tls.flush().is_err() {
                        return;
                    }
                }
                TlsIdleAct::CloseNotify => {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    return;
                }
                TlsIdleAct::AppBytes(bytes) => {
                    if tls.write_all(bytes).and_then(|_| tls.flush()).is_err() {
                        return;
                    }
                }
            }
        }
    }
}
