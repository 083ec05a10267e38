//! Access logs: every request of a mixed run is logged exactly once with
//! its fields (JSON and combined), credentials never are, a log that
//! cannot be written or read costs lines (counted, reported) and never a
//! request, SIGUSR1 reopens the file after rotation, and a reload changes
//! the format.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::proxy::{json_u64, shard_objects, shardgate_output};
use crate::harness::tempdir::TempDir;
use crate::harness::upstream::refusing_addr;
use crate::harness::*;

/// Shards hand their lines over every 250 ms; this is ample.
const LINES_WITHIN: Duration = Duration::from_secs(10);

fn with_access_log(config: &ProxyConfig, section: &str) -> String {
    format!("{}\n[access_log]\n{section}\n", config.to_toml())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// Waits until `path` holds at least `n` lines, then a little longer (two
/// flush periods) so that a line logged twice would show.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let reached = eventually(LINES_WITHIN, || lines(path).len() >= n);
    assert!(reached, "{n} lines expected in {}, got:\n{}", path.display(), lines(path).join("\n"));
    std::thread::sleep(Duration::from_millis(600));
    lines(path)
}

fn json_lines(path: &Path, n: usize) -> Vec<Value> {
    wait_lines(path, n)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Lines dropped by the shards, from `/stats`.
fn dropped(proxy: &Proxy) -> u64 {
    let json = proxy.stats_json().replace("\"statuses\":{", "").replace("}}", "}");
    shard_objects(&json)
        .expect("shards in /stats")
        .iter()
        .map(|s| json_u64(s, "access_log_dropped").expect("access_log_dropped in /stats"))
        .sum()
}

#[test]
fn every_request_of_a_mixed_run_is_logged_once_with_its_fields() {
    let upstream = Upstream::start(|r| match r.target.as_str() {
        // Head now, body later: the client leaves in between.
        "/app/leave" => Reply::ok(vec![b'x'; 100_000]).body_after(Duration::from_millis(500)),
        _ => Reply::ok("hello"),
    });
    let down = refusing_addr();
    let config = ProxyConfig::new()
        .shards(2)
        .cluster("app", &[upstream.addr()])
        .cluster("down", &[down])
        .route(Route::new("app").path_prefix("/app").cluster("app"))
        .route(Route::new("gone").path("/down").cluster("down"));
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let text = with_access_log(
        &config,
        &format!("path = {:?}\nfields = [\"all\"]\nheaders = [\"x-trace-me\"]", log.display().to_string()),
    );
    let proxy = Proxy::run_toml(&text, &["main", "admin"]);

    // Proxied 2xx, with credentials the log must never hold.
    let mut client = Client::connect(proxy.addr());
    let get_head = "GET /app/get?x=1&y=%22 HTTP/1.1\r\nHost: api.test\r\nUser-Agent: e2e-agent/1.0\r\n\
                    Referer: http://ref.test/\r\nAuthorization: Bearer top-secret-token\r\n\
                    Cookie: session=cookie-secret\r\nX-Api-Key: key-secret\r\nX-Trace-Me: yes\r\n\r\n";
    assert_eq!(client.request(get_head.as_bytes()).status, 200);
    let get_peer = client.local_addr();
    // A POST with a body.
    let body = "a=1&b=2&c=3";
    let post_head = format!("POST /app/post HTTP/1.1\r\nHost: api.test\r\nContent-Length: {}\r\n\r\n", body.len());
    assert_eq!(client.request(format!("{post_head}{body}").as_bytes()).status, 200);
    // No route.
    assert_eq!(client.get("/nowhere").status, 404);
    // Upstream down.
    assert_eq!(get(proxy.addr(), "/down").status, 502);
    // A head that cannot be parsed.
    assert_eq!(send_raw(proxy.addr(), b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n").status, 400);
    // A client that leaves after the response head, before the body.
    let mut leaving = TcpStream::connect(proxy.addr()).unwrap();
    leaving.write_all(b"GET /app/leave HTTP/1.1\r\nHost: api.test\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    leaving.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    drop(leaving);

    let v = json_lines(&log, 6);
    assert_eq!(v.len(), 6, "exactly one line per request:\n{}", lines(&log).join("\n"));
    let one = |pred: &dyn Fn(&Value) -> bool, what: &str| -> Value {
        let found: Vec<&Value> = v.iter().filter(|l| pred(l)).collect();
        assert_eq!(found.len(), 1, "one line for {what}: {found:?}");
        found[0].clone()
    };

    // Every line: the documented keys, valid ids and times.
    let mut ids = Vec::new();
    for l in &v {
        let o = l.as_object().unwrap();
        for key in ["time", "request_id", "client", "peer", "status", "bytes_received", "bytes_sent", "total_us"] {
            assert!(o.contains_key(key), "{key} in {l}");
        }
        let time = l["time"].as_str().unwrap();
        assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.', "RFC 3339 with ms: {time}");
        assert_eq!(l["client"], "127.0.0.1");
        assert_eq!(l["listener"], "main");
        ids.push(l["request_id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "request ids are unique");

    let l = one(&|l| l["path"] == "/app/get", "the proxied GET");
    assert_eq!(l["method"], "GET");
    assert_eq!(l["query"], "x=1&y=%22");
    assert_eq!(l["host"], "api.test");
    assert_eq!(l["protocol"], "HTTP/1.1");
    assert_eq!(l["peer"], get_peer.to_string());
    assert_eq!(l["status"], 200);
    assert_eq!(l["upstream_status"], 200);
    assert_eq!(l["route"], "app");
    assert_eq!(l["cluster"], "app");
    assert_eq!(l["endpoint"], upstream.addr().to_string());
    assert_eq!(l["retries"], 0);
    assert_eq!(l["error"], Value::Null);
    assert_eq!(l["user_agent"], "e2e-agent/1.0");
    assert_eq!(l["referer"], "http://ref.test/");
    assert_eq!(l["headers"]["x-trace-me"], "yes");
    assert_eq!(l["bytes_received"], get_head.len() as u64);
    assert!(l["bytes_sent"].as_u64().unwrap() > 5, "{l}");
    let total = l["total_us"].as_u64().unwrap();
    let first_byte = l["upstream_first_byte_us"].as_u64().expect("upstream head timing");
    assert!(first_byte <= total, "{l}");
    assert!(l["head_read_us"].as_u64().is_some(), "{l}");
    assert!(l["upstream_connect_us"].as_u64().is_some(), "the first request connects: {l}");
    assert_eq!(l["tls_version"], Value::Null);

    let l = one(&|l| l["path"] == "/app/post", "the POST");
    assert_eq!(l["method"], "POST");
    assert_eq!(l["status"], 200);
    assert_eq!(l["bytes_received"], (post_head.len() + body.len()) as u64);
    assert_eq!(l["upstream_connect_us"], Value::Null, "the second request reuses the pooled connection: {l}");

    let l = one(&|l| l["path"] == "/nowhere", "the 404");
    assert_eq!(l["status"], 404);
    assert_eq!(l["error"], "no_route");
    assert_eq!(l["route"], Value::Null);
    assert_eq!(l["cluster"], Value::Null);

    let l = one(&|l| l["path"] == "/down", "the 502");
    assert_eq!(l["status"], 502);
    assert_eq!(l["route"], "gone");
    assert_eq!(l["cluster"], "down");
    assert_eq!(l["endpoint"], down.to_string());
    assert_eq!(l["upstream_status"], Value::Null);
    assert_eq!(l["error"], "upstream_connect_failed");

    let l = one(&|l| l["status"] == 400, "the bad head");
    assert_eq!(l["error"], "bad_request");
    assert_eq!(l["method"], Value::Null);

    let l = one(&|l| l["path"] == "/app/leave", "the client that left");
    assert_eq!(l["status"], 200);
    assert_eq!(l["upstream_status"], 200);
    assert!(l["error"].is_string(), "the request failed: {l}");
    assert!(l["bytes_sent"].as_u64().unwrap() < 100_000, "{l}");

    let all = std::fs::read_to_string(&log).unwrap();
    for secret in ["top-secret-token", "cookie-secret", "key-secret", "Bearer"] {
        assert!(!all.contains(secret), "{secret} written to the access log");
    }
    assert_eq!(dropped(&proxy), 0);
}

#[test]
fn combined_format_is_nginx_combined() {
    let upstream = Upstream::ok("hello");
    let config = ProxyConfig::new().cluster("app", &[upstream.addr()]).route(Route::new("app").cluster("app"));
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let text = with_access_log(&config, &format!("path = {:?}\nformat = \"combined\"", log.display().to_string()));
    let proxy = Proxy::run_toml(&text, &["main", "admin"]);
    let raw = b"GET /c?q=\"1\" HTTP/1.1\r\nHost: a\r\nUser-Agent: ua \"quoted\" \xc3\xa9\r\n\r\n";
    let response = send_raw(proxy.addr(), raw);
    assert_eq!(response.status, 200);
    let got = wait_lines(&log, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    let line = &got[0];
    // 127.0.0.1 - - [03/Dec/2026:18:04:05 +0000] "GET ..." 200 N "-" "..."
    let (prefix, rest) = line.split_at(line.find('[').unwrap());
    assert_eq!(prefix, "127.0.0.1 - - ");
    let time = &rest[1..rest.find(']').unwrap()];
    assert_eq!(time.len(), 26, "{time}");
    assert!(time.ends_with(" +0000") && time.as_bytes()[2] == b'/' && time.as_bytes()[6] == b'/', "{time}");
    let after = &rest[time.len() + 3..];
    let sent = response.raw_head.len() + response.body.len();
    assert_eq!(
        after,
        format!("\"GET /c?q=\\x221\\x22 HTTP/1.1\" 200 {sent} \"-\" \"ua \\x22quoted\\x22 \\xC3\\xA9\""),
        "{line}"
    );
}

/// A FIFO whose reader never reads: the pipe fills, the writer thread
/// blocks, its queue fills, and the shards drop lines and count them,
/// while every request is answered.
#[test]
fn a_log_nobody_reads_costs_lines_never_requests() {
    let upstream = Upstream::ok("hello");
    let config =
        ProxyConfig::new().shards(2).cluster("app", &[upstream.addr()]).route(Route::new("app").cluster("app"));
    let dir = TempDir::new();
    let fifo = mkfifo(dir.path(), "pipe");
    // Opened for reading (so the proxy's open succeeds) and never read.
    let mut reader = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
    let text = with_access_log(&config, &format!("path = {:?}", fifo.display().to_string()));
    let mut proxy = Proxy::run_toml(&text, &["main", "admin"]);

    let started = Instant::now();
    let requests = run_clients(&proxy, 4, 2_500);
    assert_eq!(requests, 10_000, "every request answered 200");
    let took = started.elapsed();
    assert!(eventually(LINES_WITHIN, || dropped(&proxy) > 0), "lines dropped and counted");
    let lost = dropped(&proxy);
    assert!(lost < 10_000, "{lost}");
    eprintln!("10000 requests in {took:?} with the log blocked; {lost} lines dropped");

    // Now the reader reads: every request is either a line in the pipe
    // or a dropped line counted, never both, never neither.
    let mut read = Vec::new();
    let accounted = eventually(LINES_WITHIN, || {
        let mut chunk = [0u8; 65536];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => read.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read the pipe: {e}"),
            }
        }
        read.iter().filter(|&&b| b == b'\n').count() as u64 + dropped(&proxy) == 10_000
    });
    let written = read.iter().filter(|&&b| b == b'\n').count();
    assert!(accounted, "{written} lines read + {} dropped != 10000", dropped(&proxy));
    assert!(written > 0);

    // The stuck writer does not hold the exit either.
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("exits although its log is stuck");
    assert!(status.success(), "{status:?}\n{}", proxy.log());
}

/// A FIFO nobody opened: the writer cannot open it (it does not wait for
/// a reader), requests are served, and the failure is reported once per
/// interval, not once per line.
#[test]
fn a_log_that_cannot_be_opened_is_reported_once_per_interval() {
    let upstream = Upstream::ok("hello");
    let config = ProxyConfig::new().cluster("app", &[upstream.addr()]).route(Route::new("app").cluster("app"));
    let dir = TempDir::new();
    let fifo = mkfifo(dir.path(), "pipe");
    let text = with_access_log(&config, &format!("path = {:?}", fifo.display().to_string()));
    let proxy = Proxy::run_toml(&text, &["main", "admin"]);
    for _ in 0..4 {
        assert_eq!(run_clients(&proxy, 1, 50), 50);
        // Lines reach the writer in several flushes.
        std::thread::sleep(Duration::from_millis(400));
    }
    let reports = |p: &Proxy| p.log().lines().filter(|l| l.contains("access log: cannot open")).count();
    assert!(eventually(LINES_WITHIN, || reports(&proxy) >= 1), "{}", proxy.log());
    assert_eq!(reports(&proxy), 1, "reported once in the interval:\n{}", proxy.log());
    assert!(proxy.log().contains("No such device or address"), "{}", proxy.log());
}

#[test]
fn sigusr1_reopens_the_log_after_rotation() {
    let upstream = Upstream::ok("hello");
    let config = ProxyConfig::new().cluster("app", &[upstream.addr()]).route(Route::new("app").cluster("app"));
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let text = with_access_log(&config, &format!("path = {:?}\nfields = [\"path\"]", log.display().to_string()));
    let proxy = Proxy::run_toml(&text, &["main", "admin"]);

    assert_eq!(get(proxy.addr(), "/before").status, 200);
    wait_lines(&log, 1);
    std::fs::rename(&log, &rotated).unwrap();
    // Until the signal, lines still go to the renamed file.
    assert_eq!(get(proxy.addr(), "/renamed").status, 200);
    assert!(eventually(LINES_WITHIN, || lines(&rotated).len() == 2), "{:?}", lines(&rotated));
    assert!(!log.exists());
    proxy.signal("USR1");
    assert!(eventually(LINES_WITHIN, || log.exists()), "reopened: {}", proxy.log());
    assert_eq!(get(proxy.addr(), "/after").status, 200);
    assert_eq!(wait_lines(&log, 1), ["{\"path\":\"/after\"}"]);
    assert_eq!(lines(&rotated), ["{\"path\":\"/before\"}", "{\"path\":\"/renamed\"}"]);
    assert!(proxy.log().contains("access log: reopening"), "{}", proxy.log());
}

#[test]
fn a_reload_changes_format_fields_and_path() {
    let upstream = Upstream::ok("hello");
    let config = ProxyConfig::new().cluster("app", &[upstream.addr()]).route(Route::new("app").cluster("app"));
    let dir = TempDir::new();
    let first = dir.path().join("first.log");
    let second = dir.path().join("second.log");
    let text = with_access_log(&config, &format!("path = {:?}\nfields = [\"path\"]", first.display().to_string()));
    let proxy = Proxy::run_toml(&text, &["main", "admin"]);
    assert_eq!(get(proxy.addr(), "/one").status, 200);
    assert_eq!(wait_lines(&first, 1), ["{\"path\":\"/one\"}"]);

    proxy.write_config(&with_access_log(
        &config,
        &format!("path = {:?}\nfields = [\"status\", \"path\"]", first.display().to_string()),
    ));
    assert_eq!(proxy.reload().status, 200);
    assert_eq!(get(proxy.addr(), "/two").status, 200);
    assert_eq!(wait_lines(&first, 2)[1], "{\"status\":200,\"path\":\"/two\"}");

    proxy.write_config(&with_access_log(
        &config,
        &format!("path = {:?}\nformat = \"combined\"", second.display().to_string()),
    ));
    assert_eq!(proxy.reload().status, 200);
    assert!(eventually(LINES_WITHIN, || second.exists()), "switched: {}", proxy.log());
    assert_eq!(get(proxy.addr(), "/three").status, 200);
    let got = wait_lines(&second, 1);
    assert!(got[0].starts_with("127.0.0.1 - - [") && got[0].contains("\"GET /three HTTP/1.1\" 200"), "{got:?}");
    assert_eq!(lines(&first).len(), 2);
}

#[test]
fn check_shows_the_section_and_names_bad_fields_with_their_line() {
    let dir = TempDir::new();
    let base = "[[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n";
    let good = dir.write("good.toml", &format!("{base}[access_log]\npath = \"a.log\"\nsample = 0.5\n"));
    let out = shardgate_output(&["check", "-c", &good.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("access_log: ") && stdout.contains("a.log format=json fields=time,"), "{stdout}");
    assert!(stdout.contains("sample=0.5 (errors always logged)"), "{stdout}");

    let bad = dir.write(
        "bad.toml",
        &format!("{base}[access_log]\nformat = \"clf\"\nsample = 2.0\nheaders = [\"x-ok\", \"Authorization\"]\n"),
    );
    let out = shardgate_output(&["check", "-c", &bad.display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("access_log.format: unknown format \"clf\"") && stderr.contains("(line 5)"), "{stderr}");
    assert!(stderr.contains("access_log.sample: 2 is out of range") && stderr.contains("(line 6)"), "{stderr}");
    assert!(stderr.contains("access_log.headers[1]: header \"Authorization\" is never logged"), "{stderr}");
    assert!(stderr.contains("(line 7)"), "{stderr}");
}

fn mkfifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = std::ffi::CString::new(path.display().to_string()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    path
}

/// `clients` keep-alive clients, `each` GETs each, at once; the number of
/// 200 answers.
fn run_clients(proxy: &Proxy, clients: usize, each: usize) -> usize {
    let addr = proxy.addr();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                (0..each).filter(|i| client.get(&format!("/load/{c}/{i}")).status == 200).count()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}
