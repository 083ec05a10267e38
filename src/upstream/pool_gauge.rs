//! How many idle connections a shard's pool holds per endpoint slot,
//! readable by the admin thread (`GET /clusters`) without any lock or
//! locked instruction on the shard.
//!
//! The pool (`pool.rs`, shard-local) is the only writer: after it changes
//! a slot's idle list it stores the list's length into that slot's cell
//! (a plain relaxed store). The cells live in an array shared by `Arc`;
//! when a reload adds endpoint slots the pool makes a larger array, copies
//! the counts and publishes it with one `ArcSwap` store (on the reload,
//! never per request). The admin thread loads the published array and
//! reads the cells: a count may be a moment old, never torn.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The published side, shared with the admin thread (a field of
/// [`ShardCounters`](crate::admin::ShardCounters)).
pub struct IdleGauge {
    /// A boxed slice: `ArcSwap` needs a sized pointee.
    published: ArcSwap<Box<[AtomicU32]>>,
}

impl Default for IdleGauge {
    fn default() -> Self {
        IdleGauge { published: ArcSwap::from_pointee(Box::new([])) }
    }
}

impl std::fmt::Debug for IdleGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleGauge").field("slots", &self.published.load().len()).finish()
    }
}

impl IdleGauge {
    /// Idle connections of endpoint `slot` (0 for a slot the pool has
    /// never seen).
    pub fn idle(&self, slot: usize) -> u32 {
        self.published.load().get(slot).map_or(0, |c| c.load(Relaxed))
    }
}

/// The writer's side, held by the pool: the cells it writes and where to
/// publish a larger array.
pub struct IdleCells {
    cells: Arc<Box<[AtomicU32]>>,
    gauge: Arc<IdleGauge>,
}

impl IdleCells {
    pub fn new(gauge: Arc<IdleGauge>) -> IdleCells {
        IdleCells { cells: gauge.published.load_full(), gauge }
    }

    /// Makes room for `slots` slots (a reload added endpoints); the
    /// counts so far are kept.
    pub fn grow(&mut self, slots: usize) {
        if slots <= self.cells.len() {
            return;
        }
        let larger: Box<[AtomicU32]> =
            (0..slots).map(|i| AtomicU32::new(self.cells.get(i).map_or(0, |c| c.load(Relaxed)))).collect();
        self.cells = Arc::new(larger);
        self.gauge.published.store(self.cells.clone());
    }

    /// The pool's idle list of `slot` now holds `idle` connections.
    #[inline]
    pub fn set(&self, slot: usize, idle: usize) {
        if let Some(cell) = self.cells.get(slot) {
            cell.store(idle.min(u32::MAX as usize) as u32, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_published_and_survive_growth() {
        let gauge = Arc::new(IdleGauge::default());
        let mut cells = IdleCells::new(gauge.clone());
        cells.set(3, 9);
        assert_eq!(gauge.idle(3), 0, "no slot 3 yet: ignored");
        cells.grow(2);
        cells.set(1, 4);
        assert_eq!(gauge.idle(1), 4);
        cells.grow(5);
        assert_eq!(gauge.idle(1), 4, "kept across growth");
        cells.set(4, 2);
        assert_eq!((gauge.idle(4), gauge.idle(0), gauge.idle(7)), (2, 0, 0));
        cells.grow(3);
        assert_eq!(gauge.idle(4), 2, "never shrinks");
    }
}
