//! The rustls `ClientConfig` of a cluster with `[clusters.tls]`: built once
//! on the main thread, shared (`Arc`) by every shard's upstream pool, which
//! wraps each new upstream connection in a `rustls::ClientConnection` for
//! the endpoint's [`server_name`]. Sharing one config shares its session
//! cache, so a shard resumes sessions another shard opened.
//!
//! Verification is on by default (webpki: chain to the roots, name, dates);
//! a failure fails the connection, which the forward stage turns into 502
//! with the reason, never a plaintext retry.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::certs::{load_chain, load_key, load_roots, system_roots};
use super::server_config::ALPN_HTTP11;
use crate::config::ClusterTls;

/// The cluster's rustls client config: the aws-lc-rs provider, TLS 1.2 and
/// 1.3, ALPN `http/1.1`, rustls' default in-memory session resumption,
/// roots from `ca` or the system, the client certificate for upstream mTLS
/// if set. `verify = false` installs [`AcceptAnyServerCert`] and logs a
/// warning.
pub fn build_client_config(tls: &ClusterTls) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = if tls.verify {
        let roots = match &tls.ca {
            Some(path) => load_roots(path)?,
            None => system_roots().map_err(|e| format!("{e}: set ca"))?,
        };
        builder.with_root_certificates(roots)
    } else {
        tracing::warn!(
            server_name = tls.server_name.as_deref().unwrap_or("(endpoint host)"),
            "upstream TLS certificate verification is OFF (verify = false): any certificate is accepted"
        );
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
    };
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let chain = load_chain(&files.cert)?;
            let key = load_key(&files.key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("client certificate {} / key {}: {e}", files.cert.display(), files.key.display())
            })?
        }
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The name sent as SNI and verified against the endpoint's certificate:
/// `tls.server_name`, else the endpoint's host as written in the config
/// (`Cluster::endpoint_hosts`). An IP address is verified against the
/// certificate's IP SANs and sends no SNI (RFC 6066 §3).
pub fn server_name(tls: &ClusterTls, endpoint_host: &str) -> Result<ServerName<'static>, String> {
    let name = tls.server_name.as_deref().unwrap_or(endpoint_host);
    let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    ServerName::try_from(bare.to_ascii_lowercase()).map_err(|_| format!("{name:?} is not a valid TLS server name"))
}

/// `verify = false`: accepts any certificate chain for any name, at any
/// date. The handshake signatures are still checked (the server holds the
/// key of the certificate it sent), but nothing ties that certificate to
/// the endpoint: an active attacker can impersonate it. For test rigs and
/// upstreams on a trusted network only; the config summary and the log
/// say it is insecure.
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyServerCert {
    /// Accepts any certificate whose handshake signatures `provider` verifies.
    pub fn new(provider: Arc<CryptoProvider>) -> AcceptAnyServerCert {
        AcceptAnyServerCert { provider }
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rustls::{ClientConnection, ServerConnection};

    use super::super::certs::testing::TestCa;
    use super::super::server_config::build_server_config;
    use super::super::server_config::tests::{pump, Pki};
    use super::*;
    use crate::config::CertificateFiles;

    fn cluster(ca: Option<std::path::PathBuf>) -> ClusterTls {
        ClusterTls { server_name: None, ca, verify: true, client_cert: None }
    }

    /// Handshake of `tls` (a cluster) against `server` for `endpoint_host`.
    fn handshake(tls: &ClusterTls, server: &Arc<rustls::ServerConfig>, endpoint_host: &str) -> Result<(), String> {
        let config = build_client_config(tls)?;
        let mut c = ClientConnection::new(config, server_name(tls, endpoint_host)?).unwrap();
        let mut s = ServerConnection::new(server.clone()).unwrap();
        pump(&mut c, &mut s)?;
        assert_eq!(c.alpn_protocol(), Some(ALPN_HTTP11));
        Ok(())
    }

    #[test]
    fn verification_by_ca_and_name() {
        let pki = Pki::new("up-verify");
        let (server, _) = build_server_config(&pki.listener()).unwrap();
        let ok = cluster(Some(pki.ca_file.clone()));
        handshake(&ok, &server, "api.example.test").unwrap();
        // Connected by IP: verified against the IP SAN of the default cert.
        handshake(&ok, &server, "127.0.0.1").unwrap();
        // The endpoint's host is overridden by server_name.
        let named = ClusterTls { server_name: Some("api.example.test".to_owned()), ..ok.clone() };
        handshake(&named, &server, "10.1.2.3").unwrap();

        // Wrong name, wrong CA: the handshake fails on our side.
        let err = handshake(&ok, &server, "other.test").unwrap_err();
        assert!(err.starts_with("client:") && err.contains("certificate"), "{err}");
        let other_ca = pki.dir.write("other-ca.pem", &TestCa::new("other").pem);
        let err = handshake(&cluster(Some(other_ca)), &server, "api.example.test").unwrap_err();
        assert!(err.starts_with("client:") && err.contains("UnknownIssuer"), "{err}");

        // verify = false accepts both.
        let any = ClusterTls { verify: false, ..cluster(None) };
        handshake(&any, &server, "other.test").unwrap();
    }

    #[test]
    fn client_certificate_for_upstream_mtls() {
        let pki = Pki::new("up-mtls");
        let mut listener = pki.listener();
        listener.client_ca = Some(pki.ca_file.clone());
        let (server, _) = build_server_config(&listener).unwrap();
        let mut tls = cluster(Some(pki.ca_file.clone()));
        assert!(handshake(&tls, &server, "api.example.test").unwrap_err().starts_with("server:"));
        let (cert, key) = pki.dir.cert("proxy", &pki.ca.leaf(&["proxy.example.test"]));
        tls.client_cert = Some(CertificateFiles { cert, key, server_names: Vec::new() });
        handshake(&tls, &server, "api.example.test").unwrap();
    }

    #[test]
    fn server_names() {
        let tls = cluster(None);
        assert_eq!(server_name(&tls, "Backend.test").unwrap().to_str(), "backend.test");
        assert!(matches!(server_name(&tls, "10.0.0.1").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name(&tls, "::1").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name(&tls, "[::1]").unwrap(), ServerName::IpAddress(_)));
        assert!(server_name(&tls, "bad name").is_err());
        let named = ClusterTls { server_name: Some("api.test".to_owned()), ..tls };
        assert_eq!(server_name(&named, "10.0.0.1").unwrap().to_str(), "api.test");
    }

    #[test]
    fn missing_files_name_the_file() {
        let pki = Pki::new("up-missing");
        let missing = pki.dir.path().join("nope.pem");
        let err = build_client_config(&cluster(Some(missing.clone()))).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
}
