//! Sans-io parsing of upstream response heads.
//!
//! Where it sits: `upstream/forward.rs` parses every upstream response
//! with [`parse_response`]. An upstream whose framing is ambiguous
//! (Content-Length with Transfer-Encoding, differing lengths, a final
//! coding other than chunked) or whose status code is not three digits in
//! 100-599 is answered 502 and its connection dropped.

use std::mem::MaybeUninit;

use super::head::{
    parse_content_length, read_connection, reject_bare_line_breaks, transfer_coding, trim, ConnectionOptions, Framing,
    Header, HeaderKind, Method, MAX_HEADER_SLOTS,
};
use super::{Span, Version};
use crate::error::{Error, ErrorKind};

fn bad_upstream(cause: &'static str) -> Error {
    Error::new(ErrorKind::UpstreamBadResponse, cause)
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
            headers: Vec::with_capacity(16),
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
    let head_len =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut slots) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if buf.len() >= max_head_bytes {
                    return Err(bad_upstream("response head too large"));
                }
                return Ok(false);
            }
            // httparse takes exactly three digits, so a shorter or longer
            // status code ends here.
            Err(httparse::Error::Status) => return Err(bad_upstream("malformed status code in response")),
            Err(_) => return Err(bad_upstream("malformed response head")),
        };
    if head_len > max_head_bytes {
        return Err(bad_upstream("response head too large"));
    }
    reject_bare_line_breaks(&buf[..head_len]).map_err(bad_upstream)?;
    // RFC 9110 §15: a status code is 100-599. httparse takes any three
    // digits; a code below 100 would count as bodiless (below 200) and leave
    // its body to be read as the next response, so anything outside the
    // range is refused like any other malformed head.
    let status = resp.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        return Err(bad_upstream("malformed status code in response (outside 100-599)"));
    }
    head.status = status;
    head.reason = reason_span(&buf[..head_len]);
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
                chunked = transfer_coding(value, chunked)
                    .map_err(|_| bad_upstream("unsupported transfer coding in response"))?;
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

