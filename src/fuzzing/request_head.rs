//! Fuzz target: request head parsing (`http1::parse::parse_request`) and
//! the upstream head the proxy writes from it (`http1::encode`).
//!
//! Properties, for any bytes:
//! 1. No panic; an accepted head lies inside the input, within
//!    `max_head_bytes`, and its target is origin-form, absolute-form or
//!    `*` (OPTIONS).
//! 2. The head ends where the parser says: the same bytes cut right after
//!    the head parse to the same head, and cut one byte earlier they are
//!    not a complete head.
//! 3. Framing follows the fields: `Chunked` only with a Transfer-Encoding
//!    field and no Content-Length, `Length(n)` only when every
//!    Content-Length says `n`.
//! 4. Re-encoding: when the path normalises (else the request is a 400
//!    and nothing is sent), the upstream head written for it, with the
//!    client's forwarding chain kept or replaced, parses again with the
//!    same method, the normalised path and query, the same Host, the same
//!    framing and the same end-to-end fields in the same order, as a
//!    single head with nothing left over.

use super::{end_to_end_fields, show};
use crate::config::{AssertedHeaders, PathRules};
use crate::http1::encode::{upstream_request_head, ClientHop, ForwardInfo};
use crate::http1::head::parse_content_length;
use crate::http1::head::HeaderKind;
use crate::http1::parse::{origin_form, parse_request, Framing, HeadLimits, Method, RequestHead};
use crate::http1::Version;
use crate::pipeline::path::normalise;

/// The listener defaults (`configs/quickstart.toml`): what a fuzzed head meets.
pub const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 16 * 1024, max_headers: 100, max_uri_bytes: 8 * 1024 };

/// For the re-encoded head: it grows by the proxy's own fields.
const UPSTREAM_LIMITS: HeadLimits =
    HeadLimits { max_head_bytes: 64 * 1024, max_headers: 512, max_uri_bytes: 16 * 1024 };

pub fn request_head(data: &[u8]) {
    let mut head = RequestHead::default();
    let Ok(true) = parse_request(data, &LIMITS, &mut head) else { return };
    let n = head.head_len;
    assert!(n <= data.len() && n <= LIMITS.max_head_bytes, "head_len {n} of {}", data.len());
    for h in &head.headers {
        assert!(h.name.end as usize <= n && h.value.end as usize <= n, "a header span past the head");
    }
    let target = head.target.of(data);
    assert!(
        target.starts_with(b"/")
            || target.len() > 7 && target[..7].eq_ignore_ascii_case(b"http://")
            || target.len() > 8 && target[..8].eq_ignore_ascii_case(b"https://")
            || target == b"*" && head.method == Method::Options,
        "accepted target {:?}",
        show(target)
    );

    // 2: the head ends at head_len, whatever follows it.
    let mut again = RequestHead::default();
    let cut = parse_request(&data[..n], &LIMITS, &mut again);
    assert!(matches!(cut, Ok(true)), "the head alone is not accepted: {cut:?}");
    assert_eq!(summary(&head, data), summary(&again, &data[..n]), "bytes after the head changed it");
    let short = parse_request(&data[..n - 1], &LIMITS, &mut again);
    assert!(!matches!(short, Ok(true)), "complete one byte before head_len");

    // 3: framing follows the fields.
    let lengths: Vec<Option<u64>> = head
        .headers
        .iter()
        .filter(|h| h.kind == HeaderKind::ContentLength)
        .map(|h| parse_content_length(h.value.of(data)))
        .collect();
    let has_te = head.headers.iter().any(|h| h.kind == HeaderKind::TransferEncoding);
    match head.framing {
        Framing::Chunked => {
            assert!(has_te && lengths.is_empty(), "chunked without TE, or with Content-Length");
            assert_eq!(head.version, Version::Http11, "chunked in HTTP/1.0");
        }
        Framing::Length(len) => {
            assert!(!has_te && !lengths.is_empty() && lengths.iter().all(|&l| l == Some(len)), "Length({len})");
        }
        Framing::Empty => assert!(!has_te && lengths.iter().all(|&l| l == Some(0)), "Empty with a body field"),
        Framing::UntilClose => panic!("a request framed until close"),
    }

    // 4: the upstream head.
    let mut path = Vec::new();
    let Ok(query) = normalise(origin_form(target), &PathRules::default(), &mut path) else { return };
    for keep_chain in [false, true] {
        reencode(data, &head, &path, query, keep_chain);
    }
}

