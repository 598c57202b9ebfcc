//! `cargo xtask fetch [--mirror DIR]... [--offline] [ASSET...]`: bring data and checkpoints into
//! the verified cache (the `datasets` crate's command, run through cargo).

use std::path::Path;

use anyhow::Result;

use crate::run_checked;

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    // Mirror folders are relative to where the user typed the command, not to the project root.
    let mut forwarded = Vec::with_capacity(args.len());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        forwarded.push(arg.clone());
        if arg == "--mirror"
            && let Some(dir) = args.next()
        {
            forwarded.push(invoked_from.join(dir).display().to_string());
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_checked(
        std::process::Command::new(cargo)
            .args(["run", "--quiet", "--package", "datasets", "--bin", "datasets", "--", "fetch"])
            .args(forwarded),
    )
}
