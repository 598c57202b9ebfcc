//! What the numbers mean: every search's d90 on its score curve with a bootstrap 95% interval and
//! a two-sided `determined` (the `d90` crate), the comparisons and trends read off the same
//! resamples, the precondition of the trajectory and size claims, and the Claims table that sits
//! at the top of every report.

use std::collections::BTreeMap;

use d90::bootstrap::{Determination, Interval, RESAMPLES, Reading, Search};
use d90::compare::{self, Ratio, Verdict};
use d90::curve::Crossing;
use d90::search::{GridEdge, best_rate_edges};
use results::{Mode, RunRecord, SearchRecord};

/// One search's uncertainty.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The search as the bootstrap reads it from its record and runs.
    pub search: Search,
    /// Per-example, or seed-only and why.
    pub reading: Reading,
    /// Where the curve of the recorded scores crosses the target.
    pub estimate: Option<Crossing>,
    /// The crossing of each resample (extended log10 axis).
    pub crossings: Vec<f64>,
    /// The 95% percentile interval of `crossings` (log10 d; open at both ends without
    /// resamples).
    pub interval: Interval,
    /// Whether the d90 is a measurement, or why not.
    pub determination: Determination,
    /// The smallest and largest `d` probed (what an open end of the interval is open past).
    pub probed: (usize, usize),
    /// The probes (by `d`, increasing) where some seed's best run lies at the lowest or the highest
    /// rate they trained ([`probe_edges`]): their rates do not bracket the best, so the d90 is no
    /// measurement.
    pub unbracketed: Vec<usize>,
    /// The baseline's median on each resample.
    pub baselines: Vec<Option<f64>>,
}

impl Measured {
    /// Reads `record` with its runs (by key), resamples it [`RESAMPLES`] times when it has a
    /// crossing and anything varies, and determines it with the plan's factor.
    pub fn of(record: &SearchRecord, runs: &BTreeMap<&str, &RunRecord>) -> Measured {
        let (search, reading) = Search::from_record(record, |key| runs.get(key).copied());
        let estimate = search.estimate();
        let resampled = estimate.is_some() && search.resamples_anything();
        let crossings = if resampled { search.crossings(RESAMPLES) } else { Vec::new() };
        let interval = Interval::percentile(&crossings);
        let factor = record.plan.search.determined_factor();
        let determination = if estimate.is_some() && !resampled {
            Determination::NothingToResample
        } else {
            Determination::of(estimate, &interval, factor)
        };
        let probed =
            (search.probes.first().map_or(0, |probe| probe.d), search.probes.last().map_or(0, |probe| probe.d));
        let baselines = (0..RESAMPLES).map(|b| search.resampled_baseline(b)).collect();
        let mut unbracketed: Vec<usize> =
            probe_edges(record, runs).into_iter().filter(|(_, edges)| !edges.is_empty()).map(|(d, _)| d).collect();
        unbracketed.sort_unstable();
        Measured { determination, search, reading, estimate, crossings, interval, probed, unbracketed, baselines }
    }

    /// Whether the d90 is determined ([`Determination::Determined`]) and every probe's rates
    /// bracket its best run (a d90 read off a probe that could have scored higher at another rate
    /// is an artifact of the grid).
    pub fn determined(&self) -> bool {
        self.determination.is_determined() && self.unbracketed.is_empty()
    }

    /// `determined`, or `undetermined: <reason>`: the interval's reason
    /// ([`Determination::label`]), else the probes whose rates do not bracket their best.
    pub fn determination_label(&self) -> String {
        match (self.determination.is_determined(), self.unbracketed_label()) {
            (true, Some(at)) => format!("undetermined: the rates do not bracket the best run at {at}"),
            _ => self.determination.label(),
        }
    }

