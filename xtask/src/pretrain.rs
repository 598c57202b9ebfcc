//! `cargo xtask pretrain [ARGS]`: MLM pre-training from a YAML file (release build of
//! bench-suite; arguments are forwarded, `bench-suite pretrain --help` documents them).

use std::path::Path;

use anyhow::Result;

use crate::{bench_suite_release, paths_from_caller, run_checked, setup};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let libtorch = setup::ensure()?;
    run_checked(bench_suite_release(&libtorch, "pretrain").args(paths_from_caller(args, invoked_from)))
}
