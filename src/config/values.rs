//! Single values of the config file outside units: host patterns, route
//! paths, methods, header names and values, redirect locations, listen and
//! endpoint addresses. Used by `validate` in `file -> validate -> Config`;
//! each check looks at one value alone and returns a one-line message
//! without a field path (the caller adds it).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::HostMatch;

/// `api.example.com` or `*.example.com` (wildcard only as the whole first
/// label), lowercased; no port, scheme or trailing dot. An IPv6 literal is
/// written in brackets as in a Host header: `[::1]`.
pub(super) fn parse_host_pattern(text: &str) -> Result<HostMatch, String> {
    let host = text.to_ascii_lowercase();
    if host.is_empty() {
        return Err("empty host: omit host to match any host".to_owned());
    }
    if host.contains("://") {
        return Err(format!("{text:?}: write the host name only, without a scheme"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((ip, "")) if ip.parse::<Ipv6Addr>().is_ok() => Ok(HostMatch::Exact(host)),
            Some((ip, rest)) if ip.parse::<Ipv6Addr>().is_ok() && rest.starts_with(':') => {
                Err(format!("{text:?}: a port is not allowed, match on the host alone"))
            }
            _ => Err(format!("{text:?} is not a bracketed IPv6 address")),
        };
    }
    if host.contains(':') {
        return Err(format!("{text:?}: a port is not allowed, match on the host alone"));
    }
    if host == "*" {
        return Err("\"*\" matches every host: omit host instead".to_owned());
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host.as_str()),
    };
    if name.contains('*') {
        return Err(format!("{text:?}: \"*\" is only allowed as the whole first label, as in \"*.example.com\""));
    }
    if name.ends_with('.') {
        return Err(format!("{text:?}: remove the trailing dot"));
    }
    if name.len() > 253 {
        return Err(format!("{text:?} is longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("{text:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("{text:?} has a label longer than 63 characters"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!("{text:?}: {c:?} is not allowed in a host name"));
        }
    }
    Ok(if wildcard { HostMatch::Suffix(format!(".{name}")) } else { HostMatch::Exact(name.to_owned()) })
}

/// A route path is compared with the request's normalised path
/// (`pipeline/path.rs`), so it must already be in that form, or the route
/// could never match: it starts with `/`, has no query, fragment,
/// whitespace, `//` or dot segments, and its percent escapes are
/// uppercase and not of unreserved characters (`%41` is written `A`).
pub(super) fn check_route_path(p: &str) -> Result<&str, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with \"/\""));
    }
    if p.contains(['?', '#']) {
        return Err(format!("{p:?}: a path cannot contain a query (?) or fragment (#)"));
    }
    if p.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{p:?} contains whitespace or a control character"));
    }
    if p.contains("//") {
        return Err(format!(
            "{p:?} has \"//\", which a normalised request path never has (runs of \"/\" collapse to one)"
        ));
    }
    if p.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("{p:?} has a \".\" or \"..\" segment, which a normalised request path never has"));
    }
    let bytes = p.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let Some(hex) = hex.and_then(|h| std::str::from_utf8(h).ok()) else {
            return Err(format!("{p:?}: \"%\" must be followed by two hex digits"));
        };
        let Ok(byte) = u8::from_str_radix(hex, 16) else {
            return Err(format!("{p:?}: \"%\" must be followed by two hex digits"));
        };
        if byte < b' ' || byte == 0x7f {
            return Err(format!("{p:?}: %{hex} is a control character"));
        }
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            return Err(format!(
                "{p:?}: write {:?} instead of %{hex} (normalised paths decode unreserved characters)",
                byte as char
            ));
        }
        if hex.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(format!("{p:?}: write %{} (normalised paths use uppercase hex)", hex.to_ascii_uppercase()));
        }
        i += 3;
    }
    Ok(p)
}

/// RFC 9110 `tchar`: the characters of a token (method, header name).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A method is a token; stored uppercase.
pub(super) fn parse_method(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(is_tchar) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(format!("{text:?} is not an HTTP method token"))
    }
}

/// A header name is a token; stored lowercase.
pub(super) fn parse_header_name(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(is_tchar) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a valid header name"))
    }
}

