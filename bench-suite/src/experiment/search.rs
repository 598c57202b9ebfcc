//! The d90 search over a fixed grid of dimensions, independent of how a probe is trained.
//!
//! The grid is `d_i = int(10^(2 + 4i/63))`, `i = 0..63`: 64 values from 100 to 1,000,000, evenly
//! spaced in log d (12 of the 13 distinct d90 values of the paper's Table 1 lie on it: 207, 322,
//! 774, 896, 1037, 1608, ...). A probe at `d` trains every learning rate and seed, takes the best
//! dev metric over learning rates per seed and the median over seeds, and succeeds when that
//! reaches the target (the threshold, 0.9, times the baseline's best).
//!
//! - `grid` probes every value in the bounds; d90 is the smallest success, and the record says
//!   whether success was monotone in d (no failure above a success).
//! - `bisect` assumes monotone success (the paper searched d this way for its pre-training
//!   figure): it probes the largest value first (if that fails, the target is not reached in the
//!   bounds), then halves the bracket, about log2(n) + 1 probes.
//!
//! Either way d90 comes with its bracket `[largest failure below it, d90]`; `None` on the left
//! means d90 is the smallest value searched.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    Grid,
    Bisect,
}

/// The grid values `int(10^(2 + 4i/63))` within `[d_min, d_max]`, increasing.
pub fn d_grid(d_min: usize, d_max: usize) -> Vec<usize> {
    (0..64).map(|i| 10f64.powf(2.0 + 4.0 * i as f64 / 63.0) as usize).filter(|&d| d >= d_min && d <= d_max).collect()
}

