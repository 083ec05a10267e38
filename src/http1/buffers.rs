//! Per-shard pool of exchange buffers.
//!
//! Where it sits: a connection holds only its small head buffer while idle;
//! for the length of one proxied exchange it borrows two large buffers from
//! its shard's pool (upstream response / request body relay, and output
//! heads), and gives them back when the exchange ends. So ten thousand idle
//! keep-alive connections cost ten thousand small buffers, not twenty
//! thousand large ones. Shard-local: a `RefCell`, no lock.

use std::cell::RefCell;

/// Size of an exchange buffer: body bytes are relayed in pieces of at most
/// this, and an upstream response head must fit in it.
pub const EXCHANGE_BUFFER_BYTES: usize = 32 * 1024;
/// Free buffers a shard keeps; more are freed (memory goes back to the
/// allocator once a load peak passes).
pub const MAX_POOLED_BUFFERS: usize = 64;

#[derive(Debug, Default)]
pub struct BufferPool {
    free: RefCell<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// Makes `buf` an (empty) exchange buffer, from the pool if it has one.
    pub fn fill(&self, buf: &mut Vec<u8>) {
        if buf.capacity() < EXCHANGE_BUFFER_BYTES {
            *buf = self.free.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(EXCHANGE_BUFFER_BYTES));
        }
        buf.clear();
    }

    /// Takes `buf` back (leaving an unallocated vector in its place).
    pub fn give(&self, buf: &mut Vec<u8>) {
        let buf = std::mem::take(buf);
        let mut free = self.free.borrow_mut();
        if buf.capacity() == EXCHANGE_BUFFER_BYTES && free.len() < MAX_POOLED_BUFFERS {
            free.push(buf);
        }
    }

    pub fn pooled(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_the_pool_is_bounded() {
        let pool = BufferPool::default();
        let mut a = Vec::new();
        pool.fill(&mut a);
        assert_eq!(a.capacity(), EXCHANGE_BUFFER_BYTES);
        a.extend_from_slice(b"data");
        let ptr = a.as_ptr();
        pool.give(&mut a);
        assert_eq!(a.capacity(), 0);
        let mut b = Vec::new();
        pool.fill(&mut b);
        assert_eq!((b.as_ptr(), b.len()), (ptr, 0), "the pooled buffer comes back, empty");
        let mut many: Vec<Vec<u8>> =
            (0..MAX_POOLED_BUFFERS + 5).map(|_| Vec::with_capacity(EXCHANGE_BUFFER_BYTES)).collect();
        for buf in &mut many {
            pool.give(buf);
        }
        assert_eq!(pool.pooled(), MAX_POOLED_BUFFERS);
        let mut small = Vec::with_capacity(10);
        pool.give(&mut small);
        assert_eq!(pool.pooled(), MAX_POOLED_BUFFERS, "odd sizes are not pooled");
    }
}
