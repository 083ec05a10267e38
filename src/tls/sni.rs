//! Certificate selection by SNI during the TLS handshake (the first step
//! of a downstream HTTPS connection), reloadable in place.
//!
//! A listener's certificates form an [`SniTable`]: exact names, one-label
//! wildcards and a default. The [`SniResolver`] rustls calls holds the
//! table in an `ArcSwap`: a handshake takes a lock-free snapshot, and
//! [`SniResolver::reload`] (SIGHUP, on the control thread) builds a whole
//! new table from the files and swaps it in at once, or keeps the old one
//! on any error. The `rustls::ServerConfig` holding the resolver, and with
//! it the session ticket keys, stays the same across reloads, so sessions
//! keep resuming.
//!
//! Wildcards follow the TLS rule (RFC 6125 §6.4.3), not the route rule:
//! `*.example.test` matches `a.example.test`, not `a.b.example.test` nor
//! `example.test`.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::load_certified_key;
use crate::config::CertificateFiles;

/// One listener's certificates, indexed by name.
#[derive(Debug)]
pub struct SniTable {
    certs: Vec<Arc<CertifiedKey>>,
    /// Lowercase name -> index into `certs`.
    exact: HashMap<String, usize>,
    /// `*.example.test` stored as `example.test` -> index into `certs`.
    wildcard: HashMap<String, usize>,
    /// The certificate for clients without SNI or with an unknown name;
    /// `None` in strict mode (those handshakes fail).
    default: Option<usize>,
}

