//! The bootstrap of a d90: what varies when the experiment is repeated, resampled together.
//!
//! A repeat of a search draws new seeds for its probes, new seeds for its baseline, and (since a
//! dev split is a sample of the task) other dev examples. Resample `b` therefore draws, with
//! replacement:
//! - the probes' seeds (one draw of seed positions shared by every probe, since seed `s` of two
//!   probes shares its data order and head initialisation),
//! - independently, the baseline's seeds,
//! - where every run kept its per-example outcomes, the dev examples: one multinomial draw shared
//!   by every run of the search and its baseline, so the target and the curve move together.
//!
//! and recomputes everything the estimate is made of: each run's accuracy (on the resampled
//! examples), each seed's best over learning rates and evaluations, the median over seeds of
//! every probe, the target (`threshold` x the baseline's median), the isotonic curve and its
//! crossing ([`crate::curve`]). The 2.5% and 97.5% quantiles of the crossings are the 95%
//! percentile interval. Searches without per-example outcomes are `seed-only`: only seeds are
//! resampled, and the interval misses the dev split's sampling noise (about 1.5 points of
//! accuracy at 0.74 on SST-2's 872 examples).
//!
//! Every draw is keyed by `b` and the counts it draws from (seeds, examples and the split's
//! identity), never by the search: two searches with the same seeds and dev split get the same
//! resample `b`, which pairs them for [`crate::compare`].

use results::{RunRecord, SearchRecord};

use crate::curve::{Crossing, crossing};
use crate::random::{Rng, hash_str};
use crate::search::seed_median;

/// Resamples behind every interval.
pub const RESAMPLES: usize = 2000;

/// One evaluation's per-example outcomes: which dev examples it got right (a bit set).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcomes {
    words: Vec<u64>,
    n: usize,
}

impl Outcomes {
    /// Outcomes from per-example correctness, in the split's order.
    pub fn from_correct(correct: impl IntoIterator<Item = bool>) -> Outcomes {
        let mut words = Vec::new();
        let mut n = 0;
        for (idx, right) in correct.into_iter().enumerate() {
            if idx % 64 == 0 {
                words.push(0);
            }
            if right {
                words[idx / 64] |= 1 << (idx % 64);
            }
            n = idx + 1;
        }
        Outcomes { words, n }
    }

    /// Examples.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Accuracy on the split as it is.
    pub fn accuracy(&self) -> f64 {
        self.words.iter().map(|word| word.count_ones() as f64).sum::<f64>() / self.n as f64
    }

    /// Accuracy on a resample of the split: example `i` counts `weights[i]` times.
    fn weighted_accuracy(&self, weights: &[u32], total: f64) -> f64 {
        let mut hits = 0u64;
        for (word_idx, &word) in self.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                hits += u64::from(weights[word_idx * 64 + bits.trailing_zeros() as usize]);
                bits &= bits - 1;
            }
        }
        hits as f64 / total
    }
}

/// One seed of a probe or of the baseline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seed {
    /// The recorded seed score: the best dev metric over the seed's runs that count (neither
    /// diverged nor predicted one class); `None`: no such run (0 in the median).
    pub score: Option<f64>,
    /// Per-example outcomes of every evaluation of those runs, whose best on a resample is the
    /// seed's resampled score; empty in a seed-only search.
    pub evaluations: Vec<Outcomes>,
}

/// Every seed of a probe at `d`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The subspace dimension probed.
    pub d: usize,
    /// Its seeds, in the plan's seed order.
    pub seeds: Vec<Seed>,
}

/// A search as the bootstrap reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// Sorted by `d`.
    pub probes: Vec<Probe>,
    /// The full fine-tuning baseline's seeds (one seed at its recorded median when its runs do
    /// not cover the plan's seeds).
    pub baseline: Vec<Seed>,
    /// The fraction of the baseline's median a probe must reach (0.9 for d90).
    pub threshold: f64,
    /// Majority-class accuracy: a (resampled) target at or below it measures nothing.
    pub majority: f64,
    /// The dev split every run's per-example outcomes follow (its examples and the hash of their
    /// ordered ids); `None`: seed-only.
    pub examples: Option<(usize, String)>,
}

