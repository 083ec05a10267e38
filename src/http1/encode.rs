//! Writing heads into the connection's reused output buffer.
//!
//! Where it sits: `upstream/forward.rs` writes the upstream request head and
//! the downstream response head here; `downstream/respond.rs` writes error, direct and
//! redirect responses. This is the one place a head is copied: the proxy
//! rewrites heads (hop-by-hop fields out, X-Forwarded-* and framing in), so
//! the new head is assembled once, with any body bytes that arrived with the
//! old one appended, and sent in a single write.

use std::io::Write;

use super::forwarded;
use super::parse::{Framing, Header, HeaderKind, Method, RequestHead};
use super::response::ResponseHead;
use super::Version;
use crate::config::AssertedHeaders;
use crate::error::reason_phrase;

/// The `Via` pseudonym (RFC 9110 §7.6.3).
const VIA_NAME: &[u8] = b"shardgate";

/// How a response body is framed towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamFraming {
    /// No body; `content-length` as the status and method require.
    Empty,
    Length(u64),
    /// The upstream's chunked body, relayed as received (already validated).
    ChunkedPassthrough,
    /// A close-delimited upstream body, chunk-encoded for an HTTP/1.1 client
    /// so its connection can stay open.
    ChunkEncode,
    /// An HTTP/1.0 client: the body (de-chunked if need be) ends with the
    /// connection.
    UntilClose {
        dechunk: bool,
    },
}

/// Facts about the request that the upstream head carries.
pub struct ForwardInfo<'a> {
    /// Who the request came from (`downstream/client_addr.rs`).
    pub client: ClientHop<'a>,
    /// "http" or "https".
    pub proto: &'static str,
    pub request_id: &'a [u8],
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    /// Header names only the proxy may set (every listener's, not only
    /// this one's): any client-sent field of these names is dropped.
    pub asserted: &'a AssertedHeaders,
    /// The authenticated consumer: the route's `consumer_header` and the
    /// consumer's name. (The header is asserted: a client-sent one of the
    /// name was dropped.)
    pub consumer: Option<(&'a [u8], &'a [u8])>,
    /// mTLS on this listener: the header that carries the verified client
    /// identity upstream, and that identity.
    pub client_cert: Option<(&'a [u8], Option<&'a [u8]>)>,
    /// The Host to send when the request has none (HTTP/1.0 allows that;
    /// HTTP/1.1 upstreams must refuse it): nginx's `$proxy_host`, the
    /// endpoint as configured.
    pub fallback_host: Option<&'a [u8]>,
    /// The listener's `underscores_in_headers`: names with `_` are passed
    /// (else dropped).
    pub underscores_in_headers: bool,
    /// The request's trace context when tracing is on: sent instead of
    /// any the client sent (`observe/trace/`).
    pub trace: Option<TraceFields<'a>>,
}

/// The W3C trace context fields the proxy sends upstream.
#[derive(Debug, Clone, Copy)]
pub struct TraceFields<'a> {
    pub traceparent: &'a [u8],
    /// Empty: no `tracestate` field.
    pub tracestate: &'a [u8],
}

/// The client and its hop to the proxy, as the forwarding headers tell it.
#[derive(Debug, Clone, Copy)]
pub struct ClientHop<'a> {
    /// The effective client address as text: X-Real-IP, and the start of
    /// X-Forwarded-For / Forwarded when no chain is kept.
    pub client: &'a [u8],
    /// The connection's peer as text: appended to a kept chain, and the
    /// `for=` of the proxy's own Forwarded element.
    pub peer: &'a [u8],
    /// `peer` as a Forwarded node (IPv6 as `"[…]"`), formatted once per
    /// connection.
    pub peer_node: &'a [u8],
    /// Keep the X-Forwarded-For / Forwarded the client sent and append to
    /// them (a trusted peer, or `forwarded_headers = "append"`); else they
    /// are replaced.
    pub keep_chain: bool,
    /// A trusted peer: its X-Forwarded-Proto and -Host are kept too.
    pub trusted: bool,
}

