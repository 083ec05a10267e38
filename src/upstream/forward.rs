//! Forwarding one request to a cluster: the proxy action's phases. The
//! pipeline (`pipeline/mod.rs`, the one statement of stage order) calls
//! them in this order:
//!
//! ```text
//! prepare     (here) validate the body bytes in hand (a malformed first
//!             chunk never reaches an upstream), 100 Continue, upstream head
//!             + body in hand in one buffer; a small Content-Length body is
//!             read whole first, so the request stays replayable
//! select      which endpoint                                  balance.rs
//! send        pool checkout (liveness-checked) or connect; one write
//!                                                               send.rs
//! exchange    (here) receive head -> response stages -> relay, while the
//!             rest of a streamed body goes up at the same time   relay.rs
//! ```
//!
//! A failed try may be sent again (`retry.rs`); the pipeline loops over
//! select -> send -> exchange.

use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use super::receive::{receive_head, HeadError};
use super::relay::{self, relay_response_body, write_to_client, RelayError, Upload, UploadError};
use super::retry::TryFailure;
use super::send::Upstream;
use crate::downstream::conn::{hsts_of, Conn, Failure, Next};
use crate::downstream::exchange::Exchange;
use crate::downstream::stream::Downstream;
use crate::error::{Error, ErrorKind};
use crate::http1::body::{self, BodyDecoder, ChunkError};
use crate::http1::encode::{self, DownstreamFraming, DownstreamHead, ForwardInfo};
use crate::http1::framing::{closes_connection, downstream_framing, KeepAlive};
use crate::http1::parse::Method;
use crate::http1::response::ResponseHead;
use crate::http1::Version;
use crate::io::rent::read_more;
use crate::io::split::{split, WriteHalf};
use crate::shard::buffers::EXCHANGE_BUFFER_BYTES;
use crate::shard::registry::WriteTimeout;
use crate::shard::Shard;

/// A Content-Length body with at most this many bytes still to come is
/// read before the upstream is contacted (see `read_small_body`).
pub const SMALL_BODY_BYTES: u64 = 16 * 1024;

pub use super::receive::MAX_RESPONSE_HEAD_BYTES;

fn chunk_error(e: ChunkError) -> Error {
    Error::new(ErrorKind::BadRequest, e.cause())
}

/// What the response stages see and may refuse (empty for now: the
/// transform and version issues fill them).
pub type ResponseStages = fn(&ResponseHead) -> Result<(), Error>;

/// A request made ready for an upstream: its head and the body bytes in
/// hand are in the connection's `wbuf`; the rest of the body, if any, is
/// still at the client.
pub struct Prepared {
    body: BodyDecoder,
    body_bytes: u64,
    body_limit: u64,
    body_timeout: Duration,
    pub method: Method,
    client_version: Version,
    client_keep_alive: bool,
    /// The whole request is in `wbuf`: it can be sent again.
    pub replayable: bool,
}

