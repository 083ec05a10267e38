//! Maglev (Eisenbud et al., NSDI 2016; Envoy's MAGLEV): a lookup table of
//! M entries (M prime, at least 100 per endpoint, 65537 by default) filled
//! from each endpoint's own permutation of the table, turn by turn, so
//! that every endpoint owns about M/N entries and removing one moves
//! little more than its own entries. A request goes to
//! `table[hash(key) % M]` — one table read, cheaper than a
//! ring's binary search.
//!
//! Endpoint `i`'s permutation: `offset = h1 % M`, `skip = h2 % (M - 1) +
//! 1`, the j-th preference is `(offset + j × skip) % M`, where h1 and h2
//! are two independently seeded hashes (`hash.rs`) of its address as
//! written. Weights: in turn t an endpoint of weight w takes an entry only
//! while its count is below `t × w / max_weight` (Envoy's weighted fill).
//!
//! A key whose entry's endpoint is not eligible falls back to the next
//! entry of the table, then the next, until an eligible endpoint: entries
//! are in permutation order, so the keys of a dead endpoint spread over
//! the others. Built once per generation, shared by every shard, kept by
//! a reload that keeps the cluster's endpoints and weights.

use std::sync::Arc;

use super::hash::hash64;
use super::round_robin::RoundRobin;
use super::{Candidates, Pick};

#[derive(Debug, PartialEq, Eq)]
pub struct MaglevTable {
    /// Endpoint index per entry.
    entries: Vec<u32>,
}

impl MaglevTable {
    /// The table of `size` entries (a prime) for endpoints `names` (as
    /// written) with `weights`.
    pub fn build(names: &[String], weights: &[u32], size: usize) -> MaglevTable {
        let n = names.len();
        let max_weight = weights.iter().copied().max().unwrap_or(0) as u64;
        if n == 0 || max_weight == 0 || size == 0 {
            return MaglevTable { entries: Vec::new() };
        }
        let m = size as u64;
        let permutation: Vec<(u64, u64)> = names
            .iter()
            .map(|name| {
                let offset = hash64(1, name.as_bytes()) % m;
                let skip = if m > 1 { hash64(2, name.as_bytes()) % (m - 1) + 1 } else { 1 };
                (offset, skip)
            })
            .collect();
        // Each endpoint's next preference, as a position in the table.
        let mut next: Vec<u64> = permutation.iter().map(|&(offset, _)| offset).collect();
        let mut counts = vec![0u64; n];
        let mut entries = vec![u32::MAX; size];
        let mut filled = 0;
        let mut turn = 0u64;
        while filled < size {
            turn += 1;
            for i in 0..n {
                if counts[i] * max_weight >= turn * weights[i] as u64 {
                    continue;
                }
                let skip = permutation[i].1;
                let mut c = next[i];
                while entries[c as usize] != u32::MAX {
                    c = (c + skip) % m;
                }
                entries[c as usize] = i as u32;
                next[i] = (c + skip) % m;
                counts[i] += 1;
                filled += 1;
                if filled == size {
                    break;
                }
            }
        }
        MaglevTable { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The endpoint of `key`'s entry, or of the next entry whose endpoint
    /// is `eligible`.
    pub fn lookup(&self, key: u64, len: usize, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let m = self.entries.len();
        if m == 0 {
            return None;
        }
        let start = (key % m as u64) as usize;
        let first = self.entries[start] as usize;
        if eligible(first) {
            return Some(first);
        }
        if !(0..len).any(&eligible) {
            return None;
        }
        (1..m).map(|step| self.entries[(start + step) % m] as usize).find(|&i| eligible(i))
    }
}

/// One shard's Maglev over one cluster: the shared table, and round robin
/// for requests without the key.
#[derive(Debug)]
pub struct Maglev {
    pub table: Arc<MaglevTable>,
    pub fallback: RoundRobin,
}

impl Pick for Maglev {
    #[inline]
    fn pick(&self, c: &impl Candidates) -> Option<usize> {
        match c.key() {
            Some(key) => self.table.lookup(key, c.len(), |i| c.eligible(i)),
            None => self.fallback.pick(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixed::{keys, names, Fixed};
    use super::*;
    use crate::config::balance::DEFAULT_MAGLEV_TABLE_SIZE;

    #[test]
    fn removing_one_of_ten_endpoints_remaps_about_a_tenth_of_keys() {
        let all = names(10);
        let before = MaglevTable::build(&all, &[1; 10], DEFAULT_MAGLEV_TABLE_SIZE);
        let rest: Vec<String> = all.iter().enumerate().filter(|&(i, _)| i != 3).map(|(_, n)| n.clone()).collect();
        let after = MaglevTable::build(&rest, &[1; 9], DEFAULT_MAGLEV_TABLE_SIZE);
        let moved = keys()
            .filter(|&key| {
                all[before.lookup(key, 10, |_| true).unwrap()] != rest[after.lookup(key, 9, |_| true).unwrap()]
            })
            .count();
        eprintln!("{moved} of 10000 keys moved");
        assert!(moved <= 1_500, "{moved} of 10000 keys moved");
        assert!(moved >= 800, "{moved} of 10000 keys moved: fewer than endpoint 3's own");
    }

    #[test]
    fn every_entry_is_filled_and_shares_follow_weights() {
        let table = MaglevTable::build(&names(3), &[1, 1, 2], 65_537);
        let mut counts = [0usize; 3];
        for &e in &table.entries {
            counts[e as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 65_537);
        // Shares 1/4, 1/4, 1/2 within 1 %.
        assert!(counts[0].abs_diff(16_384) < 660 && counts[2].abs_diff(32_768) < 660, "{counts:?}");
    }

    #[test]
    fn an_ineligible_endpoint_s_keys_fall_to_other_entries_and_others_stay() {
        let m =
            Maglev { table: Arc::new(MaglevTable::build(&names(5), &[1; 5], 65_537)), fallback: RoundRobin::new(0) };
        let mut c = Fixed::equal(5);
        let mut spread = [0usize; 5];
        for key in keys().take(3_000) {
            c.key = Some(key);
            c.eligible = vec![true; 5];
            let home = m.pick(&c).unwrap();
            c.eligible[2] = false;
            let now = m.pick(&c).unwrap();
            assert_ne!(now, 2);
            if home == 2 {
                spread[now] += 1;
            } else {
                assert_eq!(now, home);
            }
        }
        assert!(spread.iter().filter(|&&n| n > 0).count() >= 3, "a dead endpoint's keys all went to one: {spread:?}");
        c.eligible = vec![false; 5];
        assert_eq!(m.pick(&c), None);
    }
}
