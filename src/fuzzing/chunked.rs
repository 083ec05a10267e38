//! Fuzz target: the chunked body decoder (`http1::body::ChunkedDecoder`)
//! against a reference decoder written here, straight from RFC 9112 §7.1:
//! ```text
//! chunked-body    = *chunk last-chunk trailer-section CRLF
//! chunk           = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size      = 1*HEXDIG
//! last-chunk      = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext       = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-name  = token
//! chunk-ext-val   = token / quoted-string
//! trailer-section = *( field-line CRLF )
//! field-line      = field-name ":" OWS field-value OWS
//! ```
//! Where shardgate is deliberately stricter than the RFC, the reference
//! follows the same rule (so "refuses what the reference refuses" holds
//! both ways):
//! - a chunk size has at most 16 hex digits, leading zeros included
//!   (a u64; longer is refused as an overflow);
//! - a chunk-size line's extensions (from the first byte after the size
//!   to the CR) are at most `MAX_CHUNK_EXT_BYTES`;
//! - the trailer section's field lines (each without its LF) are at most
//!   `MAX_TRAILER_BYTES` in all;
//! - no `Content-Length`, `Transfer-Encoding` or `Host` in the trailer
//!   section (RFC 9110 §6.5.1 says these must not be sent there).
//!
//! Properties: the decoder's outcome (done with the data and the bytes it
//! consumed, still incomplete with the data so far, or refused) equals
//! the reference's, whether the input comes in one piece, byte by byte,
//! or cut in two; a done body ends exactly where the reference says, and
//! the reported trailer span covers exactly the trailer field lines.

use crate::http1::body::{ChunkedDecoder, MAX_CHUNK_EXT_BYTES, MAX_TRAILER_BYTES};

pub fn chunked(data: &[u8]) {
    let want = reference(data);
    let whole = decode_in_pieces(data, &[]);
    assert_eq!(whole.outcome, want, "one piece: {:?}", super::show(data));
    let every: Vec<usize> = (1..data.len()).collect();
    assert_eq!(decode_in_pieces(data, &every).outcome, want, "byte by byte: {:?}", super::show(data));
    if data.len() > 1 {
        // A cut the input chooses, so the fuzzer explores read boundaries.
        let cut = 1 + usize::from(data[0]) % (data.len() - 1);
        assert_eq!(decode_in_pieces(data, &[cut]).outcome, want, "cut at {cut}: {:?}", super::show(data));
    }
    if let Outcome::Done { consumed, .. } = &want {
        let lines = trailer_lines(&data[..*consumed]);
        assert_eq!(whole.trailer, lines, "trailer span of {:?}", super::show(data));
    }
}

/// What a decoder makes of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The body ended after `consumed` bytes.
    Done {
        data: Vec<u8>,
        consumed: usize,
    },
    /// Everything so far is valid; more is needed.
    Incomplete {
        data: Vec<u8>,
    },
    Refused,
}

struct Decoded {
    outcome: Outcome,
    /// The trailer span of a single-piece decode.
    trailer: Option<(usize, usize)>,
}

fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Decoded {
    let mut d = ChunkedDecoder::default();
    let mut data = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[from..to];
        let step = match d.decode(piece, |r| data.extend_from_slice(&piece[r])) {
            Ok(step) => step,
            Err(_) => return Decoded { outcome: Outcome::Refused, trailer: None },
        };
        assert!(step.consumed <= piece.len(), "consumed past the input");
        assert_eq!(step.done, d.is_done(), "step.done disagrees with is_done");
        let trailer = step.trailer.map(|t| (from + t.start, from + t.end));
        if step.done {
            return Decoded { outcome: Outcome::Done { data, consumed: from + step.consumed }, trailer };
        }
        assert_eq!(step.consumed, piece.len(), "an unfinished body left bytes unconsumed");
        from = to;
    }
    Decoded { outcome: Outcome::Incomplete { data }, trailer: None }
}

/// `start..end` of the trailer field lines of a complete chunked body:
/// after the last chunk's line, before the final CRLF.
fn trailer_lines(body: &[u8]) -> Option<(usize, usize)> {
    // The last-chunk line is the first size line of value 0: find it by
    // decoding again with the reference's cursor.
    let mut r = Reference::new(body);
    r.body().ok()?;
    let (start, end) = (r.trailer_start, body.len() - 2);
    (start < end).then_some((start, end))
}

/// The reference decoder's answer for `input`.
pub fn reference(input: &[u8]) -> Outcome {
    let mut r = Reference::new(input);
    match r.body() {
        Ok(()) => Outcome::Done { data: r.data, consumed: r.at },
        Err(Stop::NeedMore) => Outcome::Incomplete { data: r.data },
        Err(Stop::Invalid) => Outcome::Refused,
    }
}

enum Stop {
    NeedMore,
    Invalid,
}

/// A plain recursive-descent reader over the whole input; running out of
/// input is `NeedMore`, so a valid prefix reads as incomplete.
struct Reference<'a> {
    input: &'a [u8],
    at: usize,
    data: Vec<u8>,
    trailer_start: usize,
    /// Inside a chunk-size line's extensions: where they began.
    ext_start: Option<usize>,
    trailer_bytes: usize,
}

