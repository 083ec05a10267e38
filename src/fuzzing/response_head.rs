//! Fuzz target: upstream response head parsing
//! (`http1::response::parse_response`) and the downstream head the proxy
//! writes from it (`http1::encode::downstream_response_head`).
//!
//! Input: the first byte picks the request method (bit 0: HEAD, else GET)
//! and the client's version (bit 1: HTTP/1.0); the rest is the response.
//!
//! Properties:
//! 1. No panic; an accepted head lies inside the input and its status is
//!    100-599. HEAD, 1xx, 204 and 304 have no body.
//! 2. The head ends where the parser says (as for requests).
//! 3. Re-encoding: the downstream head, framed as `http1::framing`
//!    decides for this client, parses again with the same status and
//!    reason, the framing that mode promises, the same end-to-end fields
//!    in order, and `connection: close` exactly when asked to close.

use super::{end_to_end_fields, show};
use crate::http1::encode::{downstream_response_head, DownstreamFraming, DownstreamHead};
use crate::http1::framing::downstream_framing;
use crate::http1::head::HeaderKind;
use crate::http1::parse::{Framing, Method};
use crate::http1::response::{parse_response, ResponseHead};
use crate::http1::Version;

/// The upstream response head limit the proxy uses by default.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

pub fn response_head(data: &[u8]) {
    let Some((&selector, buf)) = data.split_first() else { return };
    let method = if selector & 1 == 1 { Method::Head } else { Method::Get };
    let client = if selector & 2 == 2 { Version::Http10 } else { Version::Http11 };
    let mut head = ResponseHead::default();
    let Ok(true) = parse_response(buf, MAX_HEAD_BYTES, method, &mut head) else { return };
    let n = head.head_len;
    assert!(n <= buf.len() && n <= MAX_HEAD_BYTES, "head_len {n} of {}", buf.len());
    assert!((100..=599).contains(&head.status), "status {}", head.status);
    if method == Method::Head || head.status < 200 || head.status == 204 || head.status == 304 {
        assert_eq!(head.framing, Framing::Empty, "a bodiless response with a body");
    }
    assert!(head.framing != Framing::Length(0), "Length(0) is Empty");

    let mut again = ResponseHead::default();
    assert!(matches!(parse_response(&buf[..n], MAX_HEAD_BYTES, method, &mut again), Ok(true)), "head alone");
    assert_eq!(summary(&head, buf), summary(&again, &buf[..n]), "bytes after the head changed it");
    assert!(!matches!(parse_response(&buf[..n - 1], MAX_HEAD_BYTES, method, &mut again), Ok(true)), "early");

    for close in [false, true] {
        reencode(buf, &head, method, client, close);
    }
}

fn summary(head: &ResponseHead, buf: &[u8]) -> String {
    let fields: Vec<String> =
        head.headers.iter().map(|h| format!("{}={}", show(h.name.of(buf)), show(h.value.of(buf)))).collect();
    format!(
        "{} {} {:?} {} {:?} {:?} {fields:?}",
        head.status,
        show(head.reason.of(buf)),
        head.version,
        head.head_len,
        head.framing,
        head.connection
    )
}

fn reencode(buf: &[u8], head: &ResponseHead, method: Method, client: Version, close: bool) {
    let framing = downstream_framing(head.framing, client);
    let how = DownstreamHead { framing, close, client_version: client, request_id: b"fuzz-1", hsts: None };
    let mut out = Vec::new();
    downstream_response_head(&mut out, buf, head, &how);
    let mut down = ResponseHead::default();
    let parsed = parse_response(&out, 4 * MAX_HEAD_BYTES, method, &mut down);
    let context = || format!("input {:?}\ndownstream head {:?}", show(&buf[..head.head_len]), show(&out));
    assert!(matches!(parsed, Ok(true)), "the downstream head does not parse: {parsed:?}\n{}", context());
    assert_eq!(down.head_len, out.len(), "the downstream head is not one head\n{}", context());
    assert_eq!(down.status, head.status, "status\n{}", context());
    assert_eq!(down.reason.of(&out), head.reason.of(buf), "reason\n{}", context());
    let want = match framing {
        DownstreamFraming::Empty => Framing::Empty,
        DownstreamFraming::Length(n) => Framing::Length(n),
        DownstreamFraming::ChunkedPassthrough | DownstreamFraming::ChunkEncode => Framing::Chunked,
        DownstreamFraming::UntilClose { .. } => Framing::UntilClose,
    };
    assert_eq!(down.framing, want, "framing\n{}", context());
    assert_eq!(down.connection.close, close, "connection: close\n{}", context());
    // A field named like a connection option the proxy itself sends
    // (`close`, `keep-alive`) is hop-by-hop to the next hop once that
    // option is sent (RFC 9110 §7.6.1), so it is left out on both sides.
    let kept = |(name, _): &(Vec<u8>, Vec<u8>)| !matches!(name.as_slice(), b"x-request-id" | b"close" | b"keep-alive");
    let mut want_fields = end_to_end_fields(&head.headers, buf);
    want_fields.retain(kept);
    let mut got = end_to_end_fields(&down.headers, &out);
    got.retain(kept);
    assert_eq!(got, want_fields, "end-to-end fields\n{}", context());
    let ids = down.headers.iter().filter(|h| h.kind == HeaderKind::XRequestId).count();
    assert_eq!(ids, 1, "x-request-id is not the proxy's alone\n{}", context());
}
