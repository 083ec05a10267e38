//! Sans-io body framing: how many of the bytes in hand belong to the
//! current message body, and (for chunked) where its data is.
//!
//! Where it sits: after a head is parsed, `downstream/conn.rs` (request bodies) and
//! `upstream/forward.rs` (response bodies) feed every buffer through a
//! [`BodyDecoder`] while relaying. Chunked bodies are validated byte by byte
//! and, when both sides speak chunked, relayed as received: the decoder has
//! already refused anything a next hop could read differently.

use std::ops::Range;

use super::parse::Framing;

/// Bytes of chunk extensions allowed on one chunk-size line.
pub const MAX_CHUNK_EXT_BYTES: usize = 4096;
/// Bytes of trailer section allowed after the last chunk.
pub const MAX_TRAILER_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    SizeOverflow,
    /// CR or LF where the grammar wants CRLF.
    BadLineEnding,
    ExtTooLong,
    /// A chunk extension that breaks its grammar (RFC 9112 §7.1.1).
    BadExtension,
    BadTrailer,
    /// Content-Length, Transfer-Encoding or Host in the trailer section.
    ForbiddenTrailer,
    TrailerTooLong,
}

impl ChunkError {
    pub fn cause(self) -> &'static str {
        match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::SizeOverflow => "chunk size overflow",
            ChunkError::BadLineEnding => "bare CR or LF in chunked framing",
            ChunkError::ExtTooLong => "chunk extension too long",
            ChunkError::BadExtension => "malformed chunk extension",
            ChunkError::BadTrailer => "malformed trailer field",
            ChunkError::ForbiddenTrailer => "framing field in trailer section",
            ChunkError::TrailerTooLong => "trailer section too long",
        }
    }
}

/// RFC 9112 §7.1:
/// ```text
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size     = 1*HEXDIG
/// last-chunk     = 1*("0") [ chunk-ext ] CRLF
/// trailer-section = *( field-line CRLF )
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkedState {
    /// Reading hex digits of chunk-size.
    Size,
    /// After the size: extensions up to CR, read by [`ExtState`].
    Ext(ExtState),
    /// Saw CR after size line; want LF.
    SizeLf,
    /// Inside chunk-data.
    Data,
    /// After data; want CR.
    DataCr,
    /// After data CR; want LF.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// Saw CR after a trailer line; want LF.
    TrailerLf,
    /// Saw the final CR; want LF.
    EndLf,
    Done,
}

/// Where a chunk-size line's extensions are (RFC 9112 §7.1.1, §5.6.4 of
/// RFC 9110):
/// ```text
/// chunk-ext     = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-val = token / quoted-string
/// ```
/// Checked, not just skipped: the body is relayed as received, and a
/// next hop that reads a malformed extension differently (where a quoted
/// string ends, whether whitespace ends the line) would frame the body
/// differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtState {
    /// Whitespace after the size or a value: only more of it, or `;`.
    Bws,
    /// After `;`: BWS, then a name.
    NameStart,
    Name,
    /// Whitespace after a name: `=`, `;` or more of it.
    AfterName,
    /// After `=`: BWS, then a token or a quoted string.
    ValueStart,
    Token,
    Quoted,
    /// After a backslash in a quoted string.
    QuotedPair,
    /// After the closing quote.
    AfterQuote,
}

/// What a byte of a chunk-size line's extensions does.
enum ExtStep {
    Next(ExtState),
    /// The CR that ends the line.
    LineEnd,
}

