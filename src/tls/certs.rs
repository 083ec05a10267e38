//! Certificate material: PEM chains and keys read from disk and checked
//! (key matches the leaf, every certificate valid now), CA bundles (a file,
//! or the system roots), and the verified client identity forwarded
//! upstream. Used by config validation (so a bad file is a config error
//! naming it) and by `sni.rs` / `server_config.rs` / `client_config.rs`
//! when they build rustls configs on the main thread, never on the data
//! path except [`client_identity`], once per mTLS connection.
//!
//! Errors are one-line strings naming the file; the caller adds the config
//! field path.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// A certificate chain with its key, ready for rustls, and what the config
/// and the logs need to know about it.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf's subjectAltName, lowercase; wildcards kept as
    /// written (`*.example.com`). The names a certificate with no
    /// configured `server_names` is chosen for.
    pub dns_names: Vec<String>,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
}

/// Reads the chain at `cert` (PEM, leaf first) and the key at `key` (PEM:
/// PKCS#8, PKCS#1 or SEC1), and checks that the key belongs to the leaf and
/// that every certificate of the chain is valid now.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<LoadedCert, String> {
    let chain = load_chain(cert)?;
    let key_der = load_key(key)?;
    certified_key(cert, chain, key, key_der)
}

/// The certificates of a PEM file, in file order; at least one, each a
/// parsable X.509 certificate valid now.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, "certificate")?;
    let chain = pem_certificates(&bytes).map_err(|e| format!("certificate {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("certificate {}: no certificate found (expected PEM CERTIFICATE blocks)", path.display()));
    }
    for (i, der) in chain.iter().enumerate() {
        let x509 = parse(der).map_err(|e| format!("certificate {}{}: {e}", path.display(), entry(i)))?;
        check_validity(&x509, SystemTime::now())
            .map_err(|e| format!("certificate {}{} {e}", path.display(), entry(i)))?;
    }
    Ok(chain)
}

/// The first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            let encrypted = String::from_utf8_lossy(&bytes).contains("ENCRYPTED PRIVATE KEY");
            let why = if encrypted {
                "an encrypted key is not supported: decrypt it (openssl pkey -in KEY -out PLAIN)"
            } else {
                "no private key found (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
            };
            format!("key {}: {why}", path.display())
        }
        e => format!("key {}: {e}", path.display()),
    })
}

/// Builds the rustls [`CertifiedKey`] with the aws-lc-rs provider and checks
/// that `key` is the leaf's key; the paths only name the files in errors.
pub fn certified_key(
    cert_path: &Path,
    chain: Vec<CertificateDer<'static>>,
    key_path: &Path,
    key: PrivateKeyDer<'static>,
) -> Result<LoadedCert, String> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("key {}: unusable private key: {e}", key_path.display()))?;
    let leaf = chain.first().ok_or_else(|| format!("certificate {}: no certificate found", cert_path.display()))?;
    let x509 = parse(leaf).map_err(|e| format!("certificate {}: {e}", cert_path.display()))?;
    let dns_names = dns_names(&x509);
    let not_after = system_time(x509.validity().not_after.timestamp());
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        // The key type cannot report its public key: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(format!(
                "key {} does not match certificate {} (the key of another certificate?)",
                key_path.display(),
                cert_path.display()
            ))
        }
    }
    Ok(LoadedCert { key: Arc::new(certified), dns_names, not_after })
}

/// A CA bundle: every certificate of a PEM file becomes a trust anchor.
/// Certificates are not checked for validity here: an expired root in a
/// bundle of many is common and harmless, verification refuses what it
/// signs.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let bytes = read(path, "CA bundle")?;
    let certs = pem_certificates(&bytes).map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("CA bundle {}: no certificate found (expected PEM CERTIFICATE blocks)", path.display()));
    }
    let mut roots = RootCertStore::empty();
    for (i, der) in certs.into_iter().enumerate() {
        roots
            .add(der)
            .map_err(|e| format!("CA bundle {}{}: not a usable CA certificate: {e}", path.display(), entry(i)))?;
    }
    Ok(roots)
}

