//! `cargo xtask fetch [ARGS]`: bring data and checkpoints into the verified cache; `cargo xtask
//! pin REPO...`: print manifest entries for hub checkpoints pinned to a commit (the `datasets`
//! crate's `fetch` and `pin`, run through cargo; their `--help` documents the arguments).

use std::path::Path;

use anyhow::Result;

use crate::{paths_from_caller, run_checked};

/// Runs the `datasets` binary's `subcommand` (`fetch` or `pin`) with `args`.
pub fn run(subcommand: &str, args: &[String], invoked_from: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_checked(
        std::process::Command::new(cargo)
            .args(["run", "--quiet", "--package", "datasets", "--bin", "datasets", "--", subcommand])
            .args(paths_from_caller(args, invoked_from)),
    )
}
