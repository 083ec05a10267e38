//! `GET /metrics`: the shards' snapshots merged on the admin thread and
//! written as Prometheus text. Labelled series are summed over shards by
//! their labels; per-shard series keep a `shard` label; quantiles are
//! given per shard and for all shards merged (`shard="all"`).
//! Every name comes from `observe/names.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::latency::{bound_label, Latency, BUCKET_BOUNDS_NANOS, QUANTILES};
use super::series::{
    EndpointLabels, RequestCells, RequestLabels, ShardSnapshot, STATUS_CLASSES, TOTAL, UPSTREAM_CONNECT, UPSTREAM_HEAD,
};
use super::text::{Exposition, Kind};
use crate::admin::ShardCounters;
use crate::error::ErrorKind;
use crate::observe::names as n;

/// The three latency families: (index in a snapshot, histogram name,
/// quantile gauge name, what it measures).
const LATENCIES: [(usize, &str, &str, &str); 3] = [
    (
        TOTAL,
        n::REQUEST_DURATION,
        n::REQUEST_DURATION_QUANTILES,
        "from the request's first byte to its response's last byte (or failure)",
    ),
    (
        UPSTREAM_CONNECT,
        n::UPSTREAM_CONNECT_DURATION,
        n::UPSTREAM_CONNECT_DURATION_QUANTILES,
        "connecting to the upstream (TCP and TLS), tries that connected",
    ),
    (
        UPSTREAM_HEAD,
        n::UPSTREAM_HEAD_DURATION,
        n::UPSTREAM_HEAD_DURATION_QUANTILES,
        "from the request head sent upstream to the response head in",
    ),
];

/// A counter family read from a series' cells: (name, help, value).
type Scalar = (&'static str, &'static str, fn(&RequestCells) -> u64);

/// Request series of all shards, summed by labels.
pub fn merge_requests(snapshots: &[ShardSnapshot]) -> BTreeMap<RequestLabels, RequestCells> {
    let mut all: BTreeMap<RequestLabels, RequestCells> = BTreeMap::new();
    for s in snapshots {
        for (labels, cells) in &s.requests {
            all.entry(labels.clone()).or_default().merge(cells);
        }
    }
    all
}

/// Endpoint series of all shards, summed by labels.
pub fn merge_endpoints(snapshots: &[ShardSnapshot]) -> BTreeMap<EndpointLabels, RequestCells> {
    let mut all: BTreeMap<EndpointLabels, RequestCells> = BTreeMap::new();
    for s in snapshots {
        for (labels, cells) in &s.endpoints {
            all.entry(labels.clone()).or_default().merge(cells);
        }
    }
    all
}

/// One latency of all shards merged (`which`: [`TOTAL`], …).
pub fn merge_latency(snapshots: &[ShardSnapshot], which: usize) -> Latency {
    let mut all = Latency::new();
    for l in snapshots.iter().filter_map(|s| s.latency.get(which)) {
        all.merge(l);
    }
    all
}

/// The whole `/metrics` document. `snapshots[i]` is shard `i`'s answer
/// (`None`: it did not answer in time).
pub fn render(counters: &[Arc<ShardCounters>], snapshots: &[Option<ShardSnapshot>]) -> String {
    let answered: Vec<ShardSnapshot> = snapshots.iter().flatten().cloned().collect();
    let mut e = Exposition::default();
    request_families(&mut e, &merge_requests(&answered));
    endpoint_families(&mut e, &merge_endpoints(&answered), &answered);
    shard_families(&mut e, counters, &answered);
    for (which, histogram, quantiles, what) in LATENCIES {
        e.family(histogram, Kind::Histogram, &format!("Latency {what}, per shard."));
        for s in &answered {
            if let Some(l) = s.latency.get(which) {
                histogram_samples(&mut e, histogram, &s.shard.to_string(), l);
            }
        }
        e.family(
            quantiles,
            Kind::Gauge,
            &format!("Quantiles (1 = max) of the latency {what}; shard=\"all\" merges the shards."),
        );
        for s in &answered {
            if let Some(l) = s.latency.get(which) {
                quantile_samples(&mut e, quantiles, &s.shard.to_string(), l);
            }
        }
        quantile_samples(&mut e, quantiles, "all", &merge_latency(&answered, which));
    }
    export_families(&mut e, counters);
    e.family(n::METRICS_SHARDS_MISSING, Kind::Gauge, "Shards that did not answer this scrape in time.");
    e.sample(n::METRICS_SHARDS_MISSING, &[], snapshots.iter().filter(|s| s.is_none()).count());
    e.finish()
}

