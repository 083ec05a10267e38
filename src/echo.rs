//! `shardgate echo`: a small, fast built-in HTTP/1.1 upstream for demos,
//! tests and benchmarks, on the same shards and codec as the proxy.
//!
//! - `/bytes/N`: N bytes of `x` (streamed, Content-Length).
//! - `/delay/MS`: answers after MS milliseconds.
//! - `/status/N`: answers with status N.
//! - anything else: 200 with the request echoed back as the body: the head
//!   exactly as received, then the body (streamed; chunked in, chunked out).
//!
//! `--delay-ms` delays every answer (an endpoint that is slow on every
//! path, for the load-balancing benchmark's "one endpoint 50 ms slow").

use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, CancelHandle};
use monoio::net::{TcpListener, TcpStream};

use crate::config::IoDriver;
use crate::http1::body::BodyDecoder;
use crate::http1::parse::{parse_request, Framing, HeadLimits, RequestHead};
use crate::io::rent::{read_more, write_all, write_range};
use crate::listener::{bind_shared, SocketOptions};
use crate::shard::spawn::{spawn_shard, Placement};

/// Largest `/delay/MS` honoured.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
const READ_BUFFER_BYTES: usize = 64 * 1024;
const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 64 * 1024, max_headers: 256, max_uri_bytes: 16 * 1024 };
static FILL: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// Starts the echo server's shards in the background; returns the bound
/// address. Threads run until the process exits. Every answer waits
/// `delay` first (zero: none).
pub fn start_background(
    listen: SocketAddr,
    shards: usize,
    driver: IoDriver,
    delay: Duration,
) -> std::io::Result<SocketAddr> {
    let placement = Placement { shards: shards.max(1), cpus: None, driver, ring_entries: 256 };
    let (sockets, bound) = bind_shared(listen, placement.shards, SocketOptions::default())?;
    for (id, socket) in sockets.into_iter().enumerate() {
        spawn_shard(id, &placement, move || async move {
            let Ok(listener) = TcpListener::from_std(socket) else { return };
            let never = monoio::io::Canceller::new();
            accept_loop(listener, never.handle(), delay).await;
        })?;
    }
    Ok(bound)
}

