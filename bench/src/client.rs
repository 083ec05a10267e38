//! One HTTP/1.1 client connection: write the request, read until the
//! response framing (`response.rs`) says it is complete.
//!
//! Generic over the byte stream; `open` makes the two real ones, plain TCP
//! and TLS over TCP (`ClientStream`), and runs the TLS handshake
//! (`tls.rs`). Timeouts are the caller's: it wraps connect, handshake and
//! exchange in `monoio::time::timeout_at` and drops the connection if the
//! deadline fires, so nothing here needs a clock.

use crate::response::{FrameError, Progress, ResponseReader};
use crate::tls::{self, Handshake, TlsClient};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::BufResult;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

/// Bytes asked of the kernel per read. Big enough that a typical small
/// response arrives in one read; bodies larger than this take several.
pub const READ_BUF_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub enum ExchangeError {
    Connect(io::Error),
    /// The TLS handshake failed (certificate refused, no common version,
    /// alert, or the server closed during it).
    Tls(io::Error),
    Io(io::Error),
    Frame(FrameError),
    /// Set by the caller when `--timeout` elapses.
    Timeout,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Connect(e) => write!(f, "connect: {e}"),
            ExchangeError::Tls(e) => write!(f, "TLS handshake: {e}"),
            ExchangeError::Io(e) => write!(f, "{e}"),
            ExchangeError::Frame(e) => write!(f, "{e}"),
            ExchangeError::Timeout => write!(f, "no complete response within --timeout"),
        }
    }
}

/// A complete response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// False when the server asked to close or framed by close: the caller
    /// must not send another request on this connection.
    pub keep_alive: bool,
    /// Head plus body bytes read for this response.
    pub bytes_read: u64,
}

pub struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
    reader: ResponseReader,
    /// The last exchange read at least one byte of a response.
    received: bool,
    /// Exchanges started on this connection.
    used: u64,
}

async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream, ExchangeError> {
    let stream = TcpStream::connect_addr(addr).await.map_err(ExchangeError::Connect)?;
    // Requests are small single writes; Nagle would only add delay.
    stream.set_nodelay(true).map_err(ExchangeError::Connect)?;
    Ok(stream)
}

/// A client connection's byte stream: plain TCP or TLS over it.
pub enum ClientStream {
    Tcp(TcpStream),
    Tls(Box<tls::Stream>),
}

impl Connection<ClientStream> {
    /// Connect, and with `tls` run the handshake; what it negotiated is
    /// returned for the caller to count.
    pub async fn open(
        addr: SocketAddr,
        tls: Option<&TlsClient>,
        head_request: bool,
    ) -> Result<(Self, Option<Handshake>), ExchangeError> {
        let tcp = connect_tcp(addr).await?;
        match tls {
            None => Ok((Connection::new(ClientStream::Tcp(tcp), head_request), None)),
            Some(client) => {
                let (stream, handshake) = client.handshake(tcp).await.map_err(ExchangeError::Tls)?;
                Ok((Connection::new(ClientStream::Tls(Box::new(stream)), head_request), Some(handshake)))
            }
        }
    }
}

// Delegation only: one `match` per I/O call, no buffering of its own.
impl AsyncReadRent for ClientStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Tcp(s) => s.read(buf).await,
            ClientStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Tcp(s) => s.readv(buf).await,
            ClientStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for ClientStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Tcp(s) => s.write(buf).await,
            ClientStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Tcp(s) => s.writev(buf).await,
            ClientStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.flush().await,
            ClientStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.shutdown().await,
            ClientStream::Tls(s) => s.shutdown().await,
        }
    }
}

impl<S: AsyncReadRent + AsyncWriteRent> Connection<S> {
    pub fn new(stream: S, head_request: bool) -> Self {
        Connection {
            stream,
            buf: Vec::with_capacity(READ_BUF_BYTES),
            reader: ResponseReader::new(head_request),
            received: false,
            used: 0,
        }
    }

    /// Whether an exchange that just failed may be sent again on a new
    /// connection, as HTTP clients do with idempotent requests: this
    /// connection had served a request before (a keep-alive connection
    /// reused), and the server closed or reset it before any byte of the
    /// response.
    pub fn closed_before_response_when_reused(&self, err: &ExchangeError) -> bool {
        let closed = match err {
            ExchangeError::Frame(FrameError::ClosedBeforeResponse) => true,
            ExchangeError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        };
        closed && self.used > 1 && !self.received
    }

