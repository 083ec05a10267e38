//! `GET /metrics` and the latency in `/stats`: a mixed run (proxied 2xx,
//! 404 without a route, 502 from an endpoint that refuses, answers the
//! proxy gives itself) is counted exactly, per listener/route/cluster, per
//! endpoint and per shard; the latency histograms count every request;
//! the document is strict Prometheus text (checked by a parser here that
//! refuses what Prometheus refuses); counters survive a reload that keeps
//! their route and endpoint; `[metrics] enabled = false` stops them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::harness::proxy::{json_u64, shard_objects};
use crate::harness::upstream::refusing_addr;
use crate::harness::*;

/// One sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A `/metrics` document, parsed and checked.
struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the one series `name` whose labels are exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| panic!("no {name}{labels:?}"))
    }

    /// Sum of `name` over the series whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v)))
            .map(|s| s.value)
            .sum()
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse::<f64>().map_err(|_| format!("bad value {text:?}")),
    }
}

/// `name{a="x",b="y"} value`: the labels part, escapes decoded (only
/// `\\`, `\"` and `\n` are allowed).
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => return Err(format!("bad escape \\{other}")),
                },
                (_, '\n') => return Err("raw line feed in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// Parses the text exposition format (0.0.4) strictly: HELP and TYPE at
/// most once per family and before its samples, a family's samples
/// together, histogram samples only `_bucket` (with `le`), `_sum` and
/// `_count`, no series twice, every line ended by a line feed; then
/// checks every histogram: `le` increasing, counts cumulative, `+Inf`
/// equal to `_count`.
fn parse_strict(text: &str) -> Result<Scrape, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("last line not ended".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut finished_families = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen = BTreeSet::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) => {
                    if !valid_metric_name(name) || !helps.insert(name.to_string()) {
                        return Err(err("bad or repeated HELP".into()));
                    }
                    let help = line.splitn(4, ' ').nth(3).unwrap_or("");
                    let mut chars = help.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                            return Err(err("bad escape in HELP".into()));
                        }
                    }
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind}")));
                    }
                    if !valid_metric_name(name) || types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(err("bad or repeated TYPE".into()));
                    }
                    if seen.iter().any(|(s, _): &(String, String)| family_of(s, &types) == name) {
                        return Err(err("TYPE after the family's samples".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(after) => parse_labels(after).map_err(err)?,
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let mut fields = rest.strip_prefix(' ').ok_or_else(|| err("no space before the value".into()))?.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        let family = family_of(name, &types).to_string();
        match types.get(&family).map(String::as_str) {
            Some("histogram") => {
                let suffix = &name[family.len()..];
                if !["_bucket", "_sum", "_count"].contains(&suffix) {
                    return Err(err("histogram sample without _bucket/_sum/_count".into()));
                }
                if (suffix == "_bucket") != labels.contains_key("le") {
                    return Err(err("le on a non-bucket or a bucket without le".into()));
                }
            }
            Some(_) if name != family => return Err(err("sample name is not its family's".into())),
            _ => {}
        }
        if current.as_deref() != Some(family.as_str()) {
            if !finished_families.insert(family.clone()) {
                return Err(err(format!("family {family} split in two")));
            }
            current = Some(family.clone());
        }
        let key = format!("{labels:?}");
        if !seen.insert((name.to_string(), key)) {
            return Err(err("series twice".into()));
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    let scrape = Scrape { samples };
    for (family, kind) in &types {
        if kind == "histogram" {
            check_histogram(&scrape, family)?;
        }
    }
    Ok(scrape)
}

/// A sample's family: its name, or the histogram whose `_bucket`, `_sum`
/// or `_count` it is.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return base;
            }
        }
    }
    name
}

fn check_histogram(scrape: &Scrape, family: &str) -> Result<(), String> {
    let bucket = format!("{family}_bucket");
    let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    for s in scrape.samples.iter().filter(|s| s.name == bucket) {
        let mut labels = s.labels.clone();
        let le = parse_value(&labels.remove("le").unwrap_or_default())?;
        series.entry(labels).or_default().push((le, s.value));
    }
    for (labels, buckets) in series {
        if !buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1) {
            return Err(format!("{family}{labels:?}: buckets not increasing: {buckets:?}"));
        }
        let inf = buckets.last().filter(|b| b.0 == f64::INFINITY).ok_or(format!("{family}{labels:?}: no +Inf"))?.1;
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let count = scrape.value(&format!("{family}_count"), &pairs).ok_or(format!("{family}{labels:?}: no _count"))?;
        scrape.value(&format!("{family}_sum"), &pairs).ok_or(format!("{family}{labels:?}: no _sum"))?;
        if inf != count {
            return Err(format!("{family}{labels:?}: +Inf bucket {inf} != _count {count}"));
        }
    }
    Ok(())
}