/// The operating system's trust store (rustls-native-certs: on Linux the
/// usual bundle files, or `SSL_CERT_FILE` / `SSL_CERT_DIR`). An error when
/// it holds no usable certificate, so the config can say `ca` must be given.
pub fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = match found.errors.first() {
            Some(e) => format!(" ({e})"),
            None => String::new(),
        };
        return Err(format!("no system CA certificates found{why}"));
    }
    Ok(roots)
}

/// The verified client certificate as one header value, for
/// `client_cert_header`:
///
/// ```text
/// subject="O=Acme,CN=client1";san="DNS:client1.example.test,IP:10.0.0.1"
/// ```
///
/// - `subject`: the leaf's subject as an RFC 4514 string (last RDN first,
///   as `openssl x509 -nameopt RFC2253` prints it), attribute values
///   escaped per RFC 4514 (`\,` `\+` `\"` `\\` `\<` `\>` `\;`, a leading
///   `#` or space and a trailing space; bytes outside printable ASCII as
///   `\XX`); attributes without a string value as `#` + hex of the value.
/// - `san`: the subjectAltName entries in certificate order, comma
///   separated: `DNS:name`, `IP:addr`, `URI:uri`, `email:addr`, other kinds
///   omitted; `\` and `,` inside an entry escaped with `\`, bytes outside
///   printable ASCII as `\XX`. Empty when the certificate has none.
/// - Both are RFC 9110 quoted-strings: `"` and `\` in them are escaped
///   with `\`. So the value is printable ASCII only: never CR, LF or NUL.
///
/// `None` when there is no certificate or the leaf does not parse (it was
/// verified by rustls, so that does not happen in practice).
pub fn client_identity(certs: &[CertificateDer<'_>]) -> Option<String> {
    let x509 = parse(certs.first()?).ok()?;
    let subject = rfc4514(x509.subject());
    let mut san = String::new();
    if let Ok(Some(ext)) = x509.subject_alternative_name() {
        for name in &ext.value.general_names {
            let (kind, value) = match name {
                GeneralName::DNSName(s) => ("DNS", s.to_string()),
                GeneralName::URI(s) => ("URI", s.to_string()),
                GeneralName::RFC822Name(s) => ("email", s.to_string()),
                GeneralName::IPAddress(bytes) => match ip_text(bytes) {
                    Some(ip) => ("IP", ip),
                    None => continue,
                },
                _ => continue,
            };
            if !san.is_empty() {
                san.push(',');
            }
            san.push_str(kind);
            san.push(':');
            escape_bytes(&mut san, value.as_bytes(), |b| b == b'\\' || b == b',');
        }
    }
    Some(format!("subject={};san={}", quoted(&subject), quoted(&san)))
}

/// Formats a Unix time as `YYYY-MM-DD` (UTC), for messages.
pub fn fmt_date(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// Every CERTIFICATE block of a PEM file (other blocks, a key say, skipped).
fn pem_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, pem::Error> {
    CertificateDer::pem_slice_iter(bytes).collect()
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, x509)) => Ok(x509),
        Err(e) => Err(format!("not a valid X.509 certificate ({e})")),
    }
}

/// ` (chain entry N)` for all but the first certificate of a file.
fn entry(i: usize) -> String {
    if i == 0 {
        String::new()
    } else {
        format!(" (chain entry {})", i + 1)
    }
}

/// `has expired (not after 2024-01-01)` / `is not valid yet (not before …)`.
fn check_validity(x509: &X509Certificate<'_>, now: SystemTime) -> Result<(), String> {
    let v = x509.validity();
    let (not_before, not_after) = (system_time(v.not_before.timestamp()), system_time(v.not_after.timestamp()));
    if now > not_after {
        return Err(format!("has expired (not after {})", fmt_date(not_after)));
    }
    if now < not_before {
        return Err(format!("is not valid yet (not before {})", fmt_date(not_before)));
    }
    Ok(())
}

