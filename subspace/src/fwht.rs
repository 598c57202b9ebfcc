//! Fast Walsh-Hadamard transform (FWHT): `x <- H x`, unnormalised, in place.
//!
//! `H` is the `n x n` Sylvester-Hadamard matrix with entries `H[i][j] = (-1)^popcount(i & j)`, for `n`
//! a power of two from 1 to 2^30. `H H = n I`, so the inverse is `H / n`; nothing here normalises.
//!
//! Three implementations, all giving the same numbers within floating-point rounding:
//! - [`fwht_slice`]: the CPU kernel, hand-written over contiguous memory. It is cache-blocked: the
//!   low index bits are transformed on contiguous leaves (128 or 512 KiB, by the L2's size) that stay in L2 (all those
//!   stages in one visit), then the remaining bits in passes of up to `TILE_ROW_BITS` bits, each on
//!   tiles of `2^TILE_ROW_BITS` rows x `TILE_ROW_BYTES` copied into a contiguous scratch buffer. So
//!   2^24 and 2^26 f32 values take two passes over memory, 2^30 three. Butterflies are done three
//!   stages at a time (radix 8: 8 loads and 8 stores for 24 additions) over contiguous runs that the
//!   compiler vectorises (AVX-512 or AVX2 picked at run time), and rayon spreads leaves and tiles over threads.
//! - [`fwht_kron`]: built from tch operations, for any device (the CUDA path): with `n = a_1 ... a_r`,
//!   `H_n = H_{a_1} (x) ... (x) H_{a_r}`, so the transform is `r` batched matmuls against small
//!   Hadamard matrices (`a_i <= 128`) in the tensor's own dtype.
//! - [`fwht_anchor`]: the authors' algorithm (`fast_walsh_hadamard_torched` in their code), one
//!   reshape/chunk/cat per stage. Kept only as the baseline that benchmarks measure against.
//!
//! [`fwht`] and [`fwht_in_place`] dispatch on the device: the CPU kernel for contiguous f32/f64 CPU
//! tensors, [`fwht_kron`] otherwise. Tensors are transformed along their last dimension.

use std::ops::{Add, Mul, Sub};

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// The largest supported length: 2^30.
pub const MAX_LOG2_LEN: u32 = 30;

// Blocking, chosen by `cargo run --release -p subspace --example fwht_blocking` on the 2-core
// machines CI runs on. For `fwht_slice` and `Order::LoadContiguous` any values give the same
// results, bit for bit (every element goes through the same stages in the same order);
// `Order::StoreContiguous` does the leaf stages last, so its leaf is fixed (`FIXED_LEAF_BYTES`).
/// Bytes of one leaf: the contiguous run on which the low index bits are transformed in L2.
/// 128 KiB on the 1 MiB-L2 AMD EPYC; 512 KiB where L2 holds 2 MiB or more (the Xeon: 2^25 f32
/// values in 29-31 ms instead of 37-39 ms).
fn leaf_bytes() -> usize {
    static LEAF: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LEAF.get_or_init(|| if l2_bytes().is_some_and(|bytes| bytes >= 2 << 20) { 512 << 10 } else { 128 << 10 })
}

/// The leaf of [`Order::StoreContiguous`], the same on every machine: there the leaf stages come
/// after the column stages, so the leaf size sets the order of the stages (and the number of
/// partial sums), hence the roundings; a machine-dependent leaf would make `P^T` differ between
/// machines.
const FIXED_LEAF_BYTES: usize = 128 * 1024;

/// The L2 cache of the first CPU (Linux sysfs), if it says.
fn l2_bytes() -> Option<usize> {
    let size = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index2/size").ok()?;
    let size = size.trim();
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let multiplier = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        _ => return None,
    };
    Some(digits.parse::<usize>().ok()? * multiplier)
}
/// Bytes of one row of a column tile: a run of contiguous elements sharing the high index bits.
const TILE_ROW_BYTES: usize = 512;
/// At most this many index bits per column pass: a tile is `2^TILE_ROW_BITS x TILE_ROW_BYTES` (1 MiB).
const TILE_ROW_BITS: u32 = 11;
/// Below this many elements, threads cost more than they save.
const PARALLEL_MIN_LEN: usize = 1 << 15;