    /// `d = 322, 1861`: the probes whose rates do not bracket their best run; `None` when all do.
    pub fn unbracketed_label(&self) -> Option<String> {
        (!self.unbracketed.is_empty())
            .then(|| format!("d = {}", self.unbracketed.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")))
    }

    /// The d90 on the curve, when it crosses inside the range.
    pub fn d90(&self) -> Option<f64> {
        self.estimate.and_then(|crossing| crossing.d())
    }

    /// `[1037, >19306]`: the interval's ends as `d`, open ends as bounds past the probes.
    pub fn interval_label(&self) -> Option<String> {
        self.estimate?;
        if self.crossings.is_empty() {
            return None;
        }
        let end = |value: f64| {
            if value == f64::NEG_INFINITY {
                format!("<={}", self.probed.0)
            } else if value == f64::INFINITY {
                format!(">{}", self.probed.1)
            } else {
                format!("{:.0}", 10f64.powf(value))
            }
        };
        Some(format!("[{}, {}]", end(self.interval.low), end(self.interval.high)))
    }

    /// Whether the d90 lies below the fixed line `line` (log10 d), read on its interval with open
    /// ends as the bounds they are: `<=d` (every resample crossing at or below the smallest probe) is
    /// at most that probe, and `>d` at least the largest one. `held` when the upper end lies below
    /// the line, `not held` when the lower end lies above it, `inconclusive` otherwise (and without
    /// an interval).
    pub fn below(&self, line: f64) -> Verdict {
        let (smallest, largest) = ((self.probed.0 as f64).log10(), (self.probed.1 as f64).log10());
        let (low, high) = (self.interval.low, self.interval.high);
        if self.crossings.is_empty() || low.is_nan() || high.is_nan() {
            return Verdict::Inconclusive;
        }
        let at_most = if high == f64::NEG_INFINITY { Some(smallest) } else { high.is_finite().then_some(high) };
        let at_least = if low == f64::INFINITY { Some(largest) } else { low.is_finite().then_some(low) };
        if at_most.is_some_and(|high| high < line) {
            Verdict::Held
        } else if at_least.is_some_and(|low| low > line) {
            Verdict::NotHeld
        } else {
            Verdict::Inconclusive
        }
    }

    /// `per-example`, or `seed-only: <why>`.
    pub fn reading_label(&self) -> String {
        match &self.reading {
            Reading::PerExample => "per-example".to_owned(),
            Reading::SeedOnly(why) => format!("seed-only: {why}"),
        }
    }

    /// The baseline's 95% interval over the resamples.
    pub fn baseline_interval(&self) -> Interval {
        let values: Vec<f64> = self.baselines.iter().map(|value| value.unwrap_or(f64::NAN)).collect();
        Interval::percentile(&values)
    }
}

/// `first / second` of two searches' d90s over their resamples (paired when their seeds and dev
/// split agree: the draws are the same).
pub fn ratio(first: &Measured, second: &Measured) -> Ratio {
    compare::ratio(
        &first.crossings,
        &second.crossings,
        (
            first.estimate.map(|c| c.log10()).filter(|v| v.is_finite()),
            second.estimate.map(|c| c.log10()).filter(|v| v.is_finite()),
        ),
    )
}

/// Whether two searches are resampled together (the same seed count and dev split).
pub fn paired(first: &Measured, second: &Measured) -> bool {
    first.search.baseline.len() == second.search.baseline.len()
        && first.search.probes.first().map(|p| p.seeds.len()) == second.search.probes.first().map(|p| p.seeds.len())
        && first.search.examples == second.search.examples
}

/// The difference of two baselines over their resamples (`first - second`), with its interval.
pub fn baseline_difference(first: &Measured, second: &Measured) -> (Option<f64>, Interval) {
    let point = first.search.target().zip(second.search.target()).map(|(a, b)| (a - b) / first.search.threshold);
    let values: Vec<f64> = first
        .baselines
        .iter()
        .zip(&second.baselines)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => a - b,
            _ => f64::NAN,
        })
        .collect();
    (point, Interval::percentile(&values))
}

