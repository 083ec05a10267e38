//! Sans-io parsing of request heads, and the strict framing rules.
//!
//! Where it sits: the first thing done to every request (`downstream/conn.rs` calls
//! [`parse_request`] on its read buffer). Nothing here does I/O: a parser is
//! a function from bytes to complete / partial / error, table-tested
//! without sockets.
//!
//! Strictness (RFC 9112 §6.3, §11.2 — request smuggling): anything a second
//! parser could read differently is refused, never "fixed up":
//! Content-Length with Transfer-Encoding, differing or malformed
//! Content-Length, a final coding other than `chunked`, whitespace before a
//! colon, obs-fold, bare CR or LF, missing or duplicate Host.

use std::mem::MaybeUninit;

use super::head::{bad, memchr, parse_content_length, read_connection, reject_bare_line_breaks, transfer_coding, trim};
pub use super::head::{ConnectionOptions, Framing, Header, HeaderKind, Method, MAX_HEADER_SLOTS};
use super::{Span, Version};
use crate::error::{Error, ErrorKind};

/// What the caller allows for one request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
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
            headers: Vec::new(),
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
    head.headers.reserve(req.headers.len());
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
                check_host(value).map_err(bad)?;
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
        if authority.is_empty() || check_host(authority).is_err() {
            return Err(bad("invalid authority in request target (not a host name or address)"));
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

/// Host = uri-host [ ":" port ] (RFC 9110 §7.2), narrowed to what names a
/// host unambiguously, so that no spelling escapes a route's `host`:
/// - a host name: dot-separated labels of letters, digits, `-` (not first
///   or last) and `_`, 1-63 bytes each, 253 in all, one optional trailing
///   dot (`a.example.` is `a.example`); no empty label (`a..b`), no `%`
///   escape, no other reg-name character (`;`, `!`, `~`, …);
/// - a name whose last label is numeric (`127.1`, `0x7f.1`) only as a
///   dotted-quad IPv4 address (resolvers read the others as addresses);
/// - `[IPv6]` (no zone, no IPvFuture);
/// - an optional `:port` of 1-5 digits up to 65535.
///
/// `Err` is the reason for the 400. An empty value (HTTP/1.1 allows an
/// empty Host) is accepted; it matches only routes without `host`.
pub fn check_host(v: &[u8]) -> Result<(), &'static str> {
    // Every request pays this: the usual spellings (`name.example`,
    // `10.0.0.1:8080`) are settled in one pass; anything else, and every
    // refusal with its reason, takes the rules below.
    if plainly_valid_host(v) {
        return Ok(());
    }
    check_host_by_parts(v)
}

/// The rules of [`check_host`] stated part by part (and the reason for a
/// refusal).
fn check_host_by_parts(v: &[u8]) -> Result<(), &'static str> {
    let (host, port) = if v.first() == Some(&b'[') {
        let close = memchr(b']', v).ok_or("invalid Host header: unclosed [")?;
        let literal = std::str::from_utf8(&v[1..close]).map_err(|_| "invalid Host header: not an IPv6 address")?;
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("invalid Host header: not an IPv6 address in brackets");
        }
        match &v[close + 1..] {
            [] => (&v[..0], None),
            [b':', port @ ..] => (&v[..0], Some(port)),
            _ => return Err("invalid Host header: bytes after ]"),
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    if let Some(port) = port {
        let digits = !port.is_empty() && port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
        if !digits || port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) > 65535 {
            return Err("invalid Host header: port is not a number up to 65535");
        }
    }
    if host.is_empty() {
        return if port.is_some() && v.first() != Some(&b'[') {
            Err("invalid Host header: no host before the port")
        } else {
            Ok(())
        };
    }
    check_host_name(host)
}

