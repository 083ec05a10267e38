//! Metrics: what `GET /metrics` (Prometheus text) and the
//! `latency_seconds` object of `/stats` report.
//!
//! Where it sits: the record step (`observe/record.rs`) calls
//! [`ShardMetrics::record`] once per finished request with its outcome;
//! counters not tied to a request (connections, TLS handshakes, upstream
//! connects) are the shard's `ShardCounters`, counted where they happen.
//!
//! Threads: a shard's metrics state is its own (`!Send`, no lock, no
//! locked instruction per request). At scrape time the admin thread asks
//! every shard for a snapshot over a channel (`link.rs`), the shards
//! answer between requests, and the admin thread merges the answers
//! (`exposition.rs`).
//!
//! - [`latency`]: one latency distribution (hdrhistogram + exact buckets).
//! - [`series`]: the labelled counts and the snapshot a shard hands over.
//! - [`shard`]: a shard's state and the per-request recording.
//! - [`link`]: the admin thread's question and the shard's answer.
//! - [`text`]: the Prometheus text format; [`exposition`]: the document;
//!   [`health`]: its health-check and outlier families.

pub mod exposition;
pub mod health;
pub mod latency;
pub mod link;
pub mod series;
pub mod shard;
pub mod text;

use std::rc::Rc;

pub use link::{gather, MetricsLink};
pub use series::{Scope, ShardSnapshot};
pub use shard::ShardMetrics;

use crate::shard::Shard;

/// A shard's answer to a scrape: its metrics plus the gauges read from
/// the shard's own state (pools, open connections per listener).
pub fn snapshot(shard: &Shard, scope: Scope) -> ShardSnapshot {
    let mut s = shard.observe.metrics.snapshot(shard.id, scope);
    if scope == Scope::Stats {
        return s;
    }
    let generation = shard.generation();
    let config = generation.config();
    for (c, ids) in generation.shared.endpoints.iter().enumerate() {
        for (e, id) in ids.iter().enumerate() {
            s.pool_idle.push((shard::endpoint_label(config, c, e), shard.pool.idle_count(*id) as u64));
            let in_flight = shard.endpoint_states.in_flight.get(id.slot()) as u64;
            s.in_flight.push((shard::endpoint_label(config, c, e), in_flight));
        }
    }
    for (i, l) in config.listeners.iter().enumerate() {
        if l.tls.is_some() {
            let id = generation.shared.listeners[i];
            s.listener_tls.push((l.name.clone(), shard.observe.metrics.listener_tls(id)));
        }
    }
    for (id, count) in shard.registry.count_by_listener() {
        // Connections of a listener a reload removed are draining: they
        // are left out of the per-listener gauge (the shard total has them).
        if let Some(i) = generation.shared.listener_index(id) {
            s.listener_connections.push((config.listeners[i].name.clone(), count as u64));
        }
    }
    s
}

/// The shard's task that answers the admin thread's asks (spawned by the
/// shard's main task; ends with the shard's runtime).
pub async fn answer_scrapes(shard: Rc<Shard>) {
    let link = shard.counters.clone();
    link::answer_asks(link, |scope| snapshot(&shard, scope)).await
}
