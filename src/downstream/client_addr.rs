//! The effective client address: the ONE answer to "who is the client",
//! computed once per connection (the peer, and whether it is a trusted
//! proxy) and once per request (what a trusted peer's forwarding headers
//! name), and read by everything keyed by the client: the forwarding
//! headers sent upstream (X-Forwarded-For, X-Real-IP, Forwarded), the
//! request id rule, and later IP rules, rate-limit keys, hashing by client
//! and the access log.
//!
//! Where it sits: `http1/conn.rs` makes a [`ClientAddr`] when it accepts a
//! connection and calls [`ClientAddr::resolve`] right after each request
//! head is parsed, before the pipeline.
//!
//! The rule (nginx's `real_ip_recursive on`, Envoy's trusted hops): from
//! an untrusted peer the client IS the peer, whatever its headers say.
//! From a trusted peer, X-Forwarded-For (or, when there is none,
//! Forwarded `for=`) is walked from the right, the nearest hop first: each
//! trusted address is a proxy of ours and the walk goes on; the first
//! untrusted one is the client. A hop that cannot be read (`unknown`,
//! obfuscated, malformed) ends the walk at the last address read: a hop we
//! cannot identify cannot vouch for the ones before it. If every hop is
//! trusted the leftmost one is the client.

use std::net::{IpAddr, SocketAddr};

use crate::config::cidr::any_contains;
use crate::config::{Cidr, ForwardedHeaders};
use crate::http1::encode::ClientHop;
use crate::http1::forwarded::{forwarded_for, push_node, x_forwarded_for_rev, Node};
use crate::http1::parse::{HeaderKind, RequestHead};

/// Who the client of one connection (and its current request) is.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    peer: IpAddr,
    /// `peer` as text, formatted once per connection.
    peer_text: Vec<u8>,
    /// `peer` as a Forwarded node (`"[v6]"` quoted), formatted once too:
    /// the `for=` of the proxy's own Forwarded element on every request.
    peer_node: Vec<u8>,
    /// The peer is in the listener's `trusted_proxies`.
    peer_trusted: bool,
    /// The effective client address of the current request.
    addr: IpAddr,
    /// `addr` as text (the same bytes as `peer_text` unless a trusted
    /// peer named someone else).
    text: Vec<u8>,
}

impl ClientAddr {
    /// Per connection. An IPv4 peer on a dual-stack socket
    /// (`::ffff:a.b.c.d`) is taken as the IPv4 address.
    pub fn new(peer: SocketAddr, trusted: &[Cidr]) -> ClientAddr {
        let peer = peer.ip().to_canonical();
        let peer_text = peer.to_string().into_bytes();
        let mut peer_node = Vec::with_capacity(peer_text.len() + 4);
        push_node(&mut peer_node, &peer_text);
        ClientAddr {
            peer,
            peer_trusted: any_contains(trusted, peer),
            addr: peer,
            text: peer_text.clone(),
            peer_text,
            peer_node,
        }
    }

    /// Per request, once, before the pipeline: the address a trusted
    /// peer's forwarding headers name (see the module notes). No work at
    /// all for an untrusted peer, the default.
    pub fn resolve(&mut self, head: &RequestHead, buf: &[u8], trusted: &[Cidr]) {
        if !self.peer_trusted {
            return;
        }
        let addr = walk(self.peer, head, buf, trusted);
        if addr != self.addr {
            self.addr = addr;
            self.text.clear();
            self.text.extend_from_slice(addr.to_string().as_bytes());
        }
    }

    /// The effective client address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// The connection's peer (a trusted proxy, or the client itself).
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Whether the peer's word counts: its forwarding headers, its request
    /// id, its X-Forwarded-Proto/Host.
    pub fn peer_trusted(&self) -> bool {
        self.peer_trusted
    }

    /// What the upstream head encoder needs to write the forwarding
    /// headers, under the listener's `forwarded_headers` mode.
    pub fn hop(&self, mode: ForwardedHeaders) -> ClientHop<'_> {
        ClientHop {
            client: &self.text,
            peer: &self.peer_text,
            peer_node: &self.peer_node,
            keep_chain: self.peer_trusted || mode == ForwardedHeaders::Append,
            trusted: self.peer_trusted,
        }
    }
}

/// The walk from the right (see the module notes). X-Forwarded-For when
/// the request has one, else Forwarded.
fn walk(peer: IpAddr, head: &RequestHead, buf: &[u8], trusted: &[Cidr]) -> IpAddr {
    let mut client = peer;
    // Fields of one name form one list in order (RFC 9110 §5.3): the last
    // field's last entry is the nearest hop.
    let fields = |kind| head.headers.iter().rev().filter(move |h| h.kind == kind).map(|h| h.value.of(buf));
    if fields(HeaderKind::XForwardedFor).next().is_some() {
        for node in fields(HeaderKind::XForwardedFor).flat_map(x_forwarded_for_rev) {
            match step(&mut client, node, trusted) {
                Walk::On => {}
                Walk::Stop => break,
            }
        }
        return client;
    }
    // Forwarded is parsed left to right (quoted strings); the nodes of one
    // field are few, so they are collected and walked backwards.
    let mut nodes: Vec<Node> = Vec::new();
    for value in fields(HeaderKind::Forwarded) {
        let start = nodes.len();
        forwarded_for(value, |n| nodes.push(n));
        nodes[start..].reverse();
    }
    for node in nodes {
        if let Walk::Stop = step(&mut client, node, trusted) {
            break;
        }
    }
    client
}

