//! The health families of `GET /metrics`: the prober's probe counts, each
//! shard's outlier ejections, and per endpoint of the running generation
//! its active health and how many shards have it ejected. Read from the
//! generation's health table (`upstream/health/`) and the shards'
//! ejection gauges (`upstream/health/gauge.rs`) at scrape time; names in
//! `observe/names.rs`.

use std::sync::Arc;

use super::text::{Exposition, Kind};
use crate::admin::ShardCounters;
use crate::observe::names as n;
use crate::shard::generation::Generation;
use crate::upstream::health::prober::PROBE_COUNTERS;
use crate::upstream::health::Active;

/// The health families, appended after the rest of the document.
pub fn render(generation: &Generation, counters: &[Arc<ShardCounters>]) -> String {
    let mut e = Exposition::default();
    let (probes, failures) = PROBE_COUNTERS.get();
    e.family(n::HEALTH_CHECK_PROBES_TOTAL, Kind::Counter, "Active health probes sent (one prober per process).");
    e.sample(n::HEALTH_CHECK_PROBES_TOTAL, &[], probes);
    e.family(n::HEALTH_CHECK_FAILURES_TOTAL, Kind::Counter, "Active health probes that failed.");
    e.sample(n::HEALTH_CHECK_FAILURES_TOTAL, &[], failures);
    e.family(n::OUTLIER_EJECTIONS_TOTAL, Kind::Counter, "Endpoints ejected by outlier detection, by shard.");
    for (shard, c) in counters.iter().enumerate() {
        e.sample(n::OUTLIER_EJECTIONS_TOTAL, &[("shard", shard.to_string().as_str())], c.ejections.ejections());
    }
    let config = &generation.config;
    let written = |c: usize, i: usize| {
        let cluster = &config.clusters[c];
        format!("{}:{}", cluster.endpoint_hosts[i], cluster.endpoints[i].port())
    };
    e.family(
        n::ENDPOINT_HEALTHY,
        Kind::Gauge,
        "1 while active health checks find the endpoint healthy (or have not judged it yet), 0 while unhealthy.",
    );
    for (c, cluster) in config.clusters.iter().enumerate().filter(|(_, c)| c.health_check.is_some()) {
        for (i, id) in generation.endpoints[c].iter().enumerate() {
            let healthy = u8::from(generation.health.get(id.slot()) != Active::Unhealthy);
            e.sample(n::ENDPOINT_HEALTHY, &[("cluster", cluster.name.as_str()), ("endpoint", &written(c, i))], healthy);
        }
    }
    e.family(n::ENDPOINT_EJECTED_SHARDS, Kind::Gauge, "Shards that have the endpoint ejected right now.");
    for (c, cluster) in config.clusters.iter().enumerate().filter(|(_, c)| c.outlier.is_some()) {
        for (i, id) in generation.endpoints[c].iter().enumerate() {
            let ejected = counters.iter().filter(|s| !s.ejections.ejection(id.slot()).0.is_zero()).count();
            let labels = [("cluster", cluster.name.as_str()), ("endpoint", &written(c, i))];
            e.sample(n::ENDPOINT_EJECTED_SHARDS, &labels, ejected);
        }
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::shard::identity::Identities;
    use crate::upstream::health::gauge::EjectionCells;

    #[test]
    fn endpoints_show_active_health_and_ejecting_shards() {
        let toml = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
                    [[clusters]]\nname = \"api\"\nendpoints = [\"127.0.0.1:1\", \"localhost:2\"]\n\
                    [clusters.health_check]\ntype = \"tcp\"\n[clusters.outlier]\n\
                    [[clusters]]\nname = \"plain\"\nendpoints = [\"127.0.0.1:3\"]\n";
        let config = Arc::new(Config::parse(toml, "t.toml").unwrap());
        let generation = Generation::build(1, config, &mut Identities::default(), None).unwrap().0;
        let counters: Vec<Arc<ShardCounters>> = (0..2).map(|_| Arc::new(ShardCounters::default())).collect();
        generation.health.set(generation.endpoints[0][1].slot(), Active::Unhealthy);
        let mut cells = EjectionCells::new(counters[1].ejections.clone());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        cells.ejected(generation.endpoints[0][0].slot(), until, 1);

        let text = render(&generation, &counters);
        assert!(text.contains("shardgate_endpoint_healthy{cluster=\"api\",endpoint=\"127.0.0.1:1\"} 1\n"), "{text}");
        assert!(text.contains("shardgate_endpoint_healthy{cluster=\"api\",endpoint=\"localhost:2\"} 0\n"), "{text}");
        assert!(!text.contains("cluster=\"plain\""), "no checks, no outlier detection: no series");
        assert!(text.contains("shardgate_endpoint_ejected_shards{cluster=\"api\",endpoint=\"127.0.0.1:1\"} 1\n"));
        assert!(text.contains("shardgate_outlier_ejections_total{shard=\"1\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE shardgate_health_check_probes_total counter\n"));
    }
}
