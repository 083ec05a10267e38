//! The shard's open downstream connections, so that a drain can close the
//! idle ones while busy ones finish their request.
//!
//! A connection marks itself idle while it waits for the first byte of a
//! request. A drain (SIGTERM, `POST /drain`, the old process of an
//! upgrade) closes a connection only in a way its client can recover from:
//! a busy connection's response carries `Connection: close` and the
//! connection ends after it; an idle one is shut down once it has stayed
//! idle for [`DRAIN_IDLE_GRACE`] since the drain first saw it idle. A
//! client that sends a request within the grace gets it served (with
//! `Connection: close`) instead of meeting a closed connection while its
//! request is on the way. Shutting a socket down ends its pending read
//! with end-of-file and the connection task ends by itself.
//!
//! The keep-alive idle timeout works the same way: an idle connection
//! records its deadline here, and the shard's sweeper shuts down those past
//! it. So an idle connection waits on a plain read (or readability poll,
//! see `downstream/conn.rs`), with no timer of its
//! own (a monoio timer is 640 bytes per connection, and two timer-wheel
//! operations per request).
//!
//! Writes to a client are bounded the same way (nginx's `send_timeout`):
//! before each write the connection records when it must have made
//! progress; the sweeper shuts down a connection past that deadline, which
//! fails the pending write. No timer per write. Progress is what the
//! client acknowledged (TCP_INFO `tcpi_bytes_acked`), not the completion of
//! a write: one large write to a steady slow reader completes late but
//! moves all the time. The sweeper notes the acknowledged count of a write
//! still pending at its first pass, and at the deadline extends the write
//! by another timeout if the count grew, or shuts the connection down if
//! it did not. Only writes that wait across a sweep pay the `getsockopt`.
//!
//! A connection the sweeper or a drain shut down is marked: if a request's
//! first bytes arrived just before the shutdown, the connection sees the
//! mark when it leaves the idle state and drops the request unread, so a
//! request never reaches an upstream when its response could not be sent.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::identity::ListenerId;

#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    idle: bool,
    /// While idle between requests: when the keep-alive ends.
    idle_deadline: Option<Instant>,
    /// While a write to the client is pending: the sweep by which it must
    /// have made progress, and how many sweeps progress may take.
    write_deadline: Option<(u64, u64)>,
    /// Bytes the client had acknowledged when the sweeper first saw the
    /// pending write.
    acked: Option<u64>,
    /// The sweeper or a drain shut the socket down.
    shut: bool,
    /// The listener that accepted the connection.
    listener: ListenerId,
    /// Its listener was removed by a reload: the connection ends after
    /// the request in progress, as in a drain.
    closing: bool,
    /// While draining (or closing) and idle: when a drain pass first saw
    /// it idle. Cleared when it goes busy.
    idle_in_drain_since: Option<Instant>,
}

/// How often the shard's sweeper runs `Registry::expire`: the precision of
/// the idle timeout, the pool's idle timeout and the write timeout.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// How long a drain leaves an idle keep-alive connection open for a
/// request its client may be sending right now (served with `Connection:
/// close`). Long enough for a client that is in the middle of its work to
/// come back; short, because the drain waits for it.
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(1000);

#[derive(Debug, Default)]
pub struct Registry {
    conns: RefCell<Slab<Entry>>,
    draining: Cell<bool>,
    /// Sweeps so far: write deadlines are counted in sweeps, so setting
    /// one (before every write to a client) reads no clock.
    sweeps: Cell<u64>,
}

/// A connection's registration; deregisters on drop.
pub struct Registration {
    registry: Rc<Registry>,
    key: usize,
    /// Bytes written to the client so far (the record step's bytes sent:
    /// the difference across a request). Counted here because every write
    /// to a client already passes its registration.
    sent: Cell<u64>,
}