fn scrape(proxy: &Proxy) -> Scrape {
    let response = Client::connect(proxy.admin())
        .request(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = response.text();
    parse_strict(&text).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"))
}

/// One request on a connection of its own (`Connection: close`):
/// (request bytes written, response bytes read, status).
fn exchange(addr: SocketAddr, path: &str) -> (u64, u64, u16) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: metrics.test\r\nConnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let status = std::str::from_utf8(&response[9..12]).unwrap().parse().unwrap();
    (request.len() as u64, response.len() as u64, status)
}

/// Finished requests over all shards, from `/stats`.
fn finished(proxy: &Proxy) -> u64 {
    let json = proxy.stats_json();
    shard_objects(&json)
        .unwrap()
        .iter()
        .map(|s| ["1xx", "2xx", "3xx", "4xx", "5xx", "none"].iter().map(|c| json_u64(s, c).unwrap()).sum::<u64>())
        .sum()
}

/// The number that follows `"key":` in `object` (a JSON number, maybe fractional).
fn json_f64(object: &str, key: &str) -> Option<f64> {
    let at = object.find(&format!("\"{key}\":"))? + key.len() + 3;
    let text: String =
        object[at..].chars().take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '-')).collect();
    text.parse().ok()
}

/// A route name with a quote and a backslash: its label value is escaped.
const TEA: &str = "tea\"pot\\2";