/// RFC 9110 field-value: visible characters, spaces and tabs inside, no
/// CR/LF/NUL (they would split or smuggle a header), nothing at either end
/// (parsers strip it, so such a value could never match).
pub(super) fn check_header_value(v: &str) -> Result<(), String> {
    if v.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(format!("{v:?} contains a control character (CR, LF, NUL...)"));
    }
    if v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']) {
        return Err(format!("{v:?} has leading or trailing whitespace"));
    }
    Ok(())
}

/// A redirect target goes out as a `Location` header value.
pub(super) fn check_location(location: &str, keep_path: bool) -> Result<(), String> {
    if location.is_empty() {
        return Err("must not be empty".to_owned());
    }
    check_header_value(location)?;
    if location.contains([' ', '\t']) {
        return Err(format!("{location:?} contains a space: percent-encode it as %20"));
    }
    if keep_path && location.ends_with('/') {
        return Err(format!(
            "{location:?} ends with \"/\" but keep_path appends the request path, which starts with \"/\": drop the trailing \"/\""
        ));
    }
    Ok(())
}

/// Listeners bind an IP address; host names are not resolved here.
pub(super) fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP socket address: write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""))
}

/// Whether two listen addresses would take each other's connections: the
/// same port on the same IP, or on a wildcard IP that covers the other.
/// `0.0.0.0` covers every IPv4 address; `[::]` covers every IPv6 address
/// and, dual-stack (Linux's default, and listeners do not set
/// `IPV6_V6ONLY`), every IPv4 address too. Port 0 (any free port) never
/// overlaps: the kernel picks distinct ports.
pub(super) fn listen_addresses_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers = |wide: IpAddr, other: IpAddr| match wide {
        IpAddr::V4(w) => w.is_unspecified() && other.is_ipv4(),
        IpAddr::V6(w) => w.is_unspecified(),
    };
    a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip())
}

/// `ip:port`, or `host:port` resolved now; the first address wins.
pub(super) fn resolve_endpoint(text: &str) -> Result<SocketAddr, String> {
    if text.contains("://") {
        return Err(format!("{text:?}: write host:port without a scheme"));
    }
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            if text.parse::<IpAddr>().is_ok() {
                return Err(format!("{text:?} has no port"));
            }
            let Some((host, port)) = text.rsplit_once(':') else {
                return Err(format!("{text:?} has no port: write host:port"));
            };
            let Ok(port) = port.parse::<u16>() else {
                return Err(format!("{text:?}: {port:?} is not a port number"));
            };
            if host.is_empty()
                || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return Err(format!("{text:?} is not host:port"));
            }
            let mut addrs = (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
            addrs.next().ok_or_else(|| format!("{host:?} resolved to no address"))?
        }
    };
    if addr.port() == 0 {
        return Err(format!("{text:?}: port 0 cannot be connected to"));
    }
    Ok(addr)
}

/// The host of an endpoint as written, for the default TLS server name:
/// `backend.internal:443` -> `backend.internal`, `[::1]:443` -> `::1`.
/// Only called on text [`resolve_endpoint`] accepted.
pub(super) fn endpoint_host(text: &str) -> String {
    match text.parse::<SocketAddr>() {
        Ok(addr) => addr.ip().to_string(),
        Err(_) => text.rsplit_once(':').map_or(text, |(host, _)| host).to_ascii_lowercase(),
    }
}

