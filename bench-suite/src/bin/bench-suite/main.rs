//! The bench-suite command line: `reproduce` (run through `cargo xtask reproduce`), `finetune`
//! (run through `cargo xtask finetune`), `pretrain` (run through `cargo xtask pretrain`),
//! `bench-fastfood` and `bench-train-step` (run through `cargo xtask bench fastfood|train-step`),
//! `gpu-check` (the prepared device check, run through `cargo xtask gpu-check`'s script).
//! One file per subcommand; `measure` holds what the benchmarks share (medians, peak memory).

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod bench_fastfood;
mod finetune;
mod gpu_check;
mod logging;
mod measure;
mod pretrain;
mod reproduce;
mod train_step;

/// intrinsic-bench's experiments and benchmarks (the `cargo xtask` commands of the same names run
/// these; flags are documented here once).
#[derive(Debug, Parser)]
#[command(name = "bench-suite", version = env!("INTRINSIC_BENCH_CODE_REVISION"), max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a preset's (or a spec file's) d90 searches, resumably, then print the d90 table.
    Reproduce(reproduce::Args),
    /// Fine-tune once (full, DID or SAID) and print the result as JSON.
    Finetune(finetune::Args),
    /// MLM pre-training from scratch (RoBERTa's recipe), resumable, with HF checkpoints.
    Pretrain(pretrain::Args),
    /// FWHT and Fastfood projection timings, ratios measured in one process.
    BenchFastfood(bench_fastfood::Args),
    /// The time and peak memory of a SAID and a DID training step against a full one.
    BenchTrainStep(train_step::Args),
    /// The prepared device check: fused kernel correctness and speed, bf16, training steps.
    GpuCheck(gpu_check::Args),
}

/// The command line, with `finetune --help` showing the paper's value of each training setting
/// (from `results::Training::PAPER`, the one place they are written).
fn command() -> clap::Command {
    use bench_suite::settings::TrainingSpec;
    Cli::command().mut_subcommand("finetune", |finetune| {
        TrainingSpec::FIELDS.iter().fold(finetune, |finetune, field| match TrainingSpec::paper_default(field) {
            Some(value) => finetune.mut_arg(*field, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {value}]"))
            }),
            None => finetune,
        })
    })
}

