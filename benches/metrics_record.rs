//! Micro-benchmark: what the metrics part of the record step costs per
//! request (`ShardMetrics::record`: the labelled counts of a route and an
//! endpoint, three latency histograms), against the budget of issue 12
//! (CPU per request with metrics on within +5 % of off).
//!
//!     cargo bench --bench metrics_record
//!
//! A proxied request with all three timings, latencies varied so the
//! histogram cells touched change; best of several batches, ns per
//! request. Compare with the proxy's CPU per request in
//! docs/benchmarks.md. harness = false, std only.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardgate::config::Config;
use shardgate::downstream::outcome::Outcome;
use shardgate::observe::metrics::ShardMetrics;
use shardgate::observe::record::Record;
use shardgate::shard::generation::{Generation, ShardGeneration};
use shardgate::shard::identity::Identities;
use shardgate::upstream::balance::Endpoint;

const BATCHES: usize = 7;
const BATCH_TIME: Duration = Duration::from_millis(200);

const CONFIG: &str = "[[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
    [[routes]]\nname = \"api\"\ncluster = \"c\"\n[routes.match]\npath_prefix = \"/api/\"\n\
    [[routes]]\nname = \"rest\"\ncluster = \"c\"\n\
    [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n";

fn main() {
    let config = Arc::new(Config::parse(CONFIG, "bench.toml").expect("bench config"));
    let (generation, _) = Generation::build(1, config, &mut Identities::default(), None).expect("generation");
    let generation = ShardGeneration::new(0, Arc::new(generation), None);
    let metrics = ShardMetrics::default();
    let mut outcome = Outcome::new(Instant::now());
    outcome.status = 200;
    outcome.route = Some(1);
    outcome.cluster = Some(0);
    outcome.bytes_received = 120;
    outcome.bytes_sent = 900;
    let mut best = f64::MAX;
    let mut i = 0u64;
    for _ in 0..BATCHES {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < BATCH_TIME {
            for _ in 0..256 {
                i = i.wrapping_add(1);
                let index = (i & 1) as usize;
                outcome.endpoint = Some(Endpoint { cluster: 0, index, id: generation.shared.endpoints[0][index] });
                outcome.timings.total = Duration::from_micros(50 + (i * 7919) % 5000);
                outcome.timings.upstream_connect = Some(Duration::from_micros(20 + i % 200));
                outcome.timings.upstream_head = Some(Duration::from_micros(40 + (i * 31) % 3000));
                let record = Record { path: b"/x", ..Record::of_outcome(&generation, &outcome) };
                metrics.record(black_box(&record));
            }
            n += 256;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("metrics record   {best:8.1} ns per request (labelled counts + 3 latency histograms)");
}
