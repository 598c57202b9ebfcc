//! The fused Walsh-Hadamard transform: a batch of rows transformed in a few passes over memory,
//! with the Fastfood steps around it fused into the first pass's loads and the last pass's
//! stores.
//!
//! - On CUDA tensors it runs the kernel in `fwht.cu`, compiled at run time with NVRTC and launched
//!   through the `cudarc` driver API on the legacy default stream, which is the current stream of
//!   every tch computation (tch never switches streams). cudarc loads `libcuda` and `libnvrtc` only
//!   when a CUDA tensor first comes here, so building and running on CPU machines needs nothing
//!   CUDA. See [`kernel`].
//! - On CPU tensors it runs [`emulate`], a line-by-line transcription of the kernel's index
//!   arithmetic (tiles, rounds, fused loads and stores) over host memory. It is slow and exists so
//!   that the CPU tests check exactly the arithmetic the GPU runs: against the reference FWHT, and
//!   (through `Engine::Fused` in `fastfood`) against the Fastfood projection's other engines. The
//!   kernel is compiled with `--fmad=false`, so on a GPU it must agree with [`emulate`] bit for bit;
//!   `bench-suite gpu-check` checks that.
//!
//! # One pass
//! A row of `n = 2^k` elements has index bits `0..k`. [`plan`] cuts them into passes: pass `p`
//! transforms the `log_m` "mid" bits `[lo, lo + log_m)`. A thread block owns one *tile*: every
//! value of the mid bits times a contiguous run of `2^log_t` values of the low bits `[0, log_t)`,
//! `2^(log_m + log_t)` elements in shared memory; the other bits and the row come from the block
//! index. The first pass takes the lowest bits (`lo = 0`, a contiguous tile); later passes use runs
//! of at least [`MIN_RUN_LOG2`] bits (32 bytes, one DRAM sector), so every load and store is a
//! whole sector.

use tch::{Device, Kind, Tensor};

pub mod kernel;

/// Index bits one tile may hold when the device allows it: 2^15 f32 = 128 KiB of shared memory.
pub const MAX_TILE_LOG2: u32 = 15;
/// Tile bits that fit the 48 KiB every CUDA device gives a block without opting in: 2^13 f32.
pub const DEFAULT_TILE_LOG2: u32 = 13;
/// Low bits every later pass keeps contiguous: runs of 8 f32 = 32 bytes.
pub const MIN_RUN_LOG2: u32 = 3;
/// Butterfly stages done in registers per round (radix 8), as `MAX_RADIX_BITS` in `fwht.cu`.
pub const RADIX_BITS: u32 = 3;
/// The longest row: 2^30, as everywhere in this crate.
pub const MAX_LOG2_LEN: u32 = 30;

/// One launch: transform the index bits `[lo, lo + log_m)`, tiles of `2^log_m x 2^log_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// The lowest index bit the pass transforms.
    pub lo: u32,
    /// How many index bits it transforms (`[lo, lo + log_m)`): a tile holds every value of them.
    pub log_m: u32,
    /// Low index bits `[0, log_t)` a tile spans as contiguous runs of `2^log_t` elements (0 in the
    /// first pass, whose `lo` is 0).
    pub log_t: u32,
}

impl Pass {
    /// A tile's element count, log2: `log_m + log_t`.
    pub fn tile_log2(&self) -> u32 {
        self.log_m + self.log_t
    }

    /// Thread blocks for `rows` rows of `2^log_n`.
    pub fn n_tiles(&self, rows: usize, log_n: u32) -> usize {
        rows << (log_n - self.tile_log2())
    }

    /// Threads per block: one per radix-8 group, at least a warp, at most 1024.
    pub fn threads(&self) -> u32 {
        ((1u32 << self.tile_log2()) >> RADIX_BITS).clamp(32, 1024)
    }

    /// Bytes of shared memory per block.
    pub fn shared_bytes(&self) -> u32 {
        4 << self.tile_log2()
    }
}

