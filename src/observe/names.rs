//! Every metric name `/metrics` exposes, in one place: a dashboard or an
//! alert is written against these, so a rename is a visible change here.
//! Prometheus conventions: `shardgate_` prefix, base units (seconds,
//! bytes), `_total` on counters.

/// Requests served, by listener, route, cluster and status class.
pub const REQUESTS_TOTAL: &str = "shardgate_requests_total";
/// Failed requests by error kind (`ErrorKind::name`).
pub const ERRORS_TOTAL: &str = "shardgate_errors_total";
/// Request bytes received from clients.
pub const RECEIVED_BYTES_TOTAL: &str = "shardgate_received_bytes_total";
/// Response bytes sent to clients.
pub const SENT_BYTES_TOTAL: &str = "shardgate_sent_bytes_total";
/// Spans delivered to the OTLP collector.
pub const TRACE_SPANS_EXPORTED_TOTAL: &str = "shardgate_trace_spans_exported_total";
/// Spans dropped, by `reason`: `queue_full` (the exporter fell behind),
/// `export_failed` (the collector was down, slow or answered an error).
pub const TRACE_SPANS_DROPPED_TOTAL: &str = "shardgate_trace_spans_dropped_total";
