//! Fuzz target: forwarding headers — `X-Forwarded-For` and `Forwarded`
//! (RFC 7239) as `http1::forwarded` reads and writes them, the effective
//! client address (`downstream::client_addr`), and the chain the proxy
//! sends upstream (`http1::encode`).
//!
//! Input: the X-Forwarded-For value, then (after a `\n`) the Forwarded
//! value; without a `\n` the bytes are both. The first byte says which
//! fields the request carries (bit 0: X-Forwarded-For, bit 1: Forwarded)
//! and whether the peer is IPv6 (bit 2).
//!
//! Properties:
//! 1. `forwarded_for` agrees with a reference reader written here from
//!    RFC 7239 §4 (`1#forwarded-element`, `token "=" (token /
//!    quoted-string)`, quoted-pairs honoured). Where shardgate is
//!    deliberately more lenient the reference follows it: whitespace
//!    around `;` as around `,`, an empty value (read as no address), an
//!    element without any pair (skipped, like an empty list member), and
//!    `for` given twice in one element (it names no one). On a value the
//!    reference reads whole and whose quoted strings hold no backslash,
//!    the nodes are the same; on any value the reference refuses, the
//!    last node is `Unknown` (a walk from the right stops there, so no
//!    address past a grammar error is believed).
//! 2. Every address read writes back (as an X-Forwarded-For entry and a
//!    `for=` node) and reads again as itself.
//! 3. The effective client is the peer for an untrusted peer, and for a
//!    trusted one the peer or an address the headers name.
//! 4. The chain sent upstream always ends with the peer: the last
//!    X-Forwarded-For entry is the peer, and the last Forwarded node is
//!    the peer — or, when the client's own Forwarded value is malformed,
//!    `Unknown`, never an address the client chose.

use std::net::{IpAddr, SocketAddr};

use super::show;
use crate::config::{AssertedHeaders, Cidr, ForwardedHeaders};
use crate::downstream::client_addr::ClientAddr;
use crate::http1::encode::{upstream_request_head, ForwardInfo};
use crate::http1::forwarded::{forwarded_for, parse_node, push_node, x_forwarded_for_rev, Node};
use crate::http1::head::HeaderKind;
use crate::http1::parse::{parse_request, RequestHead};

pub fn forwarding(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (xff, fwd) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, rest),
    };
    let got = nodes(fwd);
    let want = reference(fwd);
    check_against_reference(fwd, &got, &want);
    for node in got.iter().chain(want.nodes.iter()).chain(x_forwarded_for_rev(xff).collect::<Vec<_>>().iter()) {
        if let Node::Addr(ip) = node {
            round_trip(*ip);
        }
    }
    through_a_request(selector, xff, fwd);
}

fn nodes(value: &[u8]) -> Vec<Node> {
    let mut out = Vec::new();
    forwarded_for(value, |n| out.push(n));
    out
}

fn check_against_reference(value: &[u8], got: &[Node], want: &Reference) {
    if !want.well_formed {
        assert_eq!(got.last(), Some(&Node::Unknown), "malformed {:?}: nodes {got:?}", show(value));
    } else if !want.escapes {
        assert_eq!(got, want.nodes, "well-formed {:?}", show(value));
    } else {
        let last = got.last().copied();
        assert!(last == want.nodes.last().copied() || last == Some(Node::Unknown), "{:?}: {got:?}", show(value));
    }
}

fn round_trip(ip: IpAddr) {
    let text = ip.to_string();
    assert_eq!(parse_node(text.as_bytes()), Node::Addr(ip), "{text}");
    assert_eq!(x_forwarded_for_rev(text.as_bytes()).collect::<Vec<_>>(), [Node::Addr(ip)], "{text}");
    let mut element = b"for=".to_vec();
    push_node(&mut element, text.as_bytes());
    element.extend_from_slice(b";proto=https");
    assert_eq!(nodes(&element), [Node::Addr(ip)], "{}", show(&element));
}

/// The trusted proxies of the request part.
fn trusted() -> Vec<Cidr> {
    ["10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24"].iter().map(|c| Cidr::parse(c).expect("a CIDR")).collect()
}

