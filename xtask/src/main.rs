//! `cargo xtask`: the front door of intrinsic-bench (setup, tests, benchmarks, experiments).
//!
//! A flat dispatch: parse flags, go to the project root, one arm per subcommand, one file per
//! subcommand. Everything heavy runs by shelling out to `$CARGO` with the libtorch environment
//! that `setup` prepares.

mod bench;
mod fetch;
mod finetune;
mod gpu_check;
mod report;
mod reproduce;
mod setup;
mod slurm;
mod test;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  setup            install libtorch (torch==2.11.0 wheel) into the cache, or check the user's own,
                   and NVRTC 13.0 (compiles the fused CUDA kernel in tests; needs no GPU)
  test             the one test command: setup, fmt --check, clippy -D warnings, cargo test
  bench fastfood   Fastfood/FWHT benchmark, release build, ratios measured in one process
  bench criterion  the criterion benches of bench-suite (cargo bench -p bench-suite)
  fetch [--mirror DIR]... [--offline] [ASSET...]
                   bring datasets and checkpoints into the verified cache (default: all assets)
  finetune --model ASSET --task TASK --mode full|did|said [--d N] [--lr X] [--epochs N] [--batch-size N]
           [--max-len N] [--max-train-examples N] [--length-buckets N] [--device cpu|cuda] [--seed N]
           [--scope global|per_tensor]
           [--precision f32|bf16] [--run-dir DIR] [--mirror DIR] [--offline]
                   fine-tune once and print the result as JSON (release build)
  reproduce [--preset smoke|quick|nightly|paper | --spec FILE] [--only EXP,...] [--device cpu|cuda]
            [--mirror DIR]... [--offline] [--shard i/n] [--out DIR] [--check-only]
                   run a preset's d90 searches (default: quick), resumable; results in runs/<preset>/,
                   then its report in reports/<preset>/
  report [--preset NAME] [--runs DIR] [--out DIR] [--check] [--compare OTHER_DIR [--tolerance X]]
                   regenerate a preset's report from its results; --check fails on drift,
                   --compare lists Table 1 cells that moved beyond the tolerance
  slurm --preset NAME [--partition P] [--gpus-per-task N] [--array N] [--time HH:MM:SS]
                   write an sbatch array script whose tasks run the preset's shards
  gpu-check        build the release binary and a script into gpu-check/ for the one prepared GPU
                   check (fused kernel correctness and speed, bf16, training step); prints how to run it
  env              print the environment that xtask gives to cargo (for running cargo by hand)

environment:
  INTRINSIC_BENCH_HOME   cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/intrinsic-bench)
  INTRINSIC_BENCH_MIRROR read-only mirror folders for `fetch`, separated by `:`
  HF_ENDPOINT            Hugging Face endpoint (default https://huggingface.co)
  LIBTORCH               use this libtorch 2.11.0 instead of installing one
  LIBTORCH_USE_PYTORCH=1 use the libtorch of the importable python3 torch (must be 2.11.0)
";

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|arg| arg == "-h" || arg == "--help") {
        print!("{USAGE}");
        return Ok(());
    }
    let command = args.remove(0);
    let invoked_from = std::env::current_dir().context("read the current folder")?;
    std::env::set_current_dir(project_root()).context("go to the project root")?;
    match command.as_str() {
        "setup" => {
            no_more_args(&args)?;
            let libtorch = setup::ensure()?;
            println!("libtorch {} ready at {}", setup::TORCH_VERSION, libtorch.dir.display());
            let nvrtc = setup::ensure_nvrtc()?;
            println!("NVRTC {} ready at {}", setup::NVRTC_VERSION, nvrtc.display());
            Ok(())
        }
        "test" => {
            no_more_args(&args)?;
            test::run()
        }
        "bench" => bench::run(&args),
        "fetch" => fetch::run(&args, &invoked_from),
        "finetune" => finetune::run(&args, &invoked_from),
        "reproduce" => reproduce::run(&args, &invoked_from),
        "report" => report::run(&args, &invoked_from),
        "slurm" => slurm::run(&args),
        "gpu-check" => gpu_check::run(&args),
        "env" => {
            no_more_args(&args)?;
            let libtorch = setup::ensure()?;
            for (key, value) in libtorch.cargo_env() {
                println!("export {key}={value:?}");
            }
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn no_more_args(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("unexpected argument `{extra}`\n\n{USAGE}");
    }
    Ok(())
}

/// The checkout `cargo xtask` was invoked in: `cargo run` sets `CARGO_MANIFEST_DIR` for the process
/// it starts, which is right even when another checkout sharing `CARGO_TARGET_DIR` built this
/// binary last (the compile-time value would then point at that other checkout and build its code).
fn project_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// `$CARGO` as cargo gave it to us (so the same toolchain builds everything), with libtorch's
/// environment set.
fn cargo(libtorch: &setup::Libtorch) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.envs(libtorch.cargo_env());
    command
}

/// `cargo run --release` of the `bench-suite` binary's `subcommand` (quiet: its own output is the
/// point), with libtorch's environment.
fn bench_suite_release(libtorch: &setup::Libtorch, subcommand: &str) -> Command {
    let mut command = cargo(libtorch);
    command.args(["run", "--quiet", "--release", "--package", "bench-suite", "--bin", "bench-suite", "--", subcommand]);
    command
}

/// `cargo build --release` of the `bench-suite` binary (for commands that run it themselves).
fn build_bench_suite_release(libtorch: &setup::Libtorch) -> Result<()> {
    run_checked(cargo(libtorch).args(["build", "--release", "--package", "bench-suite", "--bin", "bench-suite"]))
}

/// The arguments with the values of path flags (`--mirror`, `--run-dir`, `--out`, `--spec`,
/// `--runs`, `--compare`) made relative to the folder the
/// user typed the command in (xtask itself runs from the project root).
fn paths_from_caller(args: &[String], invoked_from: &Path) -> Vec<String> {
    let mut resolved = Vec::with_capacity(args.len());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        resolved.push(arg.clone());
        if ["--mirror", "--run-dir", "--out", "--spec", "--runs", "--compare"].contains(&arg.as_str())
            && let Some(path) = args.next()
        {
            resolved.push(invoked_from.join(path).display().to_string());
        }
    }
    resolved
}

/// Runs a command, echoing it first, and fails with its exit status.
fn run_checked(command: &mut Command) -> Result<()> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("$ {shown}");
    let status = command.status().with_context(|| format!("start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}
