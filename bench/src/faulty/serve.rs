//! One connection of the faulty upstream: read a request (head with
//! httparse, then a `Content-Length` body), act out its `Fault`, repeat
//! while the connection is kept alive.
//!
//! Plain blocking std sockets, one thread per connection: the upstream must
//! misbehave precisely (a reset is a reset, a truncation stops at a known
//! byte), not fast. Its only client is the proxy's pool, so the threads are
//! few; `MAX_CONNECTIONS` bounds them anyway.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::fault::{Fault, MALFORMED, OK_BODY, TRUNCATE_PROMISED, TRUNCATE_SENT};

/// Largest request head read; larger gets 431 and a close.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body read (and discarded); larger gets 413 and a close.
pub const MAX_BODY_BYTES: u64 = 1 << 30;
/// Header fields parsed per request.
const MAX_HEADERS: usize = 128;
/// A connection idle this long between requests is closed (the proxy's
/// pool sees an ordinary upstream idle close).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the head said, as far as this server cares.
struct Request {
    target: String,
    body_len: u64,
    keep_alive: bool,
}

enum Head {
    Complete(Request, usize),
    Partial,
    /// Unreadable, chunked, too large: answer with this status and close.
    Refuse(u16),
}

fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => return Head::Refuse(431),
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Refuse(400),
    };
    let mut body_len = 0;
    let mut keep_alive = req.version == Some(1);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(n) if n <= MAX_BODY_BYTES => body_len = n,
                Some(_) => return Head::Refuse(413),
                None => return Head::Refuse(400),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The soak sends Content-Length bodies only; a chunked decoder
            // here would be one more thing to get wrong.
            return Head::Refuse(501);
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        }
    }
    let target = req.path.unwrap_or("/").to_string();
    Head::Complete(Request { target, body_len, keep_alive }, len)
}

/// Serves `stream` until the client closes, a fault ends the connection, or
/// an I/O error.
pub fn connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (request, head_len) = loop {
            match parse_head(&buf) {
                Head::Complete(r, n) => break (r, n),
                Head::Partial => {
                    let n = stream.read(&mut chunk)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Head::Refuse(status) => {
                    let _ =
                        write!(stream, "HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    return Ok(());
                }
            }
        };
        buf.drain(..head_len);
        discard_body(&mut stream, &mut buf, &mut chunk, request.body_len)?;
        match Fault::of(&request.target) {
            Fault::None => respond_ok(&mut stream, request.keep_alive)?,
            Fault::Slow(wait) => {
                std::thread::sleep(wait);
                respond_ok(&mut stream, request.keep_alive)?;
            }
            Fault::Reset => {
                // SO_LINGER 0: close() sends RST instead of FIN.
                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
                return Ok(());
            }
            Fault::Close => return Ok(()),
            Fault::Truncate => {
                let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {TRUNCATE_PROMISED}\r\n\r\n").into_bytes();
                out.resize(out.len() + TRUNCATE_SENT, b't');
                stream.write_all(&out)?;
                return Ok(());
            }
            Fault::Malformed => {
                stream.write_all(MALFORMED)?;
                return Ok(());
            }
        }
        if !request.keep_alive {
            return Ok(());
        }
    }
}

/// Reads and drops `len` body bytes, starting with what is already in `buf`;
/// leaves pipelined bytes in `buf`.
fn discard_body(stream: &mut TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8], len: u64) -> io::Result<()> {
    let buffered = (buf.len() as u64).min(len) as usize;
    buf.drain(..buffered);
    let mut left = len - buffered as u64;
    while left > 0 {
        let want = (left as usize).min(chunk.len());
        let n = stream.read(&mut chunk[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        left -= n as u64;
    }
    Ok(())
}

fn respond_ok(stream: &mut TcpStream, keep_alive: bool) -> io::Result<()> {
    let connection = if keep_alive { "" } else { "connection: close\r\n" };
    let mut out =
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{connection}\r\n", OK_BODY.len())
            .into_bytes();
    out.extend_from_slice(OK_BODY);
    stream.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Expect {
        Complete(&'static str, u64, bool),
        Partial,
        Refuse(u16),
    }
    use Expect::*;

    const CASES: &[(&[u8], Expect)] = &[
        (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", Complete("/a", 0, true)),
        (b"POST /b HTTP/1.1\r\nContent-Length: 12\r\n\r\n", Complete("/b", 12, true)),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", Complete("/", 0, false)),
        (b"GET / HTTP/1.0\r\n\r\n", Complete("/", 0, false)),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", Complete("/", 0, true)),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", Partial),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", Refuse(501)),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", Refuse(400)),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", Refuse(413)),
        (b"G\x01T / HTTP/1.1\r\n\r\n", Refuse(400)),
    ];

    #[test]
    fn heads() {
        for (bytes, want) in CASES {
            match (parse_head(bytes), want) {
                (Head::Complete(r, n), Complete(t, len, ka)) => {
                    assert_eq!((r.target.as_str(), r.body_len, r.keep_alive), (*t, *len, *ka));
                    assert_eq!(n, bytes.len());
                }
                (Head::Partial, Partial) => {}
                (Head::Refuse(s), Refuse(want)) => assert_eq!(s, *want),
                _ => panic!("unexpected parse of {:?}", String::from_utf8_lossy(bytes)),
            }
        }
        let big = vec![b'a'; MAX_HEAD_BYTES];
        assert!(matches!(parse_head(&big), Head::Refuse(431)));
    }
}