    /// Send `request` and read its whole response.
    pub async fn exchange(&mut self, request: Rc<Vec<u8>>) -> Result<Response, ExchangeError> {
        self.used += 1;
        self.received = false;
        let (res, _) = self.stream.write_all(request).await;
        res.map_err(ExchangeError::Io)?;

        self.reader.reset();
        let mut bytes_read = 0u64;
        loop {
            // Ownership passes to the kernel for the read and comes back
            // with the result; if this future is dropped mid-read (timeout)
            // the buffer goes with it, and so does the connection.
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let (res, buf) = self.stream.read(buf).await;
            self.buf = buf;
            let n = res.map_err(ExchangeError::Io)?;
            bytes_read += n as u64;
            self.received |= n > 0;
            let progress = if n == 0 { self.reader.eof() } else { self.reader.feed(&self.buf[..n]) }
                .map_err(ExchangeError::Frame)?;
            match progress {
                Progress::NeedMore => continue,
                Progress::Done { status, keep_alive, consumed } => {
                    // We never pipeline, so nothing may follow the response.
                    if consumed < n {
                        return Err(ExchangeError::Frame(FrameError::TrailingBytes));
                    }
                    return Ok(Response { status, keep_alive, bytes_read });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Serve `replies` on one accepted connection, one reply per request
    /// head read, then close.
    fn one_shot_server(replies: Vec<Vec<u8>>) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for reply in replies {
                let mut got = Vec::new();
                let mut byte = [0u8; 1];
                while !got.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    got.push(byte[0]);
                }
                // Two writes, so the client sees the response split.
                let (a, b) = reply.split_at(reply.len() / 2);
                s.write_all(a).unwrap();
                s.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
                s.write_all(b).unwrap();
            }
        });
        addr
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().unwrap().block_on(f)
    }

    #[test]
    fn keep_alive_exchanges_over_real_socket() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
        let chunked = b"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n".to_vec();
        let close = b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec();
        let addr = one_shot_server(vec![ok.clone(), chunked.clone(), close.clone()]);
        block_on(async move {
            let req = Rc::new(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
            let (mut c, _) = Connection::open(addr, None, false).await.unwrap();
            let r = c.exchange(req.clone()).await.unwrap();
            assert_eq!((r.status, r.keep_alive, r.bytes_read), (200, true, ok.len() as u64));
            let r = c.exchange(req.clone()).await.unwrap();
            assert_eq!((r.status, r.keep_alive), (500, true));
            assert_eq!(r.bytes_read, chunked.len() as u64);
            let r = c.exchange(req.clone()).await.unwrap();
            assert_eq!((r.status, r.keep_alive), (200, false));
            assert_eq!(r.bytes_read, close.len() as u64);
        });
    }

    #[test]
    fn server_close_before_response_is_reported() {
        let addr = one_shot_server(vec![]);
        block_on(async move {
            let req = Rc::new(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
            let (mut c, _) = Connection::open(addr, None, false).await.unwrap();
            match c.exchange(req).await {
                Err(ExchangeError::Frame(FrameError::ClosedBeforeResponse)) | Err(ExchangeError::Io(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        });
    }

    /// Only a reused connection closed before any response byte may be
    /// retried: a fresh one closing is the server's refusal, not a race.
    #[test]
    fn a_close_before_the_response_is_retriable_only_on_a_reused_connection() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        let reused = one_shot_server(vec![ok]);
        let fresh = one_shot_server(vec![]);
        block_on(async move {
            let req = Rc::new(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
            let (mut c, _) = Connection::open(reused, None, false).await.unwrap();
            c.exchange(req.clone()).await.unwrap();
            let e = c.exchange(req.clone()).await.unwrap_err();
            assert!(c.closed_before_response_when_reused(&e), "{e:?}");
            let (mut c, _) = Connection::open(fresh, None, false).await.unwrap();
            let e = c.exchange(req).await.unwrap_err();
            assert!(!c.closed_before_response_when_reused(&e), "{e:?}");
        });
    }

    #[test]
    fn refused_connect_is_a_connect_error() {
        // Bind then drop to get a port nobody listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        block_on(async move {
            assert!(matches!(Connection::open(addr, None, false).await, Err(ExchangeError::Connect(_))));
        });
    }
}
