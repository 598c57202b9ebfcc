//! `bench-suite gpu-check`: the one prepared device check (issue 7), run on a lent GPU through
//! `cargo xtask gpu-check`'s script. In one process, in this order:
//!
//! 1. correctness of the fused FWHT kernel: against its CPU emulation (bit for bit: the kernel is
//!    built with `--fmad=false`), the CPU reference and the tch-op path, on many lengths and row
//!    counts and both tile limits, into NaN-prefilled outputs (every element must be written);
//!    then the Fastfood projection with the fused engine against the tch-op engine on the device
//!    and the CPU engine;
//! 2. throughput: FWHT at 2^20, 2^24, 2^26 and `P`, `P^T` over RoBERTa-base's shapes (d = 1000,
//!    both scopes), each against a device-to-device copy of the same bytes, the tch-op path and
//!    the authors' per-stage algorithm; medians after warm-up, the device synchronised around
//!    every timed call;
//! 3. the training step on RoBERTa-base shapes with random weights, batch 32 x 128, f32 and bf16:
//!    SAID/full and DID/full step-time ratios and peak device memory (`bench-train-step`), SAID
//!    and DID also with the tch-op and per-stage engines.
//!
//! It prints one table last and writes everything as JSON. `--device cpu --quick` runs the same
//! code on the CPU at toy sizes (the fused path is then the emulation): that is how the CPU tests
//! keep this command working where no GPU is.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bench_suite::synthetic;
use encoders::shapes;
use results::Precision;
use serde::Serialize;
use subspace::device::parse_device;
use subspace::fastfood::{Crop, Engine, FactorStorage, Projector, ProjectorSpec, Scope};
use subspace::fused::{self, DEFAULT_TILE_LOG2, Transform};
use subspace::fwht;
use tch::{Device, Kind, Tensor};

use crate::train_step::{self, BenchModel};

/// The device check (run on the GPU machine by `cargo xtask gpu-check`'s script).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// cuda, cuda:N, or cpu (the CPU path of every check, for testing the check itself).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Small sizes only.
    #[arg(long)]
    quick: bool,
    /// Leave out the training-step timings.
    #[arg(long)]
    skip_train: bool,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Check {
    what: String,
    /// max |ours - reference| / max |reference|.
    max_rel_error: f64,
    /// Equal to the CPU emulation bit for bit (checked up to 2^20 elements).
    bit_exact: Option<bool>,
    /// No NaN left in the NaN-prefilled output.
    all_written: Option<bool>,
    ok: bool,
}

#[derive(Serialize)]
struct Timing {
    what: String,
    /// f32 elements each call reads and writes (the copy moves the same bytes).
    elements: usize,
    copy_ms: f64,
    fused_ms: f64,
    fused_over_copy: f64,
    tch_ops_ms: f64,
    anchor_ms: f64,
    speedup_over_tch_ops: f64,
    speedup_over_anchor: f64,
}

#[derive(Serialize)]
struct GpuReport {
    device: String,
    kernel: String,
    torch: String,
    max_tile_log2: u32,
    checks: Vec<Check>,
    timings: Vec<Timing>,
    train: Vec<train_step::Report>,
    all_checks_ok: bool,
    /// Sections that failed (a panic inside tch or the kernel, a child that failed): the others
    /// still ran, so one device run gives as much as it can.
    errors: Vec<String>,
}

fn sync(device: Device) {
    if let Device::Cuda(ordinal) = device {
        tch::Cuda::synchronize(ordinal as i64);
    }
}

/// Median milliseconds of `runs` calls after `warmup` calls, synchronising around each.
fn time_ms(device: Device, warmup: usize, runs: usize, mut work: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        work();
    }
    sync(device);
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            sync(device);
            let start = Instant::now();
            work();
            sync(device);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn rel_error(ours: &Tensor, reference: &Tensor) -> f64 {
    let ours = ours.to_device(Device::Cpu).to_kind(Kind::Double).reshape([-1]);
    let reference = reference.to_device(Device::Cpu).to_kind(Kind::Double).reshape([-1]);
    let scale = reference.abs().max().double_value(&[]).max(1e-30);
    (ours - reference).abs().max().double_value(&[]) / scale
}

