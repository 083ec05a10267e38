//! Defects the fuzz targets found (`docs/fuzzing.md`), end to end: the
//! real proxy meets the input that broke a parser, and the connection
//! after it still works.

use crate::harness::client::try_send_raw;
use crate::harness::*;

#[test]
fn an_upstream_status_line_without_a_reason_or_with_an_obs_text_reason_is_relayed_as_sent() {
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/no-reason" => Reply::raw("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
        "/obs-text" => Reply::raw(&b"HTTP/1.1 200 Caf\xe9\r\nContent-Length: 2\r\n\r\nok"[..]),
        _ => Reply::ok("fine"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    for (path, status_line) in [("/no-reason", &b"HTTP/1.1 200 \r\n"[..]), ("/obs-text", b"HTTP/1.1 200 Caf\xe9\r\n")] {
        let response = client.get(path);
        assert_eq!((response.status, response.text().as_str()), (200, "ok"), "{path}");
        assert!(
            response.raw_head.starts_with(status_line),
            "{path}: status line {:?}",
            String::from_utf8_lossy(&response.raw_head)
        );
    }
    let after = client.get("/fine");
    assert_eq!((after.status, after.text().as_str()), (200, "fine"));
}

#[test]
fn a_request_trailer_field_with_a_long_name_is_dropped_and_the_request_proxied() {
    let upstream = Upstream::body_echo();
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    let response = client.request(
        b"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\nX-A-Trailer-Name-Over-Twenty-Bytes: 1\r\n\r\n",
    );
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    let after = client.get("/again");
    assert_eq!(after.status, 200, "the connection after it");
    let request = upstream.requests().into_iter().find(|r| r.target == "/up").expect("the upload reached upstream");
    assert_eq!(request.body, b"hello");
}

#[test]
fn chunk_extensions_that_break_their_grammar_are_refused_before_the_upstream() {
    let upstream = Upstream::ok("must not be reached");
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    const HEAD: &str = "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    for size_line in ["5 garbage", "5 ", "5;a=\"b", "5;=x", "5;a=b "] {
        let raw = format!("{HEAD}{size_line}\r\nhello\r\n0\r\n\r\n");
        let response = try_send_raw(proxy.addr(), raw.as_bytes()).expect("a response");
        assert_eq!(response.status, 400, "{size_line:?}: {}", response.text());
        assert!(response.text().contains("chunk extension"), "{size_line:?}: {}", response.text());
    }
    // Well-formed extensions pass.
    let response = try_send_raw(proxy.addr(), format!("{HEAD}5 ; a = \"x y\";b\r\nhello\r\n0\r\n\r\n").as_bytes())
        .expect("a response");
    assert_eq!(response.status, 200);
    assert_eq!(upstream.requests().len(), 1, "only the well-formed body went upstream");
}