type Read<T> = Result<T, Stop>;

impl<'a> Reference<'a> {
    fn new(input: &'a [u8]) -> Self {
        Reference { input, at: 0, data: Vec::new(), trailer_start: 0, ext_start: None, trailer_bytes: 0 }
    }

    fn peek(&self) -> Read<u8> {
        self.input.get(self.at).copied().ok_or(Stop::NeedMore)
    }

    fn next(&mut self) -> Read<u8> {
        let b = self.peek()?;
        self.at += 1;
        Ok(b)
    }

    fn expect(&mut self, want: u8) -> Read<()> {
        if self.next()? == want {
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }

    fn body(&mut self) -> Read<()> {
        loop {
            let size = self.chunk_size()?;
            self.chunk_ext()?;
            self.expect(b'\r')?;
            self.expect(b'\n')?;
            if size == 0 {
                break;
            }
            let available = (self.input.len() - self.at) as u64;
            if available < size {
                self.data.extend_from_slice(&self.input[self.at..]);
                return Err(Stop::NeedMore);
            }
            let end = self.at + size as usize;
            self.data.extend_from_slice(&self.input[self.at..end]);
            self.at = end;
            self.expect(b'\r')?;
            self.expect(b'\n')?;
        }
        self.trailer_start = self.at;
        loop {
            if self.peek()? == b'\r' {
                self.at += 1;
                return self.expect(b'\n');
            }
            self.field_line()?;
            self.expect(b'\n')?;
        }
    }

    /// 1*HEXDIG, at most 16 digits.
    fn chunk_size(&mut self) -> Read<u64> {
        let mut size = 0u64;
        let mut digits = 0;
        while let Some(d) = (self.peek()? as char).to_digit(16) {
            digits += 1;
            if digits > 16 {
                return Err(Stop::Invalid);
            }
            size = size * 16 + u64::from(d);
            self.at += 1;
        }
        if digits == 0 {
            return Err(Stop::Invalid);
        }
        Ok(size)
    }

    /// `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, up to the CR; at
    /// most `MAX_CHUNK_EXT_BYTES` of it.
    fn chunk_ext(&mut self) -> Read<()> {
        self.ext_start = Some(self.at);
        loop {
            let save = self.at;
            self.bws()?;
            if self.peek()? != b';' {
                // No extension here: whitespace is only allowed before a ";".
                self.ext_start = None;
                return if self.at == save { Ok(()) } else { Err(Stop::Invalid) };
            }
            self.advance()?;
            self.bws()?;
            self.token()?;
            let before_bws = self.at;
            self.bws()?;
            if self.peek()? == b'=' {
                self.advance()?;
                self.bws()?;
                if self.peek()? == b'"' {
                    self.quoted_string()?;
                } else {
                    self.token()?;
                }
            } else {
                self.at = before_bws;
            }
        }
    }

    /// Takes the byte at the cursor, counting it against the extension
    /// limit while inside one.
    fn advance(&mut self) -> Read<()> {
        self.at += 1;
        match self.ext_start {
            Some(start) if self.at - start > MAX_CHUNK_EXT_BYTES => Err(Stop::Invalid),
            _ => Ok(()),
        }
    }

    fn bws(&mut self) -> Read<()> {
        while matches!(self.peek()?, b' ' | b'\t') {
            self.advance()?;
        }
        Ok(())
    }

    fn token(&mut self) -> Read<()> {
        let start = self.at;
        while is_tchar(self.peek()?) {
            self.advance()?;
        }
        if self.at == start {
            Err(Stop::Invalid)
        } else {
            Ok(())
        }
    }

    /// DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4).
    fn quoted_string(&mut self) -> Read<()> {
        self.advance()?;
        loop {
            let b = self.peek()?;
            match b {
                b'"' => return self.advance(),
                b'\\' => {
                    self.advance()?;
                    let b = self.peek()?;
                    if !(b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80) {
                        return Err(Stop::Invalid);
                    }
                    self.advance()?;
                }
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => self.advance()?,
                _ => return Err(Stop::Invalid),
            }
        }
    }

    /// Counts one byte of the trailer section against its limit.
    fn trailer_byte(&mut self) -> Read<()> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            Err(Stop::Invalid)
        } else {
            Ok(())
        }
    }

    /// field-name ":" OWS field-value OWS, up to and including the CR.
    fn field_line(&mut self) -> Read<()> {
        let name_start = self.at;
        loop {
            let b = self.peek()?;
            if b == b':' && self.at > name_start {
                break;
            }
            if !is_tchar(b) {
                return Err(Stop::Invalid);
            }
            self.trailer_byte()?;
            self.at += 1;
        }
        self.trailer_byte()?;
        let name = &self.input[name_start..self.at];
        if FRAMING_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            return Err(Stop::Invalid);
        }
        self.at += 1;
        loop {
            let b = self.peek()?;
            self.trailer_byte()?;
            self.at += 1;
            match b {
                b'\r' => return Ok(()),
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => {}
                _ => return Err(Stop::Invalid),
            }
        }
    }
}

const FRAMING_FIELDS: &[&[u8]] = &[b"content-length", b"transfer-encoding", b"host"];

/// RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