fn system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// Days since 1970-01-01 -> (year, month, day); Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn dns_names(x509: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(ext)) = x509.subject_alternative_name() {
        for name in &ext.value.general_names {
            if let GeneralName::DNSName(s) = name {
                let lower = s.to_ascii_lowercase();
                if !names.contains(&lower) {
                    names.push(lower);
                }
            }
        }
    }
    names
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// RFC 4514: RDNs last first, `+` between the attributes of one RDN.
fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(abbrev) => out.push_str(abbrev),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => escape_dn_value(&mut out, value),
                Err(_) => {
                    out.push('#');
                    for b in attr.as_slice() {
                        out.push_str(&format!("{b:02x}"));
                    }
                }
            }
        }
    }
    out
}

/// RFC 4514 §2.4 escaping of one attribute value, plus `\XX` for bytes
/// outside printable ASCII so the result is header-safe.
fn escape_dn_value(out: &mut String, value: &str) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i + 1 == bytes.len() && b == b' ');
        if special {
            out.push('\\');
            out.push(b as char);
        } else {
            escape_bytes(out, &[b], |_| false);
        }
    }
}

/// Printable ASCII kept (with `\` before those `special` says), others `\XX`.
fn escape_bytes(out: &mut String, bytes: &[u8], special: impl Fn(u8) -> bool) {
    for &b in bytes {
        if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            if special(b) {
                out.push('\\');
            }
            out.push(b as char);
        }
    }
}

/// RFC 9110 quoted-string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
pub(crate) mod testing {
    //! rcgen certificates for the tests of `crate::tls` and `crate::config`.

