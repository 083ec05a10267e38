//! Sans-io parsing of request and response heads, and the framing rules.
//!
//! Where it sits: the first thing done to every request (`conn.rs` calls
//! [`parse_request`] on its read buffer) and to every upstream response
//! (`upstream/forward.rs` calls [`parse_response`]). Nothing here does I/O:
//! a parser is a function from bytes to `Complete` / `Partial` / error, and
//! is table-tested without sockets.
//!
//! Strictness (RFC 9112 §6.3, §11.2 — request smuggling): anything a second
//! parser could read differently is refused, never "fixed up":
//! Content-Length with Transfer-Encoding, differing or malformed
//! Content-Length, a final coding other than `chunked`, whitespace before a
//! colon, obs-fold, bare CR or LF, missing or duplicate Host.

use std::mem::MaybeUninit;

use super::{Span, Version};
use crate::error::{Error, ErrorKind};

/// httparse needs a fixed array of header slots; `max_header_count` may
/// not exceed this (the config validator enforces it).
pub const MAX_HEADER_SLOTS: usize = 512;

/// What the caller allows for one request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
}

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
    Via,
    XRequestId,
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

    fn classify(name: &[u8]) -> HeaderKind {
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
            10 if is("connection") => Connection,
            10 if is("keep-alive") => KeepAlive,
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
    fn from_bytes(m: &[u8]) -> Method {
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
        matches!(
            self,
            Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace
        )
    }
}

/// A parsed request head; every span points into the buffer it was parsed from.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// The request target as sent (origin-form, or absolute-form).
    pub target: Span,
    pub version: Version,
    pub headers: Vec<Header>,
    /// Bytes from the start of the buffer to the first body byte.
    pub head_len: usize,
    pub framing: Framing,
    /// Host header value, or the authority of an absolute-form target.
    pub host: Option<Span>,
    pub connection: ConnectionOptions,
    pub expect_continue: bool,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Method::Get,
            method_span: Span::default(),
            target: Span::default(),
            version: Version::Http11,
            headers: Vec::with_capacity(32),
            head_len: 0,
            framing: Framing::Empty,
            host: None,
            connection: ConnectionOptions::default(),
            expect_continue: false,
        }
    }
}

impl RequestHead {
    /// Does the client want the connection kept open after this exchange?
    pub fn wants_keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub version: Version,
    pub headers: Vec<Header>,
    pub head_len: usize,
    pub framing: Framing,
    pub connection: ConnectionOptions,
}

impl Default for ResponseHead {
    fn default() -> Self {
        ResponseHead {
            status: 0,
            reason: Span::default(),
            version: Version::Http11,
            headers: Vec::with_capacity(32),
            head_len: 0,
            framing: Framing::Empty,
            connection: ConnectionOptions::default(),
        }
    }
}

impl ResponseHead {
    /// May the upstream connection carry another request after this one?
    pub fn allows_reuse(&self) -> bool {
        let persistent = match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        };
        persistent && self.framing != Framing::UntilClose
    }
}

fn bad(cause: &'static str) -> Error {
    Error::new(ErrorKind::BadRequest, cause)
}

fn bad_upstream(cause: &'static str) -> Error {
    Error::new(ErrorKind::UpstreamBadResponse, cause)
}

