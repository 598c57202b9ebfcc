//! The bench-suite command line: `reproduce` (run through `cargo xtask reproduce`), `finetune`
//! (run through `cargo xtask finetune`), `pretrain` (run through `cargo xtask pretrain`),
//! `bench-fastfood` and `bench-train-step` (run through `cargo xtask bench fastfood|train-step`),
//! `gpu-check` (the prepared device check, run through `cargo xtask gpu-check`'s script).
//!
//! `bench-fastfood` measures, in one process, medians after a warm-up:
//! - FWHT of 2^20, 2^24, 2^26 f32 values on CPU: our kernel, the tch-op (CUDA) path run on CPU,
//!   and the authors' per-stage algorithm, each against a plain copy of the same buffer;
//! - a full `P` and `P^T` over RoBERTa-base's 201 tensors at d = 1000, both scopes: time, cached
//!   factor bytes and the peak resident memory added.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bench_suite::finetune::process_memory_bytes;
use clap::{Parser, Subcommand};
use encoders::shapes;
use serde::Serialize;
use subspace::fastfood::{Crop, FactorStorage, Projector, ProjectorSpec, Scope};
use subspace::fwht;
use tch::{Device, Kind, Tensor};

mod finetune;
mod gpu_check;
mod logging;
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
    BenchFastfood(BenchFastfoodArgs),
    /// The time and peak memory of a SAID and a DID training step against a full one.
    BenchTrainStep(train_step::Args),
    /// The prepared device check: fused kernel correctness and speed, bf16, training steps.
    GpuCheck(gpu_check::Args),
}

