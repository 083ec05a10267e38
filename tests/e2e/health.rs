//! Endpoint health: active health checks (`[clusters.health_check]`),
//! passive outlier detection (`[clusters.outlier]`) and the panic
//! threshold, against real upstreams that fail in controlled ways (a
//! health endpoint the test flips between 200 and 500, garbage, slowness,
//! closed connections). Intervals are short (100-200 ms); timing
//! assertions have wide tolerances.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::upstream::Reply;
use crate::harness::*;

/// An upstream whose `/health` answers the status the test sets (200 to
/// start) and counts its probes; every other path answers `name`.
struct Flippable {
    upstream: Upstream,
    health: Arc<AtomicU16>,
    probes: Arc<AtomicUsize>,
}

impl Flippable {
    fn start(name: &'static str) -> Flippable {
        let health = Arc::new(AtomicU16::new(200));
        let probes = Arc::new(AtomicUsize::new(0));
        let (h, p) = (health.clone(), probes.clone());
        let upstream = Upstream::start(move |r| {
            if r.target == "/health" {
                p.fetch_add(1, Ordering::SeqCst);
                return Reply::status(h.load(Ordering::SeqCst), "health");
            }
            Reply::ok(name)
        });
        Flippable { upstream, health, probes }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.upstream.addr()
    }

    fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::SeqCst);
    }

    fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }

    /// Requests that were not probes.
    fn served(&self) -> usize {
        self.upstream.requests().iter().filter(|r| r.target != "/health").count()
    }
}