/// What a head says, independent of where it sits in the buffer.
fn summary(head: &RequestHead, buf: &[u8]) -> String {
    let fields: Vec<String> =
        head.headers.iter().map(|h| format!("{}={}", show(h.name.of(buf)), show(h.value.of(buf)))).collect();
    format!(
        "{:?} {} {:?} {:?} {:?} host={:?} {:?} continue={} {fields:?}",
        head.method,
        show(head.target.of(buf)),
        head.version,
        head.head_len,
        head.framing,
        head.host.map(|h| show(h.of(buf))),
        head.connection,
        head.expect_continue
    )
}

const CERT_HEADER: &[u8] = b"x-client-cert";
const FALLBACK_HOST: &[u8] = b"backend.internal:9000";

fn reencode(data: &[u8], head: &RequestHead, path: &[u8], query: Option<&[u8]>, keep_chain: bool) {
    let asserted = AssertedHeaders::from_names(&["x-client-cert"]);
    let info = ForwardInfo {
        client: ClientHop {
            client: b"203.0.113.7",
            peer: b"10.0.0.9",
            peer_node: b"10.0.0.9",
            keep_chain,
            trusted: keep_chain,
        },
        proto: "https",
        request_id: b"fuzz-1",
        path,
        query,
        consumer: None,
        asserted: &asserted,
        client_cert: Some((CERT_HEADER, Some(b"subject=\"CN=fuzz\""))),
        fallback_host: Some(FALLBACK_HOST),
        // Both listener settings, one per encoding.
        underscores_in_headers: keep_chain,
        trace: None,
    };
    let mut out = Vec::new();
    upstream_request_head(&mut out, data, head, &info);
    let mut up = RequestHead::default();
    let parsed = parse_request(&out, &UPSTREAM_LIMITS, &mut up);
    let context = || format!("input {:?}\nupstream head {:?}", show(&data[..head.head_len]), show(&out));
    assert!(matches!(parsed, Ok(true)), "the upstream head does not parse: {parsed:?}\n{}", context());
    assert_eq!(up.head_len, out.len(), "the upstream head is not one head\n{}", context());
    assert_eq!(up.method_span.of(&out), head.method_span.of(data), "method\n{}", context());
    let mut want_target = path.to_vec();
    if let Some(q) = query {
        want_target.push(b'?');
        want_target.extend_from_slice(q);
    }
    assert_eq!(show(up.target.of(&out)), show(&want_target), "target\n{}", context());
    assert_eq!(up.version, Version::Http11, "{}", context());
    let want_host = head.host.map(|h| h.of(data)).unwrap_or(FALLBACK_HOST);
    assert_eq!(up.host.map(|h| show(h.of(&out))), Some(show(want_host)), "Host\n{}", context());
    assert_eq!(up.framing, head.framing, "framing\n{}", context());
    assert!(up.wants_keep_alive(), "the upstream head closes\n{}", context());
    let mut want = end_to_end_fields(&head.headers, data);
    want.retain(|(name, _)| name != CERT_HEADER);
    if !info.underscores_in_headers {
        // Dropped: `X_Real_IP` is `X-Real-IP` to CGI-style servers.
        want.retain(|(name, _)| !name.contains(&b'_'));
    }
    let mut got = end_to_end_fields(&up.headers, &out);
    got.retain(|(name, _)| name != CERT_HEADER);
    assert_eq!(got, want, "end-to-end fields\n{}", context());
    let certs: Vec<_> = up.headers.iter().filter(|h| h.name.of(&out).eq_ignore_ascii_case(CERT_HEADER)).collect();
    assert_eq!(certs.len(), 1, "the asserted identity is not the proxy's alone\n{}", context());
}