fn request_families(e: &mut Exposition, all: &BTreeMap<RequestLabels, RequestCells>) {
    e.family(n::REQUESTS_TOTAL, Kind::Counter, "Requests by listener, route, cluster and status class sent.");
    for (l, c) in all {
        for (i, class) in STATUS_CLASSES.iter().enumerate() {
            if c.statuses[i] > 0 {
                let set =
                    [("listener", l.listener.as_str()), ("route", &l.route), ("cluster", &l.cluster), ("class", class)];
                e.sample(n::REQUESTS_TOTAL, &set, c.statuses[i]);
            }
        }
    }
    e.family(n::ERRORS_TOTAL, Kind::Counter, "Failed requests by listener, route, cluster and error kind.");
    for (l, c) in all {
        for kind in ErrorKind::ALL {
            let count = c.errors[kind.index()];
            if count > 0 {
                let set = [
                    ("listener", l.listener.as_str()),
                    ("route", &l.route),
                    ("cluster", &l.cluster),
                    ("kind", kind.name()),
                ];
                e.sample(n::ERRORS_TOTAL, &set, count);
            }
        }
    }
    let scalars: [Scalar; 3] = [
        (n::RECEIVED_BYTES_TOTAL, "Request bytes received from clients.", |c| c.received),
        (n::SENT_BYTES_TOTAL, "Response bytes sent to clients.", |c| c.sent),
        (n::RETRIES_TOTAL, "Upstream tries beyond the first.", |c| c.retries),
    ];
    for (name, help, value) in scalars {
        e.family(name, Kind::Counter, help);
        for (l, c) in all {
            let set = [("listener", l.listener.as_str()), ("route", &l.route), ("cluster", &l.cluster)];
            e.sample(name, &set, value(c));
        }
    }
}

fn endpoint_families(e: &mut Exposition, all: &BTreeMap<EndpointLabels, RequestCells>, shards: &[ShardSnapshot]) {
    e.family(
        n::ENDPOINT_REQUESTS_TOTAL,
        Kind::Counter,
        "Requests whose last try went to the endpoint, by status class sent.",
    );
    for (l, c) in all {
        for (i, class) in STATUS_CLASSES.iter().enumerate() {
            if c.statuses[i] > 0 {
                let set = [("cluster", l.cluster.as_str()), ("endpoint", &l.endpoint), ("class", class)];
                e.sample(n::ENDPOINT_REQUESTS_TOTAL, &set, c.statuses[i]);
            }
        }
    }
    e.family(
        n::ENDPOINT_ERRORS_TOTAL,
        Kind::Counter,
        "Failed requests whose last try went to the endpoint, by error kind.",
    );
    for (l, c) in all {
        for kind in ErrorKind::ALL {
            let count = c.errors[kind.index()];
            if count > 0 {
                let set = [("cluster", l.cluster.as_str()), ("endpoint", &l.endpoint), ("kind", kind.name())];
                e.sample(n::ENDPOINT_ERRORS_TOTAL, &set, count);
            }
        }
    }
    let scalars: [Scalar; 2] = [
        (n::ENDPOINT_RECEIVED_BYTES_TOTAL, "Request bytes from clients of requests sent to the endpoint.", |c| {
            c.received
        }),
        (n::ENDPOINT_SENT_BYTES_TOTAL, "Response bytes to clients of requests sent to the endpoint.", |c| c.sent),
    ];
    for (name, help, value) in scalars {
        e.family(name, Kind::Counter, help);
        for (l, c) in all {
            e.sample(name, &[("cluster", l.cluster.as_str()), ("endpoint", &l.endpoint)], value(c));
        }
    }
    let mut idle: BTreeMap<&EndpointLabels, u64> = BTreeMap::new();
    for (l, count) in shards.iter().flat_map(|s| &s.pool_idle) {
        *idle.entry(l).or_default() += count;
    }
    e.family(n::POOL_IDLE_CONNECTIONS, Kind::Gauge, "Idle keep-alive upstream connections, all shards' pools.");
    for (l, count) in idle {
        e.sample(n::POOL_IDLE_CONNECTIONS, &[("cluster", l.cluster.as_str()), ("endpoint", &l.endpoint)], count);
    }
    let mut in_flight: BTreeMap<&EndpointLabels, u64> = BTreeMap::new();
    for (l, count) in shards.iter().flat_map(|s| &s.in_flight) {
        *in_flight.entry(l).or_default() += count;
    }
    e.family(n::ENDPOINT_IN_FLIGHT, Kind::Gauge, "Requests in flight to the endpoint, all shards.");
    for (l, count) in in_flight {
        e.sample(n::ENDPOINT_IN_FLIGHT, &[("cluster", l.cluster.as_str()), ("endpoint", &l.endpoint)], count);
    }
}

