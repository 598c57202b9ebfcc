//! The statistics behind the report's judgements, in plain Rust with fixed seeds so reports stay
//! a pure function of the result files: SAID against DID on paired score differences, and
//! Spearman correlations with a permutation p-value.

use crate::records::SearchRecord;

/// Significance level of the report's verdicts.
pub const ALPHA: f64 = 0.05;

/// SAID against DID on the same model, task and map, paired by seed: each seed's mean score
/// difference (SAID - DID) over the `d`s both searches probed where both runs have a score, then a
/// sign-flip permutation test over seeds (scores of one seed at several `d` are not independent, so
/// the seed is the unit). With n seeds the smallest two-sided p is 2 / 2^n: three seeds can never
/// reach p < 0.05 (their verdict is `inconclusive`), six can.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedComparison {
    /// Seeds with at least one shared `d` scored on both sides.
    pub seeds: usize,
    /// Shared `(d, seed)` pairs behind the seed means.
    pub pairs: usize,
    /// Mean over seeds of the seed's mean difference.
    pub mean_difference: f64,
    /// Two-sided sign-flip p-value over seeds (exact up to 16 seeds).
    pub p_value: f64,
    /// `held` (SAID better, p < 0.05), `not held` (DID better, p < 0.05) or `inconclusive`.
    pub verdict: &'static str,
}