pub fn run(args: &Args) -> Result<()> {
    let (device_name, quick, skip_train) = (args.device.clone(), args.quick, args.skip_train);
    let device = parse_device(&device_name)?;
    // Without the kernel the rest still runs (tch-op timings, training steps on the fallback), and
    // the report says why the kernel is missing.
    let (kernel, max_tile_log2, kernel_ok) = match device {
        Device::Cuda(ordinal) => match fused::kernel::get(ordinal) {
            Ok(kernel) => (kernel.description().to_owned(), kernel.max_tile_log2(), true),
            Err(err) => (format!("UNAVAILABLE: {err}"), DEFAULT_TILE_LOG2, false),
        },
        _ => ("CPU emulation of the kernel".to_owned(), DEFAULT_TILE_LOG2, true),
    };
    eprintln!("device {device:?}: {kernel}, tiles up to 2^{max_tile_log2}");
    let mut report = GpuReport {
        device: device_name.clone(),
        kernel,
        torch: subspace::TORCH_VERSION.to_owned(),
        max_tile_log2,
        checks: Vec::new(),
        timings: Vec::new(),
        train: Vec::new(),
        all_checks_ok: false,
        errors: Vec::new(),
    };
    if !kernel_ok {
        report.errors.push(format!("kernel: {}", report.kernel));
    }
    // Each section runs on its own: a panic is recorded and the next section still runs, and the
    // JSON is rewritten after each, so a run cut short still leaves what it measured.
    let save = |report: &GpuReport| {
        if let Some(path) = &args.json
            && let Ok(text) = serde_json::to_string_pretty(report)
        {
            let _ = std::fs::write(path, text);
        }
    };
    let section = |name: &str, report: &mut GpuReport, work: &mut dyn FnMut(&mut GpuReport) -> Result<()>| {
        eprintln!("gpu-check: {name}");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(report)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => report.errors.push(format!("{name}: {err:#}")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                    .unwrap_or_default();
                report.errors.push(format!("{name}: panicked: {message}"));
            }
        }
        save(report);
    };

    if kernel_ok {
        section("fwht correctness", &mut report, &mut |report| {
            check_fwht(device, quick, max_tile_log2, &mut report.checks);
            Ok(())
        });
        section("fastfood correctness", &mut report, &mut |report| {
            check_projection(device, quick, &mut report.checks);
            Ok(())
        });
    }
    report.all_checks_ok = kernel_ok && !report.checks.is_empty() && report.checks.iter().all(|check| check.ok);
    eprintln!("correctness: {}", if report.all_checks_ok { "all checks passed" } else { "FAILURES" });

    section("fwht timings", &mut report, &mut |report| {
        time_fwht(device, quick, kernel_ok, &mut report.timings);
        Ok(())
    });
    section("projection timings", &mut report, &mut |report| {
        time_projection(device, quick, kernel_ok, &mut report.timings)
    });
    if !skip_train {
        for precision in [Precision::F32, Precision::Bf16] {
            let train_args = train_step::Args {
                model: if quick { BenchModel::TinyRandom } else { BenchModel::RobertaBaseRandom },
                batch: if quick { 4 } else { 32 },
                seq: if quick { 16 } else { 128 },
                steps: if quick { 2 } else { 6 },
                d: if quick { 100 } else { 1000 },
                device: device_name.clone(),
                precision,
                compare_engines: true,
                mirror: Vec::new(),
                json: None,
                memory_only: None,
            };
            section(&format!("training step {}", train_step::value_name(&precision)), &mut report, &mut |report| {
                report.train.push(train_step::measure(&train_args)?.context("bench-train-step measured nothing")?);
                Ok(())
            });
        }
    }

    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if !report.all_checks_ok || !report.errors.is_empty() {
        bail!(
            "gpu-check: {} (see above)",
            if report.all_checks_ok { "some sections failed" } else { "correctness FAILED" }
        );
    }
    Ok(())
}

fn check_fwht(device: Device, quick: bool, max_tile_log2: u32, checks: &mut Vec<Check>) {
    let lengths: &[u32] =
        if quick { &[0, 1, 3, 5, 8, 13, 14, 16] } else { &[0, 1, 2, 3, 5, 8, 10, 12, 13, 14, 15, 16, 17, 20, 23, 26] };
    let mut tiles = vec![max_tile_log2];
    if max_tile_log2 != DEFAULT_TILE_LOG2 {
        tiles.push(DEFAULT_TILE_LOG2);
    }
    for &log_n in lengths {
        for rows in [1usize, 3] {
            if rows > 1 && log_n > 20 {
                continue;
            }
            tch::manual_seed(i64::from(log_n) * 10 + rows as i64);
            let x_cpu = Tensor::randn([(rows << log_n) as i64], (Kind::Float, Device::Cpu));
            let x = x_cpu.to_device(device);
            let reference = fwht::fwht(&x_cpu.to_kind(Kind::Double).reshape([rows as i64, 1 << log_n])).unwrap();
            let tch_ops = fwht::fwht_kron(&x.reshape([rows as i64, 1 << log_n])).unwrap();
            for &tile in &tiles {
                let transform = Transform::new(&x, rows, log_n);
                let dst = Tensor::full([rows as i64, 1 << log_n], f64::NAN, (Kind::Float, device));
                let launched = fused::run_into(&transform, &dst, tile);
                let what = format!("fwht 2^{log_n} x {rows} rows, tiles 2^{tile}");
                let Ok(()) = launched else {
                    eprintln!("{what}: {}", launched.unwrap_err());
                    checks.push(Check { what, max_rel_error: f64::NAN, bit_exact: None, all_written: None, ok: false });
                    continue;
                };
                let all_written = !bool::try_from(dst.isnan().any().to_device(Device::Cpu)).unwrap_or(true);
                let bit_exact = ((rows << log_n) <= 1 << 20).then(|| {
                    let emulated = fused::emulate(&Transform::new(&x_cpu, rows, log_n), tile);
                    dst.to_device(Device::Cpu).equal(&emulated)
                });
                let error = rel_error(&dst, &reference).max(rel_error(&dst, &tch_ops));
                let ok = error < 1e-5 && all_written && bit_exact != Some(false);
                checks.push(Check { what, max_rel_error: error, bit_exact, all_written: Some(all_written), ok });
            }
        }
    }
}

