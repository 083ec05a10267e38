//! The client's stream, plain TCP or TLS: what the connection loop needs
//! beyond reads and writes (waiting for readability without a buffer, a
//! clean end, the last write with the FIN).

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::tls::stream::TlsStream;

/// What differs between a plain and a TLS downstream stream beyond reads
/// and writes.
pub trait Downstream: AsyncReadRent + AsyncWriteRent + monoio::io::Split {
    /// Whether an idle connection not in use gives its head buffer back
    /// and waits with `wait_readable`.
    const IDLE_WITHOUT_BUFFER: bool;
    /// Waits for the stream to become readable without lending it a buffer.
    fn wait_readable(&self) -> impl std::future::Future<Output = std::io::Result<()>>;
    /// Ends the connection cleanly before it is dropped.
    fn finish(&mut self) -> impl std::future::Future<Output = ()>;
    /// Writes all of `buf` as the connection's last bytes. Returns whether
    /// the write side was closed with them (then `finish` is not needed).
    fn write_last(&mut self, buf: &mut Vec<u8>) -> impl std::future::Future<Output = std::io::Result<bool>>;
}

impl Downstream for monoio::net::TcpStream {
    const IDLE_WITHOUT_BUFFER: bool = true;

    async fn wait_readable(&self) -> std::io::Result<()> {
        // Not relaxed: on epoll, monoio's remembered readiness from the last
        // read would answer at once; this checks with poll(2). (io_uring
        // posts a poll operation either way.)
        self.readable(false).await
    }

    /// FIN at once, by a direct `shutdown(2)` (it never blocks), rather
    /// than when the runtime next submits the close that dropping the
    /// stream queues. The client then sees the end right behind the
    /// response and closes second, as with nginx: had the client closed
    /// first, the proxy's close would pay for the client socket's
    /// TIME_WAIT (loopback runs the receiver's TCP in the sender's call).
    async fn finish(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: the fd is this live stream's; shutdown neither closes
        // nor reuses it.
        unsafe {
            libc::shutdown(self.as_raw_fd(), libc::SHUT_WR);
        }
    }

    /// The response and the FIN in one TCP segment when they fit: the
    /// bytes are sent with MSG_MORE (queued, not pushed) and the shutdown
    /// right after sets FIN on that queued segment and pushes it. One
    /// segment fewer per closing connection than write-then-close, and the
    /// FIN is out before the client can read the response and close first
    /// (a client-first close makes the proxy's FIN carry the client
    /// socket's TIME_WAIT work, on loopback charged to the proxy). Direct
    /// syscalls: no io_uring operation is in flight on the socket here,
    /// and MSG_DONTWAIT keeps a full send buffer from blocking the shard
    /// (what does not fit goes through the runtime as usual).
    async fn write_last(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        let fd = self.as_raw_fd();
        // SAFETY: `buf` is valid for reads of its length; `fd` is this live
        // stream's socket.
        let n = unsafe {
            libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_MORE | libc::MSG_NOSIGNAL)
        };
        let sent = if n >= 0 {
            n as usize
        } else {
            let e = std::io::Error::last_os_error();
            if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) {
                return Err(e);
            }
            0
        };
        if sent < buf.len() {
            let len = buf.len();
            crate::io::rent::write_range(self, buf, sent..len).await?;
        }
        self.finish().await;
        Ok(true)
    }
}

/// TLS keeps its buffers: rustls may already hold decrypted bytes, and its
/// session state dwarfs the head buffer anyway.
impl<C> Downstream for TlsStream<C>
where
    TlsStream<C>: AsyncReadRent + AsyncWriteRent + monoio::io::Split,
{
    const IDLE_WITHOUT_BUFFER: bool = false;

    /// Never called (`IDLE_WITHOUT_BUFFER` is false).
    async fn wait_readable(&self) -> std::io::Result<()> {
        Ok(())
    }

    /// close_notify, then FIN: the client can tell a complete close from a
    /// truncation.
    async fn finish(&mut self) {
        let _ = self.shutdown().await;
    }

    /// close_notify follows in `finish`.
    async fn write_last(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        crate::io::rent::write_all(self, buf).await.map(|()| false)
    }
}
