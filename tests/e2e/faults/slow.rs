//! Upstreams slower than a timeout: each timeout fires with its outcome,
//! in bounded time, and the upstream connection it gave up on is closed.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::upstream::Blackhole;
use crate::harness::{eventually, get, AfterCut, Client, Early, ProxyConfig, Reply, Route, Upstream, SLACK};

#[test]
fn an_upstream_that_never_accepts_gets_504_at_the_response_timeout() {
    // The kernel completes the handshake and takes the request; no process
    // ever reads it.
    let blackhole = Blackhole::silent();
    let proxy = ProxyConfig::new()
        .cluster_with("hung", &[blackhole.addr()], r#"response_timeout = "500ms""#)
        .route(Route::new("all").cluster("hung"))
        .start();

    let started = Instant::now();
    let response = get(proxy.addr(), "/");

    assert_eq!(response.status, 504, "{}", response.text());
    assert!(started.elapsed() >= Duration::from_millis(450), "before the response timeout: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_millis(500) + SLACK, "answered after {:?}", started.elapsed());
}

#[test]
fn a_response_head_that_stops_halfway_gets_504_at_the_response_timeout() {
    let upstream = Upstream::start(|req| match req.target.as_str() {
        // "HTTP/1.1 200 OK\r\nContent-" and then nothing, connection open.
        "/half" => Reply::ok("never whole").cut(25, AfterCut::Hang),
        _ => Reply::ok("fine"),
    });
    let proxy = ProxyConfig::new()
        .cluster_with("slow", &[upstream.addr()], r#"response_timeout = "500ms""#)
        .route(Route::new("all").cluster("slow"))
        .start();

    let started = Instant::now();
    let response = get(proxy.addr(), "/half");

    assert_eq!(response.status, 504, "{}", response.text());
    assert!(started.elapsed() < Duration::from_millis(500) + SLACK, "answered after {:?}", started.elapsed());
    assert!(eventually(SLACK, || upstream.connection_ended(0)), "the proxy kept the half-answered connection open");
    assert_eq!(get(proxy.addr(), "/next").text(), "fine");
    assert_eq!(upstream.heads().last().map(|h| h.connection), Some(1), "the next request on a new connection");
}

#[test]
fn a_response_body_later_than_the_body_timeout_is_cut_off() {
    let upstream = Upstream::start(|_| Reply::ok("late body").body_after(Duration::from_secs(20)));
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "500ms""#).everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /late HTTP/1.1\r\nHost: t\r\n\r\n");
    let started = Instant::now();
    let (bytes, closed) = client.read_until_close(Duration::from_secs(10));

    assert!(closed, "the proxy waited past the body timeout");
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK, "closed after {:?}", started.elapsed());
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("content-length: 9\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "the head and no body byte: {text:?}");
    assert!(eventually(SLACK, || upstream.connection_ended(0)), "the upstream connection was kept");
}

/// An upstream that stops taking the request body may still answer
/// (early 413, 401): once the body timeout finds it stuck, the response
/// timeout starts; when that runs out too, 504. The upstream learns at
/// once that the request was given up: its connection is reset, not
/// closed with a FIN that would wait behind the bytes it never read.
#[test]
fn an_upstream_that_stops_reading_the_request_body_gets_504_after_the_body_and_response_timeouts() {
    // Reads the head, then neither reads the body nor answers.
    let upstream = Upstream::builder().early(Early::ThenStopReading).start(|_| Reply::Silence);
    let proxy = ProxyConfig::new()
        .limits(r#"body_timeout = "500ms""#)
        .cluster_with("stuck", &[upstream.addr()], r#"response_timeout = "500ms""#)
        .route(Route::new("all").cluster("stuck"))
        .start();

    const LEN: usize = 64 * 1024 * 1024;
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ =
            writer.write_all(format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n").as_bytes());
        let piece = vec![b'u'; 64 * 1024];
        for _ in 0..LEN / piece.len() {
            if writer.write_all(&piece).is_err() {
                return;
            }
        }
    });
    assert!(eventually(SLACK, || upstream.heads_received() == 1), "the upload's head reached the upstream");
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut client = Client::over(Box::new(stream));
    let (bytes, closed) = client.read_until_close(Duration::from_secs(10));

    let took = started.elapsed();
    assert!(closed, "the proxy waited past both timeouts for an upstream that takes nothing");
    assert!(took < Duration::from_secs(1) + SLACK, "closed after {took:?}");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 504 "), "{text:?}");
    assert!(
        eventually(SLACK, || upstream.connection_ended(0)),
        "the upstream never saw its connection end: the close waits behind the bytes it did not read"
    );
    let _ = sender.join();
}
