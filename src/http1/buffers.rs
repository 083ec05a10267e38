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
/// What a relay buffer becomes once a body has filled a whole exchange
/// buffer in one read: a large body then moves in eight times fewer reads
/// and writes (each one a wake-up and TCP work in the kernel; measured
/// ~20 % less CPU per 1 MiB response, A/B). nginx relays through up to
/// 8 x 32 KiB per connection (`proxy_buffers`), the same memory.
pub const BULK_BUFFER_BYTES: usize = 256 * 1024;
/// Free bulk buffers a shard keeps.
pub const MAX_POOLED_BULK_BUFFERS: usize = 8;

#[derive(Debug, Default)]
pub struct BufferPool {
    free: RefCell<Vec<Vec<u8>>>,
    bulk: RefCell<Vec<Vec<u8>>>,
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
        let (pool, max) = match buf.capacity() {
            EXCHANGE_BUFFER_BYTES => (&self.free, MAX_POOLED_BUFFERS),
            BULK_BUFFER_BYTES => (&self.bulk, MAX_POOLED_BULK_BUFFERS),
            _ => return,
        };
        let mut pool = pool.borrow_mut();
        if pool.len() < max {
            pool.push(buf);
        }
    }

    /// Called before `buf` is emptied and read into again: if its last
    /// read filled it whole (a large body is streaming), it is swapped for
    /// a bulk buffer. Contents are not kept.
    pub fn grow_if_filled(&self, buf: &mut Vec<u8>) {
        if buf.len() == EXCHANGE_BUFFER_BYTES && buf.capacity() == EXCHANGE_BUFFER_BYTES {
            self.give(buf);
            *buf = self.bulk.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(BULK_BUFFER_BYTES));
        }
        buf.clear();
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

    #[test]
    fn a_buffer_filled_whole_grows_to_a_bulk_buffer_and_goes_back_to_its_own_pool() {
        let pool = BufferPool::default();
        let mut buf = Vec::new();
        pool.fill(&mut buf);
        buf.extend_from_slice(&[1; 100]);
        pool.grow_if_filled(&mut buf);
        assert_eq!((buf.len(), buf.capacity()), (0, EXCHANGE_BUFFER_BYTES), "a partial read keeps the buffer");
        buf.resize(EXCHANGE_BUFFER_BYTES, 1);
        pool.grow_if_filled(&mut buf);
        assert_eq!((buf.len(), buf.capacity()), (0, BULK_BUFFER_BYTES));
        assert_eq!(pool.pooled(), 1, "the exchange buffer went back to the pool");
        buf.resize(BULK_BUFFER_BYTES, 1);
        pool.grow_if_filled(&mut buf);
        assert_eq!(buf.capacity(), BULK_BUFFER_BYTES, "a bulk buffer stays one");
        pool.give(&mut buf);
        assert_eq!(pool.bulk.borrow().len(), 1);
        let mut again = Vec::new();
        pool.fill(&mut again);
        again.resize(EXCHANGE_BUFFER_BYTES, 0);
        pool.grow_if_filled(&mut again);
        assert!(pool.bulk.borrow().is_empty(), "the pooled bulk buffer was reused");
    }
}
