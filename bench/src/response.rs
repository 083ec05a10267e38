//! Response framing, sans-io: bytes in, "need more" or "done" out.
//!
//! The load generator must know where each response ends to reuse the
//! connection, and it is pointed at a proxy under test, so it is strict: a
//! response whose length is ambiguous is a protocol error, not a guess.
//! Bodies are counted, never stored.

use std::fmt;

/// Largest response head accepted. Past this the server is broken or
/// hostile; buffering more would only hide it.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields parsed in one response head.
pub const MAX_HEADERS: usize = 100;
/// Longest chunk extension (`;name=value` after a chunk size) accepted.
pub const MAX_CHUNK_EXT_BYTES: usize = 4 * 1024;
/// Most bytes of trailer section accepted after the last chunk.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The connection closed before any byte of the response: on a reused
    /// keep-alive connection this is usually the server's idle close, an I/O
    /// event rather than a malformed message.
    ClosedBeforeResponse,
    HeadTooLarge,
    BadHead(httparse::Error),
    BadContentLength,
    /// Both Content-Length and Transfer-Encoding: RFC 9112 §6.1 forbids a
    /// server to send this; it is the shape of response smuggling.
    LengthAndTransferEncoding,
    /// 101 Switching Protocols: the request never asked to upgrade.
    UnexpectedUpgrade,
    BadChunk(&'static str),
    ChunkExtTooLong,
    TrailerTooLarge,
    /// The connection closed in the middle of a response.
    Truncated,
    /// Bytes arrived after a complete response although no second request
    /// was sent (this client never pipelines).
    TrailingBytes,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::ClosedBeforeResponse => write!(f, "connection closed before response"),
            FrameError::HeadTooLarge => write!(f, "response head over {MAX_HEAD_BYTES} bytes"),
            FrameError::BadHead(e) => write!(f, "malformed response head: {e}"),
            FrameError::BadContentLength => write!(f, "invalid or conflicting Content-Length"),
            FrameError::LengthAndTransferEncoding => {
                write!(f, "both Content-Length and Transfer-Encoding")
            }
            FrameError::UnexpectedUpgrade => write!(f, "unexpected 101 Switching Protocols"),
            FrameError::BadChunk(why) => write!(f, "malformed chunked body: {why}"),
            FrameError::ChunkExtTooLong => {
                write!(f, "chunk extension over {MAX_CHUNK_EXT_BYTES} bytes")
            }
            FrameError::TrailerTooLarge => write!(f, "trailer over {MAX_TRAILER_BYTES} bytes"),
            FrameError::Truncated => write!(f, "connection closed mid-response"),
            FrameError::TrailingBytes => write!(f, "unsolicited bytes after the response"),
        }
    }
}

/// How the end of the body is found (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HEAD responses, 1xx, 204 and 304: no body whatever the headers say.
    Empty,
    Length(u64),
    Chunked,
    /// Neither length nor chunked: the body ends when the server closes.
    UntilClose,
}

/// What a response head told us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub keep_alive: bool,
    pub framing: Framing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    NeedMore,
    /// `consumed` is how many bytes of the last input belonged to this
    /// response; anything after it is not ours.
    Done {
        status: u16,
        keep_alive: bool,
        consumed: usize,
    },
}

/// Chunked decoding states, after RFC 9112 §7.1:
///
/// ```text
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk     = 1*("0") [ chunk-ext ] CRLF
/// trailer-section = *( field-line CRLF )
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    Size { value: u64, digits: u8 },
    Ext { len: usize, value: u64 },
    SizeLf { value: u64 },
    Data { remaining: u64 },
    DataCr,
    DataLf,
    TrailerLineStart { total: usize },
    TrailerLine { total: usize },
    TrailerLf { total: usize },
    EndLf,
}

/// Body decoding state; a response is done when this reaches `Done`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Body { status: u16, keep_alive: bool, body: Body },
}

/// Reads one response at a time; `reset` before each request. Keeps its
/// head buffer between responses so the steady state does not allocate.
pub struct ResponseReader {
    state: State,
    head_buf: Vec<u8>,
    head_request: bool,
    received_any: bool,
}

impl ResponseReader {
    pub fn new(head_request: bool) -> Self {
        ResponseReader { state: State::Head, head_buf: Vec::new(), head_request, received_any: false }
    }

    pub fn reset(&mut self) {
        self.state = State::Head;
        self.head_buf.clear();
        self.received_any = false;
    }

