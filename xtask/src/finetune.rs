//! `cargo xtask finetune --model ASSET --task TASK --mode full|did|said ...`: fine-tune once
//! (release build of bench-suite; flags as `bench-suite finetune` documents them).

use std::path::Path;

use anyhow::Result;

use crate::{cargo, paths_from_caller, run_checked, setup};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let libtorch = setup::ensure()?;
    run_checked(
        cargo(&libtorch)
            .args(["run", "--quiet", "--release", "--package", "bench-suite", "--bin", "bench-suite", "--", "finetune"])
            .args(paths_from_caller(args, invoked_from)),
    )
}