/// Whether pre-training helps full fine-tuning at each checkpoint of a trajectory or size point:
/// its baseline above the update-0 (random-init) baseline beyond the interval of the difference.
#[derive(Debug, Clone, PartialEq)]
pub enum Precondition {
    /// Every checkpoint's baseline lies above the random init's.
    Met(String),
    /// Some do not: the numbers.
    NotMet(String),
    /// Not measured, and why (no random-init baseline of the same task in these results, or
    /// baselines of one seed without per-example outcomes: no interval).
    NotMeasured(String),
}

impl Precondition {
    /// `met: <numbers>`, `not met: ... (<numbers>)` or `not measured: <why>`.
    pub fn label(&self) -> String {
        match self {
            Precondition::Met(numbers) => format!("met: {numbers}"),
            Precondition::NotMet(numbers) => {
                format!("not met: pre-training does not improve full fine-tuning ({numbers})")
            }
            Precondition::NotMeasured(why) => format!("not measured: {why}"),
        }
    }
}

/// The precondition of `points` (their searches) against `random_init`.
pub fn precondition(points: &[(&SearchRecord, &Measured)], random_init: Option<&Measured>) -> Precondition {
    let Some(random_init) = random_init else {
        return Precondition::NotMeasured("no update-0 (random-init) baseline in these results".to_owned());
    };
    let varies = |measured: &Measured| measured.search.per_example() || measured.search.baseline.len() >= 2;
    if !varies(random_init) || points.iter().any(|(_, measured)| !varies(measured)) {
        return Precondition::NotMeasured(
            "baselines of one seed without per-example outcomes have no interval to compare".to_owned(),
        );
    }
    let mut numbers = Vec::new();
    let mut all = true;
    for (record, measured) in points {
        let (point, interval) = baseline_difference(measured, random_init);
        let helps = interval.low > 0.0;
        all &= helps;
        let update =
            record.plan.pretraining.as_ref().map_or(record.plan.model.clone(), |p| format!("update {}", p.update));
        numbers.push(format!(
            "{update}: baseline {} vs random init {}, difference {} [{:+.4}, {:+.4}]",
            record.baseline.score.map_or("-".to_owned(), |s| format!("{s:.4}")),
            random_init.search.target().map_or("-".to_owned(), |t| format!("{:.4}", t / random_init.search.threshold)),
            point.map_or("-".to_owned(), |p| format!("{p:+.4}")),
            interval.low,
            interval.high
        ));
    }
    if all { Precondition::Met(numbers.join("; ")) } else { Precondition::NotMet(numbers.join("; ")) }
}

/// A trend of log10 d90 against log10 `x` over determined points: the slope of the point
/// estimates, its interval over resamples, and the verdict on a negative slope.
pub fn slope_trend(points: &[(f64, &Measured)]) -> Option<compare::Trend> {
    let points: Vec<&(f64, &Measured)> = points.iter().filter(|(_, measured)| measured.determined()).collect();
    if points.len() < 2 {
        return None;
    }
    let x: Vec<f64> = points.iter().map(|(x, _)| x.log10()).collect();
    let y: Vec<f64> = points.iter().map(|(_, measured)| measured.estimate.map_or(f64::NAN, |c| c.log10())).collect();
    let point = compare::slope(&x, &y);
    let resampled: Vec<f64> = (0..RESAMPLES)
        .map(|b| compare::slope(&x, &points.iter().map(|(_, measured)| measured.crossings[b]).collect::<Vec<_>>()))
        .collect();
    Some(compare::trend(point, &resampled, true))
}

