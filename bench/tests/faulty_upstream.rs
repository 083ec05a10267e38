//! The soak's misbehaving upstream really misbehaves as each command says:
//! the built `shardgate-faulty-upstream` binary on 127.0.0.1:0, real
//! sockets, and assertions on the bytes (or the reset) that arrive.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running binary; killed (by its own handle) when the test ends.
struct Upstream {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Upstream {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardgate-faulty-upstream"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("faulty upstream starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("announces its address").parse().unwrap();
    Upstream { child, addr }
}

fn connect(up: &Upstream) -> TcpStream {
    let s = TcpStream::connect(up.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn get(stream: &mut TcpStream, target: &str) {
    write!(stream, "GET {target} HTTP/1.1\r\nHost: up\r\n\r\n").unwrap();
}

/// Everything until the peer closes, or the error that ended the read.
fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => return (out, Some(e.kind())),
        }
    }
}

/// Reads one response with a Content-Length body; returns (status, body).
fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(n) = resp.parse(&buf).unwrap() {
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            let status = resp.code.unwrap();
            while buf.len() < n + len {
                let k = stream.read(&mut chunk).unwrap();
                assert!(k > 0, "closed mid-body");
                buf.extend_from_slice(&chunk[..k]);
            }
            return (status, buf[n..n + len].to_vec());
        }
        let k = stream.read(&mut chunk).unwrap();
        assert!(k > 0, "closed before a complete head");
        buf.extend_from_slice(&chunk[..k]);
    }
}

#[test]
fn other_paths_get_200_on_a_kept_alive_connection_with_bodies_read() {
    let up = start();
    let mut s = connect(&up);
    get(&mut s, "/anything");
    assert_eq!(read_response(&mut s), (200, b"ok\n".to_vec()));
    // A POST body is read and dropped; the next request on the same
    // connection is still understood.
    write!(s, "POST /upload HTTP/1.1\r\nHost: up\r\nContent-Length: 5\r\n\r\nhello").unwrap();
    assert_eq!(read_response(&mut s), (200, b"ok\n".to_vec()));
    get(&mut s, "/fault/unknown");
    assert_eq!(read_response(&mut s), (200, b"ok\n".to_vec()));
}

#[test]
fn reset_answers_nothing_and_resets() {
    let up = start();
    let mut s = connect(&up);
    get(&mut s, "/fault/reset");
    let (bytes, err) = read_to_close(&mut s);
    assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));
    assert_eq!(err, Some(ErrorKind::ConnectionReset), "a reset, not an orderly close");
}

#[test]
fn close_answers_nothing_and_closes_in_order() {
    let up = start();
    let mut s = connect(&up);
    get(&mut s, "/fault/close");
    let (bytes, err) = read_to_close(&mut s);
    assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));
    assert_eq!(err, None, "an orderly close (FIN), not a reset");
}

#[test]
fn truncate_sends_fewer_body_bytes_than_its_head_promises() {
    let up = start();
    let mut s = connect(&up);
    get(&mut s, "/fault/truncate");
    let (bytes, err) = read_to_close(&mut s);
    assert_eq!(err, None);
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = resp.parse(&bytes).unwrap() else { panic!("no complete head") };
    assert_eq!(resp.code, Some(200));
    let promised: usize = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
        .unwrap();
    assert_eq!(promised, 10_000);
    assert_eq!(bytes.len() - head_len, 1_000, "the body stops at 1000 of 10000 bytes");
}

#[test]
fn malformed_is_a_head_no_parser_accepts_then_a_close() {
    let up = start();
    let mut s = connect(&up);
    get(&mut s, "/fault/malformed");
    let (bytes, err) = read_to_close(&mut s);
    assert_eq!(err, None);
    assert!(!bytes.is_empty());
    let mut headers = [httparse::EMPTY_HEADER; 8];
    assert!(httparse::Response::new(&mut headers).parse(&bytes).is_err(), "{:?}", String::from_utf8_lossy(&bytes));
}

#[test]
fn slow_waits_the_asked_time_then_answers_normally() {
    let up = start();
    let mut s = connect(&up);
    let begin = Instant::now();
    get(&mut s, "/fault/slow?ms=300");
    assert_eq!(read_response(&mut s), (200, b"ok\n".to_vec()));
    // A lower bound only: the wait must happen; how much longer the
    // machine takes is not this test's business.
    assert!(begin.elapsed() >= Duration::from_millis(300), "{:?}", begin.elapsed());
    // Still kept alive after the wait.
    get(&mut s, "/");
    assert_eq!(read_response(&mut s), (200, b"ok\n".to_vec()));
}

#[test]
fn faults_are_per_request_on_one_connection() {
    let up = start();
    let mut s = connect(&up);
    get(&mut s, "/");
    assert_eq!(read_response(&mut s), (200, b"ok\n".to_vec()));
    get(&mut s, "/fault/close");
    let (bytes, err) = read_to_close(&mut s);
    assert!(bytes.is_empty() && err.is_none());
    // A new connection behaves again.
    let mut s = connect(&up);
    get(&mut s, "/");
    assert_eq!(read_response(&mut s), (200, b"ok\n".to_vec()));
}
