//! A TLS stream over a monoio `TcpStream`: rustls does the protocol, this
//! file moves its records to and from the socket with the same rent-style
//! I/O the plain-TCP path uses, so `http1::conn` and `upstream::forward`
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

use crate::http1::io::{read_more, write_all};

/// Ciphertext read per socket read: one maximal TLS record plus header.
pub const TLS_READ_BUFFER_BYTES: usize = 16 * 1024 + 512;

pub struct TlsStream<C> {
    io: TcpStream,
    session: C,
    incoming: Vec<u8>,
    incoming_pos: usize,
    outgoing: Vec<u8>,
    /// Decrypted bytes rustls holds for us (from its last `IoState`).
    plaintext: usize,
    /// The peer sent close_notify, or closed the TCP connection.
    closed: bool,
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
            closed: false,
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
            if self.session.wants_read() && self.read_tls().await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
            }
        }
    }

    /// Feeds rustls one batch of ciphertext, reading the socket if nothing
    /// is buffered. `Ok(0)`: the peer closed the TCP connection.
    async fn read_tls(&mut self) -> io::Result<usize> {
        if self.incoming_pos == self.incoming.len() {
            self.incoming.clear();
            self.incoming_pos = 0;
            if read_more(&mut self.io, &mut self.incoming).await? == 0 {
                self.closed = true;
                return Ok(0);
            }
        }
        let mut pending = &self.incoming[self.incoming_pos..];
        let taken = self.session.read_tls(&mut pending)?;
        self.incoming_pos += taken;
        match self.session.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                self.closed |= state.peer_has_closed();
            }
            Err(e) => {
                // Send the alert rustls queued, then fail.
                let _ = self.flush_tls().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(taken.max(1))
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
            if self.closed {
                // close_notify or TCP end: an end of stream for the HTTP
                // layer, whose framing decides whether it was premature.
                // SAFETY: nothing was written.
                unsafe { buf.set_init(0) };
                return (Ok(0), buf);
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
        let slice = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
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
