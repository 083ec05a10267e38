//! A real HTTP/1.1 upstream server for tests: `std::net::TcpListener` on
//! 127.0.0.1:0, one thread per connection.
//!
//! It records every connection, every request head and every complete
//! request (head bytes, headers, body or, for large bodies, its sha256 and
//! length) so a test can assert on what actually came out of the proxy,
//! and answers each request with whatever [`Reply`] the test's handler
//! returns: well-formed, or misbehaving in one of the ways real upstreams
//! do (see `reply.rs`). Connection-level behaviour (closing idle keep-alive
//! connections, with or without a `408`; answering before the body) is set
//! on the [`UpstreamBuilder`]; upstreams that refuse or never answer
//! connections are in `blackhole.rs`.
//!
//! - `reply.rs`: what a handler can answer.
//! - `conn.rs`: one connection: read requests, write replies.
//! - `blackhole.rs`: addresses that refuse, or never complete, connections.

mod blackhole;
mod conn;
mod reply;

pub use blackhole::{refusing_addr, Blackhole};
pub use reply::{AfterCut, Reply};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conn::{accept_loop, Body, Framing, Head};

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

/// A request head as the upstream read it, before its body (which may
/// never come).
#[derive(Debug, Clone)]
pub struct HeadSeen {
    pub connection: usize,
    pub method: String,
    pub target: String,
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

#[derive(Default)]
struct Log {
    connections: usize,
    bytes_received: u64,
    heads: Vec<HeadSeen>,
    requests: Vec<Request>,
    /// Connections whose thread is done: closed by the peer, by a reply,
    /// or after a read timed out.
    ended: Vec<usize>,
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
        self.shared.log().heads.len()
    }

    /// Every request head received so far, complete request or not.
    pub fn heads(&self) -> Vec<HeadSeen> {
        self.shared.log().heads.clone()
    }

    /// Whether connection `id` (0 = first accepted) has ended.
    pub fn connection_ended(&self, id: usize) -> bool {
        self.shared.log().ended.contains(&id)
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
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
