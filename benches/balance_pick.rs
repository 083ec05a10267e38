//! Micro-benchmark: choosing an endpoint among 100, per algorithm.
//!
//!     cargo bench --bench balance_pick
//!
//! Two figures per algorithm, best of several batches (the fastest batch
//! is the one least disturbed by the rest of a shared machine):
//! - `pick`: the algorithm alone over plain vectors (`balance::Fixed`);
//! - `select`: the whole select phase as a request runs it — the shard's
//!   endpoint state table, the request's tried set, the config's weights —
//!   over a real generation built from config text.
//!
//! Keyed algorithms get a different key each pick (the hash of a counter),
//! so the ring's binary search and Maglev's table read are not always the
//! same cache line.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardgate::config::Config;
use shardgate::shard::generation::{Generation, ShardGeneration};
use shardgate::shard::identity::Identities;
use shardgate::upstream::balance::{
    self, hash64, Fixed, LeastRequest, Maglev, MaglevTable, Pick, Random, Ring, RingHash, Rng, RoundRobin, Tried,
};
use shardgate::upstream::endpoint_state::EndpointStates;

const ENDPOINTS: usize = 100;
const BATCHES: usize = 7;
const BATCH_TIME: Duration = Duration::from_millis(200);

fn main() {
    println!("cargo bench --bench balance_pick   ({ENDPOINTS} endpoints, ns per pick, best of {BATCHES} batches)");
    let names: Vec<String> = (0..ENDPOINTS).map(|i| format!("127.0.0.1:{}", 10_000 + i)).collect();
    let uneven: Vec<u32> = (0..ENDPOINTS).map(|i| 1 + (i % 3) as u32).collect();
    let equal = Fixed::equal(ENDPOINTS);
    let weighted = Fixed::weighted(&uneven);
    let mut keyed = Fixed::equal(ENDPOINTS);
    let mut n = 0u64;

    let rr = RoundRobin::new(0);
    report("pick round_robin (equal weights)", best_ns_per_op(|| black_box(rr.pick(black_box(&equal)))));
    report("pick round_robin (weights 1..3, smooth)", best_ns_per_op(|| black_box(rr.pick(black_box(&weighted)))));
    let lr = LeastRequest::new(Rng::seeded(1));
    report("pick least_request (equal weights)", best_ns_per_op(|| black_box(lr.pick(black_box(&equal)))));
    report("pick least_request (weights 1..3)", best_ns_per_op(|| black_box(lr.pick(black_box(&weighted)))));
    let random = Random::new(Rng::seeded(2));
    report("pick random (equal weights)", best_ns_per_op(|| black_box(random.pick(black_box(&equal)))));
    report("pick random (weights 1..3)", best_ns_per_op(|| black_box(random.pick(black_box(&weighted)))));
    let ring = RingHash { ring: Arc::new(Ring::build(&names, &[1; ENDPOINTS], 1024)), fallback: RoundRobin::new(0) };
    report(
        &format!("pick ring_hash ({} points)", ring.ring.len()),
        best_ns_per_op(|| {
            n += 1;
            keyed.key = Some(hash64(0, &n.to_le_bytes()));
            black_box(ring.pick(black_box(&keyed)))
        }),
    );
    let maglev =
        Maglev { table: Arc::new(MaglevTable::build(&names, &[1; ENDPOINTS], 65_537)), fallback: RoundRobin::new(0) };
    report(
        "pick maglev (65537 entries)",
        best_ns_per_op(|| {
            n += 1;
            keyed.key = Some(hash64(0, &n.to_le_bytes()));
            black_box(maglev.pick(black_box(&keyed)))
        }),
    );
    report(
        "hash of a 12-byte key (FNV-1a + fmix64)",
        best_ns_per_op(|| black_box(hash64(0, black_box(b"user-1234567")))),
    );

    for (lb, weighted, extra) in [
        ("round_robin", false, ""),
        ("round_robin", true, ""),
        ("least_request", false, ""),
        ("random", false, ""),
        ("random", true, ""),
        ("ring_hash", false, "hash_key = { header = \"x-user\" }\n"),
        ("maglev", false, "hash_key = { header = \"x-user\" }\n"),
    ] {
        let (generation, states) = generation(&names, weighted.then_some(&uneven[..]), lb, extra);
        let tried = Tried::default();
        let keyed = lb.ends_with("hash") || lb == "maglev";
        let ns = best_ns_per_op(|| {
            n += 1;
            let key = keyed.then(|| hash64(0, &n.to_le_bytes()));
            black_box(balance::select(&generation, &states, 0, &tried, key).ok())
        });
        report(&format!("select {lb}{}", if weighted { " (weights 1..3)" } else { "" }), ns);
    }
}

/// A shard's view of a generation with one cluster of `names`, with
/// `weights` when given.
fn generation(names: &[String], weights: Option<&[u32]>, lb: &str, extra: &str) -> (ShardGeneration, EndpointStates) {
    let list: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| match weights {
            Some(w) => format!("{{ address = \"{n}\", weight = {} }}", w[i]),
            None => format!("\"{n}\""),
        })
        .collect();
    let text = format!(
        "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [{}]\nlb = \"{lb}\"\n{extra}",
        list.join(", ")
    );
    let config = Arc::new(Config::parse(&text, "bench.toml").expect("bench config"));
    let (generation, _) = Generation::build(1, config, &mut Identities::default(), None).expect("generation");
    (ShardGeneration::new(0, Arc::new(generation), None), EndpointStates::default())
}

fn report(what: &str, ns: f64) {
    println!("{what:<45} {ns:>7.1} ns");
}

/// Runs `op` in batches of about `BATCH_TIME`; the fastest batch's ns/op.
fn best_ns_per_op<T>(mut op: impl FnMut() -> T) -> f64 {
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            black_box(op());
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
                black_box(op());
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}
