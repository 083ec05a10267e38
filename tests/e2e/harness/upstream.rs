//! A real HTTP/1.1 upstream server for tests: `std::net::TcpListener` on
//! 127.0.0.1:0, one thread per connection.
//!
//! It records every connection and every request (head bytes, headers, body
//! or, for large bodies, its sha256 and length) so a test can assert on what
//! actually came out of the proxy, and answers each request with whatever
//! [`Reply`] the test's handler returns.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::pattern;

/// How long a connection thread waits for bytes before giving up on it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Request bodies up to this size are kept in [`Request::body`]; larger ones
/// are only hashed.
const KEEP_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// A request head larger than this ends the connection.
const MAX_HEAD_BYTES: usize = 1024 * 1024;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Index of the upstream connection it arrived on (0 = first accepted).
    pub connection: usize,
    pub method: String,
    /// The request target exactly as received (path and query).
    pub target: String,
    pub version: String,
    /// Header fields in order, names as received.
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, including the final CRLFCRLF.
    pub raw_head: Vec<u8>,
    /// The decoded body (empty when longer than `KEEP_BODY_BYTES`).
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_sha256: String,
    /// Whether the body arrived with chunked framing.
    pub chunked: bool,
    pub trailers: Vec<(String, String)>,
}

impl Request {
    fn of(connection: usize, head: Head, raw_head: Vec<u8>, framing: Framing, body: Body) -> Request {
        Request {
            connection,
            method: head.method,
            target: head.target,
            version: head.version,
            headers: head.headers,
            raw_head,
            body: body.kept,
            body_len: body.len,
            body_sha256: body.sha256,
            chunked: framing == Framing::Chunked,
            trailers: body.trailers,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// Every value of a list-valued header (all its fields, split on commas,
    /// trimmed), e.g. `X-Forwarded-For`.
    pub fn header_list(&self, name: &str) -> Vec<String> {
        self.header_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// What the upstream does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A response framed by Content-Length (no body bytes on HEAD).
    Fixed { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// `Transfer-Encoding: chunked`, one chunk per element.
    Chunked { status: u16, chunks: Vec<Vec<u8>> },
    /// No Content-Length, no Transfer-Encoding: the body ends when the
    /// upstream closes the connection.
    CloseDelimited { status: u16, body: Vec<u8> },
    /// 200 with Content-Length `len` and `len` bytes of the
    /// [`pattern`] stream, written piece by piece.
    Pattern { len: u64 },
    /// These exact bytes; the connection stays open for the next request.
    Raw(Vec<u8>),
    /// These exact bytes, then close.
    RawThenClose(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Wait, then reply.
    After(Duration, Box<Reply>),
    /// `first`, then after `delay` (a later TCP segment) `later`; the
    /// connection stays open. Stray bytes after a response end.
    RawThenLater { first: Vec<u8>, delay: Duration, later: Vec<u8> },
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Fixed { status, headers: Vec::new(), body: body.into() }
    }

    /// Adds a header to a `Fixed` reply.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Fixed { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    pub fn chunked(chunks: &[&[u8]]) -> Reply {
        Reply::Chunked { status: 200, chunks: chunks.iter().map(|c| c.to_vec()).collect() }
    }

    pub fn close_delimited(body: impl Into<Vec<u8>>) -> Reply {
        Reply::CloseDelimited { status: 200, body: body.into() }
    }

    pub fn pattern(len: u64) -> Reply {
        Reply::Pattern { len }
    }

    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply::Raw(bytes.into())
    }

    pub fn after(delay: Duration, reply: Reply) -> Reply {
        Reply::After(delay, Box::new(reply))
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

#[derive(Default)]
struct Log {
    connections: usize,
    bytes_received: u64,
    heads_received: usize,
    requests: Vec<Request>,
}

/// When an upstream answers relative to the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Early {
    /// Read the whole body first (a well-behaved server).
    No,
    /// Answer right after the head, without reading the body, then close.
    ThenClose,
    /// Answer right after the head, then keep the connection open without
    /// ever reading the body (until the peer closes or 30 s pass).
    ThenStopReading,
}

struct Shared {
    handler: Box<Handler>,
    close_idle_after: Option<Duration>,
    idle_goodbye: Option<Vec<u8>>,
    early: Early,
    log: Mutex<Log>,
    stopped: AtomicBool,
}

impl Shared {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running test upstream. Stops accepting when dropped.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Options for an [`Upstream`] beyond its handler.
#[derive(Default)]
pub struct UpstreamBuilder {
    close_idle_after: Option<Duration>,
    idle_goodbye: Option<Vec<u8>>,
    early: Option<Early>,
}

impl UpstreamBuilder {
    /// After answering a request, close the connection if the next request
    /// does not start within `idle`: the way a server with a short
    /// keep-alive timeout leaves stale connections in a proxy's pool.
    pub fn close_idle_after(mut self, idle: Duration) -> UpstreamBuilder {
        self.close_idle_after = Some(idle);
        self
    }

    /// With `close_idle_after`: these bytes are written to the idle
    /// connection just before it is closed (servers that say `408` +
    /// `Connection: close` to an idle keep-alive connection).
    pub fn idle_goodbye(mut self, bytes: &[u8]) -> UpstreamBuilder {
        self.idle_goodbye = Some(bytes.to_vec());
        self
    }

    /// Answer before the request body is read (see [`Early`]); the
    /// handler sees the request with an empty body.
    pub fn early(mut self, early: Early) -> UpstreamBuilder {
        self.early = Some(early);
        self
    }

    pub fn start(self, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test upstream");
        let addr = listener.local_addr().expect("upstream local addr");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            close_idle_after: self.close_idle_after,
            idle_goodbye: self.idle_goodbye,
            early: self.early.unwrap_or(Early::No),
            log: Mutex::new(Log::default()),
            stopped: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        std::thread::spawn(move || accept_loop(listener, accept_shared));
        Upstream { addr, shared }
    }
}

impl Upstream {
    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder::default()
    }

    /// An upstream whose handler decides each reply.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Upstream {
        UpstreamBuilder::default().start(handler)
    }

    /// Answers every request with 200 and `body`.
    pub fn ok(body: &str) -> Upstream {
        let body = body.as_bytes().to_vec();
        Upstream::start(move |_| Reply::ok(body.clone()))
    }

    /// Answers every request with 200 and the body `METHOD TARGET`.
    pub fn path_echo() -> Upstream {
        Upstream::start(|req| Reply::ok(format!("{} {}", req.method, req.target)))
    }

    /// Answers every request with 200 and the request body.
    pub fn body_echo() -> Upstream {
        Upstream::start(|req| Reply::ok(req.body.clone()))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.log().connections
    }

    /// Bytes read from all connections so far.
    pub fn bytes_received(&self) -> u64 {
        self.shared.log().bytes_received
    }

    /// Request heads received so far (counted before the body is read).
    pub fn heads_received(&self) -> usize {
        self.shared.log().heads_received
    }

    /// Complete requests (head and whole body) received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log().requests.clone()
    }

    /// The only complete request received; panics unless there is exactly one.
    pub fn only_request(&self) -> Request {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request at the upstream, got {:#?}", requests);
        requests.into_iter().next().expect("one request")
    }

    /// Waits (up to 5 s) until `n` complete requests arrived and returns them.
    pub fn wait_for_requests(&self, n: usize) -> Vec<Request> {
        super::eventually(Duration::from_secs(5), || self.requests().len() >= n);
        self.requests()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
        std::thread::spawn(move || serve(Conn::new(stream, shared.clone()), id, &shared));
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
        shared.log().heads_received += 1;

        let framing = head.body_framing();
        if shared.early != Early::No {
            let unread = Body { kept: Vec::new(), len: 0, sha256: String::new(), trailers: Vec::new() };
            let request = Request::of(id, head, raw_head, framing, unread);
            shared.log().requests.push(request.clone());
            let reply = (shared.handler)(&request);
            conn.reply(&reply, &request);
            if shared.early == Early::ThenStopReading {
                // Hold the connection without reading until the peer goes.
                let _ = conn.stream.set_read_timeout(Some(Duration::from_millis(100)));
                let deadline = std::time::Instant::now() + READ_TIMEOUT;
                while std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                    let mut probe = [0u8; 1];
                    match conn.stream.peek(&mut probe) {
                        Ok(0) => break,
                        Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                        _ => {}
                    }
                }
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
enum Framing {
    None,
    Length(u64),
    Chunked,
}

struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
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

struct Body {
    kept: Vec<u8>,
    len: u64,
    sha256: String,
    trailers: Vec<(String, String)>,
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
        Body { kept: self.kept, len: self.len, sha256: super::hex(&self.hasher.finalize()), trailers }
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
        let result = match reply {
            Reply::Fixed { status, headers, body } => {
                let mut out = status_line(*status);
                for (name, value) in headers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                if !head_only {
                    out.extend_from_slice(body);
                }
                self.write(&out)
            }
            Reply::Chunked { status, chunks } => {
                let mut out = status_line(*status);
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                self.write(&out)
            }
            Reply::CloseDelimited { status, body } => {
                let mut out = status_line(*status);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(body);
                let _ = self.write(&out);
                let _ = self.stream.shutdown(std::net::Shutdown::Write);
                return false;
            }
            Reply::Pattern { len } => {
                let mut out = status_line(200);
                out.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
                let mut result = self.write(&out);
                if !head_only {
                    pattern::for_each_piece(*len, |piece| {
                        if result.is_ok() {
                            result = self.stream.write_all(piece);
                        }
                    });
                }
                result
            }
            Reply::Raw(bytes) => self.write(bytes),
            Reply::RawThenClose(bytes) => {
                let _ = self.write(bytes);
                return false;
            }
            Reply::Close => return false,
            Reply::After(delay, reply) => {
                std::thread::sleep(*delay);
                return self.reply(reply, request);
            }
            Reply::RawThenLater { first, delay, later } => {
                let _ = self.write(first);
                std::thread::sleep(*delay);
                self.write(later)
            }
        };
        result.is_ok()
    }
}

fn status_line(status: u16) -> Vec<u8> {
    let reason = match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        404 => "Not Found",
        418 => "I'm a teapot",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    format!("HTTP/1.1 {status} {reason}\r\n").into_bytes()
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An address nothing listens on: connecting to it is refused.
pub fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr
}

/// A listener whose accept queue is full and never drained: new TCP
/// handshakes to it are not completed (Linux drops the SYN while the accept
/// queue is full), so a connect attempt hangs until the connector's own
/// timeout — a connect timeout reproduced on loopback.
pub struct Blackhole {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

impl Blackhole {
    /// `None` when this kernel completes handshakes even with a full queue
    /// (then a connect timeout cannot be produced on loopback).
    pub fn start() -> Option<Blackhole> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
        let bind: SocketAddr = "127.0.0.1:0".parse().ok()?;
        socket.bind(&bind.into()).ok()?;
        socket.listen(0).ok()?;
        let addr = socket.local_addr().ok()?.as_socket()?;
        let mut queued = Vec::new();
        // Fill the queue until a connect attempt no longer completes.
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => queued.push(stream),
                Err(_) => return Some(Blackhole { addr, _listener: socket, _queued: queued }),
            }
        }
        None
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