/// Why a length or a tensor cannot be transformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FwhtError {
    /// A transform length (the last dimension) that is 0 or not a power of two.
    #[error("FWHT length {len} is not a power of two: pad the input to {next}", next = .len.next_power_of_two())]
    NotPowerOfTwo {
        /// The length given.
        len: usize,
    },
    /// A transform length above `2^30` ([`MAX_LOG2_LEN`]).
    #[error("FWHT length {len} exceeds the supported maximum 2^30")]
    TooLong {
        /// The length given.
        len: usize,
    },
    /// A tensor in a dtype other than f32 or f64.
    #[error("FWHT needs an f32 or f64 tensor, got {kind:?}")]
    UnsupportedKind {
        /// The dtype given.
        kind: Kind,
    },
}

/// The element types the CPU kernel handles.
pub trait Real: Copy + Send + Sync + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + 'static {
    /// The additive identity, `0.0`.
    const ZERO: Self;
    /// The tch dtype of this type.
    const KIND: Kind;
    /// Converts an f64, rounding to the nearest value for f32.
    fn from_f64(value: f64) -> Self;
    /// Converts an f32 (exactly: unchanged, or widened to f64).
    fn from_f32(value: f32) -> Self;
}
impl Real for f32 {
    const ZERO: f32 = 0.0;
    const KIND: Kind = Kind::Float;
    fn from_f64(value: f64) -> f32 {
        value as f32
    }
    fn from_f32(value: f32) -> f32 {
        value
    }
}
impl Real for f64 {
    const ZERO: f64 = 0.0;
    const KIND: Kind = Kind::Double;
    fn from_f64(value: f64) -> f64 {
        value
    }
    fn from_f32(value: f32) -> f64 {
        f64::from(value)
    }
}

/// Checks that `len` is a power of two within the supported range and returns its log2.
pub fn log2_len(len: usize) -> Result<u32, FwhtError> {
    if len == 0 || !len.is_power_of_two() {
        return Err(FwhtError::NotPowerOfTwo { len });
    }
    let log2 = len.trailing_zeros();
    if log2 > MAX_LOG2_LEN {
        return Err(FwhtError::TooLong { len });
    }
    Ok(log2)
}

/// In-place unnormalised FWHT of a contiguous slice whose length is a power of two.
pub fn fwht_slice<T: Real>(data: &mut [T]) -> Result<(), FwhtError> {
    let leaf_bits = (leaf_bytes() / size_of::<T>()).trailing_zeros();
    fwht_slice_blocked(data, leaf_bits, TILE_ROW_BITS, TILE_ROW_BYTES / size_of::<T>())
}

/// [`fwht_slice`] with explicit blocking: leaves of `2^leaf_bits` elements, column passes of at
/// most `tile_row_bits` bits on tiles `tile_width` elements wide. Tests use small values to reach
/// every code path at small sizes; any values give the same result.
#[doc(hidden)]
pub fn fwht_slice_blocked<T: Real>(
    data: &mut [T],
    leaf_bits: u32,
    tile_row_bits: u32,
    tile_width: usize,
) -> Result<(), FwhtError> {
    let log2 = log2_len(data.len())?;
    assert!(tile_row_bits >= 1 && tile_width.is_power_of_two(), "bad blocking");
    let leaf_bits = leaf_bits.min(log2);
    let leaf_len = 1usize << leaf_bits;
    let parallel = data.len() >= PARALLEL_MIN_LEN;
    if parallel {
        data.par_chunks_mut(leaf_len).for_each(leaf);
    } else {
        data.chunks_mut(leaf_len).for_each(leaf);
    }

    let remaining_bits = log2 - leaf_bits;
    if remaining_bits == 0 {
        return Ok(());
    }
    let n_passes = remaining_bits.div_ceil(tile_row_bits);
    let tile_width = tile_width.min(leaf_len);
    let mut low_bit = leaf_bits;
    for pass_idx in 0..n_passes {
        // Spread the bits evenly over the passes, so no pass is a nearly empty one.
        let pass_bits = (remaining_bits - (low_bit - leaf_bits)).div_ceil(n_passes - pass_idx);
        column_pass(data, low_bit, low_bit + pass_bits, tile_width, parallel);
        low_bit += pass_bits;
    }
    Ok(())
}

