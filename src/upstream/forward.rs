//! Forwarding one request to a cluster and relaying the response.
//!
//! Where it sits: the `proxy` action, the last pipeline stage.
//!
//! ```text
//! validate buffered body bytes (a malformed chunk is refused before any
//!   upstream is contacted) -> 100 Continue if the client waits for it
//! -> upstream head (+ body bytes already read) assembled in one buffer
//! -> pick endpoint (round robin) -> pool checkout or connect
//! -> one write; stream the rest of the body
//! -> read the response head (response_timeout), skip 1xx
//! -> downstream head (+ first body bytes) in one write; stream the rest
//! -> pool the upstream connection if the exchange ended cleanly
//! ```
//!
//! Retry rule (pingora's `ReusedOnly`): a request that fails on a REUSED
//! pooled connection before any response byte arrived is sent once more on
//! a fresh connection, if the whole request is still in hand (its body was
//! not streamed) and either the method is idempotent or the write itself
//! failed (so the upstream cannot have processed it).

use std::ops::Range;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use rustls::ClientConnection;

use super::stream::UpstreamStream;
use crate::error::{Error, ErrorKind};
use crate::http1::body::{self, BodyDecoder, ChunkError};
use crate::http1::buffers::BufferPool;
use crate::http1::conn::{hsts_of, Conn, Downstream, Failure, Next};
use crate::http1::encode::{self, DownstreamFraming, DownstreamHead, ForwardInfo};
use crate::http1::io::{read_more, write_all, write_range};
use crate::http1::parse::Framing;
use crate::http1::response::{parse_response, ResponseHead};
use crate::http1::Version;
use crate::shard::Shard;
use crate::tls::stream::TlsStream;

/// A Content-Length body with at most this many bytes still to come is
/// read before the upstream is contacted (see `read_small_body`).
pub const SMALL_BODY_BYTES: u64 = 16 * 1024;

/// Largest upstream response head accepted.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;

fn err(kind: ErrorKind, cause: &'static str) -> Error {
    Error::new(kind, cause)
}

fn started(error: Error) -> Failure {
    Failure { error, response_started: true }
}

fn chunk_error(e: ChunkError) -> Error {
    Error::new(ErrorKind::BadRequest, e.cause())
}

