//! `bench-suite bench-fastfood`: measures, in one process, medians after a warm-up:
//! - FWHT of 2^20, 2^24, 2^26 f32 values on CPU: our kernel, the tch-op (CUDA) path run on CPU,
//!   and the authors' per-stage algorithm, each against a plain copy of the same buffer;
//! - a full `P` and `P^T` over RoBERTa-base's 201 tensors at d = 1000, both scopes: time, cached
//!   factor bytes and the peak resident memory added.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use encoders::shapes;
use serde::Serialize;
use subspace::fastfood::{Crop, FactorStorage, Projector, ProjectorSpec, Scope};
use subspace::fwht;
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

pub fn run(args: &Args) -> Result<()> {
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