fn check_projection(device: Device, quick: bool, checks: &mut Vec<Check>) {
    let tensors: Vec<(String, usize)> = if quick {
        shapes::numels(&shapes::sequence_classifier(&synthetic::tiny_config("bert"), 2))
    } else {
        vec![
            ("embeddings".to_owned(), 1_000_000),
            ("bias".to_owned(), 768),
            ("weight".to_owned(), 589_824),
            ("head".to_owned(), 1538),
        ]
    };
    let total: usize = tensors.iter().map(|(_, numel)| numel).sum();
    for scope in [Scope::Global, Scope::PerTensor] {
        for d in [100, 1000, 5000] {
            let build = |device| {
                Projector::new(
                    &tensors,
                    ProjectorSpec { d, scope, seed: 5, crop: Crop::None, storage: FactorStorage::Cached, device },
                )
                .unwrap()
            };
            // One set of factors on the device, used by both device engines in turn.
            let on_device = build(device).with_engine(Engine::Fused);
            let cpu_p = build(Device::Cpu);
            tch::manual_seed(d as i64);
            let x = Tensor::randn([d as i64], (Kind::Float, Device::Cpu));
            let y = Tensor::randn([total as i64], (Kind::Float, Device::Cpu));
            let sizes: Vec<i64> = tensors.iter().map(|(_, numel)| *numel as i64).collect();
            let split = |device| -> Vec<Tensor> {
                y.split_with_sizes(&sizes, 0).iter().map(|piece| piece.to_device(device)).collect()
            };
            let cat = |parts: Vec<Tensor>| Tensor::cat(&parts, 0);
            let fused_forward = cat(on_device.forward(&x.to_device(device)).unwrap());
            let fused_transpose = on_device.transpose(&split(device)).unwrap();
            let tch_p = on_device.with_engine(Engine::TchOps);
            let forward_error = rel_error(&fused_forward, &cat(tch_p.forward(&x.to_device(device)).unwrap()))
                .max(rel_error(&fused_forward, &cat(cpu_p.forward(&x).unwrap())));
            let transpose_error = rel_error(&fused_transpose, &tch_p.transpose(&split(device)).unwrap())
                .max(rel_error(&fused_transpose, &cpu_p.transpose(&split(Device::Cpu)).unwrap()));
            for (what, error) in [("P", forward_error), ("P^T", transpose_error)] {
                checks.push(Check {
                    what: format!("fastfood {what} {scope:?} d={d} D={total}"),
                    max_rel_error: error,
                    bit_exact: None,
                    all_written: None,
                    ok: error < 1e-5,
                });
            }
        }
    }
}

fn time_fwht(device: Device, quick: bool, kernel_ok: bool, timings: &mut Vec<Timing>) {
    let lengths: &[u32] = if quick { &[12, 16] } else { &[20, 24, 26] };
    for &log_n in lengths {
        let x = Tensor::randn([1i64 << log_n], (Kind::Float, device));
        let mut y = Tensor::empty([1i64 << log_n], (Kind::Float, device));
        let (warmup, runs) = if quick { (1, 3) } else { (3, 20) };
        let copy = time_ms(device, warmup, runs, || y.copy_(&x));
        let fused_ms = if kernel_ok {
            time_ms(device, warmup, runs, || drop(fused::run(&Transform::new(&x, 1, log_n)).unwrap()))
        } else {
            f64::NAN
        };
        let tch_ops = time_ms(device, warmup, runs, || drop(fwht::fwht_kron(&x).unwrap()));
        let anchor = time_ms(device, 1, runs.min(5), || drop(fwht::fwht_anchor(&x).unwrap()));
        timings.push(Timing {
            what: format!("FWHT 2^{log_n}"),
            elements: 1 << log_n,
            copy_ms: copy,
            fused_ms,
            fused_over_copy: fused_ms / copy,
            tch_ops_ms: tch_ops,
            anchor_ms: anchor,
            speedup_over_tch_ops: tch_ops / fused_ms,
            speedup_over_anchor: anchor / fused_ms,
        });
    }
}

