//! Gateway policies: API keys (header, query, cookie) naming a consumer
//! upstream, IP rules per listener and per route, and refusals rendered
//! by the one error renderer (problem+json on API routes, text
//! elsewhere). A refused request never reaches the upstream: every test
//! counts what the upstream received. Keys never reach a log.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::tempdir::TempDir;
use crate::harness::*;

const ACME_KEY: &str = "acme-key-Zq8f1";
const GLOBEX_KEY: &str = "globex+key/9=";
const WRONG_KEY: &str = "wrong-key-Pw3x";

fn digest(key: &str) -> String {
    format!("sha256:{}", sha256_hex(key.as_bytes()))
}

/// The gateway: listener `main` (no rules), `locked` (denies loopback),
/// `edge` (trusts 127.0.0.1's X-Forwarded-For, denies 203.0.113.0/24);
/// acme's key inline, globex's in `keys_file`.
fn gateway(upstream: SocketAddr, keys_file: &Path, more: &str) -> String {
    format!(
        r#"[server]
shards = 2

[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "main"
listen = "127.0.0.1:0"

[[listeners]]
name = "locked"
listen = "127.0.0.1:0"
[listeners.ip_rules]
deny = ["127.0.0.0/8", "::1"]

[[listeners]]
name = "edge"
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]
[listeners.ip_rules]
deny = ["203.0.113.0/24", "2001:db8:dead::/48"]

[[clusters]]
name = "api"
endpoints = ["{upstream}"]

[[routes]]
name = "by-header"
cluster = "api"
error_format = "problem+json"
[routes.match]
path_prefix = "/h/"
[routes.auth]
api_key = {{}}

[[routes]]
name = "by-query"
cluster = "api"
error_format = "problem+json"
[routes.match]
path_prefix = "/q/"
[routes.auth]
api_key = {{ query = "api_key" }}
consumer_header = "x-api-consumer"

[[routes]]
name = "by-cookie"
cluster = "api"
[routes.match]
path_prefix = "/c/"
[routes.auth]
api_key = {{ cookie = "k" }}

[[routes]]
name = "deny-loopback"
cluster = "api"
error_format = "problem+json"
ip_rules = {{ deny = ["127.0.0.0/8", "::1/128"] }}
[routes.match]
path_prefix = "/deny/"

[[routes]]
name = "allow-loopback"
cluster = "api"
ip_rules = {{ allow = ["127.0.0.1/32", "2001:db8::/32", "fe80::/10"] }}
[routes.match]
path_prefix = "/allow/"

[[routes]]
name = "allow-elsewhere"
cluster = "api"
ip_rules = {{ allow = ["10.0.0.0/8", "2001:db8::/32"] }}
[routes.match]
path_prefix = "/elsewhere/"

[[routes]]
name = "open"
cluster = "api"
[routes.match]
path_prefix = "/open/"

[[consumers]]
name = "acme"
plan = "gold"
tags = ["partner"]
api_keys = ["{acme}"]

[[consumers]]
name = "globex"
api_keys_file = "{keys}"
{more}"#,
        acme = digest(ACME_KEY),
        keys = keys_file.display(),
    )
}

struct Setup {
    upstream: Upstream,
    proxy: Proxy,
    dir: TempDir,
}

fn keys_file(dir: &TempDir, keys: &[&str]) -> std::path::PathBuf {
    let mut text = String::from("# globex's keys\n\n");
    for k in keys {
        text.push_str(&digest(k));
        text.push('\n');
    }
    dir.write("globex.keys", &text)
}

fn start(more: &str) -> Setup {
    let upstream = Upstream::start(|_| Reply::ok("from upstream"));
    let dir = TempDir::new();
    let keys = keys_file(&dir, &[GLOBEX_KEY]);
    let text = gateway(upstream.addr(), &keys, more);
    let proxy = Proxy::run_toml(&text, &["main", "locked", "edge", "admin"]);
    Setup { upstream, proxy, dir }
}