/// What one probe (all learning rates and seeds at one `d`) gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// The median over seeds of the best dev metric over learning rates; `None` when every run
    /// diverged before its first evaluation.
    pub score: Option<f64>,
    /// Every run of the probe diverged.
    pub all_diverged: bool,
    /// The keys of the runs (result files) behind the score.
    pub runs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub d: usize,
    pub score: Option<f64>,
    pub success: bool,
    pub all_diverged: bool,
    pub runs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// d90 found: the smallest successful grid value, with the largest failure below it.
    Found { d90: usize, bracket: (Option<usize>, usize) },
    /// No value in the bounds reached the target.
    NotReached { largest_tried: usize },
    /// d90 cannot be computed (the paper's Figure 2 caption): the reason.
    Unable { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchOutcome {
    pub outcome: Outcome,
    /// In probing order.
    pub probes: Vec<Probe>,
    /// Grid mode: no failure above a success. Bisect mode assumes it and records `None`.
    pub monotone: Option<bool>,
}

/// Searches `grid` (increasing) for the smallest `d` whose probe reaches `target`.
pub fn search<E>(
    mode: SearchMode,
    grid: &[usize],
    target: f64,
    mut probe: impl FnMut(usize) -> Result<ProbeOutcome, E>,
) -> Result<SearchOutcome, E> {
    let mut probes: Vec<Probe> = Vec::new();
    let mut run = |d: usize, probes: &mut Vec<Probe>| -> Result<bool, E> {
        let outcome = probe(d)?;
        let success = outcome.score.is_some_and(|score| score >= target);
        probes.push(Probe { d, score: outcome.score, success, all_diverged: outcome.all_diverged, runs: outcome.runs });
        Ok(success)
    };
    let Some(&largest) = grid.last() else {
        return Ok(SearchOutcome {
            outcome: Outcome::Unable { reason: "the search bounds hold no grid value".to_owned() },
            probes,
            monotone: None,
        });
    };
    let (found, monotone) = match mode {
        SearchMode::Grid => {
            let mut successes = Vec::new();
            for &d in grid {
                successes.push(run(d, &mut probes)?);
            }
            let first = successes.iter().position(|&success| success);
            let monotone = first.is_none_or(|first| successes[first..].iter().all(|&success| success));
            (first, Some(monotone))
        }
        SearchMode::Bisect => {
            if !run(largest, &mut probes)? {
                (None, None)
            } else {
                // Invariant: grid[hi] succeeded; everything below lo failed (or is assumed to).
                let (mut lo, mut hi) = (0, grid.len() - 1);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if run(grid[mid], &mut probes)? {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                (Some(hi), None)
            }
        }
    };
    if probes.iter().all(|probe| probe.all_diverged) {
        return Ok(SearchOutcome {
            outcome: Outcome::Unable { reason: "every subspace run diverged".to_owned() },
            probes,
            monotone,
        });
    }
    let outcome = match found {
        None => Outcome::NotReached { largest_tried: largest },
        Some(idx) => {
            let d90 = grid[idx];
            let below = probes.iter().filter(|probe| !probe.success && probe.d < d90).map(|probe| probe.d).max();
            Outcome::Found { d90, bracket: (below, d90) }
        }
    };
    Ok(SearchOutcome { outcome, probes, monotone })
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

    /// A fake trainer: success exactly from `threshold_d` up (score 1.0 vs 0.5), counting probes.
    fn check(mode: SearchMode, grid: &[usize], threshold_d: usize) -> SearchOutcome {
        search::<()>(mode, grid, 0.9, |d| {
            Ok(ProbeOutcome {
                score: Some(if d >= threshold_d { 1.0 } else { 0.5 }),
                all_diverged: false,
                runs: vec![],
            })
        })
        .unwrap()
    }

    #[test]
    fn grid_and_bisect_find_the_same_d90_and_bracket() {
        let grid = d_grid(100, 1_000_000);
        for (idx, &threshold_d) in grid.iter().enumerate() {
            let expected =
                Outcome::Found { d90: threshold_d, bracket: (idx.checked_sub(1).map(|i| grid[i]), threshold_d) };
            let by_grid = check(SearchMode::Grid, &grid, threshold_d);
            assert_eq!(by_grid.outcome, expected);
            assert_eq!(by_grid.probes.len(), 64);
            assert_eq!(by_grid.monotone, Some(true));
            let by_bisect = check(SearchMode::Bisect, &grid, threshold_d);
            assert_eq!(by_bisect.outcome, expected, "bisect, threshold {threshold_d}");
            assert!(by_bisect.probes.len() <= 7, "{} probes", by_bisect.probes.len());
        }
        // Between grid values: the next grid value up.
        assert_eq!(
            check(SearchMode::Bisect, &grid, 1000).outcome,
            Outcome::Found { d90: 1037, bracket: (Some(896), 1037) }
        );
        // Above the bounds.
        for mode in [SearchMode::Grid, SearchMode::Bisect] {
            let outcome = check(mode, &d_grid(100, 10_000), 20_000);
            assert_eq!(outcome.outcome, Outcome::NotReached { largest_tried: 9295 });
        }
        assert_eq!(check(SearchMode::Bisect, &grid, 2_000_000).probes.len(), 1);
    }

    #[test]
    fn grid_mode_reports_non_monotone_success_and_bisect_trusts_it() {
        let grid = d_grid(100, 1000);
        // Succeeds at 207 only by luck, then fails until 800.
        let lucky = |mode| {
            search::<()>(mode, &grid, 0.9, |d| {
                Ok(ProbeOutcome {
                    score: Some(if d == 207 || d >= 800 { 1.0 } else { 0.5 }),
                    all_diverged: false,
                    runs: vec![],
                })
            })
            .unwrap()
        };
        let by_grid = lucky(SearchMode::Grid);
        assert_eq!(by_grid.monotone, Some(false));
        assert_eq!(by_grid.outcome, Outcome::Found { d90: 207, bracket: (Some(179), 207) });
        let by_bisect = lucky(SearchMode::Bisect);
        assert_eq!(by_bisect.monotone, None);
        assert_eq!(by_bisect.outcome, Outcome::Found { d90: 896, bracket: (Some(774), 896) });
    }

    #[test]
    fn all_diverged_is_unable_and_a_missing_score_fails() {
        let grid = d_grid(100, 1000);
        let outcome = search::<()>(SearchMode::Grid, &grid, 0.5, |_| {
            Ok(ProbeOutcome { score: None, all_diverged: true, runs: vec![] })
        })
        .unwrap();
        assert!(matches!(outcome.outcome, Outcome::Unable { ref reason } if reason.contains("diverged")));
        // Diverged below 500 (no score), fine above: found, not unable.
        let outcome = search::<()>(SearchMode::Bisect, &grid, 0.5, |d| {
            Ok(ProbeOutcome { score: (d >= 500).then_some(0.9), all_diverged: d < 500, runs: vec![] })
        })
        .unwrap();
        assert_eq!(outcome.outcome, Outcome::Found { d90: 577, bracket: (Some(499), 577) });
    }

    #[test]
    fn median_of_seeds() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.7]), Some(0.7));
        assert_eq!(median(&[0.9, 0.5, 0.7]), Some(0.7));
        assert_eq!(median(&[0.9, 0.5, 0.75, 0.25]), Some(0.625));
    }
}
