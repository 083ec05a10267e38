//! End to end: the built `shardgate-load` binary against a small real
//! HTTP/1.1 keep-alive server started here on 127.0.0.1:0 (std threads).
//!
//! Assertions are on counts that must add up, never on timing: this box is
//! shared and slow runs are not failures.

mod common;

use common::{assert_counts_add_up, n, run_load};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
