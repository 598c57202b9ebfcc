//! `cargo xtask test`: the one test command (CI's `.ci/run` calls exactly this).
//!
//! setup, then `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test` over the workspace,
//! all with the libtorch environment.

use anyhow::Result;

use crate::{cargo, run_checked, setup};

pub fn run() -> Result<()> {
    let libtorch = setup::ensure()?;
    run_checked(cargo(&libtorch).args(["fmt", "--all", "--", "--check"]))?;
    run_checked(cargo(&libtorch).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run_checked(cargo(&libtorch).args(["test", "--workspace"]))?;
    Ok(())
}
