//! Fastfood: against the dense matrix built from the same factors, the transpose identity,
//! chunking instead of cropping, determinism, and the norm.

use subspace::fastfood::{Crop, Engine, FactorStorage, FastfoodError, Projector, ProjectorSpec, Scope};
use tch::{Device, Kind, Tensor};

fn shapes(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(name, numel)| (name.to_string(), *numel)).collect()
}

fn projector(tensors: &[(String, usize)], d: usize, scope: Scope, seed: u64) -> Projector {
    Projector::new(
        tensors,
        ProjectorSpec { d, scope, seed, crop: Crop::None, storage: FactorStorage::Cached, device: Device::Cpu },
    )
    .unwrap()
}

fn random(len: usize, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([len as i64], (Kind::Double, Device::Cpu))
}

fn concat(parts: &[Tensor]) -> Tensor {
    Tensor::cat(parts, 0)
}

fn max_abs(tensor: &Tensor) -> f64 {
    tensor.abs().max().double_value(&[])
}

fn split(flat: &Tensor, tensors: &[(String, usize)]) -> Vec<Tensor> {
    let mut offset = 0;
    tensors
        .iter()
        .map(|(_, numel)| {
            let part = flat.narrow(0, offset, *numel as i64);
            offset += *numel as i64;
            part
        })
        .collect()
}

