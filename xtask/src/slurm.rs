//! `cargo xtask slurm --preset NAME [OPTIONS]`: builds the release binary once (array tasks must
//! not compile), checks the preset, and writes an sbatch array script whose task `i` runs shard
//! `i/N` of the preset into one shared results folder (runs and searches are locked per key, so
//! tasks never duplicate work, and a requeued task resumes from its checkpoints). It prints how
//! to submit and watch the job. `--dry-run` checks the options and prints the script, building,
//! checking and writing nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{build_bench_suite_release, setup};

const USAGE: &str = "cargo xtask slurm --preset NAME [OPTIONS]
  --preset NAME        the preset whose shards the array tasks run (required)
  --device cpu|cuda    where each task trains [default: cuda]
  --gpus-per-task N    GPUs per task, with --device cuda only [default: 1, unless --gres names them]
  --gres SPEC          passed to sbatch as --gres (sites that name GPUs differently, e.g. gpu:a100:1)
  --constraint SPEC    passed to sbatch as --constraint (node features)
  --cpus-per-task N    CPU cores per task [default: the cluster's]
  --mem SIZE           memory per node, e.g. 32G [default: the cluster's]
  --partition P        the SLURM partition [default: the cluster's]
  --account A          the account to charge [default: yours]
  --qos Q              the quality of service [default: the cluster's]
  --array N            array tasks, one shard each [default: 8]
  --time T             per task: MM, HH:MM:SS or D-HH:MM:SS [default: 24:00:00]
  --out DIR            the shared results folder [default: runs/<preset>]
  --dry-run            check the options and print the script; build, check and write nothing";

/// What the script asks of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    preset: String,
    cuda: bool,
    gpus_per_task: Option<usize>,
    gres: Option<String>,
    constraint: Option<String>,
    cpus_per_task: Option<usize>,
    mem: Option<String>,
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    array: usize,
    time: String,
    out: Option<PathBuf>,
    dry_run: bool,
}

/// The options, checked together before anything is built or written.
fn parse(args: &[String]) -> Result<Options> {
    let mut preset = None;
    let mut device = "cuda".to_owned();
    let mut gpus_per_task = None;
    let mut options = Options {
        preset: String::new(),
        cuda: true,
        gpus_per_task: None,
        gres: None,
        constraint: None,
        cpus_per_task: None,
        mem: None,
        partition: None,
        account: None,
        qos: None,
        array: 8,
        time: "24:00:00".to_owned(),
        out: None,
        dry_run: false,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--dry-run" {
            options.dry_run = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value\nusage: {USAGE}"))?;
        let count = || -> Result<usize> {
            match value.parse::<usize>() {
                Ok(count) if count >= 1 => Ok(count),
                _ => bail!("{flag} {value}: expected a whole number of at least 1"),
            }
        };
        let text = || -> Result<String> {
            if value.is_empty() || value.contains(char::is_whitespace) {
                bail!("{flag} `{value}`: expected one word without spaces");
            }
            Ok(value.clone())
        };
        match flag.as_str() {
            "--preset" => preset = Some(text()?),
            "--device" => device = value.clone(),
            "--gpus-per-task" => gpus_per_task = Some(count()?),
            "--gres" => options.gres = Some(text()?),
            "--constraint" => options.constraint = Some(text()?),
            "--cpus-per-task" => options.cpus_per_task = Some(count()?),
            "--mem" => options.mem = Some(memory(value)?),
            "--partition" => options.partition = Some(text()?),
            "--account" => options.account = Some(text()?),
            "--qos" => options.qos = Some(text()?),
            "--array" => options.array = count()?,
            "--time" => options.time = time_limit(value)?,
            "--out" => options.out = Some(PathBuf::from(value)),
            other => bail!("unknown flag `{other}`\nusage: {USAGE}"),
        }
    }
    options.preset = preset.context("--preset is required (e.g. --preset paper)")?;
    options.cuda = match device.as_str() {
        "cuda" => true,
        "cpu" => false,
        other => bail!("--device {other}: expected cpu or cuda (each task uses its own devices)"),
    };
    if !options.cuda {
        if let Some(gpus) = gpus_per_task {
            bail!("--gpus-per-task {gpus} asks for GPUs, but --device cpu trains on CPUs: drop one of the two");
        }
    } else if options.gres.is_none() {
        // Without a --gres that names the GPUs the site's way, ask for them the standard way.
        options.gpus_per_task = Some(gpus_per_task.unwrap_or(1));
    } else {
        options.gpus_per_task = gpus_per_task;
    }
    Ok(options)
}

/// `--mem`: a number with an optional K, M, G or T suffix (sbatch's units).
fn memory(value: &str) -> Result<String> {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'T']);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) || value.len() - digits.len() > 1 {
        bail!("--mem {value}: expected a size such as 32G or 16000M");
    }
    Ok(value.to_owned())
}