impl ExtState {
    fn step(self, b: u8) -> Result<ExtStep, ChunkError> {
        use ExtState::*;
        use ExtStep::{LineEnd, Next};
        let ws = matches!(b, b' ' | b'\t');
        let next = match (self, b) {
            (_, b'\n') => return Err(ChunkError::BadLineEnding),
            (Quoted, b'"') => AfterQuote,
            (Quoted, b'\\') => QuotedPair,
            (Quoted, _) if ws || b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80 => Quoted,
            (QuotedPair, _) if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => Quoted,
            (Quoted | QuotedPair, _) => return Err(ChunkError::BadExtension),
            (Name | Token | AfterQuote, b'\r') => return Ok(LineEnd),
            (Bws | Name | AfterName | Token | AfterQuote, b';') => NameStart,
            (Name | AfterName, b'=') => ValueStart,
            (Name, _) | (NameStart, _) if is_token(b) => Name,
            (Token, _) | (ValueStart, _) if is_token(b) => Token,
            (ValueStart, b'"') => Quoted,
            (Bws | Token | AfterQuote, _) if ws => Bws,
            (Name | AfterName, _) if ws => AfterName,
            (NameStart | ValueStart, _) if ws => self,
            _ => return Err(ChunkError::BadExtension),
        };
        Ok(Next(next))
    }
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkedState,
    size: u64,
    size_digits: u32,
    remaining: u64,
    line_bytes: usize,
    trailer_bytes: usize,
    is_last: bool,
    name: [u8; 20],
    name_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkedState::Size,
            size: 0,
            size_digits: 0,
            remaining: 0,
            line_bytes: 0,
            trailer_bytes: 0,
            is_last: false,
            name: [0; 20],
            name_len: 0,
        }
    }
}

/// Result of feeding bytes to a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes that belong to this body (a prefix of the input).
    pub consumed: usize,
    /// The body ended within those bytes.
    pub done: bool,
    /// Chunked only: the trailer field lines among those bytes, if any.
    pub trailer: Option<TrailerSpan>,
}

impl Step {
    fn new(consumed: usize, done: bool) -> Step {
        Step { consumed, done, trailer: None }
    }
}

/// Where the trailer field lines (each with its CRLF) sit within the input
/// of one `decode` call: `start..end`, always contiguous, and followed in
/// the message only by the final CRLF. A trailer section that arrives over
/// several reads is reported piece by piece, one span per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerSpan {
    pub start: usize,
    pub end: usize,
}

