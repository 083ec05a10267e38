//! A shard's metrics state (`!Send`, written only by its shard): labelled
//! request and endpoint counts, and the three latency histograms.
//!
//! Per request, [`ShardMetrics::record`] does no string work, hashing or
//! allocation: labels are resolved to small integers once per generation
//! (the first request of a generation on this shard builds its
//! [`GenerationIndex`]), then a request indexes vectors by listener, route
//! and endpoint position. Series are keyed by names (listener, route,
//! cluster, endpoint as written), never by positions, so a reload that
//! keeps a route or an endpoint keeps its counts. Series of routes or
//! endpoints a reload removed stay (counters never go back; they stop
//! growing) until the process restarts.

use std::cell::RefCell;
use std::collections::HashMap;

use super::latency::Latency;
use super::series::{
    EndpointLabels, RequestCells, RequestLabels, Scope, ShardSnapshot, TOTAL, UPSTREAM_CONNECT, UPSTREAM_HEAD,
};
use crate::config::{Config, RouteAction};
use crate::observe::record::Record;
use crate::shard::generation::ShardGeneration;
use crate::shard::identity::ListenerId;

/// Generations whose index a shard keeps: requests that started on an
/// older generation finish after a reload, so more than the newest one is
/// needed; past this many the oldest is rebuilt if a straggler needs it.
const INDEXES_KEPT: usize = 4;

#[derive(Default)]
pub struct ShardMetrics {
    state: RefCell<State>,
    /// Downstream TLS handshakes per listener (by stable `ListenerId`).
    tls: RefCell<Vec<ListenerTls>>,
}

/// One listener's downstream TLS handshakes on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerTls {
    pub tls12: u64,
    pub tls13: u64,
    pub resumed: u64,
    pub failures: u64,
}

#[derive(Default)]
struct State {
    requests: Vec<(RequestLabels, RequestCells)>,
    request_ids: HashMap<RequestLabels, u32>,
    endpoints: Vec<(EndpointLabels, RequestCells)>,
    endpoint_ids: HashMap<EndpointLabels, u32>,
    /// Newest first.
    indexes: Vec<GenerationIndex>,
    latency: [Latency; 3],
}

/// One generation's positions mapped to this shard's series ids.
struct GenerationIndex {
    number: u64,
    /// Routes in the generation, plus one (column 0: no route).
    width: usize,
    /// `[listener * width + route + 1]` -> request series.
    requests: Vec<u32>,
    /// `[cluster][endpoint position]` -> endpoint series.
    endpoints: Vec<Vec<u32>>,
}

/// An endpoint as written, the way its label shows it (`[::1]:80` for
/// an IPv6 address).
pub fn endpoint_label(config: &Config, cluster: usize, index: usize) -> EndpointLabels {
    let c = &config.clusters[cluster];
    let host = &c.endpoint_hosts[index];
    let port = c.endpoints[index].port();
    let endpoint = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    EndpointLabels { cluster: c.name.clone(), endpoint }
}

fn id_of<K: Clone + Eq + std::hash::Hash>(
    ids: &mut HashMap<K, u32>,
    series: &mut Vec<(K, RequestCells)>,
    key: K,
) -> u32 {
    *ids.entry(key.clone()).or_insert_with(|| {
        series.push((key, RequestCells::default()));
        (series.len() - 1) as u32
    })
}

impl State {
    /// Position in `indexes` of `generation`'s index, built if missing.
    fn index_of(&mut self, generation: &ShardGeneration) -> usize {
        let number = generation.shared.number;
        if let Some(i) = self.indexes.iter().position(|x| x.number == number) {
            return i;
        }
        let config = generation.config();
        let width = config.routes.len() + 1;
        let mut requests = Vec::with_capacity(config.listeners.len() * width);
        for l in &config.listeners {
            for column in 0..width {
                let (route, cluster) = match column.checked_sub(1).map(|r| &config.routes[r]) {
                    None => (String::new(), String::new()),
                    Some(r) => match r.action {
                        RouteAction::Proxy { cluster } => (r.name.clone(), config.clusters[cluster].name.clone()),
                        _ => (r.name.clone(), String::new()),
                    },
                };
                let key = RequestLabels { listener: l.name.clone(), route, cluster };
                requests.push(id_of(&mut self.request_ids, &mut self.requests, key));
            }
        }
        let endpoints = (0..config.clusters.len())
            .map(|c| {
                (0..config.clusters[c].endpoints.len())
                    .map(|e| id_of(&mut self.endpoint_ids, &mut self.endpoints, endpoint_label(config, c, e)))
                    .collect()
            })
            .collect();
        self.indexes.insert(0, GenerationIndex { number, width, requests, endpoints });
        self.indexes.truncate(INDEXES_KEPT);
        0
    }
}

