//! `cargo xtask test`: the one test command (CI's `.ci/run` calls exactly this).
//!
//! setup, then `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test` over the workspace,
//! all with the libtorch environment. Real-data tests are switched on when their inputs exist:
//! `../shared/mirror` (real GLUE files and a real checkpoint) sets `INTRINSIC_BENCH_TEST_MIRROR`.

use anyhow::Result;

use crate::{cargo, run_checked, setup};

pub fn run() -> Result<()> {
    let libtorch = setup::ensure()?;
    run_checked(cargo(&libtorch).args(["fmt", "--all", "--", "--check"]))?;
    run_checked(cargo(&libtorch).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let mut test = cargo(&libtorch);
    test.args(["test", "--workspace"]);
    match std::path::Path::new("../shared/mirror").canonicalize() {
        Ok(mirror) if mirror.join("SHA256SUMS").exists() => {
            eprintln!("real-data tests on: mirror {}", mirror.display());
            test.env("INTRINSIC_BENCH_TEST_MIRROR", mirror);
        }
        _ => eprintln!("real-data tests off: no ../shared/mirror beside the project"),
    }
    run_checked(&mut test)
}
