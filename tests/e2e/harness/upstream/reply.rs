//! What the test upstream answers: well-formed responses, and every way a
//! real upstream misbehaves (late, cut short, reset, silent, malformed,
//! followed by bytes nobody asked for).
//!
//! A handler returns one [`Reply`] per request; `conn.rs` writes it. Most
//! replies are first rendered to their exact wire bytes ([`Reply::wire`]),
//! so a fault can be placed at a byte offset of any of them
//! ([`Reply::cut`]).

use std::time::Duration;

use super::super::pattern;

/// What the upstream does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A response framed by Content-Length (no body bytes on HEAD).
    Fixed { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// `Transfer-Encoding: chunked`, one chunk per element.
    Chunked { status: u16, chunks: Vec<Vec<u8>> },
    /// No Content-Length, no Transfer-Encoding: the body ends when the
    /// upstream closes the connection.
    CloseDelimited { status: u16, body: Vec<u8> },
    /// 200 with Content-Length `len` and `len` bytes of the
    /// [`pattern`] stream, written piece by piece.
    Pattern { len: u64 },
    /// These exact bytes; the connection stays open for the next request.
    Raw(Vec<u8>),
    /// These exact bytes, then close.
    RawThenClose(Vec<u8>),
    /// Close the connection without answering (FIN).
    Close,
    /// Reset the connection without answering (RST: `SO_LINGER` 0, then
    /// close), as a crashed or killed process's kernel does.
    Reset,
    /// Never answer: hold the connection open, without reading, until the
    /// peer closes it (or 30 s pass).
    Silence,
    /// Wait, then reply.
    After(Duration, Box<Reply>),
    /// The reply's head at once, the rest of its bytes after `delay`.
    BodyAfter(Duration, Box<Reply>),
    /// The first `bytes` bytes of the reply's wire form, then `then`: an
    /// upstream killed (or hung) mid-response.
    Cut { reply: Box<Reply>, bytes: usize, then: AfterCut },
    /// The reply, then `stray` bytes in the same write: bytes after the
    /// end of a response that no request asked for. The connection stays
    /// open.
    ThenStray(Box<Reply>, Vec<u8>),
    /// `first`, then after `delay` (a later TCP segment) `later`; the
    /// connection stays open. Stray bytes after a response end.
    RawThenLater { first: Vec<u8>, delay: Duration, later: Vec<u8> },
}

/// What a [`Reply::Cut`] does once its bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCut {
    /// Close the connection (FIN): the body is short of its framing.
    Close,
    /// Reset the connection (RST), 100 ms after the bytes were written:
    /// a reset may discard bytes the peer has not read yet, and the point
    /// of a cut is the bytes that did go out.
    Reset,
    /// Keep the connection open and silent until the peer closes it.
    Hang,
}

/// A reply's exact bytes and whether the connection closes after them.
pub(super) struct Wire {
    pub bytes: Vec<u8>,
    pub close: bool,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Fixed { status, headers: Vec::new(), body: body.into() }
    }

    /// Adds a header to a `Fixed` reply.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Fixed { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    pub fn chunked(chunks: &[&[u8]]) -> Reply {
        Reply::Chunked { status: 200, chunks: chunks.iter().map(|c| c.to_vec()).collect() }
    }

    pub fn close_delimited(body: impl Into<Vec<u8>>) -> Reply {
        Reply::CloseDelimited { status: 200, body: body.into() }
    }

    pub fn pattern(len: u64) -> Reply {
        Reply::Pattern { len }
    }

    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply::Raw(bytes.into())
    }

    pub fn after(delay: Duration, reply: Reply) -> Reply {
        Reply::After(delay, Box::new(reply))
    }

    /// The head of `self` now, its body after `delay`.
    pub fn body_after(self, delay: Duration) -> Reply {
        Reply::BodyAfter(delay, Box::new(self))
    }

    /// The first `bytes` bytes of `self` on the wire, then `then`.
    pub fn cut(self, bytes: usize, then: AfterCut) -> Reply {
        Reply::Cut { reply: Box::new(self), bytes, then }
    }

    /// `self`'s head and the first `body_bytes` bytes of its body, then
    /// `then`.
    pub fn cut_in_body(self, body_bytes: usize, then: AfterCut) -> Reply {
        let head = self.head_len();
        self.cut(head + body_bytes, then)
    }

    /// `self`, then `stray` in the same write.
    pub fn then_stray(self, stray: &[u8]) -> Reply {
        Reply::ThenStray(Box::new(self), stray.to_vec())
    }

    /// The length of this reply's head on the wire (through CRLFCRLF).
    pub fn head_len(&self) -> usize {
        let wire = self.wire(false, 64 * 1024).expect("a reply with wire bytes");
        super::find(&wire.bytes, b"\r\n\r\n").expect("a reply with a head") + 4
    }

    /// The exact bytes of this reply (at most `limit` of them for an
    /// endless `Pattern`), or `None` for replies that are actions rather
    /// than bytes (`Close`, `Reset`, `Silence`, `After`, ...).
    pub(super) fn wire(&self, head_only: bool, limit: usize) -> Option<Wire> {
        let keep_open = |bytes| Some(Wire { bytes, close: false });
        match self {
            Reply::Fixed { status, headers, body } => {
                let mut out = status_line(*status);
                for (name, value) in headers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                if !head_only {
                    out.extend_from_slice(body);
                }
                keep_open(out)
            }
            Reply::Chunked { status, chunks } => {
                let mut out = status_line(*status);
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                keep_open(out)
            }
            Reply::CloseDelimited { status, body } => {
                let mut out = status_line(*status);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(body);
                Some(Wire { bytes: out, close: true })
            }
            Reply::Pattern { len } => {
                let mut out = status_line(200);
                out.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
                if !head_only {
                    let body = (*len).min(limit.saturating_sub(out.len()) as u64);
                    pattern::for_each_piece(body, |piece| out.extend_from_slice(piece));
                }
                keep_open(out)
            }
            Reply::Raw(bytes) => keep_open(bytes.clone()),
            Reply::RawThenClose(bytes) => Some(Wire { bytes: bytes.clone(), close: true }),
            Reply::ThenStray(reply, stray) => {
                let mut wire = reply.wire(head_only, limit)?;
                wire.bytes.extend_from_slice(stray);
                Some(wire)
            }
            Reply::Close
            | Reply::Reset
            | Reply::Silence
            | Reply::After(..)
            | Reply::BodyAfter(..)
            | Reply::Cut { .. }
            | Reply::RawThenLater { .. } => None,
        }
    }
}

fn status_line(status: u16) -> Vec<u8> {
    let reason = match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        404 => "Not Found",
        408 => "Request Timeout",
        418 => "I'm a teapot",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    format!("HTTP/1.1 {status} {reason}\r\n").into_bytes()
}
