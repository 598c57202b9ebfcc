//! The d90 search over a fixed grid of dimensions, independent of how a probe is trained.
//!
//! The grid is `d_i = int(10^(2 + 4i/63))`, `i = 0..63`: 64 values from 100 to 1,000,000, evenly
//! spaced in log d (12 of the 13 distinct d90 values of the paper's Table 1 lie on it: 207, 322,
//! 774, 896, 1037, 1608, ...). A probe at `d` trains every learning rate and seed, takes the best
//! dev metric over learning rates per seed and the median over seeds, and succeeds when that
//! reaches the target (the threshold, 0.9, times the baseline's best).
//!
//! **d90 is the smallest probed `d` from which every larger probed `d` succeeds**, whatever the
//! probing order, so a lucky success below a failure never makes a d90 and a failure at the top
//! means the target is not reached. Every search records whether its probes were monotone (no
//! failure above a success).
//!
//! - `grid` probes every value in the bounds.
//! - `bisect` does not trust a single probe: it climbs a ladder from the bottom (grid indices 0,
//!   1, 3, 7, 15, ... and the top) to the first success, confirms it with the ladder's next rung
//!   and the top, then bisects the gap between the successful tail and the failure below it until
//!   they are neighbours on the grid: about `2 log2(n)` probes when success is monotone, more when
//!   it is not, which then shows instead of hiding.
//!
//! Outcomes: `found` with its bracket `[largest failure below, d90]`; `bound` when the smallest
//! grid value already succeeds (d90 <= d_min: a bound, not a value); `not_reached`; `unable` with
//! its reason. The search records what it probed; what the probes say with their uncertainty (the
//! crossing of the score curve and its bootstrap interval) is [`crate::curve`] and
//! [`crate::bootstrap`], computed from the records by whoever reads them.

use serde::{Deserialize, Serialize};

use results::{Outcome, Probe, SearchMode, SearchOutcome};

/// What one probe (all learning rates and seeds at one `d`) gave.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// The median over seeds of the seed scores; `None` when every run diverged.
    pub score: Option<f64>,
    /// Per seed (in the plan's order): the best dev metric over learning rates of the runs that
    /// neither diverged nor predicted one class; `None` when there is no such run (counted as 0 in
    /// the median: such a seed never helps a probe succeed).
    pub seed_scores: Vec<Option<f64>>,
    /// Every run of the probe diverged.
    pub all_diverged: bool,
    /// Runs whose best evaluation predicted one class (left out of the seed scores).
    pub constant_runs: usize,
    /// The keys of the runs (result files) behind the score.
    pub runs: Vec<String>,
}

impl ProbeOutcome {
    /// A probe from its seed scores (the median counts a seed without a score as 0).
    pub fn from_seed_scores(seed_scores: Vec<Option<f64>>) -> ProbeOutcome {
        let score = seed_median(&seed_scores);
        ProbeOutcome { score, seed_scores, ..ProbeOutcome::default() }
    }
}

/// The median of seed scores, a missing score counting as 0; `None` when every score is missing.
pub fn seed_median(seed_scores: &[Option<f64>]) -> Option<f64> {
    if seed_scores.iter().all(Option::is_none) {
        return None;
    }
    median(&seed_scores.iter().map(|score| score.unwrap_or(0.0)).collect::<Vec<_>>())
}

/// What a probe must reach: `threshold` x the baseline's median seed score.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target itself (`threshold` x the baseline's median).
    pub value: f64,
    /// The fraction of the baseline's median to reach (0.9 for d90; 1.0 for a fixed target).
    pub threshold: f64,
    /// The baseline's per-seed scores (best over learning rates); empty for a fixed target.
    pub baseline_seed_scores: Vec<Option<f64>>,
    /// The majority-class accuracy.
    pub majority: f64,
}

impl Target {
    /// A target from the baseline's seed scores; `None` when no seed has a score.
    pub fn from_baseline(threshold: f64, baseline_seed_scores: Vec<Option<f64>>, majority: f64) -> Option<Target> {
        let value = threshold * seed_median(&baseline_seed_scores)?;
        Some(Target { value, threshold, baseline_seed_scores, majority })
    }