/// `--time`: minutes, `HH:MM:SS` or `D-HH:MM:SS` (the forms sbatch takes that this checks).
fn time_limit(value: &str) -> Result<String> {
    let numbers = |text: &str, parts: usize| {
        let fields: Vec<&str> = text.split(':').collect();
        fields.len() == parts
            && fields.iter().all(|field| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()))
    };
    let valid = match value.split_once('-') {
        Some((days, rest)) => numbers(days, 1) && numbers(rest, 3),
        None => numbers(value, 1) || numbers(value, 3),
    };
    if !valid {
        bail!("--time {value}: expected minutes, HH:MM:SS or D-HH:MM:SS");
    }
    Ok(value.to_owned())
}

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|arg| crate::is_help(arg)) {
        println!("usage: {USAGE}");
        return Ok(());
    }
    let options = parse(args)?;
    let root = std::env::current_dir()?;
    let binary = crate::release_binary(&root);
    let out = root.join(options.out.clone().unwrap_or_else(|| Path::new("runs").join(&options.preset)));
    let home = setup::cache_home()?;
    let text = script(&options, &root, &binary, &out, &home)?;
    if options.dry_run {
        print!("{text}");
        return Ok(());
    }
    let libtorch = setup::ensure()?;
    build_bench_suite_release(&libtorch)?;
    // The spec is checked here, on the login node, not in N array tasks.
    let status = std::process::Command::new(&binary)
        .args(["reproduce", "--preset", &options.preset, "--check-only"])
        .status()
        .context("run bench-suite reproduce --check-only")?;
    if !status.success() {
        bail!("preset `{}` does not check out (see above); nothing written", options.preset);
    }
    let logs = out.join("slurm");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let path = out.join(format!("{}.sbatch", options.preset));
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    let preset = &options.preset;
    let device = if options.cuda { "cuda" } else { "cpu" };
    println!("wrote {}", path.display());
    println!(
        "assets: fetched and verified by the check above into {} (compute nodes must see it); a pre-training's \
         corpus files are not: the task that pre-trains fetches them",
        home.display()
    );
    println!("submit:                                     sbatch {}", path.display());
    println!(
        "watch:                                      squeue --me --name intrinsic-{preset}; tail -f {}/*.out",
        logs.display()
    );
    println!(
        "when all tasks are done, the d90 table:     cargo xtask reproduce --preset {preset} --device {device} --offline --out {}",
        out.display()
    );
    println!("(every search is then reused, nothing trains)");
    Ok(())
}

