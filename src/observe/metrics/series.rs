//! What one labelled series counts, and the snapshot a shard hands the
//! admin thread: plain data (`Send`), merged there by label.

use crate::downstream::outcome::Outcome;
use crate::error::ErrorKind;

use super::latency::Latency;

/// Status classes in label order: `1xx`..`5xx`, then `none` (no response
/// sent), as [`Outcome::status_class`] names them.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Counts of requests that share a label set (a listener/route/cluster
/// triple, or an endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCells {
    /// By [`STATUS_CLASSES`].
    pub statuses: [u64; 6],
    /// By `ErrorKind::index`.
    pub errors: [u64; ErrorKind::COUNT],
    /// Request bytes from clients.
    pub received: u64,
    /// Response bytes to clients.
    pub sent: u64,
    /// Tries beyond the first.
    pub retries: u64,
}

impl Default for RequestCells {
    fn default() -> RequestCells {
        RequestCells { statuses: [0; 6], errors: [0; ErrorKind::COUNT], received: 0, sent: 0, retries: 0 }
    }
}

impl RequestCells {
    #[inline]
    pub fn add(&mut self, o: &Outcome) {
        self.statuses[status_index(o.status)] += 1;
        if let Some(kind) = o.error {
            self.errors[kind.index()] += 1;
        }
        self.received += o.bytes_received;
        self.sent += o.bytes_sent;
        self.retries += u64::from(o.retries);
    }

    pub fn merge(&mut self, other: &RequestCells) {
        for (a, b) in self.statuses.iter_mut().zip(other.statuses) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.received += other.received;
        self.sent += other.sent;
        self.retries += other.retries;
    }

    pub fn requests(&self) -> u64 {
        self.statuses.iter().sum()
    }
}

/// Index into [`STATUS_CLASSES`].
#[inline]
pub fn status_index(status: u16) -> usize {
    match status {
        100..=599 => (status / 100 - 1) as usize,
        _ => 5,
    }
}

/// Labels of a request series: names, never positions, so that a series
/// outlives the generation it was first seen in. `route` is empty for a
/// request no route matched, `cluster` for a route that answers itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestLabels {
    pub listener: String,
    pub route: String,
    pub cluster: String,
}

/// Labels of an endpoint series: the cluster's name and the endpoint as
/// written (`host:port`), what its `EndpointId` slot is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointLabels {
    pub cluster: String,
    pub endpoint: String,
}

/// What the admin asks a shard for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything `/metrics` shows.
    Metrics,
    /// Only the total latency (`/stats`): a cheaper copy.
    Stats,
}

/// Which latency: index into [`ShardSnapshot::latency`].
pub const TOTAL: usize = 0;
pub const UPSTREAM_CONNECT: usize = 1;
pub const UPSTREAM_HEAD: usize = 2;

/// One shard's metrics at one moment, as it hands them to the admin
/// thread.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub requests: Vec<(RequestLabels, RequestCells)>,
    pub endpoints: Vec<(EndpointLabels, RequestCells)>,
    /// Idle pooled connections per endpoint of the current generation.
    pub pool_idle: Vec<(EndpointLabels, u64)>,
    /// Tries in flight per endpoint of the current generation.
    pub in_flight: Vec<(EndpointLabels, u64)>,
    /// Open downstream connections per listener (by name).
    pub listener_connections: Vec<(String, u64)>,
    /// Downstream TLS handshakes per TLS listener (by name).
    pub listener_tls: Vec<(String, super::shard::ListenerTls)>,
    /// Total, upstream connect, upstream response head ([`TOTAL`], …);
    /// with [`Scope::Stats`] only the first is filled.
    pub latency: Vec<Latency>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn cells_count_status_class_error_kind_bytes_and_retries() {
        let mut c = RequestCells::default();
        let mut o = Outcome::new(Instant::now());
        o.status = 502;
        o.error = Some(ErrorKind::UpstreamConnectFailed);
        o.bytes_received = 40;
        o.bytes_sent = 100;
        o.retries = 2;
        c.add(&o);
        o.status = 0;
        o.error = Some(ErrorKind::DownstreamClosed);
        c.add(&o);
        assert_eq!(c.statuses, [0, 0, 0, 0, 1, 1]);
        assert_eq!(c.errors[ErrorKind::UpstreamConnectFailed.index()], 1);
        assert_eq!(c.errors[ErrorKind::DownstreamClosed.index()], 1);
        assert_eq!((c.received, c.sent, c.retries, c.requests()), (80, 200, 4, 2));
        let mut m = c;
        m.merge(&c);
        assert_eq!((m.statuses[4], m.received, m.requests()), (2, 160, 4));
        for (status, class) in [(100, "1xx"), (204, "2xx"), (399, "3xx"), (404, "4xx"), (599, "5xx"), (0, "none")] {
            o.status = status;
            assert_eq!(STATUS_CLASSES[status_index(status)], o.status_class(), "{status}");
            assert_eq!(STATUS_CLASSES[status_index(status)], class);
        }
    }
}
