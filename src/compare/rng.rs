//! The seeded random numbers behind the resampling: SplitMix64, small and
//! fast, with a seed derived from the benchmark's key so that the same
//! inputs give the same p-values and intervals whatever else is compared
//! alongside and in whatever order.

/// The seed every comparison starts from unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x7665_7273_7573_0015; // "versus", issue 15

/// SplitMix64 (Steele, Lea and Flood): passes BigCrush, one add and two
/// multiplies per number.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`) by Lemire's multiply-shift; the bias is
    /// below 2^-50 for the sample counts used here.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// A seed for one benchmark: FNV-1a of its key's parts, mixed with `base`.
pub fn seed_for(base: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^ base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_below_stays_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.below(13);
            assert_eq!(x, b.below(13));
            assert!(x < 13);
        }
        assert_ne!(seed_for(1, &["a", "bc"]), seed_for(1, &["ab", "c"]));
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut r = SplitMix64::new(DEFAULT_SEED);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[r.below(10)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