/// A 95% percentile interval on the extended log10 axis (`-inf`: open below, `+inf`: open above).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The lower end (`-inf`: open below).
    pub low: f64,
    /// The upper end (`+inf`: open above).
    pub high: f64,
}

impl Interval {
    /// The 2.5% and 97.5% quantiles of `values` (order statistics `ceil(0.025 B)` and
    /// `ceil(0.975 B)`); a NaN (a resample that says nothing, such as a ratio of two crossings
    /// both above the range) counts as `-inf` for the low end and `+inf` for the high end, so
    /// it can only widen the interval.
    pub fn percentile(values: &[f64]) -> Interval {
        let quantile = |q: f64, nan: f64| {
            let mut sorted: Vec<f64> = values.iter().map(|&v| if v.is_nan() { nan } else { v }).collect();
            sorted.sort_by(f64::total_cmp);
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1]
        };
        if values.is_empty() {
            return Interval { low: f64::NEG_INFINITY, high: f64::INFINITY };
        }
        Interval { low: quantile(0.025, f64::NEG_INFINITY), high: quantile(0.975, f64::INFINITY) }
    }

    /// Whether `value` lies inside (an open end reaches past any value).
    pub fn covers(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// Whether a d90 is a measurement: its interval closed at both ends inside the searched range
/// and at most `factor` wide (high / low).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Determination {
    /// A crossing inside the range, and an interval closed at both ends and at most `factor`
    /// wide.
    Determined,
    /// No crossing inside the range: the point estimate itself is a bound.
    NoEstimate,
    /// One seed and no per-example outcomes: nothing varies to resample, and no interval.
    NothingToResample,
    /// The interval reaches below the smallest `d` searched.
    OpenBelow,
    /// The interval reaches above the largest `d` searched.
    OpenAbove,
    /// Closed, but high / low exceeds the factor.
    Wider {
        /// The interval's high / low, as `d` values (`10^(high - low)` on the log10 axis).
        ratio: f64,
        /// The widest ratio allowed.
        factor: f64,
    },
}

impl Determination {
    /// The determination of a d90 from its point estimate and its interval (log10 d), checked in
    /// this order: no crossing inside the range, an open end, a ratio above `factor`. Never
    /// [`Determination::NothingToResample`], which is the caller's to decide.
    pub fn of(estimate: Option<Crossing>, interval: &Interval, factor: f64) -> Determination {
        if !matches!(estimate, Some(Crossing::At(_))) {
            return Determination::NoEstimate;
        }
        if interval.low == f64::NEG_INFINITY {
            return Determination::OpenBelow;
        }
        if interval.high == f64::INFINITY {
            return Determination::OpenAbove;
        }
        let ratio = 10f64.powf(interval.high - interval.low);
        if ratio > factor { Determination::Wider { ratio, factor } } else { Determination::Determined }
    }

    /// Whether this is [`Determination::Determined`].
    pub fn is_determined(&self) -> bool {
        *self == Determination::Determined
    }

    /// `determined`, or `undetermined: <reason>`.
    pub fn label(&self) -> String {
        match self {
            Determination::Determined => "determined".to_owned(),
            Determination::NoEstimate => "undetermined: no crossing inside the searched range".to_owned(),
            Determination::NothingToResample => {
                "undetermined: one seed and no per-example outcomes, so no interval".to_owned()
            }
            Determination::OpenBelow => "undetermined: interval open below".to_owned(),
            Determination::OpenAbove => "undetermined: interval open above".to_owned(),
            Determination::Wider { ratio, factor } => {
                format!("undetermined: interval wider than the factor (high/low {ratio:.2} > {factor})")
            }
        }
    }
}

