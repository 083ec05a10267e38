//! Per-shard pool of exchange buffers.
//!
//! Where it sits: a connection holds only its small head buffer while idle;
//! for the length of one proxied exchange it borrows two large buffers from
//! its shard's pool (upstream response / request body relay, and output
//! heads), and gives them back when the exchange ends. So ten thousand idle
//! keep-alive connections cost ten thousand small buffers, not twenty
//! thousand large ones. Shard-local: a `RefCell`, no lock.

use std::cell::{Cell, RefCell};

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
/// Bulk buffers a shard lends out at once (8 MiB). Past it, a large body
/// moves through its exchange buffer: a crowd of clients that stop
/// reading mid-download (each one's relay waiting with a full buffer)
/// cannot pin more than this in bulk buffers, whatever their number.
pub const MAX_BULK_IN_USE: usize = 32;
/// Sweeps (of 250 ms) over which a pooled buffer must have gone unused
/// before `decay` frees it: 2 s.
pub const DECAY_WINDOW_SWEEPS: u64 = 8;
/// Bytes of buffers freed to the allocator (not pooled) after which the
/// shard asks the allocator to return free memory to the system (see
/// `BufferPool::should_trim`).
pub const TRIM_AFTER_FREED_BYTES: usize = 1024 * 1024;

#[derive(Debug, Default)]
pub struct BufferPool {
    free: RefCell<Vec<Vec<u8>>>,
    bulk: RefCell<Vec<Vec<u8>>>,
    /// Bulk buffers lent out (live `BulkLease`s holding one).
    bulk_in_use: Cell<usize>,
    /// Bytes freed to the allocator since the last trim.
    freed: Cell<usize>,
    /// The fewest free buffers each pool held since the last decay: that
    /// many were not needed for a whole window.
    low_water: Cell<(usize, usize)>,
    /// Sweeps seen (`decay` acts once per window).
    sweeps: Cell<u64>,
}

/// One relay direction's claim on a bulk buffer for the length of an
/// exchange. The shard's count of bulk buffers in use drops when the lease
/// does, on every path (also when the buffer itself went with a cancelled
/// operation), so the count never drifts.
pub struct BulkLease<'a> {
    pool: &'a BufferPool,
    held: Cell<bool>,
}

impl BulkLease<'_> {
    /// Called before `buf` is emptied and read into again: if its last
    /// read filled a whole exchange buffer (a large body is streaming) and
    /// the shard has a bulk buffer to lend, it is swapped for one.
    /// Contents are not kept.
    pub fn grow_if_filled(&self, buf: &mut Vec<u8>) {
        let filled = buf.len() == EXCHANGE_BUFFER_BYTES && buf.capacity() == EXCHANGE_BUFFER_BYTES;
        if filled {
            self.take_bulk(buf);
        }
        buf.clear();
    }

    /// Swaps `buf` (whatever it holds; contents are not kept) for an empty
    /// bulk buffer, if this lease holds none yet and the shard has one to
    /// lend. `false`: `buf` is left as it was.
    pub fn take_bulk(&self, buf: &mut Vec<u8>) -> bool {
        let pool = self.pool;
        if self.held.get() || pool.bulk_in_use.get() >= MAX_BULK_IN_USE {
            return false;
        }
        pool.give(buf);
        let mut free = pool.bulk.borrow_mut();
        *buf = free.pop().unwrap_or_else(|| Vec::with_capacity(BULK_BUFFER_BYTES));
        // Pooled buffers keep their last bytes: never hand those out.
        buf.clear();
        let (low, bulk_low) = pool.low_water.get();
        pool.low_water.set((low, bulk_low.min(free.len())));
        self.held.set(true);
        pool.bulk_in_use.set(pool.bulk_in_use.get() + 1);
        true
    }
}

impl Drop for BulkLease<'_> {
    fn drop(&mut self) {
        if self.held.get() {
            self.pool.bulk_in_use.set(self.pool.bulk_in_use.get() - 1);
        }
    }
}

