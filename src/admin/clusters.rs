//! `GET /clusters`: the clusters of the running generation and their
//! endpoints, each with its address, its stable id (the endpoint's slot:
//! the same across reloads that keep the endpoint, see
//! `shard/identity.rs`), weight, health and the idle pooled connections
//! each shard holds for it.
//!
//! ```text
//! {"generation":1,"clusters":[{"name":"api","tls":false,"lb":"round_robin","endpoints":[
//!   {"id":0,"address":"127.0.0.1:8080","written":"backend.internal:8080",
//!    "weight":1,"health":"healthy","checks":true,"idle":[2,0],
//!    "ejected_ms":[0,28500],"times_ejected":[0,1]}]}]}
//! ```
//! `weight` is the endpoint's configured weight and `lb` the cluster's
//! algorithm. `health` is the
//! active checks' verdict (`"healthy"`, `"unhealthy"`, or `"unknown"`:
//! not probed yet, or `"checks":false` when the cluster has no
//! `[clusters.health_check]`), from the generation's table the prober
//! writes. `idle`, `ejected_ms` (how much longer outlier detection keeps
//! the endpoint out, 0 = in service) and `times_ejected` have one value
//! per shard (each shard ejects on its own traffic), read from the shards'
//! gauges (`upstream/pool_gauge.rs`, `upstream/health/gauge.rs`): a moment
//! old at most.

use std::fmt::Write;
use std::sync::Arc;

use super::json::{key, string};
use super::ShardCounters;
use crate::shard::generation::Generation;

/// The `/clusters` document of `generation`, with idle counts from
/// `shards`.
pub fn clusters_json(generation: &Generation, shards: &[Arc<ShardCounters>]) -> String {
    let config = &generation.config;
    let mut out = String::with_capacity(256 + 256 * config.clusters.len());
    let _ = write!(out, "{{\"generation\":{},\"clusters\":[", generation.number);
    for (c, (cluster, ids)) in config.clusters.iter().zip(&generation.endpoints).enumerate() {
        if c > 0 {
            out.push(',');
        }
        out.push('{');
        key(&mut out, "name");
        string(&mut out, &cluster.name);
        let _ = write!(
            out,
            ",\"tls\":{},\"lb\":\"{}\",\"endpoints\":[",
            cluster.tls.is_some(),
            cluster.balance.policy.name()
        );
        for (i, (addr, id)) in cluster.endpoints.iter().zip(ids).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"id\":{},\"address\":\"{addr}\",", id.slot());
            key(&mut out, "written");
            string(&mut out, &format!("{}:{}", cluster.endpoint_hosts[i], addr.port()));
            let checks = cluster.health_check.is_some();
            let health = if checks { generation.health.get(id.slot()).as_str() } else { "unknown" };
            let weight = cluster.weights.get(i).copied().unwrap_or(1);
            let _ = write!(out, ",\"weight\":{weight},\"health\":\"{health}\",\"checks\":{checks}");
            let per_shard = |out: &mut String, name: &str, value: &dyn Fn(&ShardCounters) -> u128| {
                let _ = write!(out, ",\"{name}\":[");
                for (s, shard) in shards.iter().enumerate() {
                    if s > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{}", value(shard));
                }
                out.push(']');
            };
            per_shard(&mut out, "idle", &|c| c.pool_idle.idle(id.slot()) as u128);
            per_shard(&mut out, "ejected_ms", &|c| c.ejections.ejection(id.slot()).0.as_millis());
            per_shard(&mut out, "times_ejected", &|c| c.ejections.ejection(id.slot()).1 as u128);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::shard::identity::Identities;
    use crate::upstream::pool_gauge::IdleCells;

    fn config(endpoints: &str) -> Arc<Config> {
        let toml = format!(
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
             [[clusters]]\nname = \"api\"\nendpoints = [{endpoints}]\nlb = \"random\"\n\
             [[clusters]]\nname = \"other\\\"q\"\nendpoints = [\"127.0.0.1:9\"]\n"
        );
        Arc::new(Config::parse(&toml, "t.toml").expect("test config"))
    }

    #[test]
    fn endpoints_carry_their_stable_ids_and_each_shards_idle_count() {
        let mut ids = Identities::default();
        let first =
            Generation::build(1, config("\"127.0.0.1:1\", { address = \"localhost:2\", weight = 4 }"), &mut ids, None)
                .unwrap()
                .0;
        let shards: Vec<Arc<ShardCounters>> = (0..2).map(|_| Arc::new(ShardCounters::default())).collect();
        let mut cells = IdleCells::new(shards[1].pool_idle.clone());
        cells.grow(3);
        cells.set(first.endpoints[0][1].slot(), 5);

        let v: serde_json::Value = serde_json::from_str(&clusters_json(&first, &shards)).unwrap();
        assert_eq!(v["generation"], 1);
        let api = &v["clusters"][0];
        assert_eq!(api["name"], "api");
        assert_eq!(api["tls"], false);
        assert_eq!(api["lb"], "random");
        let eps = api["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0]["address"], "127.0.0.1:1");
        assert_eq!(eps[1]["written"], "localhost:2");
        assert_eq!(eps[1]["idle"], serde_json::json!([0, 5]), "shard 1 holds five");
        assert_eq!(eps[1]["weight"], 4);
        assert_eq!((eps[0]["weight"].clone(), eps[0]["health"].clone()), (1.into(), "unknown".into()));
        assert_eq!(v["clusters"][1]["name"], "other\"q");

        // A reload that moves the endpoint keeps its id.
        let second = Generation::build(2, config("\"localhost:2\""), &mut ids, Some(&first)).unwrap().0;
        let v: serde_json::Value = serde_json::from_str(&clusters_json(&second, &shards)).unwrap();
        assert_eq!(v["clusters"][0]["endpoints"][0]["id"], eps[1]["id"]);
        assert_eq!(v["clusters"][0]["endpoints"][0]["idle"], serde_json::json!([0, 5]));
    }

    #[test]
    fn endpoints_carry_active_health_and_each_shards_ejections() {
        use crate::upstream::health::gauge::EjectionCells;
        use crate::upstream::health::Active;
        let toml = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
                    [[clusters]]\nname = \"api\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
                    [clusters.health_check]\ntype = \"tcp\"\n";
        let config = Arc::new(Config::parse(toml, "t.toml").unwrap());
        let generation = Generation::build(1, config, &mut Identities::default(), None).unwrap().0;
        let shards: Vec<Arc<ShardCounters>> = (0..2).map(|_| Arc::new(ShardCounters::default())).collect();
        generation.health.set(generation.endpoints[0][1].slot(), Active::Unhealthy);
        generation.health.set(generation.endpoints[0][0].slot(), Active::Healthy);
        let mut cells = EjectionCells::new(shards[1].ejections.clone());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        cells.ejected(generation.endpoints[0][0].slot(), until, 2);

        let v: serde_json::Value = serde_json::from_str(&clusters_json(&generation, &shards)).unwrap();
        let eps = &v["clusters"][0]["endpoints"];
        assert_eq!((eps[0]["health"].clone(), eps[0]["checks"].clone()), ("healthy".into(), true.into()));
        assert_eq!(eps[1]["health"], "unhealthy");
        assert_eq!(eps[0]["times_ejected"], serde_json::json!([0, 2]));
        let left = eps[0]["ejected_ms"][1].as_u64().unwrap();
        assert!((29_000..=30_000).contains(&left), "{left}");
        assert_eq!(eps[1]["ejected_ms"], serde_json::json!([0, 0]));
    }
}
