//! What one thread measured, and how threads' results are merged.
//!
//! Each thread records into its own `Stats` with no sharing; the main thread
//! merges them once at the end (as shardgate's admin endpoint merges shard
//! metrics on scrape). Only requests whose intended send time lies in the
//! measured window are recorded.

use crate::outcome::ErrorKind;
use crate::tls::Handshake;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latency histogram bounds, in microseconds: 1 µs .. 60 s.
pub const LATENCY_MIN_US: u64 = 1;
pub const LATENCY_MAX_US: u64 = 60_000_000;
/// Significant figures kept: values are exact to 0.1 %.
pub const LATENCY_SIGFIGS: u8 = 3;

/// Status codes are three digits (RFC 9110 §15), so 0..=999 index an array.
const STATUS_SLOTS: usize = 1000;

#[derive(Clone, Debug)]
pub struct Stats {
    /// Latency of every complete response (any status), µs.
    pub latency: Histogram<u64>,
    /// Latencies above `LATENCY_MAX_US`, recorded as the maximum.
    pub latency_clamped: u64,
    pub ok: u64,
    pub errors: [u64; ErrorKind::ALL.len()],
    /// The first error message seen of each kind: counts say how often,
    /// this says what (e.g. "connect: Connection refused").
    pub error_samples: [Option<String>; ErrorKind::ALL.len()],
    /// Count of complete responses by status code.
    pub status_codes: Vec<u64>,
    /// Head and body bytes of complete responses.
    pub bytes_read: u64,
    /// In flight when the run's hard stop came (sent in any phase, with
    /// its --timeout not yet expired): neither ok nor an error.
    pub unfinished: u64,
    /// Open loop only: scheduled in the window but never sent because the
    /// connection was still busy when the run ended.
    pub unsent: u64,
    /// Every exchange that finished (ok or failed) in any phase: warmup,
    /// window and drain. What the server handled during the whole run, so
    /// a server's CPU time sampled before and after the run divides by it.
    pub exchanges: u64,
    /// Idempotent requests sent a second time, on a new connection, because
    /// the reused keep-alive connection they went out on was closed before
    /// any byte of a response (what browsers and HTTP libraries do). The
    /// second try's outcome is what the other counts hold; this says how
    /// often a server closed idle connections under a client's feet.
    pub retried: u64,
    /// TLS handshakes (https targets only).
    pub tls: TlsStats,
}

/// TLS handshakes that led to a complete response. `full` and `resumed`
/// count those of requests intended in the measured window (the same rule
/// as every other count); `all_phases` and the negotiated names count
/// warmup and drain too (keep-alive connections are opened in warmup).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsStats {
    pub full: u64,
    pub resumed: u64,
    pub all_phases: u64,
    /// Protocol version name -> handshakes ("TLSv1_3").
    pub versions: BTreeMap<&'static str, u64>,
    /// Cipher suite name -> handshakes ("TLS13_AES_256_GCM_SHA384").
    pub cipher_suites: BTreeMap<&'static str, u64>,
    /// Key exchange group name -> handshakes ("X25519").
    pub groups: BTreeMap<&'static str, u64>,
}

impl TlsStats {
    pub fn record(&mut self, h: &Handshake, in_window: bool) {
        self.all_phases += 1;
        if in_window && h.full {
            self.full += 1;
        } else if in_window {
            self.resumed += 1;
        }
        *self.versions.entry(h.version).or_default() += 1;
        *self.cipher_suites.entry(h.cipher_suite).or_default() += 1;
        *self.groups.entry(h.group).or_default() += 1;
    }

    pub fn merge(&mut self, other: &TlsStats) {
        self.full += other.full;
        self.resumed += other.resumed;
        self.all_phases += other.all_phases;
        for (mine, theirs) in [
            (&mut self.versions, &other.versions),
            (&mut self.cipher_suites, &other.cipher_suites),
            (&mut self.groups, &other.groups),
        ] {
            for (name, n) in theirs {
                *mine.entry(name).or_default() += n;
            }
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            latency: Histogram::new_with_bounds(LATENCY_MIN_US, LATENCY_MAX_US, LATENCY_SIGFIGS)
                .expect("constant histogram bounds are valid"),
            latency_clamped: 0,
            ok: 0,
            errors: [0; ErrorKind::ALL.len()],
            error_samples: Default::default(),
            status_codes: vec![0; STATUS_SLOTS],
            bytes_read: 0,
            unfinished: 0,
            unsent: 0,
            exchanges: 0,
            retried: 0,
            tls: TlsStats::default(),
        }
    }

    /// A complete response; `ok` says whether its status was the expected one.
    pub fn record_response(&mut self, latency: Duration, status: u16, bytes: u64, ok: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if us > LATENCY_MAX_US {
            self.latency_clamped += 1;
        }
        self.latency.saturating_record(us.clamp(LATENCY_MIN_US, LATENCY_MAX_US));
        if let Some(slot) = self.status_codes.get_mut(status as usize) {
            *slot += 1;
        }
        self.bytes_read += bytes;
        if ok {
            self.ok += 1;
        } else {
            self.count_error(ErrorKind::Status, &format_args!("status {status}"));
        }
    }