/// Parses a request head at the start of `buf` into `head` (reusing its
/// header vector). `Ok(false)`: the head is not complete yet; read more.
pub fn parse_request(buf: &[u8], limits: &HeadLimits, head: &mut RequestHead) -> Result<bool, Error> {
    let max_headers = limits.max_headers.min(MAX_HEADER_SLOTS);
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADER_SLOTS] =
        [const { MaybeUninit::uninit() }; MAX_HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut slots[..max_headers]);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return check_partial_request(buf, limits).map(|()| false);
        }
        Err(e) => return Err(map_request_error(e, buf, limits)),
    };
    if head_len > limits.max_head_bytes {
        return Err(Error::new(ErrorKind::HeadTooLarge, "request head too large"));
    }
    reject_bare_line_breaks(&buf[..head_len]).map_err(bad)?;

    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    if path.len() > limits.max_uri_bytes {
        return Err(Error::new(ErrorKind::UriTooLong, "request target too long"));
    }
    head.method = Method::from_bytes(method.as_bytes());
    head.method_span = Span::within(buf, method.as_bytes());
    head.target = Span::within(buf, path.as_bytes());
    head.version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    head.head_len = head_len;
    head.headers.clear();
    head.host = None;
    head.connection = ConnectionOptions::default();
    head.expect_continue = false;

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut saw_te = false;
    let mut host_count = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        let kind = HeaderKind::classify(name);
        let value_span = Span::within(buf, value);
        head.headers.push(Header { name: Span::within(buf, name), value: value_span, kind });
        match kind {
            HeaderKind::Host => {
                host_count += 1;
                if !valid_host(value) {
                    return Err(bad("invalid Host header"));
                }
                head.host = Some(value_span);
            }
            HeaderKind::ContentLength => {
                let n = parse_content_length(value).ok_or(bad("invalid Content-Length"))?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(bad("differing Content-Length values"));
                }
                content_length = Some(n);
            }
            HeaderKind::TransferEncoding => {
                saw_te = true;
                chunked = transfer_coding(value, chunked)?;
            }
            HeaderKind::Connection => read_connection(value, &mut head.connection),
            HeaderKind::Expect => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    head.expect_continue = true;
                } else {
                    // RFC 9110 §10.1.1: 417 for unknown expectations; rare
                    // enough that a clear 400 serves.
                    return Err(bad("unsupported Expect value"));
                }
            }
            _ => {}
        }
    }
    if host_count > 1 {
        return Err(bad("duplicate Host header"));
    }
    // Absolute-form target: its authority is the host (RFC 9112 §3.2.2).
    if let Some(authority) = absolute_form_authority(path.as_bytes()) {
        if !valid_host(authority) || authority.is_empty() {
            return Err(bad("invalid authority in request target"));
        }
        head.host = Some(Span::within(buf, authority));
    } else if !(path.starts_with('/') || (path == "*" && head.method == Method::Options)) {
        return Err(bad("request target must be origin-form or absolute-form"));
    }
    if head.version == Version::Http11 && host_count == 0 {
        return Err(bad("missing Host header"));
    }
    if head.method == Method::Connect {
        return Err(Error::new(ErrorKind::BadRequest, "CONNECT is not supported"));
    }
    head.framing = if saw_te {
        if content_length.is_some() {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        if head.version == Version::Http10 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !chunked {
            return Err(bad("final transfer coding is not chunked"));
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    Ok(true)
}

/// A partial head is fine unless it is already over a limit.
fn check_partial_request(buf: &[u8], limits: &HeadLimits) -> Result<(), Error> {
    let line_end = memchr(b'\n', buf);
    if line_end.is_none() && buf.len() > limits.max_uri_bytes + REQUEST_LINE_SLACK {
        // The request line alone is longer than any allowed target.
        return Err(Error::new(ErrorKind::UriTooLong, "request target too long"));
    }
    if buf.len() >= limits.max_head_bytes {
        return Err(Error::new(ErrorKind::HeadTooLarge, "request head too large"));
    }
    Ok(())
}

/// Method, spaces and version around the target: the most a request line
/// adds to the target's length before the target limit is known to be hit.
const REQUEST_LINE_SLACK: usize = 32;

fn map_request_error(e: httparse::Error, buf: &[u8], limits: &HeadLimits) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::new(ErrorKind::TooManyHeaders, "too many header fields"),
        httparse::Error::HeaderName => {
            // A space before the colon or a line starting with whitespace
            // (obs-fold) lands here too; name them for the error body.
            bad("invalid header name (or whitespace before colon, or obs-fold)")
        }
        httparse::Error::HeaderValue => bad("invalid character in header value"),
        httparse::Error::NewLine => bad("malformed line ending"),
        httparse::Error::Version => {
            if buf.len() > limits.max_uri_bytes + REQUEST_LINE_SLACK && memchr(b'\n', buf).is_none() {
                Error::new(ErrorKind::UriTooLong, "request target too long")
            } else {
                bad("malformed HTTP version (HTTP/0.9 is not supported)")
            }
        }
        httparse::Error::Token => bad("invalid method token"),
        httparse::Error::Status => bad("malformed request line"),
    }
}