    /// A fixed target (no baseline seeds to resample).
    pub fn fixed(value: f64) -> Target {
        Target { value, threshold: 1.0, baseline_seed_scores: vec![], majority: f64::NEG_INFINITY }
    }
}

/// The indices of `grid` a ladder climbs: 0, 1, 3, 7, 15, ... and the top.
fn ladder(n: usize) -> Vec<usize> {
    let mut rungs: Vec<usize> = (0..).map(|k: u32| (1usize << k) - 1).take_while(|&idx| idx < n - 1).collect();
    rungs.push(n - 1);
    rungs
}

/// Among probes sorted by `d`, the position of the smallest from which every larger one succeeds.
fn first_of_successful_tail(successes: &[bool]) -> Option<usize> {
    let failures_from = successes.iter().rposition(|&success| !success).map_or(0, |last| last + 1);
    (failures_from < successes.len()).then_some(failures_from)
}

/// Searches `grid` (increasing) for d90 against `target` (see the module doc).
pub fn search<E>(
    mode: SearchMode,
    grid: &[usize],
    target: &Target,
    mut probe: impl FnMut(usize) -> Result<ProbeOutcome, E>,
) -> Result<SearchOutcome, E> {
    let mut probes: Vec<Probe> = Vec::new();
    let mut run = |idx: usize, probes: &mut Vec<Probe>| -> Result<bool, E> {
        if let Some(done) = probes.iter().find(|probe| probe.d == grid[idx]) {
            return Ok(done.success);
        }
        let outcome = probe(grid[idx])?;
        let success = outcome.score.is_some_and(|score| score >= target.value);
        probes.push(Probe {
            d: grid[idx],
            score: outcome.score,
            success,
            all_diverged: outcome.all_diverged,
            seed_scores: outcome.seed_scores,
            constant_runs: outcome.constant_runs,
            runs: outcome.runs,
        });
        Ok(success)
    };
    if grid.is_empty() {
        return Ok(SearchOutcome {
            outcome: Outcome::Unable { reason: "the search bounds hold no grid value".to_owned() },
            probes,
            monotone: None,
        });
    }
    match mode {
        SearchMode::Grid => {
            for idx in 0..grid.len() {
                run(idx, &mut probes)?;
            }
        }
        SearchMode::Bisect => {
            let rungs = ladder(grid.len());
            let mut first_success = None;
            for (rung, &idx) in rungs.iter().enumerate() {
                if run(idx, &mut probes)? {
                    first_success = Some(rung);
                    break;
                }
            }
            if let Some(rung) = first_success {
                // Confirm above: the next rung and the top.
                for &idx in rungs[rung + 1..].iter().take(1).chain(rungs.last()) {
                    run(idx, &mut probes)?;
                }
            }
            // Bisect the gap below the successful tail until it is one grid step wide.
            loop {
                let mut probed: Vec<(usize, bool)> = probes
                    .iter()
                    .map(|probe| (grid.iter().position(|&d| d == probe.d).expect("a grid value"), probe.success))
                    .collect();
                probed.sort_unstable();
                let successes: Vec<bool> = probed.iter().map(|&(_, success)| success).collect();
                let Some(pos) = first_of_successful_tail(&successes) else { break };
                let Some(&(below, _)) = pos.checked_sub(1).map(|below| &probed[below]) else { break };
                let start = probed[pos].0;
                if start - below <= 1 {
                    break;
                }
                run((below + start) / 2, &mut probes)?;
            }
        }
    }
    if probes.iter().all(|probe| probe.all_diverged) {
        return Ok(SearchOutcome {
            outcome: Outcome::Unable { reason: "every subspace run diverged".to_owned() },
            probes,
            monotone: None,
        });
    }
    let mut sorted: Vec<&Probe> = probes.iter().collect();
    sorted.sort_by_key(|probe| probe.d);
    let successes: Vec<bool> = sorted.iter().map(|probe| probe.success).collect();
    let monotone = successes.windows(2).all(|pair| !pair[0] || pair[1]);
    let outcome = outcome_of(grid, &sorted, &successes);
    Ok(SearchOutcome { outcome, probes, monotone: Some(monotone) })
}

