//! The downstream connection loop: read a head, run the pipeline, record
//! what happened, repeat while the connection may stay open.
//!
//! The connection (`Conn`: stream, buffers, listener, generation) is kept
//! apart from the request it is serving (`Exchange`, `exchange.rs`: head,
//! path, request id, client, outcome): the pipeline's stages take both.
//!
//! Where it sits: spawned by `listener.rs` for every accepted connection,
//! on the shard that accepted it, for the connection's whole life.
//!
//! The read loop is "parse what is buffered, read more only if the head is
//! incomplete": pipelined requests already in the buffer are served
//! without a read, in order, because one request is finished (its
//! response fully written) before the next head is parsed.
//!
//! Timeouts: a new connection (or a new request after the first byte) has
//! `header_timeout` for its whole head (slowloris: 408 and close); an idle
//! keep-alive connection waits `idle_timeout` for the first byte of its
//! next request, then is closed silently.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use super::client_addr::ClientAddr;
use super::exchange::Exchange;
use super::stream::Downstream;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::http1::encode::CONTINUE;
use crate::http1::parse::{parse_request, Framing, HeadLimits, HeaderKind, Method};
use crate::http1::Version;
use crate::io::rent::read_more;
use crate::listener::Accepted;
use crate::observe::record::{record, Record};
use crate::pipeline;
use crate::shard::generation::ShardGeneration;
use crate::shard::identity::ListenerId;
use crate::shard::registry::Registration;
use crate::shard::Shard;
use crate::upstream::relay::write_to_client;

/// A connection's head buffer to start with, and what a connection in use
/// shrinks back to between requests (one not in use holds none; see
/// `IN_USE_GAP`) (nginx: client_header_buffer_size 1k). It grows, doubling, up
/// to `max_request_head_bytes` for a larger head. Bodies are relayed
/// through pooled exchange buffers (`buffers.rs`), not through this one.
pub const INITIAL_READ_BUFFER_BYTES: usize = 1024;
/// A client-sent `x-request-id` longer than this is replaced by ours.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// A keep-alive connection whose client came back within this long is
/// "in use": it waits for its next request with its head buffer posted to
/// the kernel (one io_uring operation). One whose client paused longer, and
/// every connection after its first request, waits for readability with no
/// buffer at all and takes one when the bytes are there (nginx's way: idle
/// connections cost no buffer), at the price of one more operation.
pub const IN_USE_GAP: Duration = Duration::from_millis(100);

/// What the TLS handshake established about a downstream connection.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The verified client certificate's subject and SANs (mTLS), when the
    /// listener forwards them.
    pub client_identity: Option<String>,
    /// "TLSv1.3" or "TLSv1.2".
    pub version: Option<&'static str>,
}

/// One downstream connection's state, reused across its requests (the
/// request itself is the `Exchange` beside it).
pub struct Conn<S> {
    /// The generation the current request runs on: taken when its head
    /// is in (`take_newest_generation`), unchanged until the next one.
    pub generation: Rc<ShardGeneration>,
    /// `generation`'s config (the same `Arc`, at hand for the stages).
    pub config: Arc<Config>,
    /// `Some` on a TLS listener.
    pub tls: Option<TlsInfo>,
    pub stream: S,
    pub peer: SocketAddr,
    /// The effective client address: the peer, or whom a trusted peer's
    /// forwarding headers name. Kept with the connection (what it caches
    /// about the peer holds for all its requests) and resolved again for
    /// each request, before the pipeline; everything keyed by the client
    /// reads it.
    pub client: ClientAddr,
    /// Index of the connection's listener in `config.listeners`.
    pub listener: usize,
    /// The listener's stable id (its index may differ between generations).
    pub listener_id: ListenerId,
    /// Bytes read from the client. The current head starts at 0 after
    /// `compact`; bytes past the current message are the next request.
    pub rbuf: Vec<u8>,
    /// Where unconsumed bytes start in `rbuf`.
    pub pos: usize,
    /// Output heads (and small bodies) are assembled here. Pooled.
    pub wbuf: Vec<u8>,
    /// Request body bytes on their way up, then upstream response bytes on
    /// their way down (one after the other). Pooled.
    pub ubuf: Vec<u8>,
    /// The last response went out with the FIN (`Downstream::write_last`):
    /// nothing is left for `finish`.
    pub fin_sent: bool,
    /// The connection's entry in the shard's registry: drain, the idle
    /// timeout and the write deadline act through it.
    pub registration: Registration,
    /// How long a write to the client may go without progress (the
    /// listener's `body_timeout`, nginx's `send_timeout`).
    pub send_timeout: Duration,
}

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    KeepAlive,
    Close,
}

