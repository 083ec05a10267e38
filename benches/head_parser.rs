//! Micro-benchmark: the request head parser on a typical browser head.
//!
//!     cargo bench --bench head_parser
//!
//! A plain loop over `shardgate::http1::parse::parse_request` (harness =
//! false, std::time only): prints ns per parse and bytes per ns, best of
//! several batches (the fastest batch is the one least disturbed by the
//! rest of a shared machine), beside bare `httparse` on the same bytes in
//! the same run: the ratio is the cost of shardgate's strictness checks
//! and header classification, and it stays meaningful on a noisy machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shardgate::http1::parse::{parse_request, HeadLimits, RequestHead};

/// A Firefox-like GET, about 400 bytes: what the proxy parses most.
const HEAD: &[u8] = b"GET /api/v1/items?page=2&sort=desc HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
\r\n";

const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 16 * 1024, max_headers: 100, max_uri_bytes: 8 * 1024 };
const BATCHES: usize = 7;
const BATCH_TIME: Duration = Duration::from_millis(200);

fn main() {
    let mut head = RequestHead::default();
    // The parser must accept the head whole, or the figure means nothing.
    assert_eq!(parse_request(HEAD, &LIMITS, &mut head).ok(), Some(true));
    assert_eq!(head.head_len, HEAD.len());

    let best = best_ns_per_op(|| {
        let done = parse_request(black_box(HEAD), &LIMITS, &mut head);
        black_box((&done, &head));
    });
    let bare = best_ns_per_op(|| {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let done = req.parse(black_box(HEAD));
        black_box((&done, &req));
    });
    println!("cargo bench --bench head_parser");
    println!(
        "parse_request, {}-byte browser head, {} headers: {best:.1} ns/op, {:.2} bytes/ns (best of {BATCHES} batches)",
        HEAD.len(),
        head.headers.len(),
        HEAD.len() as f64 / best
    );
    println!("httparse alone, same head: {bare:.1} ns/op; parse_request / httparse = {:.2}x", best / bare);
}

/// Runs `op` in batches of about `BATCH_TIME`; the fastest batch's ns/op.
fn best_ns_per_op(mut op: impl FnMut()) -> f64 {
    // Calibrate: how many ops fill one batch.
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
