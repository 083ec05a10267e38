//! Writing heads into the connection's reused output buffer.
//!
//! Where it sits: `upstream/forward.rs` writes the upstream request head and
//! the downstream response head here; `conn.rs` writes error, direct and
//! redirect responses. This is the one place a head is copied: the proxy
//! rewrites heads (hop-by-hop fields out, X-Forwarded-* and framing in), so
//! the new head is assembled once, with any body bytes that arrived with the
//! old one appended, and sent in a single write.

use std::io::Write;

use super::parse::{Framing, Header, HeaderKind, Method, RequestHead};
use super::response::ResponseHead;
use super::Version;
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
    /// The client's address as text, formatted once per connection.
    pub client_ip: &'a [u8],
    /// "http" or "https".
    pub proto: &'static str,
    pub request_id: &'a [u8],
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    /// mTLS: the header that carries the verified client identity upstream
    /// (any client-sent header of that name is dropped) and its value.
    pub client_cert: Option<(&'a [u8], Option<&'a [u8]>)>,
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
pub fn upstream_request_head(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, info: &ForwardInfo<'_>) {
    out.extend_from_slice(head.method_span.of(buf));
    out.push(b' ');
    out.extend_from_slice(info.path);
    if let Some(q) = info.query {
        out.push(b'?');
        out.extend_from_slice(q);
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = head.host {
        push_header(out, b"host", host.of(buf));
    }
    let check_listed = head.connection.lists_other_names;
    let mut xff_start = None;
    let mut via_start = None;
    for h in &head.headers {
        match h.kind {
            HeaderKind::Other => {
                let name = h.name.of(buf);
                if check_listed && listed_in_connection(&head.headers, buf, name) {
                    continue;
                }
                if info.client_cert.is_some_and(|(header, _)| header.eq_ignore_ascii_case(name)) {
                    // Only the proxy may vouch for a client certificate.
                    continue;
                }
                push_header(out, name, h.value.of(buf));
            }
            HeaderKind::XForwardedFor => {
                // Merge every X-Forwarded-For into one list, ours last.
                if xff_start.is_none() {
                    out.extend_from_slice(b"x-forwarded-for: ");
                    xff_start = Some(out.len());
                    out.extend_from_slice(h.value.of(buf));
                    for other in head.headers.iter().filter(|o| o.kind == HeaderKind::XForwardedFor).skip(1) {
                        out.extend_from_slice(b", ");
                        out.extend_from_slice(other.value.of(buf));
                    }
                    out.extend_from_slice(b", ");
                    out.extend_from_slice(info.client_ip);
                    out.extend_from_slice(b"\r\n");
                }
            }
            HeaderKind::Via => {
                if via_start.is_none() {
                    out.extend_from_slice(b"via: ");
                    via_start = Some(out.len());
                    out.extend_from_slice(h.value.of(buf));
                    for other in head.headers.iter().filter(|o| o.kind == HeaderKind::Via).skip(1) {
                        out.extend_from_slice(b", ");
                        out.extend_from_slice(other.value.of(buf));
                    }
                    out.extend_from_slice(b", ");
                    push_via(out, head.version);
                }
            }
            // Host is written first; the proxy sets these itself; framing and
            // hop-by-hop fields are per connection; the 100-continue
            // expectation is answered by the proxy.
            HeaderKind::Host
            | HeaderKind::XForwardedProto
            | HeaderKind::XForwardedHost
            | HeaderKind::XRequestId
            | HeaderKind::Expect => {}
            kind => debug_assert!(kind.is_hop_by_hop()),
        }
    }
    if xff_start.is_none() {
        push_header(out, b"x-forwarded-for", info.client_ip);
    }
    if via_start.is_none() {
        out.extend_from_slice(b"via: ");
        push_via(out, head.version);
    }
    push_header(out, b"x-forwarded-proto", info.proto.as_bytes());
    if let Some(host) = head.host {
        push_header(out, b"x-forwarded-host", host.of(buf));
    }
    push_header(out, b"x-request-id", info.request_id);
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

    fn forward(raw: &[u8]) -> String {
        let mut head = RequestHead::default();
        assert!(parse_request(raw, &LIMITS, &mut head).unwrap());
        let mut path = Vec::new();
        let q = crate::pipeline::path::normalise(head.target.of(raw), &Default::default(), &mut path).unwrap();
        let info = ForwardInfo {
            client_ip: b"10.0.0.9",
            proto: "http",
            request_id: b"rid",
            path: &path,
            query: q,
            client_cert: Some((b"x-client-cert", Some(b"subject=\"CN=c\""))),
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

    #[test]
    fn forwarded_lists_are_appended() {
        let out = forward(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nVia: 1.0 edge\r\n\r\n");
        assert!(out.contains("x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n"), "{out}");
        assert!(out.contains("via: 1.0 edge, 1.1 shardgate\r\n"), "{out}");
        assert_eq!(out.matches("x-forwarded-for").count(), 1);
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
}