impl Registry {
    pub fn register(self: &Rc<Registry>, fd: RawFd, listener: ListenerId) -> Registration {
        let key = self.conns.borrow_mut().insert(Entry {
            fd,
            idle: true,
            idle_deadline: None,
            write_deadline: None,
            acked: None,
            shut: false,
            listener,
            closing: false,
            idle_in_drain_since: None,
        });
        Registration { registry: self.clone(), key, sent: Cell::new(0) }
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.borrow().is_empty()
    }

    pub fn len(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Open connections per listener, for metrics (at scrape time only).
    pub fn count_by_listener(&self) -> Vec<(ListenerId, usize)> {
        let mut counts: Vec<(ListenerId, usize)> = Vec::new();
        for (_, entry) in self.conns.borrow().iter() {
            match counts.iter_mut().find(|(id, _)| *id == entry.listener) {
                Some((_, n)) => *n += 1,
                None => counts.push((entry.listener, 1)),
            }
        }
        counts
    }

    /// Shuts down idle connections whose keep-alive deadline has passed,
    /// and connections whose pending write made no progress in time
    /// (called by the shard's sweeper).
    pub fn expire(&self, now: Instant) {
        let sweep = self.sweeps.get() + 1;
        self.sweeps.set(sweep);
        for (_, entry) in self.conns.borrow_mut().iter_mut() {
            let idle_expired = entry.idle && entry.idle_deadline.is_some_and(|d| d <= now);
            let mut write_expired = false;
            if let Some((deadline, sweeps)) = entry.write_deadline {
                if deadline > sweep {
                    if entry.acked.is_none() {
                        entry.acked = Some(bytes_acked(entry.fd));
                    }
                } else {
                    let acked = bytes_acked(entry.fd);
                    if entry.acked.is_none_or(|before| acked > before) {
                        // Moving, slowly (or first seen already past its
                        // deadline: a timeout shorter than the sweep
                        // interval): another timeout from now.
                        entry.write_deadline = Some((sweep + sweeps, sweeps));
                        entry.acked = Some(acked);
                    } else {
                        write_expired = true;
                    }
                }
            }
            if entry.closing && !entry.shut {
                // Its listener is gone: closed like a draining one.
                shut_if_idle_past_grace(entry, now);
            }
            if idle_expired || write_expired {
                entry.idle_deadline = None;
                entry.write_deadline = None;
                entry.shut = true;
                if write_expired {
                    // A FIN would wait behind the bytes it never read.
                    crate::io::reset_on_close(entry.fd);
                }
                shutdown(entry.fd);
            }
        }
    }

    /// A reload removed `listener`: its idle connections are shut down
    /// now, its busy ones end after their request (`Registration::closing`).
    pub fn close_listener(&self, listener: ListenerId) {
        for (_, entry) in self.conns.borrow_mut().iter_mut() {
            if entry.listener == listener {
                entry.closing = true;
                if entry.idle {
                    entry.shut = true;
                    shutdown(entry.fd);
                }
            }
        }
    }

    /// Enters drain mode (busy connections end after their response) and
    /// shuts down the connections idle for [`DRAIN_IDLE_GRACE`] since a
    /// drain pass first saw them idle. Called when the drain starts and
    /// then repeatedly until every connection is gone.
    pub fn drain(&self, now: Instant) {
        self.draining.set(true);
        for (_, entry) in self.conns.borrow_mut().iter_mut() {
            shut_if_idle_past_grace(entry, now);
        }
    }
}

/// A drain's rule for one connection (see the module header).
fn shut_if_idle_past_grace(entry: &mut Entry, now: Instant) {
    if !entry.idle || entry.shut {
        return;
    }
    match entry.idle_in_drain_since {
        None => entry.idle_in_drain_since = Some(now),
        Some(since) if now.saturating_duration_since(since) >= DRAIN_IDLE_GRACE => {
            entry.shut = true;
            shutdown(entry.fd);
        }
        Some(_) => {}
    }
}

/// Bytes of the connection's output the peer has acknowledged (0 if the
/// kernel does not say).
fn bytes_acked(fd: RawFd) -> u64 {
    // SAFETY: an all-zero tcp_info is valid; getsockopt writes at most
    // `len` bytes into it; `fd` is a live connection's socket.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let ok = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        if ok == 0 {
            info.tcpi_bytes_acked
        } else {
            0
        }
    }
}