#[test]
fn a_mixed_run_is_counted_per_route_cluster_endpoint_and_shard() {
    let upstream = Upstream::ok("hello from app");
    let down = refusing_addr();
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster("app", &[upstream.addr()])
        .cluster("down", &[down])
        .route(Route::new("app").path_prefix("/app/").cluster("app"))
        .route(Route::new("down").path("/down").cluster("down"))
        .route(Route::new(TEA).path("/tea").direct(418, "short and stout"))
        .start();

    // Bytes the clients wrote and read, per route ("" = no route).
    let mut bytes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let plan: [(&str, &str, u16, usize); 4] =
        [("app", "/app/x", 200, 6), ("", "/nowhere", 404, 1), ("down", "/down", 502, 1), (TEA, "/tea", 418, 2)];
    for (route, path, status, times) in plan {
        for _ in 0..times {
            let (sent, read, got) = exchange(proxy.addr(), path);
            assert_eq!(got, status, "{path}");
            let entry = bytes.entry(route).or_default();
            entry.0 += sent;
            entry.1 += read;
        }
    }
    // A keep-alive connection left open, for the per-listener gauge.
    let mut held = Client::connect(proxy.addr());
    assert_eq!(held.get("/tea").status, 418);
    assert!(eventually(Duration::from_secs(5), || finished(&proxy) == 11), "finished: {}", finished(&proxy));

    let m = scrape(&proxy);
    let listener = [("listener", "main")];
    let series = |route: &'static str, cluster: &'static str| {
        let mut l = listener.to_vec();
        l.extend([("route", route), ("cluster", cluster)]);
        l
    };
    let with = |mut labels: Vec<(&'static str, &'static str)>, extra: (&'static str, &'static str)| {
        labels.push(extra);
        labels
    };
    assert_eq!(m.get("shardgate_requests_total", &with(series("app", "app"), ("class", "2xx"))), 6.0);
    assert_eq!(m.get("shardgate_requests_total", &with(series("", ""), ("class", "4xx"))), 1.0);
    assert_eq!(m.get("shardgate_errors_total", &with(series("", ""), ("kind", "no_route"))), 1.0);
    assert_eq!(m.get("shardgate_requests_total", &with(series("down", "down"), ("class", "5xx"))), 1.0);
    assert_eq!(
        m.get("shardgate_errors_total", &with(series("down", "down"), ("kind", "upstream_connect_failed"))),
        1.0
    );
    assert_eq!(
        m.get("shardgate_requests_total", &with(series(TEA, ""), ("class", "4xx"))),
        3.0,
        "label escaped and read back"
    );
    assert_eq!(m.sum("shardgate_requests_total", &[]), 11.0, "no other series counted");
    assert_eq!(m.sum("shardgate_errors_total", &[]), 2.0);
    for (route, cluster) in [("app", "app"), ("", ""), ("down", "down")] {
        let (sent, read) = bytes[route];
        assert_eq!(m.get("shardgate_received_bytes_total", &series(route, cluster)), sent as f64, "{route:?}");
        assert_eq!(m.get("shardgate_sent_bytes_total", &series(route, cluster)), read as f64, "{route:?}");
    }
    assert_eq!(m.get("shardgate_retries_total", &series("app", "app")), 0.0);

    let app_endpoint = upstream.addr().to_string();
    let down_endpoint = down.to_string();
    let (app_ep, down_ep) = (app_endpoint.as_str(), down_endpoint.as_str());
    let app_2xx = [("cluster", "app"), ("endpoint", app_ep), ("class", "2xx")];
    assert_eq!(m.get("shardgate_endpoint_requests_total", &app_2xx), 6.0);
    let down_5xx = [("cluster", "down"), ("endpoint", down_ep), ("class", "5xx")];
    assert_eq!(m.get("shardgate_endpoint_requests_total", &down_5xx), 1.0);
    let down_err = [("cluster", "down"), ("endpoint", down_ep), ("kind", "upstream_connect_failed")];
    assert_eq!(m.get("shardgate_endpoint_errors_total", &down_err), 1.0);
    assert_eq!(
        m.get("shardgate_endpoint_sent_bytes_total", &[("cluster", "app"), ("endpoint", &app_endpoint)]),
        bytes["app"].1 as f64
    );
    assert_eq!(
        m.get("shardgate_upstream_pool_idle_connections", &[("cluster", "down"), ("endpoint", &down_endpoint)]),
        0.0
    );
    assert!(m
        .value("shardgate_upstream_pool_idle_connections", &[("cluster", "app"), ("endpoint", &app_endpoint)])
        .is_some());

    // Per shard: the histogram counts what the shard finished; +Inf equals
    // _count (checked by the parser for every series); both shards appear.
    let mut total = 0.0;
    for shard in ["0", "1"] {
        let finished_here = m.sum("shardgate_shard_requests_total", &[("shard", shard)]);
        let count = m.get("shardgate_request_duration_seconds_count", &[("shard", shard)]);
        assert_eq!(count, finished_here, "shard {shard}");
        assert_eq!(m.get("shardgate_request_duration_seconds_bucket", &[("shard", shard), ("le", "+Inf")]), count);
        total += count;
        let max = m.get("shardgate_request_duration_quantile_seconds", &[("shard", shard), ("quantile", "1")]);
        let p50 = m.get("shardgate_request_duration_quantile_seconds", &[("shard", shard), ("quantile", "0.5")]);
        assert!(max >= p50 && (count == 0.0 || max > 0.0), "shard {shard}: p50 {p50} max {max}");
        assert!(m.value("shardgate_connections_active", &[("shard", shard)]).is_some());
    }
    assert_eq!(total, 11.0);
    assert_eq!(m.sum("shardgate_shard_requests_total", &[("class", "2xx")]), 6.0);
    assert_eq!(m.sum("shardgate_shard_requests_total", &[("class", "4xx")]), 4.0);
    assert_eq!(m.sum("shardgate_shard_requests_total", &[("class", "5xx")]), 1.0);
    assert_eq!(m.sum("shardgate_connections_accepted_total", &[]), 11.0);
    assert_eq!(m.sum("shardgate_upstream_response_head_duration_seconds_count", &[]), 6.0);
    assert_eq!(
        m.sum("shardgate_upstream_connect_duration_seconds_count", &[]),
        upstream.connections() as f64,
        "one connect timing per connection the upstream accepted"
    );
    let all_max = m.get("shardgate_request_duration_quantile_seconds", &[("shard", "all"), ("quantile", "1")]);
    let shard_max = ["0", "1"]
        .map(|s| m.get("shardgate_request_duration_quantile_seconds", &[("shard", s), ("quantile", "1")]))
        .into_iter()
        .fold(0.0, f64::max);
    assert_eq!(all_max, shard_max, "the merged max is the larger shard max");
    assert_eq!(m.get("shardgate_metrics_shards_missing", &[]), 0.0);
    assert!(
        eventually(Duration::from_secs(5), || scrape(&proxy)
            .sum("shardgate_listener_connections", &[("listener", "main")])
            == 1.0),
        "the one held connection"
    );

    // /stats: each shard's latency_seconds counts what it finished.
    let json = proxy.stats_json();
    let mut counted = 0;
    for object in shard_objects(&json).unwrap() {
        let latency = &object[object.find("\"latency_seconds\":{").unwrap_or_else(|| panic!("{json}"))..];
        let latency = &latency[..latency.find('}').unwrap()];
        let statuses: u64 =
            ["1xx", "2xx", "3xx", "4xx", "5xx", "none"].iter().map(|c| json_u64(object, c).unwrap()).sum();
        assert_eq!(json_u64(latency, "count"), Some(statuses), "{json}");
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(json_f64(latency, key).is_some_and(|v| (0.0..10.0).contains(&v)), "{key} in {json}");
        }
        if statuses > 0 {
            assert!(json_f64(latency, "max").unwrap() > 0.0, "{json}");
        }
        counted += statuses;
    }
    assert_eq!(counted, 11);
    drop(held);
}

