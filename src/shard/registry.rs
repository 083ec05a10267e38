//! The shard's open downstream connections, so that a drain can close the
//! idle ones at once while busy ones finish their request.
//!
//! A connection marks itself idle while it waits for the first byte of a
//! request. Draining shuts down the sockets of idle connections: their
//! pending read completes with end-of-file and the connection task ends by
//! itself. Busy connections see `draining()` when their response is done
//! and close instead of waiting for another request.
//!
//! The keep-alive idle timeout works the same way: an idle connection
//! records its deadline here, and the shard's sweeper shuts down those past
//! it. So an idle connection waits on a plain read (or readability poll,
//! see `http1/conn.rs`), with no timer of its
//! own (a monoio timer is 640 bytes per connection, and two timer-wheel
//! operations per request).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::time::Instant;

use slab::Slab;

#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    idle: bool,
    /// While idle between requests: when the keep-alive ends.
    idle_deadline: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Registry {
    conns: RefCell<Slab<Entry>>,
    draining: Cell<bool>,
}

/// A connection's registration; deregisters on drop.
pub struct Registration<'a> {
    registry: &'a Registry,
    key: usize,
}

impl Registry {
    pub fn register(&self, fd: RawFd) -> Registration<'_> {
        let key = self.conns.borrow_mut().insert(Entry { fd, idle: true, idle_deadline: None });
        Registration { registry: self, key }
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

    /// Shuts down idle connections whose keep-alive deadline has passed
    /// (called by the shard's sweeper).
    pub fn expire_idle(&self, now: Instant) {
        for (_, entry) in self.conns.borrow_mut().iter_mut() {
            if entry.idle && entry.idle_deadline.is_some_and(|d| d <= now) {
                entry.idle_deadline = None;
                shutdown(entry.fd);
            }
        }
    }

    /// Enters drain mode and shuts down every idle connection.
    pub fn drain(&self) {
        self.draining.set(true);
        for (_, entry) in self.conns.borrow().iter() {
            if entry.idle {
                shutdown(entry.fd);
            }
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

impl Registration<'_> {
    /// Waiting for the first byte of a request (drain may close it now).
    pub fn set_idle(&self, idle: bool) {
        if let Some(e) = self.registry.conns.borrow_mut().get_mut(self.key) {
            e.idle = idle;
            e.idle_deadline = None;
        }
    }

    /// Idle between requests until `deadline`, then closed by the sweeper.
    pub fn set_idle_until(&self, deadline: Instant) {
        if let Some(e) = self.registry.conns.borrow_mut().get_mut(self.key) {
            e.idle = true;
            e.idle_deadline = Some(deadline);
        }
    }
}

impl Drop for Registration<'_> {
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
        let registry = Registry::default();
        let (expired, mut expired_peer) = pair();
        let (not_yet, mut not_yet_peer) = pair();
        let (busy, mut busy_peer) = pair();
        let a = registry.register(expired.as_raw_fd());
        let b = registry.register(not_yet.as_raw_fd());
        let c = registry.register(busy.as_raw_fd());
        let now = Instant::now();
        a.set_idle_until(now - Duration::from_millis(1));
        b.set_idle_until(now + Duration::from_secs(60));
        c.set_idle(false);
        registry.expire_idle(now);
        assert!(peer_sees_eof(&mut expired_peer));
        assert!(!peer_sees_eof(&mut not_yet_peer));
        assert!(!peer_sees_eof(&mut busy_peer));
        drop((a, b, c));
        assert!(registry.is_empty());
    }

    #[test]
    fn drain_shuts_down_idle_connections_only() {
        let registry = Registry::default();
        let (idle, mut idle_peer) = pair();
        let (busy, mut busy_peer) = pair();
        let _a = registry.register(idle.as_raw_fd());
        let b = registry.register(busy.as_raw_fd());
        b.set_idle(false);
        registry.drain();
        assert!(registry.draining());
        assert!(peer_sees_eof(&mut idle_peer));
        assert!(!peer_sees_eof(&mut busy_peer));
    }
}
