//! `cargo xtask reproduce [--preset NAME | --spec FILE] [--only EXP,...] [--device cpu|cuda]
//! [--mirror DIR] [--offline] [--shard i/n] [--out DIR] [--check-only]`: a preset end to end:
//! fetch what it needs, run its searches with progress bars and print the d90 table (release
//! build of bench-suite), then write its report to `reports/<preset>/` (the `reports` crate).
//! `--check-only` checks the plan and exits 0, running nothing else.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{bench_suite_release, cargo, paths_from_caller, run_checked, setup};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let libtorch = setup::ensure()?;
    let args = paths_from_caller(args, invoked_from);
    run_checked(bench_suite_release(&libtorch, "reproduce").args(&args))?;
    if !writes_report(&args) {
        return Ok(());
    }
    // The same names bench-suite derives: the preset (or the spec file's stem) and its results.
    let value = |flag: &str| args.iter().position(|arg| arg == flag).and_then(|idx| args.get(idx + 1)).cloned();
    let name = match (value("--preset"), value("--spec")) {
        (Some(preset), _) => preset,
        (None, Some(spec)) => {
            Path::new(&spec).file_stem().map_or("spec".to_owned(), |stem| stem.to_string_lossy().into_owned())
        }
        (None, None) => "quick".to_owned(),
    };
    let runs = value("--out").map_or_else(|| PathBuf::from("runs").join(&name), PathBuf::from);
    run_checked(
        cargo(&libtorch).args(["run", "--quiet", "--package", "reports", "--", "--preset", &name, "--runs"]).arg(runs),
    )
}

/// Whether a reproduction ends with its report: not after `--check-only`, which checks the plan
/// and runs nothing (a report of no results would fail).
fn writes_report(args: &[String]) -> bool {
    !args.iter().any(|arg| arg == "--check-only")
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
    }
}