/// Proxies the request in `c` to `cluster`. `query` is the span of the
/// original query in `c.rbuf`.
pub async fn proxy<S: Downstream>(
    shard: &Shard,
    c: &mut Conn<S>,
    cluster_index: usize,
    body_limit: u64,
    query: Option<Range<usize>>,
) -> Result<Next, Failure> {
    // Borrowed, not cloned: an Arc clone per request would bounce its
    // shared refcount between cores.
    let config = &*shard.config;
    let cluster = &config.clusters[cluster_index];
    let body_timeout = config.listeners[c.listener].limits.body_timeout;

    // Body bytes that came with the head: validate them now, so a request
    // with a malformed first chunk never reaches an upstream.
    let mut body = BodyDecoder::new(c.head.framing);
    let mut body_bytes: u64 = 0;
    let step = body.decode(&c.rbuf[c.pos..], |r| body_bytes += r.len() as u64).map_err(chunk_error)?;
    if body_bytes > body_limit {
        return Err(err(ErrorKind::BodyTooLarge, "request body larger than the limit").into());
    }
    c.request_done = step.done;
    c.send_continue_if_expected().await?;

    // Exchange buffers, from the shard's pool until the request is done.
    shard.buffers.fill(&mut c.wbuf);
    shard.buffers.fill(&mut c.ubuf);

    // Upstream head + the buffered body bytes: one write.
    {
        let info = ForwardInfo {
            client: c.client.hop(config.listeners[c.listener].forwarded_headers),
            asserted: &config.asserted_headers,
            // The head is written before the endpoint is picked: the
            // cluster's first endpoint stands in (the hook for the chosen
            // endpoint's `proxy_hosts[index]` once selection comes first).
            fallback_host: cluster.proxy_hosts.first().map(|h| h.as_bytes()),
            proto: if c.tls.is_some() { "https" } else { "http" },
            request_id: &c.request_id,
            path: &c.path,
            query: query.map(|q| &c.rbuf[q]),
            client_cert: c.config.listeners[c.listener].tls.as_ref().and_then(|t| t.client_cert_header.as_deref()).map(
                |header| {
                    (header.as_bytes(), c.tls.as_ref().and_then(|t| t.client_identity.as_deref()).map(str::as_bytes))
                },
            ),
        };
        encode::upstream_request_head(&mut c.wbuf, &c.rbuf, &c.head, &info);
    }
    let consumed = body::drop_trailer_fields(&mut c.rbuf, c.pos, &step);
    c.wbuf.extend_from_slice(&c.rbuf[c.pos..c.pos + consumed]);
    c.pos += consumed;
    // The rest of a small Content-Length body is read now: head and body
    // then leave in one write (one upstream operation instead of two per
    // POST) and the request stays replayable. Larger bodies stream.
    if let BodyDecoder::Length { remaining } = body {
        if !c.request_done && remaining <= SMALL_BODY_BYTES {
            read_small_body(c, &mut body, body_timeout).await?;
        }
    }
    let replayable = c.request_done;
    let method = c.head.method;
    let client_version = c.head.version;
    let client_keep_alive = c.head.wants_keep_alive();

    // Per exchange, not per connection: idle connections hold no response state.
    let mut resp = ResponseHead::default();
    let mut attempt = 0;
    let (mut upstream, endpoint) = loop {
        attempt += 1;
        let index = shard.balancers[cluster_index].pick(cluster.endpoints.len());
        let endpoint = shard.endpoint_id(cluster_index, index);
        // A retry always uses a fresh connection.
        let pooled = if attempt == 1 { shard.pool.checkout(endpoint) } else { None };
        let reused = pooled.is_some();
        let mut upstream = match pooled {
            Some(s) => {
                shard.counters.upstream_reuse();
                s
            }
            None => connect(shard, cluster_index, index, cluster.connect_timeout).await?,
        };
        let can_retry = reused && replayable && attempt == 1;
        if write_all(&mut upstream, &mut c.wbuf).await.is_err() {
            if can_retry {
                shard.counters.upstream_retry();
                continue;
            }
            return Err(
                err(ErrorKind::UpstreamClosed, "upstream closed the connection while the request was sent").into()
            );
        }
        if !c.request_done {
            relay_request_body(c, &shard.buffers, &mut upstream, &mut body, &mut body_bytes, body_limit, body_timeout)
                .await?;
        }
        match read_response_head(c, &mut resp, &mut upstream, method, cluster.response_timeout).await {
            Ok(()) => break (upstream, endpoint),
            Err(HeadError::NothingReceived) if can_retry && method.is_idempotent() => {
                shard.counters.upstream_retry();
                continue;
            }
            Err(HeadError::NothingReceived) => {
                return Err(err(ErrorKind::UpstreamClosed, "upstream closed the connection without a response").into())
            }
            Err(HeadError::Failed(e)) => return Err(e.into()),
        }
    };

    // Downstream framing and keep-alive.
    let resp_framing = resp.framing;
    let mode = match (resp_framing, client_version) {
        (Framing::Empty, _) => DownstreamFraming::Empty,
        (Framing::Length(n), _) => DownstreamFraming::Length(n),
        (Framing::Chunked, Version::Http11) => DownstreamFraming::ChunkedPassthrough,
        (Framing::Chunked, Version::Http10) => DownstreamFraming::UntilClose { dechunk: true },
        (Framing::UntilClose, Version::Http11) => DownstreamFraming::ChunkEncode,
        (Framing::UntilClose, Version::Http10) => DownstreamFraming::UntilClose { dechunk: false },
    };
    let close = !client_keep_alive
        || !c.request_done
        || shard.draining()
        || matches!(mode, DownstreamFraming::UntilClose { .. });

    let head_len = resp.head_len;
    let mut response = BodyDecoder::new(resp_framing);
    c.wbuf.clear();
    let hsts = hsts_of(config, c.listener);
    let how = DownstreamHead { framing: mode, close, client_version, request_id: &c.request_id, hsts };
    encode::downstream_response_head(&mut c.wbuf, &c.ubuf, &resp, &how);
    let upstream_reusable = resp.allows_reuse();
    let mut pos = head_len;
    if matches!(mode, DownstreamFraming::Length(_) | DownstreamFraming::ChunkedPassthrough | DownstreamFraming::Empty) {
        // Body bytes that came with the head ride in the same write.
        let step = response
            .decode(&c.ubuf[pos..], |_| {})
            .map_err(|_| err(ErrorKind::UpstreamBadResponse, "malformed chunked response body"))?;
        c.wbuf.extend_from_slice(&c.ubuf[pos..pos + step.consumed]);
        pos += step.consumed;
    }
    let written = if close && response.is_done() {
        // The whole response is in hand and the connection ends with it.
        c.stream.write_last(&mut c.wbuf).await.map(|fin| c.fin_sent = fin)
    } else {
        write_all(&mut c.stream, &mut c.wbuf).await
    };
    written.map_err(|_| started(err(ErrorKind::DownstreamClosed, "client closed")))?;

    let clean = relay_response_body(c, &shard.buffers, &mut upstream, &mut response, mode, pos, body_timeout).await?;
    if clean && upstream_reusable && c.request_done && !shard.draining() {
        shard.pool.put(endpoint, upstream);
    }
    Ok(if close { Next::Close } else { Next::KeepAlive })
}

