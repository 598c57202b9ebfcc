//! `cargo xtask test`: the one test command (CI's `.ci/run` calls exactly this).
//!
//! setup, then `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test` over the workspace,
//! all with the libtorch environment. Real-data tests are switched on when their inputs exist:
//! `../shared/mirror` (real GLUE files and a real checkpoint) sets `INTRINSIC_BENCH_TEST_MIRROR`.
//! NVRTC is installed into the cache first (best effort), so the fused FWHT kernel's source is
//! compiled by a test; without it that test says why it skipped.

use anyhow::Result;

use crate::{cargo, run_checked, setup};

pub const USAGE: &str = "cargo xtask test
  setup, cargo fmt --check, clippy -D warnings, cargo test over the workspace (no flags); real-data
  tests run when ../shared/mirror is beside the project";

pub fn run() -> Result<()> {
    let libtorch = setup::ensure()?;
    if let Err(err) = setup::ensure_nvrtc() {
        eprintln!("NVRTC not installed, the kernel compile test will skip: {err:#}");
    }
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