/// Forward equals the dense matrix, and `<P x, y> = <x, P^T y>`, for random shapes, seeds, both
/// scopes, `d` below and above the block length, and both engines (the CPU loops and the tch-op
/// path that CUDA uses).
#[test]
fn matches_the_dense_matrix_and_its_transpose() {
    let cases: [&[(&str, usize)]; 4] = [
        &[("w", 5)],
        &[("a", 3), ("b", 17), ("c", 1)],
        &[("embeddings.weight", 40), ("encoder.layer.0.bias", 6), ("classifier.weight", 33), ("x", 2)],
        &[("big", 300), ("small", 7)],
    ];
    let mut checked = 0;
    for (case_idx, list) in cases.iter().enumerate() {
        let tensors = shapes(list);
        let total: usize = tensors.iter().map(|(_, numel)| numel).sum();
        for (scope, engine) in [Scope::Global, Scope::PerTensor]
            .into_iter()
            .flat_map(|scope| [(scope, Engine::Cpu), (scope, Engine::TchOps)])
        {
            for d in [1, 2, 9, 70, 700] {
                let seed = 1000 * case_idx as u64 + d as u64;
                let p = projector(&tensors, d, scope, seed).with_engine(engine);
                assert_eq!(p.engine(), engine);
                let dense = p.dense_matrix();
                assert_eq!(dense.size(), [total as i64, d as i64]);
                let x = random(d, seed as i64);
                let forward = concat(&p.forward(&x).unwrap());
                let expected = dense.mv(&x);
                let error = max_abs(&(&forward - &expected));
                assert!(
                    error < 1e-9 * (1.0 + max_abs(&expected)),
                    "{list:?} {scope:?} {engine:?} d={d}: forward error {error}"
                );

                let y = random(total, seed as i64 + 1);
                let transposed = p.transpose(&split(&y, &tensors)).unwrap();
                let expected = dense.transpose(0, 1).mv(&y);
                let error = max_abs(&(&transposed - &expected));
                assert!(
                    error < 1e-9 * (1.0 + max_abs(&expected)),
                    "{list:?} {scope:?} {engine:?} d={d}: transpose error {error}"
                );
                let lhs = forward.dot(&y).double_value(&[]);
                let rhs = x.dot(&transposed).double_value(&[]);
                assert!((lhs - rhs).abs() < 1e-9 * (1.0 + lhs.abs()), "{lhs} vs {rhs}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 80);
}

/// The fused engine (the CUDA default; here its exact CPU emulation) in f32 against the dense f64
/// matrix, for both scopes and `d` below and above the block length.
#[test]
fn fused_engine_matches_the_dense_matrix_in_f32() {
    let tensors = shapes(&[("a", 3), ("b", 17), ("c", 1), ("big", 300)]);
    let total: usize = tensors.iter().map(|(_, numel)| numel).sum();
    for scope in [Scope::Global, Scope::PerTensor] {
        for d in [1, 9, 70, 700] {
            let p = projector(&tensors, d, scope, 77 + d as u64).with_engine(Engine::Fused);
            let dense = p.dense_matrix();
            let x = random(d, d as i64);
            let forward = concat(&p.forward(&x.to_kind(Kind::Float)).unwrap()).to_kind(Kind::Double);
            let expected = dense.mv(&x);
            let error = max_abs(&(&forward - &expected)) / (1e-12 + max_abs(&expected));
            assert!(error < 1e-5, "{scope:?} d={d}: fused forward relative error {error}");
            let y = random(total, d as i64 + 1);
            let transposed = p.transpose(&split(&y.to_kind(Kind::Float), &tensors)).unwrap().to_kind(Kind::Double);
            let expected = dense.transpose(0, 1).mv(&y);
            let error = max_abs(&(&transposed - &expected)) / (1e-12 + max_abs(&expected));
            assert!(error < 1e-5, "{scope:?} d={d}: fused transpose relative error {error}");
        }
    }
}

/// With d larger than a block, every coordinate of x still reaches every tensor (no cropping);
/// the authors' cropping makes the coordinates past the block length invisible.
#[test]
fn chunks_instead_of_cropping() {
    let tensors = shapes(&[("bias", 6), ("weight", 100)]);
    let d = 50;
    let exact = Projector::new(
        &tensors,
        ProjectorSpec {
            d,
            scope: Scope::PerTensor,
            seed: 3,
            crop: Crop::None,
            storage: FactorStorage::Cached,
            device: Device::Cpu,
        },
    )
    .unwrap();
    let dense = exact.dense_matrix();
    let bias_rows = dense.narrow(0, 0, 6);
    let column_norms = Vec::<f64>::try_from(bias_rows.norm_scalaropt_dim(2.0, [0], false)).unwrap();
    assert!(column_norms.iter().all(|&norm| norm > 1e-3), "a coordinate is cropped: {column_norms:?}");
    let summary = exact.summary();
    assert_eq!(
        (summary.n_blocks, summary.total_padded_len, summary.n_groups_cropped_by_authors_code),
        (7 + 1, 7 * 8 + 128, 1)
    );

    let cropped = Projector::new(
        &tensors,
        ProjectorSpec {
            d,
            scope: Scope::PerTensor,
            seed: 3,
            crop: Crop::ToBlock,
            storage: FactorStorage::Cached,
            device: Device::Cpu,
        },
    )
    .unwrap();
    let dense = cropped.dense_matrix();
    assert_eq!(max_abs(&dense.narrow(0, 0, 6).narrow(1, 8, d as i64 - 8)), 0.0, "columns past L_t = 8 must be cropped");
    assert!(max_abs(&dense.narrow(0, 0, 6).narrow(1, 0, 8)) > 0.0);
    // The 100-element tensor has L = 128 >= d: nothing cropped there, identical to the exact map.
    let rows = |m: &Tensor| m.narrow(0, 6, 100);
    assert!(rows(&dense).equal(&rows(&exact.dense_matrix())));
}

#[test]
fn same_seed_gives_bit_identical_maps_in_any_call_order_and_storage() {
    let tensors = shapes(&[("a", 1000), ("b", 37), ("c", 4096)]);
    let x = random(300, 5).to_kind(Kind::Float);
    let first = projector(&tensors, 300, Scope::PerTensor, 42).forward(&x).unwrap();
    // Another projector in between, and the same tensors in another list order.
    let _other = projector(&tensors, 77, Scope::Global, 7).forward(&random(77, 1).to_kind(Kind::Float)).unwrap();
    let reordered = shapes(&[("c", 4096), ("a", 1000), ("b", 37)]);
    let second = projector(&reordered, 300, Scope::PerTensor, 42).forward(&x).unwrap();
    assert!(first[0].equal(&second[1]) && first[1].equal(&second[2]) && first[2].equal(&second[0]));
    let regenerated = Projector::new(
        &tensors,
        ProjectorSpec {
            d: 300,
            scope: Scope::PerTensor,
            seed: 42,
            crop: Crop::None,
            storage: FactorStorage::Regenerate,
            device: Device::Cpu,
        },
    )
    .unwrap()
    .forward(&x)
    .unwrap();
    for (cached, regenerated) in first.iter().zip(&regenerated) {
        assert!(cached.equal(regenerated));
    }

    let other_seed = projector(&tensors, 300, Scope::PerTensor, 43).forward(&x).unwrap();
    assert!(first.iter().zip(&other_seed).all(|(a, b)| !a.equal(b)));
    let renamed = shapes(&[("a", 1000), ("b2", 37), ("c", 4096)]);
    let renamed = projector(&renamed, 300, Scope::PerTensor, 42).forward(&x).unwrap();
    assert!(first[0].equal(&renamed[0]) && !first[1].equal(&renamed[1]));
}

/// `||P x|| / ||x||` over many draws: the normalisation keeps it near 1 per block group.
#[test]
fn norm_is_preserved_within_a_band() {
    let mut ratios = Vec::new();
    for seed in 0..40u64 {
        for (tensors, d) in
            [(shapes(&[("w", 3000)]), 100), (shapes(&[("w", 200)]), 1000), (shapes(&[("w", 5000)]), 5000)]
        {
            let p = projector(&tensors, d, Scope::PerTensor, seed);
            let x = random(d, seed as i64);
            let y = &p.forward(&x).unwrap()[0];
            ratios.push(y.norm().double_value(&[]) / x.norm().double_value(&[]));
        }
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let (min, max) = ratios.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    eprintln!("norm ratio over {} draws: mean {mean:.4}, range [{min:.4}, {max:.4}]", ratios.len());
    assert!((0.97..1.03).contains(&mean), "mean ratio {mean}");
    assert!(min > 0.8 && max < 1.2, "ratios in [{min}, {max}]");
}

#[test]
fn rejects_bad_requests() {
    let err = |result: Result<Projector, FastfoodError>| result.err().unwrap();
    let cpu = Device::Cpu;
    assert_eq!(
        err(Projector::new(
            &shapes(&[("w", 4)]),
            ProjectorSpec {
                d: 0,
                scope: Scope::Global,
                seed: 0,
                crop: Crop::None,
                storage: FactorStorage::Cached,
                device: cpu
            }
        )),
        FastfoodError::EmptyInput
    );
    assert_eq!(
        err(Projector::new(
            &[],
            ProjectorSpec {
                d: 3,
                scope: Scope::Global,
                seed: 0,
                crop: Crop::None,
                storage: FactorStorage::Cached,
                device: cpu
            }
        )),
        FastfoodError::NoTensors
    );
    assert_eq!(
        err(Projector::new(
            &shapes(&[("w", 0)]),
            ProjectorSpec {
                d: 3,
                scope: Scope::Global,
                seed: 0,
                crop: Crop::None,
                storage: FactorStorage::Cached,
                device: cpu
            }
        )),
        FastfoodError::EmptyTensor { name: "w".into() }
    );
    let huge = shapes(&[("a", 1 << 29), ("b", (1 << 29) + 1)]);
    let message = err(Projector::new(
        &huge,
        ProjectorSpec {
            d: 3,
            scope: Scope::Global,
            seed: 0,
            crop: Crop::None,
            storage: FactorStorage::Regenerate,
            device: cpu,
        },
    ))
    .to_string();
    assert!(message.contains("per_tensor"), "{message}");
    let p = projector(&shapes(&[("w", 4)]), 3, Scope::Global, 0);
    assert_eq!(p.forward(&random(4, 0)).err(), Some(FastfoodError::WrongInputLength { expected: 3, actual: 4 }));
    assert_eq!(p.transpose(&[]).err(), Some(FastfoodError::WrongTensorCount { expected: 1, actual: 0 }));
    assert_eq!(
        p.transpose(&[random(5, 0)]).err(),
        Some(FastfoodError::WrongTensorLength { index: 0, name: "w".to_owned(), expected: 4, actual: 5 })
    );
}

/// The two engines agree on f32 at a realistic size, where the CPU engine's shortcuts (tiling,
/// fused ends and scatter-add) differ most from the plain algorithm; `d = 70,000` takes the CPU
/// engine's full-width permutation entries (the others fit in 16 bits).
#[test]
fn engines_agree_on_f32_at_realistic_sizes() {
    let tensors = shapes(&[("embeddings", 300_000), ("bias", 768), ("weight", 70_000)]);
    for (scope, d) in
        [(Scope::PerTensor, 1000), (Scope::Global, 1000), (Scope::PerTensor, 5000), (Scope::Global, 70_000)]
    {
        let cpu = projector(&tensors, d, scope, 9);
        let x = random(d, 4).to_kind(Kind::Float);
        let total: usize = tensors.iter().map(|(_, numel)| numel).sum();
        let y = split(&random(total, 5).to_kind(Kind::Float), &tensors);
        // The tch-op path, the fused kernel's emulation and the authors' per-stage FWHT, each
        // against the CPU engine.
        for engine in [Engine::TchOps, Engine::Fused, Engine::Anchor] {
            let other = projector(&tensors, d, scope, 9).with_engine(engine);
            for (ours, theirs) in cpu.forward(&x).unwrap().iter().zip(other.forward(&x).unwrap()) {
                let error = max_abs(&(ours - &theirs)) / max_abs(&theirs);
                assert!(error < 1e-5, "{scope:?} {engine:?} d={d}: forward relative error {error}");
            }
            let (ours, theirs) = (cpu.transpose(&y).unwrap(), other.transpose(&y).unwrap());
            let error = max_abs(&(&ours - &theirs)) / max_abs(&theirs);
            assert!(error < 1e-5, "{scope:?} {engine:?} d={d}: transpose relative error {error}");
        }
    }
}

/// The CPU engine's results do not depend on the number of threads.
#[test]
fn cpu_engine_is_bit_identical_across_thread_counts() {
    let tensors = shapes(&[("a", 200_000), ("b", 3000)]);
    let to_vec = |tensor: &Tensor| Vec::<f32>::try_from(tensor.to_kind(Kind::Float)).unwrap();
    let x = to_vec(&random(2000, 6));
    let y = to_vec(&random(203_000, 7));
    // Tensors cannot cross threads, so everything is built inside the pool from plain vectors.
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let p = projector(&tensors, 2000, Scope::PerTensor, 2);
            let forward: Vec<Vec<f32>> = p.forward(&Tensor::from_slice(&x)).unwrap().iter().map(to_vec).collect();
            let transpose = to_vec(&p.transpose(&split(&Tensor::from_slice(&y), &tensors)).unwrap());
            (forward, transpose)
        })
    };
    let (forward_1, transpose_1) = run(1);
    let (forward_3, transpose_3) = run(3);
    assert_eq!(forward_1, forward_3);
    assert_eq!(transpose_1, transpose_3);
}

/// The engines agree across the `d` range a d90 search covers on a small model (D = 20,642, the
/// smoke preset's, where `d` reaches half of D and the block length is 32,768).
#[test]
fn engines_agree_across_the_search_range_of_a_small_model() {
    let tensors =
        shapes(&[("embeddings", 1280), ("layer.0", 8_448), ("layer.1", 8_448), ("pooler", 1056), ("head", 1410)]);
    for d in [100, 668, 774, 1037, 4475, 9295] {
        let cpu = projector(&tensors, d, Scope::Global, 3);
        let tch_ops = projector(&tensors, d, Scope::Global, 3).with_engine(Engine::TchOps);
        let x = random(d, 4).to_kind(Kind::Float);
        let (ours, theirs) = (concat(&cpu.forward(&x).unwrap()), concat(&tch_ops.forward(&x).unwrap()));
        let error = max_abs(&(&ours - &theirs)) / max_abs(&theirs);
        assert!(error < 1e-5, "d={d}: forward relative error {error}");
        let norm_ratio = ours.norm().double_value(&[]) / x.norm().double_value(&[]);
        assert!((0.8..1.25).contains(&norm_ratio), "d={d}: ||Px|| / ||x|| = {norm_ratio}");
        let y = split(&random(20_642, 5).to_kind(Kind::Float), &tensors);
        let (ours, theirs) = (cpu.transpose(&y).unwrap(), tch_ops.transpose(&y).unwrap());
        let error = max_abs(&(&ours - &theirs)) / max_abs(&theirs);
        assert!(error < 1e-5, "d={d}: transpose relative error {error}");
    }
}

/// `forward_into` a reused buffer gives exactly `forward`'s values, overwriting what the buffer
/// held (a stale value would leak into the weights); `transpose_weighted` gives exactly the
/// transpose of the scaled vectors; both refuse mismatched arguments.
#[test]
fn a_reused_output_buffer_and_weighted_transpose_are_exact() {
    let tensors = shapes(&[("embeddings", 3000), ("bias", 7), ("weight", 700)]);
    let total: usize = tensors.iter().map(|(_, numel)| numel).sum();
    for scope in [Scope::Global, Scope::PerTensor] {
        for engine in [Engine::Cpu, Engine::TchOps] {
            for kind in [Kind::Float, Kind::Double] {
                let p = projector(&tensors, 50, scope, 3).with_engine(engine);
                let buffer = Tensor::full([total as i64], f64::NAN, (kind, Device::Cpu));
                for seed in [1, 2] {
                    let x = random(50, seed).to_kind(kind);
                    let fresh = p.forward(&x).unwrap();
                    let reused = p.forward_into(&x, &buffer).unwrap();
                    for (fresh, reused) in fresh.iter().zip(&reused) {
                        assert!(fresh.equal(reused), "{scope:?} {engine:?} {kind:?}: forward_into differs");
                    }
                }
                let y = split(&random(total, 4).to_kind(kind), &tensors);
                let weights = [0.5, -3.0, 1.25];
                let scaled: Vec<Tensor> = y.iter().zip(weights).map(|(y, w)| y * w).collect();
                let expected = p.transpose(&scaled).unwrap();
                let weighted = p.transpose_weighted(&y, Some(&weights)).unwrap();
                assert!(weighted.equal(&expected), "{scope:?} {engine:?} {kind:?}: weighted transpose differs");
                assert!(p.transpose_weighted(&y, None).unwrap().equal(&p.transpose(&y).unwrap()));
                assert_eq!(
                    p.transpose_weighted(&y, Some(&weights[..2])).err(),
                    Some(FastfoodError::WrongTensorCount { expected: 3, actual: 2 })
                );
            }
        }
    }
    // A buffer that starts inside a larger allocation (a storage offset) works like any other.
    let p = projector(&tensors, 50, Scope::Global, 3);
    let x = random(50, 1).to_kind(Kind::Float);
    let larger = Tensor::full([total as i64 + 9], f64::NAN, (Kind::Float, Device::Cpu));
    let inside = larger.narrow(0, 5, total as i64);
    for (fresh, reused) in p.forward(&x).unwrap().iter().zip(p.forward_into(&x, &inside).unwrap()) {
        assert!(fresh.equal(&reused), "a buffer with a storage offset");
    }
    assert!(larger.narrow(0, 0, 5).isnan().all().int64_value(&[]) == 1, "nothing written before the buffer");
    // Wrong length, kind, layout, or memory shared with the input.
    let shared = Tensor::zeros([total as i64], (Kind::Float, Device::Cpu));
    let x_inside = shared.narrow(0, 10, 50);
    for (what, bad, x) in [
        ("length", Tensor::zeros([total as i64 - 1], (Kind::Float, Device::Cpu)), &x),
        ("kind", Tensor::zeros([total as i64], (Kind::Double, Device::Cpu)), &x),
        ("layout", Tensor::zeros([total as i64, 2], (Kind::Float, Device::Cpu)).select(1, 0), &x),
        ("overlap", shared.shallow_clone(), &x_inside),
    ] {
        let err = p.forward_into(x, &bad).err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(matches!(err, FastfoodError::WrongOutput { .. }), "{what}: {err}");
    }
    let y = split(&random(total, 4).to_kind(Kind::Float), &tensors);
    let mut mixed: Vec<Tensor> = y.iter().map(Tensor::shallow_clone).collect();
    mixed[1] = mixed[1].to_kind(Kind::Double);
    assert_eq!(p.transpose(&mixed).err(), Some(FastfoodError::MixedKinds { first: Kind::Float, other: Kind::Double }));
}