/// A request that could not be served; the connection loop answers it.
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    /// Bytes of the response already went downstream: only closing is honest.
    pub response_started: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure { error, response_started: false }
    }
}

impl<S: AsyncReadRent + AsyncWriteRent> Conn<S> {
    /// The connection, and the exchange its requests will use.
    pub fn new(
        accepted: Accepted,
        stream: S,
        peer: SocketAddr,
        tls: Option<TlsInfo>,
        registration: Registration,
    ) -> (Conn<S>, Exchange) {
        let Accepted { generation, listener_index: listener, id: listener_id } = accepted;
        let config = generation.config().clone();
        let conn = Conn {
            client: ClientAddr::new(peer, &config.listeners[listener].trusted_proxies),
            generation,
            listener_id,
            send_timeout: config.listeners[listener].limits.body_timeout,
            registration,
            rbuf: Vec::with_capacity(INITIAL_READ_BUFFER_BYTES),
            config,
            tls,
            stream,
            peer,
            listener,
            pos: 0,
            wbuf: Vec::new(),
            ubuf: Vec::new(),
            fin_sent: false,
        };
        (conn, Exchange::new())
    }

    /// Moves the connection to the shard's newest generation, if it is
    /// newer and still has the connection's listener (a removed
    /// listener's connection serves this last request on its own
    /// generation, then closes: see `Registry::close_listener`).
    fn take_newest_generation(&mut self, shard: &Shard) {
        if shard.is_current(&self.generation) {
            return;
        }
        let newest = shard.generation();
        let Some(listener) = newest.shared.listener_index(self.listener_id) else { return };
        if newest.config().listeners[listener].tls.is_some() != self.tls.is_some() {
            // The listener switched between plain text and TLS: this
            // connection cannot follow. It ends after this request, served
            // on its own generation.
            self.registration.set_closing();
            return;
        }
        self.config = newest.config().clone();
        self.generation = newest;
        self.listener = listener;
        let l = &self.config.listeners[listener];
        self.send_timeout = l.limits.body_timeout;
        self.client = ClientAddr::new(self.peer, &l.trusted_proxies);
    }

    /// The head limits and timeouts of the connection's listener.
    fn head_limits(&self) -> (HeadLimits, Duration, Duration) {
        let limits = &self.config.listeners[self.listener].limits;
        let head = HeadLimits {
            max_head_bytes: limits.max_request_head_bytes,
            max_headers: limits.max_header_count,
            max_uri_bytes: limits.max_uri_bytes,
        };
        (head, limits.header_timeout, limits.idle_timeout)
    }

    /// Moves unconsumed bytes to the front so the next head starts at 0.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.rbuf.copy_within(self.pos.., 0);
            self.rbuf.truncate(self.rbuf.len() - self.pos);
            self.pos = 0;
        }
    }

    /// Writes `wbuf` to the client, bounded by `send_timeout` without
    /// progress.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let len = self.wbuf.len();
        write_to_client(&mut self.stream, &mut self.wbuf, 0..len, &self.registration, self.send_timeout).await
    }

    /// Sends `100 Continue` if the client is waiting for it before its body.
    pub async fn send_continue_if_expected(&mut self, x: &mut Exchange) -> Result<(), Failure> {
        if x.head.expect_continue && x.head.version == Version::Http11 && !x.request_done {
            x.head.expect_continue = false;
            let mut out = CONTINUE.to_vec();
            let len = out.len();
            write_to_client(&mut self.stream, &mut out, 0..len, &self.registration, self.send_timeout)
                .await
                .map_err(|_| Error::new(ErrorKind::DownstreamClosed, "client closed"))?;
        }
        Ok(())
    }
}

