//! The relay: both directions at once once a request is sent upstream, and
//! every write to a client bounded by time without progress.
//!
//! An upstream may answer while it still reads the body (echo servers,
//! streaming APIs) or answer early and stop reading (413, 401). A client may
//! read slowly, or not at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{eventually, get, pattern, Client, Early, Proxy, ProxyConfig, Reply, Route, Upstream, SLACK};

/// Reads one response whose body is the echoed request head followed by
/// the echoed body; returns (status, body length after the echoed head,
/// its sha256).
fn read_echo(stream: &mut TcpStream) -> (u16, u64, String) {
    use sha2::{Digest, Sha256};
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let (status, content_length, body_start) = loop {
        let n = stream.read(&mut chunk).expect("read response");
        assert!(n > 0, "the proxy closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let status = head[9..12].parse().expect("status");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map(|v| v.trim().parse::<u64>().expect("length"));
            break (status, length, end + 4);
        }
    };
    let Some(total) = content_length else { return (status, 0, String::new()) };
    // The echoed head ends with the first CRLFCRLF of the body.
    let mut body = buf.split_off(body_start);
    let mut seen = body.len() as u64;
    while !body.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).expect("read echoed head");
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
        seen += n as u64;
    }
    let echoed_head = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut hasher = Sha256::new();
    hasher.update(&body[echoed_head..]);
    let mut len = (body.len() - echoed_head) as u64;
    while seen < total {
        let want = ((total - seen) as usize).min(chunk.len());
        let n = stream.read(&mut chunk[..want]).expect("read echoed body");
        assert!(n > 0, "the proxy closed after {seen} of {total} bytes");
        hasher.update(&chunk[..n]);
        seen += n as u64;
        len += n as u64;
    }
    (status, len, crate::harness::hex(&hasher.finalize()))
}

fn pattern_sha256(len: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    pattern::for_each_piece(len, |p| hasher.update(p));
    crate::harness::hex(&hasher.finalize())
}

#[test]
fn a_64_mib_upload_to_an_upstream_that_answers_while_it_reads_completes() {
    const LEN: u64 = 64 * 1024 * 1024;
    let echo = Proxy::echo();
    let proxy = Proxy::proxy_command(&[echo.addr()], &["--body-timeout", "3s"]);
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n").as_bytes())?;
        let mut result = Ok(());
        pattern::for_each_piece(LEN, |piece| {
            if result.is_ok() {
                result = writer.write_all(piece);
            }
        });
        result
    });
    let (status, len, sha) = read_echo(&mut stream);
    sender.join().unwrap().expect("the whole body was sent");
    assert_eq!(status, 200);
    assert_eq!(len, LEN, "the whole body came back");
    assert_eq!(sha, pattern_sha256(LEN));
}

/// Sends a large body in the background (ignoring write errors: the
/// proxy may stop reading) and returns the response the client reads.
fn upload_and_read(proxy: &Proxy, len: u64) -> (crate::harness::Response, std::thread::JoinHandle<()>) {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ =
            writer.write_all(format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n").as_bytes());
        let mut ok = true;
        pattern::for_each_piece(len, |piece| {
            if ok {
                ok = writer.write_all(piece).is_ok();
            }
        });
    });
    let mut client = Client::over(Box::new(stream));
    let response = client.read_response_then_close().unwrap_or_else(|e| panic!("{e}"));
    (response, sender)
}

#[test]
fn an_early_413_from_an_upstream_that_then_closes_reaches_the_client() {
    let upstream = Upstream::builder()
        .early(Early::ThenClose)
        .start(|_| Reply::status(413, "too large for me").with_header("Connection", "close"));
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "3s""#).everything_to(upstream.addr()).start();
    let (response, sender) = upload_and_read(&proxy, 16 * 1024 * 1024);
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(response.text(), "too large for me");
    assert!(response.closed, "the rest of the body is not read: the connection closes");
    drop(sender);
}

#[test]
fn an_early_401_from_an_upstream_that_stops_reading_reaches_the_client() {
    let upstream = Upstream::builder().early(Early::ThenStopReading).start(|_| Reply::status(401, "who are you"));
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "3s""#).everything_to(upstream.addr()).start();
    let started = Instant::now();
    let (response, sender) = upload_and_read(&proxy, 16 * 1024 * 1024);
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.text(), "who are you");
    assert!(response.closed);
    assert!(started.elapsed() < Duration::from_secs(3), "not after the body timeout: {:?}", started.elapsed());
    // That upstream connection is not reused: the next request opens another.
    let next = Client::connect(proxy.addr()).get("/next");
    assert_eq!(next.status, 401);
    assert_eq!(upstream.connections(), 2);
    drop(sender);
}

/// A client with a small receive buffer that reads `piece` bytes every
/// `every`: steady, but slower than one relay buffer per body timeout.
fn read_slowly(stream: &mut TcpStream, piece: usize, every: Duration, within: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; piece];
    let deadline = Instant::now() + within;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return (out, true),
        }
        std::thread::sleep(every);
    }
    (out, false)
}