/// What [`fwht_fused`] does at the two ends of a transform, where the values are in cache anyway:
/// it fills each run before the first stage, and takes each run of final values after the last.
/// With [`Order::StoreContiguous`] the working buffer also holds the transform at the end; with
/// [`Order::LoadContiguous`] the last pass writes nothing back. Fusing these saves the passes
/// over memory that a separate fill and a separate read of the result would cost.
pub(crate) trait Ends<T>: Sync {
    /// The state of one part of the last pass (partial sums, or `()`).
    type Acc: Send;
    /// A fresh state for one part.
    fn new_acc(&self) -> Self::Acc;
    /// Writes the input values of elements `start..start + leaf.len()` into `leaf`.
    fn load(&self, start: usize, leaf: &mut [T]);
    /// Takes the transformed values of elements `start..start + values.len()`.
    fn store(&self, acc: &mut Self::Acc, start: usize, values: &[T]);
}

/// Runs `work` compiled for AVX-512 (or AVX2 with FMA) when the CPU has it, else as is. For
/// loops the compiler vectorises: what `work` calls must be `#[inline(always)]` (closures too) to
/// be compiled with the wider instructions.
#[inline(always)]
pub(crate) fn simd<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { simd_avx512(work) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { simd_avx2(work) };
        }
    }
    work()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn simd_avx512<R>(work: impl FnOnce() -> R) -> R {
    work()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn simd_avx2<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// Which end of [`fwht_fused`] works on contiguous runs. The stages of a Hadamard transform
/// commute, so either order gives the transform (the roundings differ, deterministically).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Leaves first: `load` fills whole contiguous leaves; `store` takes rows of the last column
    /// pass's tiles (runs of a few hundred bytes, far apart).
    LoadContiguous,
    /// Column passes first: `load` fills tile rows; `store` takes whole contiguous leaves.
    StoreContiguous,
}

/// The FWHT of the vector that `ends` loads, handed to `ends` run by run, with `data` (of the
/// transform's length) as the working buffer. The pass that stores is split into at most `n_parts`
/// fixed parts (the same whatever the thread count), each taking its runs in a fixed order with
/// its own state; the states come back in part order, so a sum over them is reproducible.
pub(crate) fn fwht_fused<T: Real, E: Ends<T>>(data: &mut [T], ends: &E, n_parts: usize, order: Order) -> Vec<E::Acc> {
    let leaf_bytes = match order {
        Order::LoadContiguous => leaf_bytes(),
        Order::StoreContiguous => FIXED_LEAF_BYTES,
    };
    let leaf_bits = (leaf_bytes / size_of::<T>()).trailing_zeros();
    fwht_fused_blocked(data, ends, n_parts, order, leaf_bits, TILE_ROW_BITS, TILE_ROW_BYTES / size_of::<T>())
}

/// [`fwht_fused`] with explicit blocking, as [`fwht_slice_blocked`].
pub(crate) fn fwht_fused_blocked<T: Real, E: Ends<T>>(
    data: &mut [T],
    ends: &E,
    n_parts: usize,
    order: Order,
    leaf_bits: u32,
    tile_row_bits: u32,
    tile_width: usize,
) -> Vec<E::Acc> {
    let log2 = log2_len(data.len()).expect("a checked power-of-two length");
    let leaf_bits = leaf_bits.min(log2);
    let leaf_len = 1usize << leaf_bits;
    let remaining_bits = log2 - leaf_bits;
    if remaining_bits == 0 {
        simd(
            #[inline(always)]
            || ends.load(0, data),
        );
        leaf(data);
        let mut acc = ends.new_acc();
        simd(
            #[inline(always)]
            || ends.store(&mut acc, 0, data),
        );
        return vec![acc];
    }
    let n_passes = remaining_bits.div_ceil(tile_row_bits);
    let tile_width = tile_width.min(leaf_len);
    // Spread the bits evenly over the passes, as `fwht_slice_blocked` does.
    let mut passes = Vec::new();
    let mut low_bit = leaf_bits;
    for pass_idx in 0..n_passes {
        let pass_bits = (remaining_bits - (low_bit - leaf_bits)).div_ceil(n_passes - pass_idx);
        passes.push((low_bit, low_bit + pass_bits));
        low_bit += pass_bits;
    }
    match order {
        Order::LoadContiguous => {
            data.par_chunks_mut(leaf_len).enumerate().for_each(|(leaf_idx, values)| {
                simd(
                    #[inline(always)]
                    || ends.load(leaf_idx * leaf_len, values),
                );
                leaf(values);
            });
            let (&(low, high), earlier) = passes.split_last().expect("at least one pass");
            for &(low, high) in earlier {
                column_pass(data, low, high, tile_width, true);
            }
            last_column_pass(data, low, high, tile_width, ends, n_parts)
        }
        Order::StoreContiguous => {
            let (&(low, high), later) = passes.split_first().expect("at least one pass");
            first_column_pass(data, low, high, tile_width, ends);
            for &(low, high) in later {
                column_pass(data, low, high, tile_width, true);
            }
            let n_leaves = data.len() / leaf_len;
            let n_parts = n_parts.clamp(1, n_leaves);
            let base = SharedMut(data.as_mut_ptr());
            (0..n_parts)
                .into_par_iter()
                .map(|part| {
                    let mut acc = ends.new_acc();
                    for leaf_idx in part * n_leaves / n_parts..(part + 1) * n_leaves / n_parts {
                        // SAFETY: leaves are disjoint, and each part owns its leaves.
                        let values =
                            unsafe { std::slice::from_raw_parts_mut(base.get().add(leaf_idx * leaf_len), leaf_len) };
                        leaf(values);
                        simd(
                            #[inline(always)]
                            || ends.store(&mut acc, leaf_idx * leaf_len, values),
                        );
                    }
                    acc
                })
                .collect()
        }
    }
}

