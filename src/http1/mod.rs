//! HTTP/1.1 (RFC 9112) for both sides of the proxy.
//!
//! - `parse.rs`: sans-io head parsing (httparse over the connection buffer;
//!   headers are kept as spans into that buffer, never copied) and the
//!   strict framing rules that keep requests from being smuggled.
//! - `body.rs`: sans-io body framing state machines (length, chunked).
//! - `forwarded.rs`: sans-io reading and writing of X-Forwarded-For and
//!   Forwarded (RFC 7239) values.
//! - `encode.rs`: writing heads (upstream request, downstream response,
//!   error and direct responses) into a reused output buffer.
//!
//! The codec only: no sockets, no shard state. The connection loop that
//! drives it is `downstream/conn.rs`.

pub mod body;
pub mod encode;
pub mod forwarded;
pub mod framing;
pub mod head;
pub mod parse;
pub mod response;

/// A byte range in a connection buffer. Heads are parsed in place; every
/// header name and value is a `Span` into the buffer that was parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The span of `part`, a sub-slice of `base` (as httparse hands out).
    #[inline]
    fn within(base: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span { start: start as u32, end: (start + part.len()) as u32 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}
