//! Hot reload (`POST /reload` and SIGHUP): a new config generation swapped
//! into every shard between requests. Under load nothing fails and each
//! change takes effect; a request in flight finishes on its own
//! generation; pooled upstream connections of a cluster the reload keeps
//! are the same sockets; a broken file changes nothing; listeners come and
//! go.
//!
//! The load is a Rust loop in the test (keep-alive client threads paced at
//! a fixed interval, plus threads opening a connection per request), not
//! `shardgate-load`: the e2e suite builds only the proxy's own binary.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A port free right now (bound and released), for a listener a reload
/// adds and removes at the same address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The config of these tests: `main` (always), `extra` on `extra_port`
/// when set, a direct route only this generation has (`/only-{tag}`), and
/// everything else to cluster `backend`.
fn config(tag: &str, backend: &[SocketAddr], extra_port: Option<u16>, more: &str) -> String {
    let endpoints: Vec<String> = backend.iter().map(|a| format!("\"{a}\"")).collect();
    let extra = extra_port
        .map(|p| format!("[[listeners]]\nname = \"extra\"\nlisten = \"127.0.0.1:{p}\"\n"))
        .unwrap_or_default();
    format!(
        "[server]\nshards = 2\ndrain_timeout = \"5s\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n{extra}\n\
         [[routes]]\nname = \"only-{tag}\"\ndirect = {{ status = 200, body = \"route {tag}\" }}\n\
         [routes.match]\npath = \"/only-{tag}\"\n\n\
         {more}\n\
         [[routes]]\nname = \"backend\"\ncluster = \"backend\"\n[routes.match]\npath_prefix = \"/\"\n\n\
         [[clusters]]\nname = \"backend\"\nendpoints = [{}]\n",
        endpoints.join(", ")
    )
}

fn reload_ok(proxy: &Proxy) -> u64 {
    let r = proxy.reload();
    assert_eq!(r.status, 200, "POST /reload: {}\n{}", r.text(), proxy.log());
    let body = r.text();
    assert!(body.contains("\"reloaded\":true"), "{body}");
    body.split("\"generation\":").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.parse().ok()).unwrap()
}

fn try_get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut client = Client::over(Box::new(stream));
    client
        .try_send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    client.try_read_response(false, None)
}

fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).is_err()
}

/// Keep-alive clients: this many threads, one request each per interval.
const KEEP_ALIVE_CLIENTS: usize = 6;
/// Threads opening a new connection for every request.
const NEW_CONNECTION_CLIENTS: usize = 2;
const REQUEST_INTERVAL: Duration = Duration::from_millis(2);
const LOAD_DURATION: Duration = Duration::from_secs(10);
const RELOADS: usize = 20;

#[test]
fn twenty_reloads_under_load_fail_no_request_and_each_takes_effect() {
    let one = Upstream::ok("upstream one");
    let two = Upstream::ok("upstream two");
    let port = free_port();
    let extra = SocketAddr::from(([127, 0, 0, 1], port));
    let a = config("a", &[one.addr()], Some(port), "");
    let b = config("b", &[two.addr()], None, "");
    let proxy = Proxy::run_toml(&a, &["main", "extra", "admin"]);
    let main = proxy.addr();

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for i in 0..KEEP_ALIVE_CLIENTS + NEW_CONNECTION_CLIENTS {
        let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
        load.push(std::thread::spawn(move || {
            let keep_alive = i < KEEP_ALIVE_CLIENTS;
            let mut client: Option<Client> = None;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                // Paced at a fixed interval, whatever the answer time.
                next += REQUEST_INTERVAL;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let outcome = if keep_alive {
                    let c = client.get_or_insert_with(|| Client::connect(main));
                    c.try_send(format!("GET /load/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
                        .map_err(|e| e.to_string())
                        .and_then(|()| c.try_read_response(false, None))
                } else {
                    try_get(main, &format!("/load/{i}"))
                };
                match outcome {
                    Ok(r) if r.status == 200 && r.text().starts_with("upstream ") => {
                        served.fetch_add(1, Ordering::Relaxed);
                        if r.header_has_token("connection", "close") {
                            client = None;
                        }
                    }
                    Ok(r) => failures.lock().unwrap().push(format!("client {i}: {} {}", r.status, r.text())),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("client {i}: {e}"));
                        client = None;
                    }
                }
            }
        }));
    }

    let started = Instant::now();
    let mut generation = 1;
    for n in 0..RELOADS {
        std::thread::sleep(LOAD_DURATION / RELOADS as u32 / 2);
        let to_b = n % 2 == 0;
        proxy.write_config(if to_b { &b } else { &a });
        let number = reload_ok(&proxy);
        assert_eq!(number, generation + 1, "generations count reloads");
        generation = number;
        // Each change takes effect on every shard (new connections land on
        // either of the two).
        let (route_now, route_gone, upstream) =
            if to_b { ("b", "a", "upstream two") } else { ("a", "b", "upstream one") };
        let effective = eventually(SLACK, || {
            (0..4).all(|_| {
                let here = try_get(main, &format!("/only-{route_now}"));
                let gone = try_get(main, &format!("/only-{route_gone}"));
                let routed = try_get(main, "/x");
                let listener_ok =
                    if to_b { refused(extra) } else { try_get(extra, "/only-a").is_ok_and(|r| r.status == 200) };
                here.is_ok_and(|r| r.status == 200 && r.text() == format!("route {route_now}"))
                    // A path only the other generation routes directly now
                    // goes to the cluster.
                    && gone.is_ok_and(|r| r.status == 200 && r.text() == upstream)
                    && routed.is_ok_and(|r| r.text() == upstream)
                    && listener_ok
            })
        });
        assert!(effective, "reload {n} (to {}) did not take effect\n{}", if to_b { "b" } else { "a" }, proxy.log());
        std::thread::sleep(LOAD_DURATION / RELOADS as u32 / 2);
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests during reloads, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let served = served.load(Ordering::Relaxed);
    assert!(served > 1000, "only {served} requests served in {elapsed:?}");
    eprintln!("reload under load: {served} requests in {elapsed:?} across {RELOADS} reloads, none failed");
    assert!(one.heads_received() > 0 && two.heads_received() > 0, "both endpoints served in turn");
    assert!(proxy.log().contains("config reloaded"), "{}", proxy.log());
}