/// [`column_pass`] for the last bits of [`Order::LoadContiguous`], handing each row of each tile
/// to `ends` instead of writing it back.
fn last_column_pass<T: Real, E: Ends<T>>(
    data: &mut [T],
    low_bit: u32,
    high_bit: u32,
    tile_width: usize,
    ends: &E,
    n_parts: usize,
) -> Vec<E::Acc> {
    let row_stride = 1usize << low_bit;
    let n_rows = 1usize << (high_bit - low_bit);
    let tiles_per_block = row_stride / tile_width;
    let n_tiles = (data.len() >> high_bit) * tiles_per_block;
    let n_parts = n_parts.clamp(1, n_tiles);
    let base = SharedMut(data.as_mut_ptr());
    (0..n_parts)
        .into_par_iter()
        .map_init(
            || vec![T::ZERO; n_rows * tile_width],
            |scratch, part| {
                let mut acc = ends.new_acc();
                for tile_idx in part * n_tiles / n_parts..(part + 1) * n_tiles / n_parts {
                    let start = ((tile_idx / tiles_per_block) << high_bit) + (tile_idx % tiles_per_block) * tile_width;
                    for (row_idx, row) in scratch.chunks_exact_mut(tile_width).enumerate() {
                        // SAFETY: the tiles of one pass own disjoint elements of `data` (see
                        // `column_pass`), and each part owns its tiles.
                        let source = unsafe {
                            std::slice::from_raw_parts(base.get().add(start + row_idx * row_stride), tile_width)
                        };
                        row.copy_from_slice(source);
                    }
                    butterflies(scratch, tile_width);
                    simd(
                        #[inline(always)]
                        || {
                            for (row_idx, values) in scratch.chunks_exact(tile_width).enumerate() {
                                ends.store(&mut acc, start + row_idx * row_stride, values);
                            }
                        },
                    );
                }
                acc
            },
        )
        .collect()
}

/// [`column_pass`] for the first bits of [`Order::StoreContiguous`]: each tile row is loaded by
/// `ends` instead of read from `data`.
fn first_column_pass<T: Real, E: Ends<T>>(data: &mut [T], low_bit: u32, high_bit: u32, tile_width: usize, ends: &E) {
    let row_stride = 1usize << low_bit;
    let n_rows = 1usize << (high_bit - low_bit);
    let tiles_per_block = row_stride / tile_width;
    let n_tiles = (data.len() >> high_bit) * tiles_per_block;
    let base = SharedMut(data.as_mut_ptr());
    (0..n_tiles).into_par_iter().for_each_init(
        || vec![T::ZERO; n_rows * tile_width],
        |scratch, tile_idx| {
            let start = ((tile_idx / tiles_per_block) << high_bit) + (tile_idx % tiles_per_block) * tile_width;
            simd(
                #[inline(always)]
                || {
                    for (row_idx, row) in scratch.chunks_exact_mut(tile_width).enumerate() {
                        ends.load(start + row_idx * row_stride, row);
                    }
                },
            );
            butterflies(scratch, tile_width);
            for (row_idx, values) in scratch.chunks_exact(tile_width).enumerate() {
                // SAFETY: the tiles of one pass own disjoint elements of `data` (see `column_pass`).
                let row =
                    unsafe { std::slice::from_raw_parts_mut(base.get().add(start + row_idx * row_stride), tile_width) };
                row.copy_from_slice(values);
            }
        },
    );
}

