//! The admin server: blocking std sockets on threads of their own, never on
//! a shard, and on a listener of its own (config validation refuses an
//! admin address that a proxy listener's address overlaps).
//!
//! One accept thread hands each connection to a thread of its own, up to
//! [`MAX_ADMIN_CONNECTIONS`] at once; past that a connection gets 503 and
//! is closed by the accept thread itself, without waiting on the client.
//! Each connection gets [`ADMIN_REQUEST_DEADLINE`] for its WHOLE request
//! head, not per read: a client trickling one byte at a time is cut off
//! (408) as surely as a silent one, and meanwhile it holds only its own
//! thread. The response is bounded the same way ([`ADMIN_RESPONSE_DEADLINE`]).
//! One request per connection (`connection: close`). With `admin.token`
//! set, a request without the right bearer token gets 401 whatever it asks
//! for (`auth.rs`).
//!
//! `POST /reload` asks the main thread to reload the config (the same as
//! SIGHUP) and waits for the outcome: 200 with the new generation number
//! and any warnings, or 422 with every error (field path and line) when
//! the file is refused, the running config unchanged.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auth::{authorized, CHALLENGE};
use super::stats::stats_json;
use super::{clusters, dashboard, origin, routes_doc, shards, ShardCounters};
use crate::config::Config;
use crate::shard::generation::Generation;
use arc_swap::ArcSwap;

/// Time from accepting an admin connection to having its complete request
/// head: one deadline for all the reads together (nginx's
/// `client_header_timeout` is per read, which a trickling client defeats).
pub const ADMIN_REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Time to write a whole admin response.
pub const ADMIN_RESPONSE_DEADLINE: Duration = Duration::from_secs(5);
/// Admin connections served at once, each on its own thread. A scrape
/// takes microseconds; this bounds the threads a flood of slow clients
/// can hold (for at most [`ADMIN_REQUEST_DEADLINE`] each).
pub const MAX_ADMIN_CONNECTIONS: usize = 16;
/// Largest admin request head (431 past it).
pub const ADMIN_MAX_REQUEST_BYTES: usize = 8192;
/// Header fields an admin request may carry (431 past it).
const ADMIN_MAX_HEADERS: usize = 32;
/// Pause after a failed accept (e.g. out of file descriptors), so the
/// accept thread does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What the admin threads serve from: the shards' counters, the running
/// config (its `admin.token`, and `/config`; the main thread stores the new
/// one after every reload) and the way to ask for a reload.
pub struct AdminState {
    pub shards: Arc<Vec<Arc<ShardCounters>>>,
    pub config: Arc<ArcSwap<Config>>,
    /// The running generation (`/routes`, `/clusters`: stable names and
    /// endpoint ids); stored with `config` after every reload.
    pub generation: Arc<ArcSwap<Generation>>,
    /// Recent counter readings for `/shards`' rates.
    pub load: shards::LoadWindow,
    pub reload: Option<ReloadHook>,
    /// `/ready` and `POST /drain` (`lifecycle.rs`).
    pub lifecycle: Arc<super::lifecycle::Lifecycle>,
}

/// Runs a config reload on the main thread and waits for its outcome.
pub type ReloadHook = Arc<dyn Fn() -> Result<ReloadOutcome, Vec<String>> + Send + Sync>;

/// A reload that took effect.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    pub generation: u64,
    pub warnings: Vec<String>,
}

/// Serves the admin endpoints on `listener` until the process exits.
pub fn spawn(listener: TcpListener, state: AdminState) -> io::Result<()> {
    let state = Arc::new(state);
    std::thread::Builder::new().name("shardgate-admin".into()).spawn(move || {
        let open = Arc::new(AtomicUsize::new(0));
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    std::thread::sleep(ACCEPT_ERROR_BACKOFF);
                    continue;
                }
            };
            let Some(slot) = ConnectionSlot::take(&open) else {
                refuse_over_cap(stream);
                continue;
            };
            let state = state.clone();
            let spawned = std::thread::Builder::new().name("shardgate-admin-conn".into()).spawn(move || {
                let _slot = slot;
                if let Err(e) = serve(stream, &state) {
                    tracing::debug!(error = %e, "admin request failed");
                }
            });
            if let Err(e) = spawned {
                // The closure (stream and slot) is dropped: the client sees
                // the connection close.
                tracing::warn!(error = %e, "cannot start an admin connection thread");
            }
        }
    })?;
    Ok(())
}