fn admin_get(proxy: &Proxy, path: &str) -> Response {
    let response = Client::connect(proxy.admin())
        .request(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    response
}

fn admin_json(proxy: &Proxy, path: &str) -> Value {
    let response = admin_get(proxy, path);
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", response.text()))
}

/// `/clusters`' endpoint `index` of cluster `cluster`.
fn endpoint(proxy: &Proxy, cluster: usize, index: usize) -> Value {
    admin_json(proxy, "/clusters")["clusters"][cluster]["endpoints"][index].clone()
}

/// Waits until `/clusters` shows `health` for the endpoint; panics after `within`.
#[track_caller]
fn wait_health(proxy: &Proxy, cluster: usize, index: usize, health: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let e = endpoint(proxy, cluster, index);
        if e["health"] == health {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "endpoint {index} not {health} within {within:?}: {e}\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to a second) until the endpoint's `/clusters` entry satisfies `ok`.
#[track_caller]
fn wait_endpoint(proxy: &Proxy, cluster: usize, index: usize, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let e = endpoint(proxy, cluster, index);
        if ok(&e) {
            return e;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "{e}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn check(lines: &str) -> String {
    format!("[clusters.health_check]\npath = \"/health\"\njitter = \"0s\"\n{lines}")
}

/// The bodies of `n` requests, each on a new connection (spread over
/// every shard).
fn bodies(proxy: &Proxy, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = get(proxy.addr(), &format!("/r/{i}"));
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
        })
        .collect()
}

#[test]
fn active_checks_take_an_endpoint_out_at_the_unhealthy_threshold_and_back_at_the_healthy_threshold() {
    let (a, b) = (Flippable::start("a"), Flippable::start("b"));
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster_with(
            "app",
            &[a.addr(), b.addr()],
            &check("interval = \"150ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 3"),
        )
        .route(Route::new("all").cluster("app"))
        .start();
    wait_health(&proxy, 0, 0, "healthy", Duration::from_secs(3));
    wait_health(&proxy, 0, 1, "healthy", Duration::from_secs(3));
    let got = bodies(&proxy, 10);
    assert!(got.iter().any(|b| b == "a") && got.iter().any(|b| b == "b"), "{got:?}");

    // Failing: out after three failed probes, not before.
    a.set_health(500);
    let probes_before = a.probes();
    let took = wait_health(&proxy, 0, 0, "unhealthy", Duration::from_secs(3));
    let failed = a.probes() - probes_before;
    assert!(failed >= 3, "unhealthy after {failed} failed probes");
    assert!(took >= Duration::from_millis(250), "unhealthy after {took:?}: fewer than three intervals");
    let served = a.served();
    let got = bodies(&proxy, 20);
    assert!(got.iter().all(|b| b == "b"), "a request reached the unhealthy endpoint: {got:?}");
    assert_eq!(a.served(), served);

    // Passing again: back after two passed probes.
    a.set_health(200);
    let probes_before = a.probes();
    wait_health(&proxy, 0, 0, "healthy", Duration::from_secs(3));
    assert!(a.probes() - probes_before >= 2, "healthy after {} probes", a.probes() - probes_before);
    let got = bodies(&proxy, 20);
    assert!(got.iter().filter(|b| *b == "a").count() >= 5, "traffic did not come back: {got:?}");
}

#[test]
fn probes_are_not_multiplied_by_the_shard_count() {
    let a = Flippable::start("a");
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster_with("app", &[a.addr()], &check("interval = \"100ms\"\ntimeout = \"100ms\""))
        .route(Route::new("all").cluster("app"))
        .start();
    wait_health(&proxy, 0, 0, "healthy", Duration::from_secs(3));
    let start = (Instant::now(), a.probes());
    std::thread::sleep(Duration::from_millis(1500));
    let (elapsed, probes) = (start.0.elapsed(), a.probes() - start.1);
    let intervals = elapsed.as_millis() as usize / 100;
    // One prober: about one probe per interval (two shards each probing
    // would make it two).
    assert!(
        probes * 10 >= intervals * 6 && probes * 10 <= intervals * 13,
        "{probes} probes in {elapsed:?} ({intervals} intervals)"
    );
    let stats = admin_json(&proxy, "/stats");
    let counted = stats["health_checks"]["probes"].as_u64().unwrap();
    assert!(counted as usize >= probes, "/stats counts {counted} probes, the upstream saw {probes}+");
}

#[test]
fn a_garbage_slow_huge_or_closed_health_response_is_a_failure_not_a_crash() {
    let good = Flippable::start("good");
    let garbage = Upstream::start(|_| Reply::raw(b"\x00\xff\xfe not http at all\r\n\r\n".to_vec()));
    let slow = Upstream::start(|_| Reply::after(Duration::from_millis(600), Reply::ok("ready")));
    let closed = Upstream::start(|_| Reply::Close);
    let reset = Upstream::start(|_| Reply::Reset);
    // A body far larger than the probe reads, without the substring in
    // the part it reads.
    let huge = Upstream::start(|_| Reply::pattern(8 * 1024 * 1024));
    let truncated = Upstream::start(|_| Reply::ok("ready ready").cut(30, crate::harness::upstream::AfterCut::Close));
    let bad = [&garbage, &slow, &closed, &reset, &huge, &truncated];
    let mut endpoints = vec![good.addr()];
    endpoints.extend(bad.iter().map(|u| u.addr()));
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster_with(
            "app",
            &endpoints,
            &format!(
                "healthy_panic_threshold = 0\n{}",
                check(
                    "interval = \"200ms\"\ntimeout = \"150ms\"\nunhealthy_threshold = 2\n\
                     expected_statuses = [\"200\"]\nbody_contains = \"ready\""
                )
            ),
        )
        .route(Route::new("all").cluster("app"))
        .start();
    good.upstream.wait_for_requests(1);
    for i in 1..endpoints.len() {
        wait_health(&proxy, 0, i, "unhealthy", Duration::from_secs(5));
    }
    // `good` answers "health" to its probes, without "ready": unhealthy too.
    wait_health(&proxy, 0, 0, "unhealthy", Duration::from_secs(5));
    let stats = admin_json(&proxy, "/stats");
    assert!(stats["health_checks"]["probe_failures"].as_u64().unwrap() >= 14, "{stats}");
    // Every endpoint is down by its checks and panic mode is off: 503.
    let r = get(proxy.addr(), "/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("7 of 7 failing active health checks"), "{}", r.text());
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
}

#[test]
fn every_endpoint_down_by_active_checks_answers_503_at_once_naming_the_reason() {
    let (a, b) = (Flippable::start("a"), Flippable::start("b"));
    a.set_health(500);
    b.set_health(503);
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster_with(
            "app",
            &[a.addr(), b.addr()],
            &format!("healthy_panic_threshold = 0\n{}", check("interval = \"100ms\"\nunhealthy_threshold = 2")),
        )
        .route(Route::new("all").cluster("app"))
        .start();
    wait_health(&proxy, 0, 0, "unhealthy", Duration::from_secs(3));
    wait_health(&proxy, 0, 1, "unhealthy", Duration::from_secs(3));
    for _ in 0..10 {
        let started = Instant::now();
        let r = get(proxy.addr(), "/");
        assert!(started.elapsed() < Duration::from_millis(500), "not at once: {:?}", started.elapsed());
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            r.text().contains("no healthy endpoint in cluster \"app\": 2 of 2 failing active health checks"),
            "{}",
            r.text()
        );
    }
    assert_eq!(a.served() + b.served(), 0, "a request reached an unhealthy endpoint");
    let metrics = admin_get(&proxy, "/metrics").text();
    for addr in [a.addr(), b.addr()] {
        let series = format!("shardgate_endpoint_healthy{{cluster=\"app\",endpoint=\"{addr}\"}} 0\n");
        assert!(metrics.contains(&series), "{series} not in\n{metrics}");
    }
    let failures = metrics.lines().find_map(|l| l.strip_prefix("shardgate_health_check_failures_total "));
    assert!(failures.and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= 4), "{metrics}");
    let log = proxy.log();
    assert!(log.contains("active health check") && log.contains("unhealthy"), "{log}");
}

#[test]
fn panic_mode_spreads_over_every_endpoint_when_too_few_are_healthy() {
    let ups = [Flippable::start("a"), Flippable::start("b"), Flippable::start("c")];
    let addrs: Vec<_> = ups.iter().map(|u| u.addr()).collect();
    let proxy = ProxyConfig::new()
        .shards(1)
        .cluster_with("app", &addrs, &check("interval = \"100ms\"\nunhealthy_threshold = 1"))
        .route(Route::new("all").cluster("app"))
        .start();
    for i in 0..3 {
        wait_health(&proxy, 0, i, "healthy", Duration::from_secs(3));
    }
    // One of three unhealthy: 67 % healthy, above the default 50 %: the
    // unhealthy one is passed over.
    ups[0].set_health(500);
    wait_health(&proxy, 0, 0, "unhealthy", Duration::from_secs(3));
    let got = bodies(&proxy, 12);
    assert!(!got.contains(&"a".to_string()), "{got:?}");
    // Two of three: 33 % < 50 %: panic, every endpoint takes traffic.
    ups[1].set_health(500);
    wait_health(&proxy, 0, 1, "unhealthy", Duration::from_secs(3));
    let got = bodies(&proxy, 30);
    for name in ["a", "b", "c"] {
        let n = got.iter().filter(|b| *b == name).count();
        assert!((6..=14).contains(&n), "{name}: {n} of 30 in panic mode: {got:?}");
    }
}

#[test]
fn outlier_detection_ejects_after_consecutive_5xx_and_returns_after_the_ejection_time() {
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let a = Upstream::start(move |_| match f.load(Ordering::SeqCst) {
        true => Reply::status(500, "a broken"),
        false => Reply::ok("a"),
    });
    let b = Upstream::ok("b");
    let proxy = ProxyConfig::new()
        .shards(1)
        .cluster_with(
            "app",
            &[a.addr(), b.addr()],
            "[clusters.outlier]\nconsecutive_5xx = 3\nbase_ejection_time = \"1s\"\nmax_ejection_percent = 50",
        )
        .route(Route::new("all").cluster("app"))
        .start();
    // Round robin alternates: a gets every other request until its third 500.
    let mut statuses = Vec::new();
    while a.requests().len() < 3 {
        statuses.push(get(proxy.addr(), "/").status);
        assert!(statuses.len() <= 8, "{statuses:?}");
    }
    let ejected_at = Instant::now();
    // The shard counts a try once its response is relayed: a moment after
    // the client has it.
    let e = wait_endpoint(&proxy, 0, 0, |e| e["times_ejected"] == serde_json::json!([1]));
    let left = e["ejected_ms"][0].as_u64().unwrap();
    assert!(left > 500 && left <= 1000, "{e}");
    assert_eq!(admin_json(&proxy, "/stats")["shards"][0]["outlier_ejections"], 1);
    let metrics = admin_get(&proxy, "/metrics").text();
    assert!(metrics.contains("shardgate_outlier_ejections_total{shard=\"0\"} 1\n"), "{metrics}");
    let series = format!("shardgate_endpoint_ejected_shards{{cluster=\"app\",endpoint=\"{}\"}} 1\n", a.addr());
    assert!(metrics.contains(&series), "{series} not in\n{metrics}");
    // Ejected: every request goes to b.
    for _ in 0..10 {
        let r = get(proxy.addr(), "/");
        assert_eq!((r.status, r.text().as_str()), (200, "b"));
    }
    assert_eq!(a.requests().len(), 3);
    // Healthy again; after the ejection time it takes traffic.
    failing.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(ejected_at.elapsed()));
    let got: Vec<String> = (0..6).map(|_| get(proxy.addr(), "/").text()).collect();
    assert!(got.iter().filter(|b| *b == "a").count() >= 2, "not back after the ejection time: {got:?}");
    assert_eq!(endpoint(&proxy, 0, 0)["ejected_ms"], serde_json::json!([0]));
}

