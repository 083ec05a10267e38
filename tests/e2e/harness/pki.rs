//! Certificates made by the tests themselves (rcgen, ECDSA P-256): a CA,
//! server leaves, client leaves, and the PEM files the proxy reads.
//!
//! ```ignore
//! let ca = Ca::new("test ca");
//! let leaf = ca.server("a.test", &["a.test"]);
//! let files = leaf.write(&dir, "a");      // a.pem + a.key, absolute paths
//! ```
//! Every certificate gets a distinct common name, so a test can tell which
//! one a peer presented (compare [`Leaf::der`] with the peer's leaf).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::tempdir::TempDir;

/// A certificate authority that issues test certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    /// A self-signed root whose subject is `CN=name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("self-sign ca");
        Ca { pem: cert.pem(), der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A server certificate `CN=cn` for `names` (DNS names or IP addresses).
    pub fn server(&self, cn: &str, names: &[&str]) -> Leaf {
        self.issue(cn, names, ExtendedKeyUsagePurpose::ServerAuth, |_| {})
    }

    /// A client certificate `CN=cn` for `names`.
    pub fn client(&self, cn: &str, names: &[&str]) -> Leaf {
        self.issue(cn, names, ExtendedKeyUsagePurpose::ClientAuth, |_| {})
    }

    /// A server certificate whose validity ended in 2001.
    pub fn expired_server(&self, cn: &str, names: &[&str]) -> Leaf {
        self.issue(cn, names, ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    fn issue(
        &self,
        cn: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        adjust(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cn: cn.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// Writes the CA certificate to `NAME.pem` in `dir`.
    pub fn write(&self, dir: &TempDir, name: &str) -> PathBuf {
        dir.write(&format!("{name}.pem"), &self.pem)
    }
}

/// An issued certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    pub cn: String,
    pub cert_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// Where a certificate and its key were written.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// `{ cert = "...", key = "..." }` for a TOML config.
    pub fn toml(&self) -> String {
        format!(
            "{{ cert = {}, key = {} }}",
            super::config::toml_str(&self.cert.display().to_string()),
            super::config::toml_str(&self.key.display().to_string())
        )
    }

    /// The same with `server_names = [...]`.
    pub fn toml_with_names(&self, names: &[&str]) -> String {
        let names: Vec<String> = names.iter().map(|n| super::config::toml_str(n)).collect();
        format!(
            "{{ cert = {}, key = {}, server_names = [{}] }}",
            super::config::toml_str(&self.cert.display().to_string()),
            super::config::toml_str(&self.key.display().to_string()),
            names.join(", ")
        )
    }
}

impl Leaf {
    /// Writes `STEM.pem` (the certificate) and `STEM.key` into `dir`.
    pub fn write(&self, dir: &TempDir, stem: &str) -> CertFiles {
        CertFiles {
            cert: dir.write(&format!("{stem}.pem"), &self.cert_pem),
            key: dir.write(&format!("{stem}.key"), &self.key_pem),
        }
    }

    /// Replaces the files at `files` with this certificate and key, each by
    /// writing a sibling file and renaming it over the old one (a reader
    /// never sees half a file).
    pub fn replace(&self, files: &CertFiles) {
        replace_file(&files.cert, self.cert_pem.as_bytes());
        replace_file(&files.key, self.key_pem.as_bytes());
    }

    /// The certificate chain for a rustls config (the leaf alone: the CA
    /// is the trust anchor).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone()]
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// Writes `bytes` to `path` atomically (write a sibling, rename).
pub fn replace_file(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-replace");
    std::fs::write(&tmp, bytes).expect("write replacement file");
    std::fs::rename(&tmp, path).expect("rename replacement file");
}
