//! A TLS stream over a monoio `TcpStream`: rustls does the protocol, this
//! file moves its records to and from the socket with the same rent-style
//! I/O the plain-TCP path uses, so `downstream::conn` and `upstream::forward`
//! run unchanged over either.
//!
//! Why not monoio-rustls: its stream hides the rustls session, and the
//! proxy needs it after the handshake (negotiated version, whether the
//! session was resumed, the verified client certificate). Taking the stream
//! apart to reach it would drop bytes already read past the handshake.
//!
//! Buffers: `incoming` holds ciphertext read from the socket and not yet
//! taken by rustls; `outgoing` holds the records rustls produced. Both are
//! reused for the connection's life. Plaintext is copied by rustls straight
//! into the caller's buffer (only as many bytes as it holds, which are
//! zeroed first: rustls writes through a `&mut [u8]`, which must not cover
//! uninitialised memory).

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ConnectionCommon, SideData};

use crate::io::rent::{read_more, write_all};

/// Ciphertext read per socket read: one maximal TLS record plus header.
pub const TLS_READ_BUFFER_BYTES: usize = 16 * 1024 + 512;
/// Plaintext taken per `write` call: four records. A larger write is taken
/// in pieces (callers loop), so a caller that bounds time without progress
/// sees progress at least this often.
pub const TLS_WRITE_BYTES: usize = 64 * 1024;

pub struct TlsStream<C> {
    io: TcpStream,
    session: C,
    incoming: Vec<u8>,
    incoming_pos: usize,
    outgoing: Vec<u8>,
    /// Decrypted bytes rustls holds for us (from its last `IoState`).
    plaintext: usize,
    /// How the peer ended its side, once it has.
    closed: Option<PeerClose>,
}

/// How a TLS peer ended its side of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerClose {
    /// close_notify: everything the peer meant to send has arrived.
    Notified,
    /// The TCP connection ended without close_notify: whatever was being
    /// sent may have been cut short (RFC 8446 §6.1), so reads report an
    /// error, never a clean end of stream.
    Truncated,
}

/// What a look at an idle connection found (see `TlsStream::idle_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Nothing but TLS housekeeping (session tickets, key updates) arrived.
    Clean,
    /// Application bytes, a close_notify, a TCP end or an error: the
    /// connection must not carry another request.
    Dirty,
}

impl<C, SD> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    pub fn new(io: TcpStream, session: C) -> TlsStream<C> {
        TlsStream {
            io,
            session,
            incoming: Vec::with_capacity(TLS_READ_BUFFER_BYTES),
            incoming_pos: 0,
            outgoing: Vec::with_capacity(TLS_READ_BUFFER_BYTES),
            plaintext: 0,
            closed: None,
        }
    }

    pub fn session(&self) -> &C {
        &self.session
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    /// Runs the handshake to completion (the caller bounds it in time).
    pub async fn handshake(&mut self) -> io::Result<()> {
        loop {
            self.flush_tls().await?;
            if !self.session.is_handshaking() {
                return Ok(());
            }
            if self.session.wants_read() {
                match self.read_tls().await {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "peer closed during the TLS handshake",
                        ))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Send the alert rustls queued, then fail.
                        let _ = self.flush_tls().await;
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Feeds rustls one batch of ciphertext, reading the socket if nothing
    /// is buffered. `Ok(0)`: the peer closed the TCP connection.
    ///
    /// Touches only the read side's state and, between awaits, the session:
    /// never writes (see the `Split` impl). An alert rustls queues on an
    /// error is sent by the handshake, or not at all.
    async fn read_tls(&mut self) -> io::Result<usize> {
        if self.incoming_pos == self.incoming.len() {
            self.incoming.clear();
            self.incoming_pos = 0;
            if read_more(&mut self.io, &mut self.incoming).await? == 0 {
                self.closed.get_or_insert(PeerClose::Truncated);
                return Ok(0);
            }
        }
        self.process_incoming().map(|taken| taken.max(1))
    }

    /// Hands rustls the buffered ciphertext and records what it made of it.
    fn process_incoming(&mut self) -> io::Result<usize> {
        let mut pending = &self.incoming[self.incoming_pos..];
        let taken = self.session.read_tls(&mut pending)?;
        self.incoming_pos += taken;
        match self.session.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                if state.peer_has_closed() {
                    self.closed.get_or_insert(PeerClose::Notified);
                }
                Ok(taken)
            }
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }

    /// Whether an idle (pooled) connection may carry another request:
    /// reads what the socket has without waiting and lets rustls process
    /// it, so that a TLS 1.3 session ticket or key update keeps the
    /// connection while a close_notify, a TCP end or any application byte
    /// retires it. One non-blocking `recv` when nothing arrived.
    pub fn idle_state(&mut self) -> IdleState {
        use std::os::fd::AsRawFd;
        loop {
            if self.plaintext > 0 || self.closed.is_some() {
                return IdleState::Dirty;
            }
            if self.incoming_pos < self.incoming.len() {
                if self.process_incoming().is_err() {
                    return IdleState::Dirty;
                }
                continue;
            }
            self.incoming.clear();
            self.incoming_pos = 0;
            let spare = self.incoming.capacity();
            // SAFETY: `incoming` has `spare` bytes of capacity; recv writes
            // at most that many and we set the length to what it wrote. No
            // io_uring operation is in flight on this idle socket.
            let n = unsafe {
                libc::recv(self.io.as_raw_fd(), self.incoming.as_mut_ptr().cast(), spare, libc::MSG_DONTWAIT)
            };
            match n {
                0 => return IdleState::Dirty,
                n if n > 0 => unsafe {
                    // SAFETY: recv initialised the first `n` bytes.
                    self.incoming.set_len(n as usize)
                },
                _ => {
                    let e = io::Error::last_os_error();
                    return match e.kind() {
                        io::ErrorKind::WouldBlock => IdleState::Clean,
                        io::ErrorKind::Interrupted => continue,
                        _ => IdleState::Dirty,
                    };
                }
            }
        }
    }

    /// Writes every record rustls has queued.
    async fn flush_tls(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            self.outgoing.clear();
            self.session.write_tls(&mut self.outgoing)?;
            write_all(&mut self.io, &mut self.outgoing).await?;
        }
        Ok(())
    }
}

