//! Balancing algorithms (`lb = …`) over real upstreams: smooth weighted
//! round robin spreads by weight; least_request keeps concurrent requests
//! off a slow endpoint; ring_hash and maglev keep each key on one endpoint
//! (across a reload too) and pass over a dead one; slow start gives an
//! endpoint added by a reload clearly less than its share at first.
//! Distributions are checked within tolerances, never exact counts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::upstream::refusing_addr;
use crate::harness::*;

/// A config with an admin listener, listener `main`, one catch-all route
/// to cluster `app` whose body is `cluster` (its endpoints and settings).
fn config(shards: usize, cluster: &str) -> String {
    format!(
        "[server]\nshards = {shards}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n\n\
         [[routes]]\nname = \"all\"\ncluster = \"app\"\n\n\
         [[clusters]]\nname = \"app\"\n{cluster}\n"
    )
}

/// `endpoints = [...]` of plain addresses.
fn endpoints(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!("endpoints = [{}]", list.join(", "))
}

/// Upstreams answering their own name.
fn named(names: &[&str]) -> Vec<Upstream> {
    names.iter().map(|n| Upstream::ok(n)).collect()
}

/// A GET on a new connection carrying `x-user: user`; the body names the
/// endpoint that answered.
fn get_as(proxy: SocketAddr, user: &str) -> Response {
    let raw = format!("GET /u HTTP/1.1\r\nHost: a\r\nX-User: {user}\r\nConnection: close\r\n\r\n");
    Client::connect(proxy).request(raw.as_bytes())
}

#[test]
fn weighted_round_robin_spreads_requests_by_weight_over_three_upstreams() {
    let ups = named(&["a", "b", "c"]);
    let cluster = format!(
        "endpoints = [\"{}\", {{ address = \"{}\", weight = 2 }}, {{ address = \"{}\", weight = 3 }}]",
        ups[0].addr(),
        ups[1].addr(),
        ups[2].addr()
    );
    let proxy = Proxy::run_toml(&config(2, &cluster), &["main", "admin"]);

    let mut keep_alive = Client::connect(proxy.addr());
    for i in 0..600 {
        let r = if i % 2 == 0 { keep_alive.get("/") } else { get(proxy.addr(), "/") };
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let counts: Vec<usize> = ups.iter().map(|u| u.requests().len()).collect();
    // 1:2:3 of 600 = 100, 200, 300; each shard's sequence is exact per
    // cycle of 6, so only the cycles in progress on each shard are off.
    for (got, expected) in counts.iter().zip([100, 200, 300]) {
        assert!(got.abs_diff(expected) <= 15, "{counts:?}, expected about 100/200/300");
    }
}

#[test]
fn least_request_keeps_concurrent_requests_off_the_slow_endpoint() {
    let slow = Upstream::start(|_| Reply::after(Duration::from_millis(300), Reply::ok("slow")));
    let fast = named(&["f1", "f2", "f3", "f4"]);
    let mut addrs = vec![slow.addr()];
    addrs.extend(fast.iter().map(|u| u.addr()));
    let cluster = format!("{}\nlb = \"least_request\"", endpoints(&addrs));
    let proxy = Proxy::run_toml(&config(1, &cluster), &["main", "admin"]);

    // 8 clients in parallel for 2 s, each on its own keep-alive connection.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (stop, done, addr) = (stop.clone(), done.clone(), proxy.addr());
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                while !stop.load(Ordering::Relaxed) {
                    let r = client.get("/");
                    assert_eq!(r.status, 200);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());

    let total = done.load(Ordering::Relaxed);
    let to_slow = slow.requests().len();
    // Round robin would send 1 in 5 (20 %) to the slow endpoint; two
    // random choices pick it only when both land on it (1 in 25) or when
    // it is no busier than the other one drawn.
    assert!(total >= 200, "only {total} requests done in 2 s");
    assert!(
        (to_slow as f64) < total as f64 * 0.08,
        "{to_slow} of {total} requests went to the slow endpoint (round robin: 20 %)"
    );
}

/// Each of 40 users, asked 3 times on new connections (spread over both
/// shards), is answered by one endpoint; returns user -> endpoint.
fn sticky_map(proxy: SocketAddr) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for round in 0..3 {
        for u in 0..40 {
            let user = format!("user-{u}");
            let r = get_as(proxy, &user);
            assert_eq!(r.status, 200, "{}", r.text());
            let home = map.entry(user.clone()).or_insert_with(|| r.text());
            assert_eq!(*home, r.text(), "{user} moved in round {round}");
        }
    }
    map
}