/// Ends a connection's pending read: it completes with end-of-file.
fn shutdown(fd: RawFd) {
    // SAFETY: the fd belongs to a live connection (it deregisters before
    // closing); shutdown neither closes nor reuses the fd.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

impl Registration {
    /// `n` more bytes went to the client.
    #[inline]
    pub fn add_sent(&self, n: usize) {
        self.sent.set(self.sent.get() + n as u64);
    }

    /// Bytes written to the client so far.
    #[inline]
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    /// Waiting for the first byte of a request (drain may close it now),
    /// or not. Returns false when the socket was shut down while it was
    /// idle: whatever was read since must be dropped unanswered.
    pub fn set_idle(&self, idle: bool) -> bool {
        match self.registry.conns.borrow_mut().get_mut(self.key) {
            Some(e) => {
                e.idle = idle;
                e.idle_deadline = None;
                e.idle_in_drain_since = None;
                !e.shut
            }
            None => false,
        }
    }

    /// A write to the client is pending: the client must acknowledge more
    /// of the connection's output within `timeout`, or the sweeper shuts
    /// the connection down. `None`: no write pending.
    pub fn set_write_timeout(&self, timeout: Option<WriteTimeout>) {
        let now = self.registry.sweeps.get();
        if let Some(e) = self.registry.conns.borrow_mut().get_mut(self.key) {
            // + 1: the current sweep interval is already under way, so the
            // deadline is never early; it may be up to one interval late.
            e.write_deadline = timeout.map(|t| (now + t.sweeps + 1, t.sweeps));
            e.acked = None;
        }
    }

    /// Whether the sweeper or a drain shut this connection down.
    pub fn was_shut(&self) -> bool {
        self.registry.conns.borrow().get(self.key).is_none_or(|e| e.shut)
    }

    /// The connection should end after the request in progress: the
    /// shard drains, or a reload removed its listener.
    pub fn closing(&self) -> bool {
        self.registry.draining() || self.registry.conns.borrow().get(self.key).is_none_or(|e| e.closing)
    }

    /// Ends the connection after the request in progress.
    pub fn set_closing(&self) {
        if let Some(e) = self.registry.conns.borrow_mut().get_mut(self.key) {
            e.closing = true;
        }
    }

    /// Idle between requests until `deadline`, then closed by the sweeper.
    pub fn set_idle_until(&self, deadline: Instant) {
        if let Some(e) = self.registry.conns.borrow_mut().get_mut(self.key) {
            e.idle = true;
            e.idle_deadline = Some(deadline);
            e.idle_in_drain_since = None;
        }
    }
}

/// A write timeout in sweeps of the registry (computed once per write, not
/// per partial write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTimeout {
    sweeps: u64,
}

impl WriteTimeout {
    pub fn new(timeout: Duration) -> WriteTimeout {
        // Milliseconds fit a u64 for any timeout the config allows (24 h).
        let ms = timeout.as_secs() * 1000 + u64::from(timeout.subsec_millis());
        WriteTimeout { sweeps: ms / SWEEP_INTERVAL.as_millis() as u64 }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.conns.borrow_mut().remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// A connected pair of sockets: (ours, the peer's).
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        (ours, peer)
    }

    fn peer_sees_eof(peer: &mut std::net::TcpStream) -> bool {
        peer.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        matches!(peer.read(&mut [0u8; 1]), Ok(0))
    }

    #[test]
    fn only_idle_connections_past_their_deadline_are_shut_down() {
        let registry = Rc::new(Registry::default());
        let (expired, mut expired_peer) = pair();
        let (not_yet, mut not_yet_peer) = pair();
        let (busy, mut busy_peer) = pair();
        let a = registry.register(expired.as_raw_fd(), ListenerId(0));
        let b = registry.register(not_yet.as_raw_fd(), ListenerId(0));
        let c = registry.register(busy.as_raw_fd(), ListenerId(0));
        let now = Instant::now();
        a.set_idle_until(now - Duration::from_millis(1));
        b.set_idle_until(now + Duration::from_secs(60));
        c.set_idle(false);
        registry.expire(now);
        assert!(peer_sees_eof(&mut expired_peer));
        assert!(!peer_sees_eof(&mut not_yet_peer));
        assert!(!peer_sees_eof(&mut busy_peer));
        assert!(!a.set_idle(false), "a request read after the shutdown is dropped");
        assert!(b.set_idle(false));
        drop((a, b, c));
        assert!(registry.is_empty());
    }