/// The positions of `n` seeds drawn with replacement by resample `b` for `role`.
fn seed_picks(b: usize, role: u64, n: usize) -> Vec<usize> {
    let mut rng = Rng::keyed(&[b as u64, role, n as u64]);
    (0..n).map(|_| rng.below(n)).collect()
}

/// How often each of `n` examples is drawn by resample `b` of the split `ids`.
fn example_weights(b: usize, n: usize, ids: &str) -> Vec<u32> {
    let mut rng = Rng::keyed(&[b as u64, 3, n as u64, hash_str(ids)]);
    let mut weights = vec![0u32; n];
    for _ in 0..n {
        weights[rng.below(n)] += 1;
    }
    weights
}

/// How a search's records were read: per-example (seeds and dev examples resampled) or seed-only,
/// with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Every counted run kept per-example outcomes over one dev split: seeds and dev examples
    /// are resampled.
    PerExample,
    /// Only seeds are resampled, for this reason (records written before runs kept per-example
    /// outcomes, a run missing from the folder, runs that evaluated different examples).
    SeedOnly(String),
}

impl Search {
    /// A search from its record and its runs (`runs(key)`; a run the folder lacks gives `None`).
    /// Per seed, the runs that count are those that neither diverged nor predicted one class at
    /// their best evaluation (the runner's rule); the baseline's seed scores come from its runs
    /// (without them the baseline is one seed at its recorded median). The search is per-example
    /// when every run that counts kept the predicted labels of every evaluation over one dev split
    /// (the same ids hash), else seed-only.
    pub fn from_record<'a>(record: &SearchRecord, runs: impl Fn(&str) -> Option<&'a RunRecord>) -> (Search, Reading) {
        let seeds = &record.plan.seeds;
        let counts = |run: &RunRecord| run.counting_score().is_some();
        let mut missing = false;
        let mut split: Option<(usize, String)> = None;
        let mut per_example = true;
        let mut other_examples = false;
        // The counted runs of `keys` by seed position, and whether every seed has a run at all.
        let mut by_seed = |keys: &[String]| -> (Vec<Vec<&'a RunRecord>>, bool) {
            let mut grouped: Vec<Vec<&RunRecord>> = vec![Vec::new(); seeds.len()];
            let mut found = vec![false; seeds.len()];
            for key in keys {
                let Some(run) = runs(key) else {
                    missing = true;
                    continue;
                };
                let Some(position) = seeds.iter().position(|&seed| seed == run.spec.train.seeds.data) else { continue };
                found[position] = true;
                if !counts(run) {
                    continue;
                }
                match (&run.result.dev_examples, &split) {
                    (Some(dev), None) => split = Some((dev.labels.len(), dev.ids_sha256.clone())),
                    (Some(dev), Some((_, ids))) if *ids == dev.ids_sha256 => {}
                    (Some(_), Some(_)) => other_examples = true,
                    (None, _) => per_example = false,
                }
                grouped[position].push(run);
            }
            (grouped, found.iter().all(|&found| found))
        };
        let (baseline_runs, every_baseline_seed) = by_seed(&record.baseline.runs);
        // (d, recorded seed scores, counted runs by seed)
        type ProbeRuns<'r> = (usize, Vec<Option<f64>>, Vec<Vec<&'r RunRecord>>);
        let mut probes: Vec<ProbeRuns> =
            record.probes.iter().map(|probe| (probe.d, probe.seed_scores.clone(), by_seed(&probe.runs).0)).collect();
        probes.sort_by_key(|(d, _, _)| *d);
        let outcomes = |run: &RunRecord| -> Option<Vec<Outcomes>> {
            let dev = run.result.dev_examples.as_ref()?;
            let gold = results::labels::decode(&dev.labels)?;
            run.result
                .evaluations
                .iter()
                .map(|evaluation| {
                    let predicted = results::labels::decode(evaluation.splits.get(&dev.split)?.predicted.as_deref()?)?;
                    (predicted.len() == gold.len())
                        .then(|| Outcomes::from_correct(predicted.iter().zip(&gold).map(|(p, g)| p == g)))
                })
                .collect()
        };
        let reading = if missing {
            Reading::SeedOnly("some of its runs are not in the results folder".to_owned())
        } else if !per_example {
            Reading::SeedOnly("its runs kept no per-example outcomes (written before they were kept)".to_owned())
        } else if split.is_none() {
            Reading::SeedOnly(
                "no run of the plan's seeds counts (each diverged, predicted one class or has no score)".to_owned(),
            )
        } else if other_examples {
            Reading::SeedOnly("its runs evaluated different dev examples (their ids hashes differ)".to_owned())
        } else if !every_baseline_seed {
            Reading::SeedOnly("its baseline runs do not cover the plan's seeds".to_owned())
        } else {
            Reading::PerExample
        };
        let mut reading = reading;
        let mut seed = |score: Option<f64>, runs: &[&RunRecord]| -> Seed {
            let mut evaluations = Vec::new();
            if reading == Reading::PerExample {
                for run in runs {
                    match outcomes(run) {
                        Some(mut kept) => evaluations.append(&mut kept),
                        None => {
                            reading = Reading::SeedOnly(
                                "an evaluation of one of its runs lacks its predicted labels".to_owned(),
                            )
                        }
                    }
                }
            }
            Seed { score, evaluations }
        };
        // Without a run of every seed (runs missing from the folder, or runs of other seeds than
        // the plan's) the baseline's seed scores are unknown: one seed at its recorded median.
        let baseline: Vec<Seed> = if !every_baseline_seed {
            vec![Seed { score: record.baseline.score, evaluations: vec![] }]
        } else {
            baseline_runs
                .iter()
                .map(|runs| {
                    let score = runs.iter().filter_map(|run| run.best_score).max_by(f64::total_cmp);
                    seed(score, runs)
                })
                .collect()
        };
        let probes: Vec<Probe> = probes
            .iter()
            .map(|(d, scores, runs)| Probe {
                d: *d,
                seeds: scores.iter().zip(runs).map(|(&score, runs)| seed(score, runs)).collect(),
            })
            .collect();
        let per_example = reading == Reading::PerExample;
        let mut search = Search {
            probes,
            baseline,
            threshold: record.plan.search.threshold,
            majority: record.baseline.majority_accuracy,
            examples: split.filter(|_| per_example),
        };
        if !per_example {
            for seed in search.probes.iter_mut().flat_map(|probe| &mut probe.seeds).chain(&mut search.baseline) {
                seed.evaluations.clear();
            }
        }
        (search, reading)
    }
}

