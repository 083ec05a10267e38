//! An upstream killed in the middle of a response, or reset before it:
//! the client can tell its response is short, and nothing that may have
//! been processed is sent twice.
//!
//! Each failure happens on a REUSED pooled connection (a first request
//! warms it), the one case where the proxy's retry rule could send a
//! request again: it must not, once response bytes went downstream, nor
//! for a POST.

use std::time::Duration;

use super::{chunked_body, split_response, targets, ChunkedBody};
use crate::harness::pattern::Verifier;
use crate::harness::{get, AfterCut, Client, ProxyConfig, Reply, Upstream};

/// The bytes the client got for `GET /killed` (sent after `GET /warm` on
/// the same client connection) and the upstream, which answers `/killed`
/// with `reply`. Asserts the client connection was closed and the request
/// was not retried.
fn after_a_kill(reply: Reply) -> (String, Vec<u8>) {
    let upstream = Upstream::start(move |req| match req.target.as_str() {
        "/killed" => reply.clone(),
        _ => Reply::ok("warm"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/warm").text(), "warm");

    client.send(b"GET /killed HTTP/1.1\r\nHost: t\r\n\r\n");
    let (bytes, closed) = client.read_until_close(Duration::from_secs(10));
    assert!(closed, "the proxy left the client connection open after a truncated response");
    assert_eq!(targets(&upstream), ["/warm", "/killed"], "sent once, on the pooled connection, never retried");
    assert_eq!(upstream.connections(), 1);
    // The proxy carries on, on a fresh upstream connection.
    assert_eq!(get(proxy.addr(), "/after").text(), "warm");
    split_response(&bytes)
}

const DECLARED: u64 = 1024 * 1024;
const SENT: usize = 200_000;

#[test]
fn an_upstream_killed_mid_content_length_body_leaves_the_client_short_and_is_not_retried() {
    let (head, body) = after_a_kill(Reply::pattern(DECLARED).cut_in_body(SENT, AfterCut::Close));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {DECLARED}")), "{head}");
    let mut verifier = Verifier::default();
    verifier.feed(&body);
    assert_eq!(verifier.len, SENT as u64, "exactly the bytes the upstream sent: short of the Content-Length");
    assert_eq!(verifier.first_mismatch, None);
}

#[test]
fn an_upstream_killed_mid_chunked_body_leaves_the_chunked_body_unterminated_and_is_not_retried() {
    let chunks: Vec<Vec<u8>> = (0..40u8).map(|i| vec![b'a' + i % 26; 4096]).collect();
    let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    // The head, then ten whole chunks and half of the eleventh.
    let sent = 10 * (4096 + "1000\r\n\r\n".len()) + 2000;
    let (head, body) = after_a_kill(Reply::chunked(&chunks).cut_in_body(sent, AfterCut::Close));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    match chunked_body(&body) {
        ChunkedBody::Complete(data) => panic!("a complete chunked body ({} bytes) for a killed upstream", data.len()),
        ChunkedBody::Truncated(data) => {
            assert!(data.len() >= 10 * 4096 && data.len() <= 10 * 4096 + 2000, "{} data bytes", data.len());
            let expected: Vec<u8> = chunks.concat();
            assert_eq!(data[..], expected[..data.len()], "the data the upstream sent, in order");
        }
        ChunkedBody::Invalid(why) => panic!("invalid chunked framing to the client: {why}"),
    }
}

#[test]
fn an_upstream_reset_mid_body_leaves_the_client_short_and_is_not_retried() {
    let (head, body) = after_a_kill(Reply::pattern(DECLARED).cut_in_body(SENT, AfterCut::Reset));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {DECLARED}")), "{head}");
    let mut verifier = Verifier::default();
    verifier.feed(&body);
    assert!(verifier.len <= SENT as u64, "{} body bytes: more than the upstream sent", verifier.len);
    assert!(verifier.len < DECLARED, "short of the Content-Length");
    assert_eq!(verifier.first_mismatch, None);
}

#[test]
fn a_post_reset_before_its_response_gets_502_and_is_never_sent_twice() {
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/pay" => Reply::Reset,
        _ => Reply::ok("warm"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/warm").text(), "warm");

    let response = client.request(b"POST /pay HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\namount=10");

    assert_eq!(response.status, 502, "{}", response.text());
    // Give a wrongful retry time to arrive before counting.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(targets(&upstream), ["/warm", "/pay"], "the POST reached the upstream once");
    let pay: Vec<_> = upstream.requests().into_iter().filter(|r| r.target == "/pay").collect();
    assert_eq!(pay.len(), 1);
    assert_eq!(pay[0].body, b"amount=10");
    assert_eq!(upstream.connections(), 1, "no second connection carried it again");
}

#[test]
fn an_upstream_reset_mid_close_delimited_body_never_gets_a_clean_chunked_end() {
    // A close-delimited body reaches an HTTP/1.1 client chunked; its end is
    // the upstream's FIN. A reset is not an end: the client must not be
    // told the body is complete.
    let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let (head, received) = after_a_kill(Reply::close_delimited(body.clone()).cut_in_body(100_000, AfterCut::Reset));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    match chunked_body(&received) {
        ChunkedBody::Complete(data) => {
            panic!("a reset upstream's body ended cleanly for the client ({} bytes)", data.len())
        }
        ChunkedBody::Truncated(data) => assert_eq!(data[..], body[..data.len()]),
        ChunkedBody::Invalid(why) => panic!("invalid chunked framing to the client: {why}"),
    }
}

#[test]
fn an_upstream_closing_mid_head_on_a_reused_connection_gets_502_and_is_not_retried() {
    // Response bytes arrived, so the request may have been processed: no
    // retry, even for a GET on a reused connection.
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/half-head" => Reply::ok("never whole").cut(25, AfterCut::Close),
        _ => Reply::ok("warm"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/warm").text(), "warm");

    let response = client.get("/half-head");

    assert_eq!(response.status, 502, "{}", response.text());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(targets(&upstream), ["/warm", "/half-head"], "not retried after response bytes arrived");
}

#[test]
fn a_get_reset_before_its_response_on_a_reused_connection_is_retried_once_on_a_fresh_one() {
    // Nothing came back and a GET may be repeated: one more try, on a new
    // connection; the upstream resets that one too, and that is the end.
    let upstream = Upstream::start(|req| match req.target.as_str() {
        "/flaky" => Reply::Reset,
        _ => Reply::ok("warm"),
    });
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/warm").text(), "warm");

    let response = client.get("/flaky");

    assert_eq!(response.status, 502, "{}", response.text());
    std::thread::sleep(Duration::from_millis(300));
    let heads = upstream.heads();
    let flaky: Vec<usize> = heads.iter().filter(|h| h.target == "/flaky").map(|h| h.connection).collect();
    assert_eq!(flaky, [0, 1], "tried on the pooled connection, then once on a fresh one");
}
