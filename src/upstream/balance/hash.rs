//! The 64-bit hash of the hashing algorithms: ring points, Maglev
//! permutations and request keys. Hand-written FNV-1a (64-bit) followed by
//! MurmurHash3's `fmix64` finalizer: FNV-1a alone spreads similar inputs
//! (`"10.0.0.1:80_0"`, `"10.0.0.1:80_1"`) poorly over the high bits that
//! pick a ring position, and the finalizer gives every input bit an even
//! chance to flip every output bit. Not a keyed hash: keys are chosen by
//! clients, but all a client can do with that is pick its own endpoint,
//! which a hash key lets it do anyway. Stable across processes and
//! versions (instances behind one address agree on the mapping).

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The hash of `bytes`, seeded (`seed` 0 for keys and ring points; Maglev
/// takes two independent hashes of a name with seeds 1 and 2).
#[inline]
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET ^ seed.wrapping_mul(FNV_PRIME);
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    fmix64(h)
}

/// MurmurHash3's 64-bit finalizer.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values_so_a_change_of_mapping_is_noticed() {
        assert_eq!(hash64(0, b""), fmix64(FNV_OFFSET));
        assert_eq!(hash64(0, b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
        assert_ne!(hash64(1, b"a"), hash64(2, b"a"));
    }

    #[test]
    fn similar_inputs_spread_over_the_top_bits() {
        // 1024 names differing in their last digits: the top 4 bits (16
        // buckets) get 64 each on average; none is far off.
        let mut buckets = [0u32; 16];
        for i in 0..1024 {
            buckets[(hash64(0, format!("10.0.0.1:80_{i}").as_bytes()) >> 60) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (32..=96).contains(&n)), "{buckets:?}");
    }
}
