//! A small keyed generator (SplitMix64): every stream is a function of its key, never of a global
//! state or of the order of calls, so a resample of one search is the same resample of another
//! search with the same seeds and dev split (the pairing the comparisons rely on).

pub(crate) struct Rng(u64);

impl Rng {
    /// The stream of `key` (mixed word by word).
    pub(crate) fn keyed(key: &[u64]) -> Rng {
        let mut state = 0x1d90_b007_5eed_0001u64;
        for &word in key {
            state = Rng(state ^ word.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64();
        }
        Rng(state)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..range` (Lemire's multiply; the bias is below 2^-40 for the ranges used here).
    pub(crate) fn below(&mut self, range: usize) -> usize {
        ((u128::from(self.next_u64()) * range as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A stable 64-bit hash of a string (FNV-1a), to key streams by a dev split's identity.
pub(crate) fn hash_str(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
