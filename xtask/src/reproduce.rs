//! `cargo xtask reproduce [ARGS]`: a preset end to end: `bench-suite reproduce` (release build)
//! fetches what it needs, runs its searches with progress bars and prints the d90 table; then
//! `reports` writes the report of the same results. The arguments go to `bench-suite reproduce`
//! as they are (its `--help` documents them); the report is told only which results those were:
//! the `--preset` or `--spec` and the `--out` folder given, each binary defaulting the rest the
//! same way.

use std::path::Path;

use anyhow::Result;

use crate::{bench_suite_release, cargo, flag_value, is_help, paths_from_caller, run_checked, setup};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let libtorch = setup::ensure()?;
    let args = paths_from_caller(args, invoked_from);
    run_checked(bench_suite_release(&libtorch, "reproduce").args(&args))?;
    if !writes_report(&args) {
        return Ok(());
    }
    let mut report = cargo(&libtorch);
    report.args(["run", "--quiet", "--package", "reports", "--"]);
    for (flag, as_flag) in [("--preset", "--preset"), ("--spec", "--spec"), ("--out", "--runs")] {
        if let Some(value) = flag_value(&args, flag) {
            report.args([as_flag, &value]);
        }
    }
    run_checked(&mut report)
}

/// Whether a reproduction ends with its report: not after `--check-only`, which checks the plan
/// and runs nothing (a report of no results would fail), nor after `--help`.
fn writes_report(args: &[String]) -> bool {
    !args.iter().any(|arg| arg == "--check-only" || is_help(arg))
}

#[cfg(test)]
mod tests {
    use super::writes_report;

    #[test]
    fn check_only_writes_no_report() {
        let args = |text: &str| text.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert!(writes_report(&args("--preset smoke")));
        assert!(!writes_report(&args("--preset smoke --check-only")));
        assert!(!writes_report(&args("--check-only --spec my.yaml")));
        assert!(!writes_report(&args("--help")));
    }
}