/// The name rules of [`check_host`].
fn check_host_name(host: &[u8]) -> Result<(), &'static str> {
    let name = host.strip_suffix(b".").unwrap_or(host);
    if name.len() > MAX_HOST_NAME_BYTES {
        return Err("invalid Host header: name longer than 253 bytes");
    }
    let mut last = &name[..0];
    for label in name.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err("invalid Host header: empty label (..)");
        }
        if label.len() > MAX_HOST_LABEL_BYTES {
            return Err("invalid Host header: label longer than 63 bytes");
        }
        if !label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("invalid Host header: character not allowed in a host name");
        }
        if label.starts_with(b"-") || label.ends_with(b"-") {
            return Err("invalid Host header: label starts or ends with -");
        }
        last = label;
    }
    let numeric = last.iter().all(u8::is_ascii_digit) || last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"0x"));
    if numeric && std::str::from_utf8(name).ok().and_then(|n| n.parse::<std::net::Ipv4Addr>().ok()).is_none() {
        return Err("invalid Host header: numeric name that is not a dotted-quad IPv4 address");
    }
    Ok(())
}

/// One pass over a Host value: `true` only for a name of letters, digits,
/// `-` and `_` in dot-separated labels (no trailing dot), or a dotted quad
/// without leading zeros, with an optional port, that [`check_host_by_parts`]
/// accepts too. `false` means "not settled here", not "invalid".
fn plainly_valid_host(v: &[u8]) -> bool {
    let mut label_len = 0usize;
    let mut label_digits = true;
    let mut label_value = 0u32;
    let mut labels = 0usize;
    let mut quad = true;
    let mut prev = b'.';
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        match HOST_BYTE[b as usize] {
            LABEL_DIGIT => {
                if label_digits {
                    // A leading zero (`010`) is an octal spelling: not settled here.
                    quad &= !(label_len > 0 && label_value == 0);
                    label_value = label_value * 10 + u32::from(b - b'0');
                }
            }
            LABEL_BYTE => label_digits = false,
            HYPHEN if label_len == 0 => return false,
            HYPHEN => label_digits = false,
            DOT | COLON => {
                if label_len == 0 || label_len > MAX_HOST_LABEL_BYTES || prev == b'-' {
                    return false;
                }
                labels += 1;
                quad &= label_digits && label_value <= 255 && labels <= 4;
                if b == b':' {
                    break;
                }
                label_len = 0;
                label_digits = true;
                label_value = 0;
                prev = b;
                i += 1;
                continue;
            }
            _ => return false,
        }
        // A long run of digits must not overflow the octet value.
        label_value = label_value.min(256);
        label_len += 1;
        prev = b;
        i += 1;
    }
    let name_len = i;
    if i == v.len() {
        if label_len == 0 || label_len > MAX_HOST_LABEL_BYTES || prev == b'-' {
            return false;
        }
        labels += 1;
        quad &= label_digits && label_value <= 255 && labels <= 4;
    }
    if name_len > MAX_HOST_NAME_BYTES {
        return false;
    }
    // The last label decides whether this is an address: all digits (or
    // `0x…`, never settled here) must make a whole dotted quad.
    let last = &v[v[..name_len].iter().rposition(|&b| b == b'.').map_or(0, |d| d + 1)..name_len];
    let numeric = last.iter().all(u8::is_ascii_digit) || last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"0x"));
    if numeric && !(quad && labels == 4) {
        return false;
    }
    match v.get(name_len..) {
        None | Some([]) => true,
        Some([b':', port @ ..]) => {
            !port.is_empty()
                && port.len() <= 5
                && port.iter().all(u8::is_ascii_digit)
                && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
        }
        Some(_) => false,
    }
}

/// Byte classes of [`plainly_valid_host`].
const LABEL_DIGIT: u8 = 1;
const LABEL_BYTE: u8 = 2;
const HYPHEN: u8 = 3;
const DOT: u8 = 4;
const COLON: u8 = 5;
const HOST_BYTE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b'0'..=b'9' => LABEL_DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => LABEL_BYTE,
            b'-' => HYPHEN,
            b'.' => DOT,
            b':' => COLON,
            _ => 0,
        };
        b += 1;
    }
    table
};