/// One of the [`MAX_ADMIN_CONNECTIONS`] places; given back on drop, when
/// the connection's thread ends.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>) -> Option<ConnectionSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_ADMIN_CONNECTIONS).then_some(n + 1))
            .ok()
            .map(|_| ConnectionSlot(open.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// 503 for a connection over the cap, written by the accept thread without
/// ever blocking on the client: non-blocking socket, one write (a fresh
/// socket's send buffer always takes these few bytes).
fn refuse_over_cap(mut stream: TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    // Whatever of the request already arrived is read, so that closing the
    // socket sends FIN after the 503 rather than a reset before it.
    let mut scratch = [0u8; 1024];
    let _ = stream.read(&mut scratch);
    let body = format!("{{\"error\":\"admin connection limit reached ({MAX_ADMIN_CONNECTIONS} at once)\"}}\n");
    let _ = stream.write_all(response(&Reply::json("503 Service Unavailable", body)).as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Why no request head was read.
enum HeadError {
    /// The client closed before a complete head: nothing to answer.
    Closed,
    /// [`ADMIN_REQUEST_DEADLINE`] passed first.
    Deadline,
    TooLarge,
    Io(io::Error),
}

fn serve(mut stream: TcpStream, state: &AdminState) -> io::Result<()> {
    let accepted = Instant::now();
    let reply = match read_head(&mut stream, accepted + ADMIN_REQUEST_DEADLINE) {
        Ok(head) => match answer(&head, state) {
            Answer::Reply(reply) => reply,
            Answer::Reload => match &state.reload {
                Some(hook) => reload_answer(hook()),
                None => Reply::json("404 Not Found", "{\"error\":\"not found\"}\n"),
            },
        },
        Err(HeadError::Closed) => return Ok(()),
        Err(HeadError::Deadline) => Reply::json(
            "408 Request Timeout",
            format!("{{\"error\":\"request head not complete within {} s\"}}\n", ADMIN_REQUEST_DEADLINE.as_secs()),
        ),
        Err(HeadError::TooLarge) => Reply::json(
            "431 Request Header Fields Too Large",
            format!("{{\"error\":\"request head larger than {ADMIN_MAX_REQUEST_BYTES} bytes\"}}\n"),
        ),
        Err(HeadError::Io(e)) => return Err(e),
    };
    write_all_by(&mut stream, response(&reply).as_bytes(), Instant::now() + ADMIN_RESPONSE_DEADLINE)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Reads until a complete request head is buffered, `deadline` passes, or
/// the head grows past [`ADMIN_MAX_REQUEST_BYTES`].
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Deadline);
        }
        // Each read waits only for what is left of the one deadline.
        stream.set_read_timeout(Some(left)).map_err(HeadError::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HeadError::Deadline)
            }
            Err(e) => return Err(HeadError::Io(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if head_complete(&buf) {
            return Ok(buf);
        }
        if buf.len() >= ADMIN_MAX_REQUEST_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Whether `buf` holds a whole head (or one httparse already refuses, which
/// [`answer`] then reports): parsing is left to [`answer`].
fn head_complete(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; ADMIN_MAX_HEADERS];
    !matches!(httparse::Request::new(&mut headers).parse(buf), Ok(httparse::Status::Partial))
}

/// An admin response: status line, body and its type.
struct Reply {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn json(status: &'static str, body: impl Into<String>) -> Reply {
        Reply { status, content_type: "application/json", body: body.into() }
    }

    fn text(status: &'static str, body: String) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body }
    }
}

/// A JSON reply from a handler in another file: (status line, body).
impl From<(&'static str, String)> for Reply {
    fn from((status, body): (&'static str, String)) -> Reply {
        Reply::json(status, body)
    }
}

/// The response to `POST /reload` once the main thread answered.
fn reload_answer(outcome: Result<ReloadOutcome, Vec<String>>) -> Reply {
    match outcome {
        Ok(r) => Reply::json(
            "200 OK",
            format!(
                "{{\"reloaded\":true,\"generation\":{},\"warnings\":{}}}\n",
                r.generation,
                json_strings(&r.warnings)
            ),
        ),
        Err(errors) => Reply::json(
            "422 Unprocessable Content",
            format!("{{\"reloaded\":false,\"errors\":{}}}\n", json_strings(&errors)),
        ),
    }
}

/// A JSON array of strings (RFC 8259 escaping).
fn json_strings(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in item.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

/// What a request head asks for: a reply made here, or a reload (which
/// the main thread answers).
enum Answer {
    Reply(Reply),
    Reload,
}

/// The answer to a complete (or refused) head.
fn answer(head: &[u8], state: &AdminState) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; ADMIN_MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Answer::Reply(Reply::json(
                "431 Request Header Fields Too Large",
                format!("{{\"error\":\"more than {ADMIN_MAX_HEADERS} header fields\"}}\n"),
            ))
        }
        _ => return Answer::Reply(Reply::json("400 Bad Request", "{\"error\":\"malformed request head\"}\n")),
    }
    let path = request.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let config = state.config.load();
    let token = config.admin.as_ref().and_then(|a| a.token.as_ref());
    if let Some(why) = origin::refused(request.headers, token.is_some()) {
        return Answer::Reply(Reply::json("403 Forbidden", format!("{{\"error\":\"{why}\"}}\n")));
    }
    // The dashboard page holds no data and must load without the token
    // (its script then sends the token on its own fetches).
    if dashboard::is_page(request.method.unwrap_or(""), path) {
        return Answer::Reply(Reply {
            status: "200 OK",
            content_type: dashboard::CONTENT_TYPE,
            body: dashboard::PAGE.into(),
        });
    }
    if !authorized(token, request.headers) {
        return Answer::Reply(Reply::json("401 Unauthorized", "{\"error\":\"missing or wrong bearer token\"}\n"));
    }
    Answer::Reply(match (request.method.unwrap_or(""), path) {
        ("GET", "/stats") => Reply::json("200 OK", stats_json(&state.shards)),
        ("GET", "/metrics") => metrics_reply(&state.shards, &state.generation.load()),
        ("GET", "/healthz") => Reply::json("200 OK", "{\"status\":\"live\"}\n"),
        ("GET", "/routes") => Reply::json("200 OK", routes_doc::routes_json(&state.generation.load())),
        ("GET", "/clusters") => Reply::json("200 OK", clusters::clusters_json(&state.generation.load(), &state.shards)),
        ("GET", "/shards") => Reply::json("200 OK", shards::shards_json(&state.shards, &state.load)),
        // The effective config as `shardgate check` prints it: secrets
        // appear as their source (`<secret from env:NAME>`), never a value.
        ("GET", "/config") => Reply::text("200 OK", config.summary()),
        ("POST", "/reload") => return Answer::Reload,
        ("GET", "/ready") => super::lifecycle::ready(&state.lifecycle).into(),
        ("POST", "/drain") => super::lifecycle::drain(&state.lifecycle).into(),
        ("GET", _) => Reply::json("404 Not Found", "{\"error\":\"not found\"}\n"),
        _ => Reply::json("405 Method Not Allowed", "{\"error\":\"method not allowed\"}\n"),
    })
}

/// `GET /metrics`: the shards' snapshots merged, as Prometheus text.
fn metrics_reply(shards: &[Arc<ShardCounters>], generation: &crate::shard::generation::Generation) -> Reply {
    use crate::observe::metrics::{exposition::render, gather, text::CONTENT_TYPE, Scope};
    let mut body = render(shards, &gather(shards, Scope::Metrics));
    body.push_str(&crate::observe::metrics::health::render(generation, shards));
    Reply { status: "200 OK", content_type: CONTENT_TYPE, body }
}

fn response(reply: &Reply) -> String {
    let challenge =
        if reply.status.starts_with("401") { format!("www-authenticate: {CHALLENGE}\r\n") } else { String::new() };
    format!(
        "HTTP/1.1 {}\r\ncontent-type: {}\r\n{challenge}content-length: {}\r\nconnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    )
}

/// Writes all of `bytes` unless `deadline` passes first (a client that
/// reads slowly gets no longer than the deadline in total).
fn write_all_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(ErrorKind::TimedOut, "admin response not taken within the deadline"));
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (request head, status line the admin answers)
    const REQUESTS: &[(&[u8], &str)] = &[
        (b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "200 OK"),
        (b"GET /stats?pretty HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /config HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /metrics HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /other HTTP/1.1\r\n\r\n", "404 Not Found"),
        (b"GET /healthz HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /routes HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /clusters HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /shards HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /dashboard HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET /dashboard?x HTTP/1.1\r\n\r\n", "200 OK"),
        (b"GET / HTTP/1.1\r\n\r\n", "200 OK"),
        (b"POST /dashboard HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        (b"DELETE /routes HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        (b"POST /stats HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        (b"GET /stats HTTP/1.1\r\nBad Header\r\n\r\n", "400 Bad Request"),
        (b"\x01\x02 garbage\r\n\r\n", "400 Bad Request"),
    ];

    fn state(config: &str) -> AdminState {
        let config = Arc::new(Config::parse(config, "t.toml").expect("test config"));
        let ids = &mut crate::shard::identity::Identities::default();
        let generation = Generation::build(1, config.clone(), ids, None).expect("test generation").0;
        AdminState {
            shards: Arc::new(vec![Arc::new(ShardCounters::default())]),
            config: Arc::new(ArcSwap::new(config)),
            generation: Arc::new(ArcSwap::from_pointee(generation)),
            load: Default::default(),
            reload: None,
            lifecycle: Arc::new(super::super::lifecycle::Lifecycle::new(1, None)),
        }
    }

    const OPEN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n";

    #[test]
    fn admin_requests_table() {
        let state = state(OPEN);
        for (head, want) in REQUESTS {
            assert!(head_complete(head), "{:?}", String::from_utf8_lossy(head));
            let Answer::Reply(reply) = answer(head, &state) else { panic!("{:?}", String::from_utf8_lossy(head)) };
            assert_eq!(reply.status, *want, "{:?}", String::from_utf8_lossy(head));
        }
        assert!(matches!(answer(b"POST /reload HTTP/1.1\r\n\r\n", &state), Answer::Reload), "to the main thread");
        let Answer::Reply(reply) = answer(b"GET /reload HTTP/1.1\r\n\r\n", &state) else { panic!() };
        assert_eq!(reply.status, "404 Not Found");
        assert!(!head_complete(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    }

    #[test]
    fn too_many_header_fields_trip_the_limit() {
        let mut head = b"GET /stats HTTP/1.1\r\n".to_vec();
        for i in 0..=ADMIN_MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(head_complete(&head));
        let Answer::Reply(reply) = answer(&head, &state(OPEN)) else { panic!() };
        assert_eq!(reply.status, "431 Request Header Fields Too Large");
    }

    #[test]
    fn a_token_guards_every_path_and_config_shows_only_its_source() {
        let state = state(
            &OPEN.replace("listen = \"127.0.0.1:0\"\n[[", "listen = \"127.0.0.1:0\"\ntoken = \"inline-tok\"\n[["),
        );
        for path in ["/stats", "/config", "/nothing", "/healthz", "/routes", "/clusters", "/shards"] {
            let head = format!("GET {path} HTTP/1.1\r\n\r\n");
            let Answer::Reply(reply) = answer(head.as_bytes(), &state) else { panic!() };
            assert_eq!(reply.status, "401 Unauthorized", "{path}");
            assert!(response(&reply).contains("\r\nwww-authenticate: Bearer realm=\"shardgate admin\"\r\n"));
            let head = format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer inline-tok\r\n\r\n");
            let Answer::Reply(reply) = answer(head.as_bytes(), &state) else { panic!() };
            assert_ne!(reply.status, "401 Unauthorized", "{path}");
        }
        let Answer::Reply(reply) = answer(b"GET /config HTTP/1.1\r\nAuthorization: Bearer inline-tok\r\n\r\n", &state)
        else {
            panic!()
        };
        assert_eq!(reply.content_type, "text/plain; charset=utf-8");
        assert!(reply.body.contains("admin: 127.0.0.1:0 token=<secret from the config file>"), "{}", reply.body);
        assert!(!reply.body.contains("inline-tok"), "{}", reply.body);
        // The dashboard page loads without the token and holds no data.
        let Answer::Reply(page) = answer(b"GET /dashboard HTTP/1.1\r\n\r\n", &state) else { panic!() };
        assert_eq!((page.status, page.content_type), ("200 OK", "text/html; charset=utf-8"));
        assert!(!page.body.contains("inline-tok") && !page.body.contains("127.0.0.1"));
    }

    #[test]
    fn connection_slots_stop_at_the_cap_and_come_back_on_drop() {
        let open = Arc::new(AtomicUsize::new(0));
        let held: Vec<ConnectionSlot> =
            (0..MAX_ADMIN_CONNECTIONS).map(|_| ConnectionSlot::take(&open).expect("under the cap")).collect();
        assert!(ConnectionSlot::take(&open).is_none(), "one past the cap");
        drop(held);
        assert_eq!(open.load(Ordering::Acquire), 0);
        assert!(ConnectionSlot::take(&open).is_some());
    }

    #[test]
    fn reload_answers_carry_the_generation_or_every_error() {
        let Reply { status, body, .. } = reload_answer(Ok(ReloadOutcome { generation: 3, warnings: vec![] }));
        assert_eq!(status, "200 OK");
        assert_eq!(body, "{\"reloaded\":true,\"generation\":3,\"warnings\":[]}\n");
        let errors = vec!["routes[0].cluster: no cluster named \"x\" (line 6)".to_string(), "b\\\n\u{1}".to_string()];
        let Reply { status, body, .. } = reload_answer(Err(errors));
        assert_eq!(status, "422 Unprocessable Content");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["errors"][0], "routes[0].cluster: no cluster named \"x\" (line 6)");
        assert_eq!(v["errors"][1], "b\\\n\u{1}");
    }
}