    /// A request that got no complete response.
    pub fn record_failure(&mut self, kind: ErrorKind, detail: &dyn std::fmt::Display) {
        self.count_error(kind, detail);
    }

    fn count_error(&mut self, kind: ErrorKind, detail: &dyn std::fmt::Display) {
        self.errors[kind.index()] += 1;
        // Formatting only the first keeps the error path allocation-free
        // when a broken server fails every request.
        let sample = &mut self.error_samples[kind.index()];
        if sample.is_none() {
            *sample = Some(detail.to_string());
        }
    }

    pub fn error_sample(&self, kind: ErrorKind) -> Option<&str> {
        self.error_samples[kind.index()].as_deref()
    }

    pub fn error_count(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Requests that finished one way or the other: ok plus every error.
    pub fn requests(&self) -> u64 {
        self.ok + self.total_errors()
    }

    /// Fold another thread's results into this one.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so `add` cannot fail; saturate anyway
        // rather than lose a whole thread's histogram to an edge case.
        if self.latency.add(&other.latency).is_err() {
            for v in other.latency.iter_recorded() {
                self.latency.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.latency_clamped += other.latency_clamped;
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors.iter()) {
            *a += b;
        }
        for (a, b) in self.error_samples.iter_mut().zip(other.error_samples.iter()) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        for (a, b) in self.status_codes.iter_mut().zip(other.status_codes.iter()) {
            *a += b;
        }
        self.bytes_read += other.bytes_read;
        self.unfinished += other.unfinished;
        self.unsent += other.unsent;
        self.exchanges += other.exchanges;
        self.retried += other.retried;
        self.tls.merge(&other.tls);
    }

    /// Non-zero status counts, ascending by code.
    pub fn statuses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.status_codes.iter().enumerate().filter(|(_, &n)| n > 0).map(|(code, &n)| (code as u16, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn merge_across_threads_equals_recording_in_one() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        let mut one = Stats::new();
        for i in 1..=1000u64 {
            let (target, status) = if i % 2 == 0 { (&mut a, 200) } else { (&mut b, 500) };
            target.record_response(us(i * 10), status, 100, status == 200);
            one.record_response(us(i * 10), status, 100, status == 200);
        }
        a.record_failure(ErrorKind::Timeout, &"late");
        b.record_failure(ErrorKind::Connect, &"refused");
        one.record_failure(ErrorKind::Timeout, &"late");
        one.record_failure(ErrorKind::Connect, &"refused");
        b.unsent = 3;
        one.unsent = 3;
        a.exchanges = 7;
        b.exchanges = 5;

        let mut merged = Stats::new();
        merged.merge(&a);
        merged.merge(&b);

        assert_eq!(merged.latency.len(), 1000);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(merged.latency.value_at_quantile(q), one.latency.value_at_quantile(q));
        }
        assert_eq!(merged.latency.max(), one.latency.max());
        assert_eq!(merged.ok, 500);
        assert_eq!(merged.error_count(ErrorKind::Status), 500);
        assert_eq!(merged.error_count(ErrorKind::Timeout), 1);
        assert_eq!(merged.error_count(ErrorKind::Connect), 1);
        assert_eq!(merged.requests(), 1002);
        assert_eq!(merged.bytes_read, 100_000);
        assert_eq!(merged.unsent, 3);
        assert_eq!(merged.exchanges, 12);
        assert_eq!(merged.error_sample(ErrorKind::Connect), Some("refused"));
        assert_eq!(merged.error_sample(ErrorKind::Timeout), Some("late"));
        assert_eq!(merged.error_sample(ErrorKind::Status), Some("status 500"));
        assert_eq!(merged.error_sample(ErrorKind::Io), None);
        assert_eq!(merged.statuses().collect::<Vec<_>>(), vec![(200, 500), (500, 500)]);
    }

    #[test]
    fn tls_handshakes_merge_and_only_the_window_is_counted_as_full_or_resumed() {
        let full =
            Handshake { full: true, version: "TLSv1_3", cipher_suite: "TLS13_AES_256_GCM_SHA384", group: "X25519" };
        let resumed = Handshake { full: false, ..full };
        let mut a = TlsStats::default();
        let mut b = TlsStats::default();
        a.record(&full, true);
        a.record(&full, false);
        b.record(&resumed, true);
        b.record(&full, true);
        a.merge(&b);
        assert_eq!((a.full, a.resumed, a.all_phases), (2, 1, 4));
        assert_eq!(a.versions["TLSv1_3"], 4);
        assert_eq!(a.groups["X25519"], 4);
    }

    #[test]
    fn latency_is_clamped_to_bounds() {
        let mut s = Stats::new();
        s.record_response(Duration::ZERO, 200, 0, true);
        s.record_response(Duration::from_secs(120), 200, 0, true);
        assert_eq!(s.latency.min(), LATENCY_MIN_US);
        assert!(s.latency.max() >= LATENCY_MAX_US);
        assert_eq!(s.latency_clamped, 1);
        assert_eq!(s.latency.len(), 2);
    }

    #[test]
    fn histogram_keeps_three_significant_figures() {
        let mut s = Stats::new();
        s.record_response(us(123_456), 200, 0, true);
        let p = s.latency.value_at_quantile(0.5);
        assert!(p.abs_diff(123_456) <= 123, "{p}");
    }
}
