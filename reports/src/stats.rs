//! Descriptive statistics beside the report's judgements (which the `d90` crate's bootstrap
//! makes), in plain Rust with fixed seeds so reports stay a pure function of the result files:
//! the paired score difference of two searches at the `d` both probed, and Spearman correlations
//! with a permutation p-value.

use crate::records::SearchRecord;

/// Two searches of one model and task (SAID against DID, or two maps), paired by seed: each
/// seed's mean score difference (first - second) over the `d`s both probed where both runs have a
/// score. It says how the curves differ where both were measured, not how the d90s compare (the
/// orderings' ratio does that).
#[derive(Debug, Clone, PartialEq)]
pub struct PairedDifference {
    /// Seeds with at least one shared `d` scored on both sides.
    pub seeds: usize,
    /// Shared `(d, seed)` pairs behind the seed means.
    pub pairs: usize,
    /// Mean over seeds of the seed's mean difference.
    pub mean_difference: f64,
}

/// The paired difference of two searches; `None` when their seed lists differ or they share no
/// scored `(d, seed)`.
pub fn paired_difference(first: &SearchRecord, second: &SearchRecord) -> Option<PairedDifference> {
    if first.plan.seeds != second.plan.seeds {
        return None;
    }
    let mut per_seed: Vec<Vec<f64>> = vec![Vec::new(); first.plan.seeds.len()];
    for probe in &first.probes {
        let Some(other) = second.probes.iter().find(|other| other.d == probe.d) else { continue };
        for (seed, (mine, theirs)) in probe.seed_scores.iter().zip(&other.seed_scores).enumerate() {
            if let (Some(mine), Some(theirs), Some(slot)) = (mine, theirs, per_seed.get_mut(seed)) {
                slot.push(mine - theirs);
            }
        }
    }
    let pairs = per_seed.iter().map(Vec::len).sum();
    let seed_means: Vec<f64> = per_seed
        .iter()
        .filter(|differences| !differences.is_empty())
        .map(|differences| differences.iter().sum::<f64>() / differences.len() as f64)
        .collect();
    if seed_means.is_empty() {
        return None;
    }
    let mean = seed_means.iter().sum::<f64>() / seed_means.len() as f64;
    Some(PairedDifference { seeds: seed_means.len(), pairs, mean_difference: mean })
}

/// A small deterministic generator (SplitMix64) for permutation tests.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Draws of a permutation test when exact enumeration is too large.
const DRAWS: usize = 20_000;

/// Ranks (1-based) with ties sharing their average rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let average = (start + end) as f64 / 2.0 + 1.0;
        for &idx in &order[start..=end] {
            ranks[idx] = average;
        }
        start = end + 1;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mean_x, mean_y) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let covariance: f64 = x.iter().zip(y).map(|(a, b)| (a - mean_x) * (b - mean_y)).sum();
    let spread = |values: &[f64], mean: f64| values.iter().map(|v| (v - mean).powi(2)).sum::<f64>().sqrt();
    let denominator = spread(x, mean_x) * spread(y, mean_y);
    if denominator == 0.0 { f64::NAN } else { covariance / denominator }
}

/// Spearman's rho (Pearson on average ranks) and its two-sided permutation p-value: the share of
/// permutations of `y` whose |rho| reaches the observed one (exact for n <= 8, else 20,000 seeded
/// shuffles). `None` with fewer than 3 points or a constant variable.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    if x.len() < 3 || x.len() != y.len() {
        return None;
    }
    let (rank_x, rank_y) = (ranks(x), ranks(y));
    let rho = pearson(&rank_x, &rank_y);
    if rho.is_nan() {
        return None;
    }
    let reaches = |permuted: &[f64]| pearson(&rank_x, permuted).abs() >= rho.abs() - 1e-12;
    let n = x.len();
    let p_value = if n <= 8 {
        let mut permutation: Vec<usize> = (0..n).collect();
        let (mut hits, mut total) = (0usize, 0usize);
        loop {
            let permuted: Vec<f64> = permutation.iter().map(|&idx| rank_y[idx]).collect();
            hits += usize::from(reaches(&permuted));
            total += 1;
            if !next_permutation(&mut permutation) {
                break;
            }
        }
        hits as f64 / total as f64
    } else {
        let mut rng = SplitMix(0x5eed);
        let mut permuted = rank_y.clone();
        let mut hits = 0;
        for _ in 0..DRAWS {
            for idx in (1..n).rev() {
                permuted.swap(idx, (rng.next() % (idx as u64 + 1)) as usize);
            }
            hits += usize::from(reaches(&permuted));
        }
        (hits + 1) as f64 / (DRAWS + 1) as f64
    };
    Some((rho, p_value))
}

