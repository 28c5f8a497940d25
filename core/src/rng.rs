//! Deterministic host-side randomness (data order, seeds for the device RNG).
//!
//! Every random stream is a pure function of (run seed, purpose, epoch, batch), so a resumed run
//! draws exactly what the uninterrupted run would have drawn.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for shuffling.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Fisher-Yates shuffle of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// A seed derived from a run seed and a path of counters (purpose, epoch, batch, ...).
pub fn derive_seed(seed: u64, path: &[u64]) -> u64 {
    let mut rng = SplitMix64::new(seed);
    let mut s = rng.next_u64();
    for &p in path {
        rng = SplitMix64::new(s ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        s = rng.next_u64();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation_and_deterministic() {
        let p = SplitMix64::new(7).permutation(100);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(p, SplitMix64::new(7).permutation(100));
        assert_ne!(p, SplitMix64::new(8).permutation(100));
    }

    #[test]
    fn derived_seeds_differ_by_path() {
        assert_ne!(derive_seed(1, &[0, 1]), derive_seed(1, &[1, 0]));
        assert_eq!(derive_seed(1, &[2, 3]), derive_seed(1, &[2, 3]));
    }
}