impl BufferPool {
    /// Makes `buf` an (empty) exchange buffer, from the pool if it has one.
    pub fn fill(&self, buf: &mut Vec<u8>) {
        if buf.capacity() < EXCHANGE_BUFFER_BYTES {
            let mut free = self.free.borrow_mut();
            *buf = free.pop().unwrap_or_else(|| Vec::with_capacity(EXCHANGE_BUFFER_BYTES));
            let (low, bulk) = self.low_water.get();
            self.low_water.set((low.min(free.len()), bulk));
        }
        buf.clear();
    }

    /// Called by the shard's sweeper every sweep. Every
    /// `DECAY_WINDOW_SWEEPS` sweeps it frees the pooled buffers no
    /// exchange needed during the whole window (the pools' low-water
    /// marks): after a load peak the pools shrink back to what the traffic
    /// uses, and the memory can go back to the system (`should_trim`).
    /// The window is long enough that steady traffic whose concurrency
    /// merely wavers does not free buffers only to allocate (and fault
    /// in) them again a moment later.
    pub fn decay(&self) {
        let sweep = self.sweeps.get() + 1;
        self.sweeps.set(sweep);
        if sweep % DECAY_WINDOW_SWEEPS != 0 {
            return;
        }
        let (low, bulk_low) = self.low_water.get();
        for (pool, unused) in [(&self.free, low), (&self.bulk, bulk_low)] {
            let mut pool = pool.borrow_mut();
            let unused = unused.min(pool.len());
            for buf in pool.drain(..unused) {
                self.freed.set(self.freed.get() + buf.capacity());
            }
        }
        self.low_water.set((self.free.borrow().len(), self.bulk.borrow().len()));
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
        } else {
            self.freed.set(self.freed.get() + buf.capacity());
        }
    }

    /// A relay direction's lease on at most one bulk buffer.
    pub fn lease(&self) -> BulkLease<'_> {
        BulkLease { pool: self, held: Cell::new(false) }
    }

    /// Whether enough memory went back to the allocator since the last
    /// call that the shard should ask it to return free pages to the
    /// system (glibc keeps freed heap memory; a load peak would otherwise
    /// leave RSS at its peak). Resets the count.
    pub fn should_trim(&self) -> bool {
        let due = self.freed.get() >= TRIM_AFTER_FREED_BYTES;
        if due {
            self.freed.set(0);
        }
        due
    }

    pub fn bulk_in_use(&self) -> usize {
        self.bulk_in_use.get()
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
        let lease = pool.lease();
        let mut buf = Vec::new();
        pool.fill(&mut buf);
        buf.extend_from_slice(&[1; 100]);
        lease.grow_if_filled(&mut buf);
        assert_eq!((buf.len(), buf.capacity()), (0, EXCHANGE_BUFFER_BYTES), "a partial read keeps the buffer");
        buf.resize(EXCHANGE_BUFFER_BYTES, 1);
        lease.grow_if_filled(&mut buf);
        assert_eq!((buf.len(), buf.capacity()), (0, BULK_BUFFER_BYTES));
        assert_eq!(pool.pooled(), 1, "the exchange buffer went back to the pool");
        assert_eq!(pool.bulk_in_use(), 1);
        buf.resize(BULK_BUFFER_BYTES, 1);
        lease.grow_if_filled(&mut buf);
        assert_eq!(buf.capacity(), BULK_BUFFER_BYTES, "a bulk buffer stays one");
        pool.give(&mut buf);
        drop(lease);
        assert_eq!(pool.bulk_in_use(), 0, "the lease ended");
        assert_eq!(pool.bulk.borrow().len(), 1);
        let mut again = Vec::new();
        pool.fill(&mut again);
        again.resize(EXCHANGE_BUFFER_BYTES, 0);
        pool.lease().grow_if_filled(&mut again);
        assert!(pool.bulk.borrow().is_empty(), "the pooled bulk buffer was reused");
    }

    #[test]
    fn a_bulk_buffer_can_be_taken_for_an_empty_buffer_once_per_lease() {
        // The exchange gives its read buffer back while a response head is
        // written; when that head's read filled the buffer, the relay goes
        // straight to a bulk buffer instead of one more exchange-sized read.
        let pool = BufferPool::default();
        let lease = pool.lease();
        let mut buf = Vec::new();
        assert!(lease.take_bulk(&mut buf));
        assert_eq!((buf.len(), buf.capacity()), (0, BULK_BUFFER_BYTES));
        assert_eq!(pool.bulk_in_use(), 1);
        let mut other = Vec::new();
        assert!(!lease.take_bulk(&mut other), "one bulk buffer per lease");
        assert_eq!(other.capacity(), 0, "left as it was");
        drop(lease);
        assert_eq!(pool.bulk_in_use(), 0);
        // A bulk buffer goes back to the pool with its bytes: taken again,
        // it must come out empty (stale bytes of another response must
        // never be relayed).
        buf.resize(BULK_BUFFER_BYTES, 7);
        pool.give(&mut buf);
        let mut again = Vec::new();
        assert!(pool.lease().take_bulk(&mut again));
        assert_eq!((again.len(), again.capacity()), (0, BULK_BUFFER_BYTES), "a reused bulk buffer is emptied");
    }

    #[test]
    fn at_most_max_bulk_in_use_are_lent_and_a_lost_buffer_still_ends_its_lease() {
        let pool = BufferPool::default();
        let leases: Vec<BulkLease> = (0..MAX_BULK_IN_USE + 3).map(|_| pool.lease()).collect();
        let mut grown = 0;
        for lease in &leases {
            // vec! allocates exactly the exchange buffer's capacity.
            let mut buf = vec![0; EXCHANGE_BUFFER_BYTES];
            lease.grow_if_filled(&mut buf);
            if buf.capacity() == BULK_BUFFER_BYTES {
                grown += 1;
            }
            // The buffer is dropped here, as if it went with a cancelled
            // operation: only the lease ends the count.
        }
        assert_eq!(grown, MAX_BULK_IN_USE, "past the cap, bodies move through exchange buffers");
        drop(leases);
        assert_eq!(pool.bulk_in_use(), 0);
    }

    #[test]
    fn decay_frees_the_buffers_no_exchange_needed_since_the_last_sweep() {
        let pool = BufferPool::default();
        let mut peak: Vec<Vec<u8>> = (0..10).map(|_| Vec::new()).collect();
        for buf in &mut peak {
            pool.fill(buf);
        }
        for buf in &mut peak {
            pool.give(buf);
        }
        let window = |pool: &BufferPool| (0..DECAY_WINDOW_SWEEPS).for_each(|_| pool.decay());
        window(&pool);
        assert_eq!(pool.pooled(), 10, "the first window only marks the low water");
        // Two exchanges at a time during the next interval.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        pool.fill(&mut a);
        pool.fill(&mut b);
        pool.give(&mut a);
        pool.give(&mut b);
        pool.decay();
        assert_eq!(pool.pooled(), 10, "nothing is freed within a window");
        (1..DECAY_WINDOW_SWEEPS).for_each(|_| pool.decay());
        assert_eq!(pool.pooled(), 2, "eight were not needed for a whole window");
        window(&pool);
        assert_eq!(pool.pooled(), 0, "nothing used since: nothing kept");
        assert!(pool.should_trim() || 10 * EXCHANGE_BUFFER_BYTES < TRIM_AFTER_FREED_BYTES);
    }

    #[test]
    fn freeing_a_megabyte_past_the_pool_asks_for_a_trim_once() {
        let pool = BufferPool::default();
        for _ in 0..MAX_POOLED_BUFFERS + TRIM_AFTER_FREED_BYTES / EXCHANGE_BUFFER_BYTES {
            let mut buf = Vec::with_capacity(EXCHANGE_BUFFER_BYTES);
            pool.give(&mut buf);
        }
        assert!(pool.should_trim());
        assert!(!pool.should_trim(), "the count starts again");
    }
}