fn shard_families(e: &mut Exposition, counters: &[Arc<ShardCounters>], answered: &[ShardSnapshot]) {
    let counts: Vec<_> = counters.iter().map(|c| c.snapshot()).collect();
    e.family(n::SHARD_REQUESTS_TOTAL, Kind::Counter, "Finished requests by shard and status class.");
    for (shard, s) in counts.iter().enumerate() {
        let shard = shard.to_string();
        for (i, class) in STATUS_CLASSES.iter().enumerate() {
            e.sample(n::SHARD_REQUESTS_TOTAL, &[("shard", shard.as_str()), ("class", class)], s.statuses[i]);
        }
    }
    type Field = fn(&crate::admin::counters::Snapshot) -> u64;
    let per_shard: [(&str, Kind, &str, Field); 7] = [
        (n::CONNECTIONS_ACCEPTED_TOTAL, Kind::Counter, "Downstream connections accepted.", |s| s.accepted),
        (n::CONNECTIONS_ACTIVE, Kind::Gauge, "Open downstream connections.", |s| s.active),
        (n::UPSTREAM_CONNECTS_TOTAL, Kind::Counter, "Upstream connections started.", |s| s.upstream_connects),
        (n::UPSTREAM_REUSED_TOTAL, Kind::Counter, "Requests sent over a pooled upstream connection.", |s| {
            s.upstream_reused
        }),
        (n::UPSTREAM_RETRIES_TOTAL, Kind::Counter, "Upstream tries beyond the first.", |s| s.upstream_retries),
        (n::TLS_RESUMPTIONS_TOTAL, Kind::Counter, "Downstream TLS handshakes that resumed a session.", |s| {
            s.tls_resumed
        }),
        (n::TLS_FAILURES_TOTAL, Kind::Counter, "Downstream TLS handshakes that failed or timed out.", |s| {
            s.tls_failures
        }),
    ];
    for (name, kind, help, value) in per_shard {
        e.family(name, kind, help);
        for (shard, s) in counts.iter().enumerate() {
            e.sample(name, &[("shard", shard.to_string().as_str())], value(s));
        }
    }
    e.family(n::TLS_HANDSHAKES_TOTAL, Kind::Counter, "Completed downstream TLS handshakes, by shard and version.");
    for (shard, s) in counts.iter().enumerate() {
        let shard = shard.to_string();
        e.sample(n::TLS_HANDSHAKES_TOTAL, &[("shard", shard.as_str()), ("version", "1.2")], s.tls12);
        e.sample(n::TLS_HANDSHAKES_TOTAL, &[("shard", shard.as_str()), ("version", "1.3")], s.tls13);
    }
    e.family(
        n::LISTENER_TLS_HANDSHAKES_TOTAL,
        Kind::Counter,
        "Completed downstream TLS handshakes by shard, listener and version.",
    );
    for s in answered {
        let shard = s.shard.to_string();
        for (listener, t) in &s.listener_tls {
            for (version, count) in [("1.2", t.tls12), ("1.3", t.tls13)] {
                let labels = [("shard", shard.as_str()), ("listener", listener.as_str()), ("version", version)];
                e.sample(n::LISTENER_TLS_HANDSHAKES_TOTAL, &labels, count);
            }
        }
    }
    type ListenerField = fn(&super::shard::ListenerTls) -> u64;
    let per_listener: [(&str, &str, ListenerField); 2] = [
        (
            n::LISTENER_TLS_RESUMPTIONS_TOTAL,
            "Downstream TLS handshakes that resumed a session, by shard and listener.",
            |t| t.resumed,
        ),
        (
            n::LISTENER_TLS_FAILURES_TOTAL,
            "Downstream TLS handshakes that failed or timed out, by shard and listener.",
            |t| t.failures,
        ),
    ];
    for (name, help, value) in per_listener {
        e.family(name, Kind::Counter, help);
        for s in answered {
            let shard = s.shard.to_string();
            for (listener, t) in &s.listener_tls {
                e.sample(name, &[("shard", shard.as_str()), ("listener", listener.as_str())], value(t));
            }
        }
    }
    e.family(n::LISTENER_CONNECTIONS, Kind::Gauge, "Open downstream connections by shard and listener.");
    for s in answered {
        let shard = s.shard.to_string();
        for (listener, count) in &s.listener_connections {
            e.sample(n::LISTENER_CONNECTIONS, &[("shard", shard.as_str()), ("listener", listener)], count);
        }
    }
}