#[test]
fn outlier_detection_ejects_an_endpoint_refusing_connections_after_consecutive_gateway_failures() {
    let b = Upstream::ok("b");
    let dead = crate::harness::upstream::refusing_addr();
    let proxy = ProxyConfig::new()
        .shards(1)
        .cluster_with(
            "app",
            &[dead, b.addr()],
            "[clusters.outlier]\nconsecutive_gateway_failure = 2\nconsecutive_5xx = 0\nbase_ejection_time = \"30s\"",
        )
        .route(Route::new("all").cluster("app"))
        .start();
    // Each refused connect goes on to b (no client sees it); the second
    // ejects the dead endpoint.
    for _ in 0..10 {
        let r = get(proxy.addr(), "/");
        assert_eq!((r.status, r.text().as_str()), (200, "b"));
    }
    let e = endpoint(&proxy, 0, 0);
    assert_eq!(e["times_ejected"], serde_json::json!([1]), "{e}");
    assert!(e["ejected_ms"][0].as_u64().unwrap() > 25_000, "{e}");
    let stats = admin_json(&proxy, "/stats");
    assert_eq!(stats["shards"][0]["upstream_connects"].as_u64().unwrap(), 3, "two refused, one to b: {stats}");
}

#[test]
fn a_reload_that_keeps_the_clusters_keeps_their_health_and_ejections() {
    let checked = Flippable::start("checked");
    let spare = Flippable::start("spare");
    checked.set_health(500);
    let a = Upstream::start(|_| Reply::status(500, "a broken"));
    let b = Upstream::ok("b");
    // Long interval: a state lost by the reload would read "unknown" for
    // most of a second.
    let config = |extra: &str| {
        format!(
            "[server]\nshards = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n{extra}\
             [[routes]]\ncluster = \"outlier\"\n[routes.match]\npath_prefix = \"/o\"\n\
             [[routes]]\ncluster = \"checked\"\n[routes.match]\npath_prefix = \"/\"\n\
             [[clusters]]\nname = \"checked\"\nendpoints = [\"{}\", \"{}\"]\n\
             [clusters.health_check]\npath = \"/health\"\ninterval = \"2s\"\ntimeout = \"200ms\"\n\
             unhealthy_threshold = 1\njitter = \"0s\"\n\
             [[clusters]]\nname = \"outlier\"\nendpoints = [\"{}\", \"{}\"]\n\
             [clusters.outlier]\nconsecutive_5xx = 1\nbase_ejection_time = \"60s\"\nmax_ejection_percent = 50\n",
            checked.addr(),
            spare.addr(),
            a.addr(),
            b.addr()
        )
    };
    let proxy = Proxy::run_toml(&config(""), &["main", "admin"]);
    wait_health(&proxy, 0, 0, "unhealthy", Duration::from_secs(5));
    // Eject a on both shards: each ejects on its own traffic.
    let mut tries = 0;
    while endpoint(&proxy, 1, 0)["times_ejected"] != serde_json::json!([1, 1]) {
        get(proxy.addr(), "/o");
        tries += 1;
        assert!(tries < 200, "{}", endpoint(&proxy, 1, 0));
    }
    let served = (checked.served(), a.requests().len());

    proxy.write_config(&config(
        "[[routes]]\nname = \"added\"\ndirect = { status = 200, body = \"new\" }\n[routes.match]\npath = \"/added\"\n",
    ));
    let r = proxy.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(proxy.addr(), "/added").text(), "new");
    let clusters = admin_json(&proxy, "/clusters");
    assert_eq!(clusters["generation"], 2);
    assert_eq!(clusters["clusters"][0]["endpoints"][0]["health"], "unhealthy", "{clusters}");
    let ejected = &clusters["clusters"][1]["endpoints"][0];
    assert_eq!(ejected["times_ejected"], serde_json::json!([1, 1]), "{ejected}");
    assert!(ejected["ejected_ms"].as_array().unwrap().iter().all(|ms| ms.as_u64().unwrap() > 50_000), "{ejected}");
    for i in 0..20 {
        let path = if i % 2 == 0 { "/x" } else { "/o" };
        let r = get(proxy.addr(), path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert_eq!((checked.served(), a.requests().len()), served, "a request reached an endpoint that is out");
}

#[test]
fn a_tls_cluster_is_probed_over_tls_with_its_client_settings() {
    use crate::harness::config::toml_str;
    use crate::harness::pki::Ca;
    use crate::harness::tempdir::TempDir;
    use crate::harness::tls::TlsUpstream;

    let dir = TempDir::new();
    let ca = Ca::new("health test ca");
    let ca_file = ca.write(&dir, "ca");
    let leaf = ca.server("upstream", &["upstream.test"]);
    let upstream = TlsUpstream::start(&leaf, None, "secure");
    // The same upstream, checked with a server name its certificate lacks.
    let tls = |name: &str| {
        format!("[clusters.tls]\nserver_name = \"{name}\"\nca = {}\n", toml_str(&ca_file.display().to_string()))
    };
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster_with(
            "good",
            &[upstream.addr()],
            &format!("{}{}", tls("upstream.test"), check("interval = \"100ms\"\nunhealthy_threshold = 1")),
        )
        .cluster_with(
            "wrong_name",
            &[upstream.addr()],
            &format!("{}{}", tls("other.test"), check("interval = \"100ms\"\nunhealthy_threshold = 1")),
        )
        .route(Route::new("all").cluster("good"))
        .start();
    wait_health(&proxy, 0, 0, "healthy", Duration::from_secs(3));
    wait_health(&proxy, 1, 0, "unhealthy", Duration::from_secs(3));
    let probe = upstream.requests().into_iter().find(|r| r.head.starts_with("GET /health HTTP/1.1\r\n"));
    let probe = probe.expect("a probe over TLS");
    assert_eq!(probe.sni.as_deref(), Some("upstream.test"));
    assert!(!upstream.handshake_failures().is_empty(), "the wrong name's probes fail their handshake");
}
