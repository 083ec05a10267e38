//! `GET /stats`: every shard's counters as one JSON document, read from the
//! shards' atomics at scrape time (the shards never wait for the admin),
//! and each shard's latency quantiles, which the shards hand over on
//! request (`observe/metrics/link.rs`).

use std::sync::Arc;

use super::ShardCounters;
use crate::observe::metrics::{exposition::stats_latency_json, gather, Scope};

/// `{"shards":[{"shard":0,"accepted":N,"requests":N,"active":N,…,
/// "latency_seconds":{"p50":s,"p90":s,"p99":s,"p999":s,"max":s,"count":N},
/// "statuses":{"1xx":N,…,"5xx":N,"none":N}},…],"tracing":{…},
/// "health_checks":{"probes":N,"probe_failures":N}}`
/// (latency of whole requests, zeros for a shard that did not answer; span
/// export counters, `observe/trace/export.rs`; the health prober's counts,
/// process-wide; each shard's `outlier_ejections` counts the endpoints it
/// ejected).
pub fn stats_json(shards: &[Arc<ShardCounters>]) -> String {
    let latency = gather(shards, Scope::Stats);
    let rows: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let s = c.snapshot();
            format!(
                "{{\"shard\":{i},\"accepted\":{},\"requests\":{},\"active\":{},\"upstream_connects\":{},\"upstream_reused\":{},\"upstream_retries\":{},\"tls_handshakes\":{},\"tls_resumed\":{},\"tls13\":{},\"tls12\":{},\"tls_failures\":{},\"idle_without_buffer\":{},\"access_log_dropped\":{},\"outlier_ejections\":{},{},\"statuses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{},\"none\":{}}}}}",
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
                stats_latency_json(latency[i].as_ref()),
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
