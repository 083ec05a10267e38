//! What happened to one request: the record the pipeline fills as its
//! stages run, and that the `record` step (`observe/record.rs`) turns
//! into counters, histograms, the access log line and the trace span.
//!
//! Filled for every request, also for errors and refused requests: a
//! request the proxy answered itself has a status and no cluster; a
//! request whose client left has the status it was sent (0 when nothing
//! was) and `error` saying why.

use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use crate::upstream::balance::Endpoint;

/// The outcome of one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status sent to the client; 0 when no response head was sent.
    pub status: u16,
    /// The status of the upstream's response head, when one came.
    pub upstream_status: Option<u16>,
    /// Index of the matched route in the request's generation.
    pub route: Option<usize>,
    /// Index of the cluster the request went to.
    pub cluster: Option<usize>,
    /// The endpoint of the last try.
    pub endpoint: Option<Endpoint>,
    /// Tries beyond the first.
    pub retries: u32,
    /// The last try went over a pooled connection.
    pub upstream_reused: bool,
    /// Why the request failed, when it did (also when the client left).
    pub error: Option<ErrorKind>,
    /// Request bytes from the client: the head, plus the body's payload.
    pub bytes_received: u64,
    /// Response bytes written to the client (head and body, as framed).
    pub bytes_sent: u64,
    pub timings: Timings,
}

/// Where a request's time went. Durations from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// When the request's first byte was read (for the first request of a
    /// connection: when the connection was accepted).
    pub start: Instant,
    /// Until the head was complete.
    pub head_read: Duration,
    /// Connecting to the upstream (TCP, and TLS when the cluster speaks
    /// it), when the last try made a new connection.
    pub upstream_connect: Option<Duration>,
    /// From the request's head sent upstream to the response head in.
    pub upstream_head: Option<Duration>,
    /// Until the response's last byte was written (or the request failed).
    pub total: Duration,
}

impl Timings {
    pub fn new(start: Instant) -> Timings {
        Timings { start, head_read: Duration::ZERO, upstream_connect: None, upstream_head: None, total: Duration::ZERO }
    }
}

impl Outcome {
    /// A fresh outcome for a request whose first byte came at `start`.
    pub fn new(start: Instant) -> Outcome {
        Outcome {
            status: 0,
            upstream_status: None,
            route: None,
            cluster: None,
            endpoint: None,
            retries: 0,
            upstream_reused: false,
            error: None,
            bytes_received: 0,
            bytes_sent: 0,
            timings: Timings::new(start),
        }
    }

    /// The status class for metrics: "1xx".."5xx", or "none" when no
    /// response was sent.
    pub fn status_class(&self) -> &'static str {
        match self.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "none",
        }
    }
}
