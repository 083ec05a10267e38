//! Fuzz target bodies: one plain function per parser, taking arbitrary
//! bytes and panicking when a property of that parser is violated.
//!
//! Where it sits: outside the request path. `fuzz/` (a cargo-fuzz crate of
//! its own) runs each function under libFuzzer (`scripts/fuzz.sh`), and
//! `tests/fuzz_corpus.rs` replays every committed corpus and regression
//! file through the same functions with plain `cargo test` — that replay
//! is what CI runs. `docs/fuzzing.md` says how to run, reduce and commit.
//!
//! Each target checks properties, not only "no panic": a request or
//! response the parser accepts re-encodes (with `http1::encode`) to bytes
//! that parse to the same message; the chunked decoder agrees with a
//! reference decoder; normalisation is idempotent and leaves no dot
//! segment; the config loader answers with a config or with errors that
//! name a field or line; forwarding headers agree with a reference
//! RFC 7239 reader and the proxy's own appended hop always reads back.
//! A panic here is a finding: reduce it, commit it under
//! `fuzz/regressions/TARGET/`, fix the parser.

pub mod chunked;
pub mod config_loader;
pub mod forwarding;
pub mod path_route;
pub mod request_head;
pub mod response_head;

/// A target body: panics when a property is violated.
pub type Target = fn(&[u8]);

/// Every target by the name its corpus directory and cargo-fuzz binary use.
pub const TARGETS: &[(&str, Target)] = &[
    ("request_head", request_head::request_head),
    ("chunked", chunked::chunked),
    ("response_head", response_head::response_head),
    ("path_route", path_route::path_route),
    ("config_loader", config_loader::config_loader),
    ("forwarding", forwarding::forwarding),
];

/// The end-to-end header fields of a parsed head (kind `Other`, or the
/// trace context fields, which pass as they are while tracing is off; not
/// named in `Connection`), as (lowercase name, value) pairs in order: what a
/// re-encoded head must carry unchanged.
pub(crate) fn end_to_end_fields(headers: &[crate::http1::head::Header], buf: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    use crate::http1::head::HeaderKind;
    let listed: Vec<Vec<u8>> = headers
        .iter()
        .filter(|h| h.kind == HeaderKind::Connection)
        .flat_map(|h| h.value.of(buf).split(|&b| b == b','))
        .map(|t| t.trim_ascii().to_ascii_lowercase())
        .collect();
    headers
        .iter()
        .filter(|h| matches!(h.kind, HeaderKind::Other | HeaderKind::Traceparent | HeaderKind::Tracestate))
        .map(|h| (h.name.of(buf).to_ascii_lowercase(), h.value.of(buf).to_vec()))
        .filter(|(name, _)| !listed.contains(name))
        .collect()
}

/// Text of bytes for assertion messages.
pub(crate) fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
