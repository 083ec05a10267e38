//! Running under systemd (`Type=notify`, `packaging/shardgate.service`):
//! the proxy reports `READY=1` once every shard serves, `STOPPING=1` when
//! SIGTERM starts the drain, and `WATCHDOG=1` at half `WATCHDOG_USEC`. The
//! test plays the service manager: it binds the `NOTIFY_SOCKET` datagram
//! socket itself and reads what arrives.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::harness::proxy::{run_to_completion, runtime_args, shardgate};
use crate::harness::tempdir::TempDir;
use crate::harness::*;

/// The test's end of `NOTIFY_SOCKET`.
struct ServiceManager {
    socket: UnixDatagram,
    /// The value for `NOTIFY_SOCKET`.
    name: String,
    _dir: Option<TempDir>,
}

impl ServiceManager {
    /// A socket at a filesystem path, as systemd uses (`/run/systemd/notify`).
    fn at_path() -> ServiceManager {
        let dir = TempDir::new();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        ServiceManager { socket, name: path.display().to_string(), _dir: Some(dir) }
    }

    /// A socket in Linux's abstract namespace, written `@name`.
    fn abstract_name() -> ServiceManager {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("shardgate-e2e-notify-{}-{:?}", std::process::id(), std::thread::current().id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        ServiceManager { socket, name: format!("@{name}"), _dir: None }
    }

    /// The next message, if one arrives within `within`.
    fn next(&self, within: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(within.max(Duration::from_millis(1)))).unwrap();
        let mut buf = [0u8; 512];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Every message arriving within `within`.
    fn collect(&self, within: Duration) -> Vec<String> {
        let until = Instant::now() + within;
        let mut messages = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(m) => messages.push(m),
                None => break,
            }
        }
        messages
    }

    /// Waits for a message containing `line` (as one of its lines) and
    /// returns the messages seen before it.
    fn wait_for(&self, line: &str, within: Duration) -> Result<Vec<String>, Vec<String>> {
        let until = Instant::now() + within;
        let mut before = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(m) if m.lines().any(|l| l == line) => return Ok(before),
                Some(m) => before.push(m),
                None => break,
            }
        }
        Err(before)
    }
}

fn config() -> ProxyConfig {
    ProxyConfig::new().shards(2).drain_timeout("5s").route(Route::new("hello").direct(200, "hello\n"))
}

fn start(manager: &ServiceManager, watchdog_usec: Option<&str>) -> Proxy {
    Proxy::run_with_env(
        &config(),
        &[],
        &[("NOTIFY_SOCKET", Some(&manager.name)), ("WATCHDOG_USEC", watchdog_usec), ("WATCHDOG_PID", None)],
    )
}

fn hello(proxy: &Proxy) -> Response {
    Client::connect(proxy.addr()).request(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

#[test]
fn ready_is_sent_once_the_listener_serves_and_stopping_on_sigterm() {
    let manager = ServiceManager::at_path();
    let mut proxy = start(&manager, None);

    let before = manager.wait_for("READY=1", SLACK).unwrap_or_else(|seen| panic!("no READY=1; got {seen:?}"));
    assert!(before.is_empty(), "messages before READY=1: {before:?}");
    // Ready means served: the first connection after it gets its answer.
    let response = hello(&proxy);
    assert_eq!((response.status, response.text().as_str()), (200, "hello\n"));
    assert_eq!(manager.collect(Duration::from_millis(300)), Vec::<String>::new(), "READY=1 twice, or a stray message");

    proxy.signal("TERM");
    let message = manager.next(SLACK).expect("no message after SIGTERM");
    assert!(message.lines().any(|l| l == "STOPPING=1"), "{message:?}");
    assert_eq!(proxy.wait_exit(SLACK).and_then(|s| s.code()), Some(0));
}

#[test]
fn an_abstract_namespace_notify_socket_gets_ready() {
    let manager = ServiceManager::abstract_name();
    let proxy = start(&manager, None);
    manager.wait_for("READY=1", SLACK).unwrap_or_else(|seen| panic!("no READY=1; got {seen:?}"));
    assert_eq!(hello(&proxy).status, 200);
}

#[test]
fn watchdog_pings_arrive_at_half_the_interval_while_serving() {
    let manager = ServiceManager::at_path();
    // 400 ms: a ping every 200 ms.
    let mut proxy = start(&manager, Some("400000"));
    manager.wait_for("READY=1", SLACK).unwrap_or_else(|seen| panic!("no READY=1; got {seen:?}"));

    let window = Duration::from_secs(2);
    let messages = manager.collect(window);
    let pings = messages.iter().filter(|m| m.as_str() == "WATCHDOG=1").count();
    assert!(messages.iter().all(|m| m == "WATCHDOG=1"), "unexpected messages: {messages:?}");
    // 2 s / 200 ms = 10; a loaded machine may wake late, never early.
    assert!((6..=12).contains(&pings), "{pings} pings in {window:?}: {messages:?}");

    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(SLACK).and_then(|s| s.code()), Some(0));
}

#[test]
fn without_a_watchdog_no_pings_are_sent() {
    let manager = ServiceManager::at_path();
    let _proxy = start(&manager, None);
    manager.wait_for("READY=1", SLACK).unwrap_or_else(|seen| panic!("no READY=1; got {seen:?}"));
    assert_eq!(manager.collect(Duration::from_millis(700)), Vec::<String>::new());
}

#[test]
fn a_proxy_that_fails_to_start_never_reports_ready() {
    let manager = ServiceManager::at_path();
    // The port is taken by a socket without SO_REUSEPORT: the bind fails.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let toml = config().to_toml().replacen(
        "name = \"main\"\nlisten = \"127.0.0.1:0\"",
        &format!("name = \"main\"\nlisten = \"{}\"", busy.local_addr().unwrap()),
        1,
    );
    assert!(toml.contains(&busy.local_addr().unwrap().to_string()), "{toml}");
    let dir = TempDir::new();
    let file = dir.write("shardgate.toml", &toml);
    let mut command = shardgate();
    command.args(["run", "-c", &file.display().to_string()]).args(runtime_args()).env("NOTIFY_SOCKET", &manager.name);
    let output = run_to_completion(command, b"", Duration::from_secs(20));

    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(manager.collect(Duration::from_millis(200)), Vec::<String>::new());
}

#[test]
fn without_notify_socket_or_with_a_dangling_one_the_proxy_serves_and_stops() {
    let dir = TempDir::new();
    let dangling = dir.path().join("nobody-listens.sock").display().to_string();
    for notify_socket in [None, Some(dangling.as_str())] {
        let mut proxy =
            Proxy::run_with_env(&config(), &[], &[("NOTIFY_SOCKET", notify_socket), ("WATCHDOG_USEC", Some("200000"))]);
        assert_eq!(hello(&proxy).status, 200, "NOTIFY_SOCKET={notify_socket:?}");
        std::thread::sleep(Duration::from_millis(300));
        proxy.signal("TERM");
        assert_eq!(proxy.wait_exit(SLACK).and_then(|s| s.code()), Some(0), "NOTIFY_SOCKET={notify_socket:?}");
    }
}