/// Request trailers are dropped, as nginx does: the upstream receives the
/// last chunk and the final CRLF with no trailer fields. Removes from
/// `buf` the trailer field lines `step` reported for the input that began
/// at `buf[at]`, and returns how many bytes of the body are then left at
/// `buf[at..]` (the step's `consumed`, less the trailer). Bytes after the
/// body (a pipelined request) move down with it.
///
/// Why drop rather than filter: a trailer field reaches most applications
/// merged into the header fields, after the proxy looked at them, so any
/// field in it — `Authorization`, `X-Forwarded-For`, an identity header
/// the proxy asserts — would bypass every header rule; and no field a
/// proxied API needs is only ever sent as a trailer (gRPC's are response
/// trailers, which pass).
pub fn drop_trailer_fields(buf: &mut Vec<u8>, at: usize, step: &Step) -> usize {
    match step.trailer {
        None => step.consumed,
        Some(t) => {
            buf.drain(at + t.start..at + t.end);
            step.consumed - (t.end - t.start)
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkedState::Done
    }

    /// Consumes a prefix of `input`, calling `on_data` with the range of
    /// every run of chunk-data. Stops at the end of the body; bytes after
    /// it (a pipelined next message) are not consumed.
    pub fn decode(&mut self, input: &[u8], mut on_data: impl FnMut(Range<usize>)) -> Result<Step, ChunkError> {
        use ChunkedState::*;
        let mut i = 0;
        // The trailer field lines seen in this call (see `TrailerSpan`).
        let mut trailer: Option<TrailerSpan> = None;
        let mut in_trailer = |i: usize| match &mut trailer {
            Some(t) => t.end = i + 1,
            None => trailer = Some(TrailerSpan { start: i, end: i + 1 }),
        };
        while i < input.len() {
            let b = input[i];
            match self.state {
                Size => match hex_value(b) {
                    Some(d) => {
                        self.size = self.size.checked_mul(16).ok_or(ChunkError::SizeOverflow)? + d as u64;
                        self.size_digits += 1;
                        if self.size_digits > 16 {
                            return Err(ChunkError::SizeOverflow);
                        }
                    }
                    None if self.size_digits == 0 => return Err(ChunkError::BadSize),
                    None => match b {
                        b'\r' => self.state = SizeLf,
                        b';' | b' ' | b'\t' => {
                            let ext = if b == b';' { ExtState::NameStart } else { ExtState::Bws };
                            self.state = Ext(ext);
                            self.line_bytes = 1;
                        }
                        b'\n' => return Err(ChunkError::BadLineEnding),
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                Ext(ext) => match ext.step(b)? {
                    ExtStep::LineEnd => self.state = SizeLf,
                    ExtStep::Next(next) => {
                        self.state = Ext(next);
                        self.line_bytes += 1;
                        if self.line_bytes > MAX_CHUNK_EXT_BYTES {
                            return Err(ChunkError::ExtTooLong);
                        }
                    }
                },
                SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    if self.size == 0 {
                        self.is_last = true;
                        self.state = TrailerStart;
                    } else {
                        self.remaining = self.size;
                        self.state = Data;
                    }
                    self.size = 0;
                    self.size_digits = 0;
                }
                Data => {
                    let n = (input.len() - i).min(self.remaining.min(usize::MAX as u64) as usize);
                    on_data(i..i + n);
                    self.remaining -= n as u64;
                    i += n;
                    if self.remaining == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = DataLf;
                }
                DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = Size;
                }
                TrailerStart => {
                    if b == b'\r' {
                        self.state = EndLf;
                    } else if b == b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    } else if is_token(b) {
                        self.name_len = 0;
                        self.push_name(b);
                        self.state = TrailerName;
                        self.count_trailer()?;
                        in_trailer(i);
                    } else {
                        return Err(ChunkError::BadTrailer);
                    }
                }
                TrailerName => {
                    self.count_trailer()?;
                    in_trailer(i);
                    if b == b':' {
                        // Only the first bytes of a name are kept: a longer
                        // name is none of the forbidden ones.
                        let name = self.name.get(..self.name_len).unwrap_or(&[]);
                        if FORBIDDEN_TRAILERS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                            return Err(ChunkError::ForbiddenTrailer);
                        }
                        self.state = TrailerValue;
                    } else if is_token(b) {
                        self.push_name(b);
                    } else {
                        return Err(ChunkError::BadTrailer);
                    }
                }
                TrailerValue => {
                    self.count_trailer()?;
                    in_trailer(i);
                    match b {
                        b'\r' => self.state = TrailerLf,
                        b'\n' | 0 => return Err(ChunkError::BadLineEnding),
                        b'\t' => {}
                        c if c < 0x20 || c == 0x7f => return Err(ChunkError::BadTrailer),
                        _ => {}
                    }
                }
                TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    in_trailer(i);
                    self.state = TrailerStart;
                }
                EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = Done;
                    return Ok(Step { consumed: i + 1, done: true, trailer });
                }
                Done => return Ok(Step { consumed: i, done: true, trailer }),
            }
            i += 1;
        }
        Ok(Step { consumed: i, done: self.state == Done, trailer })
    }

    fn push_name(&mut self, b: u8) {
        // Only the first bytes matter: every forbidden name fits in 20.
        if self.name_len < self.name.len() {
            self.name[self.name_len] = b;
        }
        self.name_len += 1;
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ChunkError::TrailerTooLong);
        }
        Ok(())
    }
}

