//! One latency distribution of one shard (total, upstream connect or
//! upstream response head): an hdrhistogram for the quantiles, plus exact
//! counts in fixed Prometheus buckets and an exact sum.
//!
//! Why both: Prometheus buckets must be exact at their bounds (a value of
//! exactly 1 ms is `le="0.001"`), which hdrhistogram's value equivalence
//! (0.1 % at 3 significant figures) does not promise; the quantiles want
//! hdrhistogram's resolution. Recording costs one hdrhistogram increment,
//! a binary search over 16 bounds and two additions: no allocation.
//!
//! `!Sync` by use, not by type: the shard records, the admin thread gets a
//! clone (`Clone + Send`) and merges clones with [`Latency::merge`].

use std::time::Duration;

use hdrhistogram::Histogram;

/// Upper bounds (`le`) of the Prometheus buckets, in nanoseconds: 100 µs
/// to 10 s in 1-2.5-5 steps, what a proxy's latencies span (a cached
/// upstream answer on the loopback to a slow backend at its timeout).
/// Values above the last bound fall in `+Inf` only.
pub const BUCKET_BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The largest value the quantile histogram tells apart, in microseconds
/// (60 s); longer requests (a long relay) count as 60 s in the quantiles
/// and the max, and exactly in the buckets, the sum and the count.
pub const HIGHEST_TRACKABLE_MICROS: u64 = 60_000_000;
/// Quantile precision: 3 significant figures (0.1 %), ~140 KiB per
/// histogram; three per shard.
pub const SIGNIFICANT_FIGURES: u8 = 3;

/// The quantiles `/metrics` and `/stats` report, and their label values.
pub const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

#[derive(Clone)]
pub struct Latency {
    /// In microseconds.
    hdr: Histogram<u64>,
    /// Per bucket, not cumulative: `[i]` counts values in
    /// `(BOUNDS[i-1], BOUNDS[i]]`; the last one counts values above 10 s.
    buckets: [u64; BUCKET_BOUNDS_NANOS.len() + 1],
    sum_nanos: u64,
    count: u64,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency").field("count", &self.count).field("sum_nanos", &self.sum_nanos).finish()
    }
}

/// Precomputed quantiles, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    /// p50, p90, p99, p99.9 (as [`QUANTILES`]).
    pub values: [f64; 4],
    pub max: f64,
    pub count: u64,
}

impl Latency {
    pub fn new() -> Latency {
        Latency {
            // The bounds are constants that hdrhistogram accepts (a unit
            // test builds one): this cannot fail at run time.
            hdr: Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, SIGNIFICANT_FIGURES)
                .expect("constant histogram bounds are valid"),
            buckets: [0; BUCKET_BOUNDS_NANOS.len() + 1],
            sum_nanos: 0,
            count: 0,
        }
    }

    /// Records one value (on the shard, per request).
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_NANOS.partition_point(|&le| le < nanos);
        self.buckets[bucket] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
        self.count += 1;
        self.hdr.saturating_record(nanos / 1_000);
    }

    /// Adds `other` (another shard's clone) into this one.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: `add` cannot fail for want of range.
        if let Err(e) = self.hdr.add(&other.hdr) {
            tracing::debug!(error = ?e, "latency histogram merge");
        }
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
        self.count += other.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }

    /// Cumulative bucket counts, one per bound, then `+Inf` (= the count),
    /// as Prometheus `_bucket{le=…}` wants them.
    pub fn cumulative(&self) -> [u64; BUCKET_BOUNDS_NANOS.len() + 1] {
        let mut out = self.buckets;
        for i in 1..out.len() {
            out[i] += out[i - 1];
        }
        out
    }

    pub fn quantiles(&self) -> Quantiles {
        if self.count == 0 {
            return Quantiles { values: [0.0; 4], max: 0.0, count: 0 };
        }
        let micros = |v: u64| v as f64 / 1e6;
        Quantiles {
            values: QUANTILES.map(|(q, _)| micros(self.hdr.value_at_quantile(q))),
            max: micros(self.hdr.max()),
            count: self.count,
        }
    }
}