fn main() -> std::process::ExitCode {
    // SIGTERM (preemption, `scancel`, a time limit) ends the run in progress after its current
    // step, with its state saved, instead of losing the steps since the last save.
    let interrupter = trainer::interrupt::Interrupter::default();
    match run(&interrupter) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A stop this process asked for, and that ended the work (not an error that came after).
        Err(err) if interrupter.is_requested() && ended_by_stop(&err) => {
            // A pause, not a fault: one line (the chain says where it stopped and how to go on),
            // without the backtrace `RUST_BACKTRACE=1` would add to a real error.
            eprintln!("Stopped: {}", one_line(&err));
            // 128 + SIGTERM, as a shell reports a process the signal ended: a scheduler sees
            // the task ended by its signal (and requeues it where it was asked to).
            std::process::ExitCode::from(143)
        }
        Err(err) => {
            eprintln!("Error: {err:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes in one line, each message once: a message that already ends with
/// its cause's text (thiserror's `"{context}: {source}"`, as `bench_suite::Error` writes) is not
/// followed by that cause again, as anyhow's `{:#}` would.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Whether a [`Terminated`](trainer::interrupt::Terminated) ended what `err` reports: the layers
/// below carry it as a typed variant (`terminated()`); the subcommands return `anyhow`, so here
/// it is found by one downcast to that one type.
fn ended_by_stop(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<trainer::interrupt::Terminated>().is_some()
            || cause.downcast_ref::<datasets::stop::Stopped>().is_some()
    })
}

/// Keeps freed memory in the process for reuse (glibc's malloc): libtorch's CPU kernels allocate
/// and free the same large buffers every step (an MLM step's logits over a 30k vocabulary are
/// tens of MB per forward), and above glibc's mmap threshold (at most 32 MB by default) each one
/// would be a fresh mapping whose pages the kernel zeroes again: measured, a third of a CPU
/// pre-training step went to page faults and page clearing. No effect on any number computed.
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn run(interrupter: &trainer::interrupt::Interrupter) -> Result<()> {
    keep_freed_memory();
    signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupter.flag())
        .context("install the SIGTERM handler")?;
    // Hashing and downloads stop too (`datasets::stop`).
    signal_hook::flag::register(signal_hook::consts::SIGTERM, datasets::stop::flag())
        .context("install the SIGTERM handler")?;
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|err| err.exit());
    let shard_log = match &cli.command {
        Command::Reproduce(args) => reproduce::shard_log(args)?,
        _ => None,
    };
    logging::init(shard_log.as_deref())?;
    match cli.command {
        Command::BenchFastfood(args) => bench_fastfood::run(&args),
        Command::Finetune(args) => finetune::run(args, interrupter),
        Command::Reproduce(args) => reproduce::run(args, interrupter.clone()),
        Command::Pretrain(args) => pretrain::run(args, interrupter.clone()),
        Command::BenchTrainStep(args) => train_step::run(&args),
        Command::GpuCheck(args) => gpu_check::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::{Cli, command};

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    /// `finetune --help` shows the paper's value of a training setting, read from the one place
    /// it is written.
    #[test]
    fn finetune_help_shows_the_papers_defaults() {
        let help = command().find_subcommand_mut("finetune").unwrap().render_help().to_string();
        assert!(help.contains("Examples per batch [default: 32]"), "{help}");
        assert!(help.contains("[default: 0.06]") && help.contains("[default: f32]"), "{help}");
    }

    /// Every subcommand's `--help` lists its flags (the ones a hand-written parser once forgot).
    #[test]
    fn help_lists_every_flag() {
        let mut cli = command();
        for (subcommand, flags) in [
            (
                "reproduce",
                &[
                    "--preset",
                    "--spec",
                    "--only",
                    "--device",
                    "--mirror",
                    "--offline",
                    "--shard",
                    "--out",
                    "--check-only",
                ][..],
            ),
            (
                "finetune",
                &[
                    "--model",
                    "--task",
                    "--mode",
                    "--batch-size",
                    "--max-len",
                    "--scope",
                    "--compat",
                    "--grouping",
                    "--precision",
                    "--run-dir",
                ][..],
            ),
            ("bench-fastfood", &["--quick", "--json"][..]),
            (
                "bench-train-step",
                &["--model", "--batch", "--seq", "--steps", "--precision", "--compare-engines", "--json"][..],
            ),
            ("gpu-check", &["--device", "--quick", "--skip-train", "--json"][..]),
        ] {
            let help = cli.find_subcommand_mut(subcommand).expect(subcommand).render_long_help().to_string();
            for flag in flags {
                assert!(help.contains(flag), "{subcommand} --help lacks {flag}:\n{help}");
            }
            assert!(!help.contains("--memory-only"), "{subcommand}: internal flags stay hidden");
        }
        let help = cli.render_long_help().to_string();
        for subcommand in ["reproduce", "finetune", "bench-fastfood", "bench-train-step", "gpu-check"] {
            assert!(help.contains(subcommand), "{help}");
        }
    }

    /// A pause's one line names each cause once, though `bench_suite::Error` writes its source into its
    /// own message, and is still recognised as a pause.
    #[test]
    fn a_pause_is_one_line_with_each_cause_once() {
        use trainer::interrupt::Terminated;
        let runner_error = bench_suite::Error::Pretraining {
            name: "mini-128".into(),
            source: Box::new(trainer::Error::Terminated(Terminated::Pretraining { update: 7 })),
        };
        assert_eq!(runner_error.terminated(), Some(&Terminated::Pretraining { update: 7 }));
        let err = anyhow::Error::new(runner_error).context("reproduce the preset `miniature`");
        assert!(super::ended_by_stop(&err));
        assert!(!super::ended_by_stop(&anyhow::anyhow!("disk full").context("save the run state")));
        let line = super::one_line(&err);
        assert_eq!(
            line,
            "reproduce the preset `miniature`: pre-training `mini-128`: terminated (SIGTERM) after update 7; its \
             state is saved: the same command resumes from there"
        );
        assert_eq!(
            format!("{err:#}").matches("terminated (SIGTERM)").count(),
            3,
            "anyhow's own form repeats it per layer"
        );
    }

    /// Value enums spell values as the specs and result files do (`per_tensor`, not `per-tensor`).
    #[test]
    fn values_are_spelled_as_in_specs() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "bench-suite",
            "finetune",
            "--model",
            "m",
            "--task",
            "sst2",
            "--mode",
            "said",
            "--scope",
            "per_tensor",
            "--grouping",
            "per_layer",
            "--compat",
            "aghajanyan",
            "--precision",
            "bf16",
        ])
        .unwrap();
        let super::Command::Finetune(args) = cli.command else { panic!("finetune") };
        let debug = format!("{args:?}");
        assert!(debug.contains("PerTensor") && debug.contains("PerLayer") && debug.contains("Aghajanyan"), "{debug}");
        assert!(
            Cli::try_parse_from(["bench-suite", "finetune", "--model", "m", "--task", "sst2", "--mode", "nope"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["bench-suite", "reproduce", "--preset", "quick", "--spec", "x.yaml"]).is_err());
        assert!(Cli::try_parse_from(["bench-suite", "reproduce", "--preset", "nope"]).is_err());
        assert!(Cli::try_parse_from(["bench-suite", "reproduce", "--shard", "3/2"]).is_err());
    }
}