/// The prepare phase.
pub async fn prepare<S: Downstream>(
    shard: &Shard,
    c: &mut Conn<S>,
    x: &mut Exchange,
    cluster: usize,
    body_limit: u64,
) -> Result<Prepared, Failure> {
    let body_timeout = c.config.listeners[c.listener].limits.body_timeout;

    // Body bytes that came with the head: validate them now, so a request
    // with a malformed first chunk never reaches an upstream.
    let mut body = BodyDecoder::new(x.head.framing);
    let mut body_bytes: u64 = 0;
    let step = body.decode(&c.rbuf[c.pos..], |r| body_bytes += r.len() as u64).map_err(chunk_error)?;
    if body_bytes > body_limit {
        return Err(Error::new(ErrorKind::BodyTooLarge, "request body larger than the limit").into());
    }
    x.request_done = step.done;
    c.send_continue_if_expected(x).await?;

    // Exchange buffers, from the shard's pool until the request is done.
    shard.buffers.fill(&mut c.wbuf);
    shard.buffers.fill(&mut c.ubuf);

    // Upstream head + the buffered body bytes: one write.
    {
        let config = &*c.config;
        let info = ForwardInfo {
            client: c.client.hop(config.listeners[c.listener].forwarded_headers),
            asserted: &config.asserted_headers,
            // An HTTP/1.0 request without Host gets one (nginx's
            // `$proxy_host`). The head is written before an endpoint is
            // selected, so that a retry on another endpoint sends the same
            // bytes: the cluster's first endpoint stands in.
            fallback_host: config.clusters[cluster].proxy_hosts.first().map(|h| h.as_bytes()),
            underscores_in_headers: config.listeners[c.listener].underscores_in_headers,
            trace: x.trace.as_ref().map(|t| t.fields()),
            proto: if c.tls.is_some() { "https" } else { "http" },
            request_id: &x.request_id,
            path: &x.path,
            query: x.upstream_query(&c.rbuf),
            consumer: x.consumer.and_then(|i| {
                let route = &config.routes[x.outcome.route?];
                let header = &route.policies.auth.as_ref()?.consumer_header;
                Some((header.as_bytes(), config.consumers.list.get(i)?.name.as_bytes()))
            }),
            client_cert: config.listeners[c.listener].tls.as_ref().and_then(|t| t.client_cert_header.as_deref()).map(
                |header| {
                    (header.as_bytes(), c.tls.as_ref().and_then(|t| t.client_identity.as_deref()).map(str::as_bytes))
                },
            ),
        };
        encode::upstream_request_head(&mut c.wbuf, &c.rbuf, &x.head, &info);
    }
    // Request trailers are dropped (see `body::drop_trailer_fields`).
    let consumed = body::drop_trailer_fields(&mut c.rbuf, c.pos, &step);
    c.wbuf.extend_from_slice(&c.rbuf[c.pos..c.pos + consumed]);
    c.pos += consumed;
    // The rest of a small Content-Length body is read now: head and body
    // then leave in one write (one upstream operation instead of two per
    // POST) and the request stays replayable. Larger bodies stream.
    if let BodyDecoder::Length { remaining } = body {
        if !x.request_done && remaining <= SMALL_BODY_BYTES {
            read_small_body(c, x, &mut body, &mut body_bytes, body_timeout).await?;
        }
    }
    // The rest of a streamed body goes through the exchange's own buffer;
    // bytes after it (a pipelined next request) are appended to `rbuf`,
    // which keeps this request's head until it is recorded.
    debug_assert!(x.request_done || c.pos == c.rbuf.len(), "buffered body bytes were sent with the head");
    x.outcome.bytes_received = x.head.head_len as u64 + body_bytes;
    Ok(Prepared {
        body,
        body_bytes,
        body_limit,
        body_timeout,
        method: x.head.method,
        client_version: x.head.version,
        client_keep_alive: x.head.wants_keep_alive(),
        replayable: x.request_done,
    })
}

