//! Graceful shutdown on SIGTERM/SIGINT: listeners close at once, in-flight
//! requests finish (bounded by drain_timeout), idle keep-alive connections
//! are closed, and the process exits 0.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn sigterm_lets_an_in_flight_request_finish_refuses_new_connections_and_exits_0() {
    let upstream = Upstream::start(|_| Reply::after(Duration::from_secs(3), Reply::ok("finished")));
    let mut proxy = ProxyConfig::new().drain_timeout("20s").everything_to(upstream.addr()).start();
    let addr = proxy.addr();

    let mut in_flight = Client::connect(addr);
    in_flight.send(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(eventually(SLACK, || upstream.heads_received() == 1), "the slow request never reached the upstream");
    proxy.signal("TERM");

    let refused = eventually(
        Duration::from_millis(1500),
        || matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused),
    );
    assert!(proxy.try_wait().is_none(), "the proxy exited before its in-flight request finished");
    assert!(refused, "new connections were still accepted after SIGTERM");

    let response = in_flight.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "finished");

    let status = proxy.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status {status:?}");
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_and_exits_0() {
    let upstream = Upstream::ok("ok");
    let mut proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut idle = Client::connect(proxy.addr());
    assert_eq!(idle.get("/").status, 200);

    proxy.signal("TERM");

    assert!(idle.wait_closed(SLACK), "idle connection left open after SIGTERM");
    let status = proxy.wait_exit(SLACK);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status {status:?}");
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let upstream = Upstream::ok("ok");
    let mut proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut idle = Client::connect(proxy.addr());
    assert_eq!(idle.get("/").status, 200);

    proxy.signal("INT");

    assert!(idle.wait_closed(SLACK), "idle connection left open after SIGINT");
    let status = proxy.wait_exit(SLACK);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status {status:?}");
}

#[test]
fn drain_timeout_bounds_how_long_shutdown_waits_for_in_flight_requests() {
    let upstream = Upstream::start(|_| Reply::after(Duration::from_secs(30), Reply::ok("never")));
    let mut proxy = ProxyConfig::new().drain_timeout("1s").everything_to(upstream.addr()).start();
    let mut stuck = Client::connect(proxy.addr());
    stuck.send(b"GET /stuck HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(eventually(SLACK, || upstream.heads_received() == 1));

    let signalled = Instant::now();
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(1) + SLACK);

    assert!(status.is_some(), "still running {:?} after SIGTERM with drain_timeout = 1s", signalled.elapsed());
    assert!(stuck.wait_closed(SLACK), "the stuck client connection was not closed");
}