const PROBE_SEEDS: u64 = 1;
const BASELINE_SEEDS: u64 = 2;

impl Search {
    /// Whether the bootstrap resamples dev examples (every run kept per-example outcomes).
    pub fn per_example(&self) -> bool {
        self.examples.is_some()
    }

    /// Whether anything varies between resamples: two or more seeds, or dev examples.
    pub fn resamples_anything(&self) -> bool {
        self.per_example() || self.probes.iter().any(|probe| probe.seeds.len() >= 2) || self.baseline.len() >= 2
    }

    /// The target of the recorded scores.
    pub fn target(&self) -> Option<f64> {
        let scores: Vec<Option<f64>> = self.baseline.iter().map(|seed| seed.score).collect();
        Some(self.threshold * seed_median(&scores)?)
    }

    /// The crossing of the recorded scores; `None` without a target above the majority class or
    /// without probes.
    pub fn estimate(&self) -> Option<Crossing> {
        let target = self.target().filter(|&target| target > self.majority)?;
        let points: Vec<(usize, f64)> = self
            .probes
            .iter()
            .map(|probe| {
                let scores: Vec<Option<f64>> = probe.seeds.iter().map(|seed| seed.score).collect();
                (probe.d, seed_median(&scores).unwrap_or(0.0))
            })
            .collect();
        crossing(&points, target)
    }

