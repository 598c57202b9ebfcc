//! Keyed, machine-independent randomness: every random quantity is a pure function of
//! (domain, seed, name, index), never of a global RNG state or of the order of calls.
//!
//! The key is `sha256("intrinsic-bench " + domain + "\0", seed, len(name), name, index)` (integers
//! little-endian u64), used as a ChaCha8 seed. Normals come from Box-Muller with the pure-Rust
//! `libm`, bounded integers from Lemire's unbiased multiply-shift: the same bits on every machine.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// The generator for (`domain`, `seed`, `name`, `index`).
pub fn keyed_rng(domain: &str, seed: u64, name: &str, index: u64) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(b"intrinsic-bench ");
    hasher.update(domain.as_bytes());
    hasher.update(b"\0");
    hasher.update(seed.to_le_bytes());
    hasher.update((name.len() as u64).to_le_bytes());
    hasher.update(name.as_bytes());
    hasher.update(index.to_le_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// `len` draws of N(0, 1), rounded to f32.
pub fn normals(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len + 1);
    while values.len() < len {
        // Box-Muller: u1 in (0, 1], u2 in [0, 1), both with 53 random bits.
        let u1 = ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
        let u2 = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let radius = libm::sqrt(-2.0 * libm::log(u1));
        let angle = std::f64::consts::TAU * u2;
        values.push((radius * libm::cos(angle)) as f32);
        values.push((radius * libm::sin(angle)) as f32);
    }
    values.truncate(len);
    values
}

/// Shuffles `items` in place: Fisher-Yates from the last element down, each swap partner drawn
/// with [`bounded`].
pub fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for idx in (1..items.len()).rev() {
        items.swap(idx, bounded(rng, idx as u64 + 1) as usize);
    }
}

/// A uniform integer in `0..range` (Lemire's multiply-shift with rejection: unbiased).
pub fn bounded(rng: &mut ChaCha8Rng, range: u64) -> u64 {
    let mut product = u128::from(rng.next_u64()) * u128::from(range);
    if (product as u64) < range {
        let threshold = range.wrapping_neg() % range;
        while (product as u64) < threshold {
            product = u128::from(rng.next_u64()) * u128::from(range);
        }
    }
    (product >> 64) as u64
}
