//! Round robin, smooth and weighted exactly as nginx's
//! `ngx_http_upstream_get_peer`: on each pick every eligible endpoint's
//! `current` grows by its effective weight, the largest `current` wins
//! (the first on a tie) and gives back the sum of the effective weights.
//! Weights 5,1,1 give a,a,b,a,c,a,a — spread out, not a,a,a,a,a,b,c.
//! Ineligible endpoints are skipped as nginx skips down or failed peers:
//! their `current` neither grows nor shrinks meanwhile.
//!
//! With every weight equal (and no slow start ramping) the result is a
//! plain rotation, so that case takes the rotation directly: one counter,
//! no pass over the endpoints. Each shard starts at an offset of its own
//! so that N shards do not all hit endpoint 0 first.

use std::cell::{Cell, RefCell};

use super::{Candidates, EndpointId, Pick};

/// One shard's round robin over one cluster.
#[derive(Debug)]
pub struct RoundRobin {
    /// The plain rotation's next position.
    next: Cell<usize>,
    /// Smooth weighted: each endpoint's `current_weight`, by index.
    current: RefCell<Vec<i64>>,
}

impl RoundRobin {
    pub fn new(shard: usize) -> RoundRobin {
        RoundRobin { next: Cell::new(shard), current: RefCell::new(Vec::new()) }
    }

    /// This one's state carried into a generation whose endpoints are
    /// `ids`, from one whose endpoints were `previous` (a kept endpoint
    /// keeps its `current_weight`; a new one starts at 0).
    pub fn carried(&self, previous: &[EndpointId], ids: &[EndpointId]) -> RoundRobin {
        let old = self.current.borrow();
        let current = if old.is_empty() {
            Vec::new()
        } else {
            ids.iter()
                .map(|id| {
                    previous.iter().position(|p| p.slot() == id.slot()).and_then(|j| old.get(j)).map_or(0, |&w| w)
                })
                .collect()
        };
        RoundRobin { next: Cell::new(self.next.get()), current: RefCell::new(current) }
    }

    /// Where the plain rotation's next pick starts.
    pub fn position(&self) -> usize {
        self.next.get()
    }

    /// The plain rotation: the next eligible endpoint in turn.
    #[inline]
    fn rotate(&self, c: &impl Candidates) -> Option<usize> {
        let len = c.len();
        let start = self.next.get();
        for step in 0..len {
            let i = start.wrapping_add(step) % len;
            if c.eligible(i) {
                self.next.set(start.wrapping_add(step + 1));
                return Some(i);
            }
        }
        None
    }

    /// nginx's smooth weighted round robin.
    fn smooth(&self, c: &impl Candidates) -> Option<usize> {
        let mut current = self.current.borrow_mut();
        if current.len() != c.len() {
            current.resize(c.len(), 0);
        }
        // The first of the largest wins, as nginx's `>` comparison.
        let (mut best, mut best_current) = (usize::MAX, i64::MIN);
        if let (true, Some(weights)) = (c.all_eligible(), c.fixed_weights()) {
            // The common case as one tight pass over two slices.
            let mut total = 0i64;
            for (i, (current, &w)) in current.iter_mut().zip(weights).enumerate() {
                *current += w as i64;
                total += w as i64;
                if *current > best_current {
                    (best, best_current) = (i, *current);
                }
            }
            if best == usize::MAX {
                return None;
            }
            current[best] -= total;
            return Some(best);
        }
        let mut total = 0i64;
        for (i, current) in current.iter_mut().enumerate() {
            if !c.eligible(i) {
                continue;
            }
            let w = c.weight(i) as i64;
            *current += w;
            total += w;
            if *current > best_current {
                (best, best_current) = (i, *current);
            }
        }
        if best == usize::MAX {
            return None;
        }
        current[best] -= total;
        Some(best)
    }
}

impl Pick for RoundRobin {
    #[inline]
    fn pick(&self, c: &impl Candidates) -> Option<usize> {
        if c.weighted() {
            self.smooth(c)
        } else {
            self.rotate(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixed::Fixed;
    use super::*;

    #[test]
    fn cycles_through_endpoints_from_shard_offset() {
        let rr = RoundRobin::new(1);
        let c = Fixed::equal(3);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(picks, [1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn passes_over_ineligible_endpoints_and_answers_none_when_none_is() {
        let rr = RoundRobin::new(0);
        let mut c = Fixed::equal(3);
        c.eligible[1] = false;
        let picks: Vec<usize> = (0..4).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        c.eligible = vec![false; 3];
        assert_eq!(rr.pick(&c), None);
        let mut weighted = Fixed::weighted(&[1, 2]);
        weighted.eligible = vec![false; 2];
        assert_eq!(rr.pick(&weighted), None);
    }

    #[test]
    fn smooth_weighted_order_is_nginx_s() {
        // nginx's own example (ngx_http_upstream_round_robin.c): weights
        // 5, 1, 1 give a a b a c a a.
        let rr = RoundRobin::new(0);
        let c = Fixed::weighted(&[5, 1, 1]);
        let picks: Vec<usize> = (0..14).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weighted_shares_are_exact_over_a_cycle_and_skip_ineligible() {
        let rr = RoundRobin::new(0);
        let mut c = Fixed::weighted(&[1, 3, 6]);
        assert_eq!(c.count(&rr, 1000), [100, 300, 600]);
        c.eligible[2] = false;
        assert_eq!(c.count(&rr, 400), [100, 300, 0]);
    }

    #[test]
    fn carried_state_follows_endpoints_by_slot() {
        let rr = RoundRobin::new(0);
        let c = Fixed::weighted(&[5, 1, 1]);
        rr.pick(&c);
        let before = rr.current.borrow().clone();
        let ids = crate::shard::identity::test_ids(&[4, 7, 9]);
        let reordered = crate::shard::identity::test_ids(&[9, 4, 11]);
        let next = rr.carried(&ids, &reordered);
        assert_eq!(*next.current.borrow(), [before[2], before[0], 0]);
    }
}