    /// Feed bytes just read. Returns `Done` once the response is complete;
    /// until then every byte given is consumed.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, FrameError> {
        self.received_any |= !input.is_empty();
        let mut pos = 0;
        loop {
            match &mut self.state {
                State::Head => {
                    let Some((head, used)) = self.parse_head(&input[pos..])? else {
                        return Ok(Progress::NeedMore);
                    };
                    pos += used;
                    // An interim 1xx is followed by the real response
                    // (RFC 9110 §15.2); keep reading heads.
                    if (100..200).contains(&head.status) {
                        if head.status == 101 {
                            return Err(FrameError::UnexpectedUpgrade);
                        }
                        continue;
                    }
                    let body = match head.framing {
                        Framing::Empty | Framing::Length(0) => Body::Done,
                        Framing::Length(n) => Body::Length(n),
                        Framing::Chunked => Body::Chunked(Chunked::Size { value: 0, digits: 0 }),
                        Framing::UntilClose => Body::UntilClose,
                    };
                    self.state = State::Body { status: head.status, keep_alive: head.keep_alive, body };
                }
                State::Body { status, keep_alive, body } => {
                    pos += feed_body(body, &input[pos..])?;
                    if *body == Body::Done {
                        return Ok(Progress::Done { status: *status, keep_alive: *keep_alive, consumed: pos });
                    }
                    debug_assert_eq!(pos, input.len());
                    return Ok(Progress::NeedMore);
                }
            }
        }
    }

    /// The server closed the connection (read returned 0).
    pub fn eof(&mut self) -> Result<Progress, FrameError> {
        match self.state {
            State::Body { status, body: Body::UntilClose, .. } => {
                Ok(Progress::Done { status, keep_alive: false, consumed: 0 })
            }
            State::Head if !self.received_any => Err(FrameError::ClosedBeforeResponse),
            _ => Err(FrameError::Truncated),
        }
    }

    /// Try to complete the head with `input`. Returns the head and how many
    /// bytes of `input` it used, or `None` (input buffered) if incomplete.
    fn parse_head(&mut self, input: &[u8]) -> Result<Option<(Head, usize)>, FrameError> {
        if input.is_empty() {
            return Ok(None);
        }
        // Fast path: the whole head arrived in one read, as it nearly always
        // does; parse it in place without copying.
        if self.head_buf.is_empty() {
            return match parse_head_bytes(input, self.head_request)? {
                Some((head, len)) => Ok(Some((head, len))),
                None => {
                    if input.len() > MAX_HEAD_BYTES {
                        return Err(FrameError::HeadTooLarge);
                    }
                    self.head_buf.extend_from_slice(input);
                    Ok(None)
                }
            };
        }
        let before = self.head_buf.len();
        self.head_buf.extend_from_slice(input);
        match parse_head_bytes(&self.head_buf, self.head_request)? {
            Some((head, len)) => {
                self.head_buf.clear();
                Ok(Some((head, len - before)))
            }
            None if self.head_buf.len() > MAX_HEAD_BYTES => Err(FrameError::HeadTooLarge),
            None => Ok(None),
        }
    }
}

/// Parse a complete head from the start of `buf`, if there is one.
fn parse_head_bytes(buf: &[u8], head_request: bool) -> Result<Option<(Head, usize)>, FrameError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(FrameError::BadHead(e)),
    };
    if len > MAX_HEAD_BYTES {
        return Err(FrameError::HeadTooLarge);
    }
    let status = resp.code.unwrap_or(0);
    let version = resp.version.unwrap_or(1);
    let head = interpret(status, version, resp.headers, head_request)?;
    Ok(Some((head, len)))
}

/// Decide framing and persistence from the parsed head (RFC 9112 §6.3, §9.3).
fn interpret(
    status: u16,
    version: u8,
    headers: &[httparse::Header<'_>],
    head_request: bool,
) -> Result<Head, FrameError> {
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            // Repeated or comma-listed values must all agree (RFC 9110 §8.6).
            let text = std::str::from_utf8(h.value).map_err(|_| FrameError::BadContentLength)?;
            for part in text.split(',') {
                let part = part.trim_matches([' ', '\t']);
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FrameError::BadContentLength);
                }
                let n: u64 = part.parse().map_err(|_| FrameError::BadContentLength)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(FrameError::BadContentLength);
                }
                content_length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the final coding decides framing; a later header line
            // appends to the list, so each new line resets the verdict.
            let last = tokens(h.value).last();
            chunked_last = last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                conn_close |= t.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // HTTP/1.1 persists unless told to close; HTTP/1.0 only if told to
    // keep alive (RFC 9112 §9.3).
    let mut keep_alive = if version >= 1 { !conn_close } else { conn_keep_alive && !conn_close };
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if transfer_encoding {
        if content_length.is_some() {
            return Err(FrameError::LengthAndTransferEncoding);
        }
        if chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Head { status, keep_alive, framing })
}

/// Comma-separated list elements, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty())
}

