//! Observability: what the proxy reports about the requests it served.
//!
//! Every request ends in one call of [`record::record`] with its
//! [`Outcome`](crate::downstream::outcome::Outcome) and the request's
//! identity ([`record::Record`]); that one step feeds the counters, the
//! latency histograms, the access log and the trace exporter, also for
//! errors and refused requests.
//!
//! - [`record`]: the record step.
//! - [`names`]: every metric name, in one file.
//! - [`metrics`]: counters and latency histograms, `/metrics`.
//! - [`trace`]: W3C trace context and OTLP span export.
//! - [`access_log`]: one line per request, written off the shard.

pub mod access_log;
pub mod metrics;
pub mod names;
pub mod record;
pub mod trace;

/// A shard's own observability state (`!Send`, touched only by its
/// shard): each consumer's buffers and histograms, one field each.
#[derive(Default)]
pub struct ShardObserve {
    pub metrics: metrics::ShardMetrics,
    /// Ids, sampling and the batch of spans waiting for the exporter.
    pub trace: trace::ShardTrace,
    pub access_log: access_log::ShardAccessLog,
}
