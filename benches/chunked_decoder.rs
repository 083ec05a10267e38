//! Micro-benchmark: the chunked body decoder (validates every framing
//! byte while relaying).
//!
//!     cargo bench --bench chunked_decoder
//!
//! A plain loop over `shardgate::http1::body::ChunkedDecoder::decode`
//! (harness = false, std::time only): prints ns per body and bytes per ns
//! for a large body of 4 KiB chunks and a small three-chunk body, best of
//! several batches. For comparing builds on the same machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shardgate::http1::body::ChunkedDecoder;

const BATCHES: usize = 7;
const BATCH_TIME: Duration = Duration::from_millis(200);

/// A chunked body of `chunks` chunks of `size` bytes, with a chunk
/// extension on the first and a trailer field at the end.
fn body(chunks: usize, size: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..chunks {
        b.extend_from_slice(format!("{size:x}").as_bytes());
        if i == 0 {
            b.extend_from_slice(b";name=value");
        }
        b.extend_from_slice(b"\r\n");
        b.extend(std::iter::repeat_n(b'x', size));
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"0\r\nx-checksum: 1234\r\n\r\n");
    b
}

fn bench(name: &str, input: &[u8]) {
    let decode = |input: &[u8]| {
        let mut d = ChunkedDecoder::default();
        let mut data = 0usize;
        let step = d.decode(input, |r| data += r.len()).expect("valid chunked body");
        assert!(step.done && step.consumed == input.len());
        data
    };
    let payload = decode(input);
    let best = best_ns_per_op(|| {
        black_box(decode(black_box(input)));
    });
    println!(
        "ChunkedDecoder::decode, {name} ({} bytes, {payload} payload): {best:.1} ns/op, {:.2} bytes/ns \
         (best of {BATCHES} batches)",
        input.len(),
        input.len() as f64 / best
    );
}

fn main() {
    println!("cargo bench --bench chunked_decoder");
    bench("64 KiB in 4 KiB chunks", &body(16, 4096));
    bench("3 chunks of 100 B", &body(3, 100));
}

/// Runs `op` in batches of about `BATCH_TIME`; the fastest batch's ns/op.
fn best_ns_per_op(mut op: impl FnMut()) -> f64 {
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            op();
        }
        if t.elapsed() >= BATCH_TIME / 10 {
            n *= 10;
            break;
        }
        n *= 2;
    }
    (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                op();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}