impl SniTable {
    /// Loads every certificate (see `certs::load_certified_key`). A
    /// certificate's names are its `server_names`, or when those are empty
    /// the DNS names of its subjectAltName. A name served by two
    /// certificates goes to the first (config validation refuses explicit
    /// duplicates). The first certificate is the default unless `strict`.
    pub fn load(files: &[CertificateFiles], strict: bool) -> Result<SniTable, String> {
        if files.is_empty() {
            return Err("no certificate".to_owned());
        }
        let mut table = SniTable {
            certs: Vec::with_capacity(files.len()),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: if strict { None } else { Some(0) },
        };
        for (i, f) in files.iter().enumerate() {
            let loaded = load_certified_key(&f.cert, &f.key)?;
            let names = if f.server_names.is_empty() { &loaded.dns_names } else { &f.server_names };
            for name in names {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(suffix) => table.wildcard.entry(suffix.to_owned()).or_insert(i),
                    None => table.exact.entry(name).or_insert(i),
                };
            }
            table.certs.push(loaded.key);
        }
        Ok(table)
    }

    /// The certificate for a ClientHello's SNI: an exact name, else a
    /// wildcard one label up, else the default (`None` in strict mode).
    pub fn lookup(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        self.lookup_index(sni).map(|i| &self.certs[i])
    }

    /// Index (in config order) of the certificate [`SniTable::lookup`] picks.
    pub fn lookup_index(&self, sni: Option<&str>) -> Option<usize> {
        let Some(name) = sni else {
            return self.default;
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        // rustls hands over the name as the client sent it; names are
        // case-insensitive (RFC 6066 §3 says ASCII, compared without case).
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        if let Some((first, parent)) = name.split_once('.') {
            if !first.is_empty() {
                if let Some(&i) = self.wildcard.get(parent) {
                    return Some(i);
                }
            }
        }
        self.default
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// The `ResolvesServerCert` of a listener: an [`SniTable`] that can be
/// replaced while handshakes run. Shared (`Arc`) by every shard through the
/// listener's `rustls::ServerConfig`.
#[derive(Debug)]
pub struct SniResolver {
    table: ArcSwap<SniTable>,
    strict: bool,
}

impl SniResolver {
    pub fn new(files: &[CertificateFiles], strict: bool) -> Result<SniResolver, String> {
        Ok(SniResolver { table: ArcSwap::from_pointee(SniTable::load(files, strict)?), strict })
    }

    /// Loads `files` into a new table and swaps it in; on any error the
    /// current table keeps serving and the error says why. Handshakes in
    /// progress finish with the table they started with. `strict_sni`
    /// stays as built (it is part of the listener, not of the files).
    pub fn reload(&self, files: &[CertificateFiles]) -> Result<(), String> {
        let table = SniTable::load(files, self.strict)?;
        self.store(table);
        Ok(())
    }

    /// Swaps in a table loaded beforehand (a config reload loads every
    /// listener's files first and stores them only if all of it succeeded).
    pub fn store(&self, table: SniTable) {
        self.table.store(Arc::new(table));
    }

    /// The certificate a ClientHello with this SNI gets.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.table.load().lookup(sni).cloned()
    }

    /// The current table (a snapshot).
    pub fn table(&self) -> Arc<SniTable> {
        self.table.load_full()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::super::certs::testing::{TempDir, TestCa};
    use super::*;

    fn files(dir: &TempDir, ca: &TestCa, name: &str, sans: &[&str], server_names: &[&str]) -> CertificateFiles {
        let (cert, key) = dir.cert(name, &ca.leaf(sans));
        CertificateFiles { cert, key, server_names: server_names.iter().map(|s| s.to_string()).collect() }
    }

    /// Three certificates: 0 = default (SANs `default.test`), 1 = names
    /// from config, 2 = names from its SANs (a wildcard among them).
    fn three(dir: &TempDir) -> Vec<CertificateFiles> {
        let ca = TestCa::new("sni ca");
        vec![
            files(dir, &ca, "default", &["default.test"], &[]),
            files(dir, &ca, "api", &["api.example.test", "admin.example.test"], &["api.example.test"]),
            files(dir, &ca, "wild", &["*.example.test", "example.test"], &[]),
        ]
    }

    #[test]
    fn selection() {
        let dir = TempDir::new("sni");
        let table = SniTable::load(&three(&dir), false).unwrap();
        let strict = SniTable::load(&three(&dir), true).unwrap();
        // (sni, pick, pick in strict mode)
        const CASES: &[(Option<&str>, Option<usize>, Option<usize>)] = &[
            (None, Some(0), None),
            (Some("default.test"), Some(0), Some(0)),
            (Some("api.example.test"), Some(1), Some(1)),
            (Some("API.Example.TEST"), Some(1), Some(1)),
            (Some("api.example.test."), Some(1), Some(1)),
            // Not in cert 1's configured names: the wildcard serves it.
            (Some("admin.example.test"), Some(2), Some(2)),
            (Some("www.example.test"), Some(2), Some(2)),
            (Some("example.test"), Some(2), Some(2)),
            // One label only.
            (Some("a.b.example.test"), Some(0), None),
            (Some(".example.test"), Some(0), None),
            (Some("unknown.test"), Some(0), None),
            (Some("test"), Some(0), None),
        ];
        for &(sni, want, want_strict) in CASES {
            assert_eq!(table.lookup_index(sni), want, "{sni:?}");
            assert_eq!(strict.lookup_index(sni), want_strict, "strict {sni:?}");
        }
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn reload_swaps_or_keeps_the_old_table() {
        let dir = TempDir::new("sni-reload");
        let ca = TestCa::new("sni ca");
        let first = vec![files(&dir, &ca, "one", &["one.test"], &[])];
        let resolver = SniResolver::new(&first, true).unwrap();
        let before = resolver.lookup(Some("one.test")).unwrap();
        assert!(resolver.lookup(Some("two.test")).is_none());

        // A new set with a broken second entry: nothing changes.
        let mut broken = vec![files(&dir, &ca, "two", &["two.test"], &[])];
        broken.push(CertificateFiles {
            cert: dir.path().join("missing.pem"),
            key: dir.path().join("missing.key"),
            server_names: vec![],
        });
        let err = resolver.reload(&broken).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        assert!(Arc::ptr_eq(&resolver.lookup(Some("one.test")).unwrap(), &before));
        assert!(resolver.lookup(Some("two.test")).is_none());

        // A good set replaces the table; strict mode is kept.
        broken.pop();
        resolver.reload(&broken).unwrap();
        assert!(resolver.lookup(Some("two.test")).is_some());
        assert!(resolver.lookup(Some("one.test")).is_none());
        assert!(resolver.lookup(None).is_none());
    }

    #[test]
    fn an_empty_list_is_an_error() {
        assert_eq!(SniTable::load(&[], false).unwrap_err(), "no certificate");
    }
}
