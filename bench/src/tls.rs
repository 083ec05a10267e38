//! The TLS client side of `https://` targets: the rustls config built once
//! from the flags, the handshake on a fresh TCP connection, and what the
//! handshake negotiated (counted per run, so a report says what every
//! server actually spoke).
//!
//! The stack is the proxy's own: rustls on the aws-lc-rs provider, passed
//! explicitly, and `shardgate::tls::stream::TlsStream` for the rent-style
//! I/O over monoio. The client side of a benchmark should cost the same for
//! every server, so everything that changes what a server must compute is
//! pinned here rather than left to defaults that may move: key exchange
//! groups (X25519 first, no post-quantum hybrid that only some servers
//! know), ALPN `http/1.1` (as browsers and curl offer), and resumption only
//! when `--resume` asks for it.

use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};
use shardgate::tls::stream::TlsStream;
use std::path::PathBuf;
use std::sync::Arc;

/// TLS sessions remembered for `--resume`, shared by all connections of a
/// process: enough for every connection slot to hold two TLS 1.3 tickets
/// at the connection limit of a typical run. rustls uses each TLS 1.3
/// ticket once.
pub const RESUMPTION_CACHE_SESSIONS: usize = 4096;

/// The only application protocol offered.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// `--tls-version`: which versions the client offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// 1.2 and 1.3; servers pick 1.3 when they have it.
    Any,
    V12,
    V13,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        match s {
            "any" => Ok(TlsVersion::Any),
            "1.2" => Ok(TlsVersion::V12),
            "1.3" => Ok(TlsVersion::V13),
            _ => Err(format!("bad TLS version {s:?}: use 1.2, 1.3 or any")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Any => "any",
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }

    fn protocol_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static ANY: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
        static V12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static V13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersion::Any => &ANY,
            TlsVersion::V12 => &V12,
            TlsVersion::V13 => &V13,
        }
    }
}

/// How the server's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Chains to a certificate in this PEM file and matches the server name.
    CaFile(PathBuf),
    /// Not checked (`--insecure`, as `curl -k`); the handshake signature is
    /// still verified, so the client's work per handshake is the same.
    Insecure,
}

/// The TLS flags, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub version: TlsVersion,
    pub trust: Trust,
    /// Offer stored sessions on new connections (abbreviated handshakes).
    pub resume: bool,
    /// SNI and the name the certificate must carry; default: the URL host
    /// (an IP address is checked against the certificate's IP SANs and is
    /// not sent as SNI, RFC 6066 §3).
    pub server_name: Option<String>,
}

/// What a connection needs to start TLS: the config (shared by all threads;
/// its session cache is the only shared mutable part) and the server name.
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl TlsClient {
    pub fn new(options: &TlsOptions, url_host: &str) -> Result<TlsClient, String> {
        let name = options.server_name.as_deref().unwrap_or(url_host);
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|e| format!("bad TLS server name {name:?}: {e}"))?;
        Ok(TlsClient { config: Arc::new(client_config(options)?), server_name })
    }

    /// Start TLS on a connected socket and run the handshake to its end.
    pub async fn handshake(&self, tcp: monoio::net::TcpStream) -> std::io::Result<(Stream, Handshake)> {
        let session = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut stream = TlsStream::new(tcp, session);
        stream.handshake().await?;
        let handshake = Handshake::of(stream.session());
        Ok((stream, handshake))
    }
}

/// The TLS stream of one client connection.
pub type Stream = TlsStream<ClientConnection>;

/// The provider every config is built on: aws-lc-rs with the key exchange
/// groups pinned (see the module header).
fn provider() -> CryptoProvider {
    let mut p = aws_lc_rs::default_provider();
    p.kx_groups = vec![aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1, aws_lc_rs::kx_group::SECP384R1];
    p
}