/// The outcome of probes sorted by `d` with their successes (the module doc's rule).
pub fn outcome_of(grid: &[usize], sorted: &[&Probe], successes: &[bool]) -> Outcome {
    let largest = sorted.last().map_or(grid[grid.len() - 1], |probe| probe.d);
    match first_of_successful_tail(successes) {
        None => Outcome::NotReached { largest_tried: largest },
        Some(pos) if sorted[pos].d == grid[0] => Outcome::Bound { at_most: grid[0] },
        Some(pos) => Outcome::Found {
            d90: sorted[pos].d,
            bracket: (pos.checked_sub(1).map(|below| sorted[below].d), sorted[pos].d),
        },
    }
}

/// The run of a probe whose generalization gap a report reads, chosen without looking at its own
/// dev score: `scores[seed][rate]` are the probe's run scores (`None`: the run does not count,
/// diverged or predicting one class). The seed is the median seed by its best score (the lower
/// middle for an even count); the rate is the one whose median score over the *other* seeds is
/// highest (a missing score counts as 0; the first on a tie), falling back to the next best rate
/// where the median seed's own run does not count. With one seed there are no other seeds, and the
/// seed's best rate is taken. `None` when no run counts.
pub fn generalization_pick(scores: &[Vec<Option<f64>>]) -> Option<(usize, usize)> {
    let mut seeds: Vec<(usize, f64)> = scores
        .iter()
        .enumerate()
        .filter_map(|(seed, rates)| Some((seed, rates.iter().flatten().copied().max_by(f64::total_cmp)?)))
        .collect();
    seeds.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let &(seed, _) = seeds.get(seeds.len().checked_sub(1)? / 2)?;
    let n_rates = scores[seed].len();
    let others: Vec<&Vec<Option<f64>>> =
        scores.iter().enumerate().filter(|&(other, _)| other != seed).map(|(_, rates)| rates).collect();
    let judge = |rate: usize| -> f64 {
        if others.is_empty() {
            return scores[seed][rate].unwrap_or(f64::NEG_INFINITY);
        }
        seed_median(&others.iter().map(|rates| rates.get(rate).copied().flatten()).collect::<Vec<_>>())
            .unwrap_or(f64::NEG_INFINITY)
    };
    let mut rates: Vec<usize> = (0..n_rates).collect();
    rates.sort_by(|&a, &b| judge(b).total_cmp(&judge(a)).then(a.cmp(&b)));
    let rate = rates.into_iter().find(|&rate| scores[seed][rate].is_some())?;
    Some((seed, rate))
}

/// An end of a probe's learning-rate grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridEdge {
    /// The lowest rate.
    Low,
    /// The highest rate.
    High,
}

impl GridEdge {
    /// `low` or `high`, as reports name it.
    pub fn label(self) -> &'static str {
        match self {
            GridEdge::Low => "low",
            GridEdge::High => "high",
        }
    }
}

