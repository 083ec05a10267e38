//! What a shard's outlier detection decided, readable by the admin thread
//! (`GET /clusters`, `/stats`) without a lock on the shard: per endpoint
//! slot, until when it is ejected and how many times it was, plus the
//! shard's ejection count.
//!
//! Same shape as the pool's idle gauge (`upstream/pool_gauge.rs`): the
//! shard is the only writer and stores plain relaxed values; a reload
//! that adds slots publishes a larger array with one `ArcSwap` store.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

/// Instants cross threads as milliseconds since this moment.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` as milliseconds since the process epoch (at least 1: 0 = none).
fn millis(at: Instant) -> u64 {
    (at.saturating_duration_since(epoch()).as_millis() as u64).max(1)
}

#[derive(Default)]
struct Cell {
    /// Ejected until (milliseconds since `epoch`); 0 = not ejected.
    until: AtomicU64,
    times: AtomicU32,
}

/// The published side: a field of `ShardCounters`.
pub struct EjectionGauge {
    published: ArcSwap<Box<[Cell]>>,
    /// Ejections this shard made (only the shard writes).
    ejections: AtomicU64,
}

impl Default for EjectionGauge {
    fn default() -> Self {
        // Fix the epoch before any reader computes with it.
        let _ = epoch();
        EjectionGauge { published: ArcSwap::from_pointee(Box::new([])), ejections: AtomicU64::new(0) }
    }
}

impl std::fmt::Debug for EjectionGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EjectionGauge").field("ejections", &self.ejections()).finish_non_exhaustive()
    }
}

impl EjectionGauge {
    /// How much longer `slot` stays ejected (zero when it is not), and how
    /// many times it was ejected.
    pub fn ejection(&self, slot: usize) -> (Duration, u32) {
        let cells = self.published.load();
        let Some(c) = cells.get(slot) else {
            return (Duration::ZERO, 0);
        };
        let until = c.until.load(Relaxed);
        let left = until.saturating_sub(millis(Instant::now()));
        (if until == 0 { Duration::ZERO } else { Duration::from_millis(left) }, c.times.load(Relaxed))
    }

    /// Ejections this shard made since it started.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }
}

/// The writer's side, held by the shard's endpoint states.
pub struct EjectionCells {
    cells: Arc<Box<[Cell]>>,
    gauge: Arc<EjectionGauge>,
}

impl std::fmt::Debug for EjectionCells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EjectionCells").field("slots", &self.cells.len()).finish()
    }
}

impl EjectionCells {
    pub fn new(gauge: Arc<EjectionGauge>) -> EjectionCells {
        EjectionCells { cells: gauge.published.load_full(), gauge }
    }

    /// Makes room for slots `0..slots`, keeping what is there.
    fn grow(&mut self, slots: usize) {
        if slots <= self.cells.len() {
            return;
        }
        let larger: Box<[Cell]> = (0..slots)
            .map(|i| {
                let old = self.cells.get(i);
                Cell {
                    until: AtomicU64::new(old.map_or(0, |c| c.until.load(Relaxed))),
                    times: AtomicU32::new(old.map_or(0, |c| c.times.load(Relaxed))),
                }
            })
            .collect();
        self.cells = Arc::new(larger);
        self.gauge.published.store(self.cells.clone());
    }

    /// `slot` was ejected until `until`, for the `times`-th time.
    pub fn ejected(&mut self, slot: usize, until: Instant, times: u32) {
        self.grow(slot + 1);
        self.cells[slot].until.store(millis(until), Relaxed);
        self.cells[slot].times.store(times, Relaxed);
        let e = &self.gauge.ejections;
        e.store(e.load(Relaxed) + 1, Relaxed);
    }

    /// `slot` is back in service.
    pub fn returned(&self, slot: usize) {
        if let Some(c) = self.cells.get(slot) {
            c.until.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejections_are_published_and_survive_growth() {
        let gauge = Arc::new(EjectionGauge::default());
        let mut cells = EjectionCells::new(gauge.clone());
        assert_eq!(gauge.ejection(3), (Duration::ZERO, 0));
        cells.ejected(3, Instant::now() + Duration::from_secs(30), 1);
        let (left, times) = gauge.ejection(3);
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30), "{left:?}");
        assert_eq!((times, gauge.ejections()), (1, 1));
        cells.ejected(7, Instant::now() + Duration::from_secs(60), 2);
        assert_eq!(gauge.ejection(3).1, 1, "kept across growth");
        cells.returned(3);
        assert_eq!(gauge.ejection(3), (Duration::ZERO, 1), "back, times kept");
        assert_eq!(gauge.ejections(), 2);
    }
}
