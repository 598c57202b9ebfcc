//! `cargo xtask report [ARGS]`: the report of a preset from its result files (the `reports`
//! crate, the only one that links polars; debug build, which is fast enough for a few hundred
//! result files). Arguments are forwarded; `reports --help` documents them.

use std::path::Path;

use anyhow::Result;

use crate::{cargo, paths_from_caller, run_checked, setup};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let args = paths_from_caller(args, invoked_from);
    // The reports crate links no libtorch, but one environment for every cargo call keeps the
    // build cache shared.
    let libtorch = setup::ensure()?;
    run_checked(cargo(&libtorch).args(["run", "--quiet", "--package", "reports", "--"]).args(args))
}