impl ShardMetrics {
    /// Counts one finished request (the record step).
    pub fn record(&self, r: &Record<'_>) {
        let o = r.outcome;
        let mut state = self.state.borrow_mut();
        let s = &mut *state;
        let at = s.index_of(r.generation);
        let index = &s.indexes[at];
        let column = o.route.map_or(0, |route| route + 1);
        if let Some(&id) = index.requests.get(r.listener * index.width + column) {
            s.requests[id as usize].1.add(o);
        }
        if let Some(ep) = &o.endpoint {
            if let Some(&id) = index.endpoints.get(ep.cluster).and_then(|c| c.get(ep.index)) {
                s.endpoints[id as usize].1.add(o);
            }
        }
        s.latency[TOTAL].record(o.timings.total);
        if let Some(d) = o.timings.upstream_connect {
            s.latency[UPSTREAM_CONNECT].record(d);
        }
        if let Some(d) = o.timings.upstream_head {
            s.latency[UPSTREAM_HEAD].record(d);
        }
    }

    /// A copy for the admin thread (between requests, on the shard).
    /// Pool and connection gauges are added by the caller, which has the
    /// shard.
    /// A completed downstream TLS handshake on `listener` (counted per
    /// connection, not per request: always, whatever `[metrics]` says).
    pub fn tls_handshake(&self, listener: ListenerId, tls13: bool, resumed: bool) {
        self.with_tls(listener, |t| {
            if tls13 {
                t.tls13 += 1;
            } else {
                t.tls12 += 1;
            }
            t.resumed += u64::from(resumed);
        });
    }

    /// A downstream TLS handshake on `listener` failed or timed out.
    pub fn tls_failure(&self, listener: ListenerId) {
        self.with_tls(listener, |t| t.failures += 1);
    }

    fn with_tls(&self, listener: ListenerId, f: impl FnOnce(&mut ListenerTls)) {
        let mut tls = self.tls.borrow_mut();
        let i = listener.0 as usize;
        if tls.len() <= i {
            tls.resize(i + 1, ListenerTls::default());
        }
        f(&mut tls[i]);
    }

    /// The TLS handshake counts of `listener` so far.
    pub fn listener_tls(&self, listener: ListenerId) -> ListenerTls {
        self.tls.borrow().get(listener.0 as usize).copied().unwrap_or_default()
    }

