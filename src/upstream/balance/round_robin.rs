//! Round robin: each shard goes through a cluster's endpoints in turn,
//! starting at an offset of its own so that N shards do not all hit
//! endpoint 0 first. (Smooth weighted round robin comes with endpoint
//! weights.)

use std::cell::Cell;

use super::Pick;

/// Per-shard round robin over a cluster's endpoints. Each shard starts at
/// a different offset so that N shards do not all hit endpoint 0 first.
#[derive(Debug)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    pub fn new(shard: usize) -> RoundRobin {
        RoundRobin { next: Cell::new(shard) }
    }

    /// Continues from `position` (a previous generation's, for the same cluster).
    pub fn at(position: usize) -> RoundRobin {
        RoundRobin { next: Cell::new(position) }
    }

    /// Where the next pick starts.
    pub fn position(&self) -> usize {
        self.next.get()
    }
}

impl Pick for RoundRobin {
    /// The next endpoint in turn that is eligible; an ineligible one is
    /// passed over (its turn goes to the one after it).
    fn pick(&self, len: usize, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.next.get();
        for step in 0..len {
            let i = start.wrapping_add(step) % len;
            if eligible(i) {
                self.next.set(start.wrapping_add(step + 1));
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_through_endpoints_from_shard_offset() {
        let rr = RoundRobin::new(1);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(3, |_| true).unwrap()).collect();
        assert_eq!(picks, [1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn passes_over_ineligible_endpoints_and_answers_none_when_none_is() {
        let rr = RoundRobin::new(0);
        let picks: Vec<usize> = (0..4).map(|_| rr.pick(3, |i| i != 1).unwrap()).collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        assert_eq!(rr.pick(3, |_| false), None);
    }
}
