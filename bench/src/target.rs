//! The target URL: where the load goes and what goes into the request line
//! and `Host` header.
//!
//! `http://` and `https://`; the scheme decides whether a connection runs
//! a TLS handshake (`tls.rs`) before its first request.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// How bytes reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    /// TLS over TCP (the TLS options are in `tls::TlsOptions`).
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed, resolved target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// `host[:port]` exactly as written in the URL: this is what goes into
    /// the `Host` header, as a browser or curl would send it.
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// Origin-form request target: path plus query, never empty.
    pub path: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TargetError {
    MissingScheme,
    UnsupportedScheme(String),
    UserInfo,
    EmptyHost,
    BadPort(String),
    BadPath,
    Resolve(String),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::MissingScheme => {
                write!(f, "URL must start with http:// or https:// (e.g. http://127.0.0.1:8080/)")
            }
            TargetError::UnsupportedScheme(s) => write!(f, "unsupported URL scheme {s:?}"),
            TargetError::UserInfo => write!(f, "user:password@ in the URL is not supported"),
            TargetError::EmptyHost => write!(f, "URL has no host"),
            TargetError::BadPort(p) => write!(f, "bad port {p:?} in URL"),
            TargetError::BadPath => {
                write!(f, "URL path contains whitespace or control characters")
            }
            TargetError::Resolve(e) => write!(f, "cannot resolve target host: {e}"),
        }
    }
}

impl Target {
    /// Parse `scheme://host[:port][/path][?query][#fragment]`. The fragment
    /// is dropped, as clients never send it.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let (scheme, rest) = url.split_once("://").ok_or(TargetError::MissingScheme)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(TargetError::UnsupportedScheme(other.to_string())),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split_at = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split_at);
        if authority.contains('@') {
            return Err(TargetError::UserInfo);
        }
        let (host, port) = split_host_port(authority, scheme)?;
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(TargetError::BadPath);
        }
        Ok(Target { scheme, authority: authority.to_string(), host, port, path })
    }

    /// Resolve once at start-up, so no request pays for a lookup and every
    /// connection goes to the same address.
    pub fn resolve(&self) -> Result<SocketAddr, TargetError> {
        let host = self.bare_host();
        (host, self.port)
            .to_socket_addrs()
            .map_err(|e| TargetError::Resolve(e.to_string()))?
            .next()
            .ok_or_else(|| TargetError::Resolve(format!("{host} has no address")))
    }

    /// The host without IPv6 brackets: what a TLS server name is made from.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme.as_str(), self.authority, self.path)
    }
}

fn split_host_port(authority: &str, scheme: Scheme) -> Result<(String, u16), TargetError> {
    // An IPv6 literal carries colons of its own: the port is only what
    // follows the closing bracket.
    let (host, port) = if let Some(end) = authority.strip_prefix('[').and_then(|a| a.find(']')) {
        let host = &authority[..end + 2];
        let after = &authority[end + 2..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(TargetError::BadPort(after.to_string())),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(TargetError::EmptyHost);
    }
    let port = match port {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err(TargetError::BadPort(p.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_path() {
        let t = Target::parse("http://127.0.0.1:8080/api/v1?x=1").unwrap();
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 8080);
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path, "/api/v1?x=1");
        assert_eq!(t.url(), "http://127.0.0.1:8080/api/v1?x=1");
    }

    #[test]
    fn defaults_port_and_path() {
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = Target::parse("http://localhost?q").unwrap();
        assert_eq!(t.path, "/?q");
        let t = Target::parse("http://localhost/a#frag").unwrap();
        assert_eq!(t.path, "/a");
    }

    #[test]
    fn parses_ipv6_literal() {
        let t = Target::parse("http://[::1]:9000/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 9000));
        let t = Target::parse("http://[::1]/").unwrap();
        assert_eq!(t.port, 80);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let cases: &[(&str, TargetError)] = &[
            ("127.0.0.1:80/", TargetError::MissingScheme),
            ("ftp://x/", TargetError::UnsupportedScheme("ftp".into())),
            ("http://u:p@host/", TargetError::UserInfo),
            ("http:///path", TargetError::EmptyHost),
            ("http://h:0/", TargetError::BadPort("0".into())),
            ("http://h:99999/", TargetError::BadPort("99999".into())),
            ("http://h:/", TargetError::BadPort("".into())),
            ("http://h/a b", TargetError::BadPath),
        ];
        for (url, want) in cases {
            assert_eq!(Target::parse(url).as_ref().err(), Some(want), "{url}");
        }
    }

    #[test]
    fn parses_https_with_its_default_port() {
        let t = Target::parse("HTTPS://localhost/x").unwrap();
        assert_eq!((t.scheme, t.port, t.path.as_str()), (Scheme::Https, 443, "/x"));
        assert_eq!(t.url(), "https://localhost/x");
        let t = Target::parse("https://[::1]:8443/").unwrap();
        assert_eq!((t.bare_host(), t.port), ("::1", 8443));
    }

    #[test]
    fn resolves_loopback() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(t.resolve().unwrap(), "127.0.0.1:8080".parse().unwrap());
    }
}