    use std::path::{Path, PathBuf};

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};

    /// A CA that signs leafs; its PEM is a CA bundle.
    pub struct TestCa {
        pub pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    pub struct TestCert {
        pub cert_pem: String,
        pub key_pem: String,
    }

    impl TestCa {
        pub fn new(name: &str) -> TestCa {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            TestCa { pem: cert.pem(), issuer: Issuer::new(params, key) }
        }

        /// A leaf for `names` (DNS names, or IP addresses) valid from 2020 to 2100.
        pub fn leaf(&self, names: &[&str]) -> TestCert {
            self.leaf_with(names, |_| {})
        }

        pub fn leaf_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> TestCert {
            let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2100, 1, 1);
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
            edit(&mut params);
            // Names that parse as IP addresses become IP SANs (rcgen's
            // `new` makes them DNS names).
            for san in &mut params.subject_alt_names {
                if let SanType::DnsName(name) = san {
                    if let Ok(ip) = name.as_str().parse() {
                        *san = SanType::IpAddress(ip);
                    }
                }
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            TestCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
        }
    }

    /// A scratch directory removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("shardgate-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        /// Writes `NAME.pem` and `NAME.key`.
        pub fn cert(&self, name: &str, cert: &TestCert) -> (PathBuf, PathBuf) {
            (self.write(&format!("{name}.pem"), &cert.cert_pem), self.write(&format!("{name}.key"), &cert.key_pem))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{TempDir, TestCa};
    use super::*;

    #[test]
    fn loads_a_matching_chain_and_key() {
        let ca = TestCa::new("test ca");
        let leaf = ca.leaf(&["Localhost", "*.example.test"]);
        let dir = TempDir::new("certs-ok");
        let (cert, key) = dir.cert("leaf", &leaf);
        let loaded = load_certified_key(&cert, &key).unwrap();
        assert_eq!(loaded.dns_names, ["localhost", "*.example.test"]);
        assert_eq!(fmt_date(loaded.not_after), "2100-01-01");
        assert_eq!(loaded.key.cert.len(), 1);
    }

    /// Signs once with the aws-lc-rs provider, so a build without a
    /// working crypto backend fails here; verification by the same provider
    /// is exercised by every handshake test (`server_config.rs`).
    #[test]
    fn aws_lc_rs_signs() {
        let ca = TestCa::new("test ca");
        let leaf = ca.leaf(&["localhost"]);
        let dir = TempDir::new("certs-sign");
        let (cert, key) = dir.cert("leaf", &leaf);
        let loaded = load_certified_key(&cert, &key).unwrap();
        let scheme = rustls::SignatureScheme::ECDSA_NISTP256_SHA256;
        let signer = loaded.key.key.choose_scheme(&[scheme]).expect("an ECDSA P-256 signer");
        assert!(!signer.sign(b"message").unwrap().is_empty());
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let ca = TestCa::new("test ca");
        let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
        let dir = TempDir::new("certs-mismatch");
        let (cert, _) = dir.cert("a", &a);
        let (_, key) = dir.cert("b", &b);
        let err = load_certified_key(&cert, &key).unwrap_err();
        assert!(err.contains("does not match certificate"), "{err}");
        assert!(err.contains("b.key"), "{err}");
    }

    #[test]
    fn expired_and_future_certificates_are_refused() {
        let ca = TestCa::new("test ca");
        let expired = ca.leaf_with(&["old.test"], |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2024, 1, 1);
        });
        let future = ca.leaf_with(&["new.test"], |p| {
            p.not_before = rcgen::date_time_ymd(2090, 6, 1);
        });
        let dir = TempDir::new("certs-validity");
        let (cert, key) = dir.cert("old", &expired);
        let err = load_certified_key(&cert, &key).unwrap_err();
        assert_eq!(err, format!("certificate {} has expired (not after 2024-01-01)", cert.display()));
        let (cert, key) = dir.cert("new", &future);
        let err = load_certified_key(&cert, &key).unwrap_err();
        assert!(err.ends_with("is not valid yet (not before 2090-06-01)"), "{err}");
    }

    #[test]
    fn unreadable_and_empty_files_name_the_file() {
        let dir = TempDir::new("certs-bad");
        let missing = dir.path().join("missing.pem");
        let err = load_chain(&missing).unwrap_err();
        assert!(err.starts_with(&format!("cannot read certificate {}", missing.display())), "{err}");
        let empty = dir.write("empty.pem", "not pem\n");
        assert!(load_chain(&empty).unwrap_err().contains("no certificate found"));
        assert!(load_key(&empty).unwrap_err().contains("no private key found"));
        let enc =
            dir.write("enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n");
        assert!(load_key(&enc).unwrap_err().contains("encrypted key is not supported"));
        assert!(load_roots(&empty).unwrap_err().contains("no certificate found"));
        let ca = TestCa::new("test ca");
        let bundle = dir.write("ca.pem", &ca.pem);
        assert_eq!(load_roots(&bundle).unwrap().len(), 1);
    }

    #[test]
    fn dates() {
        const CASES: &[(i64, &str)] =
            &[(0, "1970-01-01"), (951_782_400, "2000-02-29"), (1_704_067_200, "2024-01-01"), (-86_400, "1969-12-31")];
        for &(t, want) in CASES {
            assert_eq!(fmt_date(system_time(t)), want, "{t}");
        }
    }

    #[test]
    fn client_identity_format() {
        let ca = TestCa::new("test ca");
        let leaf = ca.leaf_with(&["client1.example.test", "10.0.0.1"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme, \"Inc\"");
            p.distinguished_name.push(rcgen::DnType::CommonName, "client1\u{e9}");
            p.subject_alt_names.push(rcgen::SanType::URI("spiffe://acme/a,b".try_into().unwrap()));
        });
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let got = client_identity(&[der]).unwrap();
        assert_eq!(
            got,
            r#"subject="CN=client1\\C3\\A9,O=Acme\\, \\\"Inc\\\"";san="DNS:client1.example.test,IP:10.0.0.1,URI:spiffe://acme/a\\,b""#
        );
        assert!(got.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(client_identity(&[]), None);
    }
}
