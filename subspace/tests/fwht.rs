//! FWHT: the CPU kernel against a dense Hadamard product, the involution `H H = n I`, and the
//! tch-op (CUDA) path and the authors' algorithm against the kernel.

use subspace::fwht::{self, FwhtError};
use tch::{Kind, Tensor};

fn random(len: usize, seed: i64, kind: Kind) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([len as i64], (kind, tch::Device::Cpu))
}

fn to_vec_f64(tensor: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(tensor.to_kind(Kind::Double).reshape([-1])).unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn dense_hadamard_product(x: &[f64]) -> Vec<f64> {
    let len = x.len();
    (0..len)
        .map(|row| (0..len).map(|col| if (row & col).count_ones() % 2 == 0 { x[col] } else { -x[col] }).sum())
        .collect()
}

#[test]
fn matches_dense_hadamard_for_every_length_up_to_4096() {
    for log2 in 0..=12 {
        let len = 1usize << log2;
        let x = to_vec_f64(&random(len, log2 as i64, Kind::Double));
        let expected = dense_hadamard_product(&x);
        // Default blocking, and small blockings that reach the multi-pass column code at these sizes.
        for (leaf_bits, tile_row_bits, tile_width) in [(11, 12, 16), (2, 1, 1), (3, 2, 2), (4, 3, 8), (1, 5, 2)] {
            let mut actual = x.clone();
            fwht::fwht_slice_blocked(&mut actual, leaf_bits, tile_row_bits, tile_width).unwrap();
            let error = max_abs_diff(&actual, &expected);
            assert!(
                error < 1e-9 * (len as f64),
                "n = {len}, blocking {leaf_bits}/{tile_row_bits}/{tile_width}: {error}"
            );
        }
        let mut actual = x.clone();
        fwht::fwht_slice(&mut actual).unwrap();
        assert!(max_abs_diff(&actual, &expected) < 1e-9 * (len as f64), "n = {len}");
    }
}

#[test]
fn twice_is_n_times_identity_for_large_lengths() {
    for (log2, kind) in [(16, Kind::Float), (20, Kind::Float), (21, Kind::Double)] {
        let len = 1usize << log2;
        let x = random(len, 7, kind);
        let mut y = x.copy();
        fwht::fwht_in_place(&mut y).unwrap();
        fwht::fwht_in_place(&mut y).unwrap();
        let relative = (y / len as f64 - &x).norm().double_value(&[]) / x.norm().double_value(&[]);
        let bound = if kind == Kind::Float { 1e-6 } else { 1e-14 };
        assert!(relative < bound, "n = 2^{log2} {kind:?}: relative error {relative}");
    }
}

#[test]
fn small_blockings_agree_with_default_on_multi_pass_sizes() {
    let x = to_vec_f64(&random(1 << 15, 3, Kind::Double));
    let mut expected = x.clone();
    fwht::fwht_slice(&mut expected).unwrap();
    // 15 bits: leaf 3 bits, then 12 bits in passes of at most 4 bits (3 passes, parallel path).
    let mut actual = x.clone();
    fwht::fwht_slice_blocked(&mut actual, 3, 4, 4).unwrap();
    assert!(max_abs_diff(&actual, &expected) < 1e-9);
}

#[test]
fn tch_op_path_and_authors_algorithm_match_the_kernel() {
    for (log2, rows) in [(0, 1), (1, 3), (5, 2), (7, 1), (8, 4), (13, 3), (15, 1), (17, 2)] {
        let len = 1i64 << log2;
        tch::manual_seed(log2 as i64);
        let x = Tensor::randn([rows, len], (Kind::Float, tch::Device::Cpu));
        let kernel = fwht::fwht(&x).unwrap();
        let scale = (len as f64).sqrt() * kernel.abs().max().double_value(&[]).max(1.0);
        for (name, other) in [("kron", fwht::fwht_kron(&x).unwrap()), ("anchor", fwht::fwht_anchor(&x).unwrap())] {
            assert_eq!(other.size(), x.size(), "{name}");
            let error = (&other - &kernel).abs().max().double_value(&[]);
            assert!(error < 1e-6 * scale, "{name} n = 2^{log2}: max abs error {error}");
        }
    }
}

#[test]
fn transforms_each_row_of_a_batch_independently() {
    let x = random(3 * 64, 11, Kind::Double).reshape([3, 64]);
    let batched = fwht::fwht(&x).unwrap();
    for row in 0..3 {
        let single = fwht::fwht(&x.get(row)).unwrap();
        assert!(batched.get(row).equal(&single), "row {row}");
    }
}

#[test]
fn rejects_bad_lengths_and_kinds() {
    let mut data = vec![0.0f32; 12];
    assert_eq!(fwht::fwht_slice(&mut data), Err(FwhtError::NotPowerOfTwo { len: 12 }));
    assert_eq!(fwht::fwht_slice::<f64>(&mut []), Err(FwhtError::NotPowerOfTwo { len: 0 }));
    assert_eq!(fwht::log2_len(1 << 31), Err(FwhtError::TooLong { len: 1 << 31 }));
    let message = FwhtError::NotPowerOfTwo { len: 12 }.to_string();
    assert!(message.contains("pad the input to 16"), "{message}");
    let ints = Tensor::zeros([8], (Kind::Int, tch::Device::Cpu));
    assert_eq!(fwht::fwht(&ints).unwrap_err(), FwhtError::UnsupportedKind { kind: Kind::Int });
    assert!(fwht::fwht(&Tensor::zeros([6], (Kind::Float, tch::Device::Cpu))).is_err());
}

/// The blocking changes no bit of the result: every element goes through the same stages in the
/// same order, so the leaf size chosen from the machine's L2 cannot change a number. 2^18 values:
/// both production leaves (2^15 and 2^17 f32) are smaller, so both take the column passes.
#[test]
fn every_blocking_gives_bit_identical_f32_results() {
    let len = 1usize << 18;
    let x: Vec<f32> = (0..len).map(|idx| ((idx * 7919) % 1013) as f32 / 97.0 - 5.0).collect();
    let mut reference = x.clone();
    fwht::fwht_slice(&mut reference).unwrap();
    for (leaf_bits, tile_row_bits, tile_width) in [(15, 11, 128), (17, 11, 128), (5, 4, 8), (9, 2, 32), (3, 11, 1)] {
        let mut actual = x.clone();
        fwht::fwht_slice_blocked(&mut actual, leaf_bits, tile_row_bits, tile_width).unwrap();
        assert!(
            actual.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits()),
            "blocking {leaf_bits}/{tile_row_bits}/{tile_width} changed a bit"
        );
    }
}
