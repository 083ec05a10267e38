//! The deterministic byte stream large-body tests send and check.
//!
//! Byte `i` of the stream is `TABLE[i % PERIOD]`. The period is a prime, so
//! a dropped, repeated or reordered buffer (always a power-of-two size in
//! practice) shifts the stream and no longer matches.

use std::sync::OnceLock;

/// Largest prime below 2^16.
pub const PERIOD: usize = 65_521;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // xorshift32: arbitrary but fixed bytes, twice over so any window of
        // up to PERIOD bytes is one contiguous slice.
        let mut x: u32 = 0x9e37_79b9;
        let once: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let mut twice = once.clone();
        twice.extend_from_slice(&once);
        twice
    })
}

/// The `len` bytes of the stream starting at `offset` (`len <= PERIOD`).
pub fn slice(offset: u64, len: usize) -> &'static [u8] {
    assert!(len <= PERIOD);
    let start = (offset % PERIOD as u64) as usize;
    &table()[start..start + len]
}

/// Calls `f` with the whole stream of `len` bytes, piece by piece.
pub fn for_each_piece(len: u64, mut f: impl FnMut(&[u8])) {
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(PERIOD as u64) as usize;
        f(slice(offset, n));
        offset += n as u64;
    }
}

/// Checks received bytes against the stream as they arrive.
#[derive(Debug, Default)]
pub struct Verifier {
    /// Bytes checked so far.
    pub len: u64,
    /// Offset of the first byte that differed from the stream, if any.
    pub first_mismatch: Option<u64>,
}

impl Verifier {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = bytes.len().min(PERIOD);
            if self.first_mismatch.is_none() {
                let expected = slice(self.len, n);
                if let Some(i) = expected.iter().zip(&bytes[..n]).position(|(a, b)| a != b) {
                    self.first_mismatch = Some(self.len + i as u64);
                }
            }
            self.len += n as u64;
            bytes = &bytes[n..];
        }
    }
}