/// A bound as Prometheus writes `le` (seconds, shortest exact decimal).
pub fn bound_label(nanos: u64) -> String {
    format!("{}", nanos as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket_and_one_nanosecond_more_in_the_next() {
        let mut l = Latency::new();
        l.record(micros(100)); // le=0.0001
        l.record(Duration::from_nanos(100_001)); // le=0.00025
        l.record(Duration::ZERO); // le=0.0001
        l.record(Duration::from_secs(10)); // le=10
        l.record(Duration::from_secs(11)); // +Inf only
        let c = l.cumulative();
        assert_eq!(c[0], 2);
        assert_eq!(c[1], 3);
        assert_eq!(c[14], 3, "nothing between 250 µs and 5 s");
        assert_eq!(c[15], 4, "10 s is le=10");
        assert_eq!(c[16], 5, "+Inf equals the count");
        assert_eq!(l.count(), 5);
        let want = 100e-6 + 100_001e-9 + 10.0 + 11.0;
        assert!((l.sum_seconds() - want).abs() < 1e-9, "{}", l.sum_seconds());
    }

    #[test]
    fn bucket_bounds_are_increasing_and_labelled_in_seconds() {
        assert!(BUCKET_BOUNDS_NANOS.windows(2).all(|w| w[0] < w[1]));
        let labels: Vec<String> = BUCKET_BOUNDS_NANOS.iter().map(|&b| bound_label(b)).collect();
        assert_eq!(labels[0], "0.0001");
        assert_eq!(labels[1], "0.00025");
        assert_eq!(labels[3], "0.001");
        assert_eq!(labels[12], "1");
        assert_eq!(labels[15], "10");
    }

    #[test]
    fn quantiles_within_the_histogram_precision() {
        let mut l = Latency::new();
        for v in 1..=1000 {
            l.record(micros(v * 10)); // 10 µs .. 10 ms
        }
        let q = l.quantiles();
        assert_eq!(q.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-6;
        assert!(close(q.values[0], 0.005), "p50 {}", q.values[0]);
        assert!(close(q.values[1], 0.009), "p90 {}", q.values[1]);
        assert!(close(q.values[2], 0.0099), "p99 {}", q.values[2]);
        assert!(close(q.values[3], 0.00999), "p99.9 {}", q.values[3]);
        assert!(close(q.max, 0.01), "max {}", q.max);
        assert_eq!(Latency::new().quantiles(), Quantiles { values: [0.0; 4], max: 0.0, count: 0 });
    }

    #[test]
    fn values_past_the_trackable_range_saturate_in_the_quantiles_only() {
        let mut l = Latency::new();
        l.record(Duration::from_secs(3600));
        let q = l.quantiles();
        assert!((q.max - 60.0).abs() < 0.1, "{}", q.max);
        assert!((l.sum_seconds() - 3600.0).abs() < 1e-6);
        assert_eq!(l.cumulative()[15], 0);
        assert_eq!(l.cumulative()[16], 1);
    }

    #[test]
    fn merging_two_shards_adds_buckets_sums_counts_and_quantiles() {
        let (mut a, mut b) = (Latency::new(), Latency::new());
        for _ in 0..99 {
            a.record(micros(200));
        }
        b.record(Duration::from_secs(2));
        let mut all = Latency::new();
        all.merge(&a);
        all.merge(&b);
        assert_eq!(all.count(), 100);
        assert_eq!(all.cumulative()[1], 99);
        assert_eq!(all.cumulative()[13], 100, "2 s is le=2.5");
        assert!((all.sum_seconds() - (99.0 * 200e-6 + 2.0)).abs() < 1e-9);
        let q = all.quantiles();
        assert!((q.values[0] - 200e-6).abs() < 1e-6, "{}", q.values[0]);
        assert!((q.max - 2.0).abs() < 0.002, "{}", q.max);
    }
}
