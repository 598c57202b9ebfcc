//! d90 on the score curve: a monotone (isotonic, non-decreasing) least-squares fit of the probe
//! scores against log d, and the `d` where the fit reaches the target, interpolated linearly in
//! log10 d between the two probes around it.
//!
//! The grid d90 ([`crate::search`]) is always a probed value: the bracket `[largest failure,
//! d90]` can span a factor of 3 on a coarse grid, and a probe that passes by 0.004 and one that
//! passes by 0.04 give the same number. The crossing uses how far each probe is from the target,
//! and the isotonic fit makes a lucky probe below a failure pool with its neighbours instead of
//! deciding. The crossing is open below (`Below(d)`: the fit reaches the target at the smallest
//! probe `d`, so d90 <= d) or above (`Above(d)`: not at the largest, d90 > d) when it lies
//! outside the searched range.

/// Where a score curve reaches its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crossing {
    /// Reached already at the smallest probe, this `d`: d90 <= d.
    Below(usize),
    /// Reached at `10^log10_d`, between two probes.
    At(f64),
    /// Not reached at the largest probe, this `d`: d90 > d.
    Above(usize),
}

impl Crossing {
    /// The crossing on the extended log10 axis: `-inf` below, `+inf` above.
    pub fn log10(&self) -> f64 {
        match self {
            Crossing::Below(_) => f64::NEG_INFINITY,
            Crossing::At(log10_d) => *log10_d,
            Crossing::Above(_) => f64::INFINITY,
        }
    }

    /// The d90 itself, when the crossing lies inside the searched range.
    pub fn d(&self) -> Option<f64> {
        match self {
            Crossing::At(log10_d) => Some(10f64.powf(*log10_d)),
            _ => None,
        }
    }

    /// `1861`, `<=322` or `>19306`: how reports print it.
    pub fn label(&self) -> String {
        match self {
            Crossing::Below(d) => format!("<={d}"),
            Crossing::At(log10_d) => format!("{:.0}", 10f64.powf(*log10_d)),
            Crossing::Above(d) => format!(">{d}"),
        }
    }
}

/// The isotonic (non-decreasing) least-squares fit of `values`, equally weighted, by pooling
/// adjacent violators: each pool takes its mean.
pub fn isotonic(values: &[f64]) -> Vec<f64> {
    // (sum, count) of each pool, left to right.
    let mut pools: Vec<(f64, usize)> = Vec::with_capacity(values.len());
    for &value in values {
        pools.push((value, 1));
        while pools.len() >= 2 {
            let (last_sum, last_count) = pools[pools.len() - 1];
            let (prev_sum, prev_count) = pools[pools.len() - 2];
            if prev_sum / prev_count as f64 <= last_sum / last_count as f64 {
                break;
            }
            pools.pop();
            *pools.last_mut().expect("two pools") = (prev_sum + last_sum, prev_count + last_count);
        }
    }
    pools.iter().flat_map(|&(sum, count)| std::iter::repeat_n(sum / count as f64, count)).collect()
}

/// Where the isotonic fit of `points` (`(d, score)`, sorted by `d`, distinct `d`) reaches
/// `target`; `None` without points.
pub fn crossing(points: &[(usize, f64)], target: f64) -> Option<Crossing> {
    let (first, last) = (points.first()?, points.last()?);
    let fitted = isotonic(&points.iter().map(|&(_, score)| score).collect::<Vec<_>>());
    let Some(reached) = fitted.iter().position(|&score| score >= target) else {
        return Some(Crossing::Above(last.0));
    };
    if reached == 0 {
        return Some(Crossing::Below(first.0));
    }
    let (low_x, high_x) = ((points[reached - 1].0 as f64).log10(), (points[reached].0 as f64).log10());
    let (low_y, high_y) = (fitted[reached - 1], fitted[reached]);
    Some(Crossing::At(low_x + (target - low_y) / (high_y - low_y) * (high_x - low_x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_fits_pool_violators_and_keep_monotone_data() {
        assert_eq!(isotonic(&[0.1, 0.2, 0.3]), vec![0.1, 0.2, 0.3]);
        assert_eq!(isotonic(&[0.3, 0.1]), vec![0.2, 0.2]);
        // 0.5 0.3 pool to 0.4; then 0.4 0.4 0.2 pool to 1.0/3 ... the standard PAVA answer.
        let fitted = isotonic(&[0.1, 0.5, 0.3, 0.2, 0.6]);
        let expected = [0.1, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.6];
        assert!(fitted.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12), "{fitted:?}");
        assert_eq!(isotonic(&[0.7; 4]), vec![0.7; 4]);
        assert!(isotonic(&[]).is_empty());
    }

    fn at(crossing: Option<Crossing>) -> f64 {
        crossing.and_then(|crossing| crossing.d()).expect("a crossing inside the range")
    }

    #[test]
    fn crossings_of_known_curves() {
        // Linear in log10 d: 0.6 at 100, 0.8 at 10,000 (0.1 a decade); 0.75 is reached at 10^3.5.
        let points = [(100, 0.6), (1000, 0.7), (10_000, 0.8)];
        assert!((at(crossing(&points, 0.75)) - 10f64.powf(3.5)).abs() < 1e-6);
        // Exactly at a probe: that probe.
        assert!((at(crossing(&points, 0.7)) - 1000.0).abs() < 1e-9);
        // Open below and above.
        assert_eq!(crossing(&points, 0.5), Some(Crossing::Below(100)));
        assert_eq!(crossing(&points, 0.9), Some(Crossing::Above(10_000)));
        assert_eq!(crossing(&[], 0.9), None);
        // Flat at the target's level: reached at the first probe.
        assert_eq!(crossing(&[(100, 0.7), (1000, 0.7)], 0.7), Some(Crossing::Below(100)));
        // Flat below it: never.
        assert_eq!(crossing(&[(100, 0.6), (1000, 0.6)], 0.7), Some(Crossing::Above(1000)));
    }

    /// A lucky probe below a failure does not decide: 0.76 at 322 and 0.70 at 1000 pool to 0.73,
    /// below the target 0.74, so the crossing lies between 1000 and 3340 (0.78), not at 322.
    #[test]
    fn a_non_monotone_probe_pools_with_its_neighbour() {
        let points = [(100, 0.6), (322, 0.76), (1000, 0.70), (3340, 0.78)];
        let d = at(crossing(&points, 0.74));
        // Fit 0.6, 0.73, 0.73, 0.78: 0.74 is a fifth of the way from 1000 to 3340 in log d.
        let expected = 10f64.powf(3.0 + 0.2 * (3340f64.log10() - 3.0));
        assert!((d - expected).abs() < 1e-6, "{d} {expected}");
        // Noise around a rising curve: the crossing stays between the probes that bracket it.
        let noisy = [(100, 0.62), (200, 0.60), (400, 0.69), (800, 0.67), (1600, 0.75), (3200, 0.74)];
        let d = at(crossing(&noisy, 0.7));
        assert!((800.0..=1600.0).contains(&d), "{d}");
    }

    #[test]
    fn labels() {
        assert_eq!(Crossing::At(3.0).label(), "1000");
        assert_eq!(Crossing::Below(322).label(), "<=322");
        assert_eq!(Crossing::Above(19306).label(), ">19306");
        assert_eq!(Crossing::Above(5).log10(), f64::INFINITY);
    }
}