fn request(client: &mut Client, path: &str, headers: &str) -> Response {
    client.request(format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n{headers}\r\n").as_bytes())
}

fn problem(r: &Response) -> Value {
    assert_eq!(r.header("content-type"), Some("application/problem+json"), "{r:?}");
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

#[test]
fn an_api_key_in_a_header_names_its_consumer_and_refusals_are_problem_json() {
    let s = start("");
    // One keep-alive connection throughout: a refusal keeps it open.
    let mut client = Client::connect(s.proxy.addr());

    let r = request(&mut client, "/h/items", &format!("X-Api-Key: {ACME_KEY}\r\n"));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.upstream.wait_for_requests(1);
    assert_eq!(seen[0].header_all("x-consumer"), ["acme"]);

    let r = request(&mut client, "/h/items", "");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("ApiKey header=\"x-api-key\""));
    let p = problem(&r);
    assert_eq!(p["type"], "about:blank");
    assert_eq!(p["title"], "Unauthorized");
    assert_eq!(p["status"], 401);
    assert_eq!(p["error"], "unauthorized");
    assert!(p["detail"].as_str().unwrap().starts_with("API key missing"), "{p}");
    let id = r.header("x-request-id").expect("the request id is sent");
    assert_eq!(p["request_id"], id, "the body names the request id");

    let r = request(&mut client, "/h/items", &format!("X-Api-Key: {WRONG_KEY}\r\n"));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("ApiKey header=\"x-api-key\""));
    assert_eq!(problem(&r)["detail"], "API key unknown");
    assert!(!r.text().contains(WRONG_KEY));

    // A key of the other consumer, and one that is a key's prefix.
    let r = request(&mut client, "/h/items", &format!("x-api-key: {GLOBEX_KEY}\r\n"));
    assert_eq!(r.status, 200);
    let r = request(&mut client, "/h/items", &format!("X-Api-Key: {}\r\n", &ACME_KEY[..ACME_KEY.len() - 1]));
    assert_eq!(r.status, 401);

    // Two key fields: which one counts would be a guess.
    let r = request(&mut client, "/h/items", &format!("X-Api-Key: {ACME_KEY}\r\nX-Api-Key: {GLOBEX_KEY}\r\n"));
    assert_eq!(r.status, 400);
    assert_eq!(problem(&r)["detail"], "the API key header is sent twice");

    let seen = s.upstream.wait_for_requests(2);
    assert_eq!(seen[1].header_all("x-consumer"), ["globex"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.upstream.heads_received(), 2, "refused requests never reach the upstream");
    assert_eq!(s.upstream.connections(), 1);
}

#[test]
fn an_api_key_in_the_query_is_removed_before_forwarding() {
    let s = start("");
    let mut client = Client::connect(s.proxy.addr());

    let r = request(&mut client, "/q/items?a=1&api_key=globex%2Bkey%2F9%3D&b=2&c=%20x&a=3", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(&mut client, &format!("/q/only?api_key={ACME_KEY}"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.upstream.wait_for_requests(2);
    assert_eq!(seen[0].target, "/q/items?a=1&b=2&c=%20x&a=3", "the other parameters intact and in order");
    assert_eq!(seen[0].header_all("x-api-consumer"), ["globex"], "the route's consumer_header");
    assert!(!seen[0].has_header("x-consumer"));
    assert_eq!(seen[1].target, "/q/only", "no `?` left when the key was the only parameter");
    assert_eq!(seen[1].header("x-api-consumer"), Some("acme"));

    for (path, detail) in [
        (format!("/q/items?api_key={WRONG_KEY}"), "API key unknown"),
        ("/q/items?a=1".to_owned(), "API key missing"),
        ("/q/items".to_owned(), "API key missing"),
        ("/q/items?api_key=".to_owned(), "API key missing"),
        ("/q/items?api_key=a%zz".to_owned(), "API key unknown"),
    ] {
        let r = request(&mut client, &path, "");
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("www-authenticate"), Some("ApiKey query=\"api_key\""));
        assert!(problem(&r)["detail"].as_str().unwrap().starts_with(detail), "{path}: {}", r.text());
    }
    let twice = format!("/q/items?api_key={ACME_KEY}&api_key={ACME_KEY}");
    assert_eq!(request(&mut client, &twice, "").status, 400);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.upstream.heads_received(), 2, "refused requests never reach the upstream");
}

#[test]
fn an_api_key_in_a_cookie_and_plain_text_errors_on_other_routes() {
    let s = start("");
    let mut client = Client::connect(s.proxy.addr());

    let r = request(&mut client, "/c/x", &format!("Cookie: theme=dark; k={ACME_KEY}; lang=en\r\n"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(&mut client, "/c/x", &format!("Cookie: theme=dark\r\nCookie: k=\"{GLOBEX_KEY}\"\r\n"));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.upstream.wait_for_requests(2);
    assert_eq!(seen[0].header_all("x-consumer"), ["acme"]);
    assert_eq!(seen[1].header_all("x-consumer"), ["globex"]);

    // A route without error_format answers in text, as before.
    let r = request(&mut client, "/c/x", "Cookie: kk=nope\r\n");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("www-authenticate"), Some("ApiKey cookie=\"k\""));
    let id = r.header("x-request-id").unwrap().to_owned();
    assert!(r.text().starts_with("401 Unauthorized: API key missing"), "{}", r.text());
    assert!(r.text().contains(&format!("request-id: {id}")), "{}", r.text());
    let r = request(&mut client, "/c/x", &format!("Cookie: k={WRONG_KEY}\r\n"));
    assert_eq!(r.status, 401);
    assert!(r.text().starts_with("401 Unauthorized: API key unknown"), "{}", r.text());
    // No route: text, whatever the API routes say.
    let r = request(&mut client, "/nowhere", "");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.upstream.heads_received(), 2, "refused requests never reach the upstream");
}

#[test]
fn a_client_sent_consumer_header_never_reaches_the_upstream() {
    let s = start("");
    let mut client = Client::connect(s.proxy.addr());
    let spoof = "X-Consumer: admin\r\nx-CONSUMER: root\r\nX-Api-Consumer: admin\r\n";
    let r = request(&mut client, "/h/a", &format!("{spoof}X-Api-Key: {ACME_KEY}\r\n"));
    assert_eq!(r.status, 200);
    // On a route without authentication the names are still the proxy's.
    let r = request(&mut client, "/open/a", spoof);
    assert_eq!(r.status, 200);
    // `+` is not read as a space: a key is not form text.
    let r = request(&mut client, &format!("/q/a?api_key={GLOBEX_KEY}"), spoof);
    assert_eq!(r.status, 200, "{}", r.text());

    let seen = s.upstream.wait_for_requests(3);
    assert_eq!(seen[0].header_all("x-consumer"), ["acme"], "only the proxy's value");
    assert!(!seen[0].has_header("x-api-consumer"));
    assert!(!seen[1].has_header("x-consumer") && !seen[1].has_header("x-api-consumer"), "{:?}", seen[1].headers);
    assert_eq!(seen[2].header_all("x-api-consumer"), ["globex"]);
    assert!(!seen[2].has_header("x-consumer"));
}

#[test]
fn ip_rules_on_the_listener_and_the_route_refuse_with_403() {
    let s = start("");
    let mut client = Client::connect(s.proxy.addr());
    let r = request(&mut client, "/deny/x", "");
    assert_eq!(r.status, 403);
    let p = problem(&r);
    assert_eq!(p["title"], "Forbidden");
    assert_eq!(p["detail"], "client address 127.0.0.1 refused by the route's ip_rules (in a denied range)");
    let r = request(&mut client, "/elsewhere/x", "");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("refused by the route's ip_rules (not in an allowed range)"), "{}", r.text());
    assert_eq!(request(&mut client, "/allow/x", "").status, 200);

    // The locked listener refuses loopback whatever is asked, before a
    // 404 could tell which routes exist.
    let mut locked = Client::connect(s.proxy.listener("locked"));
    for path in ["/open/x", "/allow/x", "/nowhere"] {
        let r = request(&mut locked, path, "");
        assert_eq!(r.status, 403, "{path}");
        assert!(r.text().contains("refused by the listener's ip_rules (in a denied range)"), "{}", r.text());
    }

    // The edge listener judges the effective client a trusted proxy names.
    let mut edge = Client::connect(s.proxy.listener("edge"));
    let r = request(&mut edge, "/open/x", "X-Forwarded-For: 203.0.113.9\r\n");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("client address 203.0.113.9 refused by the listener's"), "{}", r.text());
    let r = request(&mut edge, "/open/x", "X-Forwarded-For: 2001:db8:dead::1\r\n");
    assert_eq!(r.status, 403, "an IPv6 range: {}", r.text());
    assert_eq!(request(&mut edge, "/open/x", "X-Forwarded-For: 198.51.100.1\r\n").status, 200);
    // ...and then the route's rules, on the same address.
    let r = request(&mut edge, "/allow/x", "X-Forwarded-For: 2001:db8::5\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(&mut edge, "/allow/x", "X-Forwarded-For: 198.51.100.1\r\n");
    assert_eq!(r.status, 403, "{}", r.text());

    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.upstream.heads_received(), 3, "refused requests never reach the upstream");
    let seen = s.upstream.requests();
    assert_eq!(seen[1].header("x-real-ip"), Some("198.51.100.1"));
}

