//! One client connection and the upstream connection opened for it, and
//! the bytes between them in both directions.
//!
//! Each direction (a `Flow`) reads from its source into the relay's one
//! scratch buffer and writes to its destination at once; only what the
//! destination does not take waits, in that flow's own buffer, and the
//! source is not read again until it has gone (back-pressure). End of
//! stream is passed on as a half-close (`shutdown(SHUT_WR)`), so either
//! side may stop sending and still receive. The pair is finished when both
//! directions have been passed on, or at the first error on either socket.
//!
//! Sockets are registered edge-triggered, so readiness is remembered here:
//! a socket is readable from an event until a read comes back short or
//! would block; writable from an event until a write is short or would
//! block. A short read means the kernel's queue was empty: new data brings
//! a new event, so no read is spent on `EAGAIN` (Linux epoll semantics).
//! Except after the peer's FIN (`EPOLLRDHUP` in an event): it may have
//! come with the data, and it brings no event of its own once that event
//! is taken, so such a socket is read on until the read returns 0.

use crate::sys;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

/// Which socket of a pair an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

/// What the pair needs after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Open,
    /// Both directions passed on their end of stream: close both sockets.
    Finished,
}

/// One socket and the readiness last seen for it.
struct End {
    stream: TcpStream,
    readable: bool,
    writable: bool,
    /// An event said the peer has sent its FIN: read until 0.
    peer_closed: bool,
}

impl End {
    fn new(stream: TcpStream, writable: bool) -> End {
        End { stream, readable: false, writable, peer_closed: false }
    }

    /// Write what the socket takes now; 0 if it takes nothing.
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            match (&self.stream).write(bytes) {
                Ok(n) => {
                    if n < bytes.len() {
                        // The send buffer is full: an event comes when it is not.
                        self.writable = false;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Ok(0);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One direction: bytes the destination has not taken yet, and how far
/// the end of stream has got.
#[derive(Default)]
struct Flow {
    pending: Vec<u8>,
    /// The source sent its FIN.
    source_ended: bool,
    /// ... and it was passed on: the destination's sending side is shut.
    passed_on: bool,
}

impl Flow {
    /// Move bytes from `src` to `dst` until one of them would block, or
    /// the end of stream has been passed on.
    fn pump(&mut self, src: &mut End, dst: &mut End, scratch: &mut [u8]) -> io::Result<()> {
        loop {
            if !self.pending.is_empty() {
                if !dst.writable {
                    return Ok(());
                }
                let n = dst.write_some(&self.pending)?;
                self.pending.drain(..n);
                if !self.pending.is_empty() {
                    return Ok(());
                }
            }
            if self.source_ended {
                if !self.passed_on {
                    dst.stream.shutdown(Shutdown::Write)?;
                    self.passed_on = true;
                }
                return Ok(());
            }
            if !src.readable {
                return Ok(());
            }
            let n = match (&src.stream).read(scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    src.readable = false;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.source_ended = true;
                src.readable = false;
                continue;
            }
            if n < scratch.len() && !src.peer_closed {
                src.readable = false;
            }
            let written = if dst.writable { dst.write_some(&scratch[..n])? } else { 0 };
            if written < n {
                self.pending.extend_from_slice(&scratch[written..n]);
            }
        }
    }
}

pub struct Pair {
    client: End,
    upstream: End,
    /// The upstream connect has completed; nothing is read from the
    /// client before (its bytes wait in its socket).
    connected: bool,
    to_upstream: Flow,
    to_client: Flow,
}

impl Pair {
    pub fn new(client: TcpStream, upstream: TcpStream, connected: bool) -> Pair {
        Pair {
            client: End::new(client, true),
            upstream: End::new(upstream, connected),
            connected,
            to_upstream: Flow::default(),
            to_client: Flow::default(),
        }
    }

    pub fn client(&self) -> &TcpStream {
        &self.client.stream
    }

    pub fn upstream(&self) -> &TcpStream {
        &self.upstream.stream
    }

    /// Take in an event for `side` and move what can be moved. An error
    /// (a reset, a refused connect) means the pair is to be closed.
    pub fn on_event(&mut self, side: Side, events: u32, scratch: &mut [u8]) -> io::Result<Progress> {
        let end = match side {
            Side::Client => &mut self.client,
            Side::Upstream => &mut self.upstream,
        };
        // An error (a reset, say) may come with data still queued before
        // it: move what can be moved first, then close.
        let failed = events & sys::ERROR != 0;
        end.readable |= failed || events & sys::READABLE != 0;
        end.writable |= failed || events & sys::WRITABLE != 0;
        end.peer_closed |= events & sys::PEER_CLOSED != 0;
        if side == Side::Upstream && !self.connected {
            if !self.upstream.writable {
                return Ok(Progress::Open);
            }
            if let Some(err) = self.upstream.stream.take_error()? {
                return Err(err);
            }
            self.connected = true;
        }
        if !self.connected {
            return Ok(Progress::Open);
        }
        self.to_upstream.pump(&mut self.client, &mut self.upstream, scratch)?;
        self.to_client.pump(&mut self.upstream, &mut self.client, scratch)?;
        if failed {
            let end = match side {
                Side::Client => &self.client,
                Side::Upstream => &self.upstream,
            };
            let err = end.stream.take_error()?;
            return Err(err.unwrap_or_else(|| io::Error::other("socket error reported by epoll")));
        }
        if self.to_upstream.passed_on && self.to_client.passed_on {
            Ok(Progress::Finished)
        } else {
            Ok(Progress::Open)
        }
    }
}
