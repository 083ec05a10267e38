//! TLS: HTTPS listeners (SNI, versions, ALPN, resumption across shards,
//! reload on SIGHUP, mTLS, HSTS), TLS to upstreams, the http -> https
//! redirect, and interoperability with curl and openssl.
//!
//! Every certificate is made by the test that uses it ([`Pki`]: one CA, PEM
//! files in the test's temp dir, absolute paths in the config). Handshakes
//! are real, on 127.0.0.1, from a rustls client that reports what was
//! negotiated (`harness::tls`).

mod interop;
mod mtls;
mod proxying;
mod redirect;
mod reload;
mod resumption;
mod sni;
mod upstream_tls;
mod versions;

use std::path::PathBuf;

use crate::harness::pki::{Ca, CertFiles, Leaf};
use crate::harness::tempdir::TempDir;
use crate::harness::tls::{subject_of, Handshake};

/// A CA and a temp dir for the PEM files of the certificates it issues.
struct Pki {
    dir: TempDir,
    ca: Ca,
    /// The CA certificate's file.
    ca_file: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new();
        let ca = Ca::new("shardgate test ca");
        let ca_file = ca.write(&dir, "ca");
        Pki { dir, ca, ca_file }
    }

    /// A server certificate `CN=stem` for `names`, written to `stem.pem`
    /// and `stem.key`.
    fn server(&self, stem: &str, names: &[&str]) -> (Leaf, CertFiles) {
        let leaf = self.ca.server(stem, names);
        let files = leaf.write(&self.dir, stem);
        (leaf, files)
    }
}

/// `[listeners.tls]` lines: `certificates = [...]` (each entry from
/// [`CertFiles::toml`]) and then `extra` lines.
fn tls_lines(certificates: &[String], extra: &[&str]) -> String {
    let mut lines = format!("certificates = [{}]", certificates.join(", "));
    for line in extra {
        lines.push('\n');
        lines.push_str(line);
    }
    lines
}

/// Asserts the server presented `want` as its leaf.
#[track_caller]
fn assert_leaf(handshake: &Handshake, want: &Leaf, context: &str) {
    assert!(
        handshake.leaf == want.der,
        "{context}: the server presented {:?}, expected {:?}",
        subject_of(&handshake.leaf),
        format!("CN={}", want.cn)
    );
}
