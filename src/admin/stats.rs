//! `GET /stats`: every shard's counters as one JSON document, read from the
//! shards' atomics at scrape time (the shards never wait for the admin).

use std::sync::Arc;

use super::ShardCounters;

/// `{"shards":[{"shard":0,"accepted":N,"requests":N,"active":N,…,
/// "statuses":{"1xx":N,…,"5xx":N,"none":N}},…],"tracing":{…}}` (span
/// export counters, `observe/trace/export.rs`),"health_checks":{"probes":N,
/// "probe_failures":N}}` (the prober's, process-wide); each shard's
/// `outlier_ejections` counts the endpoints it ejected.
pub fn stats_json(shards: &[Arc<ShardCounters>]) -> String {
    let rows: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let s = c.snapshot();
            format!(
                "{{\"shard\":{i},\"accepted\":{},\"requests\":{},\"active\":{},\"upstream_connects\":{},\"upstream_reused\":{},\"upstream_retries\":{},\"tls_handshakes\":{},\"tls_resumed\":{},\"tls13\":{},\"tls12\":{},\"tls_failures\":{},\"idle_without_buffer\":{},\"access_log_dropped\":{},\"outlier_ejections\":{},\"statuses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{},\"none\":{}}}}}",
                s.accepted,
                s.requests,
                s.active,
                s.upstream_connects,
                s.upstream_reused,
                s.upstream_retries,
                s.tls_handshakes,
                s.tls_resumed,
                s.tls13,
                s.tls12,
                s.tls_failures,
                s.idle_without_buffer,
                s.access_log_dropped,
                c.ejections.ejections(),
                s.statuses[0],
                s.statuses[1],
                s.statuses[2],
                s.statuses[3],
                s.statuses[4],
                s.statuses[5]
            )
        })
        .collect();
    let tracing = crate::observe::trace::export::STATS.json();
    let (probes, failures) = crate::upstream::health::prober::PROBE_COUNTERS.get();
    let health = format!("{{\"probes\":{probes},\"probe_failures\":{failures}}}");
    format!("{{\"shards\":[{}],\"tracing\":{tracing},\"health_checks\":{health}}}\n", rows.join(","))
}
