//! Address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a
//! bare address for one host): a listener's `trusted_proxies`.
//!
//! Where it sits: parsed once by `validate.rs` (and the `--trusted-proxy`
//! flag); matched against each connection's peer, and against the
//! addresses a trusted peer's forwarding headers name, by
//! `downstream/client_addr.rs`.

use std::fmt;
use std::net::IpAddr;

/// One range: the addresses whose first `prefix` bits equal `addr`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// With the bits past `prefix` cleared.
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/n`, `v6/n`, or a bare address (`/32`, `/128`). Host bits
    /// set past the prefix (`10.0.0.1/8`) are refused: such a line is
    /// usually a typo for a narrower range, and trust must not widen by
    /// accident.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("{text:?} is not an IP address or CIDR range (e.g. \"10.0.0.0/8\", \"2001:db8::/32\")")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{text:?}: the prefix length must be a number from 0 to {max}")),
            },
        };
        let cidr = Cidr { addr: mask(addr, prefix), prefix };
        if cidr.addr != addr {
            return Err(format!("{text:?} has bits set past the /{prefix} prefix: did you mean \"{cidr}\"?"));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in the range. An IPv4 address seen as IPv6 (the
    /// `::ffff:a.b.c.d` of a dual-stack socket) matches IPv4 ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - prefix as u32)) };
            IpAddr::V4(kept.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - prefix as u32)) };
            IpAddr::V6(kept.into())
        }
    }
}

/// Whether any range in `list` holds `ip`. Lists are short (a few proxy
/// ranges), so a scan is the fastest lookup.
pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        const CASES: &[(&str, Result<&str, &str>)] = &[
            ("10.0.0.0/8", Ok("10.0.0.0/8")),
            ("127.0.0.1", Ok("127.0.0.1/32")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("2001:db8::/32", Ok("2001:db8::/32")),
            ("::1", Ok("::1/128")),
            ("10.0.0.1/8", Err("bits set past")),
            ("10.0.0.0/33", Err("from 0 to 32")),
            ("::/129", Err("from 0 to 128")),
            ("10.0.0.0/+8", Err("from 0 to 32")),
            ("10.0.0.0/", Err("from 0 to 32")),
            ("10.0.0/8", Err("not an IP address")),
            ("localhost", Err("not an IP address")),
            ("", Err("not an IP address")),
            ("[::1]/128", Err("not an IP address")),
        ];
        for &(text, want) in CASES {
            match (Cidr::parse(text), want) {
                (Ok(c), Ok(w)) => assert_eq!(c.to_string(), w, "{text}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn contains_table() {
        const CASES: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1/32", "127.0.0.1", true),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("0.0.0.0/0", "203.0.113.7", true),
            ("0.0.0.0/0", "::1", false),
            ("::/0", "10.0.0.1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("::1/128", "::1", true),
        ];
        for &(range, ip, want) in CASES {
            let c = Cidr::parse(range).unwrap();
            assert_eq!(c.contains(ip.parse().unwrap()), want, "{range} {ip}");
        }
    }
}
