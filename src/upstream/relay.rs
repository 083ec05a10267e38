//! The relay phase: body bytes in both directions at once, and every write
//! bounded by time without progress.
//!
//! Where it sits: inside the exchange (`forward.rs`). Once the request head
//! is upstream, two loops run side by side in the connection's task: the
//! upload (the rest of the request body, client -> upstream) and the
//! response (head, then body, upstream -> client). An upstream that answers
//! while it reads (echo, streaming APIs) or answers early (413, 401) is
//! served as Envoy and HAProxy serve it.
//!
//! Timeouts measure time without progress (nginx's `send_timeout`,
//! `proxy_send_timeout`; Envoy's stream idle timeout), never the length of
//! a whole transfer: a steady slow reader gets its whole download.
//! - a write to the client: the connection registry's write deadline,
//!   refreshed at each partial write and enforced by the shard's sweeper
//!   (no timer per write, see `shard/registry.rs`);
//! - a read from the client or the upstream, a write to the upstream: one
//!   timer per operation, each partial write its own operation.

use std::ops::Range;
use std::time::Duration;

use monoio::buf::Slice;
use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::error::{Error, ErrorKind};
use crate::http1::body::{self, BodyDecoder, ChunkError};
use crate::http1::encode::{self, DownstreamFraming};
use crate::io::rent::read_more;
use crate::shard::buffers::{BufferPool, BulkLease};
use crate::shard::registry::{Registration, WriteTimeout};

/// Writes `buf[range]` to the client. Each partial write must make
/// progress within `timeout`, or the sweeper shuts the connection down and
/// the write fails.
pub async fn write_to_client<W: AsyncWriteRent>(
    client: &mut W,
    buf: &mut Vec<u8>,
    range: Range<usize>,
    registration: &Registration,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut pos = range.start;
    let limit = WriteTimeout::new(timeout);
    let result = loop {
        if pos >= range.end {
            break Ok(());
        }
        registration.set_write_timeout(Some(limit));
        let owned = std::mem::take(buf);
        let (res, slice) = client.write(Slice::new(owned, pos, range.end)).await;
        *buf = slice.into_inner();
        match res {
            Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                pos += n;
                registration.add_sent(n);
            }
            Err(e) => break Err(e),
        }
    };
    registration.set_write_timeout(None);
    result
}