fn through_a_request(selector: u8, xff: &[u8], fwd: &[u8]) {
    let mut raw = b"GET / HTTP/1.1\r\nHost: api.example\r\n".to_vec();
    let with_xff = selector & 1 == 1;
    let with_fwd = selector & 2 == 2;
    for (on, name, value) in [(with_xff, &b"X-Forwarded-For"[..], xff), (with_fwd, b"Forwarded", fwd)] {
        if on {
            raw.extend_from_slice(name);
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value);
            raw.extend_from_slice(b"\r\n");
        }
    }
    raw.extend_from_slice(b"\r\n");
    let mut head = RequestHead::default();
    let Ok(true) = parse_request(&raw, &super::request_head::LIMITS, &mut head) else { return };
    if head.head_len != raw.len() {
        return;
    }
    let trusted = trusted();
    let peer_ip: IpAddr = if selector & 4 == 4 { "2001:db8::9".parse().unwrap() } else { "10.0.0.9".parse().unwrap() };
    let peer = SocketAddr::new(peer_ip, 40000);

    // 3: untrusted, the peer; trusted, the peer or a named address.
    let mut untrusted = ClientAddr::new(SocketAddr::new("203.0.113.5".parse().unwrap(), 1), &trusted);
    untrusted.resolve(&head, &raw, &trusted);
    assert_eq!(untrusted.addr(), untrusted.peer(), "an untrusted peer's headers believed");
    let mut client = ClientAddr::new(peer, &trusted);
    client.resolve(&head, &raw, &trusted);
    assert_eq!(client.text(), client.addr().to_string().as_bytes());
    let fields = |kind| head.headers.iter().filter(move |h| h.kind == kind).map(|h| h.value.of(&raw));
    let mut named: Vec<Node> = fields(HeaderKind::XForwardedFor).flat_map(x_forwarded_for_rev).collect();
    fields(HeaderKind::Forwarded).for_each(|v| forwarded_for(v, |n| named.push(n)));
    assert!(
        client.addr() == peer_ip || named.contains(&Node::Addr(client.addr())),
        "client {} named by no header of {:?}",
        client.addr(),
        show(&raw)
    );

    // 4: the chain sent upstream ends with the peer.
    let asserted = AssertedHeaders::default();
    let info = ForwardInfo {
        client: client.hop(ForwardedHeaders::Replace),
        proto: "http",
        request_id: b"fuzz-1",
        path: b"/",
        query: None,
        consumer: None,
        asserted: &asserted,
        client_cert: None,
        fallback_host: None,
        underscores_in_headers: false,
        trace: None,
    };
    let mut out = Vec::new();
    upstream_request_head(&mut out, &raw, &head, &info);
    let mut up = RequestHead::default();
    let limits = crate::http1::parse::HeadLimits { max_head_bytes: 1 << 20, max_headers: 512, max_uri_bytes: 1024 };
    assert!(matches!(parse_request(&out, &limits, &mut up), Ok(true)), "upstream head {:?}", show(&out));
    let up_fields = |kind| up.headers.iter().filter(move |h| h.kind == kind).map(|h| h.value.of(&out));
    let up_xff: Vec<&[u8]> = up_fields(HeaderKind::XForwardedFor).collect();
    assert_eq!(up_xff.len(), 1, "one X-Forwarded-For upstream: {:?}", show(&out));
    assert_eq!(x_forwarded_for_rev(up_xff[0]).next(), Some(Node::Addr(peer_ip)), "{:?}", show(&out));
    let up_fwd: Vec<&[u8]> = up_fields(HeaderKind::Forwarded).collect();
    assert_eq!(up_fwd.len(), 1, "one Forwarded upstream: {:?}", show(&out));
    let last = nodes(up_fwd[0]).last().copied();
    let client_fwd: Vec<&[u8]> = fields(HeaderKind::Forwarded).filter(|v| !v.is_empty()).collect();
    let client_well_formed = client_fwd.iter().all(|v| reference(v).well_formed);
    if client_well_formed {
        assert_eq!(last, Some(Node::Addr(peer_ip)), "the proxy's own hop is lost: {:?}", show(&out));
    } else {
        assert!(last == Some(Node::Addr(peer_ip)) || last == Some(Node::Unknown), "{:?}", show(&out));
    }
}

/// What the reference reader makes of one Forwarded value.
pub struct Reference {
    /// The `for=` node of each element read (before any error).
    pub nodes: Vec<Node>,
    pub well_formed: bool,
    /// A quoted string held a quoted-pair.
    pub escapes: bool,
}

/// RFC 7239 §4, with the leniencies the module notes list.
pub fn reference(value: &[u8]) -> Reference {
    let mut r = Reference { nodes: Vec::new(), well_formed: true, escapes: false };
    let mut i = 0;
    let n = value.len();
    let ows = |i: &mut usize| {
        while *i < n && matches!(value[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        // One element: pairs separated by ";".
        let mut pairs = 0;
        let mut node: Option<Node> = None;
        let mut for_count = 0;
        loop {
            ows(&mut i);
            if i == n || value[i] == b',' {
                break;
            }
            if value[i] == b';' {
                i += 1;
                continue;
            }
            let start = i;
            while i < n && is_tchar(value[i]) {
                i += 1;
            }
            let name = value[start..i].to_ascii_lowercase();
            if name.is_empty() || i == n || value[i] != b'=' {
                r.well_formed = false;
                return r;
            }
            i += 1;
            let text: Vec<u8> = if i < n && value[i] == b'"' {
                i += 1;
                let mut text = Vec::new();
                loop {
                    match value.get(i) {
                        None => {
                            r.well_formed = false;
                            return r;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            r.escapes = true;
                            match value.get(i + 1) {
                                Some(&c) if c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80 => {
                                    // An escape never belongs in an address.
                                    text.extend_from_slice(b"\\");
                                    text.push(c);
                                    i += 2;
                                }
                                _ => {
                                    r.well_formed = false;
                                    return r;
                                }
                            }
                        }
                        Some(&c) if c == b'\t' || c == b' ' || c == 0x21 || (0x23..=0x7e).contains(&c) || c >= 0x80 => {
                            text.push(c);
                            i += 1;
                        }
                        Some(_) => {
                            r.well_formed = false;
                            return r;
                        }
                    }
                }
                text
            } else {
                let start = i;
                while i < n && is_tchar(value[i]) {
                    i += 1;
                }
                value[start..i].to_vec()
            };
            pairs += 1;
            if name == b"for" {
                for_count += 1;
                node = Some(if text.contains(&b'\\') { Node::Unknown } else { parse_node(&text) });
            }
            ows(&mut i);
            if i < n && !matches!(value[i], b';' | b',') {
                r.well_formed = false;
                return r;
            }
        }
        if pairs > 0 {
            // A parameter given twice names no one (RFC 7239 §4: at most once).
            r.nodes.push(if for_count > 1 { Node::Unknown } else { node.unwrap_or(Node::Unknown) });
        }
        if i == n {
            return r;
        }
        i += 1; // the ","
    }
}

/// RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