/// Opens a fresh connection to endpoint `index` of the cluster: TCP, then
/// the TLS handshake if the cluster speaks TLS, both within `timeout`.
async fn connect(shard: &Shard, cluster: usize, index: usize, timeout: Duration) -> Result<UpstreamStream, Error> {
    shard.counters.upstream_connect();
    let addr = shard.config.clusters[cluster].endpoints[index];
    let deadline = monoio::time::Instant::now() + timeout;
    let stream = match monoio::time::timeout_at(deadline, TcpStream::connect_addr(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(err(ErrorKind::UpstreamConnectFailed, "upstream connection refused"))
        }
        Ok(Err(e)) => {
            return Err(Error::new(ErrorKind::UpstreamConnectFailed, format!("upstream connect failed: {e}")))
        }
        Err(_) => return Err(err(ErrorKind::UpstreamConnectTimeout, "upstream connect timed out")),
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = shard.tls.clusters[cluster].as_ref() else {
        return Ok(UpstreamStream::Plain(stream));
    };
    let session = ClientConnection::new(tls.config.clone(), tls.server_names[index].clone())
        .map_err(|e| Error::new(ErrorKind::UpstreamTlsFailed, format!("upstream TLS setup failed: {e}")))?;
    let mut stream = TlsStream::new(stream, session);
    match monoio::time::timeout_at(deadline, stream.handshake()).await {
        Ok(Ok(())) => Ok(UpstreamStream::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(Error::new(ErrorKind::UpstreamTlsFailed, format!("upstream TLS handshake failed: {e}"))),
        Err(_) => Err(err(ErrorKind::UpstreamConnectTimeout, "upstream TLS handshake timed out")),
    }
}

/// Reads the rest of a small Content-Length body through `c.ubuf` and
/// appends it to the upstream head in `c.wbuf`. Bytes past the body (a
/// pipelined next request) go back to `c.rbuf`.
async fn read_small_body<S: AsyncReadRent + AsyncWriteRent>(
    c: &mut Conn<S>,
    body: &mut BodyDecoder,
    body_timeout: Duration,
) -> Result<(), Failure> {
    debug_assert_eq!(c.pos, c.rbuf.len(), "buffered body bytes were consumed");
    c.ubuf.clear();
    let mut end = 0;
    while !body.is_done() {
        match monoio::time::timeout(body_timeout, read_more(&mut c.stream, &mut c.ubuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return Err(err(ErrorKind::DownstreamClosed, "client closed during the request body").into()),
            Err(_) => return Err(err(ErrorKind::BodyTimeout, "request body stalled past body timeout").into()),
        }
        end += body.decode(&c.ubuf[end..], |_| {}).map_err(chunk_error)?.consumed;
    }
    c.wbuf.extend_from_slice(&c.ubuf[..end]);
    c.rbuf.extend_from_slice(&c.ubuf[end..]);
    c.ubuf.clear();
    c.request_done = true;
    Ok(())
}

/// Streams the rest of the request body from the client to the upstream,
/// through the exchange buffer `c.ubuf` (the bytes that came with the head
/// were already sent with it). Bytes after the body — a pipelined next
/// request — go back to `c.rbuf`.
async fn relay_request_body<S: AsyncReadRent + AsyncWriteRent>(
    c: &mut Conn<S>,
    buffers: &BufferPool,
    upstream: &mut UpstreamStream,
    body: &mut BodyDecoder,
    body_bytes: &mut u64,
    body_limit: u64,
    body_timeout: Duration,
) -> Result<(), Failure> {
    debug_assert_eq!(c.pos, c.rbuf.len(), "buffered body bytes were sent with the head");
    c.rbuf.clear();
    c.pos = 0;
    c.ubuf.clear();
    let mut pos = 0;
    loop {
        if pos == c.ubuf.len() {
            buffers.grow_if_filled(&mut c.ubuf);
            pos = 0;
            match monoio::time::timeout(body_timeout, read_more(&mut c.stream, &mut c.ubuf)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Err(err(ErrorKind::DownstreamClosed, "client closed during the request body").into()),
                Err(_) => return Err(err(ErrorKind::BodyTimeout, "request body stalled past body timeout").into()),
            }
        }
        let mut data = 0u64;
        let step = body.decode(&c.ubuf[pos..], |r| data += r.len() as u64).map_err(chunk_error)?;
        *body_bytes += data;
        if *body_bytes > body_limit {
            return Err(err(ErrorKind::BodyTooLarge, "request body larger than the limit").into());
        }
        let consumed = body::drop_trailer_fields(&mut c.ubuf, pos, &step);
        let range = pos..pos + consumed;
        match monoio::time::timeout(body_timeout, write_range(upstream, &mut c.ubuf, range)).await {
            Ok(Ok(())) => {}
            _ => return Err(err(ErrorKind::UpstreamClosed, "upstream stopped reading the request body").into()),
        }
        pos += consumed;
        if step.done {
            c.request_done = true;
            c.rbuf.extend_from_slice(&c.ubuf[pos..]);
            c.ubuf.clear();
            return Ok(());
        }
    }
}

enum HeadError {
    /// The connection ended before a single response byte: may be retried.
    NothingReceived,
    Failed(Error),
}

/// Reads the response head into `c.ubuf` and parses it into `resp`,
/// skipping interim (1xx) responses.
async fn read_response_head<S>(
    c: &mut Conn<S>,
    resp: &mut ResponseHead,
    upstream: &mut UpstreamStream,
    method: crate::http1::parse::Method,
    response_timeout: Duration,
) -> Result<(), HeadError> {
    c.ubuf.clear();
    let deadline = monoio::time::Instant::now() + response_timeout;
    let mut received_any = false;
    loop {
        if !c.ubuf.is_empty() {
            match parse_response(&c.ubuf, MAX_RESPONSE_HEAD_BYTES, method, resp) {
                Ok(true) if (100..200).contains(&resp.status) => {
                    if resp.status == 101 {
                        return Err(HeadError::Failed(err(
                            ErrorKind::UpstreamBadResponse,
                            "unexpected 101 from upstream",
                        )));
                    }
                    // 100/102/103: an interim response; the final one follows.
                    let rest = resp.head_len;
                    c.ubuf.drain(..rest);
                    continue;
                }
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(HeadError::Failed(e)),
            }
        }
        match monoio::time::timeout_at(deadline, read_more(upstream, &mut c.ubuf)).await {
            Ok(Ok(n)) if n > 0 => received_any = true,
            Ok(_) if !received_any => return Err(HeadError::NothingReceived),
            Ok(_) => {
                return Err(HeadError::Failed(err(ErrorKind::UpstreamClosed, "upstream closed mid response head")))
            }
            Err(_) => {
                return Err(HeadError::Failed(err(ErrorKind::UpstreamResponseTimeout, "upstream response timed out")))
            }
        }
    }
}

/// Streams the response body from `c.ubuf[pos..]` on. Returns whether the
/// body ended exactly at the end of what was read (so the upstream
/// connection carries nothing stray and may be reused).
async fn relay_response_body<S: AsyncReadRent + AsyncWriteRent>(
    c: &mut Conn<S>,
    buffers: &BufferPool,
    upstream: &mut UpstreamStream,
    body: &mut BodyDecoder,
    mode: DownstreamFraming,
    mut pos: usize,
    body_timeout: Duration,
) -> Result<bool, Failure> {
    let bad_body = || started(err(ErrorKind::UpstreamBadResponse, "malformed chunked response body"));
    let client_gone = || started(err(ErrorKind::DownstreamClosed, "client closed during the response"));
    loop {
        if body.is_done() {
            return Ok(pos == c.ubuf.len());
        }
        if pos < c.ubuf.len() {
            let step = match mode {
                DownstreamFraming::UntilClose { dechunk: true } | DownstreamFraming::ChunkEncode => {
                    // Re-framing copies the payload through wbuf (rare paths:
                    // HTTP/1.0 clients, close-delimited upstreams).
                    c.wbuf.clear();
                    let mut ranges: Vec<Range<usize>> = Vec::new();
                    let step = body.decode(&c.ubuf[pos..], |r| ranges.push(r)).map_err(|_| bad_body())?;
                    for r in ranges {
                        let data = &c.ubuf[pos + r.start..pos + r.end];
                        if mode == DownstreamFraming::ChunkEncode {
                            encode::chunk_header(&mut c.wbuf, data.len());
                            c.wbuf.extend_from_slice(data);
                            c.wbuf.extend_from_slice(b"\r\n");
                        } else {
                            c.wbuf.extend_from_slice(data);
                        }
                    }
                    write_timed(&mut c.stream, &mut c.wbuf, None, body_timeout).await.map_err(|_| client_gone())?;
                    step
                }
                _ => {
                    let step = body.decode(&c.ubuf[pos..], |_| {}).map_err(|_| bad_body())?;
                    let range = pos..pos + step.consumed;
                    write_timed(&mut c.stream, &mut c.ubuf, Some(range), body_timeout)
                        .await
                        .map_err(|_| client_gone())?;
                    step
                }
            };
            pos += step.consumed;
            continue;
        }
        buffers.grow_if_filled(&mut c.ubuf);
        pos = 0;
        match monoio::time::timeout(body_timeout, read_more(upstream, &mut c.ubuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) if matches!(body, BodyDecoder::UntilClose) => {
                if mode == DownstreamFraming::ChunkEncode {
                    c.wbuf.clear();
                    c.wbuf.extend_from_slice(encode::LAST_CHUNK);
                    write_timed(&mut c.stream, &mut c.wbuf, None, body_timeout).await.map_err(|_| client_gone())?;
                }
                return Ok(false);
            }
            Ok(_) => return Err(started(err(ErrorKind::UpstreamClosed, "upstream closed mid response body"))),
            Err(_) => return Err(started(err(ErrorKind::UpstreamBodyTimeout, "upstream response body stalled"))),
        }
    }
}

/// A downstream write bounded by `body_timeout`, so a client that stops
/// reading cannot pin the connection (and its upstream) forever.
async fn write_timed<S: AsyncWriteRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    range: Option<Range<usize>>,
    timeout: Duration,
) -> std::io::Result<()> {
    let range = range.unwrap_or(0..buf.len());
    match monoio::time::timeout(timeout, write_range(stream, buf, range)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")),
    }
}