/// Writes `buf[range]` to the upstream; each partial write must make
/// progress within `timeout`.
pub async fn write_to_upstream<W: AsyncWriteRent>(
    upstream: &mut W,
    buf: &mut Vec<u8>,
    range: Range<usize>,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut pos = range.start;
    while pos < range.end {
        let owned = std::mem::take(buf);
        let (res, slice) = match monoio::time::timeout(timeout, upstream.write(Slice::new(owned, pos, range.end))).await
        {
            Ok(done) => done,
            // The buffer went with the cancelled operation: the caller
            // abandons this upstream connection.
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        };
        *buf = slice.into_inner();
        match res {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => pos += n,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why the upload stopped.
#[derive(Debug)]
pub enum UploadError {
    /// The client's side failed (closed, stalled, too large, malformed):
    /// the exchange ends.
    Client(Error),
    /// The upstream stopped taking the body (closed, or no progress): its
    /// response, if one comes, is still relayed.
    Upstream(Error),
}

fn chunk_error(e: ChunkError) -> UploadError {
    UploadError::Client(Error::new(ErrorKind::BadRequest, e.cause()))
}

/// The rest of a request body, client -> upstream.
pub struct Upload<'a> {
    pub body: &'a mut BodyDecoder,
    /// Payload bytes so far (counted against `limit`).
    pub body_bytes: &'a mut u64,
    pub limit: u64,
    pub timeout: Duration,
}

/// Streams the rest of the body through `buf`. Returns where bytes past
/// the body (a pipelined next request) start in `buf`.
pub async fn upload<R: AsyncReadRent, W: AsyncWriteRent>(
    client: &mut R,
    upstream: &mut W,
    buf: &mut Vec<u8>,
    buffers: &BufferPool,
    up: Upload<'_>,
) -> Result<usize, UploadError> {
    buf.clear();
    let mut pos = 0;
    let bulk = buffers.lease();
    loop {
        if pos == buf.len() {
            bulk.grow_if_filled(buf);
            pos = 0;
            match monoio::time::timeout(up.timeout, read_more(client, buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => {
                    return Err(UploadError::Client(Error::new(
                        ErrorKind::DownstreamClosed,
                        "client closed during the request body",
                    )))
                }
                Err(_) => {
                    return Err(UploadError::Client(Error::new(
                        ErrorKind::BodyTimeout,
                        "request body stalled past body timeout",
                    )))
                }
            }
        }
        let mut data = 0u64;
        let step = up.body.decode(&buf[pos..], |r| data += r.len() as u64).map_err(chunk_error)?;
        *up.body_bytes += data;
        if *up.body_bytes > up.limit {
            return Err(UploadError::Client(Error::new(ErrorKind::BodyTooLarge, "request body larger than the limit")));
        }
        // Request trailers are dropped (see `body::drop_trailer_fields`).
        let consumed = body::drop_trailer_fields(buf, pos, &step);
        let range = pos..pos + consumed;
        if write_to_upstream(upstream, buf, range, up.timeout).await.is_err() {
            return Err(UploadError::Upstream(Error::new(
                ErrorKind::UpstreamClosed,
                "upstream stopped reading the request body",
            )));
        }
        pos += consumed;
        if step.done {
            return Ok(pos);
        }
    }
}

/// Why the response body relay stopped early.
pub enum RelayError {
    Upstream(Error),
    /// The client went away or stopped reading.
    Client,
}

/// The response body, upstream -> client, from `ubuf[pos..]` on. `wbuf`
/// carries re-framed bytes (HTTP/1.0 clients, close-delimited upstreams).
/// Returns whether the body ended exactly at the end of what was read (so
/// the upstream connection carries nothing stray and may be reused).
#[allow(clippy::too_many_arguments)]
pub async fn relay_response_body<R: AsyncReadRent, W: AsyncWriteRent>(
    upstream: &mut R,
    client: &mut W,
    ubuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    bulk: &BulkLease<'_>,
    body: &mut BodyDecoder,
    mode: DownstreamFraming,
    mut pos: usize,
    registration: &Registration,
    timeout: Duration,
) -> Result<bool, RelayError> {
    let bad_body =
        || RelayError::Upstream(Error::new(ErrorKind::UpstreamBadResponse, "malformed chunked response body"));
    loop {
        if body.is_done() {
            return Ok(pos == ubuf.len());
        }
        if pos < ubuf.len() {
            let step = match mode {
                DownstreamFraming::UntilClose { dechunk: true } | DownstreamFraming::ChunkEncode => {
                    // Re-framing copies the payload through wbuf (rare paths:
                    // HTTP/1.0 clients, close-delimited upstreams).
                    wbuf.clear();
                    let mut ranges: Vec<Range<usize>> = Vec::new();
                    let step = body.decode(&ubuf[pos..], |r| ranges.push(r)).map_err(|_| bad_body())?;
                    for r in ranges {
                        let data = &ubuf[pos + r.start..pos + r.end];
                        if mode == DownstreamFraming::ChunkEncode {
                            encode::chunk_header(wbuf, data.len());
                            wbuf.extend_from_slice(data);
                            wbuf.extend_from_slice(b"\r\n");
                        } else {
                            wbuf.extend_from_slice(data);
                        }
                    }
                    let len = wbuf.len();
                    write_to_client(client, wbuf, 0..len, registration, timeout)
                        .await
                        .map_err(|_| RelayError::Client)?;
                    step
                }
                _ => {
                    let step = body.decode(&ubuf[pos..], |_| {}).map_err(|_| bad_body())?;
                    let range = pos..pos + step.consumed;
                    write_to_client(client, ubuf, range, registration, timeout)
                        .await
                        .map_err(|_| RelayError::Client)?;
                    step
                }
            };
            pos += step.consumed;
            continue;
        }
        bulk.grow_if_filled(ubuf);
        pos = 0;
        match monoio::time::timeout(timeout, read_more(upstream, ubuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // A clean end (a TLS upstream's close_notify, or TCP) ends a
            // close-delimited body. An error (a TLS end without
            // close_notify, a reset) is a truncation: no final chunk, the
            // client's connection closes short.
            Ok(Ok(_)) if matches!(body, BodyDecoder::UntilClose) => {
                if mode == DownstreamFraming::ChunkEncode {
                    wbuf.clear();
                    wbuf.extend_from_slice(encode::LAST_CHUNK);
                    let len = wbuf.len();
                    write_to_client(client, wbuf, 0..len, registration, timeout)
                        .await
                        .map_err(|_| RelayError::Client)?;
                }
                return Ok(false);
            }
            Ok(Ok(_)) => {
                return Err(RelayError::Upstream(Error::new(
                    ErrorKind::UpstreamClosed,
                    "upstream closed mid response body",
                )))
            }
            Ok(Err(_)) => {
                return Err(RelayError::Upstream(Error::new(
                    ErrorKind::UpstreamClosed,
                    "upstream connection failed mid response body",
                )))
            }
            Err(_) => {
                return Err(RelayError::Upstream(Error::new(
                    ErrorKind::UpstreamBodyTimeout,
                    "upstream response body stalled",
                )))
            }
        }
    }
}