fn small_receive_buffer_client(addr: std::net::SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

#[test]
fn a_steady_slow_reader_gets_the_whole_response() {
    // 64 KiB per 100 ms (~600 KB/s): once the kernel's buffers are full
    // (a few MiB on loopback), one 256 KiB relay write takes ~0.45 s, longer
    // than the 300 ms body timeout, but bytes move all the time.
    const LEN: u64 = 8 * 1024 * 1024;
    let upstream = Upstream::start(|_| Reply::pattern(LEN));
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "300ms""#).everything_to(upstream.addr()).start();
    let mut stream = small_receive_buffer_client(proxy.addr());
    stream.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let (bytes, _) = read_slowly(&mut stream, 64 * 1024, Duration::from_millis(100), Duration::from_secs(60));
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    assert!(bytes.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&bytes[..head_end]));
    assert_eq!((bytes.len() - head_end) as u64, LEN, "the whole body arrived");
    assert_eq!(crate::harness::sha256_hex(&bytes[head_end..]), pattern_sha256(LEN));
}

/// A client that pipelines requests and never reads a byte.
fn pipeline_and_never_read(proxy: &Proxy, request: &'static [u8]) -> std::thread::JoinHandle<()> {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    std::thread::spawn(move || {
        let mut stream = stream;
        for _ in 0..100_000 {
            if stream.write_all(request).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    })
}

fn active(proxy: &Proxy) -> u64 {
    proxy.stats().iter().map(|s| s.active).sum()
}

/// A client that pipelines requests to `proxy` and never reads is cut off
/// within one to two body timeouts (1 s here) plus slack.
fn assert_cut_off_when_never_reading(proxy: &Proxy) {
    let _client = pipeline_and_never_read(proxy, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(eventually(SLACK, || active(proxy) == 1), "the client connected");
    let stalled = Instant::now();
    assert!(
        eventually(Duration::from_secs(2) + SLACK, || active(proxy) == 0),
        "a client that never reads still holds its connection after {:?}",
        stalled.elapsed()
    );
}

#[test]
fn a_client_that_never_reads_local_responses_is_cut_off_after_the_body_timeout() {
    let body = "x".repeat(16 * 1024);
    let proxy =
        ProxyConfig::new().limits(r#"body_timeout = "1s""#).route(Route::new("local").direct(200, &body)).start();
    assert_cut_off_when_never_reading(&proxy);
}

#[test]
fn a_client_that_never_reads_proxied_responses_is_cut_off_after_the_body_timeout() {
    let upstream = Upstream::ok(&"y".repeat(8 * 1024));
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "1s""#).everything_to(upstream.addr()).start();
    assert_cut_off_when_never_reading(&proxy);
}

#[test]
fn a_client_that_never_reads_does_not_hold_a_drain_for_its_whole_timeout() {
    let upstream = Upstream::ok(&"z".repeat(8 * 1024));
    let mut proxy =
        ProxyConfig::new().limits(r#"body_timeout = "1s""#).drain_timeout("30s").everything_to(upstream.addr()).start();
    let _client = pipeline_and_never_read(&proxy, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(eventually(SLACK, || active(&proxy) == 1), "the client connected");
    std::thread::sleep(Duration::from_millis(300));
    let draining = Instant::now();
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(2) + SLACK).expect("the drain ended long before drain_timeout");
    assert!(status.success(), "{status:?}");
    assert!(draining.elapsed() < Duration::from_secs(2) + SLACK, "drain took {:?}", draining.elapsed());
}

/// Large responses one after another, on one connection and on new ones:
/// the relay's read buffers go back to the shard's pool between them and
/// come out again (a head read that filled its buffer takes a pooled bulk
/// buffer at once). Every body must be exactly the upstream's: a pooled
/// buffer handed out with another response's bytes in it would relay them.
#[test]
fn large_responses_in_a_row_are_relayed_byte_exact_through_pooled_buffers() {
    const LEN: u64 = 1024 * 1024;
    let upstream = Upstream::start(|_| Reply::pattern(LEN));
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();
    let want = pattern_sha256(LEN);
    let mut kept = Client::connect(proxy.addr());
    for round in 0..12 {
        let response = kept.get(&format!("/kept/{round}"));
        assert_eq!(response.status, 200, "round {round}");
        assert_eq!(response.body.len() as u64, LEN, "round {round}: body length on the kept connection");
        assert_eq!(crate::harness::sha256_hex(&response.body), want, "round {round}: body on the kept connection");
        let fresh = get(proxy.addr(), &format!("/fresh/{round}"));
        assert_eq!(fresh.body.len() as u64, LEN, "round {round}: body length on a new connection");
        assert_eq!(crate::harness::sha256_hex(&fresh.body), want, "round {round}: body on a new connection");
    }
}