/// A pointer that may cross threads: column tiles of one pass touch disjoint elements.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// A method, not a field access, so closures capture the whole `Send` wrapper.
    fn get(self) -> *mut T {
        self.0
    }
}

/// Transforms index bits `low_bit..high_bit` of `data`: for every value of the other bits, the
/// `2^(high_bit - low_bit)` elements that differ only in those bits get a Hadamard transform.
///
/// Work is cut into tiles: `tile_width` adjacent columns of the `2^(high_bit - low_bit)` rows that
/// lie `2^low_bit` apart. A tile is copied into a contiguous scratch buffer first: rows a power of
/// two apart map to the same few cache sets and would evict each other, while in the buffer the
/// row stages become ordinary butterflies over long contiguous runs.
fn column_pass<T: Real>(data: &mut [T], low_bit: u32, high_bit: u32, tile_width: usize, parallel: bool) {
    let row_stride = 1usize << low_bit;
    let n_rows = 1usize << (high_bit - low_bit);
    let tiles_per_block = row_stride / tile_width;
    let n_blocks = data.len() >> high_bit;
    let n_tiles = n_blocks * tiles_per_block;
    let base = SharedMut(data.as_mut_ptr());
    let run_tile = move |scratch: &mut Vec<T>, tile_idx: usize| {
        let block_idx = tile_idx / tiles_per_block;
        let column = (tile_idx % tiles_per_block) * tile_width;
        let start = (block_idx << high_bit) + column;
        // SAFETY: tile `tile_idx` owns exactly the elements start + row * row_stride + 0..tile_width
        // for row in 0..n_rows; these sets are disjoint across tiles and lie inside `data`.
        unsafe { tile(base.get().add(start), row_stride, n_rows, tile_width, scratch) }
    };
    let new_scratch = || vec![T::ZERO; n_rows * tile_width];
    if parallel {
        (0..n_tiles).into_par_iter().for_each_init(new_scratch, run_tile);
    } else {
        let mut scratch = new_scratch();
        (0..n_tiles).for_each(|tile_idx| run_tile(&mut scratch, tile_idx));
    }
}

/// Full FWHT of a contiguous run small enough for L1.
fn leaf<T: Real>(data: &mut [T]) {
    butterflies(data, 1)
}

/// The butterfly stages of distances `first_half, 2 first_half, ..., len / 2` over contiguous data.
fn butterflies<T: Real>(data: &mut [T], first_half: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { butterflies_avx512(data, first_half) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { butterflies_avx2(data, first_half) };
        }
    }
    butterflies_body(data, first_half)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn butterflies_avx512<T: Real>(data: &mut [T], first_half: usize) {
    butterflies_body(data, first_half)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn butterflies_avx2<T: Real>(data: &mut [T], first_half: usize) {
    butterflies_body(data, first_half)
}

#[inline(always)]
fn butterflies_body<T: Real>(data: &mut [T], first_half: usize) {
    let len = data.len();
    let mut half = first_half;
    if half == 1 && len >= 8 {
        for octet in data.chunks_exact_mut(8) {
            let mut values: [T; 8] = octet.try_into().expect("chunks of 8");
            hadamard8(&mut values);
            octet.copy_from_slice(&values);
        }
        half = 8;
    }
    // Three stages per visit of the data: 8 loads and 8 stores for 3 x 8 additions.
    while half * 8 <= len {
        for group in data.chunks_exact_mut(8 * half) {
            let mut runs = group.chunks_exact_mut(half);
            let mut next = || runs.next().expect("8 runs");
            radix8(next(), next(), next(), next(), next(), next(), next(), next());
        }
        half *= 8;
    }
    if half * 4 <= len {
        for group in data.chunks_exact_mut(4 * half) {
            let (ab, cd) = group.split_at_mut(2 * half);
            let (a, b) = ab.split_at_mut(half);
            let (c, d) = cd.split_at_mut(half);
            radix4(a, b, c, d);
        }
        half *= 4;
    }
    if half * 2 <= len {
        for pair in data.chunks_exact_mut(2 * half) {
            let (a, b) = pair.split_at_mut(half);
            radix2(a, b);
        }
    }
}

/// The 8-point Hadamard transform of eight values (three butterfly stages, unrolled).
#[inline(always)]
fn hadamard8<T: Real>(values: &mut [T; 8]) {
    for half in [1, 2, 4] {
        for start in (0..8).step_by(2 * half) {
            for idx in start..start + half {
                let (x, y) = (values[idx], values[idx + half]);
                values[idx] = x + y;
                values[idx + half] = x - y;
            }
        }
    }
}

/// Three butterfly stages on eight equally long runs at distances h, 2h and 4h.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn radix8<T: Real>(
    r0: &mut [T],
    r1: &mut [T],
    r2: &mut [T],
    r3: &mut [T],
    r4: &mut [T],
    r5: &mut [T],
    r6: &mut [T],
    r7: &mut [T],
) {
    let len = r0.len();
    let (r1, r2, r3, r4, r5, r6, r7) = (
        &mut r1[..len],
        &mut r2[..len],
        &mut r3[..len],
        &mut r4[..len],
        &mut r5[..len],
        &mut r6[..len],
        &mut r7[..len],
    );
    for idx in 0..len {
        let mut values = [r0[idx], r1[idx], r2[idx], r3[idx], r4[idx], r5[idx], r6[idx], r7[idx]];
        hadamard8(&mut values);
        r0[idx] = values[0];
        r1[idx] = values[1];
        r2[idx] = values[2];
        r3[idx] = values[3];
        r4[idx] = values[4];
        r5[idx] = values[5];
        r6[idx] = values[6];
        r7[idx] = values[7];
    }
}

