//! Sans-io reading and writing of the forwarding headers that name the
//! hops a request passed: `X-Forwarded-For` (a de-facto list of
//! addresses) and `Forwarded` (RFC 7239).
//!
//! Where it sits: `downstream/client_addr.rs` reads them (only from a
//! trusted peer) to find the effective client address; `encode.rs` writes
//! the proxy's own element with [`push_node`] and [`push_checked_host`].
//!
//! Everything here takes hostile bytes: nothing panics, nothing allocates,
//! and whatever does not parse as an address is [`Node::Unknown`], which
//! ends a walk through the chain (a hop that cannot be read cannot vouch
//! for the hops before it).

use std::net::{IpAddr, SocketAddr};

/// One hop as a forwarding header names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// An address (any port given with it is dropped).
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`), an element without
    /// `for=`, or anything malformed.
    Unknown,
}

/// A node as written in either header: `192.0.2.1`, `192.0.2.1:80`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443` (surrounding
/// whitespace ignored). IPv4-mapped IPv6 is read as the IPv4 address.
pub fn parse_node(text: &[u8]) -> Node {
    let Ok(text) = std::str::from_utf8(trim(text)) else { return Node::Unknown };
    let ip = if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = text.parse::<SocketAddr>() {
        sa.ip()
    } else if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        match inner.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => IpAddr::V6(v6),
            Err(_) => return Node::Unknown,
        }
    } else {
        return Node::Unknown;
    };
    Node::Addr(ip.to_canonical())
}

/// The entries of one `X-Forwarded-For` field value, rightmost (nearest
/// hop) first. Empty entries (`a,,b`) are skipped.
pub fn x_forwarded_for_rev(value: &[u8]) -> impl Iterator<Item = Node> + '_ {
    value.rsplit(|&b| b == b',').filter(|e| !trim(e).is_empty()).map(parse_node)
}

/// The `for=` node of each element of one `Forwarded` field value, in
/// order, passed to `each` (RFC 7239 §4):
/// ```text
/// Forwarded         = 1#forwarded-element
/// forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
/// forwarded-pair    = token "=" value
/// value             = token / quoted-string
/// ```
/// An element without `for=` is [`Node::Unknown`]. A value that breaks the
/// grammar (an unterminated quote, a pair without `=`) ends the list with
/// one `Unknown`: what follows cannot be split reliably.
pub fn forwarded_for(value: &[u8], mut each: impl FnMut(Node)) {
    let mut i = 0;
    let n = value.len();
    // The current element's for= node; None = no for= seen yet.
    let mut node: Option<Node> = None;
    let mut element_empty = true;
    loop {
        while i < n && matches!(value[i], b' ' | b'\t') {
            i += 1;
        }
        if i == n || value[i] == b',' {
            if !element_empty {
                each(node.unwrap_or(Node::Unknown));
            }
            if i == n {
                return;
            }
            node = None;
            element_empty = true;
            i += 1;
            continue;
        }
        if value[i] == b';' {
            i += 1;
            continue;
        }
        // A pair: token "=" value.
        element_empty = false;
        let name_start = i;
        while i < n && is_tchar(value[i]) {
            i += 1;
        }
        let name = &value[name_start..i];
        if name.is_empty() || i == n || value[i] != b'=' {
            each(Node::Unknown);
            return;
        }
        i += 1;
        let parsed = if i < n && value[i] == b'"' {
            let start = i + 1;
            // A quoted-pair (`\"`) does not end the string (RFC 9110 §5.6.4).
            let Some(len) = closing_quote(&value[start..]) else {
                each(Node::Unknown);
                return;
            };
            let inner = &value[start..start + len];
            i = start + len + 1;
            // A backslash escape never belongs in an address.
            if inner.contains(&b'\\') {
                Node::Unknown
            } else {
                parse_node(inner)
            }
        } else {
            let start = i;
            while i < n && is_tchar(value[i]) {
                i += 1;
            }
            parse_node(&value[start..i])
        };
        if name.eq_ignore_ascii_case(b"for") {
            // A parameter occurs at most once per element (§4): two `for`s
            // name no one.
            node = Some(if node.is_none() { parsed } else { Node::Unknown });
        }
        while i < n && matches!(value[i], b' ' | b'\t') {
            i += 1;
        }
        if i < n && !matches!(value[i], b';' | b',') {
            each(node.unwrap_or(Node::Unknown));
            each(Node::Unknown);
            return;
        }
    }
}

