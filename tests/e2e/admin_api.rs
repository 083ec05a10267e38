//! The admin API beside `/stats`: `/healthz`, `/routes`, `/clusters`,
//! `/shards`; admin requests of every odd shape get a 4xx and the admin
//! keeps answering; a wrong or missing token gets 401 everywhere but on
//! the data-free dashboard page; and no request to a proxy listener ever
//! reaches the admin handlers, whatever its path or Host.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::client::get_host;
use crate::harness::*;

/// What the admin sent back on one connection, read until it closed.
struct RawAnswer {
    /// The status code of the first status line, if one arrived.
    status: Option<u16>,
    bytes: Vec<u8>,
}

/// Writes `raw` to the admin (a write cut short by the admin closing is
/// fine: the answer is what matters) and reads until the admin closes.
fn raw_admin(addr: SocketAddr, raw: &[u8]) -> RawAnswer {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
    let _ = stream.write_all(raw);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let status = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| t.strip_prefix("HTTP/1.1 "))
        .and_then(|t| t.get(..3))
        .and_then(|code| code.parse().ok());
    RawAnswer { status, bytes }
}

fn admin_json(proxy: &Proxy, path: &str) -> Value {
    let response = Client::connect(proxy.admin())
        .request(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"), "GET {path}");
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", response.text()))
}

fn config_text(endpoints: &str) -> String {
    format!(
        "[server]\nshards = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n\
         [[clusters]]\nname = \"api\"\nendpoints = [{endpoints}]\n\
         [[routes]]\nname = \"teapot\"\ndirect = {{ status = 418 }}\n[routes.match]\npath = \"/tea\"\n\
         [[routes]]\ncluster = \"api\"\n[routes.match]\npath_prefix = \"/\"\nmethods = [\"GET\"]\n"
    )
}

#[test]
fn routes_clusters_shards_and_healthz_describe_the_running_proxy() {
    let upstream = Upstream::ok("up");
    let a = format!("\"{}\"", upstream.addr());
    let proxy = Proxy::run_toml(&config_text(&a), &["main", "admin"]);

    assert_eq!(admin_json(&proxy, "/healthz")["status"], "live");

    let routes = admin_json(&proxy, "/routes");
    assert_eq!(routes["generation"], 1);
    let list = routes["routes"].as_array().expect("routes");
    assert_eq!(list.len(), 2, "{routes}");
    assert_eq!(list[0]["name"], "teapot");
    assert_eq!(list[0]["match"]["path"]["exact"], "/tea");
    assert_eq!(list[0]["action"], serde_json::json!({"type": "direct", "status": 418}));
    let derived = list[1]["name"].as_str().expect("a name").to_string();
    assert!(derived.starts_with("route-"), "an unnamed route gets its content name: {derived}");
    assert_eq!(list[1]["cluster"], "api");
    assert_eq!(list[1]["listeners"], serde_json::json!(["main"]));
    assert_eq!(list[1]["match"]["methods"], serde_json::json!(["GET"]));

    // Traffic: the pooled connection shows up as idle on the shard that
    // served it, and /shards sees the requests and a rate.
    let first = admin_json(&proxy, "/shards");
    assert!(first["shards"].as_array().expect("shards").len() == 2);
    let mut client = Client::connect(proxy.addr());
    for _ in 0..20 {
        assert_eq!(client.get("/x").status, 200);
    }
    drop(client);
    assert!(
        eventually(Duration::from_secs(5), || {
            let clusters = admin_json(&proxy, "/clusters");
            let idle = &clusters["clusters"][0]["endpoints"][0]["idle"];
            idle.as_array().map(|a| a.iter().filter_map(Value::as_u64).sum::<u64>()) == Some(1)
        }),
        "one idle pooled connection: {}",
        admin_json(&proxy, "/clusters")
    );
    let clusters = admin_json(&proxy, "/clusters");
    let endpoint = &clusters["clusters"][0]["endpoints"][0];
    assert_eq!(endpoint["address"], upstream.addr().to_string());
    assert_eq!((endpoint["weight"].clone(), endpoint["health"].clone()), (1.into(), "unknown".into()));
    let id = endpoint["id"].clone();

    std::thread::sleep(Duration::from_millis(1100));
    let shards = admin_json(&proxy, "/shards");
    let rows = shards["shards"].as_array().expect("shards");
    let requests: u64 = rows.iter().map(|r| r["requests"].as_u64().expect("requests")).sum();
    assert_eq!(requests, 20, "{shards}");
    let rate: f64 = rows.iter().map(|r| r["requests_per_second"].as_f64().expect("a rate")).sum();
    let window = shards["window_seconds"].as_f64().expect("a window");
    assert!(window >= 1.0, "{shards}");
    assert!(rate > 0.0 && rate <= 20.0 / window + 0.1, "20 requests within the window: {shards}");
    let stats: Value = serde_json::from_str(&proxy.stats_json()).expect("stats");
    for (row, stat) in rows.iter().zip(stats["shards"].as_array().expect("stats rows")) {
        assert_eq!(row["requests"], stat["requests"]);
        assert_eq!(row["accepted"], stat["accepted"]);
    }

    // A reload that puts an endpoint before this one: generation 2, and
    // the endpoint keeps its id (and its pooled connection).
    let other = Upstream::ok("other");
    proxy.write_config(&config_text(&format!("\"{}\", {a}", other.addr())));
    assert_eq!(proxy.reload().status, 200);
    let clusters = admin_json(&proxy, "/clusters");
    assert_eq!(clusters["generation"], 2);
    let endpoints = clusters["clusters"][0]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 2);
    assert_eq!(endpoints[1]["address"], upstream.addr().to_string());
    assert_eq!(endpoints[1]["id"], id, "same endpoint, same id: {clusters}");
    assert_ne!(endpoints[0]["id"], id);
    let idle: u64 = endpoints[1]["idle"].as_array().expect("idle").iter().filter_map(Value::as_u64).sum();
    assert_eq!(idle, 1, "the pooled connection survived the reload: {clusters}");
    assert_eq!(admin_json(&proxy, "/routes")["generation"], 2);
    assert_eq!(admin_json(&proxy, "/routes")["routes"][1]["name"], derived.as_str(), "same route, same name");
}