/// FWHT across the rows of a tile: row `r` is the contiguous run `start + r * row_stride ..+ width`.
///
/// # Safety
/// Those runs for `r < n_rows` must be valid, and no other thread may touch them during the call.
unsafe fn tile<T: Real>(start: *mut T, row_stride: usize, n_rows: usize, width: usize, scratch: &mut [T]) {
    for row_idx in 0..n_rows {
        // SAFETY: row `row_idx` of the tile is valid for `width` reads (caller's contract).
        let row = unsafe { std::slice::from_raw_parts(start.add(row_idx * row_stride), width) };
        scratch[row_idx * width..(row_idx + 1) * width].copy_from_slice(row);
    }
    butterflies(&mut scratch[..n_rows * width], width);
    for row_idx in 0..n_rows {
        // SAFETY: as above, and we have exclusive access to it.
        let row = unsafe { std::slice::from_raw_parts_mut(start.add(row_idx * row_stride), width) };
        row.copy_from_slice(&scratch[row_idx * width..(row_idx + 1) * width]);
    }
}

/// Two butterfly stages on four equally long runs (a, b, c, d) at distances h and 2h.
#[inline(always)]
fn radix4<T: Real>(a: &mut [T], b: &mut [T], c: &mut [T], d: &mut [T]) {
    let len = a.len();
    let (b, c, d) = (&mut b[..len], &mut c[..len], &mut d[..len]);
    for idx in 0..len {
        let (s0, d0) = (a[idx] + b[idx], a[idx] - b[idx]);
        let (s1, d1) = (c[idx] + d[idx], c[idx] - d[idx]);
        a[idx] = s0 + s1;
        b[idx] = d0 + d1;
        c[idx] = s0 - s1;
        d[idx] = d0 - d1;
    }
}

#[inline(always)]
fn radix2<T: Real>(a: &mut [T], b: &mut [T]) {
    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
        let (sum, diff) = (*x + *y, *x - *y);
        *x = sum;
        *y = diff;
    }
}

/// FWHT along the last dimension, out of place, on the tensor's device.
pub fn fwht(x: &Tensor) -> Result<Tensor, FwhtError> {
    if uses_cpu_kernel(x) {
        let mut out = x.contiguous().copy();
        fwht_in_place(&mut out)?;
        return Ok(out);
    }
    fwht_kron(x)
}

/// FWHT along the last dimension, in place. Contiguous f32/f64 CPU tensors use the CPU kernel on
/// their own memory; other tensors are computed with [`fwht_kron`] and copied back.
pub fn fwht_in_place(x: &mut Tensor) -> Result<(), FwhtError> {
    if !uses_cpu_kernel(x) {
        let transformed = fwht_kron(x)?;
        x.copy_(&transformed);
        return Ok(());
    }
    let row_len = last_dim(x)?;
    let numel = x.numel();
    // Writing through the raw pointer must not be recorded by autograd.
    let _guard = tch::no_grad_guard();
    match x.kind() {
        Kind::Float => {
            // SAFETY: contiguous CPU f32 tensor with `numel` elements; we hold `&mut` to it.
            let data = unsafe { std::slice::from_raw_parts_mut(x.data_ptr() as *mut f32, numel) };
            rows_in_place(data, row_len)
        }
        Kind::Double => {
            // SAFETY: as above, for f64.
            let data = unsafe { std::slice::from_raw_parts_mut(x.data_ptr() as *mut f64, numel) };
            rows_in_place(data, row_len)
        }
        kind => Err(FwhtError::UnsupportedKind { kind }),
    }
}