#[derive(Debug, clap::Args)]
struct BenchFastfoodArgs {
    /// Smaller sizes and fewer repetitions (a smoke test of the benchmark itself).
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) if terminated(&err) => {
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
/// its cause's text (thiserror's `"{context}: {source}"`, as `RunnerError` writes) is not
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

/// Whether `err` is a run that SIGTERM ended at a checkpoint.
fn terminated(err: &anyhow::Error) -> bool {
    use bench_suite::finetune::FinetuneError;
    use bench_suite::train::TrainError;
    err.chain().any(|cause| {
        cause.downcast_ref::<bench_suite::experiment::runner::RunnerError>().is_some_and(|err| err.is_terminated())
            || matches!(cause.downcast_ref::<TrainError>(), Some(TrainError::Terminated { .. }))
            || matches!(
                cause.downcast_ref::<bench_suite::pretrain::PretrainError>(),
                Some(bench_suite::pretrain::PretrainError::Terminated { .. })
            )
            || matches!(
                cause.downcast_ref::<FinetuneError>(),
                Some(FinetuneError::Train(TrainError::Terminated { .. }))
            )
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

fn run() -> Result<()> {
    keep_freed_memory();
    // SIGTERM (preemption, `scancel`, a time limit) ends the run in progress after its current
    // step, at a checkpoint, instead of losing the steps since the last one.
    signal_hook::flag::register(signal_hook::consts::SIGTERM, std::sync::Arc::clone(&bench_suite::train::TERMINATE))
        .context("install the SIGTERM handler")?;
    let cli = Cli::parse();
    let shard_log = match &cli.command {
        Command::Reproduce(args) => reproduce::shard_log(args)?,
        _ => None,
    };
    logging::init(shard_log.as_deref())?;
    match cli.command {
        Command::BenchFastfood(args) => bench_fastfood(&args),
        Command::Finetune(args) => finetune::run(args),
        Command::Reproduce(args) => reproduce::run(args),
        Command::Pretrain(args) => pretrain::run(args),
        Command::BenchTrainStep(args) => train_step::run(&args),
        Command::GpuCheck(args) => gpu_check::run(&args),
    }
}

#[derive(Serialize)]
struct FwhtRow {
    log2_len: u32,
    /// Median of the copies interleaved with our FWHT runs.
    memcpy_ms: f64,
    /// Median of copies run back to back (warm TLB and caches for the copy alone).
    memcpy_alone_ms: f64,
    ours_ms: f64,
    tch_ops_ms: f64,
    anchor_ms: f64,
    ours_over_memcpy: f64,
    anchor_over_memcpy: f64,
    speedup_over_anchor: f64,
}

#[derive(Serialize)]
struct ProjectionRow {
    scope: Scope,
    storage: FactorStorage,
    d: usize,
    total_params: usize,
    total_padded_len: usize,
    n_blocks: usize,
    setup_ms: f64,
    forward_ms: f64,
    transpose_ms: f64,
    kept_bytes: usize,
    peak_rss_added_bytes: Option<u64>,
}

#[derive(Serialize)]
struct Report {
    machine: String,
    rayon_threads: usize,
    torch_threads: i32,
    fwht: Vec<FwhtRow>,
    projection: Vec<ProjectionRow>,
}

fn bench_fastfood(args: &BenchFastfoodArgs) -> Result<()> {
    let quick = args.quick;
    let report = Report {
        machine: cpu_model(),
        rayon_threads: rayon::current_num_threads(),
        torch_threads: tch::get_num_threads(),
        fwht: bench_fwht(if quick { &[20, 22] } else { &[20, 24, 26] }),
        projection: bench_projection(quick)?,
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// Median wall time of `runs` calls after one warm-up call.
fn median_time(runs: usize, mut work: impl FnMut()) -> Duration {
    work();
    let times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    median(&times)
}

fn median(times: &[Duration]) -> Duration {
    let mut times = times.to_vec();
    times.sort();
    times[times.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn bench_fwht(log2_lens: &[u32]) -> Vec<FwhtRow> {
    let source_of =
        |len: usize| -> Vec<f32> { (0..len).map(|idx| ((idx * 7919) % 1000) as f32 / 1000.0 - 0.5).collect() };
    // Our kernel and the copies first, for every size, before any torch operation has run: torch's
    // OpenMP threads keep spinning for a while after an operation and would compete with rayon's.
    let ours: Vec<(Duration, Duration, Duration, f64)> = log2_lens
        .iter()
        .map(|&log2_len| {
            let len = 1usize << log2_len;
            let runs = if log2_len >= 26 { 7 } else { 15 };
            let source = source_of(len);
            let mut target = vec![0.0f32; len];
            let mut data = source.clone();
            // Copy and FWHT alternate, so that both see the same machine state; the ratio is the
            // median of the per-run ratios.
            let mut copy_times = Vec::new();
            let mut ours_times = Vec::new();
            for _ in 0..runs + 1 {
                let start = Instant::now();
                target.copy_from_slice(std::hint::black_box(&source));
                copy_times.push(start.elapsed());
                let start = Instant::now();
                fwht::fwht_slice(std::hint::black_box(&mut data)).unwrap();
                ours_times.push(start.elapsed());
            }
            let mut ratios: Vec<f64> = copy_times
                .iter()
                .zip(&ours_times)
                .skip(1)
                .map(|(copy, ours)| ours.as_secs_f64() / copy.as_secs_f64())
                .collect();
            ratios.sort_by(f64::total_cmp);
            let memcpy_alone = median_time(runs, || target.copy_from_slice(std::hint::black_box(&source)));
            (median(&copy_times[1..]), memcpy_alone, median(&ours_times[1..]), ratios[ratios.len() / 2])
        })
        .collect();
    log2_lens
        .iter()
        .zip(ours)
        .map(|(&log2_len, (memcpy, memcpy_alone, ours, ours_over_memcpy))| {
            let tensor = Tensor::from_slice(&source_of(1usize << log2_len));
            let runs = if log2_len >= 24 { 3 } else { 5 };
            let tch_ops = median_time(runs, || drop(fwht::fwht_kron(&tensor).unwrap()));
            let anchor = median_time(runs, || drop(fwht::fwht_anchor(&tensor).unwrap()));
            FwhtRow {
                log2_len,
                memcpy_ms: ms(memcpy),
                memcpy_alone_ms: ms(memcpy_alone),
                ours_ms: ms(ours),
                tch_ops_ms: ms(tch_ops),
                anchor_ms: ms(anchor),
                ours_over_memcpy,
                anchor_over_memcpy: anchor.as_secs_f64() / memcpy.as_secs_f64(),
                speedup_over_anchor: anchor.as_secs_f64() / ours.as_secs_f64(),
            }
        })
        .collect()
}

fn bench_projection(quick: bool) -> Result<Vec<ProjectionRow>> {
    let tensors = shapes::numels(&shapes::roberta_base_classifier());
    let d = 1000;
    let runs = if quick { 1 } else { 3 };
    let mut rows = Vec::new();
    let mut cases = vec![(Scope::PerTensor, FactorStorage::Cached), (Scope::Global, FactorStorage::Cached)];
    if !quick {
        cases.push((Scope::PerTensor, FactorStorage::Regenerate));
    }
    for (scope, storage) in cases {
        let rss_before = reset_peak_rss();
        let start = Instant::now();
        let projector = Projector::new(
            &tensors,
            ProjectorSpec { d, scope, seed: 0, crop: Crop::None, storage, device: Device::Cpu },
        )?;
        let setup = start.elapsed();
        let x = Tensor::randn([d as i64], (Kind::Float, Device::Cpu));
        let mut outputs = Vec::new();
        let forward = median_time(runs, || outputs = projector.forward(&x).unwrap());
        let transpose = median_time(runs, || drop(projector.transpose(&outputs).unwrap()));
        let peak_rss_added_bytes = rss_before.and_then(|before| peak_rss().map(|peak| peak.saturating_sub(before)));
        let summary = projector.summary();
        rows.push(ProjectionRow {
            scope,
            storage,
            d,
            total_params: summary.total_params,
            total_padded_len: summary.total_padded_len,
            n_blocks: summary.n_blocks,
            setup_ms: ms(setup),
            forward_ms: ms(forward),
            transpose_ms: ms(transpose),
            kept_bytes: projector.cached_bytes(),
            peak_rss_added_bytes,
        });
    }
    Ok(rows)
}

fn print_report(report: &Report) {
    println!(
        "machine: {} | rayon threads {} | torch threads {}",
        report.machine, report.rayon_threads, report.torch_threads
    );
    println!();
    println!("FWHT, f32, CPU, in place. ours/cp: median of per-run ratios, each run timing a memcpy of the");
    println!("same buffer, then our FWHT; 'alone': memcpy median when run back to back, for reference");
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>8} {:>12} {:>12} {:>10} {:>10}",
        "n", "memcpy ms", "alone ms", "ours ms", "ours/cp", "tch-ops ms", "anchor ms", "anchor/cp", "speed-up"
    );
    for row in &report.fwht {
        println!(
            "{:>6} {:>10.3} {:>10.3} {:>10.3} {:>8.2} {:>12.2} {:>12.2} {:>10.1} {:>9.1}x",
            format!("2^{}", row.log2_len),
            row.memcpy_ms,
            row.memcpy_alone_ms,
            row.ours_ms,
            row.ours_over_memcpy,
            row.tch_ops_ms,
            row.anchor_ms,
            row.anchor_over_memcpy,
            row.speedup_over_anchor
        );
    }
    println!();
    println!("Fastfood P and P^T over RoBERTa-base's 201 tensors (D = 124,647,170), f32, CPU");
    println!(
        "{:>10} {:>10} {:>6} {:>12} {:>7} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "scope", "factors", "d", "padded", "blocks", "setup ms", "P ms", "P^T ms", "kept MiB", "peak +MiB"
    );
    for row in &report.projection {
        let mib = |bytes: f64| bytes / (1u64 << 20) as f64;
        println!(
            "{:>10} {:>10} {:>6} {:>12} {:>7} {:>10.0} {:>10.1} {:>10.1} {:>12.1} {:>12}",
            format!("{:?}", row.scope),
            format!("{:?}", row.storage),
            row.d,
            row.total_padded_len,
            row.n_blocks,
            row.setup_ms,
            row.forward_ms,
            row.transpose_ms,
            mib(row.kept_bytes as f64),
            row.peak_rss_added_bytes.map_or("n/a".to_owned(), |bytes| format!("{:.1}", mib(bytes as f64))),
        );
    }
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    format!("{} ({cores} threads available)", model.unwrap_or("unknown CPU"))
}

/// Resets the kernel's peak-RSS counter (`/proc/self/clear_refs`) and returns the current RSS.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    process_memory_bytes("VmRSS")
}

fn peak_rss() -> Option<u64> {
    process_memory_bytes("VmHWM")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand's `--help` lists its flags (the ones a hand-written parser once forgot).
    #[test]
    fn help_lists_every_flag() {
        let mut cli = Cli::command();
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

    /// A pause's one line names each cause once, though `RunnerError` writes its source into its
    /// own message, and is still recognised as a pause.
    #[test]
    fn a_pause_is_one_line_with_each_cause_once() {
        use bench_suite::experiment::runner::RunnerError;
        use bench_suite::pretrain::PretrainError;
        let err = anyhow::Error::new(RunnerError::Pretraining {
            name: "mini-128".into(),
            source: Box::new(PretrainError::Terminated { update: 7 }),
        })
        .context("reproduce the preset `miniature`");
        assert!(super::terminated(&err));
        let line = super::one_line(&err);
        assert_eq!(
            line,
            "reproduce the preset `miniature`: pre-training `mini-128`: terminated (SIGTERM) after update 7; its \
             state is saved: the same command resumes from there"
        );
        assert_eq!(format!("{err:#}").matches("terminated (SIGTERM)").count(), 2, "anyhow's own form repeats it");
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