fn time_projection(device: Device, quick: bool, kernel_ok: bool, timings: &mut Vec<Timing>) -> Result<()> {
    let tensors = if quick {
        shapes::numels(&shapes::sequence_classifier(&synthetic::tiny_config("bert"), 2))
    } else {
        shapes::numels(&shapes::roberta_base_classifier())
    };
    let total: usize = tensors.iter().map(|(_, numel)| numel).sum();
    let d = 1000;
    let (warmup, runs) = if quick { (1, 3) } else { (2, 10) };
    let x = Tensor::randn([d as i64], (Kind::Float, device));
    let flat = Tensor::randn([total as i64], (Kind::Float, device));
    let mut copy_target = Tensor::empty([total as i64], (Kind::Float, device));
    let copy = time_ms(device, warmup, runs, || copy_target.copy_(&flat));
    for scope in [Scope::Global, Scope::PerTensor] {
        let mut forward_ms = Vec::new();
        let mut transpose_ms = Vec::new();
        // The factors are generated once per scope (seconds at RoBERTa-base size); the device
        // engines share them.
        let mut projector = Projector::new(
            &tensors,
            ProjectorSpec { d, scope, seed: 0, crop: Crop::None, storage: FactorStorage::Cached, device },
        )?;
        for engine in [Engine::Fused, Engine::TchOps, Engine::Anchor] {
            if engine == Engine::Fused && !kernel_ok {
                forward_ms.push(f64::NAN);
                transpose_ms.push(f64::NAN);
                continue;
            }
            projector = projector.with_engine(engine);
            let mut outputs = projector.forward(&x)?;
            forward_ms.push(time_ms(device, warmup, runs, || outputs = projector.forward(&x).unwrap()));
            transpose_ms.push(time_ms(device, warmup, runs, || drop(projector.transpose(&outputs).unwrap())));
        }
        for (what, ms) in [("P", &forward_ms), ("P^T", &transpose_ms)] {
            timings.push(Timing {
                what: format!("{what} {scope:?} d={d} D={total}"),
                elements: total,
                copy_ms: copy,
                fused_ms: ms[0],
                fused_over_copy: ms[0] / copy,
                tch_ops_ms: ms[1],
                anchor_ms: ms[2],
                speedup_over_tch_ops: ms[1] / ms[0],
                speedup_over_anchor: ms[2] / ms[0],
            });
        }
    }
    Ok(())
}

fn print_report(report: &GpuReport) {
    println!();
    println!("gpu-check on {} ({}), torch {}", report.device, report.kernel, report.torch);
    for error in &report.errors {
        println!("  SECTION FAILED {error}");
    }
    let failed: Vec<&Check> = report.checks.iter().filter(|check| !check.ok).collect();
    let worst = report.checks.iter().map(|check| check.max_rel_error).fold(0.0f64, f64::max);
    let exact = report.checks.iter().filter(|check| check.bit_exact == Some(true)).count();
    let exact_checked = report.checks.iter().filter(|check| check.bit_exact.is_some()).count();
    println!(
        "correctness: {} of {} checks passed; worst relative error {worst:.2e}; bit-exact with the CPU emulation {exact}/{exact_checked}",
        report.checks.len() - failed.len(),
        report.checks.len()
    );
    for check in failed {
        println!(
            "  FAILED {}: rel error {:.2e}, bit exact {:?}, all written {:?}",
            check.what, check.max_rel_error, check.bit_exact, check.all_written
        );
    }
    println!(
        "{:<40} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "operation", "copy ms", "fused ms", "/copy", "tch-op ms", "anchor ms", "x tch-op", "x anchor"
    );
    for timing in &report.timings {
        println!(
            "{:<40} {:>10.3} {:>10.3} {:>9.2} {:>10.3} {:>10.3} {:>9.1} {:>9.1}",
            timing.what,
            timing.copy_ms,
            timing.fused_ms,
            timing.fused_over_copy,
            timing.tch_ops_ms,
            timing.anchor_ms,
            timing.speedup_over_tch_ops,
            timing.speedup_over_anchor
        );
    }
    for train in &report.train {
        train_step::print_report(train);
    }
}
