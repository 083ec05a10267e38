//! The vocabulary both head parsers share: header kinds, framing, methods,
//! connection options, and the field-value rules (Content-Length,
//! Transfer-Encoding, Connection, line endings) that decide framing.
//!
//! Where it sits: used by `parse.rs` (requests) and `response.rs`
//! (upstream responses); sans-io, tested through both.

use super::Span;
use crate::error::{Error, ErrorKind};

/// httparse needs a fixed array of header slots; `max_header_count` may
/// not exceed this (the config validator enforces it).
pub const MAX_HEADER_SLOTS: usize = 512;

/// Headers whose meaning the proxy acts on; classified once while parsing
/// so later stages compare an enum, not strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    Te,
    Trailer,
    Upgrade,
    ProxyConnection,
    ProxyAuthorization,
    ProxyAuthenticate,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    /// RFC 7239.
    Forwarded,
    XRealIp,
    Via,
    XRequestId,
    /// W3C Trace Context (`observe/trace/`): replaced by the proxy's own
    /// when tracing is on.
    Traceparent,
    Tracestate,
    Other,
}

impl HeaderKind {
    /// Hop-by-hop fields (RFC 9110 §7.6.1) are for one connection only and
    /// never forwarded; framing fields are rewritten by the proxy.
    pub fn is_hop_by_hop(self) -> bool {
        use HeaderKind::*;
        matches!(
            self,
            ContentLength
                | TransferEncoding
                | Connection
                | KeepAlive
                | Te
                | Trailer
                | Upgrade
                | ProxyConnection
                | ProxyAuthorization
                | ProxyAuthenticate
        )
    }

    pub(super) fn classify(name: &[u8]) -> HeaderKind {
        use HeaderKind::*;
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        // Dispatch on length first: most headers are rejected after one compare.
        match name.len() {
            2 if is("te") => Te,
            3 if is("via") => Via,
            4 if is("host") => Host,
            6 if is("expect") => Expect,
            7 if is("trailer") => Trailer,
            7 if is("upgrade") => Upgrade,
            9 if is("forwarded") => Forwarded,
            9 if is("x-real-ip") => XRealIp,
            10 if is("connection") => Connection,
            10 if is("keep-alive") => KeepAlive,
            10 if is("tracestate") => Tracestate,
            11 if is("traceparent") => Traceparent,
            12 if is("x-request-id") => XRequestId,
            14 if is("content-length") => ContentLength,
            15 if is("x-forwarded-for") => XForwardedFor,
            16 if is("proxy-connection") => ProxyConnection,
            16 if is("x-forwarded-host") => XForwardedHost,
            17 if is("transfer-encoding") => TransferEncoding,
            17 if is("x-forwarded-proto") => XForwardedProto,
            18 if is("proxy-authenticate") => ProxyAuthenticate,
            19 if is("proxy-authorization") => ProxyAuthorization,
            _ => Other,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub name: Span,
    /// Leading and trailing whitespace already trimmed.
    pub value: Span,
    pub kind: HeaderKind,
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// What the `Connection` header (and version default) says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    /// `Connection` lists names other than close/keep-alive: those header
    /// fields are hop-by-hop too and must be removed.
    pub lists_other_names: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Connect,
    Other,
}

impl Method {
    pub(super) fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: safe to repeat after a failure.
    pub fn is_idempotent(self) -> bool {
        matches!(self, Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace)
    }
}

/// A malformed request (400).
pub(super) fn bad(cause: &'static str) -> Error {
    Error::new(ErrorKind::BadRequest, cause)
}

/// httparse accepts a lone LF as a line end (RFC 9112 §2.2 "MAY"); a
/// proxy must not, since the next hop may split lines differently.
pub(super) fn reject_bare_line_breaks(head: &[u8]) -> Result<(), &'static str> {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        if b == b'\n' && prev != b'\r' {
            return Err("bare LF in head");
        }
        if prev == b'\r' && b != b'\n' && i > 0 {
            return Err("bare CR in head");
        }
        prev = b;
    }
    Ok(())
}

pub(super) fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &v[start..end]
}

pub(super) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no inner space,
/// no list, no overflow.
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(n)
}

/// Transfer codings we know the names of (IANA registry). An unknown name
/// is 501; a known one other than `chunked` is refused since we only frame
/// by `chunked`.
const KNOWN_CODINGS: &[&[u8]] = &[b"chunked", b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress", b"identity"];

/// Folds one Transfer-Encoding field value into the running state;
/// returns whether the final coding so far is `chunked`.
pub(super) fn transfer_coding(value: &[u8], mut final_chunked: bool) -> Result<bool, Error> {
    let mut any = false;
    for coding in value.split(|&b| b == b',') {
        let coding = trim(coding);
        if coding.is_empty() {
            continue;
        }
        any = true;
        // The name is what precedes any parameters (`;q=`).
        let name = trim(coding.split(|&b| b == b';').next().unwrap_or(coding));
        if !KNOWN_CODINGS.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(Error::new(ErrorKind::UnsupportedTransferCoding, "unknown transfer coding"));
        }
        if final_chunked {
            // Anything after chunked, including chunked again.
            return Err(bad("transfer coding applied after chunked"));
        }
        if name.eq_ignore_ascii_case(b"chunked") {
            // chunked defines no parameters (RFC 9112 §7.1), and other
            // parsers (nginx, h11) refuse `chunked;x=1` as an unknown
            // coding rather than frame by it: refused, not guessed.
            if name.len() != coding.len() {
                return Err(bad("parameters on the chunked transfer coding"));
            }
            final_chunked = true;
        } else {
            return if is_last_coding(value, coding) {
                Err(bad("final transfer coding is not chunked"))
            } else {
                Err(Error::new(ErrorKind::UnsupportedTransferCoding, "only the chunked transfer coding is supported"))
            };
        }
    }
    if !any {
        return Err(bad("empty Transfer-Encoding"));
    }
    Ok(final_chunked)
}

fn is_last_coding(value: &[u8], coding: &[u8]) -> bool {
    let end = coding.as_ptr() as usize + coding.len() - value.as_ptr() as usize;
    value[end..].iter().all(|&b| matches!(b, b' ' | b'\t' | b','))
}

pub(super) fn read_connection(value: &[u8], opts: &mut ConnectionOptions) {
    for token in value.split(|&b| b == b',') {
        let token = trim(token);
        if token.eq_ignore_ascii_case(b"close") {
            opts.close = true;
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            opts.keep_alive = true;
        } else if !token.is_empty() {
            opts.lists_other_names = true;
        }
    }
}