/// What the access log writer and the span exporter count (process-wide
/// atomics of their own threads; dropped access log lines per shard).
fn export_families(e: &mut Exposition, counters: &[Arc<ShardCounters>]) {
    use std::sync::atomic::Ordering::Relaxed;
    let trace = &crate::observe::trace::export::STATS;
    e.family(n::TRACE_SPANS_EXPORTED_TOTAL, Kind::Counter, "Spans delivered to the OTLP collector.");
    e.sample(n::TRACE_SPANS_EXPORTED_TOTAL, &[], trace.spans_exported.load(Relaxed));
    e.family(n::TRACE_SPANS_DROPPED_TOTAL, Kind::Counter, "Spans dropped, by reason.");
    e.sample(n::TRACE_SPANS_DROPPED_TOTAL, &[("reason", "queue_full")], trace.spans_dropped_queue_full.load(Relaxed));
    let failed = trace.spans_dropped_export_failed.load(Relaxed);
    e.sample(n::TRACE_SPANS_DROPPED_TOTAL, &[("reason", "export_failed")], failed);
    e.family(
        n::ACCESS_LOG_DROPPED_LINES_TOTAL,
        Kind::Counter,
        "Access log lines a shard dropped (the writer was behind).",
    );
    for (shard, c) in counters.iter().enumerate() {
        e.sample(
            n::ACCESS_LOG_DROPPED_LINES_TOTAL,
            &[("shard", shard.to_string().as_str())],
            c.snapshot().access_log_dropped,
        );
    }
    e.family(n::ACCESS_LOG_FAILED_LINES_TOTAL, Kind::Counter, "Access log lines the writer could not write.");
    e.sample(n::ACCESS_LOG_FAILED_LINES_TOTAL, &[], crate::observe::access_log::writer::totals().1);
}

fn histogram_samples(e: &mut Exposition, name: &str, shard: &str, l: &Latency) {
    let bucket = format!("{name}_bucket");
    let cumulative = l.cumulative();
    for (i, &bound) in BUCKET_BOUNDS_NANOS.iter().enumerate() {
        e.sample(&bucket, &[("shard", shard), ("le", &bound_label(bound))], cumulative[i]);
    }
    e.sample(&bucket, &[("shard", shard), ("le", "+Inf")], l.count());
    e.sample(&format!("{name}_sum"), &[("shard", shard)], l.sum_seconds());
    e.sample(&format!("{name}_count"), &[("shard", shard)], l.count());
}

fn quantile_samples(e: &mut Exposition, name: &str, shard: &str, l: &Latency) {
    let q = l.quantiles();
    for (i, (_, label)) in QUANTILES.iter().enumerate() {
        e.sample(name, &[("shard", shard), ("quantile", label)], q.values[i]);
    }
    e.sample(name, &[("shard", shard), ("quantile", "1")], q.max);
}

