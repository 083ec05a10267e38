//! The select-endpoint phase and its load-balancing algorithms. Only round
//! robin so far; a later issue adds more behind one small selection trait
//! once there are two.

use std::cell::Cell;

use super::EndpointId;
use crate::shard::Shard;

/// One endpoint of one cluster, as the selection phase chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub cluster: usize,
    /// Position in the cluster's endpoint list.
    pub index: usize,
    /// The shard-wide id its pool and state are kept under.
    pub id: EndpointId,
}

/// The select-endpoint phase: which endpoint of `cluster` the next try
/// goes to.
pub fn select(shard: &Shard, cluster: usize) -> Endpoint {
    let len = shard.config.clusters[cluster].endpoints.len();
    let index = shard.balancers[cluster].pick(len);
    Endpoint { cluster, index, id: shard.endpoint_id(cluster, index) }
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
