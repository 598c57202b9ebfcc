//! `cargo xtask reproduce [--preset NAME] [--only EXP,...] [--device cpu|cuda] [--mirror DIR]
//! [--offline] [--shard i/n] [--out DIR]`: a preset end to end (release build of bench-suite):
//! fetch what it needs, run its searches with progress bars, print the d90 table.

use std::path::Path;

use anyhow::Result;

use crate::{cargo, paths_from_caller, run_checked, setup};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let libtorch = setup::ensure()?;
    run_checked(
        cargo(&libtorch)
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "bench-suite",
                "--bin",
                "bench-suite",
                "--",
                "reproduce",
            ])
            .args(paths_from_caller(args, invoked_from)),
    )
}
