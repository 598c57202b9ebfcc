//! `cargo xtask report [--preset NAME] [--runs DIR] [--out DIR] [--check] [--compare OTHER_DIR
//! [--tolerance X]]`: the report of a preset from its result files (the `reports` crate, the only
//! one that links polars; debug build, which is fast enough for a few hundred result files).

use std::path::Path;

use anyhow::Result;

use crate::{cargo, paths_from_caller, run_checked, setup};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let mut args = paths_from_caller(args, invoked_from);
    if !args.iter().any(|arg| arg == "--preset") {
        args.extend(["--preset".to_owned(), "quick".to_owned()]);
    }
    // The reports crate links no libtorch, but one environment for every cargo call keeps the
    // build cache shared.
    let libtorch = setup::ensure()?;
    run_checked(cargo(&libtorch).args(["run", "--quiet", "--package", "reports", "--"]).args(args))
}
