//! Zero-downtime binary upgrade (`--upgrade-socket` on the running
//! process, `--upgrade-from` on the new one) and the drain it shares with
//! SIGTERM and the admin `POST /drain`; the admin `GET /ready`.
//!
//! Under load the client is the real load generator, `shardgate-load`
//! (open loop, JSON report), run as a process: keep-alive connections and
//! a connection per request at once, across the upgrade. It retries an
//! idempotent request once when a reused connection closed before any
//! response byte (as browsers and HTTP libraries do) and counts those
//! apart (`retried`); everything else that fails is an error here.
//!
//! `shardgate-load` is a binary of the bench crate: `cargo test
//! --workspace` builds it beside `shardgate`. Run alone (`cargo test
//! --test e2e upgrade`), the test builds it once into its own target
//! directory.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::proxy::runtime_args;
use crate::harness::tempdir::TempDir;
use crate::harness::*;

/// `drain_timeout` of these tests' configs.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The drain's grace for idle keep-alive connections (shard/registry.rs).
const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(1000);

fn config(shards: usize, upstream: SocketAddr, extra: &str) -> String {
    format!(
        "[server]\nshards = {shards}\ndrain_timeout = \"10s\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n\n{extra}\
         [[routes]]\nname = \"all\"\ncluster = \"backend\"\n[routes.match]\npath_prefix = \"/\"\n\n\
         [[clusters]]\nname = \"backend\"\nendpoints = [\"{upstream}\"]\n"
    )
}

/// A shardgate process of an upgrade test: `shardgate run` on `text`,
/// offering its sockets at `socket`, taking them from `from` if given.
fn start(dir: &TempDir, name: &str, text: &str, socket: &Path, from: Option<&Path>) -> Result<Proxy, String> {
    start_with_env(dir, name, text, socket, from, &[])
}

fn start_with_env(
    dir: &TempDir,
    name: &str,
    text: &str,
    socket: &Path,
    from: Option<&Path>,
    env: &[(&str, Option<&str>)],
) -> Result<Proxy, String> {
    let file = dir.write(&format!("{name}.toml"), text);
    let mut args = vec!["run".to_string(), "-c".to_string(), file.display().to_string()];
    args.extend(runtime_args());
    args.extend(["--upgrade-socket".to_string(), socket.display().to_string()]);
    if let Some(from) = from {
        args.extend(["--upgrade-from".to_string(), from.display().to_string()]);
    }
    Proxy::spawn_with_env(&args, env, &["main".to_string(), "admin".to_string()], "main", None)
}

/// `shardgate-load`: beside the binary under test, or built once.
fn load_binary() -> PathBuf {
    let beside = Path::new(env!("CARGO_BIN_EXE_shardgate")).with_file_name("shardgate-load");
    if beside.exists() {
        return beside;
    }
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Its own target directory: the one of this test run may be
            // locked by the cargo that runs it.
            let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("e2e-load");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "shardgate-bench", "--bin", "shardgate-load", "--target-dir"])
                .arg(&target)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build for shardgate-load");
            assert!(status.success(), "building shardgate-load failed");
            target.join("debug").join("shardgate-load")
        })
        .clone()
}

/// A `shardgate-load` run in the background.
struct Load {
    child: std::process::Child,
    what: String,
}

impl Load {
    fn start(addr: SocketAddr, args: &[&str]) -> Load {
        let url = format!("http://{addr}/load");
        let mut command = Command::new(load_binary());
        command.arg(&url).args(args).args(["--warmup", "0s", "--timeout", "5s", "--json"]);
        let what = format!("shardgate-load {url} {}", args.join(" "));
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Load { child, what }
    }

    /// Waits for the report (the run is bounded by its `-d`).
    fn report(self) -> serde_json::Value {
        let output = self.child.wait_with_output().expect("wait for shardgate-load");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{} failed: {}\n{stdout}", self.what, String::from_utf8_lossy(&output.stderr));
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{}: report is not JSON ({e}): {stdout}", self.what))
    }
}

/// Asserts a load report shows no failure of any kind: every request
/// intended in the run was sent and got 200.
fn assert_nothing_failed(report: &serde_json::Value, what: &str, logs: &str) {
    let errors = &report["errors"];
    let retried = report["retried"].as_u64().unwrap_or_else(|| panic!("{what}: no `retried` count: {report}"));
    assert_eq!(errors["total"], 0, "{what}: failed requests {errors} ({})\n{report}\n{logs}", report["error_samples"]);
    assert_eq!(report["unfinished"], 0, "{what}: {report}");
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 100, "{what}: too few requests to mean anything: {report}");
    assert_eq!(report["ok"].as_u64(), Some(requests), "{what}: {report}");
    eprintln!("{what}: {requests} requests, all 200; {retried} retried on a new connection");
}