#[test]
fn ip_rules_on_an_ipv6_listener() {
    let upstream = Upstream::start(|_| Reply::ok("v6"));
    let text = format!(
        "[server]\nshards = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[listeners]]\nname = \"main\"\nlisten = \"[::1]:0\"\n\
         [[clusters]]\nname = \"api\"\nendpoints = [\"{}\"]\n\
         [[routes]]\ncluster = \"api\"\nip_rules = {{ allow = [\"::1\"] }}\n[routes.match]\npath_prefix = \"/in/\"\n\
         [[routes]]\ncluster = \"api\"\nip_rules = {{ deny = [\"::/0\"] }}\n[routes.match]\npath_prefix = \"/out/\"\n",
        upstream.addr()
    );
    let proxy = Proxy::run_toml(&text, &["main", "admin"]);
    assert!(proxy.addr().is_ipv6());
    let mut client = Client::connect(proxy.addr());
    assert_eq!(request(&mut client, "/in/x", "").status, 200);
    let r = request(&mut client, "/out/x", "");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("client address ::1 refused by the route's ip_rules"), "{}", r.text());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(upstream.heads_received(), 1);
}

#[test]
fn keys_never_reach_the_logs_and_refusals_are_recorded() {
    let upstream = Upstream::start(|_| Reply::ok("ok"));
    let dir = TempDir::new();
    let keys = keys_file(&dir, &[GLOBEX_KEY]);
    let log = dir.path().join("access.log");
    let access_log = format!(
        "\n[access_log]\npath = \"{}\"\nfields = [\"route\", \"consumer\", \"path\", \"query\", \"status\", \"error\"]\n",
        log.display()
    );
    let text = gateway(upstream.addr(), &keys, &access_log);
    let names: Vec<String> = ["main", "locked", "edge", "admin"].iter().map(|n| n.to_string()).collect();
    let mut args = vec!["run".to_string(), "-c".to_string(), dir.write("gw.toml", &text).display().to_string()];
    args.extend(crate::harness::proxy::runtime_args());
    let proxy = Proxy::spawn_with_env(&args, &[("SHARDGATE_LOG", Some("debug"))], &names, "main", None).unwrap();

    let mut client = Client::connect(proxy.addr());
    assert_eq!(request(&mut client, "/h/a", &format!("X-Api-Key: {ACME_KEY}\r\n")).status, 200);
    assert_eq!(request(&mut client, "/h/a", &format!("X-Api-Key: {WRONG_KEY}\r\n")).status, 401);
    assert_eq!(request(&mut client, &format!("/q/a?x=1&api_key={ACME_KEY}"), "").status, 200);
    assert_eq!(request(&mut client, &format!("/q/a?api_key={WRONG_KEY}&y=2"), "").status, 401);
    assert_eq!(request(&mut client, "/c/a", &format!("Cookie: k={WRONG_KEY}\r\n")).status, 401);
    assert_eq!(request(&mut client, "/deny/a", "").status, 403);

    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(eventually(Duration::from_secs(10), || lines().lines().count() >= 6), "{}", lines());
    let v: Vec<Value> = lines().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v.len(), 6, "{}", lines());
    assert_eq!(v[0]["consumer"], "acme");
    assert_eq!(v[0]["route"], "by-header");
    assert_eq!(v[1]["consumer"], Value::Null);
    assert_eq!(v[1]["status"], 401);
    assert_eq!(v[1]["error"], "unauthorized");
    assert_eq!(v[2]["query"], "x=1&api_key=***", "the key is masked, the rest kept");
    assert_eq!(v[2]["consumer"], "acme");
    assert_eq!(v[3]["query"], "api_key=***&y=2");
    assert_eq!(v[5]["error"], "forbidden");
    assert_eq!(v[5]["status"], 403);
    for key in [ACME_KEY, WRONG_KEY, GLOBEX_KEY] {
        assert!(!lines().contains(key), "{key} in the access log:\n{}", lines());
        assert!(!proxy.log().contains(key), "{key} in the process log:\n{}", proxy.log());
    }
    assert!(proxy.log().contains("request failed"), "debug logs were on: {}", proxy.log());

    let metrics = Client::connect(proxy.admin())
        .request(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .text();
    let count = |route: &str, kind: &str| -> Option<String> {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("shardgate_errors_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    assert_eq!(count("by-header", "unauthorized").as_deref(), Some("1"), "{metrics}");
    assert_eq!(count("by-query", "unauthorized").as_deref(), Some("1"), "{metrics}");
    assert_eq!(count("deny-loopback", "forbidden").as_deref(), Some("1"), "{metrics}");
}

#[test]
fn a_reload_applies_added_and_removed_keys() {
    let s = start("");
    let mut client = Client::connect(s.proxy.addr());
    let new_globex = "globex-rotated-Kk2";
    let new_acme = "acme-rotated-Uu7";
    assert_eq!(request(&mut client, "/h/a", &format!("X-Api-Key: {ACME_KEY}\r\n")).status, 200);
    assert_eq!(request(&mut client, "/h/a", &format!("X-Api-Key: {new_globex}\r\n")).status, 401);

    // Rotate: globex's file gets a new key and loses the old one; acme's
    // inline key is replaced.
    keys_file(&s.dir, &[new_globex]);
    let text =
        gateway(s.upstream.addr(), &s.dir.path().join("globex.keys"), "").replace(&digest(ACME_KEY), &digest(new_acme));
    s.proxy.write_config(&text);
    let r = s.proxy.reload();
    assert_eq!(r.status, 200, "{}", r.text());

    let mut client = Client::connect(s.proxy.addr());
    let ok = eventually(Duration::from_secs(5), || {
        request(&mut client, "/h/a", &format!("X-Api-Key: {new_globex}\r\n")).status == 200
    });
    assert!(ok, "a key added by the reload works");
    assert_eq!(request(&mut client, "/h/a", &format!("X-Api-Key: {new_acme}\r\n")).status, 200);
    for old in [GLOBEX_KEY, ACME_KEY] {
        let r = request(&mut client, "/h/a", &format!("X-Api-Key: {old}\r\n"));
        assert_eq!(r.status, 401, "a key the reload removed");
        assert_eq!(problem(&r)["detail"], "API key unknown");
    }
    let seen = s.upstream.requests();
    assert_eq!(seen.last().unwrap().header("x-consumer"), Some("acme"));
}

#[test]
fn key_hash_prints_the_digest_a_consumer_stores() {
    use crate::harness::proxy::{run_to_completion, shardgate, shardgate_output};
    let hash = |stdin: &[u8]| {
        let mut command = shardgate();
        command.args(["key", "hash"]);
        run_to_completion(command, stdin, Duration::from_secs(20))
    };
    let want = format!("{}\n", digest(ACME_KEY));
    for input in [ACME_KEY.to_owned(), format!("{ACME_KEY}\n"), format!("{ACME_KEY}\r\n")] {
        let out = hash(input.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "one trailing newline is not part of the key");
    }
    let out = shardgate_output(&["key", "hash", ACME_KEY]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    // Only one newline is dropped: a key may end in whitespace.
    let out = hash(format!("{ACME_KEY}\n\n").as_bytes());
    assert_ne!(String::from_utf8_lossy(&out.stdout), want);
    let out = hash(b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the key is empty"));
    let out = hash(&[b'k'; 513]);
    assert_eq!(out.status.code(), Some(2));
}
