//! The shard's open downstream connections, so that a drain can close the
//! idle ones at once while busy ones finish their request.
//!
//! A connection marks itself idle while it waits for the first byte of a
//! request. Draining shuts down the sockets of idle connections: their
//! pending read completes with end-of-file and the connection task ends by
//! itself. Busy connections see `draining()` when their response is done
//! and close instead of waiting for another request.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;

use slab::Slab;

#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    idle: bool,
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
        let key = self.conns.borrow_mut().insert(Entry { fd, idle: true });
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

    /// Enters drain mode and shuts down every idle connection.
    pub fn drain(&self) {
        self.draining.set(true);
        for (_, entry) in self.conns.borrow().iter() {
            if entry.idle {
                // SAFETY: the fd belongs to a live connection (it deregisters
                // before closing); shutdown does not close or reuse the fd.
                unsafe {
                    libc::shutdown(entry.fd, libc::SHUT_RDWR);
                }
            }
        }
    }
}

impl Registration<'_> {
    pub fn set_idle(&self, idle: bool) {
        if let Some(e) = self.registry.conns.borrow_mut().get_mut(self.key) {
            e.idle = idle;
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.conns.borrow_mut().remove(self.key);
    }
}