async fn accept_loop(listener: TcpListener, cancel: CancelHandle, delay: Duration) {
    let listener = Rc::new(listener);
    loop {
        match listener.cancelable_accept(cancel.clone()).await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve(stream, delay));
            }
            Err(_) => monoio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn serve(mut stream: TcpStream, delay: Duration) {
    let mut rbuf = Vec::with_capacity(READ_BUFFER_BYTES);
    let mut wbuf = Vec::with_capacity(1024);
    let mut head = RequestHead::default();
    loop {
        // Parse what is buffered; read more only if the head is incomplete.
        let complete = loop {
            match parse_request(&rbuf, &LIMITS, &mut head) {
                Ok(true) => break true,
                Ok(false) => match read_more(&mut stream, &mut rbuf).await {
                    Ok(n) if n > 0 => {}
                    _ => break false,
                },
                Err(_) => {
                    let _ = stream
                        .write_all(&b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[..])
                        .await;
                    break false;
                }
            }
        };
        if !complete {
            break;
        }
        let keep = head.wants_keep_alive();
        if !delay.is_zero() {
            monoio::time::sleep(delay).await;
        }
        let result = match Action::of(head.target.of(&rbuf)) {
            Action::Bytes(n) => respond_bytes(&mut stream, &mut rbuf, &mut wbuf, &head, n, keep).await,
            Action::Delay(ms) => {
                monoio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
                let body = format!("delayed {ms} ms\n");
                respond_fixed(&mut stream, &mut rbuf, &mut wbuf, &head, 200, body.as_bytes(), keep).await
            }
            Action::Status(status) => {
                let body = format!("{status}\n");
                respond_fixed(&mut stream, &mut rbuf, &mut wbuf, &head, status, body.as_bytes(), keep).await
            }
            Action::Echo => respond_echo(&mut stream, &mut rbuf, &mut wbuf, &head, keep).await,
        };
        if result.is_err() || !keep {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

enum Action {
    Bytes(u64),
    Delay(u64),
    Status(u16),
    Echo,
}

impl Action {
    fn of(target: &[u8]) -> Action {
        if let Some(n) = number_after(target, b"/bytes/") {
            Action::Bytes(n)
        } else if let Some(ms) = number_after(target, b"/delay/") {
            Action::Delay(ms)
        } else if let Some(status) = number_after(target, b"/status/").filter(|s| (200..=999).contains(s)) {
            Action::Status(status as u16)
        } else {
            Action::Echo
        }
    }
}

fn number_after(path: &[u8], prefix: &[u8]) -> Option<u64> {
    let rest = path.strip_prefix(prefix)?;
    let digits = &rest[..rest.iter().position(|&b| b == b'?').unwrap_or(rest.len())];
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn head_line(wbuf: &mut Vec<u8>, status: u16, keep: bool) {
    wbuf.clear();
    let _ = write!(wbuf, "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\n", crate::error::reason_phrase(status));
    if !keep {
        wbuf.extend_from_slice(b"connection: close\r\n");
    }
}

/// Reads and drops the request body, leaving any pipelined bytes in `rbuf`.
async fn skip_body(stream: &mut TcpStream, rbuf: &mut Vec<u8>, head: &RequestHead) -> std::io::Result<()> {
    let mut unused = Vec::new();
    relay_body(stream, rbuf, &mut unused, head, BodySink::Discard).await
}

/// Where the request body goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodySink {
    Discard,
    /// Back to the client as it arrives (Content-Length response).
    Echo,
    /// Back to the client, re-chunked (chunked response).
    EchoChunked,
}

/// Reads the request body after the head to its end, handing each piece to
/// `sink`; leaves any pipelined bytes in `rbuf`.
async fn relay_body(
    stream: &mut TcpStream,
    rbuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    head: &RequestHead,
    sink: BodySink,
) -> std::io::Result<()> {
    let mut body = BodyDecoder::new(head.framing);
    let mut pos = head.head_len;
    loop {
        if pos < rbuf.len() || body.is_done() {
            let mut ranges = Vec::new();
            let step = body.decode(&rbuf[pos..], |r| ranges.push(r)).map_err(|e| std::io::Error::other(e.cause()))?;
            match sink {
                BodySink::Discard => {}
                BodySink::Echo => write_range(stream, rbuf, pos..pos + step.consumed).await?,
                BodySink::EchoChunked => {
                    wbuf.clear();
                    for r in ranges {
                        let _ = write!(wbuf, "{:x}\r\n", r.len());
                        wbuf.extend_from_slice(&rbuf[pos + r.start..pos + r.end]);
                        wbuf.extend_from_slice(b"\r\n");
                    }
                    if step.done {
                        wbuf.extend_from_slice(b"0\r\n\r\n");
                    }
                    write_all(stream, wbuf).await?;
                }
            }
            pos += step.consumed;
            if step.done || body.is_done() {
                rbuf.drain(..pos);
                return Ok(());
            }
        }
        rbuf.clear();
        pos = 0;
        if read_more(stream, rbuf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn respond_fixed(
    stream: &mut TcpStream,
    rbuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    head: &RequestHead,
    status: u16,
    body: &[u8],
    keep: bool,
) -> std::io::Result<()> {
    skip_body(stream, rbuf, head).await?;
    head_line(wbuf, status, keep);
    let bodyless = status == 204 || status == 304;
    if !bodyless {
        let _ = write!(wbuf, "content-length: {}\r\n", body.len());
    }
    wbuf.extend_from_slice(b"\r\n");
    if !bodyless {
        wbuf.extend_from_slice(body);
    }
    write_all(stream, wbuf).await
}

async fn respond_bytes(
    stream: &mut TcpStream,
    rbuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    head: &RequestHead,
    n: u64,
    keep: bool,
) -> std::io::Result<()> {
    skip_body(stream, rbuf, head).await?;
    head_line(wbuf, 200, keep);
    let _ = write!(wbuf, "content-length: {n}\r\n\r\n");
    let first = (n as usize).min(FILL.len());
    wbuf.extend_from_slice(&FILL[..first]);
    write_all(stream, wbuf).await?;
    let mut left = n - first as u64;
    while left > 0 {
        let k = (left as usize).min(FILL.len());
        let (res, _) = stream.write_all(&FILL[..k]).await;
        res?;
        left -= k as u64;
    }
    Ok(())
}

/// Echoes the head as received, then the body as it streams in.
async fn respond_echo(
    stream: &mut TcpStream,
    rbuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    head: &RequestHead,
    keep: bool,
) -> std::io::Result<()> {
    let head_len = head.head_len;
    head_line(wbuf, 200, keep);
    let chunked = head.framing == Framing::Chunked;
    match head.framing {
        Framing::Length(n) => {
            let _ = write!(wbuf, "content-length: {}\r\n\r\n", head_len as u64 + n);
        }
        Framing::Chunked => wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n"),
        _ => {
            let _ = write!(wbuf, "content-length: {head_len}\r\n\r\n");
        }
    }
    if chunked {
        let _ = write!(wbuf, "{head_len:x}\r\n");
        wbuf.extend_from_slice(&rbuf[..head_len]);
        wbuf.extend_from_slice(b"\r\n");
    } else {
        wbuf.extend_from_slice(&rbuf[..head_len]);
    }
    write_all(stream, wbuf).await?;
    let sink = if chunked { BodySink::EchoChunked } else { BodySink::Echo };
    relay_body(stream, rbuf, wbuf, head, sink).await
}