#[test]
fn a_request_in_flight_finishes_on_the_route_and_cluster_of_its_generation() {
    let slow = Upstream::start(|_| Reply::after(Duration::from_millis(1500), Reply::ok("slow, old cluster")));
    let fast = Upstream::ok("fast, new cluster");
    let old = config("a", &[slow.addr()], None, "");
    let new = config("b", &[fast.addr()], None, "");
    let proxy = Proxy::run_toml(&old, &["main", "admin"]);
    let main = proxy.addr();

    let in_flight = std::thread::spawn(move || try_get(main, "/slow"));
    assert!(eventually(SLACK, || slow.heads_received() == 1), "the slow request reached its upstream");
    proxy.write_config(&new);
    reload_ok(&proxy);
    // New requests take the new generation while the old one is still busy.
    assert!(eventually(SLACK, || try_get(main, "/slow").is_ok_and(|r| r.text() == "fast, new cluster")));
    assert_eq!(get(main, "/only-b").text(), "route b");
    assert_eq!(get(main, "/only-a").text(), "fast, new cluster", "route only-a is gone");
    let response = in_flight.join().unwrap().expect("the request in flight gets its response");
    assert_eq!((response.status, response.text().as_str()), (200, "slow, old cluster"));
    assert_eq!(slow.heads_received(), 1);
    // Its endpoint is gone: the connection went back to no pool but closed.
    assert!(eventually(SLACK, || slow.connection_ended(0)), "the removed endpoint's connection is closed");
}

#[test]
fn pooled_connections_of_a_kept_cluster_are_the_same_sockets_after_a_reload() {
    let kept = Upstream::path_echo();
    let other = Upstream::ok("other");
    // One shard, so that every request meets the same pool.
    let one_shard = |text: String| text.replace("shards = 2", "shards = 1");
    let before = one_shard(config("a", &[kept.addr()], None, ""));
    let other_cluster = format!(
        "[[routes]]\nname = \"other\"\ncluster = \"other\"\n[routes.match]\npath = \"/other\"\n\n\
         [[clusters]]\nname = \"other\"\nendpoints = [\"{}\"]\n",
        other.addr()
    );
    // Routes, a new cluster and its route before the kept ones: positions shift.
    let after = one_shard(config("b", &[kept.addr()], None, &other_cluster));
    let proxy = Proxy::run_toml(&before, &["main", "admin"]);
    let mut client = Client::connect(proxy.addr());
    for i in 0..3 {
        assert_eq!(client.get(&format!("/before/{i}")).text(), format!("GET /before/{i}"));
    }
    assert_eq!(kept.connections(), 1);

    proxy.write_config(&after);
    reload_ok(&proxy);
    assert!(eventually(SLACK, || get(proxy.addr(), "/only-b").text() == "route b"), "the reload took effect");
    assert_eq!(get(proxy.addr(), "/other").text(), "other");
    for i in 0..3 {
        assert_eq!(client.get(&format!("/after/{i}")).text(), format!("GET /after/{i}"));
        assert_eq!(get(proxy.addr(), &format!("/fresh/{i}")).text(), format!("GET /fresh/{i}"));
    }
    assert_eq!(kept.connections(), 1, "the upstream saw no new connection after the reload");
    let requests = kept.requests();
    assert!(requests.iter().all(|r| r.connection == 0), "every request on the first pooled socket: {requests:?}");
    assert_eq!(requests.len(), 9);
}

