//! `reports`: the report of a preset from its result files (run by `cargo xtask report` and at
//! the end of `cargo xtask reproduce`).
//!
//! `reports --help` lists the flags; `--check` regenerates in memory and fails on drift,
//! `--compare` lists Table 1 cells that moved against another report folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use reports::{Paper, Source, build_from, compare, records};

/// The report of a preset from its result files: tables, figures and checks against the paper.
#[derive(Debug, Parser)]
#[command(name = "reports", max_term_width = 100)]
struct Args {
    /// The preset the results belong to (its name titles the report and picks the paper's
    /// numbers to compare with) [default: quick].
    #[arg(long, value_name = "NAME", conflicts_with = "spec")]
    preset: Option<String>,
    /// The spec file the results were produced from (its file stem names them, as in
    /// `reproduce --spec`).
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// The results folder [default: runs/<name>].
    #[arg(long, value_name = "DIR")]
    runs: Option<PathBuf>,
    /// The report folder [default: reports/<name>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Regenerate in memory and fail, naming the file and line, if the report folder differs.
    #[arg(long)]
    check: bool,
    /// After writing, list the Table 1 cells that moved beyond --tolerance against the report in
    /// this folder, and fail if any did.
    #[arg(long, value_name = "OTHER_DIR")]
    compare: Option<PathBuf>,
    /// Relative change of a Table 1 cell that --compare tolerates.
    #[arg(long, value_name = "X", default_value_t = 0.0, requires = "compare")]
    tolerance: f64,
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let preset = results::results_name(args.preset.as_deref(), args.spec.as_deref());
    let runs = args.runs.unwrap_or_else(|| results::results_dir(&preset));
    let out = args.out.unwrap_or_else(|| results::report_dir(&preset));
    let (check, other, tolerance) = (args.check, args.compare, args.tolerance);
    let records = records::load_planned(&runs, &preset)?;
    // `cargo xtask` passes the spec's absolute path; the report names it as the user would type
    // it from the project root (where `runs/<name>` is), so that reports do not depend on where
    // the checkout lies.
    let here = std::env::current_dir().and_then(std::fs::canonicalize).ok();
    let spec = args.spec.as_ref().map(|spec| {
        let full = std::fs::canonicalize(spec).ok();
        let relative = here.as_deref().zip(full.as_deref()).and_then(|(here, full)| full.strip_prefix(here).ok());
        relative.unwrap_or(spec).display().to_string()
    });
    let source = match &spec {
        Some(spec) => Source::Spec(spec),
        None => Source::Preset(&preset),
    };
    let report = build_from(&source, &runs.display().to_string(), &records, &Paper::embedded())
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
        eprintln!("{} file(s) differ: regenerate with `cargo xtask report {}`", differences.len(), source.argument());
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Args;

    #[test]
    fn the_command_line_is_consistent_and_its_help_lists_every_flag() {
        Args::command().debug_assert();
        let help = Args::command().render_long_help().to_string();
        for flag in ["--preset", "--spec", "--runs", "--out", "--check", "--compare", "--tolerance"] {
            assert!(help.contains(flag), "{flag}:\n{help}");
        }
    }
}