/// The ends of a probe's learning rates where some seed's best run lies: `runs` are `(seed, rate,
/// score)` for every run of the probe (`None`: the run does not count, diverged or predicting one
/// class). A seed's best is its highest counting score; where it lies at the lowest or the highest
/// rate of the probe, a rate beyond that end could raise the seed's score, and with it the probe's
/// median, so the rates do not bracket the probe's best there. A best shared by a rate inside and
/// an end counts as inside; one shared by both ends alone, as both. A seed without a counting run
/// asks for nothing (so a probe where no run counts is never extended), nor does a probe of fewer
/// than two rates. Returns `[]` (bracketed), `[Low]`, `[High]` or `[Low, High]`.
pub fn best_rate_edges(runs: &[(u64, f64, Option<f64>)]) -> Vec<GridEdge> {
    let mut rates: Vec<f64> = runs.iter().map(|&(_, rate, _)| rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    if rates.len() < 2 {
        return Vec::new();
    }
    let (low, high) = (rates[0], rates[rates.len() - 1]);
    let mut seeds: Vec<u64> = runs.iter().map(|&(seed, _, _)| seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let (mut at_low, mut at_high) = (false, false);
    for seed in seeds {
        let own = || runs.iter().filter(move |&&(of, _, _)| of == seed);
        let Some(best) = own().filter_map(|&(_, _, score)| score).max_by(f64::total_cmp) else { continue };
        let best_rates: Vec<f64> =
            own().filter(|&&(_, _, score)| score == Some(best)).map(|&(_, rate, _)| rate).collect();
        if best_rates.iter().any(|&rate| rate != low && rate != high) {
            continue;
        }
        at_low |= best_rates.contains(&low);
        at_high |= best_rates.contains(&high);
    }
    [(at_low, GridEdge::Low), (at_high, GridEdge::High)]
        .into_iter()
        .filter(|&(at, _)| at)
        .map(|(_, edge)| edge)
        .collect()
}

/// The rate one step beyond `edge` of `rates` (increasing, at least two): the end rate times the
/// ratio of the two rates at that end, so a log-spaced grid stays log-spaced.
pub fn rate_beyond(rates: &[f64], edge: GridEdge) -> f64 {
    let n = rates.len();
    match edge {
        GridEdge::Low => rates[0] * rates[0] / rates[1],
        GridEdge::High => rates[n - 1] * rates[n - 1] / rates[n - 2],
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use results::search::d_grid;

    #[test]
    fn the_grid_holds_the_papers_values() {
        let grid = d_grid(0, usize::MAX);
        assert_eq!(grid.len(), 64);
        assert_eq!((grid[0], grid[63]), (100, 1_000_000));
        // Table 1's distinct d90 values; 1000 (RoBERTa-Base, DID, MRPC) alone is off the grid.
        for d in [207, 322, 774, 896, 1037, 1200, 1389, 1608, 1861, 2493, 8030, 9295] {
            assert!(grid.contains(&d), "{d} not on the grid");
        }
        assert!(!grid.contains(&1000));
        assert!(grid.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(d_grid(200, 1000), vec![207, 240, 278, 322, 372, 431, 499, 577, 668, 774, 896]);
    }

    fn fake(score: impl Fn(usize) -> f64) -> impl FnMut(usize) -> Result<ProbeOutcome, ()> {
        move |d| Ok(ProbeOutcome::from_seed_scores(vec![Some(score(d))]))
    }

    /// A fake trainer: success exactly from `threshold_d` up (score 1.0 vs 0.5).
    fn check(mode: SearchMode, grid: &[usize], threshold_d: usize) -> SearchOutcome {
        search(mode, grid, &Target::fixed(0.9), fake(|d| if d >= threshold_d { 1.0 } else { 0.5 })).unwrap()
    }

    #[test]
    fn grid_and_bisect_find_the_same_d90_and_bracket() {
        let grid = d_grid(100, 1_000_000);
        for (idx, &threshold_d) in grid.iter().enumerate() {
            let expected = if idx == 0 {
                Outcome::Bound { at_most: 100 }
            } else {
                Outcome::Found { d90: threshold_d, bracket: (Some(grid[idx - 1]), threshold_d) }
            };
            let by_grid = check(SearchMode::Grid, &grid, threshold_d);
            assert_eq!(by_grid.outcome, expected);
            assert_eq!(by_grid.probes.len(), 64);
            assert_eq!(by_grid.monotone, Some(true));
            let by_bisect = check(SearchMode::Bisect, &grid, threshold_d);
            assert_eq!(by_bisect.outcome, expected, "bisect, threshold {threshold_d}");
            assert_eq!(by_bisect.monotone, Some(true));
            assert!(by_bisect.probes.len() <= 14, "{} probes", by_bisect.probes.len());
        }
        // Between grid values: the next grid value up.
        assert_eq!(
            check(SearchMode::Bisect, &grid, 1000).outcome,
            Outcome::Found { d90: 1037, bracket: (Some(896), 1037) }
        );
        // Above the bounds: the whole ladder fails, the top included.
        for mode in [SearchMode::Grid, SearchMode::Bisect] {
            let outcome = check(mode, &d_grid(100, 10_000), 20_000);
            assert_eq!(outcome.outcome, Outcome::NotReached { largest_tried: 9295 });
        }
        assert_eq!(check(SearchMode::Bisect, &grid, 2_000_000).probes.len(), 7);
    }

    /// A trainer that overshoots at large d (one learning rate for every d): success only in a
    /// window. The top fails, so there is no d from which every larger probe succeeds.
    #[test]
    fn a_profile_that_fails_at_the_top_is_not_reached_and_non_monotone() {
        let grid = d_grid(100, 10_000);
        for mode in [SearchMode::Grid, SearchMode::Bisect] {
            let outcome =
                search(mode, &grid, &Target::fixed(0.9), fake(|d| if (800..5000).contains(&d) { 1.0 } else { 0.5 }))
                    .unwrap();
            assert_eq!(outcome.outcome, Outcome::NotReached { largest_tried: 9295 }, "{mode:?}");
            assert_eq!(outcome.monotone, Some(false), "{mode:?}");
        }
    }

    /// A lucky success below failures never makes the d90: it is the smallest d from which every
    /// larger probe succeeds, and the profile is recorded as non-monotone.
    #[test]
    fn d90_is_the_start_of_the_successful_tail() {
        let grid = d_grid(100, 1000);
        let lucky = |d: usize| if d == 115 || d >= 800 { 1.0 } else { 0.5 };
        let by_grid = search(SearchMode::Grid, &grid, &Target::fixed(0.9), fake(lucky)).unwrap();
        assert_eq!(by_grid.monotone, Some(false));
        assert_eq!(by_grid.outcome, Outcome::Found { d90: 896, bracket: (Some(774), 896) });
        // The ladder climbs 100, 115 (success), confirms at 155 (fails) and the top (succeeds),
        // then bisects the gap below the top's successful tail: never 115.
        let by_bisect = search(SearchMode::Bisect, &grid, &Target::fixed(0.9), fake(lucky)).unwrap();
        assert_eq!(by_bisect.monotone, Some(false));
        let probed: Vec<usize> = by_bisect.probes.iter().map(|probe| probe.d).collect();
        assert_eq!(probed, [100, 115, 155, 896, 372, 577, 668, 774]);
        assert_eq!(by_bisect.outcome, Outcome::Found { d90: 896, bracket: (Some(774), 896) });
    }

    #[test]
    fn all_diverged_is_unable_and_a_missing_score_fails() {
        let grid = d_grid(100, 1000);
        let outcome = search::<()>(SearchMode::Grid, &grid, &Target::fixed(0.5), |_| {
            Ok(ProbeOutcome { all_diverged: true, ..ProbeOutcome::default() })
        })
        .unwrap();
        assert!(matches!(outcome.outcome, Outcome::Unable { ref reason } if reason.contains("diverged")));
        // Diverged below 500 (no score), fine above: found, not unable.
        let outcome = search::<()>(SearchMode::Bisect, &grid, &Target::fixed(0.5), |d| {
            Ok(ProbeOutcome {
                all_diverged: d < 500,
                ..ProbeOutcome::from_seed_scores(vec![(d >= 500).then_some(0.9)])
            })
        })
        .unwrap();
        assert_eq!(outcome.outcome, Outcome::Found { d90: 577, bracket: (Some(499), 577) });
    }

    #[test]
    fn seed_medians_and_targets() {
        // Seeds without a score (diverged or constant) count as 0 in the median.
        assert_eq!(seed_median(&[Some(0.9), None, Some(0.8)]), Some(0.8));
        assert_eq!(seed_median(&[None, None]), None);
        let target = Target::from_baseline(0.9, vec![Some(0.7), Some(0.8), Some(0.9)], 0.5).unwrap();
        assert!((target.value - 0.72).abs() < 1e-12);
        assert_eq!(Target::from_baseline(0.9, vec![None, None], 0.5), None);
    }

    #[test]
    fn the_generalization_run_is_not_chosen_by_its_own_score() {
        // Seed scores 0.80, 0.70, 0.75: the median seed is 2. The other seeds (0, 1) score best
        // at rate 0 (median 0.75 against 0.60), although seed 2's own best is rate 1.
        let scores = vec![vec![Some(0.80), Some(0.50)], vec![Some(0.70), Some(0.70)], vec![Some(0.60), Some(0.75)]];
        assert_eq!(generalization_pick(&scores), Some((2, 0)));
        // The median seed's run at that rate does not count: the next rate.
        let scores = vec![vec![Some(0.80), Some(0.50)], vec![Some(0.70), Some(0.70)], vec![None, Some(0.75)]];
        assert_eq!(generalization_pick(&scores), Some((2, 1)));
        // Even count: the lower middle; one seed: its best rate; nothing counts: none.
        assert_eq!(generalization_pick(&[vec![Some(0.9)], vec![Some(0.7)]]), Some((1, 0)));
        assert_eq!(generalization_pick(&[vec![Some(0.6), Some(0.7)]]), Some((0, 1)));
        assert_eq!(generalization_pick(&[vec![None, None]]), None);
    }

    #[test]
    fn a_seed_best_at_an_end_of_the_rates_asks_for_one_more_rate_beyond_it() {
        use GridEdge::{High, Low};
        let probe = |scores: &[[Option<f64>; 3]]| -> Vec<(u64, f64, Option<f64>)> {
            let rates = [0.1, 0.3, 0.9];
            (0..scores.len()).flat_map(|seed| (0..3).map(move |r| (seed as u64, rates[r], scores[seed][r]))).collect()
        };
        let (s, none) = (Some, None);
        // Every seed's best inside: bracketed.
        assert_eq!(best_rate_edges(&probe(&[[s(0.7), s(0.8), s(0.6)], [s(0.7), s(0.75), s(0.7)]])), vec![]);
        // One seed's best at the top, though the best run of all lies inside: that seed could score
        // more at a higher rate, and so could the median.
        assert_eq!(best_rate_edges(&probe(&[[s(0.7), s(0.9), s(0.6)], [s(0.6), s(0.7), s(0.72)]])), vec![High]);
        // Seeds at both ends; at the bottom only.
        assert_eq!(best_rate_edges(&probe(&[[s(0.8), s(0.7), none], [s(0.6), s(0.7), s(0.72)]])), vec![Low, High]);
        assert_eq!(best_rate_edges(&probe(&[[s(0.8), s(0.7), none], [s(0.75), s(0.7), none]])), vec![Low]);
        // A tie between an end and inside counts as inside; a run that does not count is never a
        // seed's best, even at the highest rate.
        assert_eq!(best_rate_edges(&probe(&[[s(0.75), s(0.75), s(0.7)]])), vec![]);
        assert_eq!(best_rate_edges(&probe(&[[s(0.7), s(0.75), none]])), vec![]);
        // A seed without a counting run, or a probe of one rate: nothing to extend.
        assert_eq!(best_rate_edges(&probe(&[[none, none, none], [s(0.7), s(0.75), s(0.7)]])), vec![]);
        assert_eq!(best_rate_edges(&[(0, 0.1, Some(0.7)), (1, 0.1, Some(0.8))]), vec![]);
        // A best shared by the two ends alone: both.
        assert_eq!(best_rate_edges(&[(0, 0.1, Some(0.7)), (0, 0.3, Some(0.7))]), vec![Low, High]);
        // One step beyond either end, with the ratio of the rates at that end.
        let rates = [0.1, 0.3, 0.9];
        assert!((rate_beyond(&rates, GridEdge::Low) - 0.1 / 3.0).abs() < 1e-15);
        assert!((rate_beyond(&rates, GridEdge::High) - 2.7).abs() < 1e-12);
        assert!((rate_beyond(&[0.01, 0.02, 0.08], GridEdge::High) - 0.32).abs() < 1e-15);
    }

    #[test]
    fn median_of_seeds() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.7]), Some(0.7));
        assert_eq!(median(&[0.9, 0.5, 0.7]), Some(0.7));
        assert_eq!(median(&[0.9, 0.5, 0.75, 0.25]), Some(0.625));
    }
}
