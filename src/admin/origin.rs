//! Keeping web pages out of the admin API. A browser on the operator's
//! machine can be made to send requests to a loopback admin listener by
//! any page it opens: a cross-origin `POST /reload` or `POST /drain` needs
//! no preflight, and DNS rebinding (a name of the attacker's that resolves
//! to 127.0.0.1) lets a page read the answers too. So, before anything
//! else:
//!
//! - a request a browser marks as coming from another site is refused:
//!   an `Origin` field that is not this listener's own origin, or
//!   `Sec-Fetch-Site: cross-site` / `same-site`;
//! - without `admin.token`, the `Host` must be an IP address or
//!   `localhost` (with any port): a rebinding page's Host is its own DNS
//!   name. With a token, any Host is accepted: the page cannot know it.
//!
//! Command-line clients (curl, Prometheus, the dashboard page itself) send
//! none of these fields, or same-origin ones.

/// Why a request is refused, when it is.
pub fn refused(headers: &[httparse::Header<'_>], has_token: bool) -> Option<&'static str> {
    let field = |name: &str| headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    let host = field("host");
    if let Some(site) = field("sec-fetch-site") {
        if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
            return Some("a request from another site");
        }
    }
    if let Some(origin) = field("origin") {
        let same = host.is_some_and(|h| origin.strip_prefix(b"http://") == Some(h));
        if !same {
            return Some("a request from another origin");
        }
    }
    if !has_token && !host.is_none_or(is_address_or_localhost) {
        return Some("Host must be an IP address or localhost (or set admin.token)");
    }
    None
}

/// `127.0.0.1`, `127.0.0.1:9901`, `[::1]:9901`, `localhost:9901`, …
fn is_address_or_localhost(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else { return false };
    let name = match host.strip_prefix('[') {
        // An IPv6 literal: `[addr]` or `[addr]:port`.
        Some(rest) => match rest.split_once(']') {
            Some((addr, port)) => {
                let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(valid_port);
                return addr.parse::<std::net::Ipv6Addr>().is_ok() && port_ok;
            }
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The digits after `host:`: a valid port number.
fn valid_port(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fields: &[(&str, &str)], has_token: bool) -> Option<&'static str> {
        let headers: Vec<httparse::Header<'_>> =
            fields.iter().map(|(n, v)| httparse::Header { name: n, value: v.as_bytes() }).collect();
        refused(&headers, has_token)
    }

    #[test]
    fn command_line_clients_and_same_origin_pages_pass() {
        assert_eq!(check(&[], false), None);
        assert_eq!(check(&[("Host", "127.0.0.1:9901")], false), None);
        assert_eq!(check(&[("Host", "localhost:9901")], false), None);
        assert_eq!(check(&[("Host", "[::1]:9901")], false), None);
        assert_eq!(check(&[("Host", "10.0.0.7")], false), None);
        let same = [("Host", "127.0.0.1:9901"), ("Origin", "http://127.0.0.1:9901"), ("Sec-Fetch-Site", "same-origin")];
        assert_eq!(check(&same, false), None);
        assert_eq!(check(&[("Host", "admin.internal:9901")], true), None, "a token defeats rebinding");
    }

    #[test]
    fn other_sites_and_rebound_names_are_refused() {
        assert!(check(&[("Host", "127.0.0.1:9901"), ("Origin", "http://evil.example")], false).is_some());
        assert!(check(&[("Host", "127.0.0.1:9901"), ("Origin", "null")], true).is_some());
        assert!(check(&[("Host", "127.0.0.1:9901"), ("Sec-Fetch-Site", "cross-site")], true).is_some());
        assert!(check(&[("Host", "rebind.evil.example:9901")], false).is_some());
        for bad in ["127.0.0.1:", "127.0.0.1:99999", "[::1", "[nope]:1", "localhost:x", "127.0.0.1.evil.example"] {
            assert!(check(&[("Host", bad)], false).is_some(), "{bad}");
        }
    }
}