/// The paired comparison of a SAID and a DID search; `None` when their seed lists differ or they
/// share no scored `(d, seed)`.
pub fn said_against_did(said: &SearchRecord, did: &SearchRecord) -> Option<PairedComparison> {
    if said.plan.seeds != did.plan.seeds {
        return None;
    }
    let mut per_seed: Vec<Vec<f64>> = vec![Vec::new(); said.plan.seeds.len()];
    for probe in &said.probes {
        let Some(other) = did.probes.iter().find(|other| other.d == probe.d) else { continue };
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
    let p_value = sign_flip_p_value(&seed_means);
    let verdict = match (p_value < ALPHA, mean) {
        (true, mean) if mean > 0.0 => "held",
        (true, mean) if mean < 0.0 => "not held",
        _ => "inconclusive",
    };
    Some(PairedComparison { seeds: seed_means.len(), pairs, mean_difference: mean, p_value, verdict })
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

/// Two-sided p-value of the mean of `differences` under random sign flips: the share of sign
/// patterns whose |mean| reaches the observed one (the observed pattern included).
pub fn sign_flip_p_value(differences: &[f64]) -> f64 {
    let observed = differences.iter().sum::<f64>().abs();
    let reaches = |sum: f64| sum.abs() >= observed - 1e-12;
    let n = differences.len();
    if n <= 16 {
        let patterns = 1u64 << n;
        let hits = (0..patterns)
            .filter(|pattern| {
                reaches(
                    differences
                        .iter()
                        .enumerate()
                        .map(|(idx, value)| if pattern >> idx & 1 == 1 { -value } else { *value })
                        .sum(),
                )
            })
            .count();
        return hits as f64 / patterns as f64;
    }
    let mut rng = SplitMix(0x5eed);
    let hits = (0..DRAWS)
        .filter(|_| reaches(differences.iter().map(|value| if rng.next() & 1 == 1 { -value } else { *value }).sum()))
        .count();
    (hits + 1) as f64 / (DRAWS + 1) as f64
}

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

/// The least-squares slope of `y` on `x` with its 95% interval (slope +- t(0.975, n - 2) x its
/// standard error); `None` below two distinct `x`, and no interval below three points (two points
/// fit any line exactly).
pub fn ols_slope(x: &[f64], y: &[f64]) -> Option<(f64, Option<(f64, f64)>)> {
    let n = x.len();
    if n < 2 || n != y.len() {
        return None;
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let (mean_x, mean_y) = (mean(x), mean(y));
    let sxx: f64 = x.iter().map(|xi| (xi - mean_x).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(xi, yi)| (xi - mean_x) * (yi - mean_y)).sum();
    let slope = sxy / sxx;
    if n < 3 {
        return Some((slope, None));
    }
    let intercept = mean_y - slope * mean_x;
    let residuals: f64 = x.iter().zip(y).map(|(xi, yi)| (yi - intercept - slope * xi).powi(2)).sum();
    let standard_error = (residuals / (n - 2) as f64 / sxx).sqrt();
    // t(0.975, df) for df = 1..30, then the normal quantile.
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    let t = T.get(n - 3).copied().unwrap_or(1.960);
    Some((slope, Some((slope - t * standard_error, slope + t * standard_error))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ols_slope_and_its_interval_on_known_data() {
        // y = 2x exactly: slope 2, zero-width interval.
        let (slope, interval) = ols_slope(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0]).unwrap();
        assert!((slope - 2.0).abs() < 1e-12 && interval.is_some_and(|(low, high)| (high - low).abs() < 1e-9));
        // Fit y = 0.3 + 0.8x, residuals (-0.3, 0.9, -0.9, 0.3): SE sqrt(1.8 / 2 / 5), t(2) = 4.303.
        let (slope, interval) = ols_slope(&[0.0, 1.0, 2.0, 3.0], &[0.0, 2.0, 1.0, 3.0]).unwrap();
        let (low, high) = interval.unwrap();
        assert!((slope - 0.8).abs() < 1e-12, "{slope}");
        assert!((high - low - 2.0 * 4.303 * (1.8f64 / 2.0 / 5.0).sqrt()).abs() < 1e-9, "{low} {high}");
        assert_eq!(ols_slope(&[1.0, 2.0], &[3.0, 1.0]), Some((-2.0, None)));
        assert_eq!(ols_slope(&[1.0, 1.0], &[3.0, 1.0]), None);
    }
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
    fn said_against_did_pairs_by_seed() {
        let record = |seeds: &[u64], probes: &[(usize, Vec<Option<f64>>)]| -> SearchRecord {
            use results::search::{Baseline, Method, Search, SearchMode, SearchPlan, Training};
            use results::{Compat, LambdaGrouping, Mode, Outcome, Precision, Probe, Provenance, Scope};
            let method = |mode| Method {
                name: "x".to_owned(),
                mode,
                lrs: vec![0.1],
                lr_d0: None,
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
                    seeds: seeds.to_vec(),
                    training,
                    search: Search { mode: SearchMode::Grid, d_min: 100, d_max: None, threshold: 0.9, every: None },
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
                provenance: Provenance {
                    code: "c".to_owned(),
                    host: "h".to_owned(),
                    finished_at: 0,
                    inputs: Default::default(),
                },
            }
        };
        // Three seeds, SAID better at both shared d for every seed: the best three seeds can do is
        // p = 2/8, inconclusive. A missing score drops its pair, not its seed.
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
        let comparison = said_against_did(&said, &did).unwrap();
        assert_eq!((comparison.seeds, comparison.pairs, comparison.verdict), (3, 5, "inconclusive"));
        assert!((comparison.p_value - 0.25).abs() < 1e-12);
        // Seed means 0.2, 0.1, 0.15: their mean.
        assert!((comparison.mean_difference - 0.15).abs() < 1e-12, "{}", comparison.mean_difference);
        // Six seeds, all better: held at p = 2/64.
        let six = |base: f64| record(&[0, 1, 2, 3, 4, 5], &[(100, vec![Some(base); 6])]);
        let comparison = said_against_did(&six(0.8), &six(0.7)).unwrap();
        assert_eq!(comparison.verdict, "held");
        assert!((comparison.p_value - 2.0 / 64.0).abs() < 1e-12);
        assert_eq!(said_against_did(&six(0.7), &six(0.8)).unwrap().verdict, "not held");
        // Different seed lists are not paired.
        assert_eq!(said_against_did(&said, &six(0.7)), None);
    }

    #[test]
    fn sign_flip_p_values_are_exact_for_small_samples() {
        // Three positive differences: only the all-plus and all-minus patterns reach the mean.
        assert!((sign_flip_p_value(&[0.1, 0.2, 0.3]) - 2.0 / 8.0).abs() < 1e-12);
        // Five equal positive differences: 2 of 32.
        assert!((sign_flip_p_value(&[0.05; 5]) - 2.0 / 32.0).abs() < 1e-12);
        // Differences that cancel: p = 1.
        assert!((sign_flip_p_value(&[0.1, -0.1]) - 1.0).abs() < 1e-12);
    }
}