/// Spearman's rho of d90 (determined searches) against `values`, over resamples of the d90s;
/// the verdict on the claimed sign.
pub fn spearman_trend(points: &[(&Measured, f64)], claim_positive: bool) -> Option<compare::Trend> {
    if points.len() < 3 {
        return None;
    }
    let values: Vec<f64> = points.iter().map(|(_, value)| *value).collect();
    let point = compare::spearman(
        &points.iter().map(|(measured, _)| measured.estimate.map_or(f64::NAN, |c| c.log10())).collect::<Vec<_>>(),
        &values,
    );
    if point.is_nan() {
        return None;
    }
    let resampled: Vec<f64> = (0..RESAMPLES)
        .map(|b| {
            compare::spearman(&points.iter().map(|(measured, _)| measured.crossings[b]).collect::<Vec<_>>(), &values)
        })
        .collect();
    Some(compare::trend(point, &resampled, !claim_positive))
}

/// One row of the Claims table.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The claim, lettered as the table lists it.
    pub claim: &'static str,
    /// `held`, `not held` or `inconclusive`, or why it is not tested.
    pub verdict: String,
    /// The numbers behind the verdict, cell by cell.
    pub numbers: String,
    /// The report section that shows them.
    pub section: &'static str,
}

/// Each probe of `record` (by `d`) with the ends of its rates where some seed's best run lies
/// ([`d90::search::best_rate_edges`]; empty when the rates bracket every seed's best), a seed's
/// best taken among runs that neither diverged nor predicted one class. Only probes with such a
/// run and two rates or more are listed.
pub fn probe_edges(record: &SearchRecord, runs: &BTreeMap<&str, &RunRecord>) -> Vec<(usize, Vec<GridEdge>)> {
    let mut edges = Vec::new();
    for probe in &record.probes {
        let scored: Vec<(u64, f64, Option<f64>)> = probe
            .runs
            .iter()
            .filter_map(|key| runs.get(key.as_str()).copied())
            .map(|run| (run.spec.train.seeds.data, run.spec.train.lr, run.counting_score()))
            .collect();
        if scored.iter().all(|(_, _, score)| score.is_none()) || scored.iter().all(|&(_, rate, _)| rate == scored[0].1)
        {
            continue;
        }
        edges.push((probe.d, best_rate_edges(&scored)));
    }
    edges
}

/// The verdict on "left <= right" where either side may be an upper bound (`left_bound`,
/// `right_bound`): a d90 with a probe whose rates do not bracket its best run, which a better rate
/// could only lower. A bound may be the lower side of `held` or the higher side of `not held`;
/// where the verdict rests on the other side of a bound, it is `inconclusive`.
pub fn verdict_with_bounds(verdict: Verdict, left_bound: bool, right_bound: bool) -> Verdict {
    match verdict {
        Verdict::Held if right_bound => Verdict::Inconclusive,
        Verdict::NotHeld if left_bound => Verdict::Inconclusive,
        verdict => verdict,
    }
}

/// A verdict over several cells: `held` or `not held` when every cell says so, else
/// `inconclusive`.
pub fn combined(verdicts: &[Verdict]) -> Verdict {
    if !verdicts.is_empty() && verdicts.iter().all(|v| *v == Verdict::Held) {
        Verdict::Held
    } else if !verdicts.is_empty() && verdicts.iter().all(|v| *v == Verdict::NotHeld) {
        Verdict::NotHeld
    } else {
        Verdict::Inconclusive
    }
}

