//! The TLS part of `validate` in `file -> validate -> Config`:
//! `[listeners.tls]`, `[clusters.tls]` and the `https_redirect` route
//! action.
//!
//! Certificate files are loaded here with `crate::tls::certs`, the same
//! code that builds the rustls configs, so a file that cannot be read, has
//! no certificate, does not match its key or is not valid today is a config
//! error naming the file and the field, and `shardgate check` catches it
//! before a reload does. Relative paths are relative to the config file's
//! directory.

use std::collections::HashMap;
use std::path::PathBuf;

use rustls::pki_types::ServerName;

use super::bounds::check_duration;
use super::file::{CertificateFile, ClusterTlsFile, HttpsRedirectFile, ListenerTlsFile, VersionText};
use super::spans::FieldPath;
use super::units::parse_duration;
use super::validate::Check;
use super::values::{check_header_value, parse_header_name, parse_host_pattern};
use super::{defaults, CertificateFiles, ClusterTls, HostMatch, Listener, ListenerTls, Route, RouteAction, TlsVersion};
use crate::tls::certs::{self, LoadedCert};
use crate::tls::client_config;
use crate::tls::server_config::{MAX_TICKET_LIFETIME, MIN_TICKET_LIFETIME};

/// Headers shardgate writes or removes itself: a client identity header
/// cannot be one of them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "x-request-id",
];