// SAFETY: reads (`read`, `read_tls`, `process_incoming`) touch `incoming`,
// `incoming_pos`, `plaintext`, `closed`, the socket's read side and the
// session; writes (`write`, `flush`, `flush_tls`, `shutdown`) touch
// `outgoing`, the socket's write side and the session. The session is only
// used in synchronous stretches, never across an await, and both halves
// run on one thread, so the two never use it at once; the socket is
// `TcpStream`, which monoio marks `Split`. `handshake` reads and writes but
// runs before any split.
unsafe impl<C> monoio::io::Split for TlsStream<C> {}

impl<C, SD> AsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            if self.plaintext > 0 {
                let n = self.plaintext.min(buf.bytes_total());
                // SAFETY: `write_ptr` is valid for `bytes_total` (>= n) bytes
                // while we own `buf`; the n bytes are initialised (zeroed)
                // before a slice is made over them, so rustls never sees
                // uninitialised memory whatever buffer the caller passed.
                let slice = unsafe {
                    std::ptr::write_bytes(buf.write_ptr(), 0, n);
                    std::slice::from_raw_parts_mut(buf.write_ptr(), n)
                };
                match self.session.reader().read(slice) {
                    Ok(got) => {
                        self.plaintext -= got;
                        // SAFETY: rustls wrote `got` bytes at the start of the buffer.
                        unsafe { buf.set_init(got) };
                        return (Ok(got), buf);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.plaintext = 0,
                    Err(e) => return (Err(e), buf),
                }
            }
            match self.closed {
                // close_notify: an end of stream for the HTTP layer, whose
                // framing decides whether it was premature.
                Some(PeerClose::Notified) => {
                    // SAFETY: nothing was written.
                    unsafe { buf.set_init(0) };
                    return (Ok(0), buf);
                }
                // A TCP end without close_notify: a truncation attack or a
                // crash looks the same, so a close-delimited body read
                // through here must not look complete.
                Some(PeerClose::Truncated) => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "TLS peer closed without close_notify");
                    return (Err(e), buf);
                }
                None => {}
            }
            if let Err(e) = self.read_tls().await {
                return (Err(e), buf);
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer views `buf`'s first iovec, which stays
        // owned by us for the duration of the read.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes were written into the first iovec.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl<C, SD> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` is valid for `bytes_init` bytes while we own `buf`.
        let slice = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init().min(TLS_WRITE_BYTES)) };
        let n = match self.session.writer().write(slice) {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match self.flush_tls().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer views `buf`'s first iovec while we own `buf`.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.session.writer().flush()?;
        self.flush_tls().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.session.send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}