/// Old process with `old_shards`, an open-loop load on keep-alive
/// connections and on a connection per request, an upgrade to a new
/// process with `new_shards` two seconds in. Nothing fails; the old
/// process exits 0 after its drain; the new one serves every socket.
fn upgrade_under_load(old_shards: usize, new_shards: usize) {
    let upstream = Upstream::ok("ok");
    let dir = TempDir::new();
    let socket = dir.path().join("upgrade.sock");
    let mut old = start(&dir, "old", &config(old_shards, upstream.addr(), ""), &socket, None).unwrap();
    let addr = old.addr();

    let keep_alive = Load::start(addr, &["-c", "8", "-R", "400", "-d", "6s"]);
    let per_request = Load::start(addr, &["--new-conn", "-c", "4", "-R", "200", "-d", "6s"]);
    std::thread::sleep(Duration::from_secs(2));

    let mut new = start(&dir, "new", &config(new_shards, upstream.addr(), ""), &socket, Some(&socket))
        .unwrap_or_else(|e| panic!("{e}\n--- old ---\n{}", old.log()));
    assert_eq!(new.addr(), addr, "the new process serves the old one's address");
    let status = old.wait_exit(DRAIN_TIMEOUT + SLACK);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "old process after the upgrade: {status:?}\n{}", old.log());

    let logs = format!("--- old ---\n{}\n--- new ---\n{}", old.log(), new.log());
    assert_nothing_failed(&keep_alive.report(), "keep-alive load", &logs);
    assert_nothing_failed(&per_request.report(), "connection-per-request load", &logs);

    // Every socket of the old process is served: the kernel spreads new
    // connections over all of a port's SO_REUSEPORT sockets, and a socket
    // nobody accepted on would leave some of these hanging.
    for i in 0..48 {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        stream.set_read_timeout(Some(SLACK)).unwrap();
        let mut client = Client::over(Box::new(stream));
        let response = client
            .try_send(b"GET /after HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())
            .and_then(|()| client.try_read_response(false, None))
            .unwrap_or_else(|e| panic!("connection {i} after the upgrade: {e}\n{logs}"));
        assert_eq!(response.status, 200);
    }
    assert!(new.try_wait().is_none(), "the new process exited\n{logs}");
    let served: u64 = new.stats().iter().map(|s| s.requests).sum();
    assert!(served >= 48, "the new process served {served} requests\n{logs}");
}

#[test]
fn an_upgrade_under_open_loop_load_fails_no_request() {
    upgrade_under_load(2, 2);
}

#[test]
fn an_upgrade_to_fewer_shards_serves_every_socket_of_the_old_process() {
    upgrade_under_load(3, 1);
}

#[test]
fn an_upgrade_to_more_shards_serves_from_the_old_sockets_and_new_ones() {
    upgrade_under_load(1, 3);
}

#[test]
fn a_new_process_that_fails_to_start_leaves_the_old_one_serving() {
    let upstream = Upstream::ok("ok");
    let dir = TempDir::new();
    let socket = dir.path().join("upgrade.sock");
    let old = start(&dir, "old", &config(2, upstream.addr(), ""), &socket, None).unwrap();

    // A config that does not load: the new process never connects.
    let broken = dir.write("broken.toml", "[server]\nshards = \"two\"\n");
    let mut command = crate::harness::proxy::shardgate();
    command.args(["run", "-c"]).arg(&broken).args(runtime_args()).arg("--upgrade-from").arg(&socket);
    let output = crate::harness::proxy::run_to_completion(command, b"", Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("server.shards"));

    // A config whose extra listener's address is taken: the new process
    // has received the sockets, then fails to bind, and exits.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let extra = format!("[[listeners]]\nname = \"extra\"\nlisten = \"{}\"\n\n", busy.local_addr().unwrap());
    let file = dir.write("busy.toml", &config(1, upstream.addr(), &extra));
    let mut command = crate::harness::proxy::shardgate();
    command.args(["run", "-c"]).arg(&file).args(runtime_args()).arg("--upgrade-from").arg(&socket);
    let output = crate::harness::proxy::run_to_completion(command, b"", Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("received the listening sockets") && stderr.contains("listeners[1] (extra)"), "{stderr}");
    assert!(eventually(SLACK, || old.log().contains("upgrade aborted, this process keeps serving")), "{}", old.log());

    // The old process still serves, says it is ready, and a good upgrade
    // still works.
    assert_eq!(get(old.addr(), "/still").status, 200);
    assert_eq!(admin_get(old.admin(), "GET /ready").0, 200);
    let mut old = old;
    let new = start(&dir, "new", &config(1, upstream.addr(), ""), &socket, Some(&socket)).unwrap();
    let status = old.wait_exit(DRAIN_TIMEOUT + SLACK);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", old.log());
    assert_eq!(get(new.addr(), "/new").status, 200);
}