pub fn client_config(options: &TlsOptions) -> Result<ClientConfig, String> {
    let provider = Arc::new(provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(options.version.protocol_versions())
        .map_err(|e| format!("TLS versions: {e}"))?;
    let mut config = match &options.trust {
        Trust::CaFile(path) => builder.with_root_certificates(load_roots(path)?).with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(shardgate::tls::client_config::AcceptAnyServerCert::new(
                provider,
            )))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.resumption =
        if options.resume { Resumption::in_memory_sessions(RESUMPTION_CACHE_SESSIONS) } else { Resumption::disabled() };
    Ok(config)
}

fn load_roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--cacert {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| format!("--cacert {}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("--cacert {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("--cacert {}: no PEM certificate in the file", path.display()));
    }
    Ok(roots)
}

/// What one completed handshake negotiated. Names are rustls' static
/// strings, so counting them allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// False: an abbreviated (resumed) handshake.
    pub full: bool,
    pub version: &'static str,
    pub cipher_suite: &'static str,
    /// Key exchange group; "none" for a TLS 1.2 resumption (no key exchange).
    pub group: &'static str,
}

impl Handshake {
    fn of(session: &ClientConnection) -> Handshake {
        Handshake {
            full: !matches!(session.handshake_kind(), Some(HandshakeKind::Resumed)),
            version: session.protocol_version().and_then(|v| v.as_str()).unwrap_or("unknown"),
            cipher_suite: session.negotiated_cipher_suite().and_then(|s| s.suite().as_str()).unwrap_or("unknown"),
            group: session.negotiated_key_exchange_group().and_then(|g| g.name().as_str()).unwrap_or("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        let cases: &[(&str, Option<TlsVersion>)] = &[
            ("1.2", Some(TlsVersion::V12)),
            ("1.3", Some(TlsVersion::V13)),
            ("any", Some(TlsVersion::Any)),
            ("1.1", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(TlsVersion::parse(s).ok(), *want, "{s}");
        }
    }

    fn options(trust: Trust) -> TlsOptions {
        TlsOptions { version: TlsVersion::Any, trust, resume: false, server_name: None }
    }

    #[test]
    fn config_pins_what_the_server_must_compute() {
        let c = client_config(&options(Trust::Insecure)).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let groups: Vec<_> = c.crypto_provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups[0], rustls::NamedGroup::X25519);
        assert!(!groups.contains(&rustls::NamedGroup::X25519MLKEM768));
        let versions = |v: TlsVersion| v.protocol_versions().iter().map(|p| p.version).collect::<Vec<_>>();
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(versions(TlsVersion::V13), [TLSv1_3]);
        assert_eq!(versions(TlsVersion::V12), [TLSv1_2]);
        assert_eq!(versions(TlsVersion::Any), [TLSv1_3, TLSv1_2]);
        let resume = client_config(&TlsOptions { resume: true, ..options(Trust::Insecure) }).unwrap();
        assert!(format!("{:?}", resume.resumption).contains("ClientSessionMemoryCache"));
    }

    #[test]
    fn unreadable_or_empty_ca_file_is_refused() {
        let missing = client_config(&options(Trust::CaFile("/nonexistent/ca.pem".into())));
        assert!(missing.unwrap_err().contains("/nonexistent/ca.pem"));
        let dir = std::env::temp_dir().join(format!("shardgate-load-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"not a certificate\n").unwrap();
        assert!(client_config(&options(Trust::CaFile(empty))).unwrap_err().contains("no PEM certificate"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn server_name_defaults_to_the_url_host() {
        let c = TlsClient::new(&options(Trust::Insecure), "127.0.0.1").unwrap();
        assert!(matches!(c.server_name, ServerName::IpAddress(_)));
        let named = TlsOptions { server_name: Some("bench.test".into()), ..options(Trust::Insecure) };
        let c = TlsClient::new(&named, "127.0.0.1").unwrap();
        assert_eq!(c.server_name, ServerName::try_from("bench.test").unwrap());
        let bad = TlsOptions { server_name: Some("bad name!".into()), ..options(Trust::Insecure) };
        assert!(TlsClient::new(&bad, "127.0.0.1").is_err());
    }
}