    /// The crossing of resample `b` on the extended log10 axis; a resample whose target is at or
    /// below the majority class (or has no baseline score) gives no d90 there: `+inf`.
    pub fn resample(&self, b: usize) -> f64 {
        let weights = self.example_weights(b);
        let Some(target) = resampled_median(&self.baseline, b, BASELINE_SEEDS, weights.as_deref())
            .map(|score| self.threshold * score)
            .filter(|&target| target > self.majority)
        else {
            return f64::INFINITY;
        };
        let points: Vec<(usize, f64)> = self
            .probes
            .iter()
            .map(|probe| (probe.d, resampled_median(&probe.seeds, b, PROBE_SEEDS, weights.as_deref()).unwrap_or(0.0)))
            .collect();
        crossing(&points, target).map_or(f64::INFINITY, |crossing| crossing.log10())
    }

    /// The crossings of resamples `0..resamples`.
    pub fn crossings(&self, resamples: usize) -> Vec<f64> {
        (0..resamples).map(|b| self.resample(b)).collect()
    }

    /// The baseline's median score on resample `b` (the same draws as [`Search::resample`]'s).
    pub fn resampled_baseline(&self, b: usize) -> Option<f64> {
        resampled_median(&self.baseline, b, BASELINE_SEEDS, self.example_weights(b).as_deref())
    }

    fn example_weights(&self, b: usize) -> Option<Vec<u32>> {
        self.examples.as_ref().map(|(n, ids)| example_weights(b, *n, ids))
    }
}

