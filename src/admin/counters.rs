//! Per-shard counters. Each shard is the only writer of its own cells, so
//! an increment is a plain load and store (no locked instruction, no
//! cache-line ping-pong); the admin thread only reads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::downstream::outcome::Outcome;
use crate::upstream::health::gauge::EjectionGauge;
use crate::upstream::pool_gauge::IdleGauge;

#[derive(Debug, Default)]
pub struct ShardCounters {
    accepted: AtomicU64,
    requests: AtomicU64,
    active: AtomicU64,
    upstream_connects: AtomicU64,
    upstream_reused: AtomicU64,
    upstream_retries: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_resumed: AtomicU64,
    tls13: AtomicU64,
    tls12: AtomicU64,
    tls_failures: AtomicU64,
    idle_without_buffer: AtomicU64,
    /// Finished requests by status class: 1xx..5xx, and none sent.
    statuses: [AtomicU64; 6],
    /// How the admin thread asks this shard for its metrics snapshot.
    pub metrics: crate::observe::metrics::MetricsLink,
    /// Access log lines dropped because the writer was behind.
    access_log_dropped: AtomicU64,
    /// Idle pooled upstream connections per endpoint slot, written by the
    /// shard's pool (`upstream/pool_gauge.rs`).
    pub pool_idle: Arc<IdleGauge>,
    /// Outlier ejections per endpoint slot, written by the shard's
    /// endpoint states (`upstream/health/gauge.rs`).
    pub ejections: Arc<EjectionGauge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub accepted: u64,
    pub requests: u64,
    pub active: u64,
    pub upstream_connects: u64,
    pub upstream_reused: u64,
    pub upstream_retries: u64,
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    pub tls13: u64,
    pub tls12: u64,
    pub tls_failures: u64,
    /// Keep-alive connections waiting for a request with no head buffer
    /// (see `downstream::conn::IN_USE_GAP`).
    pub idle_without_buffer: u64,
    /// Finished requests by status class: `[1xx, 2xx, 3xx, 4xx, 5xx, none]`.
    pub statuses: [u64; 6],
    /// Access log lines this shard dropped (the writer's queue was full).
    pub access_log_dropped: u64,
}

/// Single-writer increment: only the owning shard thread calls these.
#[inline]
fn add(cell: &AtomicU64, n: u64) {
    cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
}

impl ShardCounters {
    pub fn connection_opened(&self) {
        add(&self.accepted, 1);
        add(&self.active, 1);
    }
    pub fn connection_closed(&self) {
        add(&self.active, u64::MAX); // wrapping -1
    }
    pub fn request(&self) {
        add(&self.requests, 1);
    }
    /// A request finished (the record step).
    pub fn request_done(&self, outcome: &Outcome) {
        let class = match outcome.status {
            100..=599 => (outcome.status / 100 - 1) as usize,
            _ => 5,
        };
        add(&self.statuses[class], 1);
    }
    pub fn upstream_connect(&self) {
        add(&self.upstream_connects, 1);
    }
    pub fn upstream_reuse(&self) {
        add(&self.upstream_reused, 1);
    }
    pub fn upstream_retry(&self) {
        add(&self.upstream_retries, 1);
    }
    /// A completed downstream TLS handshake.
    pub fn tls_handshake(&self, tls13: bool, resumed: bool) {
        add(&self.tls_handshakes, 1);
        add(if tls13 { &self.tls13 } else { &self.tls12 }, 1);
        if resumed {
            add(&self.tls_resumed, 1);
        }
    }
    pub fn tls_failure(&self) {
        add(&self.tls_failures, 1);
    }
    /// A connection starts (`true`) or stops waiting without a buffer.
    pub fn access_log_dropped(&self, lines: u64) {
        add(&self.access_log_dropped, lines);
    }
    pub fn idle_without_buffer(&self, waiting: bool) {
        add(&self.idle_without_buffer, if waiting { 1 } else { u64::MAX }); // MAX: wrapping -1
    }
    pub fn active(&self) -> u64 {
        self.active.load(Relaxed)
    }
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            accepted: self.accepted.load(Relaxed),
            requests: self.requests.load(Relaxed),
            active: self.active.load(Relaxed),
            upstream_connects: self.upstream_connects.load(Relaxed),
            upstream_reused: self.upstream_reused.load(Relaxed),
            upstream_retries: self.upstream_retries.load(Relaxed),
            tls_handshakes: self.tls_handshakes.load(Relaxed),
            tls_resumed: self.tls_resumed.load(Relaxed),
            tls13: self.tls13.load(Relaxed),
            tls12: self.tls12.load(Relaxed),
            tls_failures: self.tls_failures.load(Relaxed),
            idle_without_buffer: self.idle_without_buffer.load(Relaxed),
            statuses: std::array::from_fn(|i| self.statuses[i].load(Relaxed)),
            access_log_dropped: self.access_log_dropped.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_close_and_requests() {
        let c = ShardCounters::default();
        c.connection_opened();
        c.connection_opened();
        c.connection_closed();
        c.request();
        let s = c.snapshot();
        assert_eq!((s.accepted, s.active, s.requests), (2, 1, 1));
    }
}
