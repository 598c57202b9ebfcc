//! `bench-suite bench-fastfood`: measures, in one process, medians after a warm-up:
//! - FWHT of 2^20, 2^24, 2^26 f32 values on CPU: our kernel, the tch-op (CUDA) path run on CPU,
//!   and the authors' per-stage algorithm, each against a plain copy of the same buffer;
//! - a full `P` and `P^T` over RoBERTa-base's 201 tensors at d = 1000, both scopes: time, cached
//!   factor bytes and the peak resident memory added;
//! - what a training step pays for the projection, at MiniLM-L6's and RoBERTa-base's sizes, both
//!   scopes, SAID: `Subspace::write_weights` (`P theta`, then `theta_0 + lambda P theta` into the
//!   weights) against its floor, a copy of `D` f32 values (one read of `theta_0`, one write of the
//!   weights), and `Subspace::gradients` (`P^T` of the gradients, and `grad lambda`) against its
//!   floor, a copy of the `D` gradient values. Each copy uses both cores and runs just before the
//!   operation it is the floor of, after a pause that lets torch's threads stop spinning; the
//!   ratio is the median of the per-run ratios.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use encoders::models::bert;
use encoders::shapes;
use rayon::prelude::*;
use serde::Serialize;
use subspace::fastfood::{Crop, FactorStorage, Projector, ProjectorSpec, Scope};
use subspace::{Compat, LambdaGrouping, LayerGroup, Method, Subspace, SubspaceConfig, fwht};
use tch::{Device, Kind, Tensor};

use crate::measure::{cpu_model, median, median_time, ms, peak_rss, reset_peak_rss};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Smaller sizes and fewer repetitions (a smoke test of the benchmark itself).
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Run only these sections (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
}

/// The parts of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// The FWHT against a copy and the authors' algorithm.
    Fwht,
    /// `P` and `P^T` through the projector's API over RoBERTa-base.
    Projection,
    /// What a training step pays for the projection, against its floor.
    Step,
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
    step_projection: Vec<StepRow>,
}

#[derive(Serialize)]
struct StepRow {
    model: &'static str,
    scope: Scope,
    method: Method,
    d: usize,
    total_params: usize,
    total_padded_len: usize,
    /// A copy of `D` f32 values with both cores (median of the copies run before each write).
    write_floor_ms: f64,
    write_weights_ms: f64,
    write_over_floor: f64,
    /// The same copy, run before each `gradients` call.
    gradients_floor_ms: f64,
    gradients_ms: f64,
    gradients_over_floor: f64,
}