impl Check<'_> {
    pub(super) fn listener_tls(&mut self, path: &FieldPath, t: &ListenerTlsFile) -> Option<ListenerTls> {
        let strict_sni = t.strict_sni.unwrap_or(false);
        let cpath = path.key("certificates");
        if t.certificates.is_empty() {
            self.error(
                &cpath,
                "at least one certificate is required: certificates = [{ cert = \"a.pem\", key = \"a.key\" }]",
            );
        }
        let mut certificates = Vec::with_capacity(t.certificates.len());
        // Explicit server name -> the certificate index that first named it.
        let mut named: HashMap<String, usize> = HashMap::new();
        for (i, c) in t.certificates.iter().enumerate() {
            if let Some(files) = self.listener_certificate(&cpath.index(i), i, c, strict_sni, &mut named) {
                certificates.push(files);
            }
        }
        let min_version = t.min_version.as_ref().and_then(|v| self.ok(&path.key("min_version"), tls_version(v)));
        let client_ca = t.client_ca.as_deref().and_then(|p| {
            let ca_path = path.key("client_ca");
            let p = self.file_path(&ca_path, p)?;
            self.ok(&ca_path, certs::load_roots(&p)).map(|_| p)
        });
        let client_cert_header = t.client_cert_header.as_deref().and_then(|h| {
            let hpath = path.key("client_cert_header");
            let name = self.ok(&hpath, parse_header_name(h))?;
            if RESERVED_HEADERS.contains(&name.as_str()) {
                self.error(&hpath, format!("{name} is a header shardgate sets or removes itself: pick another name"));
                return None;
            }
            if t.client_ca.is_none() {
                self.error(&hpath, "needs client_ca: without client certificates there is no identity to forward");
            }
            Some(name)
        });
        let ticket_lifetime = t
            .ticket_lifetime
            .as_ref()
            .and_then(|v| {
                let lpath = path.key("ticket_lifetime");
                let d = self.ok(&lpath, parse_duration(&v.0))?;
                self.ok(&lpath, check_duration(d, MIN_TICKET_LIFETIME, MAX_TICKET_LIFETIME))
            })
            .unwrap_or(defaults::TICKET_LIFETIME);
        let hsts = t.hsts.as_deref().and_then(|v| self.ok(&path.key("hsts"), check_hsts(v)));
        if certificates.len() != t.certificates.len() {
            return None;
        }
        Some(ListenerTls {
            certificates,
            strict_sni,
            min_version: min_version.unwrap_or(TlsVersion::Tls12),
            client_ca,
            client_cert_header,
            ticket_lifetime,
            hsts,
        })
    }

    fn listener_certificate(
        &mut self,
        path: &FieldPath,
        i: usize,
        c: &CertificateFile,
        strict_sni: bool,
        named: &mut HashMap<String, usize>,
    ) -> Option<CertificateFiles> {
        let loaded = self.cert_pair(path, &c.cert, &c.key);
        let mut server_names = Vec::new();
        match &c.server_names {
            Some(list) => {
                let npath = path.key("server_names");
                if list.is_empty() {
                    self.error(&npath, "empty list: omit server_names to use the certificate's DNS names");
                }
                for (j, text) in list.iter().enumerate() {
                    let jpath = npath.index(j);
                    let Some(name) = self.ok(&jpath, parse_sni_name(text)) else { continue };
                    if let Some(&first) = named.get(&name) {
                        let msg = if first == i {
                            format!("{name} is listed twice")
                        } else {
                            format!("{name} is already served by certificates[{first}]")
                        };
                        self.error(&jpath, msg);
                        continue;
                    }
                    named.insert(name.clone(), i);
                    if let Some((_, l)) = &loaded {
                        if !covers(&l.dns_names, &name) {
                            let msg = format!(
                                "the certificate does not cover {name} (its DNS names: {})",
                                fmt_names(&l.dns_names)
                            );
                            self.error(&jpath, msg);
                        }
                    }
                    server_names.push(name);
                }
            }
            None => {
                if let Some((files, l)) = &loaded {
                    if l.dns_names.is_empty() && (i > 0 || strict_sni) {
                        let msg = format!(
                            "certificate {} has no DNS names in its subjectAltName: no SNI can select it",
                            files.0.display()
                        );
                        self.error(&path.key("cert"), msg);
                    }
                }
            }
        }
        let ((cert, key), _) = loaded?;
        Some(CertificateFiles { cert, key, server_names })
    }

    /// Loads and checks a certificate chain and its key; errors go to
    /// `path.cert` (read, parse, dates) and `path.key` (read, type, mismatch).
    fn cert_pair(&mut self, path: &FieldPath, cert: &str, key: &str) -> Option<((PathBuf, PathBuf), LoadedCert)> {
        let (cpath, kpath) = (path.key("cert"), path.key("key"));
        let cert_file = self.file_path(&cpath, cert);
        let key_file = self.key_file_path(&kpath, key);
        let chain = cert_file.as_ref().and_then(|f| self.ok(&cpath, certs::load_chain(f)));
        let key_der = key_file.as_ref().and_then(|f| self.ok(&kpath, certs::load_key(f)));
        let (cert_file, key_file) = (cert_file?, key_file?);
        let loaded = self.ok(&kpath, certs::certified_key(&cert_file, chain?, &key_file, key_der?))?;
        Some(((cert_file, key_file), loaded))
    }

    /// A file name from the config, relative to the config's directory.
    pub(super) fn file_path(&mut self, path: &FieldPath, text: &str) -> Option<PathBuf> {
        if text.is_empty() {
            self.error(path, "must not be empty: write a file name");
            return None;
        }
        Some(self.base_dir.join(text))
    }

    /// `cluster` is the cluster's path; `hosts` its endpoints' hosts as
    /// written (the default server name) with their index in `endpoints`.
    pub(super) fn cluster_tls(
        &mut self,
        cluster: &FieldPath,
        t: &ClusterTlsFile,
        hosts: &[(usize, String)],
    ) -> ClusterTls {
        let path = &cluster.key("tls");
        let verify = t.verify.unwrap_or(true);
        let server_name = t.server_name.as_deref().and_then(|s| {
            let npath = path.key("server_name");
            if s.starts_with("*.") {
                self.error(&npath, format!("{s:?}: a wildcard cannot be a name to connect to"));
                return None;
            }
            let lower = s.to_ascii_lowercase();
            let checked = match ServerName::try_from(lower.as_str()) {
                Ok(_) => Ok(()),
                Err(_) => Err(format!("{s:?} is not a valid TLS server name")),
            };
            self.ok(&npath, checked).map(|()| lower)
        });
        let mut tls = ClusterTls { server_name, ca: None, verify, client_cert: None };
        if t.server_name.is_none() {
            for (j, host) in hosts {
                let r = client_config::server_name(&tls, host).map_err(|e| format!("{e}: set tls.server_name"));
                self.ok(&cluster.key("endpoints").index(*j), r);
            }
        }
        match (&t.ca, verify) {
            (Some(_), false) => {
                self.error(&path.key("ca"), "ca is unused when verify = false: remove one of them");
            }
            (Some(ca), true) => {
                let ca_path = path.key("ca");
                if let Some(p) = self.file_path(&ca_path, ca) {
                    tls.ca = self.ok(&ca_path, certs::load_roots(&p)).map(|_| p);
                }
            }
            (None, true) => {
                if let Err(e) = certs::system_roots() {
                    self.error(path, format!("{e}: set ca to a CA bundle file"));
                }
            }
            (None, false) => {}
        }
        if let Some(c) = &t.client_cert {
            let cpath = path.key("client_cert");
            if let Some(((cert, key), _)) = self.cert_pair(&cpath, &c.cert, &c.key) {
                tls.client_cert = Some(CertificateFiles { cert, key, server_names: Vec::new() });
            }
        }
        tls
    }

    pub(super) fn https_redirect(&mut self, path: &FieldPath, r: &HttpsRedirectFile) -> Option<RouteAction> {
        let status = match r.status {
            None => Some(defaults::HTTPS_REDIRECT_STATUS),
            Some(s @ (301 | 302 | 303 | 307 | 308)) => Some(s as u16),
            Some(s) => {
                let msg = format!("{s} is not a redirect status: use 301, 302, 303, 307 or 308");
                self.error(&path.key("status"), msg);
                None
            }
        };
        let port = match r.port {
            None => None,
            Some(p) if p == i64::from(defaults::HTTPS_PORT) => None,
            Some(p @ 1..=65535) => Some(p as u16),
            Some(p) => {
                self.error(&path.key("port"), format!("{p} is not a port number (1-65535)"));
                return None;
            }
        };
        Some(RouteAction::HttpsRedirect { status: status?, port })
    }

    /// An https_redirect served on an HTTPS listener would send clients
    /// to the URL they are on, forever.
    pub(super) fn check_redirect_loops(&mut self, listeners: &[Listener], routes: &[Route]) {
        for l in listeners.iter().filter(|l| l.tls.is_some()) {
            for &i in &l.routes {
                if let Some(RouteAction::HttpsRedirect { .. }) = routes.get(i).map(|r| &r.action) {
                    let msg = format!(
                        "listener {:?} is already https: the redirect would loop (limit the route to plain-http listeners with `listeners = [...]`)",
                        l.name
                    );
                    self.error(&FieldPath::root("routes").index(i).key("https_redirect"), msg);
                }
            }
        }
    }
}