#[test]
fn an_invalid_file_changes_nothing_and_the_reload_returns_every_error() {
    let upstream = Upstream::ok("running");
    let good = config("a", &[upstream.addr()], None, "");
    let proxy = Proxy::run_toml(&good, &["main", "admin"]);
    // Two errors at once: a route to a cluster that does not exist, and a
    // duration that is not one.
    let broken = good
        .replace("cluster = \"backend\"\n[routes.match]", "cluster = \"nope\"\n[routes.match]")
        .replace("drain_timeout = \"5s\"", "drain_timeout = \"soon\"");
    proxy.write_config(&broken);
    let r = proxy.reload();
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.text();
    assert!(body.contains("\"reloaded\":false"), "{body}");
    assert!(body.contains(r#"routes[1].cluster: no cluster named \"nope\" (line 21)"#), "{body}");
    assert!(body.contains("server.drain_timeout: ") && body.contains("(line 3)"), "{body}");
    assert_eq!(get(proxy.addr(), "/only-a").text(), "route a", "the old config keeps serving");
    assert_eq!(get(proxy.addr(), "/x").text(), "running");

    // SIGHUP with the same file: refused and logged, nothing changes.
    proxy.signal("HUP");
    assert!(eventually(SLACK, || proxy.log().contains("SIGHUP: reload refused")), "{}", proxy.log());
    assert!(proxy.log().contains("SIGHUP: routes[1].cluster: no cluster named \"nope\" (line 21)"), "{}", proxy.log());
    assert_eq!(get(proxy.addr(), "/x").text(), "running");

    // What needs a restart is refused by name.
    proxy.write_config(&good.replace("shards = 2", "shards = 3"));
    let r = proxy.reload();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("server.shards: cannot change while running (Some(2) -> Some(3)); restart to apply"),
        "{}",
        r.text()
    );

    // The file fixed: the next reload is generation 2 (the refused ones
    // made none).
    proxy.write_config(&config("b", &[upstream.addr()], None, ""));
    assert_eq!(reload_ok(&proxy), 2);
    assert!(eventually(SLACK, || get(proxy.addr(), "/only-b").text() == "route b"));
}

#[test]
fn a_listener_added_is_served_and_one_removed_stops_accepting_and_drains() {
    let upstream = Upstream::start(|r| {
        let delay = if r.target == "/slow" { Duration::from_millis(1000) } else { Duration::ZERO };
        Reply::after(delay, Reply::ok(format!("served {}", r.target)))
    });
    let port = free_port();
    let extra = SocketAddr::from(([127, 0, 0, 1], port));
    let without = config("a", &[upstream.addr()], None, "");
    let with = config("a", &[upstream.addr()], Some(port), "");
    let proxy = Proxy::run_toml(&without, &["main", "admin"]);
    assert!(refused(extra));

    proxy.write_config(&with);
    reload_ok(&proxy);
    assert!(eventually(SLACK, || try_get(extra, "/x").is_ok_and(|r| r.text() == "served /x")), "{}", proxy.log());
    // Every shard serves it (two shards: several new connections).
    for i in 0..8 {
        assert_eq!(get(extra, &format!("/n{i}")).text(), format!("served /n{i}"));
    }

    // Connections of the listener that goes: an idle keep-alive one and a
    // busy one.
    let mut idle = Client::connect(extra);
    assert_eq!(idle.get("/idle").status, 200);
    let mut busy = Client::connect(extra);
    busy.send(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(eventually(SLACK, || upstream.requests().iter().any(|r| r.target == "/slow")));
    proxy.write_config(&without);
    reload_ok(&proxy);
    assert!(eventually(SLACK, || refused(extra)), "the removed listener still accepts");
    assert!(idle.wait_closed(SLACK), "the idle connection of the removed listener is closed");
    let response = busy.read_response_then_close().expect("the busy connection gets its response");
    assert_eq!((response.status, response.text().as_str()), (200, "served /slow"));
    assert!(response.header_has_token("connection", "close"), "{:?}", response.headers);
    assert!(response.closed, "and then the connection ends");
    assert_eq!(get(proxy.addr(), "/still").text(), "served /still", "main is untouched");
    assert!(proxy.log().contains("stopped listening"), "{}", proxy.log());
}