/// The next permutation in lexicographic order; `false` after the last.
fn next_permutation(items: &mut [usize]) -> bool {
    let Some(pivot) = (1..items.len()).rev().find(|&idx| items[idx - 1] < items[idx]) else { return false };
    let successor = (pivot..items.len()).rev().find(|&idx| items[idx] > items[pivot - 1]).expect("exists");
    items.swap(pivot - 1, successor);
    items[pivot..].reverse();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_with_ties_and_its_exact_permutation_p_value() {
        // A perfect monotone relation of 4 points: rho 1; 2 of the 24 permutations reach |rho| = 1.
        let (rho, p) = spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]).unwrap();
        assert!((rho - 1.0).abs() < 1e-12 && (p - 2.0 / 24.0).abs() < 1e-12, "{rho} {p}");
        // Reversed: rho -1, the same p.
        let (rho, p) = spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]).unwrap();
        assert!((rho + 1.0).abs() < 1e-12 && (p - 2.0 / 24.0).abs() < 1e-12);
        // Ties take their average rank: x ranks 1, 2.5, 2.5, 4 against y ranks 1..4.
        let (rho, _) = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((rho - 0.948_683_298_050_513_8).abs() < 1e-12, "{rho}");
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        // 10 points, shuffled test: a clear relation is significant.
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let (rho, p) = spearman(&x, &x).unwrap();
        assert!((rho - 1.0).abs() < 1e-12 && p < 0.001, "{p}");
    }

    #[test]
    fn paired_differences_pair_by_seed() {
        let record = |seeds: &[u64], probes: &[(usize, Vec<Option<f64>>)]| -> SearchRecord {
            use results::search::{Baseline, Method, Search, SearchMode, SearchPlan, Training};
            use results::{Compat, LambdaGrouping, Mode, Outcome, Precision, Probe, Provenance, Scope};
            let method = |mode| Method {
                name: "x".to_owned(),
                mode,
                lrs: vec![0.1],
                lr_d0: None,
                lr_extend: None,
                lambda_lr: None,
                epochs: None,
                scope: Scope::Global,
                grouping: LambdaGrouping::PerLayer,
                compat: Compat::None,
            };
            let training = Training {
                epochs: 1,
                batch_size: 32,
                max_len: 64,
                max_train_examples: None,
                subset_seed: 0,
                warmup_ratio: 0.06,
                weight_decay: 0.01,
                max_grad_norm: 1.0,
                eval_every: None,
                checkpoint_every: 50,
                precision: Precision::F32,
                length_buckets: None,
                train_eval_examples: None,
            };
            SearchRecord {
                key: "k".to_owned(),
                signature: "s".to_owned(),
                plan: SearchPlan {
                    experiment: "e".to_owned(),
                    model: "m".to_owned(),
                    task: "t".to_owned(),
                    method: method(Mode::Said),
                    baseline: method(Mode::Full),
                    control: None,
                    seeds: seeds.to_vec(),
                    training,
                    search: Search {
                        mode: SearchMode::Grid,
                        d_min: 100,
                        d_max: None,
                        threshold: 0.9,
                        every: None,
                        determined_factor: None,
                    },
                    pretraining: None,
                    kind: Default::default(),
                },
                architecture: None,
                model_revision: None,
                data: None,
                total_parameters: 1000,
                scales: 0,
                grid: vec![100],
                baseline: Baseline { score: Some(0.9), target: Some(0.81), majority_accuracy: 0.5, runs: vec![] },
                control: None,
                outcome: Outcome::NotReached { largest_tried: 100 },
                probes: probes
                    .iter()
                    .map(|(d, scores)| Probe {
                        d: *d,
                        score: None,
                        success: false,
                        all_diverged: false,
                        seed_scores: scores.clone(),
                        constant_runs: 0,
                        runs: vec![],
                    })
                    .collect(),
                monotone: None,
                interval: None,
                generalization_run: None,
                generalization_choice: None,
                provenance: Provenance {
                    code: "c".to_owned(),
                    host: "h".to_owned(),
                    finished_at: 0,
                    inputs: Default::default(),
                },
            }
        };
        // Three seeds, SAID better at both shared d for every seed; a missing score drops its
        // pair, not its seed.
        let said = record(
            &[0, 1, 2],
            &[(100, vec![Some(0.8), Some(0.7), Some(0.9)]), (200, vec![Some(0.9), None, Some(0.9)])],
        );
        let did = record(
            &[0, 1, 2],
            &[
                (100, vec![Some(0.6), Some(0.6), Some(0.7)]),
                (200, vec![Some(0.7), Some(0.8), Some(0.8)]),
                (300, vec![Some(0.1); 3]),
            ],
        );
        let difference = paired_difference(&said, &did).unwrap();
        assert_eq!((difference.seeds, difference.pairs), (3, 5));
        // Seed means 0.2, 0.1, 0.15: their mean.
        assert!((difference.mean_difference - 0.15).abs() < 1e-12, "{}", difference.mean_difference);
        let six = |base: f64| record(&[0, 1, 2, 3, 4, 5], &[(100, vec![Some(base); 6])]);
        // Different seed lists are not paired.
        assert_eq!(paired_difference(&said, &six(0.7)), None);
    }
}
