//! Slow start (nginx's `slow_start=`, Envoy's `slow_start_config`): an
//! endpoint that is new — first seen by a reload — or back from being
//! marked down gets a share of traffic that ramps up linearly, from 10 %
//! of its weight to all of it over the cluster's `slow_start` window, so
//! a cold cache or JIT is not handed a full share at once.
//!
//! The effective weight is `weight × (0.1 + 0.9 × elapsed / window)`
//! (Envoy: `max(10 %, elapsed / window)`, nginx: `elapsed / window` from
//! 0); round_robin, least_request and random read it through
//! `Candidates::weight`. The hashing algorithms do not ramp (a key stays
//! on its endpoint). Ramps are per shard and per endpoint slot, so a
//! reload that keeps an endpoint keeps its ramp.
//!
//! Where ramps start: `Shard::install` for endpoints new to a generation
//! (`on_install`), and the endpoint state table when a mark is lifted
//! (`EndpointStates::usable` / `clear`; health checks returning an
//! endpoint should call [`Ramps::start`] too).

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::WEIGHT_SCALE;
use crate::shard::generation::Generation;

/// Where a ramp starts, in percent of the endpoint's weight.
pub const INITIAL_PERCENT: u64 = 10;

/// The effective weight (in `WEIGHT_SCALE` units) of an endpoint of
/// `weight` that has been ramping for `elapsed` of `window`.
pub fn ramped_weight(weight: u32, elapsed: Duration, window: Duration) -> u64 {
    let full = weight as u64 * WEIGHT_SCALE;
    if elapsed >= window || window.is_zero() {
        return full;
    }
    // Per mille of the window elapsed, then 10 % + 90 % of that.
    let per_mille = (elapsed.as_nanos() * 1000 / window.as_nanos()) as u64;
    let percent_x10 = INITIAL_PERCENT * 10 + (100 - INITIAL_PERCENT) * per_mille / 100;
    (full * percent_x10 / 1000).max(1)
}

#[derive(Debug, Clone, Copy)]
struct Ramp {
    since: Instant,
    window: Duration,
}

/// The shard's ramps, by endpoint slot.
#[derive(Debug, Default)]
pub struct Ramps {
    /// Per slot: the cluster's `slow_start`, if it has one.
    windows: RefCell<Vec<Option<Duration>>>,
    ramps: RefCell<Vec<Option<Ramp>>>,
    /// Ramps under way: while none is, no weight reads the clock.
    active: Cell<usize>,
}

impl Ramps {
    /// Whether any endpoint of this shard is ramping.
    #[inline]
    pub fn any(&self) -> bool {
        self.active.get() > 0
    }

    /// The endpoint in `slot` (re)starts its ramp at `now`, if its
    /// cluster has a `slow_start` window.
    pub fn start(&self, slot: usize, now: Instant) {
        let Some(window) = self.windows.borrow().get(slot).copied().flatten() else { return };
        let mut ramps = self.ramps.borrow_mut();
        if ramps.len() <= slot {
            ramps.resize(slot + 1, None);
        }
        if ramps[slot].replace(Ramp { since: now, window }).is_none() {
            self.active.set(self.active.get() + 1);
        }
    }

    /// The effective weight of the endpoint in `slot` of configured
    /// `weight` at `now`; a ramp that is over is ended here.
    pub fn weight(&self, slot: usize, weight: u32, now: Instant) -> u64 {
        let full = weight as u64 * WEIGHT_SCALE;
        let mut ramps = self.ramps.borrow_mut();
        let Some(Some(ramp)) = ramps.get(slot).copied() else { return full };
        let elapsed = now.saturating_duration_since(ramp.since);
        if elapsed >= ramp.window {
            ramps[slot] = None;
            self.active.set(self.active.get() - 1);
            return full;
        }
        ramped_weight(weight, elapsed, ramp.window)
    }

    /// A generation is installed on the shard: each slot learns its
    /// cluster's window; on a reload (`previous`), endpoints that were in
    /// no cluster of the previous generation start ramping. A slot whose
    /// cluster no longer has slow start stops ramping.
    pub fn on_install(&self, generation: &Generation, previous: Option<&Generation>, now: Instant) {
        let mut fresh = Vec::new();
        {
            let mut windows = self.windows.borrow_mut();
            let mut ramps = self.ramps.borrow_mut();
            for (c, ids) in generation.config.clusters.iter().zip(&generation.endpoints) {
                for id in ids {
                    let slot = id.slot();
                    if windows.len() <= slot {
                        windows.resize(slot + 1, None);
                    }
                    windows[slot] = c.balance.slow_start;
                    if c.balance.slow_start.is_none() {
                        if let Some(ramp) = ramps.get_mut(slot) {
                            if ramp.take().is_some() {
                                self.active.set(self.active.get() - 1);
                            }
                        }
                    }
                    let seen = previous.is_none_or(|p| p.endpoints.iter().flatten().any(|o| o.slot() == slot));
                    if !seen {
                        fresh.push(slot);
                    }
                }
            }
        }
        for slot in fresh {
            self.start(slot, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_ramps_linearly_from_a_tenth_to_full() {
        let window = Duration::from_secs(30);
        let at = |s: f64| ramped_weight(3, Duration::from_secs_f64(s), window);
        let full = 3 * WEIGHT_SCALE;
        assert_eq!(at(0.0), full / 10);
        assert_eq!(at(15.0), full * 55 / 100);
        assert_eq!(at(30.0), full);
        assert_eq!(at(300.0), full);
        let mut last = 0;
        for s in 0..30 {
            let w = at(s as f64);
            assert!(w > last, "not increasing at {s}s");
            last = w;
        }
        // Weight 1 never ramps to nothing.
        assert!(ramped_weight(1, Duration::ZERO, window) >= 1);
    }

    #[test]
    fn a_ramp_runs_only_where_the_cluster_has_a_window_and_ends_itself() {
        let ramps = Ramps::default();
        let t0 = Instant::now();
        ramps.windows.borrow_mut().extend([None, Some(Duration::from_secs(10))]);
        ramps.start(0, t0);
        assert!(!ramps.any(), "a slot without slow start does not ramp");
        ramps.start(1, t0);
        assert!(ramps.any());
        assert_eq!(
            ramps.weight(1, 2, t0 + Duration::from_secs(5)),
            ramped_weight(2, Duration::from_secs(5), Duration::from_secs(10))
        );
        assert_eq!(ramps.weight(1, 2, t0 + Duration::from_secs(10)), 2 * WEIGHT_SCALE);
        assert!(!ramps.any(), "a finished ramp ends");
    }
}
