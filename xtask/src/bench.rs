//! `cargo xtask bench ...`: benchmarks, always release builds.
//!
//! `bench` alone or `bench all [flags]` runs every part below and more in one run and prints one
//! table (`bench_all.rs`). `bench fastfood [flags]` runs the suite's own benchmark binary, which measures our FWHT and
//! Fastfood against a memcpy and against the authors' per-stage algorithm in one process and
//! prints the ratios. `bench train-step [flags]` measures SAID and DID training steps against full
//! fine-tuning steps (time and peak memory). `bench criterion [filter]` runs the criterion benches.

use anyhow::{Result, bail};

use std::path::Path;

use crate::{bench_suite_release, cargo, paths_from_caller, run_checked, setup};

const USAGE: &str = "cargo xtask bench [all|fastfood|train-step|criterion] [args]
  all         (the default) every speed figure in one run and one table, each against HF
              transformers or its floor in that run (cargo xtask bench all --help)
  fastfood    FWHT and Fastfood timings against a memcpy and the authors' algorithm, in one
              process (bench-suite bench-fastfood; --help for its flags)
  train-step  SAID and DID training steps against full fine-tuning: time and peak memory
              (bench-suite bench-train-step; --help for its flags)
  criterion   the criterion benches of bench-suite ([filter])";

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let (which, rest) = match args.split_first() {
        Some((which, rest)) if !which.starts_with("--") || crate::is_help(which) => (which.as_str(), rest),
        _ => ("all", args),
    };
    if crate::is_help(which) {
        println!("usage: {USAGE}");
        return Ok(());
    }
    if which == "all" {
        if rest.iter().any(|arg| crate::is_help(arg)) {
            println!("usage: {}", crate::bench_all::USAGE);
            return Ok(());
        }
        // It checks its flags and inputs before installing or building anything.
        return crate::bench_all::run(rest, invoked_from);
    }
    let libtorch = setup::ensure()?;
    match which {
        "fastfood" => {
            run_checked(bench_suite_release(&libtorch, "bench-fastfood").args(paths_from_caller(rest, invoked_from)))
        }
        "train-step" => {
            run_checked(bench_suite_release(&libtorch, "bench-train-step").args(paths_from_caller(rest, invoked_from)))
        }
        "criterion" => run_checked(
            cargo(&libtorch).args(["bench", "--package", "bench-suite", "--bench", "bench_main", "--"]).args(rest),
        ),
        other => bail!("unknown benchmark `{other}`\nusage: {USAGE}"),
    }
}
