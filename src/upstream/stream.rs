//! An upstream connection: plain TCP or TLS, behind one type so the pool
//! and `forward.rs` treat both the same.

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::ClientConnection;

use crate::tls::stream::{IdleState, TlsStream};

/// A cluster's TLS client settings, built once on the main thread and
/// shared by every shard (so TLS sessions resume across connections).
pub struct UpstreamTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// SNI name (and verified name) per endpoint, in endpoint order.
    pub server_names: Vec<rustls::pki_types::ServerName<'static>>,
}

pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<ClientConnection>>),
}

// SAFETY: both variants are `Split` (monoio's `TcpStream`; `TlsStream`, see
// its impl), and the variant never changes while split.
unsafe impl monoio::io::Split for UpstreamStream {}

impl UpstreamStream {
    /// Whether this idle pooled connection may carry another request:
    /// nothing arrived on it since its last response ended, and the
    /// upstream has not closed it. nginx closes a cached upstream
    /// connection on any read event while it is idle; this looks once, at
    /// checkout, with a non-blocking peek (plain) or by letting rustls
    /// process what arrived (TLS: a session ticket or key update is not
    /// application data and keeps the connection).
    pub fn is_reusable(&mut self) -> bool {
        match self {
            UpstreamStream::Plain(s) => {
                use std::os::fd::AsRawFd;
                let mut probe = 0u8;
                // SAFETY: a one-byte buffer we own; MSG_PEEK consumes
                // nothing. No operation is in flight on an idle socket.
                let n = unsafe {
                    libc::recv(s.as_raw_fd(), (&mut probe as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT)
                };
                // 0: the upstream closed; > 0: bytes nobody asked for.
                n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
            }
            UpstreamStream::Tls(s) => s.idle_state() == IdleState::Clean,
        }
    }
}

/// Closing a connection whose upstream has not taken every byte sent (an
/// upload the client abandoned, a request body the upstream stopped
/// reading): a FIN would queue behind those bytes, so an upstream that does
/// not read never learns the request was given up, and the kernel keeps the
/// orphaned socket and its send buffer (MiBs) until its persist probes give
/// up, minutes later. Reset instead (`SO_LINGER` 0, HAProxy's `nolinger`
/// for this case). A connection whose bytes were all acknowledged, which is
/// every close after a complete exchange and of an idle pooled connection,
/// keeps its FIN.
impl Drop for UpstreamStream {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        let fd = match self {
            UpstreamStream::Plain(s) => s.as_raw_fd(),
            UpstreamStream::Tls(s) => s.tcp().as_raw_fd(),
        };
        let mut unacknowledged: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ on a TCP socket) writes one c_int into
        // ours; `fd` stays open until the stream's own drop, after this.
        let queued = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unacknowledged) } == 0 && unacknowledged > 0;
        if queued {
            crate::io::reset_on_close(fd);
        }
    }
}

impl AsyncReadRent for UpstreamStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.read(buf).await,
            UpstreamStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.readv(buf).await,
            UpstreamStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpstreamStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.write(buf).await,
            UpstreamStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.writev(buf).await,
            UpstreamStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpstreamStream::Plain(s) => s.flush().await,
            UpstreamStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpstreamStream::Plain(s) => s.shutdown().await,
            UpstreamStream::Tls(s) => s.shutdown().await,
        }
    }
}