/// Where the quoted string whose content starts `rest` ends: the first
/// `"` not escaped by a backslash. `None` when it does not end, or holds
/// a control byte (neither qdtext nor a quoted-pair may, RFC 9110 §5.6.4).
fn closing_quote(rest: &[u8]) -> Option<usize> {
    let control = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'"' => return Some(i),
            b if control(b) => return None,
            b'\\' if rest.get(i + 1).is_some_and(|&b| control(b)) => return None,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// An address as a `Forwarded` node (RFC 7239 §6): IPv4 bare, IPv6 in
/// brackets and quotes (`for="[2001:db8::1]"`). `addr` is an address's
/// text (as `IpAddr` displays it).
pub fn push_node(out: &mut Vec<u8>, addr: &[u8]) {
    if addr.contains(&b':') {
        out.extend_from_slice(b"\"[");
        out.extend_from_slice(addr);
        out.extend_from_slice(b"]\"");
    } else {
        out.extend_from_slice(addr);
    }
}

/// A Host value that passed `parse::check_host` as a `Forwarded`
/// parameter value: such a value holds no `"` or `\\` (only name
/// characters, `.`, `:` and brackets), so it is a token unless it has a
/// `:` (a port, or an IPv6 literal), and then it is quoted as is.
pub fn push_checked_host(out: &mut Vec<u8>, host: &[u8]) {
    debug_assert!(crate::http1::parse::check_host(host).is_ok(), "an unchecked Host");
    if host.contains(&b':') {
        out.push(b'"');
        out.extend_from_slice(host);
        out.push(b'"');
    } else {
        out.extend_from_slice(host);
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let e = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(s, |i| i + 1);
    &v[s..e]
}

/// RFC 9110 §5.6.2 tchar, as a table (this runs per byte of every Host).
fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    #[test]
    fn the_tchar_table_is_rfc_9110_and_hosts_are_quoted_when_not_tokens() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(super::is_tchar(b), want, "byte {b}");
        }
        let quoted = |v: &[u8]| {
            let mut out = Vec::new();
            push_checked_host(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(quoted(b"example.com"), "example.com");
        assert_eq!(quoted(b"under_score.example"), "under_score.example");
        assert_eq!(quoted(b"127.0.0.1:8080"), "\"127.0.0.1:8080\"");
        assert_eq!(quoted(b"[::1]"), "\"[::1]\"");
        // Every byte `check_host` lets through, outside `:` and brackets,
        // is a token character: nothing else needs quoting.
        for b in 0..=255u8 {
            if crate::http1::parse::check_host(&[b'a', b, b'a']).is_ok() {
                assert!(super::is_tchar(b), "byte {b} passes check_host");
            }
        }
    }

    use super::*;

    fn addr(s: &str) -> Node {
        Node::Addr(s.parse().unwrap())
    }

    #[test]
    fn node_table() {
        let cases: &[(&[u8], Node)] = &[
            (b"192.0.2.1", addr("192.0.2.1")),
            (b" 192.0.2.1 ", addr("192.0.2.1")),
            (b"192.0.2.1:8080", addr("192.0.2.1")),
            (b"2001:db8::1", addr("2001:db8::1")),
            (b"[2001:db8::1]", addr("2001:db8::1")),
            (b"[2001:db8::1]:443", addr("2001:db8::1")),
            (b"::ffff:10.0.0.1", addr("10.0.0.1")),
            (b"unknown", Node::Unknown),
            (b"_hidden", Node::Unknown),
            (b"", Node::Unknown),
            (b"192.0.2", Node::Unknown),
            (b"192.0.2.1:", Node::Unknown),
            (b"[192.0.2.1]", Node::Unknown),
            (b"[2001:db8::1", Node::Unknown),
            (b"1.2.3.4\xff", Node::Unknown),
            (b"999.0.0.1", Node::Unknown),
        ];
        for (text, want) in cases {
            assert_eq!(parse_node(text), *want, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right() {
        let got: Vec<Node> = x_forwarded_for_rev(b"203.0.113.7, garbage,, 10.0.0.1 ").collect();
        assert_eq!(got, [addr("10.0.0.1"), Node::Unknown, addr("203.0.113.7")]);
        assert_eq!(x_forwarded_for_rev(b"").count(), 0);
        assert_eq!(x_forwarded_for_rev(b" , ,").count(), 0);
    }

    fn for_nodes(value: &[u8]) -> Vec<Node> {
        let mut out = Vec::new();
        forwarded_for(value, |n| out.push(n));
        out
    }

    #[test]
    fn forwarded_table() {
        let cases: &[(&[u8], &[Node])] = &[
            (b"for=192.0.2.60;proto=http;by=203.0.113.43", &[addr("192.0.2.60")]),
            (b"For=\"[2001:db8:cafe::17]:4711\"", &[addr("2001:db8:cafe::17")]),
            (b"for=192.0.2.43, for=198.51.100.17", &[addr("192.0.2.43"), addr("198.51.100.17")]),
            (b"for=192.0.2.43,for=\"[2001:db8::1]\"", &[addr("192.0.2.43"), addr("2001:db8::1")]),
            (b"proto=https;for=10.0.0.1 ; host=a.test", &[addr("10.0.0.1")]),
            (b"proto=https, for=10.0.0.1", &[Node::Unknown, addr("10.0.0.1")]),
            (b"for=unknown, for=_hidden", &[Node::Unknown, Node::Unknown]),
            (b"for=\"10.0.0.1, for=1.2.3.4\"", &[Node::Unknown]),
            (b"host=\"a,b\";for=10.0.0.1", &[addr("10.0.0.1")]),
            (b"for=10.0.0.1, , for=10.0.0.2", &[addr("10.0.0.1"), addr("10.0.0.2")]),
            (b"for=\"10.0.0.1", &[Node::Unknown]),
            (b"for", &[Node::Unknown]),
            (b"=10.0.0.1", &[Node::Unknown]),
            (b"for=10.0.0.1 junk, for=10.0.0.2", &[addr("10.0.0.1"), Node::Unknown]),
            (b"for=\"10.0.0.\\1\"", &[Node::Unknown]),
            // A quoted-pair does not end the string (found by fuzzing).
            (b"for=\"\\\"\", for=10.0.0.5", &[Node::Unknown, addr("10.0.0.5")]),
            (b"for=\"a\\\", for=1.2.3.4", &[Node::Unknown]),
            // A control byte is not qdtext: the value is malformed (found by fuzzing).
            (b"for=1.0.2.1;o=\"\x00\"", &[Node::Unknown]),
            (b"for=1.0.2.1;o=\"a\x7f\", for=10.0.0.1", &[Node::Unknown]),
            (b"for=10.0.0.1;for=10.0.0.2", &[Node::Unknown]),
            (b"", &[]),
            (b";;", &[]),
        ];
        for (value, want) in cases {
            assert_eq!(for_nodes(value), *want, "{:?}", String::from_utf8_lossy(value));
        }
    }

    /// Hostile bytes: every prefix of awkward inputs, and every single
    /// byte value in every position of a short one, parse without panic.
    #[test]
    fn hostile_input_never_panics() {
        let awkward: &[&[u8]] =
            &[b"for=\"[::1]:80\";proto=\"h\\\"t\", for=_x;by=\"", b"[[[]]]:::,,;;==\"\"\"\\", b"\xff\xfe\x00for=1"];
        for v in awkward {
            for end in 0..=v.len() {
                for_nodes(&v[..end]);
                let _ = x_forwarded_for_rev(&v[..end]).count();
            }
        }
        let mut v = b"for=\"[1::2]\"".to_vec();
        for i in 0..v.len() {
            let saved = v[i];
            for b in 0..=255u8 {
                v[i] = b;
                for_nodes(&v);
                parse_node(&v);
            }
            v[i] = saved;
        }
    }

    #[test]
    fn nodes_and_values_are_written_per_rfc_7239() {
        let mut out = Vec::new();
        push_node(&mut out, b"192.0.2.1");
        out.push(b' ');
        push_node(&mut out, b"2001:db8::1");
        out.push(b' ');
        push_checked_host(&mut out, b"app.test");
        out.push(b' ');
        push_checked_host(&mut out, b"app.test:8443");
        out.push(b' ');
        push_checked_host(&mut out, b"[::1]:80");
        assert_eq!(out, b"192.0.2.1 \"[2001:db8::1]\" app.test \"app.test:8443\" \"[::1]:80\"");
    }
}
