//! The live dashboard in a real headless Chromium: the page loads from the
//! admin listener (guarded by a token, given in the URL fragment), its
//! numbers move while traffic runs, and once the traffic stops the totals
//! it renders equal `/stats`. Screenshots are saved under
//! `target/tmp/dashboard/` (`CARGO_TARGET_TMPDIR`).
//!
//! Needs Chromium (Debian's `chromium`; `.ci/run` installs it). Without
//! it the test is skipped with a message, except in CI (`CI` set), where
//! it fails.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::chromium::{self, Browser};
use crate::harness::*;

const TOKEN: &str = "dash-board-token";
/// Client threads sending requests while the page is watched.
const TRAFFIC_THREADS: usize = 3;
/// Each client thread's pause between requests (keeps the load modest on a
/// shared 2-core machine; the numbers only have to move).
const TRAFFIC_PAUSE: Duration = Duration::from_millis(3);
/// A client thread reconnects after this many requests, so connections
/// land on both shards and `accepted` moves too.
const REQUESTS_PER_CONNECTION: u64 = 100;
/// How long the live phase may take to see the numbers move.
const LIVE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the page may take to catch up with `/stats` after the traffic.
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

/// Everything the test reads from the rendered page.
const READ_PAGE: &str = r#"(() => {
  const text = (id) => document.getElementById(id).textContent;
  const rows = (selector) => [...document.querySelectorAll(selector)].map((tr) =>
    Object.fromEntries([...tr.cells].map((td) => [td.dataset.field, td.textContent])));
  const line = document.querySelector('#rps-chart polyline');
  return {
    state: document.getElementById('state').dataset.state,
    href: location.href,
    requests: text('total-requests'), accepted: text('total-accepted'), active: text('total-active'),
    rps: text('total-rps'),
    statuses: Object.fromEntries(['1xx','2xx','3xx','4xx','5xx','none'].map((c) => [c, text('status-' + c)])),
    shards: rows('#shards tbody tr'),
    upstreams: rows('#upstreams tbody tr'),
    rpsPoints: line ? line.getAttribute('points').split(' ').length : 0,
  };
})()"#;

fn admin_json(proxy: &Proxy, path: &str) -> Value {
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    let response = Client::connect(proxy.admin()).request(head.as_bytes());
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Requests on keep-alive connections from a few threads until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: std::net::SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let threads = (0..TRAFFIC_THREADS)
            .map(|_| {
                let (stop, sent) = (stop.clone(), sent.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let mut client = Client::connect(addr);
                        for _ in 0..REQUESTS_PER_CONNECTION {
                            if stop.load(Ordering::Acquire) {
                                break;
                            }
                            assert_eq!(client.get("/live").status, 200);
                            sent.fetch_add(1, Ordering::AcqRel);
                            std::thread::sleep(TRAFFIC_PAUSE);
                        }
                    }
                })
            })
            .collect();
        Traffic { stop, sent, threads }
    }

    /// Stops the clients and returns how many requests they sent.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            t.join().expect("a traffic thread failed");
        }
        self.sent.load(Ordering::Acquire)
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

fn save_screenshot(browser: &mut Browser, name: &str) -> PathBuf {
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "a PNG of a drawn page ({} bytes)", png.len());
    let driver = std::env::var("SHARDGATE_TEST_IO_DRIVER").ok().filter(|d| !d.is_empty());
    let path = screenshot_dir().join(format!("{name}-{}.png", driver.as_deref().unwrap_or("default")));
    std::fs::write(&path, png).expect("write the screenshot");
    eprintln!("dashboard screenshot: {}", path.display());
    path
}

fn number(page: &Value, field: &str) -> u64 {
    page[field].as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("{field} is not a number: {page}"))
}

/// Whether the page shows exactly what `/stats` says, shard by shard.
fn page_matches_stats(page: &Value, stats: &Value) -> Result<(), String> {
    let stat_rows = stats["shards"].as_array().ok_or("no shards in /stats")?;
    let page_rows = page["shards"].as_array().ok_or("no shard rows on the page")?;
    if page_rows.len() != stat_rows.len() {
        return Err(format!("{} rows on the page, {} shards", page_rows.len(), stat_rows.len()));
    }
    let mut totals = [0u64; 3];
    for (row, stat) in page_rows.iter().zip(stat_rows) {
        for (k, field) in ["requests", "accepted", "active"].iter().enumerate() {
            let shown = &row[*field];
            let want = stat[*field].as_u64().ok_or("not a number in /stats")?;
            if shown.as_str() != Some(want.to_string().as_str()) {
                return Err(format!("shard {}: {field} {shown} on the page, {want} in /stats", stat["shard"]));
            }
            totals[k] += want;
        }
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx", "none"] {
            let shown = &row[format!("status-{class}").as_str()];
            let want = stat["statuses"][class].as_u64().ok_or("no statuses in /stats")?;
            if shown.as_str() != Some(want.to_string().as_str()) {
                return Err(format!("shard {}: {class} {shown} on the page, {want} in /stats", stat["shard"]));
            }
        }
        // Latency percentiles appear when /stats carries them, `–` when not.
        let has_latency = stat["latency_seconds"]["count"].as_u64().unwrap_or(0) > 0;
        if (row["p99"] != "–") != has_latency {
            return Err(format!(
                "shard {}: p99 {} on the page, latency in /stats: {has_latency}",
                stat["shard"], row["p99"]
            ));
        }
    }
    for (k, field) in ["requests", "accepted", "active"].iter().enumerate() {
        if number(page, field) != totals[k] {
            return Err(format!("total {field}: {} on the page, {} in /stats", page[*field], totals[k]));
        }
    }
    for class in ["1xx", "2xx", "3xx", "4xx", "5xx", "none"] {
        let want: u64 = stat_rows.iter().map(|s| s["statuses"][class].as_u64().unwrap_or(0)).sum();
        if page["statuses"][class].as_str() != Some(want.to_string().as_str()) {
            return Err(format!("total {class}: {} on the page, {want} in /stats", page["statuses"][class]));
        }
    }
    Ok(())
}

