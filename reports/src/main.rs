//! `reports`: the report of a preset from its result files (run by `cargo xtask report` and at
//! the end of `cargo xtask reproduce`).
//!
//! `reports --preset NAME [--runs DIR] [--out DIR] [--check] [--compare OTHER_DIR [--tolerance X]]`
//! - default `--runs runs/<preset>`, `--out reports/<preset>`;
//! - `--check`: regenerate in memory and fail, naming the file and line, if `--out` differs;
//! - `--compare OTHER_DIR`: after writing, list the Table 1 cells that moved beyond the relative
//!   `--tolerance` (default 0) against another report folder, and fail if any did.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use reports::{Paper, build, compare, records};

const USAGE: &str =
    "usage: reports --preset NAME [--runs DIR] [--out DIR] [--check] [--compare OTHER_DIR [--tolerance X]]";

fn main() -> Result<ExitCode> {
    let mut preset = None;
    let (mut runs, mut out, mut other) = (None, None, None);
    let mut check = false;
    let mut tolerance = 0.0;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--check" {
            check = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--preset" => preset = Some(value.clone()),
            "--runs" => runs = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--compare" => other = Some(PathBuf::from(value)),
            "--tolerance" => {
                tolerance = value.parse().with_context(|| format!("--tolerance: `{value}` is not a number"))?;
            }
            other => bail!("unknown flag `{other}`\n{USAGE}"),
        }
    }
    let preset = preset.with_context(|| format!("--preset is required\n{USAGE}"))?;
    let runs = runs.unwrap_or_else(|| PathBuf::from("runs").join(&preset));
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(&preset));
    let (searches, run_records) = records::load(&runs)?;
    let report = build(&preset, &runs.display().to_string(), &searches, &run_records, &Paper::embedded())
        .with_context(|| format!("build the report of {}", runs.display()))?;
    if check {
        let differences = report.check(&out);
        if differences.is_empty() {
            eprintln!("{}: up to date with {}", out.display(), runs.display());
            return Ok(ExitCode::SUCCESS);
        }
        for difference in &differences {
            eprintln!("{difference}");
        }
        eprintln!("{} file(s) differ: regenerate with `cargo xtask report --preset {preset}`", differences.len());
        return Ok(ExitCode::FAILURE);
    }
    report.write(&out)?;
    eprintln!("wrote {} ({} files) from {}", out.join("README.md").display(), report.files.len(), runs.display());
    if let Some(other) = other {
        let moved = compare(&out, &other, tolerance).with_context(|| {
            format!("compare with {}: it needs a reference report there (commit one first)", other.display())
        })?;
        if !moved.is_empty() {
            for line in &moved {
                println!("{line}");
            }
            eprintln!("{} cell(s) moved beyond tolerance {tolerance} against {}", moved.len(), other.display());
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("no Table 1 cell moved beyond tolerance {tolerance} against {}", other.display());
    }
    Ok(ExitCode::SUCCESS)
}