/// Claim (a): each d90's interval against 1% of its model's parameters (at least 100x fewer trained
/// parameters than full fine-tuning). The claim is one-sided, so it reads the interval as a
/// comparison does: an interval open below (`<=d`) or wider than the determined factor still lies
/// below D/100 when its upper end does; one open above (`>d`) decides nothing unless the largest
/// probe already lies above D/100 (then `not held`). A d90 whose head alone reaches the target is
/// not counted. A d90 with a probe whose rates do not bracket its best run is an upper bound (a
/// better rate could only have raised that probe's score): `held` stands, `not held` becomes
/// `inconclusive`.
pub fn small_claim(searches: &[(&SearchRecord, &Measured)]) -> Claim {
    let measured: Vec<&(&SearchRecord, &Measured)> = searches
        .iter()
        .filter(|(record, _)| record.plan.method.mode != Mode::Full)
        .filter(|(record, _)| !matches!(crate::reported_outcome(record), results::Outcome::Unable { .. }))
        .collect();
    let claim = "(a) d90 is small: its 95% interval lies below 1% of the model's parameters D";
    if measured.is_empty() {
        return Claim {
            claim,
            verdict: "not measured in these results".to_owned(),
            numbers: "no SAID or DID search".to_owned(),
            section: "Table 1",
        };
    }
    // A d90 whose head alone reaches the target cannot be attributed to the encoder: the head on
    // the frozen encoder's features already reaches it.
    let head_reaches = |record: &SearchRecord| record.head_reaches_target() == Some(true);
    let flagged: Vec<String> = measured
        .iter()
        .filter(|(record, _)| head_reaches(record))
        .map(|(record, _)| {
            let control = record.control.as_ref().expect("flagged searches have a control");
            format!(
                "{} {} {}: the head alone ({} parameters) scores {} against the target {}",
                short(&record.plan.model),
                record.plan.task,
                record.plan.method.name,
                control.trainable_parameters,
                control.score.map_or("-".to_owned(), |score| format!("{score:.4}")),
                record.baseline.target.map_or("-".to_owned(), |target| format!("{target:.4}")),
            )
        })
        .collect();
    let counted: Vec<_> = measured.iter().filter(|(record, _)| !head_reaches(record)).collect();
    // Rates that do not bracket a probe's best can only have cost it score, so such a d90 is an
    // upper bound on what a bracketing grid would find: below the line it still is, above it
    // decides nothing.
    let verdicts: Vec<Verdict> = counted
        .iter()
        .map(|(record, m)| {
            let limit = (record.total_parameters as f64 / 100.0).log10();
            verdict_with_bounds(m.below(limit), !m.unbracketed.is_empty(), false)
        })
        .collect();
    let cells: Vec<String> = counted
        .iter()
        .zip(&verdicts)
        .map(|((record, m), verdict)| {
            let head = record.control.as_ref().and_then(|c| c.score).map_or(String::new(), |score| {
                format!(", head alone {score:.4} < target {:.4}", record.baseline.target.unwrap_or(f64::NAN))
            });
            let unbracketed = m
                .unbracketed_label()
                .map_or(String::new(), |at| format!(", an upper bound: the rates do not bracket the best run at {at}"));
            format!(
                "{} {} {}: d90 {} {} vs D/100 = {} ({}{head}{unbracketed})",
                short(&record.plan.model),
                record.plan.task,
                record.plan.method.name,
                m.estimate.map_or("-".to_owned(), |c| c.label()),
                m.interval_label().unwrap_or_else(|| "(no interval)".to_owned()),
                record.total_parameters / 100,
                verdict.label()
            )
        })
        .collect();
    let verdict = if counted.is_empty() {
        "inconclusive: the head alone reaches every target".to_owned()
    } else {
        combined(&verdicts).label().to_owned()
    };
    let mut numbers = cells.join("; ");
    if !flagged.is_empty() {
        if !numbers.is_empty() {
            numbers.push_str("; ");
        }
        numbers.push_str(&format!("not counted, the head alone reaches the target: {}", flagged.join("; ")));
    }
    Claim { claim, verdict, numbers, section: "Table 1" }
}