/// nginx's `$proxy_host` for an endpoint as written (already accepted by
/// [`resolve_endpoint`]): `host:port`, the port left out when it is the
/// scheme's default; IPv6 in brackets. Host names lowercase.
pub(super) fn proxy_host(text: &str, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = match text.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) => (a.ip().to_string(), a.port()),
        Ok(SocketAddr::V6(a)) => (format!("[{}]", a.ip()), a.port()),
        Err(_) => match text.rsplit_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), port.parse().unwrap_or(default_port)),
            None => (text.to_ascii_lowercase(), default_port),
        },
    };
    if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_overlaps() {
        const CASES: &[(&str, &str, bool)] = &[
            ("127.0.0.1:8080", "127.0.0.1:8080", true),
            ("127.0.0.1:8080", "127.0.0.1:8081", false),
            ("127.0.0.1:8080", "127.0.0.2:8080", false),
            ("0.0.0.0:8080", "127.0.0.1:8080", true),
            ("127.0.0.1:8080", "0.0.0.0:8080", true),
            ("0.0.0.0:8080", "[::1]:8080", false),
            ("[::]:8080", "[::1]:8080", true),
            ("[::]:8080", "127.0.0.1:8080", true),
            ("[::]:8080", "0.0.0.0:8080", true),
            ("[::1]:8080", "127.0.0.1:8080", false),
            ("0.0.0.0:8080", "0.0.0.0:9090", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
            ("0.0.0.0:0", "127.0.0.1:0", false),
        ];
        for (a, b, want) in CASES {
            let got = listen_addresses_overlap(a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(got, *want, "{a} vs {b}");
        }
    }

    #[test]
    fn proxy_host_is_the_endpoint_as_written_without_a_default_port() {
        const CASES: &[(&str, bool, &str)] = &[
            ("127.0.0.1:9000", false, "127.0.0.1:9000"),
            ("127.0.0.1:80", false, "127.0.0.1"),
            ("127.0.0.1:80", true, "127.0.0.1:80"),
            ("[::1]:443", true, "[::1]"),
            ("[::1]:8443", true, "[::1]:8443"),
            ("Backend.Internal:8080", false, "backend.internal:8080"),
            ("backend.internal:443", true, "backend.internal"),
        ];
        for &(text, tls, want) in CASES {
            assert_eq!(proxy_host(text, tls), want, "{text} tls={tls}");
        }
    }

    #[test]
    fn host_patterns() {
        use HostMatch::{Exact, Suffix};
        let ok: &[(&str, HostMatch)] = &[
            ("api.example.com", Exact("api.example.com".into())),
            ("API.Example.COM", Exact("api.example.com".into())),
            ("*.example.com", Suffix(".example.com".into())),
            ("localhost", Exact("localhost".into())),
            ("10.0.0.1", Exact("10.0.0.1".into())),
            ("[::1]", Exact("[::1]".into())),
        ];
        for (s, want) in ok {
            assert_eq!(parse_host_pattern(s).as_ref(), Ok(want), "{s}");
        }
        const BAD: &[(&str, &str)] = &[
            ("a.*.com", "whole first label"),
            ("*example.com", "whole first label"),
            ("*.*.com", "whole first label"),
            ("*", "omit host"),
            ("", "omit host"),
            ("example.com:8080", "port is not allowed"),
            ("[::1]:8080", "port is not allowed"),
            ("https://example.com", "without a scheme"),
            ("example.com.", "trailing dot"),
            ("a..b", "empty label"),
            ("ex ample.com", "not allowed in a host name"),
        ];
        for &(s, want) in BAD {
            let err = parse_host_pattern(s).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn paths_methods_headers() {
        assert!(check_route_path("/api/").is_ok());
        assert!(check_route_path("/a%2Fb").is_ok());
        const BAD: &[(&str, &str)] = &[
            ("api", "must start with"),
            ("/a?b", "query"),
            ("/a b", "whitespace"),
            ("/a/../b", "segment"),
            ("/a/.", "segment"),
            ("/a//b", "collapse"),
            ("/a%2fb", "write %2F"),
            ("/%7euser", "write '~' instead of %7e"),
            ("/%2E%2E/x", "write '.' instead of %2E"),
            ("/a%0Ab", "control character"),
            ("/a%zz", "two hex digits"),
            ("/a%2", "two hex digits"),
        ];
        for &(bad, want) in BAD {
            let err = check_route_path(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert_eq!(parse_method("get"), Ok("GET".to_owned()));
        assert!(parse_method("GE T").is_err());
        assert!(parse_method("").is_err());
        assert_eq!(parse_header_name("X-Env"), Ok("x-env".to_owned()));
        assert!(parse_header_name("x env").is_err());
        assert!(check_header_value("a b").is_ok());
        assert!(check_header_value("a\r\nb").is_err());
        assert!(check_header_value(" a").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(resolve_endpoint("127.0.0.1:9000"), Ok(SocketAddr::from(([127, 0, 0, 1], 9000))));
        assert!(resolve_endpoint("localhost:9000").is_ok());
        for bad in ["127.0.0.1", "::1", "http://a:1", "a:b", "127.0.0.1:0", "a b:1"] {
            assert!(resolve_endpoint(bad).is_err(), "{bad}");
        }
        assert_eq!(endpoint_host("127.0.0.1:9000"), "127.0.0.1");
        assert_eq!(endpoint_host("[::1]:443"), "::1");
        assert_eq!(endpoint_host("Backend.Internal:443"), "backend.internal");
    }
}
