//! Pooled upstream connections: a connection the upstream closed, or that
//! carries bytes nobody asked for, is never handed to the next request.
//!
//! Upstreams close idle keep-alive connections on their own timers (and some
//! say `408` first); some send bytes after a response ended (a body on a
//! HEAD/204/304 answer, an unsolicited second response). Either must cost
//! nothing: every request arrives exactly once, and no client ever reads
//! another client's bytes.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::{pattern, sha256_hex, Client, ProxyConfig, Reply, Upstream};

/// Answers `METHOD TARGET LEN SHA256` of what it received.
fn receipt(req: &crate::harness::upstream::Request) -> Reply {
    Reply::ok(format!("{} {} {} {}", req.method, req.target, req.body_len, req.body_sha256))
}

fn expect_receipt(resp: &crate::harness::Response, method: &str, target: &str, body: &[u8]) {
    assert_eq!(resp.status, 200, "{method} {target}: {}", resp.text());
    assert_eq!(resp.text(), format!("{method} {target} {} {}", body.len(), sha256_hex(body)), "{method} {target}");
}

/// Every kind of request, each after a pause long enough for the upstream
/// to have closed the pooled connection (it closes ~50 ms after a response).
fn every_kind_after_a_pause(client: &mut Client, round: usize, pause: Duration) {
    let small = format!("small body {round}").into_bytes();
    let mut large = Vec::new();
    pattern::for_each_piece(1024 * 1024, |p| large.extend_from_slice(p));

    std::thread::sleep(pause);
    let target = format!("/r{round}/get");
    let resp = client.get(&target);
    expect_receipt(&resp, "GET", &target, b"");

    std::thread::sleep(pause);
    let target = format!("/r{round}/post");
    let mut raw = format!("POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", small.len()).into_bytes();
    raw.extend_from_slice(&small);
    expect_receipt(&client.request(&raw), "POST", &target, &small);

    std::thread::sleep(pause);
    let target = format!("/r{round}/continue");
    client.send(
        format!("POST {target} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", small.len())
            .as_bytes(),
    );
    let interim = client.read_any_response();
    assert_eq!(interim.status, 100, "100 Continue first");
    client.send(&small);
    expect_receipt(&client.read_response(), "POST", &target, &small);

    std::thread::sleep(pause);
    let target = format!("/r{round}/large");
    let mut raw = format!("POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", large.len()).into_bytes();
    raw.extend_from_slice(&large);
    expect_receipt(&client.request(&raw), "POST", &target, &large);

    std::thread::sleep(pause);
    let target = format!("/r{round}/chunked");
    let mut raw = format!("POST {target} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    raw.extend_from_slice(format!("{:x}\r\n", small.len()).as_bytes());
    raw.extend_from_slice(&small);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    expect_receipt(&client.request(&raw), "POST", &target, &small);
}

fn assert_each_arrived_once(upstream: &Upstream, expected: usize) {
    let requests = upstream.requests();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        *seen.entry(format!("{} {}", r.method, r.target)).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "requests that arrived more than once: {twice:?}");
    assert_eq!(requests.len(), expected, "every request arrived");
}

#[test]
fn requests_after_the_upstream_closed_its_idle_connections_arrive_exactly_once() {
    const ROUNDS: usize = 50;
    let upstream = Upstream::builder().close_idle_after(Duration::from_millis(50)).start(receipt);
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    for round in 0..ROUNDS {
        every_kind_after_a_pause(&mut client, round, Duration::from_millis(80));
    }
    assert_each_arrived_once(&upstream, ROUNDS * 5);
}

#[test]
fn a_408_an_idle_upstream_sent_before_closing_never_answers_the_next_request() {
    const ROUNDS: usize = 10;
    let upstream = Upstream::builder()
        .close_idle_after(Duration::from_millis(50))
        .idle_goodbye(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .start(receipt);
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    for round in 0..ROUNDS {
        every_kind_after_a_pause(&mut client, round, Duration::from_millis(120));
    }
    assert_each_arrived_once(&upstream, ROUNDS * 5);
}

/// What client B gets after client A's exchange left `stray` bytes on the
/// upstream connection (sent 20 ms after A's response ended).
fn next_client_after_stray_bytes(method: &str, first: &[u8], stray: &[u8]) {
    let first = first.to_vec();
    let stray = stray.to_vec();
    let upstream = Upstream::start(move |req| match req.target.as_str() {
        "/a" => Reply::RawThenLater { first: first.clone(), delay: Duration::from_millis(20), later: stray.clone() },
        _ => Reply::ok(format!("for B: {}", req.target)).with_header("Set-Cookie", "session=B"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let mut a = Client::connect(proxy.addr());
    a.send(format!("{method} /a HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let resp = if method == "HEAD" { a.read_head_response() } else { a.read_response() };
    assert!(resp.status < 400, "A's own answer: {}", resp.status);
    // The stray bytes have arrived at the proxy before B asks.
    std::thread::sleep(Duration::from_millis(200));

    for i in 0..3 {
        let mut b = Client::connect(proxy.addr());
        let resp = b.get(&format!("/account{i}"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("for B: /account{i}"), "B got its own answer, not A's stray bytes");
        assert_eq!(resp.header_all("set-cookie"), ["session=B"], "never A's cookie");
    }
}

const STRAY_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=A\r\nContent-Length: 6\r\n\r\nstolen";

#[test]
fn a_body_sent_after_a_head_response_never_reaches_the_next_client() {
    next_client_after_stray_bytes("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", b"stolen");
    next_client_after_stray_bytes("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", STRAY_RESPONSE);
}

#[test]
fn a_body_sent_after_a_204_or_304_never_reaches_the_next_client() {
    next_client_after_stray_bytes("GET", b"HTTP/1.1 204 No Content\r\n\r\n", STRAY_RESPONSE);
    next_client_after_stray_bytes("GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", STRAY_RESPONSE);
}

#[test]
fn an_unsolicited_second_response_never_reaches_the_next_client() {
    next_client_after_stray_bytes("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", STRAY_RESPONSE);
}