#[test]
fn counters_survive_a_reload_that_keeps_the_route_and_endpoint_and_stop_when_switched_off() {
    let upstream = Upstream::ok("app");
    let config = |extra_route: bool, enabled: bool| {
        let mut c = ProxyConfig::new().cluster("app", &[upstream.addr()]);
        if extra_route {
            c = c.route(Route::new("inserted").path("/inserted").direct(204, ""));
        }
        let text = c.route(Route::new("app").path_prefix("/app/").cluster("app")).to_toml();
        format!("{text}\n[metrics]\nenabled = {enabled}\n")
    };
    let proxy = Proxy::run_toml(&config(false, true), &["main", "admin"]);
    let app = [("listener", "main"), ("route", "app"), ("cluster", "app"), ("class", "2xx")];
    let endpoint = upstream.addr().to_string();
    let app_endpoint = [("cluster", "app"), ("endpoint", endpoint.as_str()), ("class", "2xx")];
    let run = |n: usize| {
        for _ in 0..n {
            assert_eq!(exchange(proxy.addr(), "/app/x").2, 200);
        }
    };
    run(3);
    assert!(eventually(Duration::from_secs(5), || finished(&proxy) == 3));
    assert_eq!(scrape(&proxy).get("shardgate_requests_total", &app), 3.0);

    // A route inserted before "app": its position changes, its name not.
    proxy.write_config(&config(true, true));
    assert_eq!(proxy.reload().status, 200);
    run(2);
    assert_eq!(exchange(proxy.addr(), "/inserted").2, 204);
    assert!(eventually(Duration::from_secs(5), || finished(&proxy) == 6));
    let m = scrape(&proxy);
    assert_eq!(m.get("shardgate_requests_total", &app), 5.0, "kept across the reload");
    assert_eq!(m.get("shardgate_endpoint_requests_total", &app_endpoint), 5.0);
    assert_eq!(
        m.get(
            "shardgate_requests_total",
            &[("listener", "main"), ("route", "inserted"), ("cluster", ""), ("class", "2xx")]
        ),
        1.0
    );
    assert_eq!(m.sum("shardgate_request_duration_seconds_count", &[]), 6.0);

    // Switched off: the shard totals still count, the rest stands still.
    proxy.write_config(&config(true, false));
    assert_eq!(proxy.reload().status, 200);
    run(2);
    assert!(eventually(Duration::from_secs(5), || finished(&proxy) == 8));
    let m = scrape(&proxy);
    assert_eq!(m.get("shardgate_requests_total", &app), 5.0);
    assert_eq!(m.sum("shardgate_request_duration_seconds_count", &[]), 6.0);
    assert_eq!(m.sum("shardgate_shard_requests_total", &[("class", "2xx")]), 8.0);
}

#[test]
fn the_strict_parser_refuses_what_prometheus_refuses() {
    let good = "# HELP a_total Things \\\\ and \\n.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
    let parsed = parse_strict(good).unwrap();
    assert_eq!(parsed.get("a_total", &[("x", "q\"\\\n")]), 1.0);
    const BAD: &[&str] = &[
        "a 1",                                                                                     // no final line feed
        "a{x=\"\\t\"} 1\n",                                                                        // bad escape
        "a{x=\"1\",x=\"2\"} 1\n",                                                                  // label twice
        "a{1x=\"1\"} 1\n",                                                                         // bad label name
        "a 1\na 2\n",                                                                              // series twice
        "a 1\nb 1\na{x=\"1\"} 1\n",                                                                // family split
        "# TYPE a counter\n# TYPE a gauge\na 1\n",                                                 // TYPE twice
        "a 1\n# TYPE a counter\n",                                                                 // TYPE after samples
        "# TYPE h histogram\nh 1\n", // bare histogram sample
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", // +Inf != count
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", // not cumulative
        "a one\n",                   // bad value
    ];
    for bad in BAD {
        assert!(parse_strict(bad).is_err(), "accepted {bad:?}");
    }
}