/// A model id without its owner (`FacebookAI/roberta-base` -> `roberta-base`).
pub fn short(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A d90 against a fixed line reads an open end as the bound it is: `<=100` lies below a line
    /// above 100, `>10000` above a line below 10,000, and neither says more.
    #[test]
    fn below_reads_open_ends_as_bounds() {
        let measured = |low: f64, high: f64| Measured {
            search: Search { probes: vec![], baseline: vec![], threshold: 0.9, majority: 0.5, examples: None },
            reading: Reading::PerExample,
            estimate: None,
            crossings: vec![3.0],
            interval: Interval { low, high },
            determination: Determination::NoEstimate,
            probed: (100, 10_000),
            unbracketed: vec![],
            baselines: vec![],
        };
        let (open_below, open_above) = (f64::NEG_INFINITY, f64::INFINITY);
        let line = 5.0;
        assert_eq!(measured(open_below, 3.0).below(line), Verdict::Held);
        assert_eq!(measured(open_below, open_below).below(line), Verdict::Held);
        assert_eq!(measured(open_below, open_below).below(1.5), Verdict::Inconclusive);
        assert_eq!(measured(3.0, open_above).below(line), Verdict::Inconclusive);
        assert_eq!(measured(open_above, open_above).below(line), Verdict::Inconclusive);
        assert_eq!(measured(open_above, open_above).below(3.5), Verdict::NotHeld);
        assert_eq!(measured(5.5, 6.0).below(line), Verdict::NotHeld);
        assert_eq!(measured(4.0, 5.5).below(line), Verdict::Inconclusive);
        let without_resamples = Measured { crossings: vec![], ..measured(open_below, open_above) };
        assert_eq!(without_resamples.below(line), Verdict::Inconclusive);
    }

    /// A closed, narrow interval is no measurement while a probe's rates do not bracket its best.
    #[test]
    fn an_unbracketed_probe_leaves_a_d90_undetermined() {
        let mut measured = Measured {
            search: Search { probes: vec![], baseline: vec![], threshold: 0.9, majority: 0.5, examples: None },
            reading: Reading::PerExample,
            estimate: Some(Crossing::At(2.5)),
            crossings: vec![2.4, 2.6],
            interval: Interval { low: 2.4, high: 2.6 },
            determination: Determination::Determined,
            probed: (100, 10_000),
            unbracketed: vec![],
            baselines: vec![],
        };
        assert!(measured.determined());
        assert_eq!((measured.determination_label().as_str(), measured.unbracketed_label()), ("determined", None));
        measured.unbracketed = vec![322, 1861];
        assert!(!measured.determined());
        assert_eq!(
            measured.determination_label(),
            "undetermined: the rates do not bracket the best run at d = 322, 1861"
        );
        // An interval's own reason comes first.
        measured.determination = Determination::OpenAbove;
        assert_eq!(measured.determination_label(), "undetermined: interval open above");
    }

    /// An upper bound (rates that do not bracket a probe's best) may sit below a `held` and above a
    /// `not held`, never the other way.
    #[test]
    fn an_upper_bound_decides_only_the_side_it_bounds() {
        use Verdict::{Held, Inconclusive, NotHeld};
        for verdict in [Held, NotHeld, Inconclusive] {
            assert_eq!(verdict_with_bounds(verdict, false, false), verdict);
        }
        assert_eq!(verdict_with_bounds(Held, true, false), Held);
        assert_eq!(verdict_with_bounds(Held, false, true), Inconclusive);
        assert_eq!(verdict_with_bounds(Held, true, true), Inconclusive);
        assert_eq!(verdict_with_bounds(NotHeld, false, true), NotHeld);
        assert_eq!(verdict_with_bounds(NotHeld, true, false), Inconclusive);
        assert_eq!(verdict_with_bounds(Inconclusive, true, true), Inconclusive);
    }

    #[test]
    fn combined_verdicts() {
        assert_eq!(combined(&[Verdict::Held, Verdict::Held]), Verdict::Held);
        assert_eq!(combined(&[Verdict::NotHeld]), Verdict::NotHeld);
        assert_eq!(combined(&[Verdict::Held, Verdict::Inconclusive]), Verdict::Inconclusive);
        assert_eq!(combined(&[]), Verdict::Inconclusive);
    }
}