/// Advance the body state over `input`; returns bytes consumed. Stops as
/// soon as the body is done.
fn feed_body(body: &mut Body, input: &[u8]) -> Result<usize, FrameError> {
    match body {
        Body::Done => Ok(0),
        Body::UntilClose => Ok(input.len()),
        Body::Length(remaining) => {
            let take = (*remaining).min(input.len() as u64);
            *remaining -= take;
            if *remaining == 0 {
                *body = Body::Done;
            }
            Ok(take as usize)
        }
        Body::Chunked(state) => {
            let mut pos = 0;
            while pos < input.len() {
                if let Chunked::Data { remaining } = state {
                    // Bulk path: skip chunk data without looking at it.
                    let take = (*remaining).min((input.len() - pos) as u64);
                    *remaining -= take;
                    pos += take as usize;
                    if *remaining == 0 {
                        *state = Chunked::DataCr;
                    }
                    continue;
                }
                let b = input[pos];
                pos += 1;
                if step_chunked(state, b)? {
                    *body = Body::Done;
                    return Ok(pos);
                }
            }
            Ok(pos)
        }
    }
}

/// One byte of chunked framing outside chunk data. Returns true at the end
/// of the chunked body. Bare LF is refused: lenient line endings are how
/// front and back ends come to disagree on message boundaries.
fn step_chunked(state: &mut Chunked, b: u8) -> Result<bool, FrameError> {
    *state = match *state {
        Chunked::Size { value, digits } => match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                // 16 hex digits fill a u64; more would overflow.
                if digits >= 16 {
                    return Err(FrameError::BadChunk("chunk size overflows"));
                }
                let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                Chunked::Size { value: (value << 4) | d, digits: digits + 1 }
            }
            _ if digits == 0 => return Err(FrameError::BadChunk("missing chunk size")),
            b'\r' => Chunked::SizeLf { value },
            b';' | b' ' | b'\t' => Chunked::Ext { len: 1, value },
            _ => return Err(FrameError::BadChunk("bad chunk size")),
        },
        Chunked::Ext { len, value } => match b {
            b'\r' => Chunked::SizeLf { value },
            b'\n' => return Err(FrameError::BadChunk("bare LF in chunk extension")),
            _ if len >= MAX_CHUNK_EXT_BYTES => return Err(FrameError::ChunkExtTooLong),
            _ => Chunked::Ext { len: len + 1, value },
        },
        Chunked::SizeLf { value } => match b {
            b'\n' if value == 0 => Chunked::TrailerLineStart { total: 0 },
            b'\n' => Chunked::Data { remaining: value },
            _ => return Err(FrameError::BadChunk("expected LF after chunk size")),
        },
        Chunked::Data { .. } => unreachable!("chunk data is consumed in bulk by feed_body"),
        Chunked::DataCr => match b {
            b'\r' => Chunked::DataLf,
            _ => return Err(FrameError::BadChunk("expected CR after chunk data")),
        },
        Chunked::DataLf => match b {
            b'\n' => Chunked::Size { value: 0, digits: 0 },
            _ => return Err(FrameError::BadChunk("expected LF after chunk data")),
        },
        Chunked::TrailerLineStart { total } => match b {
            b'\r' => Chunked::EndLf,
            _ => Chunked::TrailerLine { total: total + 1 },
        },
        Chunked::TrailerLine { total } => match b {
            b'\r' => Chunked::TrailerLf { total },
            _ if total >= MAX_TRAILER_BYTES => return Err(FrameError::TrailerTooLarge),
            _ => Chunked::TrailerLine { total: total + 1 },
        },
        Chunked::TrailerLf { total } => match b {
            b'\n' => Chunked::TrailerLineStart { total },
            _ => return Err(FrameError::BadChunk("expected LF after trailer field")),
        },
        Chunked::EndLf => match b {
            b'\n' => return Ok(true),
            _ => return Err(FrameError::BadChunk("expected LF after last chunk")),
        },
    };
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Expect {
        /// status, keep_alive, bytes left unconsumed after the response
        Done(u16, bool, usize),
        NeedMore,
        Err(FrameError),
    }

    /// Feed the whole input at once, then again split at every possible
    /// point (head and body spread across two reads), and once byte by
    /// byte: framing must not depend on how TCP segments the bytes.
    fn run(input: &[u8], head_request: bool) -> Expect {
        let whole = run_split(input, &[input.len()], head_request);
        for cut in 0..input.len() {
            let split = run_split(input, &[cut, input.len()], head_request);
            assert_eq!(split, whole, "split at {cut} differs for {input:?}");
        }
        let points: Vec<usize> = (1..=input.len()).collect();
        assert_eq!(run_split(input, &points, head_request), whole, "byte by byte");
        whole
    }

    fn run_split(input: &[u8], cuts: &[usize], head_request: bool) -> Expect {
        let mut r = ResponseReader::new(head_request);
        let mut start = 0;
        for &end in cuts {
            match r.feed(&input[start..end]) {
                Ok(Progress::Done { status, keep_alive, consumed }) => {
                    return Expect::Done(status, keep_alive, input.len() - start - consumed)
                }
                Ok(Progress::NeedMore) => start = end,
                Err(e) => return Expect::Err(e),
            }
        }
        Expect::NeedMore
    }

    const CASES: &[(&[u8], Expect)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Expect::Done(200, true, 0)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Expect::Done(200, true, 0)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", Expect::NeedMore),
        // Extra bytes after the body are left unconsumed for the caller.
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nhiEXTRA", Expect::Done(500, true, 5)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc", Expect::Done(200, true, 0)),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            Expect::Err(FrameError::BadContentLength),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", Expect::Err(FrameError::BadContentLength)),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            Expect::Err(FrameError::LengthAndTransferEncoding),
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", Expect::Done(200, false, 0)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", Expect::Done(200, false, 0)),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", Expect::Done(200, true, 0)),
        // Chunked, with an extension and a trailer.
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
            Expect::Done(200, true, 0),
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", Expect::Done(200, true, 0)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", Expect::NeedMore),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            Expect::Err(FrameError::BadChunk("missing chunk size")),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
            Expect::Err(FrameError::BadChunk("expected CR after chunk data")),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
            Expect::Err(FrameError::BadChunk("bad chunk size")),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            Expect::Err(FrameError::BadChunk("chunk size overflows")),
        ),
        // Close-delimited: never done until EOF, and not reusable.
        (b"HTTP/1.1 200 OK\r\n\r\nsome body", Expect::NeedMore),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", Expect::NeedMore),
        // No body regardless of headers.
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", Expect::Done(204, true, 0)),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", Expect::Done(304, true, 0)),
        // Interim 100 Continue is skipped.
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", Expect::Done(200, true, 0)),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", Expect::Err(FrameError::UnexpectedUpgrade)),
        (b"HTTP/1.1 2000 OK\r\n\r\n", Expect::Err(FrameError::BadHead(httparse::Error::Status))),
    ];

    #[test]
    fn framing_table() {
        for (input, want) in CASES {
            assert_eq!(&run(input, false), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn head_request_has_no_body() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        assert_eq!(run(input, true), Expect::Done(200, true, 0));
    }

    #[test]
    fn close_delimited_ends_at_eof() {
        let mut r = ResponseReader::new(false);
        assert_eq!(r.feed(b"HTTP/1.1 200 OK\r\n\r\npart one "), Ok(Progress::NeedMore));
        assert_eq!(r.feed(b"part two"), Ok(Progress::NeedMore));
        assert_eq!(r.eof(), Ok(Progress::Done { status: 200, keep_alive: false, consumed: 0 }));
    }

    #[test]
    fn eof_before_and_during_response() {
        let mut r = ResponseReader::new(false);
        assert_eq!(r.eof(), Err(FrameError::ClosedBeforeResponse));
        r.reset();
        r.feed(b"HTTP/1.1 200").unwrap();
        assert_eq!(r.eof(), Err(FrameError::Truncated));
        r.reset();
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab").unwrap();
        assert_eq!(r.eof(), Err(FrameError::Truncated));
    }

    #[test]
    fn reader_is_reusable_after_reset() {
        let mut r = ResponseReader::new(false);
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        for _ in 0..3 {
            r.reset();
            assert!(matches!(r.feed(one), Ok(Progress::Done { .. })));
        }
    }

    #[test]
    fn head_limit_trips() {
        let mut r = ResponseReader::new(false);
        let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        head.resize(MAX_HEAD_BYTES + 1, b'a');
        // Whole in one read, and spread over many.
        assert_eq!(r.feed(&head), Err(FrameError::HeadTooLarge));
        r.reset();
        let mut last = Ok(Progress::NeedMore);
        for piece in head.chunks(1000) {
            last = r.feed(piece);
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last, Err(FrameError::HeadTooLarge));
    }

    #[test]
    fn chunk_ext_and_trailer_limits_trip() {
        let mut body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        body.resize(body.len() + MAX_CHUNK_EXT_BYTES, b'e');
        assert_eq!(run_split(&body, &[body.len()], false), Expect::Err(FrameError::ChunkExtTooLong));

        let mut body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ".to_vec();
        body.resize(body.len() + MAX_TRAILER_BYTES, b't');
        assert_eq!(run_split(&body, &[body.len()], false), Expect::Err(FrameError::TrailerTooLarge));

        // Just under the limits is fine.
        let mut ok = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0;".to_vec();
        ok.resize(ok.len() + MAX_CHUNK_EXT_BYTES - 2, b'e');
        ok.extend_from_slice(b"\r\n\r\n");
        assert_eq!(run_split(&ok, &[ok.len()], false), Expect::Done(200, true, 0));
    }
}
