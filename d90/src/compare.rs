//! Comparisons that can decide: each statistic is computed on the same bootstrap resamples of
//! every search it involves ([`crate::bootstrap`]: searches with the same seeds and dev split get
//! the same draws, so they are paired), its 95% percentile interval is read off those resamples,
//! and the verdict says `held` only when the interval excludes "no difference" in the claimed
//! direction, `not held` when it excludes it in the other, and `inconclusive` otherwise.

use crate::bootstrap::Interval;

/// A claim's verdict from an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The interval lies wholly on the claimed side of the null value.
    Held,
    /// The interval lies wholly on the other side of the null value.
    NotHeld,
    /// The interval contains the null value.
    Inconclusive,
}

impl Verdict {
    /// The verdict on "the statistic lies below `null`" (`claim_below`) or above it.
    pub fn of(interval: &Interval, null: f64, claim_below: bool) -> Verdict {
        let (below, above) = (interval.high < null, interval.low > null);
        match (below, above, claim_below) {
            (true, _, true) | (_, true, false) => Verdict::Held,
            (true, _, false) | (_, true, true) => Verdict::NotHeld,
            _ => Verdict::Inconclusive,
        }
    }

    /// `held`, `not held` or `inconclusive`, as tables print it.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::NotHeld => "not held",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The ratio of two d90s (first / second) over paired resamples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// The ratio of the point estimates (`None` unless both cross inside their range).
    pub point: Option<f64>,
    /// Its 95% interval, as ratios (`0` or `inf` where open).
    pub low: f64,
    /// The interval's upper end, as a ratio (`inf` where open above).
    pub high: f64,
    /// The share of resamples in which the first d90 is below the second (ties and resamples
    /// that cannot say count half); NaN without resamples.
    pub p_first_lower: f64,
    /// On "first <= second": held when the interval lies below 1.
    pub verdict: Verdict,
}

/// `first / second` from the crossings (log10, extended) of two searches over the same resamples,
/// and their point estimates.
pub fn ratio(first: &[f64], second: &[f64], point: (Option<f64>, Option<f64>)) -> Ratio {
    let differences: Vec<f64> = first.iter().zip(second).map(|(a, b)| a - b).collect();
    let interval = Interval::percentile(&differences);
    let lower: f64 = first
        .iter()
        .zip(second)
        .map(|(a, b)| match a.partial_cmp(b) {
            Some(std::cmp::Ordering::Less) if !(a - b).is_nan() => 1.0,
            Some(std::cmp::Ordering::Greater) if !(a - b).is_nan() => 0.0,
            _ => 0.5,
        })
        .sum();
    Ratio {
        point: point.0.zip(point.1).map(|(a, b)| 10f64.powf(a - b)),
        low: 10f64.powf(interval.low),
        high: 10f64.powf(interval.high),
        p_first_lower: if first.is_empty() { f64::NAN } else { lower / first.len() as f64 },
        verdict: Verdict::of(&interval, 0.0, true),
    }
}

/// The least-squares slope of `y` on `x`; NaN when `x` has no spread or a `y` is infinite.
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    if y.iter().any(|value| !value.is_finite()) || x.len() < 2 {
        return f64::NAN;
    }
    let n = x.len() as f64;
    let (mean_x, mean_y) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|xi| (xi - mean_x).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(xi, yi)| (xi - mean_x) * (yi - mean_y)).sum();
    if sxx > 0.0 { sxy / sxx } else { f64::NAN }
}

/// Ranks (1-based), ties sharing their average rank; infinities rank at their ends.
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
        for &idx in &order[start..=end] {
            ranks[idx] = (start + end) as f64 / 2.0 + 1.0;
        }
        start = end + 1;
    }
    ranks
}

