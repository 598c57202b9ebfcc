//! Fastfood `P` and `P^T` on CPU over a BERT-small-shaped model (4 layers, hidden 256), both
//! scopes and both engines.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use encoders::models::bert;
use encoders::shapes;
use subspace::fastfood::{Crop, Engine, FactorStorage, Projector, ProjectorSpec, Scope};
use tch::{Device, Kind, Tensor};

fn projection(c: &mut Criterion) {
    let tensors = shapes::numels(&bert::encoder_classifier_layout("bert", 30522, 512, 2, 256, 1024, 4, 2));
    let total: usize = tensors.iter().map(|(_, numel)| numel).sum();
    let mut group = c.benchmark_group("fastfood_bert_small");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes((total * size_of::<f32>()) as u64));
    let d = 1000;
    let x = Tensor::randn([d as i64], (Kind::Float, Device::Cpu));
    for scope in [Scope::PerTensor, Scope::Global] {
        for engine in [Engine::Cpu, Engine::TchOps] {
            let projector = Projector::new(
                &tensors,
                ProjectorSpec {
                    d,
                    scope,
                    seed: 0,
                    crop: Crop::None,
                    storage: FactorStorage::Cached,
                    device: Device::Cpu,
                },
            )
            .unwrap()
            .with_engine(engine);
            let name = format!("{scope:?}_{engine:?}");
            let outputs = projector.forward(&x).unwrap();
            group.bench_function(BenchmarkId::new(format!("{name}_forward"), d), |b| {
                b.iter(|| projector.forward(&x).unwrap())
            });
            group.bench_function(BenchmarkId::new(format!("{name}_transpose"), d), |b| {
                b.iter(|| projector.transpose(&outputs).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, projection);
