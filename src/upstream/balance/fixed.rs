//! A fixed set of candidates — weights, eligibility, in-flight counts and
//! a key held in plain vectors — for the algorithms' unit tests and the
//! selection micro-benchmark (`benches/balance_pick.rs`), which need no
//! shard, generation or endpoint ids.

use super::{Candidates, Pick, WEIGHT_SCALE};

#[derive(Debug, Clone)]
pub struct Fixed {
    pub weights: Vec<u32>,
    pub eligible: Vec<bool>,
    pub active: Vec<u32>,
    pub key: Option<u64>,
    /// Whether the weights differ (computed once, as `Balancer` does).
    uneven: bool,
    /// Running sums of the scaled weights (cleared: none, as while a ramp
    /// runs).
    pub cumulative: Vec<u64>,
    scaled: Vec<u64>,
}

impl Fixed {
    /// `n` endpoints of weight 1, all eligible, none busy.
    pub fn equal(n: usize) -> Fixed {
        Fixed::weighted(&vec![1; n])
    }

    pub fn weighted(weights: &[u32]) -> Fixed {
        Fixed {
            weights: weights.to_vec(),
            eligible: vec![true; weights.len()],
            active: vec![0; weights.len()],
            key: None,
            uneven: weights.iter().any(|&w| w != weights[0]),
            scaled: weights.iter().map(|&w| w as u64 * WEIGHT_SCALE).collect(),
            cumulative: weights
                .iter()
                .scan(0, |sum, &w| {
                    *sum += w as u64 * WEIGHT_SCALE;
                    Some(*sum)
                })
                .collect(),
        }
    }

    /// How often each endpoint is picked in `picks` picks.
    pub fn count(&self, algorithm: &impl Pick, picks: usize) -> Vec<usize> {
        let mut counts = vec![0; self.weights.len()];
        for _ in 0..picks {
            if let Some(i) = algorithm.pick(self) {
                counts[i] += 1;
            }
        }
        counts
    }
}

impl Candidates for Fixed {
    fn len(&self) -> usize {
        self.weights.len()
    }

    fn eligible(&self, i: usize) -> bool {
        self.eligible[i]
    }

    fn weighted(&self) -> bool {
        self.uneven
    }

    fn weight(&self, i: usize) -> u64 {
        self.weights[i] as u64 * WEIGHT_SCALE
    }

    fn all_eligible(&self) -> bool {
        self.eligible.iter().all(|&e| e)
    }

    fn fixed_weights(&self) -> Option<&[u64]> {
        (!self.cumulative.is_empty()).then_some(&self.scaled)
    }

    fn cumulative_weights(&self) -> Option<&[u64]> {
        (!self.cumulative.is_empty()).then_some(&self.cumulative)
    }

    fn active(&self, i: usize) -> u32 {
        self.active[i]
    }

    fn key(&self) -> Option<u64> {
        self.key
    }
}

/// `n` endpoint names, as the hashing algorithms' tests build tables from.
#[cfg(test)]
pub fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("10.0.0.{i}:8080")).collect()
}

/// 10,000 request keys, hashed as a request's key is (the remap tests).
#[cfg(test)]
pub fn keys() -> impl Iterator<Item = u64> {
    (0..10_000u32).map(|k| super::hash::hash64(0, format!("user-{k}").as_bytes()))
}