/// RFC 1035 §2.3.4 / RFC 1123 §2.1: a label, and a whole name without its
/// trailing dot.
const MAX_HOST_LABEL_BYTES: usize = 63;
const MAX_HOST_NAME_BYTES: usize = 253;

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
        ("TE chunked with a parameter", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", Expect::Status(400)),
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
        ("host empty", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Expect::Framing(Framing::Empty)),
        ("absolute form escaped host", b"GET http://a%2eb/ HTTP/1.1\r\nHost: b\r\n\r\n", Expect::Status(400)),
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
    fn the_one_pass_host_check_never_accepts_what_the_rules_refuse() {
        // Random values made of the pieces that matter to the rules.
        const PIECES: &[&[u8]] =
            &[b"0", b"1", b"01", b"255", b"256", b"a", b"Z", b"-", b"_", b".", b".", b":", b"80", b"0x1", b"[", b"]"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut value = Vec::new();
        let mut settled = 0;
        for _ in 0..300_000 {
            value.clear();
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            for k in 0..(seed >> 61) + 1 {
                value.extend_from_slice(PIECES[((seed >> (4 * k + 8)) & 15) as usize]);
            }
            if plainly_valid_host(&value) {
                settled += 1;
                assert_eq!(check_host_by_parts(&value), Ok(()), "{}", String::from_utf8_lossy(&value));
            }
        }
        assert!(settled > 10_000, "the sample reaches the one-pass check ({settled})");
    }

    #[test]
    fn host_values() {
        const GOOD: &[&str] = &[
            "a",
            "example.com",
            "Example.COM:8080",
            "example.com.",
            "example.com.:80",
            "under_score.example",
            "xn--bcher-kva.example",
            "10.0.0.1",
            "10.0.0.1:65535",
            "[::1]",
            "[::1]:8080",
            "[::ffff:10.0.0.1]",
            "1a.example",
            "",
        ];
        for host in GOOD {
            assert_eq!(check_host(host.as_bytes()), Ok(()), "{host}");
        }
        const BAD: &[(&str, &str)] = &[
            ("internal.example.com..", "empty label"),
            ("internal..example.com", "empty label"),
            (".example.com", "empty label"),
            ("internal%2eexample.com", "character"),
            ("a;b", "character"),
            ("a!b", "character"),
            ("a~b", "character"),
            ("a\\b", "character"),
            ("user@a", "character"),
            ("-a.example", "starts or ends"),
            ("a-.example", "starts or ends"),
            ("a:99999", "port"),
            ("a:123456", "port"),
            ("a:8x", "port"),
            ("a:", "port"),
            (":80", "no host"),
            ("[::1", "unclosed"),
            ("[::g]", "IPv6"),
            ("[v1.x]", "IPv6"),
            ("[fe80::1%25eth0]", "IPv6"),
            ("[]", "IPv6"),
            ("[::1]x", "after ]"),
            ("127.1", "IPv4"),
            ("0x7f.0.0.1", "IPv4"),
            ("1.2.3.0x4", "IPv4"),
            ("010.0.0.1", "IPv4"),
            ("1.2.3.4.5", "IPv4"),
        ];
        for &(host, why) in BAD {
            let err = check_host(host.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{host}: {err}");
        }
        // The one-pass check settles only what the rules accept.
        for host in GOOD.iter().copied().chain(BAD.iter().map(|(h, _)| *h)) {
            if plainly_valid_host(host.as_bytes()) {
                assert_eq!(check_host_by_parts(host.as_bytes()), Ok(()), "{host}");
            }
        }
        for host in ["example.com", "10.0.0.1:8080", "a-b.c_d.example:1", "0.0.0.0", "255.255.255.255:65535"] {
            assert!(plainly_valid_host(host.as_bytes()), "{host} takes the one-pass check");
        }
        let long_label = "a".repeat(64);
        assert!(check_host(long_label.as_bytes()).unwrap_err().contains("63"));
        let long_name = vec!["a".repeat(63); 4].join(".");
        assert!(check_host(long_name.as_bytes()).unwrap_err().contains("253"));
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
}
