//! One accepted connection of the test upstream: read requests (head,
//! then body by its framing), log them, and write each [`Reply`] the
//! handler picks, misbehaviours included.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::reply::{AfterCut, Reply};
use super::{find, Early, HeadSeen, Request, Shared, KEEP_BODY_BYTES, MAX_HEAD_BYTES, READ_TIMEOUT};
use crate::harness::pattern;

pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = {
            let mut log = shared.log();
            log.connections += 1;
            log.connections - 1
        };
        let shared = shared.clone();
        std::thread::spawn(move || {
            serve(Conn::new(stream, shared.clone()), id, &shared);
            shared.log().ended.push(id);
        });
    }
}

/// Serves requests on one connection until it closes or a reply ends it.
fn serve(mut conn: Conn, id: usize, shared: &Shared) {
    let mut served = 0usize;
    loop {
        let idle = match (served, shared.close_idle_after) {
            (n, Some(idle)) if n > 0 => idle,
            _ => READ_TIMEOUT,
        };
        let _ = conn.stream.set_read_timeout(Some(idle));
        let Some((raw_head, head)) = conn.read_head() else {
            if let (Some(goodbye), true) = (&shared.idle_goodbye, conn.buf.is_empty() && served > 0) {
                let _ = conn.stream.write_all(goodbye);
            }
            return;
        };
        let _ = conn.stream.set_read_timeout(Some(READ_TIMEOUT));
        shared.log().heads.push(HeadSeen { connection: id, method: head.method.clone(), target: head.target.clone() });

        let framing = head.body_framing();
        if shared.early != Early::No {
            let unread = Body { kept: Vec::new(), len: 0, sha256: String::new(), trailers: Vec::new() };
            let request = Request::of(id, head, raw_head, framing, unread);
            shared.log().requests.push(request.clone());
            let reply = (shared.handler)(&request);
            conn.reply(&reply, &request);
            if shared.early == Early::ThenStopReading {
                conn.hold_until_peer_closes();
            }
            return;
        }
        if framing != Framing::None
            && head.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && conn.write(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let Some(body) = conn.read_body(framing) else {
            return;
        };
        let request = Request::of(id, head, raw_head, framing, body);
        shared.log().requests.push(request.clone());
        served += 1;

        let reply = (shared.handler)(&request);
        let keep_open = conn.reply(&reply, &request);
        let client_closes = request.header_list("connection").iter().any(|t| t.eq_ignore_ascii_case("close"))
            || (request.version == "HTTP/1.0"
                && !request.header_list("connection").iter().any(|t| t.eq_ignore_ascii_case("keep-alive")));
        if !keep_open || client_closes {
            return;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

pub(super) struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn body_framing(&self) -> Framing {
        let te_chunked = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|(_, v)| v.split(','))
            .last()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        if te_chunked {
            return Framing::Chunked;
        }
        match self.header("content-length").and_then(|v| v.trim().parse().ok()) {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    }
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    // Field values may carry obs-text (bytes above 0x7f, RFC 9110 §5.5),
    // which a proxy passes on: recorded lossily, not a reason to hang up.
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let version = request_line.next()?.to_string();
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Some(Head { method, target, version, headers })
}

pub(super) struct Body {
    pub kept: Vec<u8>,
    pub len: u64,
    pub sha256: String,
    pub trailers: Vec<(String, String)>,
}

struct BodySink {
    kept: Vec<u8>,
    len: u64,
    hasher: Sha256,
}

impl BodySink {
    fn new() -> BodySink {
        BodySink { kept: Vec::new(), len: 0, hasher: Sha256::new() }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.hasher.update(bytes);
        if self.len <= KEEP_BODY_BYTES {
            self.kept.extend_from_slice(bytes);
        } else {
            self.kept = Vec::new();
        }
    }

    fn finish(self, trailers: Vec<(String, String)>) -> Body {
        Body { kept: self.kept, len: self.len, sha256: crate::harness::hex(&self.hasher.finalize()), trailers }
    }
}

/// One accepted connection and its unread bytes.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl Conn {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn { stream, buf: Vec::new(), shared }
    }

    /// Reads more bytes into the buffer; false on EOF, error or timeout.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.shared.log().bytes_received += n as u64;
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => false,
        }
    }

    fn read_head(&mut self) -> Option<(Vec<u8>, Head)> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                let head = parse_head(&raw[..end])?;
                return Some((raw, head));
            }
            if self.buf.len() > MAX_HEAD_BYTES || !self.fill() {
                return None;
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    fn read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..end + 2).collect();
                line.truncate(end);
                return Some(line);
            }
            if self.buf.len() > MAX_HEAD_BYTES || !self.fill() {
                return None;
            }
        }
    }

    /// Exactly `n` bytes into `sink`.
    fn read_exact_into(&mut self, mut n: u64, sink: &mut BodySink) -> Option<()> {
        while n > 0 {
            if self.buf.is_empty() && !self.fill() {
                return None;
            }
            let take = (self.buf.len() as u64).min(n) as usize;
            sink.feed(&self.buf[..take]);
            self.buf.drain(..take);
            n -= take as u64;
        }
        Some(())
    }

    fn read_body(&mut self, framing: Framing) -> Option<Body> {
        let mut sink = BodySink::new();
        let mut trailers = Vec::new();
        match framing {
            Framing::None => {}
            Framing::Length(n) => self.read_exact_into(n, &mut sink)?,
            Framing::Chunked => loop {
                let line = self.read_line()?;
                let line = String::from_utf8(line).ok()?;
                let size = line.split(';').next()?.trim();
                let size = u64::from_str_radix(size, 16).ok()?;
                if size == 0 {
                    loop {
                        let line = self.read_line()?;
                        if line.is_empty() {
                            break;
                        }
                        let line = String::from_utf8(line).ok()?;
                        let (name, value) = line.split_once(':')?;
                        trailers.push((name.to_string(), value.trim().to_string()));
                    }
                    break;
                }
                self.read_exact_into(size, &mut sink)?;
                if !self.read_line()?.is_empty() {
                    return None;
                }
            },
        }
        Some(sink.finish(trailers))
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes `reply`; returns whether the connection stays open.
    fn reply(&mut self, reply: &Reply, request: &Request) -> bool {
        let head_only = request.method == "HEAD";
        match reply {
            // Streamed piece by piece: it may be far larger than memory.
            Reply::Pattern { len } => {
                let wire = reply.wire(true, 0).expect("a pattern head");
                let mut result = self.write(&wire.bytes);
                if !head_only {
                    pattern::for_each_piece(*len, |piece| {
                        if result.is_ok() {
                            result = self.stream.write_all(piece);
                        }
                    });
                }
                result.is_ok()
            }
            Reply::Close => false,
            Reply::Reset => {
                self.reset();
                false
            }
            Reply::Silence => {
                self.hold_until_peer_closes();
                false
            }
            Reply::After(delay, reply) => self.pause(*delay) && self.reply(reply, request),
            Reply::BodyAfter(delay, reply) => {
                let wire = reply.wire(head_only, usize::MAX).expect("BodyAfter of a reply with wire bytes");
                let head_end = find(&wire.bytes, b"\r\n\r\n").map_or(wire.bytes.len(), |at| at + 4);
                let (head, body) = wire.bytes.split_at(head_end);
                let written = self.write(head).is_ok() && self.pause(*delay) && self.write(body).is_ok();
                written && !wire.close
            }
            Reply::Cut { reply, bytes, then } => {
                let wire = reply.wire(head_only, *bytes).expect("Cut of a reply with wire bytes");
                let _ = self.write(&wire.bytes[..(*bytes).min(wire.bytes.len())]);
                match then {
                    AfterCut::Close => {}
                    AfterCut::Reset => {
                        std::thread::sleep(Duration::from_millis(100));
                        self.reset();
                    }
                    AfterCut::Hang => self.hold_until_peer_closes(),
                }
                false
            }
            Reply::RawThenLater { first, delay, later } => {
                let _ = self.write(first);
                std::thread::sleep(*delay);
                self.write(later).is_ok()
            }
            Reply::Fixed { .. }
            | Reply::Chunked { .. }
            | Reply::CloseDelimited { .. }
            | Reply::Raw(_)
            | Reply::RawThenClose(_)
            | Reply::ThenStray(..) => {
                let wire = reply.wire(head_only, usize::MAX).expect("a reply with wire bytes");
                let written = self.write(&wire.bytes).is_ok();
                if wire.close {
                    let _ = self.stream.shutdown(std::net::Shutdown::Write);
                }
                written && !wire.close
            }
        }
    }

    /// Makes the close that follows a reset (RST) instead of a FIN.
    fn reset(&mut self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Keeps the connection open without reading until the peer closes it
    /// (or `READ_TIMEOUT` passes).
    fn hold_until_peer_closes(&mut self) {
        self.pause(READ_TIMEOUT);
    }

    /// Waits `delay` without reading; false as soon as the peer closed the
    /// connection (so a test sees a connection the proxy gave up on end
    /// now, not when the delay is over).
    fn pause(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if peer_closed(&self.stream, Duration::from_millis(50)) {
                return false;
            }
        }
        true
    }
}

/// Whether the peer closes (FIN or RST) `stream` within `within`. Unlike a
/// read, it sees a close behind bytes nobody read yet.
fn peer_closed(stream: &TcpStream, within: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call; the fd is
    // owned by `stream`, which outlives it.
    let ready = unsafe { libc::poll(&mut poll, 1, within.as_millis() as libc::c_int) };
    ready > 0 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}