/// (status, body) of an admin request `request_line` (e.g. `GET /ready`).
fn admin_get(admin: SocketAddr, request_line: &str) -> (u16, String) {
    let response = Client::connect(admin)
        .request(format!("{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes());
    (response.status, response.text())
}

#[test]
fn admin_ready_says_503_once_post_drain_starts_the_drain() {
    let upstream = Upstream::start(|_| Reply::after(Duration::from_secs(2), Reply::ok("finished")));
    let mut proxy = ProxyConfig::new().shards(2).drain_timeout("10s").everything_to(upstream.addr()).start();
    // 503 "starting" until every shard serves (the `listening` lines come
    // before the shards start).
    let (status, body) = admin_get(proxy.admin(), "GET /ready");
    assert!(
        (status, body.as_str()) == (200, "{\"ready\":true}\n")
            || (status, body.as_str()) == (503, "{\"ready\":false,\"reason\":\"starting\"}\n"),
        "{status} {body}"
    );
    assert!(eventually(SLACK, || admin_get(proxy.admin(), "GET /ready").0 == 200), "never ready");
    assert_eq!(admin_get(proxy.admin(), "GET /drain").0, 404, "GET does not drain");
    assert_eq!(admin_get(proxy.admin(), "GET /ready").0, 200);

    let mut in_flight = Client::connect(proxy.addr());
    in_flight.send(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(eventually(SLACK, || upstream.heads_received() == 1));
    let (status, body) = admin_get(proxy.admin(), "POST /drain");
    assert_eq!((status, body.as_str()), (202, "{\"draining\":true}\n"));
    let (status, body) = admin_get(proxy.admin(), "GET /ready");
    assert_eq!((status, body.as_str()), (503, "{\"ready\":false,\"reason\":\"draining\"}\n"));
    assert!(
        eventually(
            SLACK,
            || matches!(TcpStream::connect(proxy.addr()), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
        ),
        "still accepting after POST /drain"
    );
    assert!(proxy.try_wait().is_none(), "exited before the request in flight finished");
    let response = in_flight.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "finished"));
    assert!(response.header_has_token("connection", "close"), "{:?}", response.headers);
    let status = proxy.wait_exit(SLACK);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", proxy.log());
}

/// The race the drain's grace removes: a client sends its next request on
/// an idle keep-alive connection just as the drain starts. It is served
/// (with `Connection: close`), not met by a closed connection.
#[test]
fn a_request_on_an_idle_connection_right_after_sigterm_is_served_with_connection_close() {
    let upstream = Upstream::ok("ok");
    let mut proxy = ProxyConfig::new().drain_timeout("10s").everything_to(upstream.addr()).start();
    let mut racing = Client::connect(proxy.addr());
    assert_eq!(racing.get("/first").status, 200);
    let mut silent = Client::connect(proxy.addr());
    assert_eq!(silent.get("/first").status, 200);

    proxy.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    let response = racing
        .try_send(b"GET /second HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())
        .and_then(|()| racing.try_read_response(false, None))
        .unwrap_or_else(|e| panic!("request sent right after SIGTERM on an idle connection: {e}\n{}", proxy.log()));
    assert_eq!(response.status, 200);
    assert!(response.header_has_token("connection", "close"), "{:?}", response.headers);
    assert!(racing.wait_closed(SLACK));

    // A connection that stays idle is closed once idle past the grace.
    let signalled = Instant::now();
    assert!(silent.wait_closed(DRAIN_IDLE_GRACE + SLACK), "idle connection left open");
    assert!(signalled.elapsed() >= DRAIN_IDLE_GRACE - Duration::from_millis(200), "closed before the grace");
    let status = proxy.wait_exit(SLACK);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", proxy.log());
}

/// Under systemd the new process becomes the service's main process: the
/// old one (the main process, so `NotifyAccess=main` accepts it) names it,
/// and the new one names itself before its `READY=1`.
#[test]
fn the_service_manager_learns_the_new_main_pid() {
    use std::os::unix::net::UnixDatagram;
    let upstream = Upstream::ok("ok");
    let dir = TempDir::new();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let env = [("NOTIFY_SOCKET", Some(notify_path.to_str().unwrap()))];
    let socket = dir.path().join("upgrade.sock");
    let mut old = start_with_env(&dir, "old", &config(1, upstream.addr(), ""), &socket, None, &env).unwrap();
    let new = start_with_env(&dir, "new", &config(1, upstream.addr(), ""), &socket, Some(&socket), &env).unwrap();
    assert_eq!(old.wait_exit(DRAIN_TIMEOUT + SLACK).and_then(|s| s.code()), Some(0), "{}", old.log());

    notify.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = notify.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let main_pid = format!("MAINPID={}", new.pid());
    let named = messages.iter().filter(|m| m.contains(&main_pid)).count();
    assert_eq!(named, 2, "the old and the new process name the new main pid: {messages:?}");
    let ready_after = messages.iter().position(|m| m.contains(&main_pid)).unwrap();
    assert!(messages[ready_after..].iter().any(|m| m.starts_with("READY=1")), "{messages:?}");
    assert!(!messages.iter().any(|m| m.starts_with("STOPPING=1")), "the service did not stop: {messages:?}");
}

/// Every shard's listening socket closes when the drain starts, also the
/// socket of a shard with no connection left (on io_uring its close is an
/// operation its runtime must still submit): a new connection is refused,
/// not queued where nobody accepts it and reset when the process exits.
#[test]
fn sigterm_with_several_shards_refuses_new_connections_while_a_request_finishes() {
    let upstream = Upstream::start(|_| Reply::after(Duration::from_secs(3), Reply::ok("finished")));
    let mut proxy = ProxyConfig::new().shards(3).drain_timeout("10s").everything_to(upstream.addr()).start();
    let addr = proxy.addr();
    let mut in_flight = Client::connect(addr);
    in_flight.send(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(eventually(SLACK, || upstream.heads_received() == 1));
    proxy.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    // Connections spread over all three sockets (SO_REUSEPORT hashes the
    // client port): every one must be refused.
    for i in 0..30 {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            other => panic!("connection {i} during the drain: {other:?}\n{}", proxy.log()),
        }
    }
    assert!(proxy.try_wait().is_none(), "exited before the request in flight finished");
    let response = in_flight.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "finished"));
    assert_eq!(proxy.wait_exit(SLACK).and_then(|s| s.code()), Some(0), "{}", proxy.log());
}

/// SIGUSR2 on a process that offers its sockets: it starts its successor
/// itself (same command line plus `--upgrade-from`), which takes over; the
/// old process drains and exits 0. The successor writes to the same log.
#[test]
fn sigusr2_starts_the_new_process_which_takes_over() {
    let upstream = Upstream::ok("ok");
    let dir = TempDir::new();
    let socket = dir.path().join("upgrade.sock");
    let mut old = start(&dir, "old", &config(2, upstream.addr(), ""), &socket, None).unwrap();
    let addr = old.addr();
    let mut keep_alive = Client::connect(addr);
    assert_eq!(keep_alive.get("/before").status, 200);

    old.signal("USR2");
    let status = old.wait_exit(DRAIN_TIMEOUT + SLACK);
    let log = old.log();
    let successor: Option<u32> = log
        .lines()
        .find(|l| l.contains("SIGUSR2 started the new process"))
        .and_then(|l| l.split_whitespace().find_map(|t| t.strip_prefix("pid=")))
        .and_then(|pid| pid.parse().ok());
    // The successor is not the test's child: end it by its pid at the end,
    // whatever happens.
    struct EndsAtDrop(Option<u32>);
    impl Drop for EndsAtDrop {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            }
        }
    }
    let _successor = EndsAtDrop(successor);
    assert!(successor.is_some(), "{log}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(log.contains("upgrade: serving; the old process drains"), "{log}");

    // The kept-alive connection of the old process was closed at its end;
    // the address is served by the successor.
    assert_eq!(get(addr, "/after").status, 200);
    assert!(socket.exists(), "the successor offers its sockets in turn");
}