/// Admin requests of odd shapes, each with the status class it must get.
fn odd_requests() -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(String, Vec<u8>)> = vec![];
    let mut add = |what: &str, bytes: Vec<u8>| cases.push((what.to_string(), bytes));
    for (method, path) in [
        ("POST", "/stats"),
        ("PUT", "/routes"),
        ("DELETE", "/clusters"),
        ("PATCH", "/shards"),
        ("OPTIONS", "/healthz"),
        ("HEAD", "/stats"),
        ("TRACE", "/config"),
        ("CONNECT", "/dashboard"),
        ("BREW", "/"),
        ("GET", "/reload"),
    ] {
        add(&format!("{method} {path}"), format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes());
    }
    for target in ["/nope", "stats", "*", "//stats", "/stats/", "/STATS", "/%73tats", "/stats%00", "http://admin/x"] {
        add(&format!("GET {target}"), format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes());
    }
    add("a huge request line", format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64 * 1024)).into_bytes());
    add("a huge header", format!("GET /stats HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(20_000)).into_bytes());
    add(
        "too many headers",
        format!("GET /stats HTTP/1.1\r\n{}\r\n", (0..200).map(|i| format!("X-{i}: v\r\n")).collect::<String>())
            .into_bytes(),
    );
    add("binary junk", (0u8..=255).cycle().take(3000).collect());
    add("NUL in the method", b"G\0T /stats HTTP/1.1\r\n\r\n".to_vec());
    add("no version", b"GET /stats\r\n\r\n".to_vec());
    add("HTTP/2.0", b"GET /stats HTTP/2.0\r\n\r\n".to_vec());
    add("HTTP/9.9", b"GET /stats HTTP/9.9\r\n\r\n".to_vec());
    add("space in the target", b"GET /st ats HTTP/1.1\r\n\r\n".to_vec());
    add("a header without a colon", b"GET /stats HTTP/1.1\r\nHost admin\r\n\r\n".to_vec());
    add("a header name with a space", b"GET /stats HTTP/1.1\r\nHo st: admin\r\n\r\n".to_vec());
    add("a control byte in a value", b"GET /stats HTTP/1.1\r\nX-A: a\x01b\r\n\r\n".to_vec());
    add("bare LF lines", b"GET /nope HTTP/1.1\nHost: 127.0.0.1\n\n".to_vec());
    add("obs-fold", b"GET /stats HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n".to_vec());
    add("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03junk\r\n\r\n".to_vec());
    add("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec());
    add("invalid UTF-8 path", b"GET /\xff\xfe HTTP/1.1\r\n\r\n".to_vec());
    add("a POST with a 100 kB body", {
        let mut r = b"POST /nope HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(b'x', 100_000));
        r
    });
    cases
}

#[test]
fn admin_requests_of_any_shape_get_a_4xx_and_the_admin_keeps_answering() {
    let proxy = ProxyConfig::new().route(Route::new("all").direct(200, "ok")).start();
    let mut failures = Vec::new();
    for (what, bytes) in odd_requests() {
        let answer = raw_admin(proxy.admin(), &bytes);
        match answer.status {
            Some(status) if (400..500).contains(&status) => {}
            other => failures.push(format!(
                "{what}: {other:?}: {:?}",
                String::from_utf8_lossy(&answer.bytes[..answer.bytes.len().min(200)])
            )),
        }
        let health = raw_admin(proxy.admin(), b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(health.status, Some(200), "after {what}: the admin still answers");
    }
    assert!(failures.is_empty(), "not a 4xx:\n{}", failures.join("\n"));
    // Wrong methods say so (405), unknown paths 404.
    assert_eq!(raw_admin(proxy.admin(), b"DELETE /clusters HTTP/1.1\r\n\r\n").status, Some(405));
    assert_eq!(raw_admin(proxy.admin(), b"GET /nope HTTP/1.1\r\n\r\n").status, Some(404));
    // And the proxy itself is untouched.
    assert_eq!(get(proxy.addr(), "/").status, 200);
}

/// Every admin endpoint, with the method it answers.
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/stats"),
    ("GET", "/config"),
    ("GET", "/healthz"),
    ("GET", "/routes"),
    ("GET", "/clusters"),
    ("GET", "/shards"),
    ("GET", "/metrics"),
    ("GET", "/ready"),
    ("POST", "/reload"),
    ("POST", "/drain"),
    ("GET", "/nope"),
    ("DELETE", "/stats"),
];

#[test]
fn a_wrong_or_missing_token_gets_401_on_every_endpoint_but_the_data_free_page() {
    let proxy = ProxyConfig::new()
        .admin_option("token = \"s3cret-admin-token\"")
        .route(Route::new("all").direct(200, "ok"))
        .start();
    let wrong = [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cret-admin-toke\r\n",
        "Authorization: Basic czNjcmV0LWFkbWluLXRva2Vu\r\n",
        "Authorization: s3cret-admin-token\r\n",
        "X-Token: s3cret-admin-token\r\n",
    ];
    for (method, path) in ENDPOINTS {
        for auth in wrong {
            let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n");
            let answer = raw_admin(proxy.admin(), head.as_bytes());
            assert_eq!(answer.status, Some(401), "{method} {path} with {auth:?}");
            let text = String::from_utf8_lossy(&answer.bytes).to_ascii_lowercase();
            assert!(text.contains("www-authenticate: bearer"), "{text}");
        }
    }
    // The right token opens the GET endpoints of this part of the API.
    for path in ["/stats", "/healthz", "/routes", "/clusters", "/shards"] {
        let head =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret-admin-token\r\n\r\n");
        assert_eq!(raw_admin(proxy.admin(), head.as_bytes()).status, Some(200), "{path}");
    }
    // The dashboard page loads without the token and is the same bytes
    // whatever the proxy's state: it carries no data.
    for path in ["/dashboard", "/"] {
        let page = Client::connect(proxy.admin())
            .request(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes());
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(page.text(), shardgate::admin::dashboard::PAGE, "{path}");
    }
}

#[test]
fn no_request_to_a_proxy_listener_reaches_the_admin() {
    let upstream = Upstream::path_echo();
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let admin = proxy.admin().to_string();
    let paths = ["/stats", "/config", "/dashboard", "/", "/healthz", "/routes", "/clusters", "/shards", "/metrics"];
    let hosts = ["localhost", admin.as_str(), "admin", "127.0.0.1"];
    let mut sent = 0;
    for path in paths {
        for host in hosts {
            let response = get_host(proxy.addr(), host, path);
            assert_eq!(response.status, 200, "{host}{path}");
            assert_eq!(response.text(), format!("GET {path}"), "{host}{path}: answered by the upstream");
            sent += 1;
        }
        // The absolute form naming the admin's address goes upstream too.
        let raw = format!("GET http://{admin}{path} HTTP/1.1\r\nHost: {admin}\r\n\r\n");
        let response = Client::connect(proxy.addr()).request(raw.as_bytes());
        assert!(!response.text().contains("\"shards\""), "{path}: {}", response.text());
        assert!(!response.text().contains("<title>shardgate"), "{path}");
        if response.status == 200 {
            sent += 1;
        }
    }
    assert_eq!(upstream.heads_received(), sent, "every request went to the upstream");

    // With nothing routed, the proxy answers 404 itself: still no admin.
    let lonely = ProxyConfig::new().route(Route::new("only").host("only.example").direct(200, "only")).start();
    for path in paths {
        let response = get_host(lonely.addr(), &lonely.admin().to_string(), path);
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert!(!response.text().contains("\"shards\"") && !response.text().contains("<html"), "{path}");
    }
}

/// A web page cannot drive the admin: a cross-origin POST /reload is
/// refused before it reloads anything, and a DNS-rebinding page's Host is
/// refused without a token.
#[test]
fn web_pages_are_kept_out_of_the_admin() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let ask = |raw: &str| Client::connect(proxy.admin()).request(raw.as_bytes());

    let cross =
        ask("POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(cross.status, 403, "{}", cross.text());
    let site =
        ask("POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(site.status, 403, "{}", site.text());
    let rebound = ask("GET /stats HTTP/1.1\r\nHost: rebind.evil.example:9901\r\n\r\n");
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    assert!(rebound.text().contains("Host must be an IP address"), "{}", rebound.text());
    // Still serving, and nothing was reloaded or drained.
    assert_eq!(ask("GET /stats HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
    assert_eq!(get(proxy.addr(), "/").status, 200);
    assert!(!proxy.log().contains("reload"), "{}", proxy.log());
}