/// Is this header named in the `Connection` field (and so hop-by-hop)?
fn listed_in_connection(headers: &[Header], buf: &[u8], name: &[u8]) -> bool {
    headers
        .iter()
        .filter(|h| h.kind == HeaderKind::Connection)
        .any(|h| h.value.of(buf).split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(name)))
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let e = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(s, |i| i + 1);
    &v[s..e]
}

/// A header whose value is a number, without going through `core::fmt`
/// (this runs for nearly every response).
fn push_number_header(out: &mut Vec<u8>, name: &[u8], value: u64) {
    push_header(out, name, itoa::Buffer::new().format(value).as_bytes());
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The request head sent upstream, always HTTP/1.1.
///
/// Forwarding headers (`docs/architecture.md`, "Header trust"):
/// X-Forwarded-For and Forwarded keep the client's list only when
/// `keep_chain`, with the peer appended; else they are the proxy's alone.
/// A kept chain that did not come starts with the effective client (a
/// trusted proxy that sent only one of the two headers). X-Real-IP is
/// always the effective client. X-Forwarded-Proto/Host are the trusted
/// peer's if it sent them, else the proxy's.
pub fn upstream_request_head(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, info: &ForwardInfo<'_>) {
    let hop = &info.client;
    out.extend_from_slice(head.method_span.of(buf));
    out.push(b' ');
    out.extend_from_slice(info.path);
    if let Some(q) = info.query {
        out.push(b'?');
        out.extend_from_slice(q);
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let host = head.host.map(|h| h.of(buf));
    if let Some(host) = host.or(info.fallback_host) {
        push_header(out, b"host", host);
    }
    let check_listed = head.connection.lists_other_names;
    let mut xff_written = false;
    let mut forwarded_written = false;
    let mut via_written = false;
    let mut proto_kept = false;
    let mut host_kept = false;
    for h in &head.headers {
        match h.kind {
            // The proxy's own trace context replaces the client's.
            HeaderKind::Traceparent | HeaderKind::Tracestate if info.trace.is_some() => {}
            HeaderKind::Other | HeaderKind::Traceparent | HeaderKind::Tracestate => {
                let name = h.name.of(buf);
                if check_listed && listed_in_connection(&head.headers, buf, name) {
                    continue;
                }
                if !info.underscores_in_headers && name.contains(&b'_') {
                    // `X_Real_IP` is `X-Real-IP` to CGI-style servers: a
                    // way around the header rules here (nginx drops these).
                    continue;
                }
                if info.asserted.contains(name) {
                    // Only the proxy may vouch for these (a client
                    // certificate's identity), on whatever listener.
                    continue;
                }
                push_header(out, name, h.value.of(buf));
            }
            HeaderKind::XForwardedFor if hop.keep_chain && !xff_written => {
                // Every X-Forwarded-For as one list, the peer last.
                xff_written = true;
                out.extend_from_slice(b"x-forwarded-for: ");
                push_joined(out, head, buf, HeaderKind::XForwardedFor);
                out.extend_from_slice(hop.peer);
                out.extend_from_slice(b"\r\n");
            }
            HeaderKind::Forwarded if hop.keep_chain && !forwarded_written => {
                forwarded_written = true;
                out.extend_from_slice(b"forwarded: ");
                push_joined(out, head, buf, HeaderKind::Forwarded);
                push_forwarded_element(out, hop.peer_node, info.proto, host);
                out.extend_from_slice(b"\r\n");
            }
            HeaderKind::Via if !via_written => {
                via_written = true;
                out.extend_from_slice(b"via: ");
                push_joined(out, head, buf, HeaderKind::Via);
                push_via(out, head.version);
            }
            HeaderKind::XForwardedProto if hop.trusted => {
                proto_kept = true;
                push_header(out, h.name.of(buf), h.value.of(buf));
            }
            HeaderKind::XForwardedHost if hop.trusted => {
                host_kept = true;
                push_header(out, h.name.of(buf), h.value.of(buf));
            }
            // Merged above, or replaced below: the proxy writes these
            // itself unless a trusted chain is kept.
            HeaderKind::XForwardedFor
            | HeaderKind::Forwarded
            | HeaderKind::Via
            | HeaderKind::XForwardedProto
            | HeaderKind::XForwardedHost
            | HeaderKind::XRealIp
            | HeaderKind::XRequestId => {}
            // Host is written first; the 100-continue expectation is
            // answered by the proxy; framing and hop-by-hop fields are per
            // connection.
            HeaderKind::Host | HeaderKind::Expect => {}
            kind => debug_assert!(kind.is_hop_by_hop()),
        }
    }
    // The client addressed by the chain comes first when none was kept
    // (or a trusted proxy sent none): replaced headers name it alone.
    let client_differs = hop.client != hop.peer;
    if !xff_written {
        out.extend_from_slice(b"x-forwarded-for: ");
        out.extend_from_slice(hop.client);
        if client_differs {
            out.extend_from_slice(b", ");
            out.extend_from_slice(hop.peer);
        }
        out.extend_from_slice(b"\r\n");
    }
    if !forwarded_written {
        out.extend_from_slice(b"forwarded: ");
        if client_differs {
            out.extend_from_slice(b"for=");
            forwarded::push_node(out, hop.client);
            out.extend_from_slice(b", ");
        }
        push_forwarded_element(out, hop.peer_node, info.proto, host);
        out.extend_from_slice(b"\r\n");
    }
    push_header(out, b"x-real-ip", hop.client);
    if let Some((name, consumer)) = info.consumer {
        push_header(out, name, consumer);
    }
    if !via_written {
        out.extend_from_slice(b"via: ");
        push_via(out, head.version);
    }
    if !proto_kept {
        push_header(out, b"x-forwarded-proto", info.proto.as_bytes());
    }
    if let (Some(host), false) = (host, host_kept) {
        push_header(out, b"x-forwarded-host", host);
    }
    push_header(out, b"x-request-id", info.request_id);
    if let Some(trace) = &info.trace {
        push_header(out, b"traceparent", trace.traceparent);
        if !trace.tracestate.is_empty() {
            push_header(out, b"tracestate", trace.tracestate);
        }
    }
    if let Some((header, Some(identity))) = info.client_cert {
        push_header(out, header, identity);
    }
    match head.framing {
        Framing::Length(n) => {
            push_number_header(out, b"content-length", n);
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty => {
            if matches!(head.method, Method::Post | Method::Put | Method::Patch) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        Framing::UntilClose => unreachable!("requests are never close-delimited"),
    }
    out.extend_from_slice(b"\r\n");
}

/// The values of every field of `kind`, joined as one list, and `, `
/// after them if there were any (empty values are skipped).
fn push_joined(out: &mut Vec<u8>, head: &RequestHead, buf: &[u8], kind: HeaderKind) {
    for h in head.headers.iter().filter(|h| h.kind == kind && !h.value.is_empty()) {
        out.extend_from_slice(h.value.of(buf));
        out.extend_from_slice(b", ");
    }
}

/// The proxy's own Forwarded element (RFC 7239 §4): the hop it received
/// the request over: `for=<peer>;proto=<scheme>[;host=<Host>]`. Written on
/// every request, so in few pieces: `peer_node` is formatted once per
/// connection, and the Host has passed `parse::check_host`.
fn push_forwarded_element(out: &mut Vec<u8>, peer_node: &[u8], proto: &str, host: Option<&[u8]>) {
    out.extend_from_slice(b"for=");
    out.extend_from_slice(peer_node);
    out.extend_from_slice(match (proto, host.is_some()) {
        ("https", true) => b";proto=https;host=",
        ("https", false) => b";proto=https",
        (_, true) => b";proto=http;host=",
        (_, false) => b";proto=http",
    });
    if let Some(host) = host {
        forwarded::push_checked_host(out, host);
    }
}

fn push_via(out: &mut Vec<u8>, version: Version) {
    out.extend_from_slice(match version {
        Version::Http10 => b"1.0 ",
        Version::Http11 => b"1.1 ",
    });
    out.extend_from_slice(VIA_NAME);
    out.extend_from_slice(b"\r\n");
}

/// The response head sent downstream.
/// How the downstream response head is written.
pub struct DownstreamHead<'a> {
    pub framing: DownstreamFraming,
    pub close: bool,
    pub client_version: Version,
    pub request_id: &'a [u8],
    /// Strict-Transport-Security value (TLS listeners that set one).
    pub hsts: Option<&'a [u8]>,
}

pub fn downstream_response_head(out: &mut Vec<u8>, ubuf: &[u8], resp: &ResponseHead, how: &DownstreamHead<'_>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(resp.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.of(ubuf));
    out.extend_from_slice(b"\r\n");
    let check_listed = resp.connection.lists_other_names;
    for h in &resp.headers {
        match h.kind {
            HeaderKind::XRequestId => {}
            // HEAD and 304 responses describe a body without sending it: keep
            // their Content-Length as the upstream sent it.
            HeaderKind::ContentLength if how.framing == DownstreamFraming::Empty && resp.status != 204 => {
                push_header(out, b"content-length", h.value.of(ubuf));
            }
            kind if kind.is_hop_by_hop() => {}
            _ => {
                let name = h.name.of(ubuf);
                if check_listed && listed_in_connection(&resp.headers, ubuf, name) {
                    continue;
                }
                push_header(out, name, h.value.of(ubuf));
            }
        }
    }
    match how.framing {
        DownstreamFraming::Empty => {
            let has_length = resp.headers.iter().any(|h| h.kind == HeaderKind::ContentLength);
            if !has_length && resp.status >= 200 && resp.status != 204 && resp.status != 304 {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        DownstreamFraming::Length(n) => {
            push_number_header(out, b"content-length", n);
        }
        DownstreamFraming::ChunkedPassthrough | DownstreamFraming::ChunkEncode => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n")
        }
        DownstreamFraming::UntilClose { .. } => {}
    }
    push_connection(out, how.close, how.client_version);
    if let Some(hsts) = how.hsts {
        push_header(out, b"strict-transport-security", hsts);
    }
    push_header(out, b"x-request-id", how.request_id);
    out.extend_from_slice(b"\r\n");
}

fn push_connection(out: &mut Vec<u8>, close: bool, client_version: Version) {
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
}

/// A response made by the proxy itself (errors, direct responses, redirects).
pub struct LocalResponse<'a> {
    pub status: u16,
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
    pub close: bool,
    pub client_version: Version,
    pub request_id: &'a [u8],
    /// HEAD: send the head only.
    pub head_only: bool,
    /// Strict-Transport-Security value (TLS listeners that set one).
    pub hsts: Option<&'a [u8]>,
}

pub fn local_response(out: &mut Vec<u8>, r: &LocalResponse<'_>) {
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", r.status, reason_phrase(r.status));
    for (name, value) in r.headers {
        push_header(out, name, value);
    }
    push_number_header(out, b"content-length", r.body.len() as u64);
    push_connection(out, r.close, r.client_version);
    if let Some(hsts) = r.hsts {
        push_header(out, b"strict-transport-security", hsts);
    }
    if !r.request_id.is_empty() {
        push_header(out, b"x-request-id", r.request_id);
    }
    out.extend_from_slice(b"\r\n");
    if !r.head_only {
        out.extend_from_slice(r.body);
    }
}

/// The interim response sent when a client waits with `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Chunk framing around `len` bytes of data (for close-delimited bodies
/// re-framed as chunked).
pub fn chunk_header(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::parse::{parse_request, HeadLimits};
    use crate::http1::response::parse_response;

    const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 8192, max_headers: 64, max_uri_bytes: 1024 };

    const UNTRUSTED: ClientHop<'static> =
        ClientHop { client: b"10.0.0.9", peer: b"10.0.0.9", peer_node: b"10.0.0.9", keep_chain: false, trusted: false };

    fn forward(raw: &[u8]) -> String {
        let asserted = AssertedHeaders::from_names(&["x-client-cert"]);
        forward_with(raw, UNTRUSTED, &asserted, Some((b"x-client-cert", Some(b"subject=\"CN=c\""))))
    }

    fn forward_with(
        raw: &[u8],
        client: ClientHop<'_>,
        asserted: &AssertedHeaders,
        client_cert: Option<(&[u8], Option<&[u8]>)>,
    ) -> String {
        let mut head = RequestHead::default();
        assert!(parse_request(raw, &LIMITS, &mut head).unwrap());
        let mut path = Vec::new();
        let q = crate::pipeline::path::normalise(head.target.of(raw), &Default::default(), &mut path).unwrap();
        let info = ForwardInfo {
            client,
            proto: "http",
            request_id: b"rid",
            path: &path,
            query: q,
            consumer: None,
            asserted,
            client_cert,
            fallback_host: Some(b"backend:8080"),
            underscores_in_headers: false,
            trace: None,
        };
        let mut out = Vec::new();
        upstream_request_head(&mut out, raw, &head, &info);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        let out = forward(
            b"GET /a/../b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: ws\r\nProxy-Authorization: p\r\nProxy-Connection: c\r\nX-Keep: k\r\n\r\n",
        );
        assert!(out.starts_with("GET /b?x=1 HTTP/1.1\r\nhost: h\r\n"), "{out}");
        for gone in ["X-Secret", "Keep-Alive", "TE:", "Trailer", "Upgrade", "Proxy-", "Connection"] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert!(out.contains("X-Keep: k\r\n"));
        assert!(out.contains("x-forwarded-for: 10.0.0.9\r\n"));
        assert!(out.contains("x-real-ip: 10.0.0.9\r\n"));
        assert!(out.contains("forwarded: for=10.0.0.9;proto=http;host=h\r\n"));
        assert!(out.contains("x-forwarded-proto: http\r\n"));
        assert!(out.contains("x-forwarded-host: h\r\n"));
        assert!(out.contains("via: 1.1 shardgate\r\n"));
        assert!(out.contains("x-request-id: rid\r\n"));
    }

    #[test]
    fn client_certificate_header_cannot_be_forged() {
        let out = forward(b"GET / HTTP/1.1\r\nHost: h\r\nX-Client-Cert: forged\r\n\r\n");
        assert!(!out.contains("forged"), "{out}");
        assert!(out.contains("x-client-cert: subject=\"CN=c\"\r\n"), "{out}");
    }

    /// A listener without client certificates still drops what another
    /// listener asserts.
    #[test]
    fn asserted_headers_are_dropped_without_client_certificates() {
        let asserted = AssertedHeaders::from_names(&["x-client-cert", "X-Consumer"]);
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-CLIENT-CERT: forged\r\nx-consumer: admin\r\nX-Other: kept\r\n\r\n";
        let out = forward_with(raw, UNTRUSTED, &asserted, None);
        assert!(!out.to_ascii_lowercase().contains("x-client-cert"), "{out}");
        assert!(!out.to_ascii_lowercase().contains("x-consumer"), "{out}");
        assert!(out.contains("X-Other: kept\r\n"), "{out}");
    }

    const SPOOFED: &[u8] = b"GET / HTTP/1.1\r\nHost: h:8080\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\
        Forwarded: for=1.1.1.1\r\nX-Real-IP: 1.1.1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nVia: 1.0 edge\r\n\r\n";

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_replaced() {
        let out = forward(SPOOFED);
        for gone in ["1.1.1.1", "2.2.2.2", "https", "evil"] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert!(out.contains("x-forwarded-for: 10.0.0.9\r\n"), "{out}");
        assert!(out.contains("forwarded: for=10.0.0.9;proto=http;host=\"h:8080\"\r\n"), "{out}");
        assert!(out.contains("via: 1.0 edge, 1.1 shardgate\r\n"), "{out}");
        assert_eq!(out.matches("x-forwarded-for").count(), 1);
    }

    #[test]
    fn a_trusted_chain_is_appended_to() {
        let hop = ClientHop {
            client: b"2.2.2.2",
            peer: b"10.0.0.9",
            peer_node: b"10.0.0.9",
            keep_chain: true,
            trusted: true,
        };
        let out = forward_with(SPOOFED, hop, &AssertedHeaders::default(), None);
        assert!(out.contains("x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n"), "{out}");
        assert!(out.contains("forwarded: for=1.1.1.1, for=10.0.0.9;proto=http;host=\"h:8080\"\r\n"), "{out}");
        assert!(out.contains("x-real-ip: 2.2.2.2\r\n"), "{out}");
        assert!(out.contains("X-Forwarded-Proto: https\r\n"), "{out}");
        assert!(out.contains("X-Forwarded-Host: evil\r\n"), "{out}");
        assert!(!out.contains("x-forwarded-proto"), "{out}");
        assert_eq!(out.matches("x-forwarded-for").count(), 1);
        assert_eq!(out.to_ascii_lowercase().matches("x-real-ip").count(), 1);
    }

    #[test]
    fn a_chain_that_did_not_come_starts_with_the_client() {
        let hop = ClientHop {
            client: b"2001:db8::1",
            peer: b"10.0.0.9",
            peer_node: b"10.0.0.9",
            keep_chain: true,
            trusted: true,
        };
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 2001:db8::1\r\n\r\n";
        let out = forward_with(raw, hop, &AssertedHeaders::default(), None);
        assert!(out.contains("x-forwarded-for: 2001:db8::1, 10.0.0.9\r\n"), "{out}");
        assert!(out.contains("forwarded: for=\"[2001:db8::1]\", for=10.0.0.9;proto=http;host=h\r\n"), "{out}");
    }

    #[test]
    fn a_request_without_host_gets_the_fallback() {
        let out = forward(b"GET / HTTP/1.0\r\n\r\n");
        assert!(out.contains("host: backend:8080\r\n"), "{out}");
        assert!(!out.contains("x-forwarded-host"), "{out}");
        assert!(out.contains("forwarded: for=10.0.0.9;proto=http\r\n"), "{out}");
    }

    #[test]
    fn framing_is_rewritten() {
        let out = forward(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
        assert!(out.contains("transfer-encoding: chunked\r\n"));
        assert!(!out.to_lowercase().contains("expect"));
        let out = forward(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
        assert!(out.contains("content-length: 0\r\n"));
    }

    #[test]
    fn response_head_rewrites_framing_and_connection() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Request-Id: theirs\r\nServer: s\r\n\r\n";
        let mut resp = ResponseHead::default();
        assert!(parse_response(raw, 8192, Method::Get, &mut resp).unwrap());
        let mut out = Vec::new();
        let how = DownstreamHead {
            framing: DownstreamFraming::UntilClose { dechunk: true },
            close: true,
            client_version: Version::Http10,
            request_id: b"rid",
            hsts: Some(b"max-age=60"),
        };
        downstream_response_head(&mut out, raw, &resp, &how);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: s\r\nconnection: close\r\nstrict-transport-security: max-age=60\r\nx-request-id: rid\r\n\r\n"
        );
    }

    #[test]
    fn trace_context_is_replaced_when_tracing_is_on() {
        let raw: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nTraceparent: 00-client\r\ntracestate: a=1\r\nX-Keep: k\r\n\r\n";
        let mut head = RequestHead::default();
        assert!(parse_request(raw, &LIMITS, &mut head).unwrap());
        let asserted = AssertedHeaders::default();
        let head_with = |trace: Option<TraceFields<'_>>| {
            let info = ForwardInfo {
                client: UNTRUSTED,
                proto: "http",
                request_id: b"rid",
                path: b"/",
                query: None,
                consumer: None,
                asserted: &asserted,
                client_cert: None,
                fallback_host: None,
                underscores_in_headers: false,
                trace,
            };
            let mut out = Vec::new();
            upstream_request_head(&mut out, raw, &head, &info);
            String::from_utf8(out).unwrap()
        };
        // Off: the client's fields pass like any other.
        let off = head_with(None);
        assert!(off.contains("Traceparent: 00-client\r\ntracestate: a=1\r\n"), "{off}");
        // On: only the proxy's, once each.
        let on = head_with(Some(TraceFields { traceparent: b"00-proxy", tracestate: b"a=1,b=2" }));
        assert!(!on.contains("00-client") && !on.contains("tracestate: a=1\r\n"), "{on}");
        assert!(on.contains("traceparent: 00-proxy\r\ntracestate: a=1,b=2\r\n"), "{on}");
        assert!(on.contains("X-Keep: k\r\n"));
        // No tracestate to pass: none is written.
        let bare = head_with(Some(TraceFields { traceparent: b"00-proxy", tracestate: b"" }));
        assert!(!bare.to_ascii_lowercase().contains("tracestate"), "{bare}");
    }
}