/// The sbatch script: one array task per shard, each running its shard of the preset into `out`.
fn script(options: &Options, root: &Path, binary: &Path, out: &Path, home: &Path) -> Result<String> {
    let Options { preset, array, .. } = options;
    let mut script = String::new();
    writeln!(script, "#!/bin/bash")?;
    writeln!(
        script,
        "# Written by `cargo xtask slurm --preset {preset}`: shard i/{array} of the preset per array task."
    )?;
    writeln!(script, "#SBATCH --job-name=intrinsic-{preset}")?;
    writeln!(script, "#SBATCH --array=0-{}", array - 1)?;
    writeln!(script, "#SBATCH --ntasks=1")?;
    if let Some(gpus) = options.gpus_per_task {
        writeln!(script, "#SBATCH --gpus-per-task={gpus}")?;
    }
    for (flag, value) in [
        ("gres", &options.gres),
        ("constraint", &options.constraint),
        ("mem", &options.mem),
        ("partition", &options.partition),
        ("account", &options.account),
        ("qos", &options.qos),
    ] {
        if let Some(value) = value {
            writeln!(script, "#SBATCH --{flag}={value}")?;
        }
    }
    if let Some(cpus) = options.cpus_per_task {
        writeln!(script, "#SBATCH --cpus-per-task={cpus}")?;
    }
    writeln!(script, "#SBATCH --time={}", options.time)?;
    writeln!(script, "#SBATCH --requeue")?;
    // A requeued task appends to its log instead of truncating what it did before.
    writeln!(script, "#SBATCH --open-mode=append")?;
    writeln!(script, "#SBATCH --output={}/%A_%a.out", out.join("slurm").display())?;
    writeln!(script, "set -euo pipefail")?;
    // The assets the check verified, and libtorch: compute nodes must see this folder.
    writeln!(script, "export INTRINSIC_BENCH_HOME={}", shell_quote(home))?;
    writeln!(script, "cd {}", shell_quote(root))?;
    let device = if options.cuda { "cuda" } else { "cpu" };
    writeln!(
        script,
        "exec {} reproduce --preset {preset} --device {device} --shard \"${{SLURM_ARRAY_TASK_ID}}/{array}\" --out {}",
        shell_quote(binary),
        shell_quote(out)
    )?;
    Ok(script)
}

fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn script_of(text: &str) -> String {
        let options = parse(&args(text)).unwrap();
        script(
            &options,
            Path::new("/p"),
            Path::new("/p/target/release/bench-suite"),
            Path::new("/p/runs/smoke"),
            Path::new("/h"),
        )
        .unwrap()
    }

    #[test]
    fn a_cpu_script_asks_for_no_gpu_and_runs_on_cpu() {
        let cpu = script_of("--preset smoke --device cpu --array 2 --cpus-per-task 2 --mem 4G --time 30");
        assert!(!cpu.contains("gpus") && !cpu.contains("gres"), "{cpu}");
        assert!(cpu.contains("#SBATCH --array=0-1\n") && cpu.contains("#SBATCH --cpus-per-task=2\n"), "{cpu}");
        assert!(cpu.contains("#SBATCH --mem=4G\n") && cpu.contains("#SBATCH --time=30\n"), "{cpu}");
        assert!(cpu.contains("--device cpu --shard \"${SLURM_ARRAY_TASK_ID}/2\" --out /p/runs/smoke"), "{cpu}");
    }

    #[test]
    fn a_cuda_script_asks_for_gpus_the_standard_way_or_the_sites_way() {
        let cuda = script_of("--preset paper --partition gpu --account lab --qos high");
        assert!(cuda.contains("#SBATCH --gpus-per-task=1\n") && cuda.contains("--device cuda"), "{cuda}");
        for line in ["#SBATCH --partition=gpu\n", "#SBATCH --account=lab\n", "#SBATCH --qos=high\n"] {
            assert!(cuda.contains(line), "{line}: {cuda}");
        }
        let gres = script_of("--preset paper --gres gpu:a100:1 --constraint a100");
        assert!(!gres.contains("gpus-per-task") && gres.contains("#SBATCH --gres=gpu:a100:1\n"), "{gres}");
        assert!(gres.contains("#SBATCH --constraint=a100\n"), "{gres}");
        assert!(script_of("--preset paper --gpus-per-task 4").contains("#SBATCH --gpus-per-task=4\n"));
    }

    #[test]
    fn values_are_checked_before_anything_is_written() {
        let err = |text: &str| parse(&args(text)).unwrap_err().to_string();
        assert!(
            err("--preset smoke --device cpu --gpus-per-task 2")
                .contains("--gpus-per-task 2 asks for GPUs, but --device cpu")
        );
        assert!(err("--preset smoke --device tpu").contains("expected cpu or cuda"));
        assert!(err("--preset smoke --time 1h").contains("--time 1h"));
        assert!(err("--preset smoke --mem lots").contains("--mem lots"));
        assert!(err("--preset smoke --array 0").contains("at least 1"));
        assert!(err("--device cpu").contains("--preset is required"));
        assert!(err("--preset smoke --nodes 2").contains("unknown flag `--nodes`"));
        assert_eq!(time_limit("2-12:00:00").unwrap(), "2-12:00:00");
        assert!(time_limit("12:00").is_err());
        assert_eq!(memory("16000M").unwrap(), "16000M");
    }
}
