//! RoBERTa's dynamic masking (Liu et al. 2019, section 4.1; BERT's 80/10/10 rule, Devlin et al.
//! 2019, section 3.1), re-drawn for every sequence every time it is seen.
//!
//! Of a sequence's maskable tokens (every token but the tokenizer's special tokens: `[CLS]`,
//! `[SEP]`, padding, ...), `floor(p * n + u)` positions are chosen uniformly without replacement
//! (`u` uniform in [0, 1), fairseq's rounding, so the expected count is exactly `p * n`); each
//! chosen token becomes the mask token with probability 0.8, a uniformly drawn non-special token
//! with probability 0.1, and stays itself with probability 0.1. Every chosen position is
//! predicted; no other is. The draws come from a keyed stream of (seed, epoch, sequence), so a
//! resumed run masks exactly as an uninterrupted one.

use rand_core::RngCore;
use subspace::random;

/// What masking needs to know about the vocabulary.
#[derive(Debug, Clone)]
pub struct MaskVocabulary {
    /// The id of the tokenizer's mask token (`<mask>`, `[MASK]`), which 80% of the chosen positions
    /// become.
    pub mask_id: u32,
    /// Sorted ids that are never masked (the tokenizer's special tokens).
    pub special: Vec<u32>,
    /// Ids a random replacement is drawn from: every id below the tokenizer's vocabulary size
    /// that is not special.
    pub replacements: Vec<u32>,
}

/// A masked sequence: the model's input and, at every predicted position, the original token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// The sequence the model reads: `ids` with the chosen positions replaced (mask token, random
    /// token, or kept), as long as `ids`.
    pub input: Vec<u32>,
    /// `(position, original id)`, by position.
    pub targets: Vec<(usize, u32)>,
}

/// Masks `ids` with the draws of `(seed, stream, epoch, sequence)` (`stream`: `train`, or
/// `heldout` for the fixed masks of the held-out loss); `sequence` below 2^40.
pub fn mask(
    ids: &[u32],
    vocabulary: &MaskVocabulary,
    probability: f64,
    seed: u64,
    stream: &str,
    epoch: u64,
    sequence: u64,
) -> Masked {
    let mut rng = random::keyed_rng("mlm masking v1", seed, stream, (epoch << 40) | sequence);
    let mut candidates: Vec<usize> =
        (0..ids.len()).filter(|&position| vocabulary.special.binary_search(&ids[position]).is_err()).collect();
    let count = ((probability * candidates.len() as f64 + uniform(&mut rng)).floor() as usize).min(candidates.len());
    // A partial Fisher-Yates shuffle: the first `count` candidates are a uniform sample.
    for idx in 0..count {
        let pick = idx + random::bounded(&mut rng, (candidates.len() - idx) as u64) as usize;
        candidates.swap(idx, pick);
    }
    let mut chosen = candidates[..count].to_vec();
    chosen.sort_unstable();
    let mut input = ids.to_vec();
    let mut targets = Vec::with_capacity(count);
    for position in chosen {
        let draw = uniform(&mut rng);
        if draw < 0.8 {
            input[position] = vocabulary.mask_id;
        } else if draw < 0.9 {
            let pick = random::bounded(&mut rng, vocabulary.replacements.len() as u64) as usize;
            input[position] = vocabulary.replacements[pick];
        }
        targets.push((position, ids[position]));
    }
    Masked { input, targets }
}

/// A uniform draw in [0, 1) with 53 random bits.
fn uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> MaskVocabulary {
        // 0 pad, 1 cls, 2 sep, 3 mask; 4..100 ordinary.
        MaskVocabulary { mask_id: 3, special: vec![0, 1, 2, 3], replacements: (4..100).collect() }
    }

    /// Over many sequences on a fixed seed: 15% of maskable tokens predicted, 80/10/10 among
    /// them, special tokens never touched, and the same draws again for the same key.
    #[test]
    fn masking_statistics_on_a_fixed_seed() {
        let vocabulary = vocabulary();
        let (mut maskable, mut predicted, mut masked, mut random_replaced, mut kept) = (0, 0, 0, 0, 0);
        for sequence in 0..2000u64 {
            let mut ids = vec![1u32];
            ids.extend((0..100).map(|idx| 4 + ((idx * 7 + sequence as u32) % 96)));
            ids.push(2);
            ids.extend([0, 0, 0]);
            let result = mask(&ids, &vocabulary, 0.15, 7, "train", 3, sequence);
            assert_eq!(result, mask(&ids, &vocabulary, 0.15, 7, "train", 3, sequence));
            maskable += 100;
            predicted += result.targets.len();
            for (position, original) in &result.targets {
                assert!(vocabulary.special.binary_search(original).is_err(), "special token {original} chosen");
                assert_eq!(ids[*position], *original);
                match result.input[*position] {
                    3 => masked += 1,
                    id if id == *original => kept += 1,
                    _ => random_replaced += 1,
                }
            }
            for (position, (&before, &after)) in ids.iter().zip(&result.input).enumerate() {
                if !result.targets.iter().any(|(chosen, _)| *chosen == position) {
                    assert_eq!(before, after, "position {position} changed without being predicted");
                }
            }
        }
        let fraction = predicted as f64 / maskable as f64;
        assert!((fraction - 0.15).abs() < 0.002, "predicted fraction {fraction}");
        let share = |count: usize| count as f64 / predicted as f64;
        // A random replacement can draw the original token (1 in 96): it counts as kept here.
        assert!((share(masked) - 0.8).abs() < 0.01, "mask share {}", share(masked));
        assert!((share(random_replaced) - 0.1 * 95.0 / 96.0).abs() < 0.01, "random share {}", share(random_replaced));
        assert!((share(kept) - (0.1 + 0.1 / 96.0)).abs() < 0.01, "kept share {}", share(kept));
        // Another epoch draws other masks.
        let ids: Vec<u32> = (4..100).collect();
        assert_ne!(mask(&ids, &vocabulary, 0.15, 7, "train", 3, 0), mask(&ids, &vocabulary, 0.15, 7, "train", 4, 0));
        assert_ne!(mask(&ids, &vocabulary, 0.15, 7, "train", 3, 0), mask(&ids, &vocabulary, 0.15, 7, "heldout", 3, 0));
    }

    #[test]
    fn a_sequence_of_special_tokens_has_nothing_to_predict() {
        let result = mask(&[1, 2, 0, 0], &vocabulary(), 0.15, 0, "train", 0, 0);
        assert!(result.targets.is_empty());
        assert_eq!(result.input, [1, 2, 0, 0]);
    }
}