enum Walk {
    On,
    Stop,
}

fn step(client: &mut IpAddr, node: Node, trusted: &[Cidr]) -> Walk {
    match node {
        Node::Unknown => Walk::Stop,
        Node::Addr(ip) => {
            *client = ip;
            if any_contains(trusted, ip) {
                Walk::On
            } else {
                Walk::Stop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::parse::{parse_request, HeadLimits};

    const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 8192, max_headers: 64, max_uri_bytes: 1024 };

    fn effective(peer: &str, trusted: &[&str], headers: &str) -> String {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        let mut head = RequestHead::default();
        assert!(parse_request(raw.as_bytes(), &LIMITS, &mut head).unwrap());
        let trusted: Vec<Cidr> = trusted.iter().map(|t| Cidr::parse(t).unwrap()).collect();
        let mut c = ClientAddr::new(SocketAddr::new(peer.parse().unwrap(), 4000), &trusted);
        c.resolve(&head, raw.as_bytes(), &trusted);
        assert_eq!(c.text(), c.addr().to_string().as_bytes());
        c.addr().to_string()
    }

    #[test]
    fn effective_client_table() {
        const TRUSTED: &[&str] = &["127.0.0.1/32", "10.0.0.0/8", "2001:db8:ffff::/48"];
        // (peer, headers, effective client)
        const CASES: &[(&str, &str, &str)] = &[
            // Untrusted peer: headers ignored.
            ("203.0.113.9", "X-Forwarded-For: 1.2.3.4\r\n", "203.0.113.9"),
            ("203.0.113.9", "Forwarded: for=1.2.3.4\r\n", "203.0.113.9"),
            // Trusted peer without headers: the peer.
            ("127.0.0.1", "", "127.0.0.1"),
            // The rightmost untrusted entry, not the leftmost.
            ("127.0.0.1", "X-Forwarded-For: 6.6.6.6, 1.2.3.4, 10.0.0.2\r\n", "1.2.3.4"),
            // Several fields are one list.
            ("127.0.0.1", "X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\nX-Forwarded-For: 10.0.0.2\r\n", "1.2.3.4"),
            // All trusted: the leftmost.
            ("127.0.0.1", "X-Forwarded-For: 10.0.0.3, 10.0.0.2\r\n", "10.0.0.3"),
            // Unreadable hop: the walk stops at the last address read.
            ("127.0.0.1", "X-Forwarded-For: 1.2.3.4, garbage, 10.0.0.2\r\n", "10.0.0.2"),
            ("127.0.0.1", "X-Forwarded-For: 1.2.3.4, unknown\r\n", "127.0.0.1"),
            ("127.0.0.1", "X-Forwarded-For: \r\n", "127.0.0.1"),
            // Ports and brackets.
            ("127.0.0.1", "X-Forwarded-For: [2001:db8::7]:443\r\n", "2001:db8::7"),
            ("127.0.0.1", "X-Forwarded-For: 1.2.3.4:5555\r\n", "1.2.3.4"),
            // Forwarded when there is no X-Forwarded-For.
            (
                "127.0.0.1",
                "Forwarded: for=6.6.6.6, for=\"[2001:db8::1]:80\";proto=https, for=10.1.1.1\r\n",
                "2001:db8::1",
            ),
            ("127.0.0.1", "Forwarded: for=1.2.3.4\r\nForwarded: for=10.0.0.1\r\n", "1.2.3.4"),
            ("127.0.0.1", "Forwarded: for=_hidden, for=10.0.0.1\r\n", "10.0.0.1"),
            // X-Forwarded-For wins over Forwarded.
            ("127.0.0.1", "Forwarded: for=6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\n", "1.2.3.4"),
            // IPv6 trusted peer, IPv4-mapped hop.
            ("2001:db8:ffff::1", "X-Forwarded-For: ::ffff:1.2.3.4\r\n", "1.2.3.4"),
            ("::ffff:127.0.0.1", "X-Forwarded-For: 1.2.3.4\r\n", "1.2.3.4"),
        ];
        for &(peer, headers, want) in CASES {
            assert_eq!(effective(peer, TRUSTED, headers), want, "peer {peer}, {headers:?}");
        }
    }

    #[test]
    fn nothing_is_trusted_by_default() {
        assert_eq!(effective("127.0.0.1", &[], "X-Forwarded-For: 1.2.3.4\r\n"), "127.0.0.1");
    }

    #[test]
    fn the_hop_says_which_chain_to_keep() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let untrusted = ClientAddr::new(peer, &[]);
        let trusted = ClientAddr::new(peer, &[Cidr::parse("127.0.0.0/8").unwrap()]);
        assert!(!untrusted.hop(ForwardedHeaders::Replace).keep_chain);
        assert!(untrusted.hop(ForwardedHeaders::Append).keep_chain);
        assert!(!untrusted.hop(ForwardedHeaders::Append).trusted);
        assert!(trusted.hop(ForwardedHeaders::Replace).keep_chain);
        assert!(trusted.hop(ForwardedHeaders::Replace).trusted);
    }
}