#[test]
fn the_dashboard_shows_live_numbers_and_ends_equal_to_stats() {
    let Some(exe) = chromium::find() else {
        assert!(std::env::var_os("CI").is_none(), "chromium is missing in CI (.ci/run installs Debian's chromium)");
        eprintln!("SKIPPED the_dashboard_shows_live_numbers_and_ends_equal_to_stats: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new()
        .shards(2)
        .admin_option(&format!("token = \"{TOKEN}\""))
        .everything_to(upstream.addr())
        .start();
    let mut browser = Browser::launch(&exe);

    // Without the token the page loads, says so, and shows no numbers.
    browser.navigate(&format!("http://{}/dashboard", proxy.admin()));
    let until = Instant::now() + LIVE_DEADLINE;
    let mut page = browser.eval(READ_PAGE);
    while page["state"] != "unauthorized" {
        assert!(Instant::now() < until, "no 401 shown without the token: {page}");
        std::thread::sleep(Duration::from_millis(100));
        page = browser.eval(READ_PAGE);
    }
    assert_eq!((page["requests"].as_str(), page["shards"].as_array().map(Vec::len)), (Some("–"), Some(0)), "{page}");

    // With it in the fragment, the page's own fetches carry it.
    browser.navigate(&format!("http://{}/dashboard#token={TOKEN}", proxy.admin()));
    page = browser.eval(READ_PAGE);
    while page["state"] != "live" {
        assert!(Instant::now() < until, "the page never went live: {page}\n{}", browser.log());
        std::thread::sleep(Duration::from_millis(100));
        page = browser.eval(READ_PAGE);
    }
    assert!(!page["href"].as_str().unwrap_or("").contains(TOKEN), "the token left the address bar: {page}");
    assert_eq!(page["requests"], "0", "{page}");
    let upstreams = page["upstreams"].as_array().expect("upstream rows");
    assert_eq!(upstreams.len(), 1, "{page}");
    assert_eq!(upstreams[0]["address"], upstream.addr().to_string());
    assert_eq!(upstreams[0]["health"], "unknown");

    // While traffic runs, the rendered totals keep going up and the rate
    // shows requests per second.
    let traffic = Traffic::start(proxy.addr());
    let mut seen: Vec<u64> = Vec::new();
    let mut rates: Vec<f64> = Vec::new();
    while seen.len() < 4 || !rates.iter().any(|&r| r > 0.0) || page["rpsPoints"].as_u64().unwrap_or(0) < 2 {
        assert!(Instant::now() < until, "the page did not move: totals {seen:?}, rates {rates:?}, last {page}");
        std::thread::sleep(Duration::from_millis(400));
        page = browser.eval(READ_PAGE);
        let total = number(&page, "requests");
        if seen.last() != Some(&total) {
            seen.push(total);
        }
        if let Some(rate) = page["rps"].as_str().and_then(|r| r.parse::<f64>().ok()) {
            rates.push(rate);
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "totals only go up: {seen:?}");
    assert!(seen.last().is_some_and(|&t| t > 0), "{seen:?}");
    save_screenshot(&mut browser, "dashboard-live");
    let sent = traffic.stop();

    // After the traffic: the page settles on exactly what /stats says.
    let until = Instant::now() + SETTLE_DEADLINE;
    loop {
        let stats = admin_json(&proxy, "/stats");
        page = browser.eval(READ_PAGE);
        match page_matches_stats(&page, &stats) {
            Ok(()) if stats["shards"].as_array().is_some_and(|s| s.iter().all(|r| r["active"] == 0)) => break,
            Ok(()) => {}
            Err(e) if Instant::now() >= until => panic!("{e}\npage: {page}\n/stats: {stats}"),
            Err(_) => {}
        }
        assert!(Instant::now() < until, "connections still open after the traffic: {stats}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(number(&page, "requests"), sent, "every request the clients sent: {page}");
    assert_eq!(page["statuses"]["2xx"], sent.to_string(), "all answered 200: {page}");
    assert!(number(&page, "accepted") >= sent / REQUESTS_PER_CONNECTION, "{page}");
    save_screenshot(&mut browser, "dashboard-final");
}