    pub fn snapshot(&self, shard: usize, scope: Scope) -> ShardSnapshot {
        let s = self.state.borrow();
        match scope {
            Scope::Stats => {
                ShardSnapshot { shard, latency: vec![s.latency[TOTAL].clone()], ..ShardSnapshot::default() }
            }
            Scope::Metrics => ShardSnapshot {
                shard,
                requests: s.requests.clone(),
                endpoints: s.endpoints.clone(),
                latency: s.latency.to_vec(),
                ..ShardSnapshot::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::outcome::Outcome;
    use crate::error::ErrorKind;
    use crate::shard::generation::Generation;
    use crate::shard::identity::Identities;
    use crate::upstream::balance::Endpoint;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const CONFIG: &str = "[[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
        [[routes]]\nname = \"api\"\ncluster = \"c\"\n[routes.match]\npath_prefix = \"/api/\"\n\
        [[routes]]\nname = \"tea\"\ndirect = { status = 418 }\n\
        [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\", \"[::1]:2\"]\n";

    fn generation(text: &str, number: u64, ids: &mut Identities) -> ShardGeneration {
        let config = Arc::new(Config::parse(text, "t.toml").unwrap());
        let (g, _) = Generation::build(number, config, ids, None).unwrap();
        ShardGeneration::new(0, Arc::new(g), None)
    }

    fn record(m: &ShardMetrics, g: &ShardGeneration, o: &Outcome) {
        m.record(&Record::of_outcome(g, o));
    }

    fn proxied(g: &ShardGeneration, endpoint: usize) -> Outcome {
        let mut o = Outcome::new(Instant::now());
        o.status = 200;
        o.route = Some(0);
        o.cluster = Some(0);
        o.endpoint = Some(Endpoint { cluster: 0, index: endpoint, id: g.shared.endpoints[0][endpoint] });
        o.bytes_received = 10;
        o.bytes_sent = 20;
        o.timings.total = Duration::from_millis(2);
        o.timings.upstream_connect = Some(Duration::from_micros(300));
        o.timings.upstream_head = Some(Duration::from_millis(1));
        o
    }

    fn row<'a>(s: &'a ShardSnapshot, route: &str) -> &'a RequestCells {
        &s.requests.iter().find(|(l, _)| l.route == route).unwrap_or_else(|| panic!("no {route}: {s:?}")).1
    }

    #[test]
    fn requests_land_in_their_route_cluster_and_endpoint_series() {
        let mut ids = Identities::default();
        let g = generation(CONFIG, 1, &mut ids);
        let m = ShardMetrics::default();
        record(&m, &g, &proxied(&g, 0));
        record(&m, &g, &proxied(&g, 1));
        let mut refused = Outcome::new(Instant::now());
        refused.status = 404;
        refused.error = Some(ErrorKind::NoRoute);
        record(&m, &g, &refused);
        let mut direct = Outcome::new(Instant::now());
        direct.status = 418;
        direct.route = Some(1);
        record(&m, &g, &direct);

        let s = m.snapshot(3, Scope::Metrics);
        assert_eq!(s.shard, 3);
        let api = row(&s, "api");
        assert_eq!((api.statuses[1], api.received, api.sent), (2, 20, 40));
        let none = s.requests.iter().find(|(l, _)| l.route.is_empty()).unwrap();
        assert_eq!((none.0.listener.as_str(), none.0.cluster.as_str()), ("web", ""));
        assert_eq!(none.1.errors[ErrorKind::NoRoute.index()], 1);
        let tea = s.requests.iter().find(|(l, _)| l.route == "tea").unwrap();
        assert_eq!((tea.0.cluster.as_str(), tea.1.statuses[3]), ("", 1));
        assert_eq!(s.requests.iter().find(|(l, _)| l.route == "api").unwrap().0.cluster, "c");
        let ep: Vec<(&str, u64)> = s.endpoints.iter().map(|(l, c)| (l.endpoint.as_str(), c.statuses[1])).collect();
        assert_eq!(ep, [("127.0.0.1:1", 1), ("[::1]:2", 1)]);
        assert_eq!(s.latency[TOTAL].count(), 4);
        assert_eq!(s.latency[UPSTREAM_CONNECT].count(), 2);
        assert_eq!(s.latency[UPSTREAM_HEAD].count(), 2);
        let stats = m.snapshot(3, Scope::Stats);
        assert!(stats.requests.is_empty());
        assert_eq!(stats.latency.len(), 1);
        assert_eq!(stats.latency[0].count(), 4);
    }

    #[test]
    fn a_reload_that_keeps_a_route_and_endpoint_keeps_their_counts_wherever_they_move() {
        let mut ids = Identities::default();
        let one = generation(CONFIG, 1, &mut ids);
        let m = ShardMetrics::default();
        record(&m, &one, &proxied(&one, 1));
        // Generation 2: a route inserted before "api", and the endpoint
        // [::1]:2 moved to the front of its cluster.
        let text = CONFIG
            .replace(
                "[[routes]]\nname = \"api\"",
                "[[routes]]\nname = \"new\"\ndirect = { status = 204 }\n[[routes]]\nname = \"api\"",
            )
            .replace("[\"127.0.0.1:1\", \"[::1]:2\"]", "[\"[::1]:2\", \"127.0.0.1:1\"]");
        let two = generation(&text, 2, &mut ids);
        let mut o = proxied(&two, 0);
        o.route = Some(1);
        record(&m, &two, &o);
        // A straggler of generation 1 finishing after the reload.
        record(&m, &one, &proxied(&one, 1));
        let s = m.snapshot(0, Scope::Metrics);
        assert_eq!(row(&s, "api").statuses[1], 3, "{s:?}");
        let v6 = s.endpoints.iter().find(|(l, _)| l.endpoint == "[::1]:2").unwrap();
        assert_eq!(v6.1.statuses[1], 3);
        assert_eq!(s.endpoints.len(), 2, "no new series for a moved endpoint");
        assert_eq!(row(&s, "new").requests(), 0);
    }

    #[test]
    fn a_request_outside_the_index_is_not_counted_rather_than_panicking() {
        let mut ids = Identities::default();
        let g = generation(CONFIG, 1, &mut ids);
        let m = ShardMetrics::default();
        let mut o = proxied(&g, 0);
        o.route = Some(99);
        o.endpoint = Some(Endpoint { cluster: 7, index: 0, id: g.shared.endpoints[0][0] });
        record(&m, &g, &o);
        let s = m.snapshot(0, Scope::Metrics);
        assert!(s.requests.iter().all(|(_, c)| c.requests() == 0));
        assert_eq!(s.latency[TOTAL].count(), 1);
    }
}