/// The reason phrase's bytes, as sent. Not httparse's `reason`: that is
/// a `&str`, and for a missing or non-UTF-8 (obs-text) phrase it is a
/// static `""` outside the buffer, which has no span. httparse accepted
/// the status line as `HTTP/1.x SP 3DIGIT [SP reason] CRLF`, so the
/// phrase starts at byte 13 (when the line is that long) and ends at
/// the line's CR.
fn reason_span(head: &[u8]) -> Span {
    const REASON_AT: usize = b"HTTP/1.1 200 ".len();
    let cr = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
    let start = REASON_AT.min(cr);
    Span { start: start as u32, end: cr as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, input, request method, framing or a fragment of the refusal's cause)
    type ResponseCase = (&'static str, &'static [u8], Method, Result<Framing, &'static str>);
    const RESPONSES: &[ResponseCase] = &[
        ("length", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::Get, Ok(Framing::Length(3))),
        ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Method::Get, Ok(Framing::Chunked)),
        ("until close", b"HTTP/1.1 200 OK\r\n\r\n", Method::Get, Ok(Framing::UntilClose)),
        ("head", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::Head, Ok(Framing::Empty)),
        ("204", b"HTTP/1.1 204 No Content\r\n\r\n", Method::Get, Ok(Framing::Empty)),
        ("304", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", Method::Get, Ok(Framing::Empty)),
        (
            "CL+TE",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::Get,
            Err("both Content-Length and Transfer-Encoding"),
        ),
        (
            "two CL",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            Method::Get,
            Err("differing Content-Length"),
        ),
        ("bad CL", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", Method::Get, Err("invalid Content-Length")),
        ("garbage", b"HTTP/9 OK\r\n\r\n", Method::Get, Err("malformed response head")),
        // Status codes: three digits, 100-599 (RFC 9110 §15).
        ("status 000", b"HTTP/1.1 000 Weird\r\nContent-Length: 5\r\n\r\n", Method::Get, Err("outside 100-599")),
        ("status 099", b"HTTP/1.1 099 Weird\r\nContent-Length: 5\r\n\r\n", Method::Get, Err("outside 100-599")),
        ("status 100", b"HTTP/1.1 100 Continue\r\n\r\n", Method::Get, Ok(Framing::Empty)),
        ("status 599", b"HTTP/1.1 599 Odd\r\nContent-Length: 5\r\n\r\n", Method::Get, Ok(Framing::Length(5))),
        ("status 600", b"HTTP/1.1 600 Weird\r\nContent-Length: 5\r\n\r\n", Method::Get, Err("outside 100-599")),
        ("status 999", b"HTTP/1.1 999 Weird\r\nContent-Length: 5\r\n\r\n", Method::Get, Err("outside 100-599")),
        ("status 2 digits", b"HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\n", Method::Get, Err("malformed status code")),
        (
            "status 4 digits",
            b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\n",
            Method::Get,
            Err("malformed status code"),
        ),
        ("status 1 digit", b"HTTP/1.1 0 Weird\r\n\r\n", Method::Get, Err("malformed status code")),
        ("status sign", b"HTTP/1.1 +200 OK\r\n\r\n", Method::Get, Err("malformed status code")),
        ("status letters", b"HTTP/1.1 2OO OK\r\n\r\n", Method::Get, Err("malformed status code")),
        ("status missing", b"HTTP/1.1 \r\n\r\n", Method::Get, Err("malformed status code")),
    ];

    #[test]
    fn response_table() {
        for (name, input, method, expect) in RESPONSES {
            let mut head = ResponseHead::default();
            let got = parse_response(input, 4096, *method, &mut head).map(|done| {
                assert!(done, "{name}");
                head.framing
            });
            match (got, expect) {
                (Ok(framing), Ok(want)) => assert_eq!(framing, *want, "case {name}"),
                (Err(e), Err(fragment)) => {
                    assert_eq!(e.kind, ErrorKind::UpstreamBadResponse, "case {name}");
                    assert!(e.cause.contains(fragment), "case {name}: cause {:?}, want {fragment:?}", e.cause);
                }
                (got, want) => panic!("case {name}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// A status line without a reason phrase, or with one that is not
    /// UTF-8 (obs-text), keeps its reason bytes as sent, and the head can
    /// be written downstream (found by fuzzing: the reason's span was
    /// computed from a string that is not in the buffer, and writing the
    /// head panicked).
    #[test]
    fn reason_phrases_missing_or_not_utf8_are_kept_as_sent() {
        const CASES: &[(&[u8], &[u8])] = &[
            (b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", b""),
            (b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", b""),
            (b"HTTP/1.1 200 Caf\xe9\r\nContent-Length: 0\r\n\r\n", b"Caf\xe9"),
            (b"HTTP/1.1 200 OK then\r\nContent-Length: 0\r\n\r\n", b"OK then"),
        ];
        for &(input, reason) in CASES {
            let mut head = ResponseHead::default();
            assert!(parse_response(input, 4096, Method::Get, &mut head).unwrap());
            assert_eq!(head.reason.of(input), reason, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn response_reuse() {
        let mut head = ResponseHead::default();
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4096, Method::Get, &mut head).unwrap();
        assert!(head.allows_reuse());
        parse_response(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            4096,
            Method::Get,
            &mut head,
        )
        .unwrap();
        assert!(!head.allows_reuse());
        parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 4096, Method::Get, &mut head).unwrap();
        assert!(!head.allows_reuse());
    }

    #[test]
    fn a_response_head_over_the_limit_is_refused_complete_or_not() {
        let big = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "v".repeat(200));
        let mut head = ResponseHead::default();
        let e = parse_response(big.as_bytes(), 128, Method::Get, &mut head).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamBadResponse);
        let partial = format!("HTTP/1.1 200 OK\r\nX-Big: {}", "v".repeat(200));
        let e = parse_response(partial.as_bytes(), 128, Method::Get, &mut head).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamBadResponse);
        assert!(parse_response(big.as_bytes(), 4096, Method::Get, &mut head).unwrap());
    }
}