/// The passes for rows of `2^log_n` with tiles of at most `2^max_tile_log2` elements: one pass up
/// to `max_tile_log2` bits; else a first pass over the low `max_tile_log2` bits, then passes of
/// up to `max_tile_log2 - MIN_RUN_LOG2` bits, each with the widest contiguous run that fits. So
/// with 2^15-element tiles, 2^15 takes one pass and 2^16 to 2^27 two (RoBERTa-base's global
/// block, 2^27, is 15 + 12 bits).
pub fn plan(log_n: u32, max_tile_log2: u32) -> Vec<Pass> {
    assert!(
        (MIN_RUN_LOG2 + 1..=MAX_TILE_LOG2).contains(&max_tile_log2),
        "tile bits {max_tile_log2} outside {}..={MAX_TILE_LOG2}",
        MIN_RUN_LOG2 + 1
    );
    assert!(log_n <= MAX_LOG2_LEN, "rows of 2^{log_n} above 2^{MAX_LOG2_LEN}");
    if log_n <= max_tile_log2 {
        return vec![Pass { lo: 0, log_m: log_n, log_t: 0 }];
    }
    let mut passes = vec![Pass { lo: 0, log_m: max_tile_log2, log_t: 0 }];
    let mut lo = max_tile_log2;
    while lo < log_n {
        let log_m = (log_n - lo).min(max_tile_log2 - MIN_RUN_LOG2);
        let log_t = lo.min(max_tile_log2 - log_m);
        passes.push(Pass { lo, log_m, log_t });
        lo += log_m;
    }
    passes
}

/// Where a per-element pre-multiplier is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// At the element being written (`v[g] = src[gather[g]] * w[g]`).
    Destination,
    /// At the gathered source index (`v[g] = src[gather[g]] * w[gather[g]]`).
    Source,
}

/// Why a fused transform was rejected or could not run.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FusedError {
    /// An operand in the wrong dtype.
    #[error("fused FWHT: `{what}` must be {expected:?}, got {actual:?}")]
    WrongKind {
        /// The operand's name (`src`, `gather`, `pre_vec`, ..., or `dst`).
        what: &'static str,
        /// The dtype it must have.
        expected: Kind,
        /// The dtype it has.
        actual: Kind,
    },
    /// An operand with the wrong number of elements, or (`what = "period"`) a source period longer
    /// than the row.
    #[error("fused FWHT: `{what}` must have {expected} elements, has {actual}")]
    WrongLength {
        /// The operand's name, or `period`.
        what: &'static str,
        /// The required count: for `src` the most it may have, for `period` the row length.
        expected: usize,
        /// The count it has (for `period`, `2^period_log2`).
        actual: usize,
    },
    /// An operand on another device than the source.
    #[error("fused FWHT: `{what}` is on {actual:?}, the source on {expected:?}")]
    WrongDevice {
        /// The operand's name.
        what: &'static str,
        /// The source's device.
        expected: Device,
        /// The operand's device.
        actual: Device,
    },
    /// A non-contiguous operand.
    #[error("fused FWHT: `{what}` must be contiguous (call .contiguous() first)")]
    NotContiguous {
        /// The operand's name.
        what: &'static str,
    },
    /// Rows longer than `2^30` ([`MAX_LOG2_LEN`]).
    #[error("fused FWHT: rows of 2^{log_n} are above the supported 2^30")]
    TooLong {
        /// The row length's log2 asked for.
        log_n: u32,
    },
    /// The CUDA kernel could not be compiled or loaded on the device (missing libraries, an NVRTC
    /// or driver error); holds the reason. Cached: reported the same way on every later call.
    #[error("fused FWHT kernel unavailable: {0}")]
    Unavailable(String),
    /// A launch failed, or would need more than `2^32 - 1` thread blocks; holds the reason.
    #[error("fused FWHT kernel launch failed: {0}")]
    Launch(String),
}