fn rows_in_place<T: Real>(data: &mut [T], row_len: usize) -> Result<(), FwhtError> {
    log2_len(row_len)?;
    if row_len < PARALLEL_MIN_LEN && data.len() >= PARALLEL_MIN_LEN {
        return data.par_chunks_mut(row_len).try_for_each(fwht_slice);
    }
    data.chunks_mut(row_len).try_for_each(fwht_slice)
}

fn uses_cpu_kernel(x: &Tensor) -> bool {
    x.device() == Device::Cpu && x.is_contiguous() && matches!(x.kind(), Kind::Float | Kind::Double)
}

fn last_dim(x: &Tensor) -> Result<usize, FwhtError> {
    let len = x.size().last().copied().unwrap_or(1) as usize;
    log2_len(len)?;
    Ok(len)
}

/// The largest Hadamard factor of the Kronecker path: 128 x 128, so each matmul has a short inner
/// dimension and the f32 sums stay close to the butterfly's.
const KRON_MAX_FACTOR_BITS: u32 = 7;

/// FWHT along the last dimension from tch operations, on any device (the CUDA path).
///
/// With `n = a_1 a_2 ... a_r`, `H_n = H_{a_1} (x) ... (x) H_{a_r}`: view the row as an
/// `a_1 x ... x a_r` array and multiply each axis by its small Hadamard matrix, one batched matmul
/// per factor. Factors are balanced powers of two of at most 128.
pub fn fwht_kron(x: &Tensor) -> Result<Tensor, FwhtError> {
    if !matches!(x.kind(), Kind::Float | Kind::Double) {
        return Err(FwhtError::UnsupportedKind { kind: x.kind() });
    }
    let shape = x.size();
    let len = last_dim(x)?;
    let log2 = len.trailing_zeros();
    if log2 == 0 {
        return Ok(x.copy());
    }
    let n_factors = log2.div_ceil(KRON_MAX_FACTOR_BITS);
    let n_rows = (x.numel() / len) as i64;
    let mut y = x.reshape([n_rows, len as i64]);
    let mut bits_done = 0;
    for factor_idx in 0..n_factors {
        let factor_bits = (log2 - bits_done).div_ceil(n_factors - factor_idx);
        let factor = 1i64 << factor_bits;
        let inner = 1i64 << (log2 - bits_done - factor_bits);
        let outer = n_rows << bits_done;
        let hadamard = hadamard_matrix(factor_bits, x.kind(), x.device());
        y = if inner == 1 {
            // H is symmetric: multiply the last axis from the right.
            y.reshape([outer, factor]).matmul(&hadamard)
        } else {
            hadamard.matmul(&y.reshape([outer, factor, inner]))
        };
        bits_done += factor_bits;
    }
    Ok(y.reshape(shape))
}

/// The dense `2^log2 x 2^log2` Sylvester-Hadamard matrix.
pub fn hadamard_matrix(log2: u32, kind: Kind, device: Device) -> Tensor {
    let len = 1usize << log2;
    let entries: Vec<f64> = (0..len * len)
        .map(|idx| if ((idx / len) & (idx % len)).count_ones().is_multiple_of(2) { 1.0 } else { -1.0 })
        .collect();
    Tensor::from_slice(&entries).reshape([len as i64, len as i64]).to_kind(kind).to_device(device)
}

