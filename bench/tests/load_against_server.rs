//! End to end: the built `shardgate-load` binary against a small real
//! HTTP/1.1 keep-alive server started here on 127.0.0.1:0 (std threads).
//!
//! Assertions are on counts that must add up, never on timing: this box is
//! shared and slow runs are not failures.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a run may take before the test calls it hung: the runs below
/// ask for about a second, the tool's own drain bound adds at most 2 s.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// What the test server answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 to everything, alternating Content-Length and chunked bodies so
    /// both framings run end to end.
    AllOk,
    /// Every third response is a 500.
    SomeErrors,
}

/// Start the server; it lives until the test process exits.
fn server(behaviour: Behaviour) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || serve_connection(stream, behaviour, &counter));
        }
    });
    (addr, served)
}

/// Keep-alive loop: read a request head (and skip a Content-Length body),
/// answer, repeat until the client closes or asks to close.
fn serve_connection(mut s: TcpStream, behaviour: Behaviour, served: &AtomicU64) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let body_len: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + body_len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + body_len);
        let close = head.contains("\r\nconnection: close");

        let n = served.fetch_add(1, Ordering::Relaxed);
        let status = match behaviour {
            Behaviour::SomeErrors if n % 3 == 0 => "500 Internal Server Error",
            _ => "200 OK",
        };
        let conn = if close { "Connection: close\r\n" } else { "" };
        let reply = if n % 2 == 0 {
            format!("HTTP/1.1 {status}\r\n{conn}Content-Length: 5\r\n\r\nhello")
        } else {
            format!(
                "HTTP/1.1 {status}\r\n{conn}Transfer-Encoding: chunked\r\n\r\n\
                 2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
            )
        };
        if s.write_all(reply.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Run the binary with `args`, bounded by `RUN_LIMIT`; return its JSON.
fn run_load(args: &[&str]) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardgate-load"))
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            // Only our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!("shardgate-load did not stop within {RUN_LIMIT:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"))
}

fn n(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_u64().unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

/// The invariants every run must satisfy, whatever the server did.
fn assert_counts_add_up(v: &serde_json::Value) {
    let errors: u64 = ["connect", "timeout", "status", "protocol", "io"].iter().map(|k| n(v, &["errors", k])).sum();
    assert_eq!(n(v, &["errors", "total"]), errors, "{v}");
    assert_eq!(n(v, &["requests"]), n(v, &["ok"]) + errors, "{v}");
    // Every complete response (ok or wrong status) has a latency and a
    // status code; failures have neither.
    let by_status: u64 = v["status_codes"].as_object().unwrap().values().map(|c| c.as_u64().unwrap()).sum();
    let complete = n(v, &["ok"]) + n(v, &["errors", "status"]);
    assert_eq!(by_status, complete, "{v}");
    assert_eq!(n(v, &["latency_us", "count"]), complete, "{v}");
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/bench")
}

#[test]
fn closed_loop_keep_alive_all_ok() {
    let (addr, served) = server(Behaviour::AllOk);
    let v = run_load(&["-t", "2", "-c", "4", "-d", "1s", "--warmup", "200ms", &url(addr)]);
    assert_counts_add_up(&v);
    assert!(n(&v, &["requests"]) > 0, "{v}");
    assert_eq!(n(&v, &["requests"]), n(&v, &["ok"]), "{v}");
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    // Warmup requests reached the server but were not counted.
    assert!(served.load(Ordering::Relaxed) >= n(&v, &["requests"]));
    assert!(n(&v, &["bytes_read"]) > 0);
    assert_eq!(v["mode"], "closed");
    assert_eq!(v["threads"], 2);
    assert_eq!(v["connections"], 4);
}

#[test]
fn closed_loop_counts_wrong_status_as_errors() {
    let (addr, _) = server(Behaviour::SomeErrors);
    let v = run_load(&["-c", "2", "-d", "1s", "--warmup", "0s", &url(addr)]);
    assert_counts_add_up(&v);
    let status_errors = n(&v, &["errors", "status"]);
    assert!(status_errors > 0, "{v}");
    assert!(n(&v, &["ok"]) > 0, "{v}");
    assert_eq!(n(&v, &["requests"]), n(&v, &["ok"]) + status_errors, "{v}");
    assert_eq!(n(&v, &["status_codes", "500"]), status_errors, "{v}");
    assert_eq!(v["error_samples"]["status"], "status 500");
}

#[test]
fn expect_status_flips_what_counts_as_ok() {
    let (addr, _) = server(Behaviour::SomeErrors);
    let v = run_load(&["-c", "1", "-d", "500ms", "--warmup", "0s", "--expect-status", "500", &url(addr)]);
    assert_counts_add_up(&v);
    assert_eq!(n(&v, &["ok"]), n(&v, &["status_codes", "500"]), "{v}");
    assert_eq!(n(&v, &["errors", "status"]), n(&v, &["status_codes", "200"]), "{v}");
}

#[test]
fn open_loop_with_new_connections_and_body() {
    let (addr, _) = server(Behaviour::AllOk);
    let v = run_load(&[
        "-c",
        "2",
        "-R",
        "200",
        "--new-conn",
        "-m",
        "POST",
        "--body-size",
        "100",
        "-H",
        "X-Test: 1",
        "-d",
        "1s",
        "--warmup",
        "0s",
        &url(addr),
    ]);
    assert_counts_add_up(&v);
    assert!(n(&v, &["requests"]) > 0, "{v}");
    assert_eq!(n(&v, &["errors", "total"]), 0, "{v}");
    assert_eq!(v["mode"], "open");
    assert_eq!(v["rate"], 200.0);
    assert_eq!(v["new_conn"], true);
    assert_eq!(v["method"], "POST");
}

#[test]
fn refused_connections_are_connect_errors_and_the_run_still_ends() {
    // Bind and drop: a loopback port with nobody listening.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let v = run_load(&["-c", "1", "-d", "300ms", "--warmup", "0s", &url(addr)]);
    assert_counts_add_up(&v);
    assert!(n(&v, &["errors", "connect"]) > 0, "{v}");
    assert_eq!(n(&v, &["ok"]), 0, "{v}");
}