/// One fused transform: `dst = post(H_rows(pre(src)))` for a `[rows, 2^log_n]` destination.
///
/// The first pass reads element `g` (row-major over the destination) as
/// `s = gather[g]` (or `g`), then source row `r = s / n` (0 if the source is one broadcast row)
/// and position `s mod p` in it, with `p = 2^period_log2` (`n` unless the source is periodic):
/// `src[r p + (s mod p)]` if that is below `src.numel()` else 0, times `pre_vec[g or s]`, `pre_sign[g]` and
/// `pre_row[row]`, each if given, in that order. The last pass multiplies by `post_vec[g]`,
/// `post_row[row]` and `post_sign[g]`, each if given, in that order, before it stores.
pub struct Transform<'a> {
    /// f32, contiguous, on the device that computes: at most `rows * p` elements (`p` if
    /// `broadcast_src`), positions past its end read as 0.
    pub src: &'a Tensor,
    /// Rows of the destination.
    pub rows: usize,
    /// The row length's log2 (at most 30): the destination is `[rows, 2^log_n]`.
    pub log_n: u32,
    /// i32, `rows * n`: indices into the `[rows, n]` (or, broadcast, any-row) source space.
    pub gather: Option<&'a Tensor>,
    /// The source is one row that every destination row reads (source row `r` is always 0).
    pub broadcast_src: bool,
    /// Source rows of `2^k` values, each read as repeated along the destination row; `None`: `n`.
    pub period_log2: Option<u32>,
    /// f32, `rows * n`.
    pub pre_vec: Option<(&'a Tensor, At)>,
    /// i8 (+-1), `rows * n`.
    pub pre_sign: Option<&'a Tensor>,
    /// f32, `rows`.
    pub pre_row: Option<&'a Tensor>,
    /// f32, `rows * n`.
    pub post_vec: Option<&'a Tensor>,
    /// f32, `rows`.
    pub post_row: Option<&'a Tensor>,
    /// i8 (+-1), `rows * n`.
    pub post_sign: Option<&'a Tensor>,
}