/// httparse accepts a lone LF as a line end (RFC 9112 §2.2 "MAY"); a
/// proxy must not, since the next hop may split lines differently.
fn reject_bare_line_breaks(head: &[u8]) -> Result<(), &'static str> {
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

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &v[start..end]
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
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
fn transfer_coding(value: &[u8], mut final_chunked: bool) -> Result<bool, Error> {
    let mut any = false;
    for coding in value.split(|&b| b == b',') {
        let coding = trim(coding);
        if coding.is_empty() {
            continue;
        }
        any = true;
        // Parameters (`;q=`) are not allowed on chunked; strip for the name.
        let name = trim(coding.split(|&b| b == b';').next().unwrap_or(coding));
        if !KNOWN_CODINGS.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(Error::new(ErrorKind::UnsupportedTransferCoding, "unknown transfer coding"));
        }
        if final_chunked {
            // Anything after chunked, including chunked again.
            return Err(bad("transfer coding applied after chunked"));
        }
        if name.eq_ignore_ascii_case(b"chunked") {
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

fn read_connection(value: &[u8], opts: &mut ConnectionOptions) {
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

/// Host = uri-host [ ":" port ] (RFC 9110 §7.2): reg-name characters, an
/// IPv4 address, or a bracketed IP literal; port all digits.
pub fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = memchr(b']', v) else { return false };
        let literal = &v[1..close];
        if literal.is_empty() || !literal.iter().all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')) {
            return false;
        }
        match &v[close + 1..] {
            [] => (&v[..0], None),
            [b':', port @ ..] => (&v[..0], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    let host_ok = host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
    });
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

/// The host part of a Host value (without port), for routing.
pub fn host_without_port(v: &[u8]) -> &[u8] {
    if v.first() == Some(&b'[') {
        return match memchr(b']', v) {
            Some(i) => &v[..=i],
            None => v,
        };
    }
    match v.iter().rposition(|&b| b == b':') {
        Some(i) => &v[..i],
        None => v,
    }
}

/// `http://authority/path` -> authority.
fn absolute_form_authority(target: &[u8]) -> Option<&[u8]> {
    let rest = if target.len() > 7 && target[..7].eq_ignore_ascii_case(b"http://") {
        &target[7..]
    } else if target.len() > 8 && target[..8].eq_ignore_ascii_case(b"https://") {
        &target[8..]
    } else {
        return None;
    };
    let end = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The path-and-query of a request target (origin-form as is; for
/// absolute-form, what follows the authority, at least "/").
pub fn origin_form(target: &[u8]) -> &[u8] {
    match absolute_form_authority(target) {
        Some(auth) => {
            let end = auth.as_ptr() as usize + auth.len() - target.as_ptr() as usize;
            if end == target.len() {
                b"/"
            } else {
                &target[end..]
            }
        }
        None => target,
    }
}

/// Parses an upstream response head. `request_method` decides whether a
/// body can follow (HEAD); returns `Ok(false)` when more bytes are needed.
pub fn parse_response(
    buf: &[u8],
    max_head_bytes: usize,
    request_method: Method,
    head: &mut ResponseHead,
) -> Result<bool, Error> {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADER_SLOTS] =
        [const { MaybeUninit::uninit() }; MAX_HEADER_SLOTS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_head_bytes {
                return Err(bad_upstream("response head too large"));
            }
            return Ok(false);
        }
        Err(_) => return Err(bad_upstream("malformed response head")),
    };
    if head_len > max_head_bytes {
        return Err(bad_upstream("response head too large"));
    }
    reject_bare_line_breaks(&buf[..head_len]).map_err(bad_upstream)?;
    head.status = resp.code.unwrap_or(0);
    head.reason = Span::within(buf, resp.reason.unwrap_or("").as_bytes());
    head.version = if resp.version == Some(0) { Version::Http10 } else { Version::Http11 };
    head.head_len = head_len;
    head.headers.clear();
    head.connection = ConnectionOptions::default();
    let mut content_length: Option<u64> = None;
    let mut saw_te = false;
    let mut chunked = false;
    for h in resp.headers.iter() {
        let value = trim(h.value);
        let kind = HeaderKind::classify(h.name.as_bytes());
        head.headers.push(Header { name: Span::within(buf, h.name.as_bytes()), value: Span::within(buf, value), kind });
        match kind {
            HeaderKind::ContentLength => {
                let n = parse_content_length(value).ok_or(bad_upstream("invalid Content-Length in response"))?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(bad_upstream("differing Content-Length values in response"));
                }
                content_length = Some(n);
            }
            HeaderKind::TransferEncoding => {
                saw_te = true;
                chunked = transfer_coding(value, chunked).map_err(|_| bad_upstream("unsupported transfer coding in response"))?;
            }
            HeaderKind::Connection => read_connection(value, &mut head.connection),
            _ => {}
        }
    }
    if saw_te && content_length.is_some() {
        return Err(bad_upstream("both Content-Length and Transfer-Encoding in response"));
    }
    // RFC 9112 §6.3 rules 1-2: no body for HEAD, 1xx, 204, 304.
    head.framing = if request_method == Method::Head || head.status < 200 || head.status == 204 || head.status == 304 {
        Framing::Empty
    } else if saw_te {
        if !chunked {
            return Err(bad_upstream("final transfer coding of response is not chunked"));
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 4096, max_headers: 16, max_uri_bytes: 256 };

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Framing(Framing),
        Partial,
        Status(u16),
    }

    const CASES: &[(&str, &[u8], Expect)] = &[
        ("simple get", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Expect::Framing(Framing::Empty)),
        ("content-length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", Expect::Framing(Framing::Length(5))),
        ("identical duplicate CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Expect::Framing(Framing::Length(5))),
        ("chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Expect::Framing(Framing::Chunked)),
        ("chunked mixed case", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n", Expect::Framing(Framing::Chunked)),
        ("partial", b"GET / HTTP/1.1\r\nHost: a\r\n", Expect::Partial),
        ("http/1.0 no host", b"GET / HTTP/1.0\r\n\r\n", Expect::Framing(Framing::Empty)),
        ("absolute form", b"GET http://a.example/x HTTP/1.1\r\nHost: b\r\n\r\n", Expect::Framing(Framing::Empty)),
        ("CL and TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Expect::Status(400)),
        ("TE final not chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Expect::Status(400)),
        ("TE gzip only", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Expect::Status(400)),
        ("TE unknown", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n", Expect::Status(501)),
        ("TE gzip then chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Expect::Status(501)),
        ("TE chunked twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Expect::Status(400)),
        ("differing CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Expect::Status(400)),
        ("CL plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Expect::Status(400)),
        ("CL minus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Expect::Status(400)),
        ("CL inner space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", Expect::Status(400)),
        ("CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Expect::Status(400)),
        ("CL hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", Expect::Status(400)),
        ("CL overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", Expect::Status(400)),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Expect::Status(400)),
        ("CR in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Expect::Status(400)),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Expect::Status(400)),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Expect::Status(400)),
        ("bad name char", b"GET / HTTP/1.1\r\nHost: a\r\nBa(d: x\r\n\r\n", Expect::Status(400)),
        ("missing host", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", Expect::Status(400)),
        ("duplicate host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Expect::Status(400)),
        ("host with space", b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", Expect::Status(400)),
        ("host bad bracket", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", Expect::Status(400)),
        ("http/0.9", b"GET /\r\n\r\n", Expect::Status(400)),
        ("chunked in 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Expect::Status(400)),
        ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", Expect::Status(400)),
        ("too many headers", b"GET / HTTP/1.1\r\nHost: a\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\ni: 1\r\nj: 1\r\nk: 1\r\nl: 1\r\nm: 1\r\nn: 1\r\no: 1\r\np: 1\r\n\r\n", Expect::Status(431)),
        ("relative target", b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", Expect::Status(400)),
        ("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Expect::Status(400)),
    ];

    #[test]
    fn request_table() {
        for (name, input, expect) in CASES {
            let mut head = RequestHead::default();
            let got = match parse_request(input, &LIMITS, &mut head) {
                Ok(true) => Expect::Framing(head.framing),
                Ok(false) => Expect::Partial,
                Err(e) => Expect::Status(e.kind.status().unwrap()),
            };
            assert_eq!(got, *expect, "case {name}");
        }
    }

    #[test]
    fn uri_too_long_complete_and_partial() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(300));
        let mut head = RequestHead::default();
        let e = parse_request(long.as_bytes(), &LIMITS, &mut head).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UriTooLong);
        let partial = format!("GET /{}", "a".repeat(400));
        let e = parse_request(partial.as_bytes(), &LIMITS, &mut head).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UriTooLong);
    }

    #[test]
    fn head_too_large_partial() {
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(5000));
        let mut head = RequestHead::default();
        let e = parse_request(big.as_bytes(), &LIMITS, &mut head).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HeadTooLarge);
    }

    #[test]
    fn headers_are_spans_into_the_buffer() {
        let buf = b"GET /p?q=1 HTTP/1.1\r\nHost:  example.com:8080  \r\nConnection: close, x-secret\r\n\r\nBODY";
        let mut head = RequestHead::default();
        assert!(parse_request(buf, &LIMITS, &mut head).unwrap());
        assert_eq!(head.target.of(buf), b"/p?q=1");
        assert_eq!(head.host.unwrap().of(buf), b"example.com:8080");
        assert_eq!(&buf[head.head_len..], b"BODY");
        assert!(head.connection.close && head.connection.lists_other_names);
        assert!(!head.wants_keep_alive());
        assert_eq!(host_without_port(head.host.unwrap().of(buf)), b"example.com");
    }

    #[test]
    fn keep_alive_defaults_by_version() {
        let mut head = RequestHead::default();
        parse_request(b"GET / HTTP/1.0\r\n\r\n", &LIMITS, &mut head).unwrap();
        assert!(!head.wants_keep_alive());
        parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &LIMITS, &mut head).unwrap();
        assert!(head.wants_keep_alive());
        parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &LIMITS, &mut head).unwrap();
        assert!(head.wants_keep_alive());
    }

    #[test]
    fn origin_form_of_absolute_targets() {
        assert_eq!(origin_form(b"http://a.b/c?d"), b"/c?d");
        assert_eq!(origin_form(b"http://a.b"), b"/");
        assert_eq!(origin_form(b"/x"), b"/x");
    }

    const RESPONSES: &[(&str, &[u8], Method, Result<Framing, ()>)] = &[
        ("length", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::Get, Ok(Framing::Length(3))),
        ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Method::Get, Ok(Framing::Chunked)),
        ("until close", b"HTTP/1.1 200 OK\r\n\r\n", Method::Get, Ok(Framing::UntilClose)),
        ("head", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::Head, Ok(Framing::Empty)),
        ("204", b"HTTP/1.1 204 No Content\r\n\r\n", Method::Get, Ok(Framing::Empty)),
        ("304", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", Method::Get, Ok(Framing::Empty)),
        ("CL+TE", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", Method::Get, Err(())),
        ("two CL", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", Method::Get, Err(())),
        ("bad CL", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", Method::Get, Err(())),
        ("garbage", b"HTTP/9 OK\r\n\r\n", Method::Get, Err(())),
    ];

    #[test]
    fn response_table() {
        for (name, input, method, expect) in RESPONSES {
            let mut head = ResponseHead::default();
            let got = parse_response(input, 4096, *method, &mut head).map(|done| {
                assert!(done, "{name}");
                head.framing
            });
            assert_eq!(got.map_err(|_| ()), *expect, "case {name}");
        }
    }

    #[test]
    fn response_reuse() {
        let mut head = ResponseHead::default();
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4096, Method::Get, &mut head).unwrap();
        assert!(head.allows_reuse());
        parse_response(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 4096, Method::Get, &mut head).unwrap();
        assert!(!head.allows_reuse());
        parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 4096, Method::Get, &mut head).unwrap();
        assert!(!head.allows_reuse());
    }
}
