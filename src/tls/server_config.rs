//! The rustls `ServerConfig` of an HTTPS listener: built once on the main
//! thread from `[listeners.tls]`, then shared (`Arc`) by every shard's
//! accept loop. Sharing one config is what makes resumption work whichever
//! shard accepts the resumed connection: the session ticket keys (TLS 1.3
//! tickets and TLS 1.2 tickets) and the TLS 1.2 session-id cache live in it.
//!
//! Certificates are reloaded through the returned [`SniResolver`], never
//! by rebuilding this config, so a reload does not change the ticket keys
//! and sessions keep resuming across it.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::aws_lc_rs;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::ServerConfig;

use super::certs::load_roots;
use super::sni::SniResolver;
use crate::config::{defaults, ListenerTls, TlsVersion};

/// The only application protocol offered (ALPN) until HTTP/2 exists.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// TLS 1.2 sessions remembered by id (shared by all shards), for clients
/// that resume by session id rather than ticket. About 100 bytes each.
pub const TLS12_SESSION_CACHE_ENTRIES: usize = 64 * 1024;

/// TLS 1.3 tickets sent after each full handshake: a client opening two
/// connections at once can resume both (rustls' default).
pub const TLS13_TICKETS_PER_HANDSHAKE: usize = 2;

/// Longest `ticket_lifetime`: aws-lc-rs' ticket key generator renews its
/// own key every 6 hours inside our rotation, so a longer period would not
/// keep keys longer, only promise it.
pub const MAX_TICKET_LIFETIME: Duration = defaults::TICKET_LIFETIME;
/// Shortest `ticket_lifetime` (the rotation works in whole seconds).
pub const MIN_TICKET_LIFETIME: Duration = Duration::from_secs(1);

/// The listener's rustls config and its certificate resolver (keep the
/// resolver to reload certificates in place).
///
/// - aws-lc-rs provider; TLS 1.2 and 1.3, or 1.3 only (`min_version`).
/// - ALPN `http/1.1` only: a client offering only other protocols fails
///   the handshake (RFC 7301 §3.2), one offering none is served.
/// - Session tickets with keys rotated every `ticket_lifetime` (accepted
///   for up to twice that), plus a shared TLS 1.2 session-id cache. No
///   0-RTT data (replayable).
/// - With `client_ca`: a client certificate chaining to it is required.
/// - The client's cipher suite order is honoured: clients without AES
///   hardware put ChaCha20 first for a reason.
pub fn build_server_config(tls: &ListenerTls) -> Result<(Arc<ServerConfig>, Arc<SniResolver>), String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = load_roots(path).map_err(|e| format!("client_ca: {e}"))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("client_ca {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let resolver = Arc::new(SniResolver::new(&tls.certificates, tls.strict_sni)?);
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.ticketer = ticketer(tls.ticket_lifetime)?;
    config.session_storage = ServerSessionMemoryCache::new(TLS12_SESSION_CACHE_ENTRIES);
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    config.max_early_data_size = 0;
    config.ignore_client_order = false;
    Ok((Arc::new(config), resolver))
}

/// Ticket keys rotating every `lifetime` (within [`MIN_TICKET_LIFETIME`],
/// [`MAX_TICKET_LIFETIME`], which validation enforces).
///
/// rustls' `aws_lc_rs::Ticketer::new()` is a `TicketRotator` with the
/// 6-hour period, and the AES/HMAC key generator it rotates is private. For
/// another period we wrap that whole ticketer as the generator of our own
/// `TicketRotator`: each rotation makes a fresh one (fresh random keys),
/// and since the period is at most 6 hours the inner one never rotates
/// before it is replaced.
pub fn ticketer(lifetime: Duration) -> Result<Arc<dyn ProducesTickets>, String> {
    if lifetime < MIN_TICKET_LIFETIME || lifetime > MAX_TICKET_LIFETIME {
        return Err(format!("ticket lifetime {lifetime:?} is outside 1s..=6h"));
    }
    if lifetime == defaults::TICKET_LIFETIME {
        return aws_lc_rs::Ticketer::new().map_err(|e| format!("session tickets: {e}"));
    }
    let rotator = rustls::TicketRotator::new(lifetime.as_secs() as u32, fresh_ticket_keys)
        .map_err(|e| format!("session tickets: {e}"))?;
    Ok(Arc::new(rotator))
}

fn fresh_ticket_keys() -> Result<Box<dyn ProducesTickets>, rustls::crypto::GetRandomFailed> {
    let inner = aws_lc_rs::Ticketer::new().map_err(|_| rustls::crypto::GetRandomFailed)?;
    Ok(Box::new(TicketKeys(inner)))
}

