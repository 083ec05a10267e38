//! Least request, as Envoy's LEAST_REQUEST with `choice_count = 2`: draw
//! two eligible endpoints at random and send the try to the one with fewer
//! requests in flight on this shard (the "power of two choices": nearly
//! the balance of a full scan for two looks, and no herd onto the one
//! idle endpoint that every shard would find by scanning). The in-flight
//! counts are the shard's (`upstream/in_flight.rs`).
//!
//! With equal weights the two are DIFFERENT endpoints when two are
//! eligible. Envoy draws with replacement, so in a small cluster a busy
//! (slow, stuck) endpoint drawn twice wins however many requests it
//! holds: one pick in nine with three endpoints, one in four with two.
//! Drawn without replacement, a busy endpoint gets a request only when it
//! is not busier than the other one drawn.
//!
//! With unequal weights (or a slow-start ramp) the two are compared by
//! Envoy's effective weight `weight / (active + 1) ^ bias` with bias 1:
//! the larger wins. Envoy applies that rule to an EDF schedule over every
//! endpoint; here it decides between the two drawn ones, which keeps the
//! pick O(1). At zero load a heavier endpoint wins every pair it is in, so
//! its share is above plain proportion (weights 1,3: 25 % / 75 %, exact;
//! 1,1,2: about 22/22/56 %); under load the in-flight term evens it out.

use super::random::{uniform_eligible, uniform_eligible_other, Rng};
use super::{Candidates, Pick};

#[derive(Debug)]
pub struct LeastRequest {
    rng: Rng,
}

impl LeastRequest {
    pub fn new(rng: Rng) -> LeastRequest {
        LeastRequest { rng }
    }

    pub fn rng(&self) -> &Rng {
        &self.rng
    }
}

impl Pick for LeastRequest {
    #[inline]
    fn pick(&self, c: &impl Candidates) -> Option<usize> {
        let a = uniform_eligible(&self.rng, c)?;
        let b_wins;
        let b;
        if c.weighted() {
            // With replacement: at zero load the pairwise rule then gives
            // each endpoint its share of the weights (see above).
            b = uniform_eligible(&self.rng, c)?;
            let (active_a, active_b) = (c.active(a) as u64, c.active(b) as u64);
            // weight_b / (active_b + 1) > weight_a / (active_a + 1), without division.
            b_wins = c.weight(b) * (active_a + 1) > c.weight(a) * (active_b + 1);
        } else {
            b = uniform_eligible_other(&self.rng, c, a);
            b_wins = c.active(b) < c.active(a);
        }
        Some(if b_wins { b } else { a })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixed::Fixed;
    use super::*;

    #[test]
    fn the_busier_of_two_endpoints_gets_no_pick() {
        // The two draws are different endpoints: the idle one always wins.
        // (Drawn with replacement, the busy one would win a quarter.)
        let lr = LeastRequest::new(Rng::seeded(11));
        let mut c = Fixed::equal(2);
        c.active = vec![5, 0];
        assert_eq!(c.count(&lr, 40_000)[0], 0);
    }

    #[test]
    fn a_busy_endpoint_of_three_is_picked_only_when_the_other_drawn_is_busier() {
        // The benchmark's "one endpoint slow": it holds a request, the
        // others none, so it gets nothing (with replacement: 1/9).
        let lr = LeastRequest::new(Rng::seeded(3));
        let mut c = Fixed::equal(3);
        c.active = vec![0, 0, 1];
        assert_eq!(c.count(&lr, 30_000)[2], 0);
        // Idle like the others, it gets its third.
        c.active = vec![0, 0, 0];
        let counts = c.count(&lr, 30_000);
        assert!((9_000..11_000).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn busy_endpoints_are_avoided_among_many() {
        // 10 endpoints, 0..5 busy: a pick lands on a busy one only when
        // both (different) draws are busy, 5/10 × 4/9 = 22 %.
        let lr = LeastRequest::new(Rng::seeded(5));
        let mut c = Fixed::equal(10);
        c.active = vec![3, 3, 3, 3, 3, 0, 0, 0, 0, 0];
        let counts = c.count(&lr, 45_000);
        let busy: usize = counts[..5].iter().sum();
        assert!((9_000..11_000).contains(&busy), "{counts:?}");
    }

    #[test]
    fn the_one_eligible_endpoint_is_picked_whatever_its_load() {
        let lr = LeastRequest::new(Rng::seeded(7));
        let mut c = Fixed::equal(3);
        c.eligible = vec![false, true, false];
        c.active = vec![0, 9, 0];
        assert_eq!(c.count(&lr, 1_000)[1], 1_000);
    }

    #[test]
    fn weights_at_zero_load_follow_the_pairwise_rule() {
        let lr = LeastRequest::new(Rng::seeded(9));
        let c = Fixed::weighted(&[1, 3]);
        let counts = c.count(&lr, 40_000);
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        // Weight 3 with 2 in flight (3/3 = 1) ties weight 1 idle (1/1):
        // the first drawn wins, so each gets about half.
        let mut loaded = Fixed::weighted(&[1, 3]);
        loaded.active = vec![0, 2];
        let counts = loaded.count(&lr, 40_000);
        assert!((18_000..22_000).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn ineligible_endpoints_are_never_picked_and_none_eligible_is_none() {
        let lr = LeastRequest::new(Rng::seeded(2));
        let mut c = Fixed::weighted(&[1, 2, 1]);
        c.eligible[1] = false;
        assert_eq!(c.count(&lr, 5_000)[1], 0);
        c.eligible = vec![false; 3];
        assert_eq!(lr.pick(&c), None);
    }
}
