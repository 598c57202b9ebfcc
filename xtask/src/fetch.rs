//! `cargo xtask fetch [ARGS]`: bring data and checkpoints into the verified cache (the `datasets`
//! crate's `fetch`, run through cargo; its `--help` documents the arguments).

use std::path::Path;

use anyhow::Result;

use crate::{paths_from_caller, run_checked};

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_checked(
        std::process::Command::new(cargo)
            .args(["run", "--quiet", "--package", "datasets", "--bin", "datasets", "--", "fetch"])
            .args(paths_from_caller(args, invoked_from)),
    )
}