/// RFC 9110 §6.5.1: framing and routing fields must not come in trailers.
const FORBIDDEN_TRAILERS: &[&[u8]] = &[b"content-length", b"transfer-encoding", b"host"];

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Any body framing, as a state machine fed with what was read.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    Empty,
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> BodyDecoder {
        match framing {
            Framing::Empty => BodyDecoder::Empty,
            Framing::Length(n) => BodyDecoder::Length { remaining: n },
            Framing::Chunked => BodyDecoder::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => BodyDecoder::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Empty => true,
            BodyDecoder::Length { remaining } => *remaining == 0,
            BodyDecoder::Chunked(c) => c.is_done(),
            BodyDecoder::UntilClose => false,
        }
    }

    /// Consumes the prefix of `input` belonging to the body; `on_data` gets
    /// the ranges of payload (for chunked: without the framing).
    pub fn decode(&mut self, input: &[u8], mut on_data: impl FnMut(Range<usize>)) -> Result<Step, ChunkError> {
        match self {
            BodyDecoder::Empty => Ok(Step::new(0, true)),
            BodyDecoder::Length { remaining } => {
                let n = (input.len() as u64).min(*remaining) as usize;
                if n > 0 {
                    on_data(0..n);
                }
                *remaining -= n as u64;
                Ok(Step::new(n, *remaining == 0))
            }
            BodyDecoder::Chunked(c) => c.decode(input, on_data),
            BodyDecoder::UntilClose => {
                if !input.is_empty() {
                    on_data(0..input.len());
                }
                Ok(Step::new(input.len(), false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Step), ChunkError> {
        let mut d = ChunkedDecoder::default();
        let mut data = Vec::new();
        let step = d.decode(input, |r| data.extend_from_slice(&input[r]))?;
        Ok((data, step))
    }

    type Case = (&'static str, &'static [u8], Result<&'static [u8], ChunkError>);
    const CASES: &[Case] = &[
        ("two chunks", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", Ok(b"abcde")),
        ("upper hex", b"A\r\n0123456789\r\n0\r\n\r\n", Ok(b"0123456789")),
        ("extension", b"3;name=val\r\nabc\r\n0\r\n\r\n", Ok(b"abc")),
        ("trailer", b"1\r\na\r\n0\r\nX-Sum: 1\r\n\r\n", Ok(b"a")),
        ("leading zeros", b"0003\r\nabc\r\n0\r\n\r\n", Ok(b"abc")),
        ("bad size", b"zz\r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadSize)),
        ("empty size", b"\r\nabc\r\n", Err(ChunkError::BadSize)),
        ("overflow", b"ffffffffffffffffff\r\n", Err(ChunkError::SizeOverflow)),
        ("bare LF after size", b"3\nabc\r\n0\r\n\r\n", Err(ChunkError::BadLineEnding)),
        ("bare CR after size", b"3\rabc\r\n0\r\n\r\n", Err(ChunkError::BadLineEnding)),
        ("missing CRLF after data", b"3\r\nabcd\r\n0\r\n\r\n", Err(ChunkError::BadLineEnding)),
        ("bare LF after data", b"3\r\nabc\n0\r\n\r\n", Err(ChunkError::BadLineEnding)),
        ("CL in trailer", b"0\r\nContent-Length: 5\r\n\r\n", Err(ChunkError::ForbiddenTrailer)),
        ("TE in trailer", b"0\r\ntransfer-encoding: chunked\r\n\r\n", Err(ChunkError::ForbiddenTrailer)),
        ("bare LF ending", b"0\r\n\n", Err(ChunkError::BadLineEnding)),
        ("negative", b"-1\r\n", Err(ChunkError::BadSize)),
        // A trailer name longer than the bytes kept of it (found by fuzzing: it panicked).
        ("long trailer name", b"1\r\na\r\n0\r\nX-A-Very-Long-Trailer-Name: 1\r\n\r\n", Ok(b"a")),
        ("long name starting like CL", b"0\r\ncontent-length-of-something: 1\r\n\r\n", Ok(b"")),
        // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS (token / quoted-string) ] )
        ("extension BWS", b"3 ; a = b ;c\r\nabc\r\n0\r\n\r\n", Ok(b"abc")),
        ("extension quoted", b"3;a=\"x \\\" ;y\"\r\nabc\r\n0;last\r\n\r\n", Ok(b"abc")),
        ("extension not after ;", b"3 garbage\r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
        ("whitespace before CRLF", b"3 \r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
        ("whitespace after value", b"3;a=b \r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
        ("empty extension name", b"3;=b\r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
        ("empty extension value", b"3;a=\r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
        ("unterminated quote", b"3;a=\"b\r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
        ("LF in quoted extension", b"3;a=\"b\nc\"\r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadLineEnding)),
        ("control byte in extension", b"3;a\x01\r\nabc\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
    ];

    #[test]
    fn chunked_table() {
        for (name, input, expect) in CASES {
            let got = decode_all(input).map(|(data, step)| {
                assert!(step.done, "{name}: not done");
                assert_eq!(step.consumed, input.len(), "{name}");
                data
            });
            assert_eq!(got.as_deref().map_err(|e| *e), expect.map_err(|e| e), "case {name}");
        }
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let input = b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nA: b\r\n\r\nNEXT";
        let mut d = ChunkedDecoder::default();
        let mut data = Vec::new();
        let mut total = 0;
        for i in 0..input.len() {
            let step = d.decode(&input[i..i + 1], |r| data.extend_from_slice(&input[i..i + 1][r])).unwrap();
            total += step.consumed;
            if step.done {
                break;
            }
        }
        assert_eq!(data, b"hello world");
        assert_eq!(&input[total..], b"NEXT");
    }

    #[test]
    fn stops_before_pipelined_bytes() {
        let input = b"0\r\n\r\nGET / HTTP/1.1\r\n";
        let (_, step) = decode_all(input).unwrap();
        assert_eq!(step.consumed, 5);
    }

    #[test]
    fn ext_and_trailer_limits_trip() {
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'a', MAX_CHUNK_EXT_BYTES + 1));
        assert_eq!(decode_all(&long_ext).unwrap_err(), ChunkError::ExtTooLong);
        let mut long_trailer = b"0\r\nX: ".to_vec();
        long_trailer.extend(std::iter::repeat_n(b'a', MAX_TRAILER_BYTES + 1));
        assert_eq!(decode_all(&long_trailer).unwrap_err(), ChunkError::TrailerTooLong);
    }

    /// Feeds `input` in pieces cut at `cuts` through the relay's two calls
    /// (decode, then drop the trailer) and returns what would be sent on.
    fn relayed_without_trailer(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        let mut bounds = cuts.to_vec();
        bounds.push(input.len());
        let mut from = 0;
        for to in bounds {
            let mut buf = input[from..to].to_vec();
            let step = d.decode(&buf, |_| {}).unwrap();
            let n = drop_trailer_fields(&mut buf, 0, &step);
            out.extend_from_slice(&buf[..n]);
            from = to;
            if step.done {
                // What follows the body is left in place, after it.
                assert_eq!(&buf[n..], &input[to - (buf.len() - n)..to]);
                break;
            }
        }
        out
    }

    /// (name, chunked body + anything after it, what goes upstream)
    const TRAILER_CASES: &[(&str, &[u8], &[u8])] = &[
        ("no trailer", b"3\r\nabc\r\n0\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
        ("one field", b"3\r\nabc\r\n0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
        (
            "identity fields",
            b"1\r\na\r\n0\r\nAuthorization: Bearer x\r\nX-Client-Cert: subject=\"CN=admin\"\r\n\r\n",
            b"1\r\na\r\n0\r\n\r\n",
        ),
        ("last-chunk extension kept", b"0;e=1\r\nA: b\r\n\r\n", b"0;e=1\r\n\r\n"),
        ("pipelined request after", b"0\r\nA: b\r\n\r\nGET / HTTP/1.1\r\n", b"0\r\n\r\n"),
        ("empty value", b"0\r\nA:\r\n\r\n", b"0\r\n\r\n"),
    ];

    #[test]
    fn request_trailers_are_dropped_however_the_reads_fall() {
        for &(name, input, want) in TRAILER_CASES {
            assert_eq!(relayed_without_trailer(input, &[]), want, "{name}: one read");
            // Every single cut, and byte by byte.
            for cut in 1..input.len() {
                assert_eq!(relayed_without_trailer(input, &[cut]), want, "{name}: cut at {cut}");
            }
            let every: Vec<usize> = (1..input.len()).collect();
            assert_eq!(relayed_without_trailer(input, &every), want, "{name}: byte by byte");
        }
    }

    #[test]
    fn the_trailer_span_covers_exactly_the_field_lines() {
        let input = b"0\r\nA: b\r\nC: d\r\n\r\n";
        let (_, step) = decode_all(input).unwrap();
        assert_eq!(step.trailer, Some(TrailerSpan { start: 3, end: 15 }));
        assert_eq!(&input[3..15], b"A: b\r\nC: d\r\n");
        let (_, step) = decode_all(b"2\r\nab\r\n0\r\n\r\n").unwrap();
        assert_eq!(step.trailer, None);
    }

    #[test]
    fn length_decoder_stops_at_length() {
        let mut d = BodyDecoder::new(Framing::Length(3));
        let step = d.decode(b"abcdef", |r| assert_eq!(r, 0..3)).unwrap();
        assert_eq!(step, Step::new(3, true));
        assert!(d.is_done());
    }
}
