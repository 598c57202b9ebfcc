//! The specification of the d90 interval: in simulated experiments with a known d90 (shaped like
//! `quick` and `mrpc-cpu`), its 95% interval covers the truth in 90-99% of repeats at the seed
//! count the presets use, while the interval searches recorded before (seeds only, grid d90,
//! extremes of the resamples) and the same curve interval without dev-example resampling do not.
//! Prints every figure (`cargo test -p d90 --test coverage -- --nocapture`).

use d90::simulate::{MEASURED, MEASURED_QUICK, MEASURED_REPEATS, Scenario, coverage};

/// The presets' seed count (`seeds: [0, 1, 2]` in quick, nightly and paper).
const PRESET_SEEDS: usize = 3;

#[test]
fn the_95_percent_interval_covers_the_true_d90_95_percent_of_the_time() {
    for (scenario, measured) in [Scenario::quick(), Scenario::mrpc()].iter().zip(MEASURED) {
        let coverage = coverage(scenario, PRESET_SEEDS, MEASURED_REPEATS);
        println!("{coverage}");
        assert!(
            (0.90..=0.99).contains(&coverage.covered),
            "{}: the 95% interval covers the true d90 in {:.3} of {} repeats, outside [0.90, 0.99]",
            scenario.name,
            coverage.covered,
            coverage.repeats
        );
        // Today's interval fails the same test, and so does the curve's without dev examples.
        assert!(coverage.legacy_covered < 0.90, "legacy interval covers {:.3}", coverage.legacy_covered);
        assert!(coverage.seed_only_covered < 0.90, "seed-only interval covers {:.3}", coverage.seed_only_covered);
        // The figures reports quote are the ones measured.
        let (_, covered, mutual, seed_only, legacy) = measured;
        let quoted = [covered, mutual, seed_only, legacy];
        let now = [coverage.covered, coverage.mutual, coverage.seed_only_covered, coverage.legacy_covered];
        assert!(
            quoted.iter().zip(now).all(|(quoted, now)| (quoted - now).abs() < 5e-4),
            "d90::simulate::MEASURED quotes {quoted:?} for {}, the simulation gives {now:?}: update it",
            scenario.name
        );
    }
}

/// quick's two searches since its third design (two-epoch probes: saturating curves, three or
/// four probes each) keep the coverage; their intervals are closed at both ends in about half and
/// three quarters of repeats and determined in an eighth and under a third, which the preset's
/// header and the report quote.
#[test]
fn quick_designs_keep_the_coverage() {
    for (scenario, measured) in [Scenario::quick_said(), Scenario::quick_did()].iter().zip(MEASURED_QUICK) {
        let coverage = coverage(scenario, PRESET_SEEDS, MEASURED_REPEATS);
        println!("{coverage}");
        assert!((0.90..=0.99).contains(&coverage.covered), "{}: covers {:.3}", scenario.name, coverage.covered);
        assert!(coverage.seed_only_covered < 0.90, "seed-only interval covers {:.3}", coverage.seed_only_covered);
        let (_, covered, mutual, seed_only, legacy, closed, determined) = measured;
        let quoted = [covered, mutual, seed_only, legacy, closed, determined];
        let now = [
            coverage.covered,
            coverage.mutual,
            coverage.seed_only_covered,
            coverage.legacy_covered,
            coverage.closed,
            coverage.determined,
        ];
        assert!(
            quoted.iter().zip(now).all(|(quoted, now)| (quoted - now).abs() < 5e-4),
            "d90::simulate::MEASURED_QUICK quotes {quoted:?} for {}, the simulation gives {now:?}: update it",
            scenario.name
        );
    }
}
