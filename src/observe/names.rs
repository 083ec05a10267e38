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
/// Access log lines a shard dropped because the writer thread was behind
/// (`access_log_dropped` per shard in `/stats`).
pub const ACCESS_LOG_DROPPED_LINES_TOTAL: &str = "shardgate_access_log_dropped_lines_total";
/// Access log lines the writer could not write (target cannot be opened
/// or written: reported in the process log once per interval).
pub const ACCESS_LOG_FAILED_LINES_TOTAL: &str = "shardgate_access_log_failed_lines_total";
/// Active health probes sent (process-wide: one prober per process).
pub const HEALTH_CHECK_PROBES_TOTAL: &str = "shardgate_health_check_probes_total";
/// Active health probes that failed (refused, timed out, unexpected status
/// or body, malformed response).
pub const HEALTH_CHECK_FAILURES_TOTAL: &str = "shardgate_health_check_failures_total";
/// Per endpoint (labels `cluster`, `endpoint`): 1 while active checks find
/// it healthy or have not judged it, 0 while unhealthy.
pub const ENDPOINT_HEALTHY: &str = "shardgate_endpoint_healthy";
/// Endpoints ejected by outlier detection, by shard (`outlier_ejections`
/// per shard in `/stats`).
pub const OUTLIER_EJECTIONS_TOTAL: &str = "shardgate_outlier_ejections_total";
/// Per endpoint: how many shards have it ejected right now.
pub const ENDPOINT_EJECTED_SHARDS: &str = "shardgate_endpoint_ejected_shards";