/// `"latency_seconds":{"p50":s,"p90":s,"p99":s,"p999":s,"max":s,"count":N}`
/// for one shard's row of `/stats` (zeros when it did not answer).
pub fn stats_latency_json(snapshot: Option<&ShardSnapshot>) -> String {
    let q = snapshot.and_then(|s| s.latency.get(TOTAL)).map(Latency::quantiles).unwrap_or(super::latency::Quantiles {
        values: [0.0; 4],
        max: 0.0,
        count: 0,
    });
    format!(
        "\"latency_seconds\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{},\"count\":{}}}",
        q.values[0], q.values[1], q.values[2], q.values[3], q.max, q.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn labels(route: &str) -> RequestLabels {
        RequestLabels { listener: "web".into(), route: route.into(), cluster: "c".into() }
    }

    fn shard(id: usize, ok: u64, millis: u64) -> ShardSnapshot {
        let mut cells = RequestCells::default();
        cells.statuses[1] = ok;
        cells.sent = ok * 10;
        let mut total = Latency::new();
        for _ in 0..ok {
            total.record(Duration::from_millis(millis));
        }
        ShardSnapshot {
            shard: id,
            requests: vec![(labels("r\"1\\x"), cells)],
            endpoints: vec![(EndpointLabels { cluster: "c".into(), endpoint: "127.0.0.1:1".into() }, cells)],
            pool_idle: vec![(EndpointLabels { cluster: "c".into(), endpoint: "127.0.0.1:1".into() }, 1)],
            in_flight: vec![(EndpointLabels { cluster: "c".into(), endpoint: "127.0.0.1:1".into() }, id as u64)],
            listener_connections: vec![("web".into(), 2)],
            listener_tls: vec![(
                "web".into(),
                super::super::shard::ListenerTls { tls12: 1, tls13: 2, resumed: 1, failures: 0 },
            )],
            latency: vec![total, Latency::new(), Latency::new()],
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn shard_snapshots_merge_by_labels_and_keep_per_shard_series_apart() {
        let counters: Vec<Arc<ShardCounters>> = (0..3).map(|_| Arc::new(ShardCounters::default())).collect();
        let text = render(&counters, &[Some(shard(0, 3, 1)), Some(shard(1, 2, 30)), None]);
        let labels = "listener=\"web\",route=\"r\\\"1\\\\x\",cluster=\"c\"";
        assert_eq!(
            line(&text, &format!("shardgate_requests_total{{{labels},class=\"2xx\"}}")).rsplit(' ').next(),
            Some("5")
        );
        assert!(line(&text, &format!("shardgate_sent_bytes_total{{{labels}}}")).ends_with(" 50"));
        assert!(line(&text, "shardgate_endpoint_requests_total{cluster=\"c\",endpoint=\"127.0.0.1:1\",class=\"2xx\"}")
            .ends_with(" 5"));
        assert!(line(&text, "shardgate_upstream_pool_idle_connections{").ends_with(" 2"), "both shards' pools");
        assert!(line(&text, "shardgate_endpoint_in_flight_requests{").ends_with(" 1"), "0 + 1 in flight");
        assert!(line(&text, "shardgate_listener_connections{shard=\"1\",listener=\"web\"}").ends_with(" 2"));
        // Per shard: 1 ms is le=0.001; 30 ms first counts at le=0.05.
        assert!(line(&text, "shardgate_request_duration_seconds_bucket{shard=\"0\",le=\"0.001\"}").ends_with(" 3"));
        assert!(line(&text, "shardgate_request_duration_seconds_bucket{shard=\"1\",le=\"0.025\"}").ends_with(" 0"));
        assert!(line(&text, "shardgate_request_duration_seconds_bucket{shard=\"1\",le=\"0.05\"}").ends_with(" 2"));
        assert!(line(&text, "shardgate_request_duration_seconds_bucket{shard=\"1\",le=\"+Inf\"}").ends_with(" 2"));
        assert!(line(&text, "shardgate_request_duration_seconds_count{shard=\"0\"}").ends_with(" 3"));
        assert!(!text.contains("_count{shard=\"2\"}"), "shard 2 did not answer");
        // Merged quantiles: the max is shard 1's 30 ms, the median shard 0's 1 ms.
        let max: f64 = line(&text, "shardgate_request_duration_quantile_seconds{shard=\"all\",quantile=\"1\"}")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((max - 0.030).abs() < 0.0001, "{max}");
        assert!(line(&text, "shardgate_request_duration_quantile_seconds{shard=\"all\",quantile=\"0.5\"}")
            .contains(" 0.001"));
        assert!(line(&text, "shardgate_metrics_shards_missing ").ends_with(" 1"));
        // Shard totals come from the counters of all three shards.
        assert!(text.contains("shardgate_shard_requests_total{shard=\"2\",class=\"none\"} 0\n"));
        // Each family's HELP and TYPE once.
        assert!(text.contains("shardgate_access_log_dropped_lines_total{shard=\"2\"} 0\n"));
        assert!(text.contains("shardgate_trace_spans_dropped_total{reason=\"queue_full\"} "));
        for name in [n::REQUESTS_TOTAL, n::REQUEST_DURATION, n::REQUEST_DURATION_QUANTILES, n::TLS_HANDSHAKES_TOTAL] {
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1, "{name}");
        }
    }

    #[test]
    fn stats_latency_is_zero_for_a_shard_that_did_not_answer() {
        assert_eq!(
            stats_latency_json(None),
            "\"latency_seconds\":{\"p50\":0,\"p90\":0,\"p99\":0,\"p999\":0,\"max\":0,\"count\":0}"
        );
        let json = stats_latency_json(Some(&shard(0, 4, 2)));
        assert!(json.starts_with("\"latency_seconds\":{\"p50\":0.002"), "{json}");
        assert!(json.ends_with(",\"count\":4}"), "{json}");
    }
}
