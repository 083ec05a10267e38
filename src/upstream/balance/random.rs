//! Random: each try goes to an endpoint drawn at random, in proportion to
//! the endpoints' weights (Envoy's RANDOM, nginx's `random` without `two`).
//! Also home of the per-shard generator that least_request draws from: a
//! xorshift64* state in a `Cell`, no syscall and no lock per draw.

use std::cell::Cell;

use super::{Candidates, Pick};

/// xorshift64* (Vigna): fast, 64 bits of state, good enough to spread
/// load; not for secrets.
#[derive(Debug)]
pub struct Rng(Cell<u64>);

impl Rng {
    /// A generator for `shard`'s copy of cluster `cluster`; seeded from
    /// the clock too so restarts do not replay the same sequence.
    pub fn new(shard: usize, cluster: usize) -> Rng {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Rng::seeded(nanos ^ ((shard as u64) << 48) ^ ((cluster as u64) << 32))
    }

    pub fn seeded(seed: u64) -> Rng {
        // The finalizer of the seed: never zero, and nearby seeds diverge.
        Rng(Cell::new(super::hash::fmix64(seed.wrapping_add(0x9E37_79B9_7F4A_7C15)) | 1))
    }

    /// A generator continuing this one's sequence (over a reload).
    pub fn carried(&self) -> Rng {
        Rng(Cell::new(self.0.get()))
    }

    #[inline]
    pub fn next_u64(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0), by multiply-shift (no division).
    #[inline]
    pub fn below(&self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// How many random draws are tried before scanning for an eligible endpoint.
const DRAWS: usize = 3;

/// An eligible endpoint drawn uniformly (weights ignored): a few draws,
/// then the first eligible one from a random start.
#[inline]
pub(super) fn uniform_eligible(rng: &Rng, c: &impl Candidates) -> Option<usize> {
    let n = c.len();
    for _ in 0..DRAWS {
        let i = rng.below(n as u64) as usize;
        if c.eligible(i) {
            return Some(i);
        }
    }
    let start = rng.below(n as u64) as usize;
    (0..n).map(|step| (start + step) % n).find(|&i| c.eligible(i))
}

/// An eligible endpoint other than `first`, drawn uniformly (a few draws
/// among the others, then the first eligible one from a random start);
/// `first` itself when no other is eligible.
#[inline]
pub(super) fn uniform_eligible_other(rng: &Rng, c: &impl Candidates, first: usize) -> usize {
    let n = c.len();
    if n < 2 {
        return first;
    }
    for _ in 0..DRAWS {
        let mut i = rng.below(n as u64 - 1) as usize;
        if i >= first {
            i += 1;
        }
        if c.eligible(i) {
            return i;
        }
    }
    let start = rng.below(n as u64) as usize;
    (0..n).map(|step| (start + step) % n).find(|&i| i != first && c.eligible(i)).unwrap_or(first)
}

/// An eligible endpoint drawn in proportion to its effective weight: one
/// draw over the running sums when the candidates have them, else (or
/// when that draw lands on an ineligible endpoint) a draw over the
/// eligible ones' weights. Either way each eligible endpoint's chance is
/// its weight over the eligible total.
pub(super) fn weighted_eligible(rng: &Rng, c: &impl Candidates) -> Option<usize> {
    if let Some((sums, &total)) = c.cumulative_weights().and_then(|sums| Some((sums, sums.last()?))) {
        let r = rng.below(total);
        let i = sums.partition_point(|&sum| sum <= r);
        if i < sums.len() && c.eligible(i) {
            return Some(i);
        }
    }
    let total: u64 = (0..c.len()).filter(|&i| c.eligible(i)).map(|i| c.weight(i)).sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.below(total);
    for i in 0..c.len() {
        if !c.eligible(i) {
            continue;
        }
        let w = c.weight(i);
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

#[derive(Debug)]
pub struct Random {
    rng: Rng,
}

impl Random {
    pub fn new(rng: Rng) -> Random {
        Random { rng }
    }

    pub fn rng(&self) -> &Rng {
        &self.rng
    }
}

impl Pick for Random {
    #[inline]
    fn pick(&self, c: &impl Candidates) -> Option<usize> {
        if c.weighted() {
            weighted_eligible(&self.rng, c)
        } else {
            uniform_eligible(&self.rng, c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixed::Fixed;
    use super::*;

    #[test]
    fn weighted_shares_within_tolerance() {
        let random = Random::new(Rng::seeded(7));
        let c = Fixed::weighted(&[1, 2, 5, 2]);
        let counts = c.count(&random, 100_000);
        for (i, &w) in [1u32, 2, 5, 2].iter().enumerate() {
            let expected = 100_000.0 * w as f64 / 10.0;
            let got = counts[i] as f64;
            assert!((got - expected).abs() < expected * 0.05, "endpoint {i}: {got} vs {expected}: {counts:?}");
        }
    }

    #[test]
    fn weighted_shares_without_running_sums_as_while_ramping() {
        let random = Random::new(Rng::seeded(8));
        let mut c = Fixed::weighted(&[1, 3, 6]);
        c.cumulative.clear();
        c.eligible[0] = false;
        let counts = c.count(&random, 90_000);
        assert_eq!(counts[0], 0);
        assert!(counts[1].abs_diff(30_000) < 1_500 && counts[2].abs_diff(60_000) < 1_500, "{counts:?}");
    }

    #[test]
    fn unweighted_is_uniform_and_ineligible_endpoints_get_nothing() {
        let random = Random::new(Rng::seeded(3));
        let mut c = Fixed::equal(4);
        c.eligible[1] = false;
        let counts = c.count(&random, 30_000);
        assert_eq!(counts[1], 0);
        for i in [0, 2, 3] {
            assert!((9_000..11_000).contains(&counts[i]), "{counts:?}");
        }
        let mut weighted = Fixed::weighted(&[1, 4, 1]);
        weighted.eligible[1] = false;
        assert_eq!(weighted.count(&random, 1000)[1], 0);
    }

    #[test]
    fn no_eligible_endpoint_is_none() {
        let random = Random::new(Rng::seeded(1));
        for weights in [&[1, 1][..], &[1, 3]] {
            let mut c = Fixed::weighted(weights);
            c.eligible = vec![false; weights.len()];
            assert_eq!(random.pick(&c), None);
        }
    }
}
