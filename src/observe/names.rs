//! Every metric name `/metrics` exposes, in one place: a dashboard or an
//! alert is written against these, so a rename is a visible change here.
//! Prometheus conventions: `shardgate_` prefix, base units (seconds,
//! bytes), `_total` on counters. Labels: `listener`, `route` and
//! `cluster` are names from the config (`route=""` when no route matched,
//! `cluster=""` for a route that answers itself), `endpoint` is
//! `host:port` as written, `class` is `1xx`..`5xx` or `none` (no response
//! sent), `kind` is `ErrorKind::name`, `shard` is the shard number.

// Per listener, route and cluster (all shards together).
/// Requests served, by listener, route, cluster and status class.
pub const REQUESTS_TOTAL: &str = "shardgate_requests_total";
/// Failed requests by error kind (`ErrorKind::name`).
pub const ERRORS_TOTAL: &str = "shardgate_errors_total";
/// Request bytes received from clients.
pub const RECEIVED_BYTES_TOTAL: &str = "shardgate_received_bytes_total";
/// Response bytes sent to clients.
pub const SENT_BYTES_TOTAL: &str = "shardgate_sent_bytes_total";
/// Upstream tries beyond the first, by listener, route and cluster.
pub const RETRIES_TOTAL: &str = "shardgate_retries_total";

// Per endpoint (cluster, endpoint): requests whose last try went there.
pub const ENDPOINT_REQUESTS_TOTAL: &str = "shardgate_endpoint_requests_total";
pub const ENDPOINT_ERRORS_TOTAL: &str = "shardgate_endpoint_errors_total";
pub const ENDPOINT_RECEIVED_BYTES_TOTAL: &str = "shardgate_endpoint_received_bytes_total";
pub const ENDPOINT_SENT_BYTES_TOTAL: &str = "shardgate_endpoint_sent_bytes_total";
/// Idle keep-alive connections in the shards' pools (gauge).
pub const POOL_IDLE_CONNECTIONS: &str = "shardgate_upstream_pool_idle_connections";
/// Tries in flight to the endpoint, all shards (gauge): what least_request
/// balances on, each shard on its own count.
pub const ENDPOINT_IN_FLIGHT: &str = "shardgate_endpoint_in_flight_requests";

// Per shard (where imbalance shows).
/// Open downstream connections by shard and listener (gauge).
pub const LISTENER_CONNECTIONS: &str = "shardgate_listener_connections";
/// Finished requests by shard and status class.
pub const SHARD_REQUESTS_TOTAL: &str = "shardgate_shard_requests_total";
pub const CONNECTIONS_ACCEPTED_TOTAL: &str = "shardgate_connections_accepted_total";
/// Open downstream connections (gauge).
pub const CONNECTIONS_ACTIVE: &str = "shardgate_connections_active";
/// New upstream connections (TCP connects started).
pub const UPSTREAM_CONNECTS_TOTAL: &str = "shardgate_upstream_connects_total";
/// Requests sent over a pooled upstream connection.
pub const UPSTREAM_REUSED_TOTAL: &str = "shardgate_upstream_reused_total";
pub const UPSTREAM_RETRIES_TOTAL: &str = "shardgate_upstream_retries_total";
/// Completed downstream TLS handshakes, by shard and version (`1.2`, `1.3`).
pub const TLS_HANDSHAKES_TOTAL: &str = "shardgate_tls_handshakes_total";
/// Handshakes that resumed a session.
pub const TLS_RESUMPTIONS_TOTAL: &str = "shardgate_tls_resumptions_total";
pub const TLS_FAILURES_TOTAL: &str = "shardgate_tls_failures_total";
/// Completed downstream TLS handshakes per listener (`shard`, `listener`, `version`).
pub const LISTENER_TLS_HANDSHAKES_TOTAL: &str = "shardgate_listener_tls_handshakes_total";
/// Resumed downstream TLS handshakes per listener.
pub const LISTENER_TLS_RESUMPTIONS_TOTAL: &str = "shardgate_listener_tls_resumptions_total";
/// Failed downstream TLS handshakes per listener.
pub const LISTENER_TLS_FAILURES_TOTAL: &str = "shardgate_listener_tls_failures_total";

// Latency, per shard: Prometheus histograms (`_bucket`, `_sum`, `_count`).
/// From the request's first byte to its response's last byte (or failure).
pub const REQUEST_DURATION: &str = "shardgate_request_duration_seconds";
/// Connecting to the upstream (TCP, and TLS), for tries that connected.
pub const UPSTREAM_CONNECT_DURATION: &str = "shardgate_upstream_connect_duration_seconds";
/// From the request head sent upstream to the response head in.
pub const UPSTREAM_HEAD_DURATION: &str = "shardgate_upstream_response_head_duration_seconds";

// Precomputed quantiles of the same (gauges; `quantile` is 0.5, 0.9,
// 0.99, 0.999 or 1 = the max; `shard="all"` is all shards merged).
pub const REQUEST_DURATION_QUANTILES: &str = "shardgate_request_duration_quantile_seconds";
pub const UPSTREAM_CONNECT_DURATION_QUANTILES: &str = "shardgate_upstream_connect_duration_quantile_seconds";
pub const UPSTREAM_HEAD_DURATION_QUANTILES: &str = "shardgate_upstream_response_head_duration_quantile_seconds";

/// Shards that did not answer this scrape in time (their series are left
/// out of it).
pub const METRICS_SHARDS_MISSING: &str = "shardgate_metrics_shards_missing";

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