impl<'a> Transform<'a> {
    /// A plain FWHT of `src` (zero-padded to `rows * 2^log_n`) with no fused steps.
    pub fn new(src: &'a Tensor, rows: usize, log_n: u32) -> Transform<'a> {
        Transform {
            src,
            rows,
            log_n,
            gather: None,
            broadcast_src: false,
            period_log2: None,
            pre_vec: None,
            pre_sign: None,
            pre_row: None,
            post_vec: None,
            post_row: None,
            post_sign: None,
        }
    }

    /// Elements of the destination: `rows * 2^log_n`.
    pub fn len(&self) -> usize {
        self.rows << self.log_n
    }

    /// Whether the destination has no rows (and so no elements).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The source row length's log2: `period_log2`, else `log_n`.
    pub fn log_period(&self) -> u32 {
        self.period_log2.unwrap_or(self.log_n)
    }

    /// Checks every operand's dtype, length and device, and that each is contiguous.
    fn check(&self) -> Result<(), FusedError> {
        if self.log_n > MAX_LOG2_LEN {
            return Err(FusedError::TooLong { log_n: self.log_n });
        }
        let device = self.src.device();
        let len = self.len();
        if self.log_period() > self.log_n {
            return Err(FusedError::WrongLength {
                what: "period",
                expected: 1 << self.log_n,
                actual: 1 << self.log_period(),
            });
        }
        let source_space = if self.broadcast_src { 1 << self.log_period() } else { self.rows << self.log_period() };
        let mut operands: Vec<(&'static str, &Tensor, Kind, Option<usize>)> =
            vec![("src", self.src, Kind::Float, None)];
        if self.src.numel() > source_space {
            return Err(FusedError::WrongLength { what: "src", expected: source_space, actual: self.src.numel() });
        }
        if let Some(gather) = self.gather {
            operands.push(("gather", gather, Kind::Int, Some(len)));
        }
        if let Some((pre_vec, _)) = self.pre_vec {
            operands.push(("pre_vec", pre_vec, Kind::Float, Some(len)));
        }
        if let Some(pre_sign) = self.pre_sign {
            operands.push(("pre_sign", pre_sign, Kind::Int8, Some(len)));
        }
        if let Some(pre_row) = self.pre_row {
            operands.push(("pre_row", pre_row, Kind::Float, Some(self.rows)));
        }
        if let Some(post_vec) = self.post_vec {
            operands.push(("post_vec", post_vec, Kind::Float, Some(len)));
        }
        if let Some(post_row) = self.post_row {
            operands.push(("post_row", post_row, Kind::Float, Some(self.rows)));
        }
        if let Some(post_sign) = self.post_sign {
            operands.push(("post_sign", post_sign, Kind::Int8, Some(len)));
        }
        for (what, tensor, kind, numel) in operands {
            if tensor.kind() != kind {
                return Err(FusedError::WrongKind { what, expected: kind, actual: tensor.kind() });
            }
            if let Some(expected) = numel
                && tensor.numel() != expected
            {
                return Err(FusedError::WrongLength { what, expected, actual: tensor.numel() });
            }
            if tensor.device() != device {
                return Err(FusedError::WrongDevice { what, expected: device, actual: tensor.device() });
            }
            if !tensor.is_contiguous() {
                return Err(FusedError::NotContiguous { what });
            }
        }
        Ok(())
    }
}

/// Runs `transform` into a new `[rows, 2^log_n]` f32 tensor on the source's device: the CUDA
/// kernel for CUDA tensors (tiles as large as the device allows), [`emulate`] on the CPU.
pub fn run(transform: &Transform) -> Result<Tensor, FusedError> {
    run_with_tiles(transform, MAX_TILE_LOG2)
}

/// [`run`] with tiles of at most `2^max_tile_log2` elements (benchmarks compare tile sizes).
pub fn run_with_tiles(transform: &Transform, max_tile_log2: u32) -> Result<Tensor, FusedError> {
    match transform.src.device() {
        Device::Cuda(_) => {
            let shape = [transform.rows as i64, 1i64 << transform.log_n];
            let dst = Tensor::empty(shape, (Kind::Float, transform.src.device()));
            run_into(transform, &dst, max_tile_log2)?;
            Ok(dst)
        }
        _ => {
            transform.check()?;
            Ok(emulate(transform, max_tile_log2.min(DEFAULT_TILE_LOG2)))
        }
    }
}

/// [`run_with_tiles`] into a given `[rows, 2^log_n]` (or flat) f32 tensor on the source's device,
/// every element of which is overwritten (`gpu-check` prefills it with NaN to check that).
pub fn run_into(transform: &Transform, dst: &Tensor, max_tile_log2: u32) -> Result<(), FusedError> {
    transform.check()?;
    if dst.kind() != Kind::Float {
        return Err(FusedError::WrongKind { what: "dst", expected: Kind::Float, actual: dst.kind() });
    }
    if dst.numel() != transform.len() {
        return Err(FusedError::WrongLength { what: "dst", expected: transform.len(), actual: dst.numel() });
    }
    if dst.device() != transform.src.device() {
        return Err(FusedError::WrongDevice { what: "dst", expected: transform.src.device(), actual: dst.device() });
    }
    if !dst.is_contiguous() {
        return Err(FusedError::NotContiguous { what: "dst" });
    }
    let _guard = tch::no_grad_guard();
    match dst.device() {
        Device::Cuda(ordinal) => kernel::get(ordinal)?.launch(transform, dst, max_tile_log2),
        _ => {
            let out = emulate(transform, max_tile_log2.min(DEFAULT_TILE_LOG2));
            dst.reshape([-1]).copy_(&out.reshape([-1]));
            Ok(())
        }
    }
}

/// Whether [`run`] can compute on `device` (always on CPU; on CUDA when the kernel loads).
pub fn available(device: Device) -> Result<(), FusedError> {
    match device {
        Device::Cuda(ordinal) => kernel::get(ordinal).map(|_| ()),
        _ => Ok(()),
    }
}

fn host_vec<T: tch::kind::Element + Copy>(tensor: &Tensor) -> Vec<T> {
    let flat = tensor.reshape([-1]).to_device(Device::Cpu);
    let mut out = vec![T::ZERO; flat.numel()];
    flat.copy_data(&mut out, flat.numel());
    out
}

/// The kernel's arithmetic on the host, tile by tile and round by round as `fwht.cu` does it, with
/// tiles of at most `2^max_tile_log2` elements. Returns a CPU tensor.
pub fn emulate(transform: &Transform, max_tile_log2: u32) -> Tensor {
    transform.check().expect("emulate: invalid transform");
    let log_n = transform.log_n;
    let n = 1i64 << log_n;
    let rows = transform.rows as i64;
    let log_period = transform.log_period();
    let src: Vec<f32> = host_vec(transform.src);
    let gather: Option<Vec<i32>> = transform.gather.map(host_vec);
    let pre_vec: Option<(Vec<f32>, At)> = transform.pre_vec.map(|(tensor, at)| (host_vec(tensor), at));
    let pre_sign: Option<Vec<i8>> = transform.pre_sign.map(host_vec);
    let pre_row: Option<Vec<f32>> = transform.pre_row.map(host_vec);
    let post_vec: Option<Vec<f32>> = transform.post_vec.map(host_vec);
    let post_row: Option<Vec<f32>> = transform.post_row.map(host_vec);
    let post_sign: Option<Vec<i8>> = transform.post_sign.map(host_vec);
    let mut dst = vec![0f32; transform.len()];
    let passes = plan(log_n, max_tile_log2);
    let mut tile = vec![0f32; 1 << passes.iter().map(Pass::tile_log2).max().unwrap_or(0)];
    for (pass_idx, pass) in passes.iter().enumerate() {
        let (first, last) = (pass_idx == 0, pass_idx + 1 == passes.len());
        let (lo, log_m, log_t) = (pass.lo, pass.log_m, pass.log_t);
        let e_len = 1i64 << pass.tile_log2();
        let lowhi_bits = lo - log_t;
        let hi_bits = log_n - lo - log_m;
        for block in 0..pass.n_tiles(transform.rows, log_n) as i64 {
            let mut tile_id = block;
            let lowhi = tile_id & ((1i64 << lowhi_bits) - 1);
            tile_id >>= lowhi_bits;
            let hi = tile_id & ((1i64 << hi_bits) - 1);
            let row = tile_id >> hi_bits;
            assert!(row < rows);
            let row_base = row * n;
            let fixed = (hi << (lo + log_m)) | (lowhi << log_t);
            let index = |e: i64| row_base + (fixed | ((e >> log_t) << lo) | (e & ((1i64 << log_t) - 1)));
            // Load.
            for e in 0..e_len {
                let g = index(e);
                tile[e as usize] = if first {
                    let s = gather.as_ref().map_or(g, |gather| i64::from(gather[g as usize]));
                    let row_of_s = if transform.broadcast_src { 0 } else { s >> log_n };
                    let from = (row_of_s << log_period) | (s & ((1i64 << log_period) - 1));
                    let mut value = if from < src.len() as i64 { src[from as usize] } else { 0.0 };
                    if let Some((pre_vec, at)) = &pre_vec {
                        value *= pre_vec[(if *at == At::Source { s } else { g }) as usize];
                    }
                    if let Some(pre_sign) = &pre_sign {
                        value *= f32::from(pre_sign[g as usize]);
                    }
                    if let Some(pre_row) = &pre_row {
                        value *= pre_row[row as usize];
                    }
                    value
                } else {
                    dst[g as usize]
                };
            }
            // Rounds of up to RADIX_BITS mid bits.
            let mut done = 0;
            while done < log_m {
                let r = RADIX_BITS.min(log_m - done);
                let b = log_t + done;
                let groups = e_len >> r;
                let width = 1usize << r;
                for grp in 0..groups {
                    let base = ((grp >> b) << (b + r)) | (grp & ((1i64 << b) - 1));
                    let mut v = [0f32; 1 << RADIX_BITS];
                    for (q, slot) in v.iter_mut().enumerate().take(width) {
                        *slot = tile[(base + ((q as i64) << b)) as usize];
                    }
                    let mut h = 1;
                    while h < width {
                        for q in 0..width {
                            if q & h == 0 {
                                let (x, y) = (v[q], v[q | h]);
                                v[q] = x + y;
                                v[q | h] = x - y;
                            }
                        }
                        h <<= 1;
                    }
                    for (q, value) in v.iter().enumerate().take(width) {
                        tile[(base + ((q as i64) << b)) as usize] = *value;
                    }
                }
                done += RADIX_BITS;
            }
            // Store.
            for e in 0..e_len {
                let g = index(e);
                let mut value = tile[e as usize];
                if last {
                    if let Some(post_vec) = &post_vec {
                        value *= post_vec[g as usize];
                    }
                    if let Some(post_row) = &post_row {
                        value *= post_row[row as usize];
                    }
                    if let Some(post_sign) = &post_sign {
                        value *= f32::from(post_sign[g as usize]);
                    }
                }
                dst[g as usize] = value;
            }
        }
    }
    Tensor::from_slice(&dst).reshape([rows, n])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bit is transformed by exactly one pass, in order, and every tile fits its limits.
    #[test]
    fn plans_cover_every_bit_once_within_limits() {
        for max_tile in MIN_RUN_LOG2 + 1..=MAX_TILE_LOG2 {
            for log_n in 0..=MAX_LOG2_LEN {
                let passes = plan(log_n, max_tile);
                let mut next = 0;
                for (idx, pass) in passes.iter().enumerate() {
                    assert_eq!(pass.lo, next, "log_n {log_n} tile {max_tile}: {passes:?}");
                    assert!(pass.tile_log2() <= max_tile, "{passes:?}");
                    assert!(pass.log_t <= pass.lo, "run bits come from below lo: {passes:?}");
                    if idx > 0 {
                        assert!(pass.log_t >= MIN_RUN_LOG2, "later passes keep 32-byte runs: {passes:?}");
                        assert!(pass.log_m >= 1, "{passes:?}");
                    }
                    next += pass.log_m;
                }
                assert_eq!(next, log_n, "log_n {log_n} tile {max_tile}: {passes:?}");
            }
        }
    }

    #[test]
    fn pass_counts() {
        let count = |log_n, tile| plan(log_n, tile).len();
        // 15-bit tiles (H100/H200): one pass to 2^15, two to 2^27, three for 2^28..2^30.
        assert_eq!(count(0, 15), 1);
        assert_eq!(count(15, 15), 1);
        assert_eq!(count(16, 15), 2);
        assert_eq!(count(27, 15), 2);
        assert_eq!(count(28, 15), 3);
        assert_eq!(count(30, 15), 3);
        // 13-bit tiles (any device without opt-in shared memory): 2^27 takes three.
        assert_eq!(count(13, 13), 1);
        assert_eq!(count(23, 13), 2);
        assert_eq!(count(27, 13), 3);
        assert_eq!(plan(27, 15), vec![Pass { lo: 0, log_m: 15, log_t: 0 }, Pass { lo: 15, log_m: 12, log_t: 3 }]);
        assert_eq!(plan(20, 15)[1], Pass { lo: 15, log_m: 5, log_t: 10 });
    }

    fn random(len: usize, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn([len as i64], (Kind::Float, Device::Cpu))
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
    }

    /// The emulated kernel is the FWHT, for every length and tile size: each element is a sum of
    /// `n` terms of size ~1, so the tolerance grows with `sqrt(n)`.
    #[test]
    fn emulation_is_the_fwht_for_every_plan() {
        for log_n in 0..=17u32 {
            let rows = if log_n < 10 { 3 } else { 1 };
            let x = random(rows << log_n, i64::from(log_n));
            let reference = crate::fwht::fwht(&x.to_kind(Kind::Double).reshape([rows as i64, 1 << log_n])).unwrap();
            for tile in [4, 5, 7, 9, DEFAULT_TILE_LOG2] {
                let out = emulate(&Transform::new(&x, rows, log_n), tile);
                let err = max_abs_diff(&out, &reference);
                let tolerance = 1e-5 * f64::from(1u32 << log_n).sqrt().max(1.0) * 4.0;
                assert!(err < tolerance, "2^{log_n} tile 2^{tile}: max abs error {err} >= {tolerance}");
            }
        }
    }

    /// Every fused step against the same steps done one by one with tch operations in f64.
    #[test]
    fn fused_steps_match_the_unfused_formulas() {
        let (rows, log_n) = (3usize, 9u32);
        let n = 1i64 << log_n;
        let len = rows * (1 << log_n);
        let to64 = |t: &Tensor| t.to_kind(Kind::Double);
        let x = random(700, 1); // shorter than rows * n: zero padding
        let signs = (random(len, 2).sign()).to_kind(Kind::Int8);
        let gauss = random(len, 3);
        let row_scale = random(rows, 4).abs();
        let post_signs = (random(len, 5).sign()).to_kind(Kind::Int8);
        // A permutation within each row, as global indices.
        let perm = Tensor::cat(
            &(0..rows as i64).map(|row| Tensor::randperm(n, (Kind::Int, Device::Cpu)) + row * n).collect::<Vec<_>>(),
            0,
        );
        let fwht64 = |t: Tensor| crate::fwht::fwht(&t.reshape([rows as i64, n])).unwrap().reshape([-1]);

        // Forward shape: pad, signs, transform; then gather, Gaussians at the destination, row scale.
        let mut first = Transform::new(&x, rows, log_n);
        first.pre_sign = Some(&signs);
        let a = emulate(&first, 6).reshape([-1]);
        let expected_a = fwht64(to64(&x).constant_pad_nd([0, len as i64 - 700]) * to64(&signs));
        assert!(max_abs_diff(&a, &expected_a) < 1e-3, "{}", max_abs_diff(&a, &expected_a));
        let mut second = Transform::new(&a, rows, log_n);
        second.gather = Some(&perm);
        second.pre_vec = Some((&gauss, At::Destination));
        let post_vec = random(len, 8);
        second.post_vec = Some(&post_vec);
        second.post_row = Some(&row_scale);
        second.post_sign = Some(&post_signs);
        let b = emulate(&second, 6);
        let expected_b = (fwht64(to64(&a).index_select(0, &perm) * to64(&gauss)).reshape([rows as i64, n])
            * to64(&post_vec).reshape([rows as i64, n])
            * to64(&row_scale).reshape([rows as i64, 1])
            * to64(&post_signs).reshape([rows as i64, n]))
        .reshape([rows as i64, n]);
        let err = max_abs_diff(&b, &expected_b);
        assert!(err < 1e-3 * expected_b.abs().max().double_value(&[]), "{err}");

        // Transpose shape: one broadcast source row, gathered, Gaussians at the source, row scale.
        let u = random(300, 6);
        let mut back = Transform::new(&u, rows, log_n);
        back.gather = Some(&perm);
        back.broadcast_src = true;
        back.pre_vec = Some((&gauss, At::Source));
        back.pre_row = Some(&row_scale);
        let c = emulate(&back, 5);
        let padded = to64(&u).constant_pad_nd([0, n - 300]);
        let source = padded.repeat([rows as i64]);
        let gathered = source.index_select(0, &perm) * to64(&gauss).index_select(0, &perm);
        let expected_c = fwht64(gathered).reshape([rows as i64, n]) * to64(&row_scale).reshape([rows as i64, 1]);
        let err = max_abs_diff(&c, &expected_c);
        assert!(err < 1e-4 * expected_c.abs().max().double_value(&[]), "{err}");
    }

    /// A periodic source: rows of `2^k` values read as repeated, through a gather, per row and
    /// broadcast, against the same read done with tch index arithmetic.
    #[test]
    fn periodic_sources_repeat_their_rows() {
        let (rows, log_n, period) = (3usize, 8u32, 5u32);
        let n = 1i64 << log_n;
        let w = random(rows << period, 11);
        let perm = Tensor::cat(
            &(0..rows as i64).map(|row| Tensor::randperm(n, (Kind::Int, Device::Cpu)) + row * n).collect::<Vec<_>>(),
            0,
        );
        let perm64 = perm.to_kind(Kind::Int64);
        let fwht64 = |t: Tensor| crate::fwht::fwht(&t.to_kind(Kind::Double).reshape([rows as i64, n])).unwrap();
        let mut transform = Transform::new(&w, rows, log_n);
        transform.gather = Some(&perm);
        transform.period_log2 = Some(period);
        let out = emulate(&transform, 6);
        // Row r of the source, repeated: index (s / n) * 2^k + (s mod 2^k).
        let from = perm64.divide_scalar_mode(n, "floor") * (1i64 << period) + perm64.remainder(1i64 << period);
        let expected = fwht64(w.index_select(0, &from));
        assert!(max_abs_diff(&out, &expected) < 1e-4, "{}", max_abs_diff(&out, &expected));
        // Broadcast: every row reads source row 0.
        transform.broadcast_src = true;
        let w0 = w.narrow(0, 0, 1 << period);
        transform.src = &w0;
        let out = emulate(&transform, 6);
        let expected = fwht64(w0.index_select(0, &perm64.remainder(1i64 << period)));
        assert!(max_abs_diff(&out, &expected) < 1e-4, "{}", max_abs_diff(&out, &expected));
        // A period longer than the row is refused.
        transform.period_log2 = Some(log_n + 1);
        assert!(matches!(transform.check(), Err(FusedError::WrongLength { what: "period", .. })));
    }

    #[test]
    fn bad_operands_are_named() {
        let x = random(64, 7);
        let mut transform = Transform::new(&x, 1, 5);
        assert_eq!(transform.check(), Err(FusedError::WrongLength { what: "src", expected: 32, actual: 64 }));
        transform.log_n = 6;
        let wrong = Tensor::zeros([64], (Kind::Float, Device::Cpu));
        transform.pre_sign = Some(&wrong);
        assert_eq!(
            transform.check(),
            Err(FusedError::WrongKind { what: "pre_sign", expected: Kind::Int8, actual: Kind::Float })
        );
        let err = run(&Transform { log_n: 31, ..Transform::new(&x, 1, 6) }).unwrap_err();
        assert!(err.to_string().contains("2^31"), "{err}");
    }

    #[test]
    fn launch_shapes() {
        let pass = Pass { lo: 15, log_m: 12, log_t: 3 };
        assert_eq!(pass.threads(), 1024);
        assert_eq!(pass.shared_bytes(), 128 * 1024);
        assert_eq!(pass.n_tiles(1, 27), 4096);
        assert_eq!(Pass { lo: 0, log_m: 2, log_t: 0 }.threads(), 32);
    }
}