/// Reads the rest of a small Content-Length body through `c.ubuf` and
/// appends it to the upstream head in `c.wbuf`. Bytes past the body (a
/// pipelined next request) go back to `c.rbuf`.
async fn read_small_body<S: AsyncReadRent + AsyncWriteRent>(
    c: &mut Conn<S>,
    x: &mut Exchange,
    body: &mut BodyDecoder,
    body_bytes: &mut u64,
    body_timeout: Duration,
) -> Result<(), Failure> {
    debug_assert_eq!(c.pos, c.rbuf.len(), "buffered body bytes were consumed");
    c.ubuf.clear();
    let mut end = 0;
    while !body.is_done() {
        match monoio::time::timeout(body_timeout, read_more(&mut c.stream, &mut c.ubuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => {
                return Err(Error::new(ErrorKind::DownstreamClosed, "client closed during the request body").into())
            }
            Err(_) => return Err(Error::new(ErrorKind::BodyTimeout, "request body stalled past body timeout").into()),
        }
        end += body.decode(&c.ubuf[end..], |r| *body_bytes += r.len() as u64).map_err(chunk_error)?.consumed;
    }
    c.wbuf.extend_from_slice(&c.ubuf[..end]);
    c.rbuf.extend_from_slice(&c.ubuf[end..]);
    c.ubuf.clear();
    x.request_done = true;
    Ok(())
}

/// How an exchange failed.
pub enum ExchangeError {
    /// Nothing came back and nothing went to the client: the pipeline may
    /// send the request again (`retry.rs`).
    Retry(TryFailure),
    Failed(Failure),
}

impl From<Failure> for ExchangeError {
    fn from(f: Failure) -> ExchangeError {
        ExchangeError::Failed(f)
    }
}

/// Why the response side stopped.
enum ResponseError {
    Head(HeadError),
    Refused(Error),
    /// The client went away while the head was written.
    HeadWrite,
    Relay(RelayError),
}

/// How the response side ended.
struct ResponseDone {
    close: bool,
    /// The body ended exactly where the upstream's bytes did, and the
    /// upstream allows reuse.
    reusable: bool,
}

/// The exchange phase: receive head -> response stages -> relay, with the
/// upload of the rest of a streamed body running at the same time.
pub async fn exchange<S: Downstream>(
    shard: &Shard,
    c: &mut Conn<S>,
    x: &mut Exchange,
    req: &mut Prepared,
    mut upstream: Upstream,
    stages: ResponseStages,
) -> Result<Next, ExchangeError> {
    let response_timeout = c.config.clusters[upstream.endpoint.cluster].response_timeout;
    let timeout = req.body_timeout;
    let upload_done = Cell::new(x.request_done);
    // When the response head came in.
    let head_at = Cell::new(None::<Instant>);
    let head_seen = Cell::new(false);
    let head_written = Cell::new(false);
    let fin_sent = Cell::new(false);
    let mut upbuf = Vec::new();
    if !x.request_done {
        shard.buffers.fill(&mut upbuf);
    }
    let mut resp = ResponseHead::default();

    let joined = {
        let Conn { stream, ubuf, wbuf, registration, config, listener, .. } = &mut *c;
        let request_id = &x.request_id;
        let hsts = hsts_of(config, *listener);
        let (mut client_r, mut client_w) = split(stream);
        let (mut up_r, mut up_w) = split(&mut upstream.stream);
        let upload_state =
            Upload { body: &mut req.body, body_bytes: &mut req.body_bytes, limit: req.body_limit, timeout };
        let (method, client_version, client_keep_alive) = (req.method, req.client_version, req.client_keep_alive);
        // Pinned where they are made: these futures are large, and moving
        // them into `run_both` would copy them on every request.
        let upload = pin!(async {
            if upload_done.get() {
                return Ok(0);
            }
            let end = relay::upload(&mut client_r, &mut up_w, &mut upbuf, &shard.buffers, upload_state).await?;
            upload_done.set(true);
            Ok(end)
        });
        let registration = &*registration;
        let response = pin!(async {
            receive_head(&mut up_r, ubuf, &mut resp, method).await.map_err(ResponseError::Head)?;
            head_seen.set(true);
            head_at.set(Some(Instant::now()));
            stages(&resp).map_err(ResponseError::Refused)?;

            let mode = downstream_framing(resp.framing, client_version);
            let keep = KeepAlive {
                client_wants: client_keep_alive,
                request_read: upload_done.get(),
                draining: registration.closing(),
            };
            let close = closes_connection(mode, keep);
            let mut body = BodyDecoder::new(resp.framing);
            wbuf.clear();
            let how = DownstreamHead { framing: mode, close, client_version, request_id, hsts };
            encode::downstream_response_head(wbuf, ubuf, &resp, &how);
            let mut pos = resp.head_len;
            if matches!(
                mode,
                DownstreamFraming::Length(_) | DownstreamFraming::ChunkedPassthrough | DownstreamFraming::Empty
            ) {
                // Body bytes that came with the head ride in the same write.
                let step = body.decode(&ubuf[pos..], |_| {}).map_err(|_| {
                    ResponseError::Refused(Error::new(
                        ErrorKind::UpstreamBadResponse,
                        "malformed chunked response body",
                    ))
                })?;
                wbuf.extend_from_slice(&ubuf[pos..pos + step.consumed]);
                pos += step.consumed;
            }
            // Everything read is in the output now: the read buffer goes
            // back to the pool while the head is written (a client that
            // stops reading here holds one buffer, not two) and comes back
            // for the rest of the body.
            let ubuf_spent = pos == ubuf.len();
            // A head read that filled the whole buffer: a large body is
            // streaming, and the relay takes a bulk buffer at once.
            let head_read_filled = ubuf.len() == EXCHANGE_BUFFER_BYTES;
            let bulk = shard.buffers.lease();
            if ubuf_spent {
                shard.buffers.give(ubuf);
                pos = 0;
            }
            head_written.set(true);
            let written = if close && body.is_done() {
                // The whole response is in hand and the connection ends with it.
                registration.set_write_timeout(Some(WriteTimeout::new(timeout)));
                let len = wbuf.len();
                let r = write_last(&mut client_w, wbuf).await.map(|fin| {
                    fin_sent.set(fin);
                    registration.add_sent(len);
                });
                registration.set_write_timeout(None);
                r
            } else {
                let len = wbuf.len();
                write_to_client(&mut client_w, wbuf, 0..len, registration, timeout).await
            };
            written.map_err(|_| ResponseError::HeadWrite)?;
            if !matches!(mode, DownstreamFraming::ChunkEncode | DownstreamFraming::UntilClose { dechunk: true }) {
                // Only re-framing needs the output buffer from here on: a
                // client that stops reading holds one buffer, not two.
                shard.buffers.give(wbuf);
            }
            if ubuf_spent && !body.is_done() && !(head_read_filled && bulk.take_bulk(ubuf)) {
                shard.buffers.fill(ubuf);
            }
            let clean = relay_response_body(
                &mut up_r,
                &mut client_w,
                ubuf,
                wbuf,
                &bulk,
                &mut body,
                mode,
                pos,
                registration,
                timeout,
            )
            .await
            .map_err(ResponseError::Relay)?;
            Ok(ResponseDone { close, reusable: clean && resp.allows_reuse() })
        });
        run_both(upload, response, response_timeout, &head_seen).await
    };
    if fin_sent.get() {
        c.fin_sent = true;
    }
    x.request_done = upload_done.get();
    let started = head_written.get();
    x.outcome.bytes_received = x.head.head_len as u64 + req.body_bytes;
    if let Some(at) = head_at.get() {
        x.outcome.upstream_status = Some(resp.status);
        x.outcome.timings.upstream_head = Some(at - upstream.sent_at);
    }
    if started {
        x.outcome.status = resp.status;
    }
    let result = match joined {
        Joined::ClientFailed(error) => Err(Failure { error, response_started: started }.into()),
        Joined::ResponseTimeout => {
            Err(Failure::from(Error::new(ErrorKind::UpstreamResponseTimeout, "upstream response timed out")).into())
        }
        Joined::Done { upload, response } => match response {
            Ok(done) => {
                if let Some(Ok(end)) = upload {
                    // Bytes after the body: the next pipelined request.
                    if end > 0 {
                        c.rbuf.extend_from_slice(&upbuf[end..]);
                    }
                }
                if done.reusable && x.request_done && !shard.draining() {
                    shard.pool.put(upstream.endpoint.id, upstream.stream);
                }
                // An early response (the body not read to its end) closes:
                // its head said so.
                Ok(if done.close || !x.request_done { Next::Close } else { Next::KeepAlive })
            }
            Err(ResponseError::Head(HeadError::NothingReceived)) => match upload {
                Some(Err(UploadError::Upstream(error))) => Err(Failure::from(error).into()),
                Some(Ok(_)) => Err(ExchangeError::Retry(TryFailure::NothingReceived(Error::new(
                    ErrorKind::UpstreamClosed,
                    "upstream closed the connection without a response",
                )))),
                _ => Err(Failure::from(Error::new(
                    ErrorKind::UpstreamClosed,
                    "upstream closed the connection without a response",
                ))
                .into()),
            },
            Err(ResponseError::Head(HeadError::Failed(error))) | Err(ResponseError::Refused(error)) => {
                Err(Failure { error, response_started: started }.into())
            }
            Err(ResponseError::HeadWrite) | Err(ResponseError::Relay(RelayError::Client)) => Err(Failure {
                error: Error::new(ErrorKind::DownstreamClosed, "client closed during the response"),
                response_started: true,
            }
            .into()),
            Err(ResponseError::Relay(RelayError::Upstream(error))) => {
                Err(Failure { error, response_started: true }.into())
            }
        },
    };
    shard.buffers.give(&mut upbuf);
    result
}

/// The response's last bytes and the end of the client connection (see
/// `Downstream::write_last`).
async fn write_last<S: Downstream>(client: &mut WriteHalf<'_, S>, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    // SAFETY: `write_last` only writes (and shuts the write side down),
    // which `Split` allows beside a read in flight.
    unsafe { client.stream() }.write_last(buf).await
}

/// How the two sides of an exchange ended.
enum Joined {
    /// The response side finished (well or not). `upload` is `None` when
    /// the upload was still running (an early response): it is dropped.
    Done { upload: Option<Result<usize, UploadError>>, response: Result<ResponseDone, ResponseError> },
    /// The client's side of the upload failed: the exchange ends.
    ClientFailed(Error),
    /// The request was sent, and no response head came within the
    /// cluster's `response_timeout`.
    ResponseTimeout,
}

/// Runs the upload and the response side together in this task. The
/// response timeout starts when the upload has ended (or the upstream
/// stopped taking it): a long upload is not a slow upstream.
async fn run_both<U, R>(
    mut upload: Pin<&mut U>,
    mut response: Pin<&mut R>,
    response_timeout: Duration,
    head_seen: &Cell<bool>,
) -> Joined
where
    U: Future<Output = Result<usize, UploadError>>,
    R: Future<Output = Result<ResponseDone, ResponseError>>,
{
    let mut uploaded: Option<Result<usize, UploadError>> = None;
    // Made only once needed; pinned here, not boxed.
    let mut timer = pin!(None::<monoio::time::Sleep>);
    std::future::poll_fn(|cx| {
        if uploaded.is_none() {
            if let Poll::Ready(result) = upload.as_mut().poll(cx) {
                if let Err(UploadError::Client(e)) = result {
                    return Poll::Ready(Joined::ClientFailed(e));
                }
                uploaded = Some(result);
            }
        }
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(Joined::Done { upload: uploaded.take(), response: result });
        }
        if head_seen.get() {
            if timer.is_some() {
                timer.set(None);
            }
        } else if uploaded.is_some() {
            if timer.is_none() {
                timer.set(Some(monoio::time::sleep(response_timeout)));
            }
            if let Some(sleep) = timer.as_mut().as_pin_mut() {
                if sleep.poll(cx).is_ready() {
                    return Poll::Ready(Joined::ResponseTimeout);
                }
            }
        }
        Poll::Pending
    })
    .await
}