/// The authors' algorithm (`fast_walsh_hadamard_torched`): view the row as `[rows, 2, 2, ..., 2]`
/// and, for each axis, `cat(chunk0 + chunk1, chunk0 - chunk1)`. A benchmark baseline only.
pub fn fwht_anchor(x: &Tensor) -> Result<Tensor, FwhtError> {
    let shape = x.size();
    let len = last_dim(x)?;
    let log2 = len.trailing_zeros() as usize;
    let n_rows = (x.numel() / len) as i64;
    let mut working_shape = vec![n_rows];
    working_shape.extend(std::iter::repeat_n(2i64, log2));
    let mut y = x.reshape(working_shape);
    for axis in 1..=log2 as i64 {
        let halves = y.chunk(2, axis);
        y = Tensor::cat(&[&halves[0] + &halves[1], &halves[0] - &halves[1]], axis);
    }
    Ok(y.reshape(shape))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Loads from `source`, stores into `result` (and counts the runs each part took).
    struct Copying<'a> {
        source: &'a [f64],
        result: Mutex<Vec<f64>>,
    }

    impl Ends<f64> for Copying<'_> {
        type Acc = usize;
        fn new_acc(&self) -> usize {
            0
        }
        fn load(&self, start: usize, leaf: &mut [f64]) {
            leaf.copy_from_slice(&self.source[start..start + leaf.len()]);
        }
        fn store(&self, acc: &mut usize, start: usize, values: &[f64]) {
            *acc += values.len();
            self.result.lock().unwrap()[start..start + values.len()].copy_from_slice(values);
        }
    }

    /// `Order::StoreContiguous` uses the fixed leaf whatever the machine's L2; `LoadContiguous`
    /// gives the plain transform's bits at any leaf.
    #[test]
    fn fused_results_do_not_depend_on_the_machine() {
        let len = 1usize << 18;
        let source: Vec<f32> = (0..len).map(|idx| ((idx * 7919) % 1013) as f32 / 97.0 - 5.0).collect();
        let run = |order: Order, leaf_bits: Option<u32>| {
            let ends = CopyingF32 { source: &source, result: Mutex::new(vec![f32::NAN; len]) };
            let mut data = vec![0.0f32; len];
            match leaf_bits {
                None => drop(fwht_fused(&mut data, &ends, 16, order)),
                Some(bits) => drop(fwht_fused_blocked(&mut data, &ends, 16, order, bits, TILE_ROW_BITS, 128)),
            }
            ends.result.into_inner().unwrap().iter().map(|value| value.to_bits()).collect::<Vec<u32>>()
        };
        let fixed_bits = (FIXED_LEAF_BYTES / 4).trailing_zeros();
        assert_eq!(run(Order::StoreContiguous, None), run(Order::StoreContiguous, Some(fixed_bits)));
        assert_ne!(
            run(Order::StoreContiguous, Some(fixed_bits)),
            run(Order::StoreContiguous, Some(fixed_bits + 2)),
            "the leaf size does set this order's roundings (what the fixed leaf is for)"
        );
        let mut plain = source.clone();
        fwht_slice(&mut plain).unwrap();
        let plain: Vec<u32> = plain.iter().map(|value| value.to_bits()).collect();
        for bits in [15, 17] {
            assert_eq!(run(Order::LoadContiguous, Some(bits)), plain, "leaf 2^{bits}");
        }
    }

    struct CopyingF32<'a> {
        source: &'a [f32],
        result: Mutex<Vec<f32>>,
    }

    impl Ends<f32> for CopyingF32<'_> {
        type Acc = ();
        fn new_acc(&self) {}
        fn load(&self, start: usize, leaf: &mut [f32]) {
            leaf.copy_from_slice(&self.source[start..start + leaf.len()]);
        }
        fn store(&self, _: &mut (), start: usize, values: &[f32]) {
            self.result.lock().unwrap()[start..start + values.len()].copy_from_slice(values);
        }
    }

    #[test]
    fn fused_ends_see_the_plain_transform_at_every_blocking() {
        for log2 in 0..=12u32 {
            let len = 1usize << log2;
            let source: Vec<f64> = (0..len).map(|idx| ((idx * 7919) % 97) as f64 - 48.0).collect();
            let mut expected = source.clone();
            fwht_slice_blocked(&mut expected, 3, 2, 2).unwrap();
            for (leaf_bits, tile_row_bits, tile_width) in [(3, 2, 2), (4, 3, 4), (2, 1, 1), (15, 11, 128)] {
                for order in [Order::LoadContiguous, Order::StoreContiguous] {
                    let ends = Copying { source: &source, result: Mutex::new(vec![f64::NAN; len]) };
                    let mut data = vec![0.0; len];
                    let parts = fwht_fused_blocked(&mut data, &ends, 5, order, leaf_bits, tile_row_bits, tile_width);
                    assert_eq!(
                        *ends.result.lock().unwrap(),
                        expected,
                        "2^{log2}, blocking {leaf_bits}/{tile_row_bits}"
                    );
                    assert_eq!(parts.iter().sum::<usize>(), len);
                    assert!(parts.len() <= 5);
                    if order == Order::StoreContiguous {
                        assert_eq!(data, expected, "the buffer holds the transform");
                    }
                }
            }
        }
    }
}