#[test]
fn ring_hash_and_maglev_keep_each_key_on_one_endpoint_across_a_reload() {
    for lb in ["ring_hash", "maglev"] {
        let ups = named(&["a", "b", "c"]);
        let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr()).collect();
        let cluster = format!("{}\nlb = \"{lb}\"\nhash_key = {{ header = \"x-user\" }}", endpoints(&addrs));
        let text = config(2, &cluster);
        let proxy = Proxy::run_toml(&text, &["main", "admin"]);

        let before = sticky_map(proxy.addr());
        let homes: std::collections::HashSet<&String> = before.values().collect();
        assert_eq!(homes.len(), 3, "{lb}: 40 users all landed on {homes:?}");

        // A reload that keeps the cluster keeps the mapping.
        proxy.write_config(&text.replace("name = \"all\"", "name = \"all-again\""));
        let r = proxy.reload();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(sticky_map(proxy.addr()), before, "{lb}: users moved over a reload");

        // Without the key: round robin, every endpoint gets some.
        let before_counts: Vec<usize> = ups.iter().map(|u| u.requests().len()).collect();
        for _ in 0..30 {
            assert_eq!(get(proxy.addr(), "/").status, 200);
        }
        for (u, n) in ups.iter().zip(before_counts) {
            assert!(u.requests().len() - n >= 5, "{lb}: requests without the key are not spread");
        }
    }
}

#[test]
fn a_dead_endpoint_of_a_ring_hash_cluster_is_passed_over_and_keys_stay_put() {
    let ups = named(&["a", "b", "c"]);
    let mut addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr()).collect();
    addrs.insert(1, refusing_addr());
    let cluster = format!("{}\nlb = \"ring_hash\"\nhash_key = {{ header = \"x-user\" }}", endpoints(&addrs));
    let proxy = Proxy::run_toml(&config(2, &cluster), &["main", "admin"]);

    // Every request answered (the dead endpoint's users walk on to the
    // next live endpoint on the ring), each user by one endpoint.
    let map = sticky_map(proxy.addr());
    let homes: std::collections::HashSet<&String> = map.values().collect();
    assert_eq!(homes.len(), 3, "{homes:?}");
}

#[test]
fn an_endpoint_added_by_reload_ramps_up_over_the_slow_start_window() {
    let old = Upstream::ok("old");
    let new = Upstream::ok("new");
    let cluster = |addrs: &[SocketAddr]| format!("{}\nslow_start = \"20s\"", endpoints(addrs));
    let proxy = Proxy::run_toml(&config(1, &cluster(&[old.addr()])), &["main", "admin"]);
    assert_eq!(get(proxy.addr(), "/").text(), "old");

    proxy.write_config(&config(1, &cluster(&[old.addr(), new.addr()])));
    let r = proxy.reload();
    assert_eq!(r.status, 200, "{}", r.text());

    // The first ~2 s of a 20 s window: the new endpoint's weight is 10 %
    // to 19 % of the old one's, so its share is under 16 %; an even split
    // would be 50 %.
    let start = Instant::now();
    let mut client = Client::connect(proxy.addr());
    let mut to_new = 0;
    let mut total = 0;
    while start.elapsed() < Duration::from_secs(2) && total < 400 {
        let r = client.get("/");
        assert_eq!(r.status, 200);
        to_new += usize::from(r.text() == "new");
        total += 1;
    }
    assert!(total >= 100, "only {total} requests in 2 s");
    let share = to_new as f64 / total as f64;
    assert!(share > 0.03, "the new endpoint got {to_new} of {total}: nothing at all");
    assert!(share < 0.25, "the new endpoint got {to_new} of {total} in the first 10 % of its slow start");
}

/// `shardgate_endpoint_in_flight_requests` of the endpoint `addr`, from `/metrics`.
fn in_flight(proxy: &Proxy, addr: SocketAddr) -> u64 {
    let raw = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let metrics = Client::connect(proxy.admin()).request(raw.as_bytes()).text();
    let prefix = format!("shardgate_endpoint_in_flight_requests{{cluster=\"app\",endpoint=\"{addr}\"}} ");
    let line = metrics.lines().find(|l| l.starts_with(&prefix));
    line.and_then(|l| l[prefix.len()..].parse().ok()).unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
}

#[test]
fn in_flight_counts_rise_while_requests_wait_and_fall_back_to_zero_however_they_end() {
    let slow = Upstream::start(|r| match r.target.as_str() {
        "/fail" => Reply::after(Duration::from_millis(300), Reply::raw(b"not http\r\n\r\n".to_vec())),
        _ => Reply::after(Duration::from_millis(600), Reply::ok("slow")),
    });
    let cluster = format!("{}\nlb = \"least_request\"", endpoints(&[slow.addr()]));
    let proxy = Proxy::run_toml(&config(2, &cluster), &["main", "admin"]);
    assert_eq!(in_flight(&proxy, slow.addr()), 0);

    // Three waiting for a response, one failing (502), one whose client
    // leaves before the response: all counted while they wait.
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let addr = proxy.addr();
            std::thread::spawn(move || get(addr, "/").status)
        })
        .collect();
    let failing = {
        let addr = proxy.addr();
        std::thread::spawn(move || get(addr, "/fail").status)
    };
    let mut leaving = Client::connect(proxy.addr());
    leaving.send(b"GET /leave HTTP/1.1\r\nHost: a\r\n\r\n");
    slow.wait_for_requests(5);
    assert_eq!(in_flight(&proxy, slow.addr()), 5);
    drop(leaving);

    for t in waiting {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(failing.join().unwrap(), 502);
    // The request whose client left ends when the proxy notices (at the
    // latest when the upstream answers).
    let deadline = Instant::now() + Duration::from_secs(5);
    while in_flight(&proxy, slow.addr()) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(in_flight(&proxy, slow.addr()), 0, "a finished try is still counted in flight");
}