/// Serves one downstream connection until it closes.
pub async fn serve<S: Downstream>(
    shard: Rc<Shard>,
    accepted: Accepted,
    stream: S,
    peer: SocketAddr,
    fd: std::os::fd::RawFd,
    tls: Option<TlsInfo>,
) {
    let registration = shard.registry.register(fd, accepted.id);
    let (mut c, exchange) = Conn::new(accepted, stream, peer, tls, registration);
    // The request state, kept while the connection is in use; one waiting
    // for its client without a head buffer gives it back too, and the
    // next request makes a new one (idle connections cost no more than
    // their socket: see IN_USE_GAP).
    let mut slot = Some(Box::new(exchange));
    let mut first = true;
    // Whether the client has been sending requests in quick succession.
    let mut in_use = false;
    loop {
        // The head is read under the limits of the generation the
        // connection is on (the previous request's); the request then
        // takes the newest one.
        let (head_limits, header_timeout, idle_timeout) = c.head_limits();
        c.compact();
        if c.rbuf.is_empty() {
            // Between requests a connection keeps only a small head buffer:
            // the header index is allocated again by the next parse.
            if c.rbuf.capacity() > INITIAL_READ_BUFFER_BYTES {
                c.rbuf = Vec::with_capacity(INITIAL_READ_BUFFER_BYTES);
            }
            if let Some(x) = slot.as_mut() {
                x.head.headers = Vec::new();
            }
        }
        // When the request started: its first byte, or the accept for a
        // connection's first request.
        let (start, head_deadline) = if c.rbuf.is_empty() && !first {
            // Idle between requests: wait for a first byte, or close.
            // No timer here: the shard's sweeper shuts the socket down at
            // the deadline, which ends this wait (see shard/registry.rs).
            let idle_since = Instant::now();
            c.registration.set_idle_until(idle_since + idle_timeout);
            if !in_use && S::IDLE_WITHOUT_BUFFER {
                c.rbuf = Vec::new();
                slot = None;
                shard.counters.idle_without_buffer(true);
                let ready = c.stream.wait_readable().await;
                shard.counters.idle_without_buffer(false);
                if ready.is_err() {
                    break;
                }
                c.rbuf.reserve_exact(INITIAL_READ_BUFFER_BYTES);
            }
            let read = read_more(&mut c.stream, &mut c.rbuf).await;
            // A request whose first bytes arrived just as the sweeper or a
            // drain shut the connection down is dropped unread: its
            // response could not be sent (see shard/registry.rs).
            let usable = c.registration.set_idle(false);
            match read {
                Ok(n) if n > 0 && usable => {}
                _ => break,
            }
            let now = Instant::now();
            in_use = now - idle_since < IN_USE_GAP;
            (now, now + header_timeout)
        } else if first {
            // A new connection has header_timeout from accept, not from its
            // first byte: a client that never sends anything is slowloris too.
            first = false;
            let now = Instant::now();
            (now, now + header_timeout)
        } else {
            if !c.registration.set_idle(false) {
                break;
            }
            let now = Instant::now();
            (now, now + header_timeout)
        };
        let x: &mut Exchange = slot.get_or_insert_with(|| Box::new(Exchange::new()));
        x.begin(start, c.registration.sent());

        // Read until the head is complete.
        // Whether the head took reads after the one that started it (only
        // then is its read time worth a clock read).
        let mut read_again = false;
        let parsed = loop {
            match parse_request(&c.rbuf, &head_limits, &mut x.head) {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
            let was_empty = c.rbuf.is_empty();
            if c.rbuf.len() == c.rbuf.capacity() {
                // parse_request refuses a head at max_head_bytes, so doubling
                // up to that bound always leaves room to read.
                let grown = (c.rbuf.capacity() * 2).min(head_limits.max_head_bytes.max(INITIAL_READ_BUFFER_BYTES));
                c.rbuf.reserve_exact(grown - c.rbuf.len());
            }
            c.registration.set_idle(was_empty);
            // Boxed: a monoio timer is large, and only this (rare) state
            // needs one; idle connections should not be sized for it.
            let read =
                Box::pin(monoio::time::timeout_at(head_deadline.into(), read_more(&mut c.stream, &mut c.rbuf))).await;
            read_again = true;
            if !c.registration.set_idle(false) {
                break Err(Error::new(ErrorKind::DownstreamClosed, "shut down while idle"));
            }
            match read {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => break Err(Error::new(ErrorKind::DownstreamClosed, "client closed")),
                Err(_) if was_empty => {
                    break Err(Error::new(ErrorKind::DownstreamClosed, "no request before header timeout"))
                }
                Err(_) => {
                    break Err(Error::new(ErrorKind::HeaderTimeout, "request head not received within header timeout"))
                }
            }
        };
        shard.counters.request();
        let head_parsed = parsed.is_ok();
        let next = match parsed {
            Ok(()) => {
                x.head_read(x.head.head_len, read_again);
                c.pos = x.head.head_len;
                x.request_done = x.head.framing == Framing::Empty;
                c.take_newest_generation(&shard);
                c.client.resolve(&x.head, &c.rbuf, &c.config.listeners[c.listener].trusted_proxies);
                resolve_request_id(&shard, &c, x);
                let (tracing, trusted) = (&c.config.tracing, c.client.peer_trusted());
                x.trace = crate::observe::trace::decide(&shard.observe.trace, tracing, &x.head, &c.rbuf, trusted);
                // Boxed: the pipeline's state (the largest part of a
                // connection's future) exists only while a request is being
                // served, not for every idle keep-alive connection.
                match Box::pin(pipeline::handle(&shard, &mut c, x)).await {
                    Ok(next) => next,
                    Err(failure) => Box::pin(c.respond_error(x, failure)).await,
                }
            }
            Err(e) => {
                // The head is unusable: nothing after it can be trusted.
                x.head.version = Version::Http11;
                x.head.method = Method::Get;
                x.request_done = false;
                shard.next_request_id(&mut x.request_id);
                Box::pin(c.respond_error(x, e.into())).await
            }
        };
        x.finish(c.registration.sent());
        // A connection that ends without a request (closed or timed out
        // while idle before any byte of one) has nothing to record.
        if head_parsed || x.outcome.status != 0 || c.rbuf.len() > c.pos {
            record(
                &shard,
                &Record {
                    generation: &c.generation,
                    listener: c.listener,
                    peer: c.peer,
                    client: c.client.addr(),
                    head: head_parsed.then_some(&x.head),
                    rbuf: &c.rbuf,
                    path: &x.path,
                    request_id: &x.request_id,
                    tls_version: c.tls.as_ref().and_then(|t| t.version),
                    trace_id: x.trace.as_ref().map(|t| &t.trace_id_hex[..]),
                    trace: x.trace.as_ref(),
                    consumer: x.consumer.and_then(|i| c.config.consumers.list.get(i)).map(|c| c.name.as_str()),
                    credential: x.credential.clone(),
                    outcome: &x.outcome,
                },
            );
        }
        shard.buffers.give(&mut c.ubuf);
        shard.buffers.give(&mut c.wbuf);
        if next == Next::Close {
            break;
        }
    }
    let Conn { registration, mut stream, fin_sent, .. } = c;
    drop(registration);
    if !fin_sent {
        stream.finish().await;
    }
}

/// The Strict-Transport-Security value of a listener, if it sets one.
pub fn hsts_of(config: &Config, listener: usize) -> Option<&[u8]> {
    config.listeners[listener].tls.as_ref().and_then(|t| t.hsts.as_deref()).map(str::as_bytes)
}

/// Keeps a sane `x-request-id` from a trusted proxy, or makes one. From
/// anyone else an id is not taken: a client could pick one to collide
/// with, or pass for, another request's in the upstream's logs.
fn resolve_request_id<S>(shard: &Shard, c: &Conn<S>, x: &mut Exchange) {
    let sent = match c.client.peer_trusted() {
        true => x.head.headers.iter().find(|h| h.kind == HeaderKind::XRequestId).map(|h| h.value.of(&c.rbuf)),
        false => None,
    };
    match sent {
        Some(id) if !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES && id.iter().all(|b| b.is_ascii_graphic()) => {
            x.request_id.clear();
            x.request_id.extend_from_slice(id);
        }
        _ => shard.next_request_id(&mut x.request_id),
    }
}