/// One generation of ticket keys (see [`ticketer`]).
#[derive(Debug)]
struct TicketKeys(Arc<dyn ProducesTickets>);

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(cipher)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Real handshakes between a `rustls::ClientConnection` and a
    //! `ServerConnection` built from these configs, bytes pumped in memory.

    use std::path::PathBuf;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConnection};

    use super::super::certs::testing::{TempDir, TestCa, TestCert};
    use super::super::certs::{client_identity, load_roots};
    use super::*;
    use crate::config::CertificateFiles;

    /// Moves records between the two sides until neither has anything to
    /// send. `Err` names the side that failed and why.
    pub(crate) fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
        loop {
            let mut moved = false;
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            let mut rest = &buf[..];
            while !rest.is_empty() {
                moved = true;
                server.read_tls(&mut rest).unwrap();
                server.process_new_packets().map_err(|e| format!("server: {e}"))?;
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            let mut rest = &buf[..];
            while !rest.is_empty() {
                moved = true;
                client.read_tls(&mut rest).unwrap();
                client.process_new_packets().map_err(|e| format!("client: {e}"))?;
            }
            if !moved {
                return Ok(());
            }
        }
    }

    /// One handshake (plus the tickets that follow it).
    fn connect(
        client: &Arc<ClientConfig>,
        server: &Arc<ServerConfig>,
        name: &str,
    ) -> Result<(ClientConnection, ServerConnection), String> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut c = ClientConnection::new(client.clone(), name).unwrap();
        let mut s = ServerConnection::new(server.clone()).unwrap();
        pump(&mut c, &mut s)?;
        assert!(!c.is_handshaking() && !s.is_handshaking());
        Ok((c, s))
    }

    pub(crate) struct Pki {
        pub dir: TempDir,
        pub ca: TestCa,
        pub ca_file: PathBuf,
    }

    impl Pki {
        pub fn new(tag: &str) -> Pki {
            let dir = TempDir::new(tag);
            let ca = TestCa::new("handshake ca");
            let ca_file = dir.write("ca.pem", &ca.pem);
            Pki { dir, ca, ca_file }
        }

        pub fn files(&self, name: &str, cert: &TestCert, server_names: &[&str]) -> CertificateFiles {
            let (cert, key) = self.dir.cert(name, cert);
            CertificateFiles { cert, key, server_names: server_names.iter().map(|s| s.to_string()).collect() }
        }

        /// A default certificate (`default.test`, `127.0.0.1`), `api.example.test`
        /// and `*.example.test`.
        pub fn listener(&self) -> ListenerTls {
            let default = self.files("default", &self.ca.leaf(&["default.test", "127.0.0.1"]), &[]);
            let mut tls = ListenerTls::single(default.cert.clone(), default.key.clone());
            tls.certificates = vec![
                default,
                self.files("api", &self.ca.leaf(&["api.example.test"]), &[]),
                self.files("wild", &self.ca.leaf(&["*.example.test"]), &[]),
            ];
            tls
        }

        /// A client trusting the test CA, offering `http/1.1`.
        pub fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
            self.client_with(versions, |b| b.with_no_client_auth())
        }

        fn client_with(
            &self,
            versions: &[&'static rustls::SupportedProtocolVersion],
            auth: impl FnOnce(rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>) -> ClientConfig,
        ) -> Arc<ClientConfig> {
            let provider = Arc::new(aws_lc_rs::default_provider());
            let builder = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(load_roots(&self.ca_file).unwrap());
            let mut config = auth(builder);
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        }
    }

    fn leaf_name(c: &ClientConnection) -> Vec<String> {
        let der = &c.peer_certificates().unwrap()[0];
        let (_, x509) = x509_parser::parse_x509_certificate(der).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        san.value.general_names.iter().map(|n| n.to_string()).collect()
    }

    const BOTH: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
    const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

    #[test]
    fn sni_selects_and_alpn_is_http11() {
        let pki = Pki::new("hs-sni");
        let (server, _) = build_server_config(&pki.listener()).unwrap();
        // (name the client connects to, SAN of the certificate it must get)
        const CASES: &[(&str, &str)] = &[
            ("api.example.test", "DNSName(api.example.test)"),
            ("www.example.test", "DNSName(*.example.test)"),
            ("default.test", "DNSName(default.test)"),
            // An IP: no SNI sent, the default certificate (with the IP SAN).
            ("127.0.0.1", "DNSName(default.test)"),
        ];
        for &(name, want) in CASES {
            let (c, s) = connect(&pki.client(BOTH), &server, name).unwrap();
            assert_eq!(leaf_name(&c)[0], want, "{name}");
            assert_eq!(c.alpn_protocol(), Some(ALPN_HTTP11), "{name}");
            assert_eq!(s.alpn_protocol(), Some(ALPN_HTTP11));
            assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        }
        // An unknown name gets the default certificate, which the client
        // refuses (wrong name): the handshake fails on the client side.
        let err = connect(&pki.client(BOTH), &server, "other.test").unwrap_err();
        assert!(err.starts_with("client:"), "{err}");
    }

    #[test]
    fn strict_sni_refuses_unknown_and_missing_names() {
        let pki = Pki::new("hs-strict");
        let mut tls = pki.listener();
        tls.strict_sni = true;
        let (server, _) = build_server_config(&tls).unwrap();
        assert!(connect(&pki.client(BOTH), &server, "api.example.test").is_ok());
        for name in ["other.test", "127.0.0.1"] {
            let err = connect(&pki.client(BOTH), &server, name).unwrap_err();
            assert!(err.starts_with("server:"), "{name}: {err}");
        }
    }

    #[test]
    fn versions_follow_min_version() {
        let pki = Pki::new("hs-versions");
        let (server, _) = build_server_config(&pki.listener()).unwrap();
        let (c, _) = connect(&pki.client(TLS12), &server, "api.example.test").unwrap();
        assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
        let mut tls = pki.listener();
        tls.min_version = TlsVersion::Tls13;
        let (server13, _) = build_server_config(&tls).unwrap();
        assert!(connect(&pki.client(TLS12), &server13, "api.example.test").is_err());
        let (c, _) = connect(&pki.client(TLS13), &server13, "api.example.test").unwrap();
        assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    }

    /// Every shard builds its `ServerConnection`s from the same
    /// `Arc<ServerConfig>`: a session from one resumes on a connection
    /// built for another, every time, TLS 1.3 and 1.2, with the default
    /// and a custom ticket rotation.
    #[test]
    fn sessions_resume_on_connections_from_the_shared_config() {
        let pki = Pki::new("hs-resume");
        for lifetime in [defaults::TICKET_LIFETIME, Duration::from_secs(60)] {
            let mut tls = pki.listener();
            tls.ticket_lifetime = lifetime;
            let (server, _) = build_server_config(&tls).unwrap();
            for versions in [TLS13, TLS12] {
                let client = pki.client(versions);
                let (c, _) = connect(&client, &server, "api.example.test").unwrap();
                assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
                for i in 0..8 {
                    let (c, s) = connect(&client, &server, "api.example.test").unwrap();
                    let what = format!("{lifetime:?} {:?} try {i}", c.protocol_version());
                    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed), "{what}");
                    assert_eq!(s.handshake_kind(), Some(HandshakeKind::Resumed), "{what}");
                }
            }
        }
    }

    /// The TLS 1.2 session-id cache alone (tickets off on the client) also
    /// resumes across connections of the shared config.
    #[test]
    fn tls12_session_ids_resume() {
        let pki = Pki::new("hs-sessionid");
        let (server, _) = build_server_config(&pki.listener()).unwrap();
        let mut client = (*pki.client(TLS12)).clone();
        client.resumption =
            rustls::client::Resumption::default().tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
        let client = Arc::new(client);
        connect(&client, &server, "api.example.test").unwrap();
        let (c, _) = connect(&client, &server, "api.example.test").unwrap();
        assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
    }

    #[test]
    fn reload_changes_certificates_of_the_running_config() {
        let pki = Pki::new("hs-reload");
        let (server, resolver) = build_server_config(&pki.listener()).unwrap();
        assert!(connect(&pki.client(BOTH), &server, "new.test").is_err());
        let mut files = pki.listener().certificates;
        files.push(pki.files("new", &pki.ca.leaf(&["new.test"]), &[]));
        resolver.reload(&files).unwrap();
        let (c, _) = connect(&pki.client(BOTH), &server, "new.test").unwrap();
        assert_eq!(leaf_name(&c)[0], "DNSName(new.test)");
    }

    #[test]
    fn client_certificates_are_required_with_client_ca() {
        let pki = Pki::new("hs-mtls");
        let mut tls = pki.listener();
        tls.client_ca = Some(pki.ca_file.clone());
        tls.client_cert_header = Some("x-client-cert".to_owned());
        let (server, _) = build_server_config(&tls).unwrap();

        let id = pki.ca.leaf_with(&["client1.example.test"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme");
            p.distinguished_name.push(rcgen::DnType::CommonName, "client1");
        });
        let files = pki.files("client1", &id, &[]);
        let chain = super::super::certs::load_chain(&files.cert).unwrap();
        let key = super::super::certs::load_key(&files.key).unwrap();
        let client = pki.client_with(BOTH, |b| b.with_client_auth_cert(chain, key).unwrap());
        let (_, s) = connect(&client, &server, "api.example.test").unwrap();
        let identity = client_identity(s.peer_certificates().unwrap());
        assert_eq!(identity.as_deref(), Some(r#"subject="CN=client1,O=Acme";san="DNS:client1.example.test""#));

        // No certificate, or one from another CA: refused at the handshake.
        let err = connect(&pki.client(BOTH), &server, "api.example.test").unwrap_err();
        assert!(err.starts_with("server:"), "{err}");
        let other = TestCa::new("other ca").leaf(&["client2.example.test"]);
        let files = pki.files("client2", &other, &[]);
        let chain = super::super::certs::load_chain(&files.cert).unwrap();
        let key = super::super::certs::load_key(&files.key).unwrap();
        let client = pki.client_with(BOTH, |b| b.with_client_auth_cert(chain, key).unwrap());
        let err = connect(&client, &server, "api.example.test").unwrap_err();
        assert!(err.starts_with("server:"), "{err}");
    }

    #[test]
    fn ticket_lifetime_bounds() {
        assert!(ticketer(Duration::ZERO).is_err());
        assert!(ticketer(MAX_TICKET_LIFETIME + Duration::from_secs(1)).is_err());
        assert_eq!(ticketer(Duration::from_secs(60)).unwrap().lifetime(), 120);
    }
}