/// `"1.2"` / `"1.3"`.
fn tls_version(v: &VersionText) -> Result<TlsVersion, String> {
    match v.0.as_str() {
        "1.2" => Ok(TlsVersion::Tls12),
        "1.3" => Ok(TlsVersion::Tls13),
        "1" | "1.0" | "1.1" => Err(format!("TLS {} is not supported (RFC 8996): use \"1.2\" or \"1.3\"", v.0)),
        other => Err(format!("unknown TLS version {other:?}: use \"1.2\" or \"1.3\"")),
    }
}

/// A certificate's server name: a host name or `*.` + host name, lowercase.
/// SNI never carries an IP address (RFC 6066 §3): clients connecting by IP
/// send none and get the default certificate.
fn parse_sni_name(text: &str) -> Result<String, String> {
    match parse_host_pattern(text)? {
        HostMatch::Suffix(suffix) => Ok(format!("*{suffix}")),
        HostMatch::Exact(h) if h.starts_with('[') || h.parse::<std::net::IpAddr>().is_ok() => Err(format!(
            "{text:?}: SNI never carries an IP address; clients connecting by IP get the first certificate"
        )),
        HostMatch::Exact(h) => Ok(h),
    }
}

/// Whether a certificate with DNS SANs `sans` is valid for `name` (an
/// exact name, or a `*.suffix` server name, which only a same wildcard SAN
/// covers).
fn covers(sans: &[String], name: &str) -> bool {
    sans.iter().any(|san| {
        san == name
            || match (san.strip_prefix("*."), name.split_once('.')) {
                (Some(suffix), Some((first, rest))) => !name.starts_with("*.") && !first.is_empty() && rest == suffix,
                _ => false,
            }
    })
}

fn fmt_names(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// RFC 6797 §6.1: a header value with a `max-age` directive.
fn check_hsts(v: &str) -> Result<String, String> {
    check_header_value(v)?;
    let has_max_age = v.split(';').any(|d| {
        let d = d.trim().to_ascii_lowercase();
        d.strip_prefix("max-age=").is_some_and(|n| {
            let n = n.trim_matches('"');
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
    });
    if !has_max_age {
        return Err(format!("{v:?} has no max-age directive: write e.g. \"max-age=31536000\""));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names() {
        assert_eq!(parse_sni_name("A.Example.TEST"), Ok("a.example.test".to_owned()));
        assert_eq!(parse_sni_name("*.example.test"), Ok("*.example.test".to_owned()));
        for bad in ["10.0.0.1", "[::1]", "a.*.test", "", "a.test:443"] {
            assert!(parse_sni_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn san_coverage() {
        let sans = ["a.test".to_owned(), "*.example.test".to_owned()];
        const CASES: &[(&str, bool)] = &[
            ("a.test", true),
            ("b.test", false),
            ("x.example.test", true),
            ("example.test", false),
            ("x.y.example.test", false),
            ("*.example.test", true),
            ("*.test", false),
        ];
        for &(name, want) in CASES {
            assert_eq!(covers(&sans, name), want, "{name}");
        }
    }

    #[test]
    fn hsts_values() {
        assert!(check_hsts("max-age=31536000").is_ok());
        assert!(check_hsts("max-age=63072000; includeSubDomains; preload").is_ok());
        assert!(check_hsts("includeSubDomains").is_err());
        assert!(check_hsts("max-age=").is_err());
        assert!(check_hsts("max-age=1\r\n").is_err());
    }

    #[test]
    fn versions() {
        let v = |s: &str| tls_version(&VersionText(s.to_owned()));
        assert_eq!(v("1.2"), Ok(TlsVersion::Tls12));
        assert_eq!(v("1.3"), Ok(TlsVersion::Tls13));
        assert!(v("1.1").unwrap_err().contains("RFC 8996"));
        assert!(v("tls1.3").unwrap_err().contains("unknown TLS version"));
    }
}