pub fn run(args: &Args) -> Result<()> {
    let quick = args.quick;
    let wanted = |section: Section| args.only.is_empty() || args.only.contains(&section);
    let report = Report {
        machine: cpu_model(),
        rayon_threads: rayon::current_num_threads(),
        torch_threads: tch::get_num_threads(),
        fwht: if wanted(Section::Fwht) { bench_fwht(if quick { &[20, 22] } else { &[20, 24, 26] }) } else { vec![] },
        projection: if wanted(Section::Projection) { bench_projection(quick)? } else { vec![] },
        step_projection: if wanted(Section::Step) { bench_step_projection(quick)? } else { vec![] },
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
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

/// A model of the step-projection rows: its name, its family's tensor-name prefix, its layout.
type StepModel = (&'static str, &'static str, Vec<(String, Vec<i64>)>);

/// The models of the step-projection rows: MiniLM-L6 (`sentence-transformers/all-MiniLM-L6-v2`
/// with a two-label head, D = 22,713,986) and RoBERTa-base (D = 124,647,170); the quick run uses
/// a 2-layer, 256-wide BERT instead of both.
fn step_models(quick: bool) -> Vec<StepModel> {
    if quick {
        return vec![("bert-2x256", "bert", bert::encoder_classifier_layout("bert", 30522, 512, 2, 256, 1024, 2, 2))];
    }
    vec![
        ("minilm-l6", "bert", bert::encoder_classifier_layout("bert", 30522, 512, 2, 384, 1536, 6, 2)),
        ("roberta-base", "roberta", shapes::roberta_base_classifier()),
    ]
}

fn bench_step_projection(quick: bool) -> Result<Vec<StepRow>> {
    let (d, runs) = (1861, if quick { 2 } else { 7 });
    let mut rows = Vec::new();
    for (model, prefix, layout) in step_models(quick) {
        let params: Vec<(String, Tensor)> = layout
            .iter()
            .map(|(name, shape)| (name.clone(), (Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.02)))
            .collect();
        // Gradients as a backward pass leaves them: one random tensor per parameter.
        for (_, param) in &params {
            let mut grad = param.grad();
            if !grad.defined() {
                let _ = param.set_requires_grad(true);
                (param * Tensor::randn(param.size(), (Kind::Float, Device::Cpu))).sum(Kind::Float).backward();
                grad = param.grad();
            }
            assert!(grad.defined());
        }
        let layers: Vec<LayerGroup> = params.iter().map(|(name, _)| bert::layer_group(prefix, name)).collect();
        let total: usize = params.iter().map(|(_, param)| param.numel()).sum();
        let source: Vec<f32> = (0..total).map(|idx| (idx % 1000) as f32).collect();
        let mut target = vec![0.0f32; total];
        let mut copy = || {
            // torch's OpenMP threads spin for up to 200 ms after an operation (KMP_BLOCKTIME) and
            // would slow whatever runs next: the floor and the operation start on a quiet machine.
            std::thread::sleep(Duration::from_millis(250));
            let start = Instant::now();
            target.par_chunks_mut(1 << 16).zip(source.par_chunks(1 << 16)).for_each(|(target, source)| {
                target.copy_from_slice(std::hint::black_box(source));
            });
            start.elapsed()
        };
        for scope in [Scope::Global, Scope::PerTensor] {
            let config = SubspaceConfig {
                method: Method::Said,
                d,
                scope,
                grouping: LambdaGrouping::PerLayer,
                compat: Compat::None,
                seed: 0,
                factor_storage: FactorStorage::Cached,
            };
            let mut subspace = Subspace::new(&params, &layers, config)?;
            let theta = Tensor::randn([subspace.theta().numel() as i64], (Kind::Float, Device::Cpu)) * 0.1;
            let lambda = subspace.lambda().ones_like() * 1.5;
            subspace.set(&theta, &lambda)?;
            let (mut write, mut write_floor, mut write_ratio) = (Vec::new(), Vec::new(), Vec::new());
            let (mut grads, mut grads_floor, mut grads_ratio) = (Vec::new(), Vec::new(), Vec::new());
            for run in 0..=runs {
                let floor = copy();
                let start = Instant::now();
                subspace.write_weights()?;
                let elapsed = start.elapsed();
                if run > 0 {
                    write_ratio.push(elapsed.as_secs_f64() / floor.as_secs_f64());
                    write.push(elapsed);
                    write_floor.push(floor);
                }
                let floor = copy();
                let start = Instant::now();
                drop(subspace.gradients()?);
                let elapsed = start.elapsed();
                if run > 0 {
                    grads_ratio.push(elapsed.as_secs_f64() / floor.as_secs_f64());
                    grads.push(elapsed);
                    grads_floor.push(floor);
                }
            }
            let median_ratio = |ratios: &mut Vec<f64>| {
                ratios.sort_by(f64::total_cmp);
                ratios[ratios.len() / 2]
            };
            let summary = subspace.projector().summary();
            rows.push(StepRow {
                model,
                scope,
                method: Method::Said,
                d,
                total_params: total,
                total_padded_len: summary.total_padded_len,
                write_floor_ms: ms(median(&write_floor)),
                write_weights_ms: ms(median(&write)),
                write_over_floor: median_ratio(&mut write_ratio),
                gradients_floor_ms: ms(median(&grads_floor)),
                gradients_ms: ms(median(&grads)),
                gradients_over_floor: median_ratio(&mut grads_ratio),
            });
            drop(subspace);
            subspace::release_shared_projector();
        }
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
    println!();
    println!("What a training step pays for the projection (SAID, scales per layer, f32, CPU): write = P theta");
    println!("and theta_0 + lambda P theta into the weights; gradients = P^T of the gradients and grad lambda.");
    println!("Floor: a copy of D f32 values with both cores, run just before each; /floor: median per-run ratio");
    println!(
        "{:>13} {:>10} {:>6} {:>12} {:>12} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}",
        "model", "scope", "d", "D", "padded", "floor ms", "write ms", "/floor", "floor ms", "grads ms", "/floor"
    );
    for row in &report.step_projection {
        println!(
            "{:>13} {:>10} {:>6} {:>12} {:>12} {:>9.1} {:>9.1} {:>8.2} {:>9.1} {:>9.1} {:>8.2}",
            row.model,
            format!("{:?}", row.scope),
            row.d,
            row.total_params,
            row.total_padded_len,
            row.write_floor_ms,
            row.write_weights_ms,
            row.write_over_floor,
            row.gradients_floor_ms,
            row.gradients_ms,
            row.gradients_over_floor,
        );
    }
}
