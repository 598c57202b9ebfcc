//! FWHT throughput on CPU: our kernel, the tch-op (CUDA) path and the authors' per-stage algorithm.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use subspace::fwht;
use tch::Tensor;

fn fwht_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("fwht_f32");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for log2_len in [16u32, 20, 22] {
        let len = 1usize << log2_len;
        group.throughput(Throughput::Bytes((len * size_of::<f32>()) as u64));
        let source: Vec<f32> = (0..len).map(|idx| (idx % 101) as f32 - 50.0).collect();
        let mut data = source.clone();
        group.bench_function(BenchmarkId::new("memcpy", len), |b| b.iter(|| data.copy_from_slice(&source)));
        group.bench_function(BenchmarkId::new("ours", len), |b| b.iter(|| fwht::fwht_slice(&mut data).unwrap()));
        let tensor = Tensor::from_slice(&source);
        group.bench_function(BenchmarkId::new("tch_ops", len), |b| b.iter(|| fwht::fwht_kron(&tensor).unwrap()));
        if log2_len <= 20 {
            group.bench_function(BenchmarkId::new("anchor", len), |b| b.iter(|| fwht::fwht_anchor(&tensor).unwrap()));
        }
    }
    group.finish();
}

criterion_group!(benches, fwht_cpu);
