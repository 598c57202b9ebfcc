//! `cargo xtask fetch [--mirror DIR]... [--offline] [ASSET...]`: bring data and checkpoints into
//! the verified cache (the `datasets` crate's command, run through cargo).

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