/// The median score of `seeds` on resample `b`: the median of the drawn seeds' recorded scores,
/// moved (with example `weights`) by the mean over all of `seeds` of the change the example draw
/// makes to a seed's score (its best evaluation on the drawn examples less its recorded score).
///
/// Why the mean and not each drawn seed's own change: a recorded seed score already carries its
/// run's own noise on this dev split, and the seed draw resamples that noise; moving each drawn
/// seed by its own change would resample it a second time (the excess variance of a bootstrap
/// over both factors of a crossed design, Owen 2007), which the coverage simulation measures as
/// intervals covering 98-99.5% instead of 95%. The mean change is the dev split's share, common
/// to the runs: it moves the target and the curve together.
fn resampled_median(seeds: &[Seed], b: usize, role: u64, weights: Option<&[u32]>) -> Option<f64> {
    let shift = weights.map_or(0.0, |weights| {
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let changes: Vec<f64> = seeds
            .iter()
            .filter_map(|seed| {
                let resampled = seed
                    .evaluations
                    .iter()
                    .map(|outcomes| outcomes.weighted_accuracy(weights, total))
                    .max_by(f64::total_cmp)?;
                Some(resampled - seed.score?)
            })
            .collect();
        if changes.is_empty() { 0.0 } else { changes.iter().sum::<f64>() / changes.len() as f64 }
    });
    let picks = seed_picks(b, role, seeds.len());
    seed_median(&picks.iter().map(|&pick| seeds[pick].score.map(|score| score + shift)).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(score: f64) -> Seed {
        Seed { score: Some(score), evaluations: vec![] }
    }

    #[test]
    fn percentile_intervals_and_open_ends() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(Interval::percentile(&values), Interval { low: 25.0, high: 975.0 });
        let mut open = values.clone();
        open[..30].fill(f64::NEG_INFINITY);
        assert_eq!(Interval::percentile(&open).low, f64::NEG_INFINITY);
        // 20 NaN of 1000 (ranks 25 and 975 of 1000): -inf-side low stays finite, the high end
        // moves up by 20 ranks.
        let mut unknown = values;
        unknown[..20].fill(f64::NAN);
        assert_eq!(Interval::percentile(&unknown), Interval { low: 25.0, high: 995.0 });
        unknown[..30].fill(f64::NAN);
        assert_eq!(Interval::percentile(&unknown), Interval { low: f64::NEG_INFINITY, high: f64::INFINITY });
        assert!(Interval { low: 1.0, high: f64::INFINITY }.covers(1e9));
    }

    #[test]
    fn determined_is_two_sided() {
        let at = Some(Crossing::At(3.0));
        let check = |low: f64, high: f64| Determination::of(at, &Interval { low, high }, 4.0);
        assert_eq!(check(2.9, 3.4), Determination::Determined);
        assert_eq!(check(f64::NEG_INFINITY, 3.4), Determination::OpenBelow);
        assert_eq!(check(2.9, f64::INFINITY), Determination::OpenAbove);
        assert!(matches!(check(2.5, 3.5), Determination::Wider { ratio, .. } if (ratio - 10.0).abs() < 1e-9));
        let bound = Determination::of(Some(Crossing::Below(100)), &Interval { low: 2.0, high: 2.1 }, 4.0);
        assert_eq!(bound, Determination::NoEstimate);
        assert!(check(2.5, 3.5).label().contains("wider than the factor (high/low 10.00 > 4)"));
    }

    /// Seed-only: three seeds whose medians cross at known points; every resample's crossing is
    /// one of the crossings of some multiset of seeds, and the point estimate is the medians'.
    #[test]
    fn seed_only_resamples_stay_on_the_seeds_curves() {
        let search = Search {
            probes: vec![
                Probe { d: 100, seeds: vec![seed(0.6), seed(0.6), seed(0.6)] },
                Probe { d: 1000, seeds: vec![seed(0.7), seed(0.8), seed(0.9)] },
            ],
            baseline: vec![seed(0.8), seed(0.8), seed(0.8)],
            threshold: 0.9,
            majority: 0.5,
            examples: None,
        };
        // Target 0.72; the medians 0.6 -> 0.8 reach it 60% of the way up the decade.
        let estimate = search.estimate().unwrap();
        assert!((estimate.log10() - 2.6).abs() < 1e-9, "{estimate:?}");
        let crossings = search.crossings(500);
        // The resampled median at 1000 is 0.7 (target not reached: +inf), 0.8 or 0.9.
        for crossing in &crossings {
            let ok = *crossing == f64::INFINITY
                || (crossing - 2.6).abs() < 1e-9
                || (crossing - (2.0 + 0.12 / 0.3)).abs() < 1e-9;
            assert!(ok, "{crossing}");
        }
        // Resampling is deterministic.
        assert_eq!(crossings, search.crossings(500));
    }

    /// With per-example outcomes the resampled accuracies vary around the recorded ones even when
    /// every seed agrees, and a resample's weights sum to the split's size.
    #[test]
    fn per_example_resamples_move_every_run_together() {
        let weights = example_weights(7, 100, "ids");
        assert_eq!(weights.iter().sum::<u32>(), 100);
        let outcomes = Outcomes::from_correct((0..100).map(|idx| idx % 4 != 0));
        assert_eq!((outcomes.len(), outcomes.accuracy()), (100, 0.75));
        let everyone = vec![1u32; 100];
        assert_eq!(outcomes.weighted_accuracy(&everyone, 100.0), 0.75);
        let accuracies: Vec<f64> =
            (0..200).map(|b| outcomes.weighted_accuracy(&example_weights(b, 100, "ids"), 100.0)).collect();
        let mean = accuracies.iter().sum::<f64>() / 200.0;
        let sd = (accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 199.0).sqrt();
        // The binomial standard error sqrt(0.75 x 0.25 / 100) = 0.043.
        assert!((mean - 0.75).abs() < 0.01 && (sd - 0.043).abs() < 0.01, "{mean} {sd}");
    }
}
