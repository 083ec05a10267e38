//! The select-endpoint phase and its load-balancing algorithms. Only round
//! robin so far; a later issue adds more behind one small selection trait
//! once there are two.

use std::cell::Cell;

use super::EndpointId;
use crate::shard::generation::ShardGeneration;

/// One endpoint of one cluster, as the selection phase chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub cluster: usize,
    /// Position in the cluster's endpoint list.
    pub index: usize,
    /// The stable id its pool and state are kept under.
    pub id: EndpointId,
}

/// The select-endpoint phase: which endpoint of `cluster` (in the
/// request's generation) the next try goes to.
pub fn select(generation: &ShardGeneration, cluster: usize) -> Endpoint {
    let ids = &generation.shared.endpoints[cluster];
    let index = generation.balancers[cluster].pick(ids.len());
    Endpoint { cluster, index, id: ids[index] }
}

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

    /// Index of the endpoint to use among `len` (> 0).
    pub fn pick(&self, len: usize) -> usize {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        i % len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_through_endpoints_from_shard_offset() {
        let rr = RoundRobin::new(1);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(3)).collect();
        assert_eq!(picks, [1, 2, 0, 1, 2, 0]);
    }
}
