//! `cargo xtask slurm --preset NAME [--partition P] [--gpus-per-task N] [--array N] [--time HH:MM:SS]`:
//! builds the release binary once (array tasks must not compile), checks the preset, and writes an
//! sbatch array script whose task `i` runs shard `i/N` of the preset into the shared `runs/`
//! folder (runs and searches are locked per key, so tasks never duplicate work, and a requeued
//! task resumes from its checkpoints). It prints how to submit and watch the job.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

use crate::{build_bench_suite_release, setup};

const USAGE: &str = "cargo xtask slurm --preset NAME [--partition P] [--gpus-per-task N] [--array N] [--time HH:MM:SS]
  --preset NAME        the preset whose shards the array tasks run (required)
  --partition P        the SLURM partition [default: the cluster's]
  --gpus-per-task N    [default: 1]
  --array N            array tasks, one shard each [default: 8]
  --time HH:MM:SS      per task [default: 24:00:00]";

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|arg| crate::is_help(arg)) {
        println!("usage: {USAGE}");
        return Ok(());
    }
    let mut preset = None;
    let mut partition = None;
    let mut gpus_per_task = 1usize;
    let mut array = 8usize;
    let mut time = "24:00:00".to_owned();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value\nusage: {USAGE}"))?;
        let number = || value.parse::<usize>().with_context(|| format!("{flag}: `{value}` is not a whole number"));
        match flag.as_str() {
            "--preset" => preset = Some(value.clone()),
            "--partition" => partition = Some(value.clone()),
            "--gpus-per-task" => gpus_per_task = number()?,
            "--array" => array = number()?,
            "--time" => time = value.clone(),
            other => bail!("unknown flag `{other}`\nusage: {USAGE}"),
        }
    }
    let preset = preset.context("--preset is required (e.g. --preset paper)")?;
    if array == 0 || gpus_per_task == 0 {
        bail!("--array and --gpus-per-task must be at least 1");
    }
    let libtorch = setup::ensure()?;
    build_bench_suite_release(&libtorch)?;
    let root = std::env::current_dir()?;
    let binary = root.join("target/release/bench-suite");
    // The spec is checked here, on the login node, not in N array tasks.
    let status = std::process::Command::new(&binary)
        .args(["reproduce", "--preset", &preset, "--check-only"])
        .status()
        .context("run bench-suite reproduce --check-only")?;
    if !status.success() {
        bail!("preset `{preset}` does not check out (see above); nothing written");
    }
    let out = root.join("runs").join(&preset);
    let logs = out.join("slurm");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let mut script = String::new();
    writeln!(script, "#!/bin/bash")?;
    writeln!(
        script,
        "# Written by `cargo xtask slurm --preset {preset}`: shard i/{array} of the preset per array task."
    )?;
    writeln!(script, "#SBATCH --job-name=intrinsic-{preset}")?;
    writeln!(script, "#SBATCH --array=0-{}", array - 1)?;
    writeln!(script, "#SBATCH --ntasks=1")?;
    writeln!(script, "#SBATCH --gpus-per-task={gpus_per_task}")?;
    writeln!(script, "#SBATCH --time={time}")?;
    writeln!(script, "#SBATCH --requeue")?;
    writeln!(script, "#SBATCH --output={}/%A_%a.out", logs.display())?;
    if let Some(partition) = &partition {
        writeln!(script, "#SBATCH --partition={partition}")?;
    }
    writeln!(script, "set -euo pipefail")?;
    // The assets the check above verified, and libtorch: compute nodes must see this folder.
    writeln!(script, "export INTRINSIC_BENCH_HOME={}", shell_quote(&setup::cache_home()?))?;
    writeln!(script, "cd {}", shell_quote(&root))?;
    writeln!(
        script,
        "exec {} reproduce --preset {preset} --device cuda --shard \"${{SLURM_ARRAY_TASK_ID}}/{array}\" --out {}",
        shell_quote(&binary),
        shell_quote(&out)
    )?;
    let path = out.join(format!("{preset}.sbatch"));
    std::fs::write(&path, script).with_context(|| format!("write {}", path.display()))?;
    println!("wrote {}", path.display());
    println!(
        "assets: fetched and verified by the check above into {} (compute nodes must see it)",
        setup::cache_home()?.display()
    );
    println!("submit:                                     sbatch {}", path.display());
    println!(
        "watch:                                      squeue --me --name intrinsic-{preset}; tail -f {}/*.out",
        logs.display()
    );
    println!(
        "when all tasks are done, the d90 table:     cargo xtask reproduce --preset {preset} --device cuda --offline"
    );
    println!("(on a node with a GPU: every search is then reused, nothing trains)");
    Ok(())
}

fn shell_quote(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