    #[test]
    fn drain_shuts_down_idle_connections_only_after_the_grace() {
        let registry = Rc::new(Registry::default());
        let (idle, mut idle_peer) = pair();
        let (busy, mut busy_peer) = pair();
        let (back, mut back_peer) = pair();
        let a = registry.register(idle.as_raw_fd(), ListenerId(0));
        let b = registry.register(busy.as_raw_fd(), ListenerId(0));
        let c = registry.register(back.as_raw_fd(), ListenerId(0));
        b.set_idle(false);
        let start = Instant::now();
        registry.drain(start);
        assert!(registry.draining());
        assert!(b.closing(), "a busy connection ends after its response");
        assert!(!peer_sees_eof(&mut idle_peer), "an idle connection gets the grace first");
        // The client of `c` sends a request within the grace: served.
        assert!(c.set_idle(false));
        registry.drain(start + DRAIN_IDLE_GRACE / 2);
        assert!(!a.was_shut());
        c.set_idle(true);
        registry.drain(start + DRAIN_IDLE_GRACE);
        assert!(peer_sees_eof(&mut idle_peer), "idle past the grace: shut down");
        assert!(!peer_sees_eof(&mut busy_peer));
        assert!(!peer_sees_eof(&mut back_peer), "idle again only since the last pass: its own grace");
        assert!(a.was_shut() && !b.was_shut() && !c.was_shut());
        registry.drain(start + DRAIN_IDLE_GRACE * 3);
        assert!(peer_sees_eof(&mut back_peer));
    }

    #[test]
    fn a_write_without_progress_past_its_deadline_is_shut_down() {
        let registry = Rc::new(Registry::default());
        let (stalled, mut stalled_peer) = pair();
        let (moving, mut moving_peer) = pair();
        let a = registry.register(stalled.as_raw_fd(), ListenerId(0));
        let b = registry.register(moving.as_raw_fd(), ListenerId(0));
        a.set_idle(false);
        b.set_idle(false);
        a.set_write_timeout(Some(WriteTimeout::new(Duration::from_millis(1))));
        b.set_write_timeout(Some(WriteTimeout::new(Duration::from_secs(60))));
        registry.expire(Instant::now());
        std::thread::sleep(Duration::from_millis(5));
        registry.expire(Instant::now());
        assert!(peer_sees_eof(&mut stalled_peer));
        assert!(!peer_sees_eof(&mut moving_peer));
        assert!(a.was_shut() && !b.was_shut());
    }

    #[test]
    fn closing_a_listener_shuts_its_idle_connections_and_marks_its_busy_ones() {
        let registry = Rc::new(Registry::default());
        let (idle, mut idle_peer) = pair();
        let (busy, mut busy_peer) = pair();
        let (other, mut other_peer) = pair();
        let a = registry.register(idle.as_raw_fd(), ListenerId(1));
        let b = registry.register(busy.as_raw_fd(), ListenerId(1));
        let c = registry.register(other.as_raw_fd(), ListenerId(2));
        b.set_idle(false);
        c.set_idle(false);
        registry.close_listener(ListenerId(1));
        assert!(peer_sees_eof(&mut idle_peer), "the idle connection of the removed listener is shut down");
        assert!(a.was_shut());
        assert!(!peer_sees_eof(&mut busy_peer), "a busy connection finishes its request");
        assert!(b.closing(), "and ends after it");
        assert!(!peer_sees_eof(&mut other_peer));
        assert!(!c.closing(), "another listener's connection is untouched");
    }
}
