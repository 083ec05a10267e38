//! The command line: `check`, flags overriding the config file, and the
//! config-free `proxy` and `echo` subcommands.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::proxy::shardgate_output;
use crate::harness::tempdir::TempDir;
use crate::harness::*;

/// `shardgate check` on `file`, named relative to the repository root (the
/// test's working directory) as a user would, so that the file names in
/// its errors match the `.expected` texts.
fn check(file: &Path) -> std::process::Output {
    let relative = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(file);
    shardgate_output(&["check", "-c", &relative.display().to_string()])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `.toml` files directly in `dir`, sorted; empty if it does not exist.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

#[test]
fn check_accepts_the_quickstart_example() {
    let quickstart = examples_dir().join("quickstart.toml");
    if !quickstart.exists() {
        eprintln!("SKIPPED: {} does not exist yet", quickstart.display());
        return;
    }

    let output = check(&quickstart);

    assert_eq!(output.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&output.stdout), text(&output.stderr));
    assert!(!output.stdout.is_empty(), "no summary printed");
}

#[test]
fn check_accepts_every_example_config() {
    let mut failures = Vec::new();
    for file in toml_files(&examples_dir()) {
        let output = check(&file);
        if output.status.code() != Some(0) {
            failures.push(format!("{}:\n{}", file.display(), text(&output.stderr)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_reports_the_expected_errors_for_every_invalid_example() {
    let mut failures = Vec::new();
    for file in toml_files(&examples_dir().join("invalid")) {
        let Ok(expected) = std::fs::read_to_string(file.with_extension("expected")) else {
            continue;
        };
        let output = check(&file);
        let stderr = text(&output.stderr);
        if output.status.code() != Some(1) {
            failures.push(format!("{}: exit {:?}, want 1", file.display(), output.status.code()));
        }
        for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !stderr.contains(line) {
                failures.push(format!("{}: missing {line:?} in:\n{stderr}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_accepts_a_valid_config_and_prints_a_summary() {
    let config = ProxyConfig::new()
        .cluster("backend", &["127.0.0.1:9".parse().unwrap()])
        .route(Route::new("all").path_prefix("/").cluster("backend"));
    let dir = TempDir::new();
    let file = dir.write("valid.toml", &config.to_toml());

    let output = check(&file);

    assert_eq!(output.status.code(), Some(0), "stderr:\n{}", text(&output.stderr));
    assert!(!output.stdout.is_empty(), "no summary printed");
}

#[test]
fn check_reports_every_error_with_its_field_path_and_exits_1() {
    let dir = TempDir::new();
    let file = dir.write(
        "invalid.toml",
        r#"
[[listeners]]
name = "main"
listen = "127.0.0.1:0"

[[routes]]
name = "broken"
listeners = ["no-such-listener"]
cluster = "no-such-cluster"

[[clusters]]
name = "backend"
endpoints = ["127.0.0.1:9"]
"#,
    );

    let output = check(&file);
    let stderr = text(&output.stderr);

    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    // Both mistakes, each with its field path and line.
    for (path, line) in [("routes[0].listeners", 8), ("routes[0].cluster", 9)] {
        let reported = stderr.lines().any(|l| l.contains(path) && l.contains(&format!("line {line}")));
        assert!(reported, "no error for {path} (line {line}):\n{stderr}");
    }
    assert!(stderr.contains("no-such-cluster"), "{stderr}");
}

#[test]
fn check_names_the_field_of_an_unparsable_value() {
    let dir = TempDir::new();
    let file = dir.write(
        "bad-duration.toml",
        "[limits]\nheader_timeout = \"soon\"\n\n[[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n",
    );

    let output = check(&file);
    let stderr = text(&output.stderr);

    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("limits.header_timeout"), "{stderr}");
}

#[test]
fn run_with_a_missing_config_file_fails_naming_it() {
    let output = shardgate_output(&["run", "-c", "/nonexistent/shardgate-e2e.toml", "--no-pin"]);

    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("/nonexistent/shardgate-e2e.toml"), "stderr:\n{}", text(&output.stderr));
}

#[test]
fn command_line_limits_override_the_config_file() {
    let upstream = Upstream::ok("ok");
    let config = ProxyConfig::new().limits("max_uri_bytes = 8192").everything_to(upstream.addr());
    let proxy = config.start_with_args(&["--max-uri-bytes", "64"]);

    assert_eq!(get(proxy.addr(), &format!("/{}", "a".repeat(200))).status, 414);
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn command_line_header_timeout_overrides_the_config_file() {
    let upstream = Upstream::ok("ok");
    let config = ProxyConfig::new().limits(r#"header_timeout = "60s""#).everything_to(upstream.addr());
    let proxy = config.start_with_args(&["--header-timeout", "1s"]);

    let mut client = Client::connect(proxy.addr());
    let started = Instant::now();
    client.send(b"GET / HTTP/1.1\r\n");
    let response = client.read_response();

    assert_eq!(response.status, 408);
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK);
}

#[test]
fn command_line_shards_override_the_config_file() {
    let proxy =
        ProxyConfig::new().shards(1).route(Route::new("all").direct(200, "ok")).start_with_args(&["--shards", "2"]);

    assert_eq!(proxy.stats().len(), 2);
}

#[test]
fn proxy_subcommand_forwards_to_the_echo_subcommand() {
    let echo = Proxy::echo();
    let proxy = Proxy::proxy_command(&[echo.addr()], &[]);

    let hello = get(proxy.addr(), "/hello?x=1");
    assert_eq!(hello.status, 200);
    assert!(hello.text().contains("GET"), "{}", hello.text());
    assert!(hello.text().contains("/hello"), "{}", hello.text());

    let posted = Client::connect(proxy.addr())
        .request(b"POST /submit HTTP/1.1\r\nHost: localhost\r\nContent-Length: 18\r\n\r\nbody-through-proxy");
    assert_eq!(posted.status, 200);
    assert!(posted.text().contains("POST"), "{}", posted.text());
    assert!(posted.text().contains("body-through-proxy"), "{}", posted.text());

    assert_eq!(get(proxy.addr(), "/status/418").status, 418);
    let bytes = get(proxy.addr(), "/bytes/100000");
    assert_eq!(bytes.status, 200);
    assert_eq!(bytes.body.len(), 100_000);
    assert_eq!(get(proxy.addr(), "/delay/100").status, 200);
}

#[test]
fn echo_delay_ms_delays_every_answer() {
    // The load-balancing benchmark's slow endpoint: slow on every path,
    // not only /delay/MS.
    let slow = Proxy::echo_with(&["--delay-ms", "300"]);
    let started = std::time::Instant::now();
    assert_eq!(get(slow.addr(), "/bytes/13").status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "{:?}", started.elapsed());
}

#[test]
fn proxy_subcommand_round_robins_over_its_upstreams() {
    let first = Upstream::ok("first");
    let second = Upstream::ok("second");
    let proxy = Proxy::proxy_command(&[first.addr(), second.addr()], &[]);

    let mut client = Client::connect(proxy.addr());
    for _ in 0..4 {
        assert_eq!(client.get("/").status, 200);
    }

    assert_eq!(first.requests().len(), 2);
    assert_eq!(second.requests().len(), 2);
}

#[test]
fn proxy_subcommand_takes_the_tuning_flags() {
    let upstream = Upstream::ok("ok");
    let proxy = Proxy::proxy_command(&[upstream.addr()], &["--max-uri-bytes", "64"]);

    assert_eq!(get(proxy.addr(), "/short").status, 200);
    assert_eq!(get(proxy.addr(), &format!("/{}", "a".repeat(200))).status, 414);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn proxy_subcommand_adds_forwarding_headers() {
    let upstream = Upstream::ok("ok");
    let proxy = Proxy::proxy_command(&[upstream.addr()], &[]);

    assert_eq!(get(proxy.addr(), "/").status, 200);

    let request = upstream.only_request();
    assert_eq!(request.header_list("x-forwarded-for"), vec!["127.0.0.1"]);
    assert!(request.has_header("x-request-id"));
}

/// `--trusted-proxy` (repeatable) trusts the peer's forwarding headers on
/// every listener; a bad range is refused before anything starts.
#[test]
fn proxy_subcommand_takes_trusted_proxies() {
    let upstream = Upstream::ok("ok");
    let proxy =
        Proxy::proxy_command(&[upstream.addr()], &["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "127.0.0.1"]);

    let response = Client::connect(proxy.addr())
        .request(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7, 10.9.9.9\r\n\r\n");

    assert_eq!(response.status, 200);
    assert_eq!(upstream.only_request().header_all("x-real-ip"), ["203.0.113.7"]);
    let output = shardgate_output(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
        "--trusted-proxy",
        "10.0.0.1/8",
    ]);
    assert_ne!(output.status.code(), Some(0));
    assert!(text(&output.stderr).contains("bits set past the /8 prefix"), "{}", text(&output.stderr));
}

/// The README's first command: `shardgate demo` proxies a real request to
/// its built-in echo upstream and (with --once) exits 0 by itself.
#[test]
fn demo_once_proxies_a_real_request_and_exits_0() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let listen = format!("127.0.0.1:{port}");
    let output = shardgate_output(&["demo", "--listen", &listen, "--once"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    // The echo upstream received the proxied request, forwarding headers included.
    assert!(stdout.contains("GET /hello?from=demo HTTP/1.1"), "{stdout}");
    assert!(stdout.contains("x-forwarded-for: 127.0.0.1"), "{stdout}");
    assert!(stdout.contains("{\"item\":\"tea\"}"), "{stdout}");
    assert!(stdout.contains(&format!("curl -i http://{listen}/hello")), "{stdout}");
}

/// `--defer-accept` (TCP_DEFER_ACCEPT on every listener): a client that has
/// connected but sent nothing is not accepted yet, so the proxy has not
/// spent a connection on it; one that sends a request is served.
#[test]
fn defer_accept_hands_over_connections_once_their_request_is_there() {
    let upstream = Upstream::ok("deferred");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start_with_args(&["--defer-accept"]);
    let accepted = |proxy: &Proxy| proxy.stats().iter().map(|s| s.accepted).sum::<u64>();
    let silent = std::net::TcpStream::connect(proxy.addr()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accepted(&proxy), 0, "a connection without data is not accepted");
    assert_eq!(get(proxy.addr(), "/").text(), "deferred");
    assert_eq!(accepted(&proxy), 1, "the client that sent its request was");
    drop(silent);
}
