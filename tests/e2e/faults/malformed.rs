//! Responses the proxy must refuse (malformed, oversized) and bytes it
//! must never pass on (stray bytes after a response): 502, and the
//! upstream connection that carried them is dropped, never pooled.

use std::time::Duration;

use crate::harness::{Client, ProxyConfig, Reply, Upstream};

/// For each `(target, reply)`: `GET target` gets 502 naming a reason, the
/// next request on the same client connection gets its own answer, and
/// it travels on a new upstream connection.
fn each_gets_502_and_its_connection_is_dropped(cases: Vec<(&'static str, Reply)>) {
    let replies = cases.clone();
    let upstream = Upstream::start(move |req| {
        replies.iter().find(|(target, _)| *target == req.target).map_or_else(|| Reply::ok("fine"), |(_, r)| r.clone())
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());

    let mut failures = Vec::new();
    for (bad, _) in &cases {
        let response = client.get(bad);
        if response.status != 502 || response.text().is_empty() {
            failures.push(format!("{bad}: {} {:?}", response.status, response.text()));
        }
        let after = client.get("/fine");
        assert_eq!((after.status, after.text().as_str()), (200, "fine"), "the request after {bad}");

        let heads = upstream.heads();
        let bad_conn =
            heads.iter().find(|h| h.target == *bad).expect("the bad request reached the upstream").connection;
        let next_conn = heads.last().expect("the next request").connection;
        if bad_conn == next_conn {
            failures.push(format!("{bad}: its upstream connection was reused"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n  {}", failures.len(), cases.len(), failures.join("\n  "));
}

#[test]
fn a_malformed_response_gets_502_and_its_connection_is_dropped() {
    each_gets_502_and_its_connection_is_dropped(vec![
        ("/not-http", Reply::raw("SSH-2.0-OpenSSH_9.2\r\n\r\n")),
        ("/binary", Reply::raw(vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, b'\r', b'\n', b'\r', b'\n'])),
        ("/no-version", Reply::raw("200 OK\r\nContent-Length: 2\r\n\r\nok")),
        ("/http2", Reply::raw("HTTP/2 200\r\nContent-Length: 2\r\n\r\nok")),
        ("/no-colon", Reply::raw("HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\nok")),
        ("/space-in-name", Reply::raw("HTTP/1.1 200 OK\r\nContent Length: 2\r\n\r\nok")),
        ("/space-before-colon", Reply::raw("HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok")),
        ("/bad-length", Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok")),
        ("/negative-length", Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok")),
        ("/lf-in-name", Reply::raw("HTTP/1.1 200 OK\r\nX\nContent-Length: 2\r\n\r\nok")),
        ("/nul-in-value", Reply::raw("HTTP/1.1 200 OK\r\nX-Y: a\0b\r\nContent-Length: 2\r\n\r\nok")),
        ("/unknown-coding", Reply::raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok")),
    ]);
}

#[test]
fn an_oversized_response_head_gets_502_and_its_connection_is_dropped() {
    // The proxy's response head limit is 16 KiB.
    let big_field = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok", "b".repeat(20 * 1024));
    let mut many_fields = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..2000 {
        many_fields.push_str(&format!("X-F{i}: {i}\r\n"));
    }
    many_fields.push_str("Content-Length: 2\r\n\r\nok");
    // Header lines that never end (1 MiB, no blank line).
    let endless = format!("HTTP/1.1 200 OK\r\n{}", "X-More: more\r\n".repeat(80_000));
    each_gets_502_and_its_connection_is_dropped(vec![
        ("/big-field", Reply::raw(big_field)),
        ("/many-fields", Reply::raw(many_fields)),
        ("/endless-head", Reply::raw(endless)),
    ]);
}

const STRAY: &[u8] = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=A\r\nContent-Length: 6\r\n\r\nstolen";

#[test]
fn stray_bytes_right_after_a_response_never_reach_the_next_request() {
    // The stray bytes arrive in the same write (usually the same segment
    // and the same read) as the response they follow.
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/a" => Reply::ok("for A").then_stray(STRAY),
        "/a-chunked" => Reply::chunked(&[b"for A"]).then_stray(STRAY),
        "/a-head" => Reply::ok("for A").then_stray(b"for A"),
        _ => Reply::ok(format!("for B: {}", req.target)).with_header("Set-Cookie", "session=B"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    for first in ["/a", "/a-chunked", "/a-head"] {
        let mut a = Client::connect(proxy.addr());
        if first == "/a-head" {
            a.send(b"HEAD /a-head HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(a.read_head_response().status, 200);
        } else {
            assert_eq!(a.get(first).text(), "for A", "A's own answer");
        }
        std::thread::sleep(Duration::from_millis(100));
        // The next request on A's connection, then on other connections.
        let mut clients = [a, Client::connect(proxy.addr()), Client::connect(proxy.addr())];
        for (i, client) in clients.iter_mut().enumerate() {
            let target = format!("/account{i}");
            let response = client.get(&target);
            assert_eq!(response.status, 200, "after {first}");
            assert_eq!(response.text(), format!("for B: {target}"), "after {first}: stray bytes answered a request");
            assert_eq!(response.header_all("set-cookie"), ["session=B"], "after {first}: never A's cookie");
        }
    }
    // Every request arrived once.
    let targets: Vec<String> = upstream.heads().into_iter().map(|h| h.target).collect();
    assert_eq!(targets.len(), 12, "{targets:?}");
}

#[test]
fn a_malformed_chunk_mid_body_gets_502_or_a_truncated_body_and_the_upstream_connection_is_dropped() {
    const BROKEN: &str = "zz\r\nworld\r\n0\r\n\r\n";
    let upstream = Upstream::start(|req| {
        let head_and_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
        match req.target.as_str() {
            // Broken in the bytes that come with the head: nothing went to
            // the client yet.
            "/with-head" => Reply::raw(format!("{head_and_chunk}{BROKEN}")),
            // Broken after the head and a chunk were forwarded.
            "/later" => Reply::RawThenLater {
                first: head_and_chunk.into(),
                delay: Duration::from_millis(200),
                later: BROKEN.into(),
            },
            _ => Reply::ok("fine"),
        }
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    let mut client = Client::connect(proxy.addr());
    let response = client.get("/with-head");
    assert_eq!(response.status, 502, "{}", response.text());
    assert!(response.text().contains("chunk"), "the 502 names the reason: {}", response.text());
    assert_eq!(client.get("/fine").text(), "fine", "the client connection is still in step");
    assert_eq!(upstream.heads().last().unwrap().connection, 1, "the broken upstream connection was reused");

    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    let (bytes, closed) = client.read_until_close(Duration::from_secs(10));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(closed, "the client connection stayed open after a broken response body: {text:?}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    let body = &bytes[text.find("\r\n\r\n").unwrap() + 4..];
    match super::chunked_body(body) {
        super::ChunkedBody::Truncated(data) => assert_eq!(data, b"hello"),
        other => panic!("the client got {other:?} for a body broken mid-way: {text:?}"),
    }
    assert_eq!(crate::harness::get(proxy.addr(), "/fine").text(), "fine");
    let heads = upstream.heads();
    let broken = heads.iter().find(|h| h.target == "/later").unwrap().connection;
    assert_ne!(heads.last().unwrap().connection, broken, "the broken upstream connection was reused");
}