/// Spearman's rho (Pearson on average ranks); NaN with fewer than 3 points, a NaN value or a
/// constant variable.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    if x.len() < 3 || x.len() != y.len() || x.iter().chain(y).any(|value| value.is_nan()) {
        return f64::NAN;
    }
    let (rank_x, rank_y) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let covariance: f64 = rank_x.iter().zip(&rank_y).map(|(a, b)| (a - mean) * (b - mean)).sum();
    let spread = |ranks: &[f64]| ranks.iter().map(|r| (r - mean).powi(2)).sum::<f64>().sqrt();
    let denominator = spread(&rank_x) * spread(&rank_y);
    if denominator == 0.0 { f64::NAN } else { covariance / denominator }
}

/// A statistic's point value, 95% interval over resamples and verdict on its claimed sign.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// The statistic on the recorded scores.
    pub point: f64,
    /// Its 95% percentile interval over the resamples (a NaN resample widens it).
    pub interval: Interval,
    /// On the claimed sign: held when the interval lies wholly on that side of 0.
    pub verdict: Verdict,
}

/// A trend from the statistic's point value and its value on each resample, on the claim that
/// it is negative (`claim_below`) or positive.
pub fn trend(point: f64, resampled: &[f64], claim_below: bool) -> Trend {
    let interval = Interval::percentile(resampled);
    Trend { point, interval, verdict: Verdict::of(&interval, 0.0, claim_below) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed crossings with a known answer: the first search's d90 is a third of the second's in
    /// every resample but one in forty, where it is ten times larger.
    #[test]
    fn paired_ratio_on_fixed_data() {
        let first: Vec<f64> = (0..400).map(|b| if b % 40 == 0 { 4.0 } else { 3.0 }).collect();
        let second = vec![3.0 + 3f64.log10(); 400];
        let ratio = ratio(&first, &second, (Some(3.0), Some(3.0 + 3f64.log10())));
        assert!((ratio.point.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // 10 of 400 resamples (2.5%) are high: the 97.5% quantile (rank 390) is still 1/3.
        assert!((ratio.low - 1.0 / 3.0).abs() < 1e-9 && (ratio.high - 1.0 / 3.0).abs() < 1e-9, "{ratio:?}");
        assert!((ratio.p_first_lower - 390.0 / 400.0).abs() < 1e-12);
        assert_eq!(ratio.verdict, Verdict::Held);
        // One in twenty high: the interval reaches 10/3, inconclusive.
        let first: Vec<f64> = (0..400).map(|b| if b % 20 == 0 { 4.0 } else { 3.0 }).collect();
        assert_eq!(super::ratio(&first, &second, (None, None)).verdict, Verdict::Inconclusive);
        // Swapped: the first is always larger: not held.
        assert_eq!(super::ratio(&second, &[3.0; 400], (None, None)).verdict, Verdict::NotHeld);
        // Both above the range in every resample: nothing can be said.
        let above = vec![f64::INFINITY; 400];
        let unknown = super::ratio(&above, &above, (None, None));
        assert_eq!((unknown.verdict, unknown.p_first_lower), (Verdict::Inconclusive, 0.5));
        // One open above, the other inside: the first is lower with certainty.
        let certain = super::ratio(&second, &above, (None, None));
        assert_eq!((certain.verdict, certain.p_first_lower, certain.high), (Verdict::Held, 1.0, 0.0));
    }

    #[test]
    fn slopes_ranks_and_trends() {
        assert!((slope(&[0.0, 1.0, 2.0], &[1.0, 0.5, 0.0]) + 0.5).abs() < 1e-12);
        assert!(slope(&[0.0, 1.0], &[1.0, f64::INFINITY]).is_nan());
        assert!(slope(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]) - 0.948_683_298_050_513_8).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, f64::INFINITY], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!(spearman(&[1.0, 2.0], &[1.0, 2.0]).is_nan());
        let falling: Vec<f64> = (0..100).map(|b| -0.5 + f64::from(b) / 1000.0).collect();
        assert_eq!(trend(-0.45, &falling, true).verdict, Verdict::Held);
        assert_eq!(trend(-0.45, &falling, false).verdict, Verdict::NotHeld);
        let across: Vec<f64> = (0..100).map(|b| -0.5 + f64::from(b) / 100.0).collect();
        assert_eq!(trend(0.0, &across, true).verdict, Verdict::Inconclusive);
    }
}
