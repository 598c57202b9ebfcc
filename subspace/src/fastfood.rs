//! The Fastfood projection `P: R^d -> R^D` over a model's named parameter tensors.
//!
//! # The map
//! The output is split into *groups*: in [`Scope::Global`] (Li et al.) one group covering the
//! concatenation of all tensors (in the order given); in [`Scope::PerTensor`] (the authors' code) one
//! group per tensor. A group with `n` outputs uses blocks of length `L = 2^ceil(log2 n)`; one block
//! maps `R^L -> R^L` as
//!
//! ```text
//! block_j(v) = H G_j Pi_j H B_j v
//! ```
//!
//! with `H` the unnormalised `L x L` Walsh-Hadamard matrix, `B_j` a diagonal of random signs,
//! `Pi_j` a random permutation (`(Pi v)_i = v_{pi(i)}`), `G_j` a diagonal of `N(0, 1)` entries.
//! The input `x in R^d` is zero-padded to `c L` with `c = ceil(d / L)` and cut into `c` chunks of
//! length `L`; chunk `j` gets its own independent block, and
//!
//! ```text
//! P_group(x) = sum_j  crop_n(block_j(x_j)) / (||G_j|| sqrt(n))
//! ```
//!
//! The `1 / (||G_j|| sqrt(n))` normalisation is the one of Li et al. and of the authors' code
//! (`divisor * sqrt(DD / LL)` with `divisor = sqrt(LL * sum G^2)`): `||H B v|| = sqrt(L) ||v||`,
//! `E ||G Pi H B v||^2 = ||G||^2 ||v||^2`, the second `H` multiplies by `sqrt(L)` and keeping `n` of
//! `L` rows by about `sqrt(n / L)`, so `||block_j(v)[..n]|| ~ ||G_j|| sqrt(n) ||v||`. The chunks
//! partition `x` and their blocks are independent, so the squared norms add:
//! `||P_group x||^2 ~ sum_j ||x_j||^2 = ||x||^2`, and every column of `P` has norm about 1
//! (`P^T P ~ I`, as for one block). An extra `1 / sqrt(c)` on the sum (as first specified in the
//! issue) would shrink `||P x||` to `||x|| / sqrt(c)` and with it the effective learning rate of
//! `theta` whenever `d > L` (measured: mean ratio 0.5 at c = 4), so there is none. Nothing is ever
//! cropped: every coordinate of `x` reaches every group.
//!
//! The authors' code instead feeds only `x[..L]` to a tensor whose `L < d` (its `F.pad` with a
//! negative pad crops silently). [`Projector::new`] with [`Crop::ToBlock`] reproduces that
//! for the `aghajanyan` compatibility mode (see `subspace`).
//!
//! # The transpose
//! `H`, `B`, `G` are symmetric and `Pi^T = Pi^{-1}`, so
//! `P_group^T u = concat_j B_j H Pi_j^{-1} G_j H pad_L(u) / (||G_j|| sqrt(n))`, cut to `d`.
//!
//! # Randomness
//! The factors of block `j` of group `name` are regenerated from `random::keyed_rng("fastfood
//! v1", seed, name, j)` (stream 0: signs, stream 1: permutation by Fisher-Yates with Lemire's
//! unbiased bounded integers, stream 2: Gaussians by Box-Muller with the pure-Rust `libm`), so the
//! same seed gives bit-identical factors
//! on any machine, in any order of calls, and nothing but the seed needs saving. By default the
//! factors of every block are generated once and cached compactly: the CPU engine keeps what its
//! loops read (the Gaussians as f32; the permutation's low 16 bits as u16 when every chunk's
//! `s = 2^ceil(log2 m)` is at most 2^16, i.e. d <= 65,536 or blocks of at most 2^16, else u32; the
//! signs of the input's coordinates only: about 6 bytes per padded element); the tch-op engine
//! keeps signs as i8, permutation and inverse permutation as i32 and Gaussians as f32 on the
//! device (13 bytes); [`FactorStorage::Regenerate`] keeps nothing and
//! regenerates them at every call instead (`cargo xtask bench fastfood` measures both).
//!
//! # Fast paths
//! The CPU engine ([`Engine::Cpu`]) exploits that `x` is short: see the `cpu` module. The tch-op
//! engine ([`Engine::TchOps`], the one CUDA uses) computes the formulas as written.

use std::sync::Mutex;

use rand_core::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::fused;
use crate::fwht::{self, MAX_LOG2_LEN, Real};
use crate::random;

/// The map's scope and summary are part of the results schema (the `results` crate).
pub use results::{ProjectorSummary, Scope};

/// Whether block factors are kept between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorStorage {
    /// Generated once and kept: about 6 bytes per padded element for the CPU engine, 13 on a
    /// device (see the module doc).
    Cached,
    /// Regenerated from the seed at every call; nothing kept.
    Regenerate,
}

/// Why a [`Projector`] cannot be built, or cannot apply `P` or `P^T` to the tensors given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FastfoodError {
    /// [`Projector::new`] with `d = 0`.
    #[error("the Fastfood projection needs d >= 1")]
    EmptyInput,
    /// [`Projector::new`] with an empty list of tensors.
    #[error("no parameter tensors to project onto")]
    NoTensors,
    /// [`Projector::new`] with a tensor of no elements.
    #[error("parameter tensor `{name}` has no elements")]
    EmptyTensor {
        /// The tensor's name.
        name: String,
    },
    /// A block group of `n` outputs whose block `L = 2^ceil(log2 n)` would exceed `2^30` elements
    /// (with [`Scope::Global`] the group is every tensor: [`Scope::PerTensor`] splits it).
    #[error(
        "block group `{name}` has {len} outputs, above the 2^30 a block supports{hint}",
        hint = if .name == GLOBAL_GROUP { ": use the per_tensor scope" } else { "" }
    )]
    GroupTooLarge {
        /// The group's name: [`GLOBAL_GROUP`] for the global scope, else its tensor's name.
        name: String,
        /// The group's number of outputs `n`.
        len: usize,
    },
    /// The transpose given a number of output-space tensors (or of weights) other than the
    /// projector's number of tensors.
    #[error("expected {expected} tensors of output gradients, got {actual}")]
    WrongTensorCount {
        /// The projector's number of tensors.
        expected: usize,
        /// The number of tensors (or weights) given.
        actual: usize,
    },
    /// A tensor given to the transpose with another number of elements than the projector's tensor
    /// in its position.
    #[error("output gradient {index} has {actual} elements, the projector's tensor {name} has {expected}")]
    WrongTensorLength {
        /// Its position.
        index: usize,
        /// The projector's tensor there.
        name: String,
        /// That tensor's number of elements.
        expected: usize,
        /// The number given.
        actual: usize,
    },
    /// An input on another device than the projector's.
    #[error("a tensor on {actual:?} given to a projector built on {expected:?}")]
    WrongDevice {
        /// The projector's device.
        expected: Device,
        /// The input's device.
        actual: Device,
    },
    /// Tensors given to the transpose in more than one dtype.
    #[error("the tensors given to the transpose mix {first:?} and {other:?}: give them all in one kind")]
    MixedKinds {
        /// The first tensor's dtype.
        first: Kind,
        /// The first dtype that differs from it.
        other: Kind,
    },
    /// An output buffer for [`Projector::forward_into`] that is not a contiguous 1-D tensor of `D`
    /// elements in the dtype and on the device of `x`, apart from the memory of `x`.
    #[error("output buffer {actual}: expected {expected}")]
    WrongOutput {
        /// What the buffer must be, in words.
        expected: String,
        /// What it is, in words: shape, dtype, device, and any overlap with the input.
        actual: String,
    },
    /// An input `x` that is not a 1-D tensor of `d` elements.
    #[error("input of length {actual} given to a projector built for d = {expected}")]
    WrongInputLength {
        /// The projector's input dimension `d`.
        expected: usize,
        /// The input's number of elements.
        actual: usize,
    },
    /// An input in a dtype other than f32 or f64.
    #[error("the Fastfood projection works in f32 or f64, got {kind:?}")]
    UnsupportedKind {
        /// The dtype given.
        kind: Kind,
    },
    /// An operation only the CPU engine has, asked of a projector with another engine.
    #[error("this operation needs the CPU engine, the projector uses {engine:?}")]
    WrongEngine {
        /// The projector's engine.
        engine: Engine,
    },
    /// The fused engine failed: its kernel did not load or launch, or it rejected an operand.
    #[error("{0} (set {ENGINE_ENV}=tch_ops to use tch operations instead)")]
    Fused(#[from] fused::FusedError),
}

/// The name of the single group of [`Scope::Global`], used as its randomness key.
pub const GLOBAL_GROUP: &str = "<global>";

/// A contiguous range of the output that one set of blocks covers.
#[derive(Debug, Clone)]
struct Group {
    name: String,
    out_len: usize,
    log2_block: u32,
    n_chunks: usize,
    /// The length of input this group sees: `d`, or `L` when the compatibility mode crops.
    in_len: usize,
    /// The tensors of this group, in output order: (tensor index, offset in the group's output).
    members: Vec<(usize, usize)>,
}

impl Group {
    fn block_len(&self) -> usize {
        1 << self.log2_block
    }
}

/// The random factors of one group's `c` blocks, as tensors on the projector's device.
struct GroupFactors {
    /// `[c, L]` i8 of +-1.
    signs: Tensor,
    /// `[c L]` i32: for chunk j, `pi_j(i) + j L`, so one gather serves all chunks.
    perm: Tensor,
    /// `[c L]` i32: the inverse of `perm`.
    inv_perm: Tensor,
    /// `[c, L]` f32 of N(0, 1).
    gauss: Tensor,
    /// `[c, 1]` f64: `1 / (||G_j|| sqrt(n))`.
    scale: Tensor,
    /// `[c]` f32: the same scales rounded to f32, as the fused kernel reads them (the tch-op path
    /// rounds them the same way before multiplying f32 values).
    scale_f32: Tensor,
}

/// Which part of `x` (length `d`) each block group reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// All of it: a group whose block is shorter than `d` gets one block per chunk of `x` (the
    /// exact map).
    None,
    /// `x[..L]` for a group whose block length `L` is below `d`: the authors' cropping, for the
    /// `aghajanyan` compatibility mode only.
    ToBlock,
}

/// Everything a [`Projector`] is a function of besides its tensors' shapes: what
/// [`Projector::new`] takes, what the projector keeps, and (with the shapes and the engine) the
/// key under which the subspace shares one projector between runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectorSpec {
    /// The input dimension `d`.
    pub d: usize,
    /// One block group over all tensors, or one per tensor.
    pub scope: Scope,
    /// The seed every factor is drawn from (with the group's name and block index).
    pub seed: u64,
    /// Which part of the input each group reads.
    pub crop: Crop,
    /// Keep the factors, or regenerate them at every call.
    pub storage: FactorStorage,
    /// Where the factors and the inputs live.
    pub device: Device,
}

/// `P: R^d -> R^D` over a list of named tensors, with its transpose.
pub struct Projector {
    spec: ProjectorSpec,
    engine: Engine,
    numels: Vec<usize>,
    /// The tensors' names, for errors.
    names: Vec<String>,
    groups: Vec<Group>,
    /// With [`FactorStorage::Cached`] and [`Engine::Cpu`].
    cached_host: Vec<CpuFactors>,
    /// With [`FactorStorage::Cached`] and [`Engine::TchOps`].
    cached_device: Vec<GroupFactors>,
    /// The CPU engine's working buffer (one block), kept between calls: fresh pages of a new
    /// buffer cost a fault each, about a third of a call's time at RoBERTa-base size.
    scratch_f32: Mutex<Vec<f32>>,
    scratch_f64: Mutex<Vec<f64>>,
}

/// How the projection is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Hand-written loops over CPU memory (the default on CPU), using the structure of the input:
    /// see "Fast paths" in the module doc.
    Cpu,
    /// tch operations on any device: the CUDA fallback and the reference the fused path is
    /// checked against.
    TchOps,
    /// The fused FWHT passes of [`crate::fused`] with the Fastfood steps fused in: the CUDA
    /// default when the kernel loads. On the CPU it runs the kernel's emulation (tests only:
    /// slow). f64 inputs take the [`Engine::TchOps`] formulas.
    Fused,
    /// The tch-op formulas with the authors' per-stage FWHT ([`fwht::fwht_anchor`]): the baseline
    /// that benchmarks measure the other engines against. Never a default.
    Anchor,
}

impl Engine {
    /// The engine named as [`ENGINE_ENV`] spells it (`cpu`, `tch_ops`, `fused`, `anchor`); `None`
    /// for any other name.
    pub fn parse(name: &str) -> Option<Engine> {
        match name {
            "cpu" => Some(Engine::Cpu),
            "tch_ops" => Some(Engine::TchOps),
            "fused" => Some(Engine::Fused),
            "anchor" => Some(Engine::Anchor),
            _ => None,
        }
    }
}

/// Overrides the default engine (`cpu` on CPU projectors only, `tch_ops`, `fused`, `anchor`): for
/// benchmarks, and to step around the fused kernel if it ever misbehaves.
pub const ENGINE_ENV: &str = "INTRINSIC_BENCH_FASTFOOD_ENGINE";

impl Projector {
    /// Builds the projector for tensors given as `(name, numel)` in a fixed order. With
    /// [`Crop::ToBlock`], a group whose block is shorter than `d` sees only `x[..L]` (the
    /// authors' behaviour, for the compatibility mode only).
    pub fn new(tensors: &[(String, usize)], spec: ProjectorSpec) -> Result<Projector, FastfoodError> {
        let ProjectorSpec { d, scope, crop, device, .. } = spec;
        if d == 0 {
            return Err(FastfoodError::EmptyInput);
        }
        if tensors.is_empty() {
            return Err(FastfoodError::NoTensors);
        }
        if let Some((name, _)) = tensors.iter().find(|(_, numel)| *numel == 0) {
            return Err(FastfoodError::EmptyTensor { name: name.clone() });
        }
        let make_group = |name: &str, out_len: usize, members: Vec<(usize, usize)>| {
            let block_len = out_len.next_power_of_two();
            let log2_block = block_len.trailing_zeros();
            if log2_block > MAX_LOG2_LEN {
                return Err(FastfoodError::GroupTooLarge { name: name.to_owned(), len: out_len });
            }
            let in_len = if crop == Crop::ToBlock { d.min(block_len) } else { d };
            Ok(Group {
                name: name.to_owned(),
                out_len,
                log2_block,
                n_chunks: in_len.div_ceil(block_len),
                in_len,
                members,
            })
        };
        let groups = match scope {
            Scope::Global => {
                let mut members = Vec::with_capacity(tensors.len());
                let mut offset = 0;
                for (tensor_idx, (_, numel)) in tensors.iter().enumerate() {
                    members.push((tensor_idx, offset));
                    offset += numel;
                }
                vec![make_group(GLOBAL_GROUP, offset, members)?]
            }
            Scope::PerTensor => tensors
                .iter()
                .enumerate()
                .map(|(tensor_idx, (name, numel))| make_group(name, *numel, vec![(tensor_idx, 0)]))
                .collect::<Result<_, _>>()?,
        };
        let mut projector = Projector {
            spec,
            numels: tensors.iter().map(|(_, numel)| *numel).collect(),
            names: tensors.iter().map(|(name, _)| name.clone()).collect(),
            groups,
            engine: default_engine(device),
            cached_host: Vec::new(),
            cached_device: Vec::new(),
            scratch_f32: Mutex::new(Vec::new()),
            scratch_f64: Mutex::new(Vec::new()),
        };
        projector.fill_cache();
        Ok(projector)
    }

    /// Computes with `engine` instead of the device's default (tests and benchmarks compare them;
    /// [`Engine::Cpu`] needs a CPU projector).
    pub fn with_engine(mut self, engine: Engine) -> Projector {
        assert!(engine != Engine::Cpu || self.spec.device == Device::Cpu, "the Cpu engine needs a CPU projector");
        // The device engines share one set of cached factors.
        let same_factors = (self.engine == Engine::Cpu) == (engine == Engine::Cpu);
        self.engine = engine;
        if !same_factors {
            self.fill_cache();
        }
        self
    }

    /// The engine this projector computes with: the device's default unless
    /// [`Projector::with_engine`] set another.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    fn fill_cache(&mut self) {
        self.cached_host.clear();
        self.cached_device.clear();
        if self.spec.storage == FactorStorage::Regenerate {
            return;
        }
        match self.engine {
            Engine::Cpu => {
                self.cached_host =
                    self.groups.par_iter().map(|group| CpuFactors::generate(self.spec.seed, group)).collect()
            }
            Engine::TchOps | Engine::Fused | Engine::Anchor => {
                self.cached_device = self
                    .groups
                    .iter()
                    .map(|group| HostFactors::generate(self.spec.seed, group).to_device(self.spec.device))
                    .collect()
            }
        }
    }

    /// The total number of outputs `D`.
    pub fn total_params(&self) -> usize {
        self.numels.iter().sum()
    }

    /// The block length `L` of the group that holds tensor `tensor_idx`.
    pub fn block_len_of_tensor(&self, tensor_idx: usize) -> usize {
        let group = self.groups.iter().find(|group| group.members.iter().any(|(idx, _)| *idx == tensor_idx));
        group.expect("every tensor belongs to a group").block_len()
    }

    /// The projector's facts for run records: scope, seed, `d`, `D`, the numbers of tensors,
    /// groups and blocks, the total padded length, and how the authors' cropping bears on it.
    pub fn summary(&self) -> ProjectorSummary {
        ProjectorSummary {
            scope: self.spec.scope,
            seed: self.spec.seed,
            d: self.spec.d,
            total_params: self.total_params(),
            n_tensors: self.numels.len(),
            n_groups: self.groups.len(),
            n_blocks: self.groups.iter().map(|group| group.n_chunks).sum(),
            total_padded_len: self.groups.iter().map(|group| group.n_chunks * group.block_len()).sum(),
            n_groups_cropped_by_authors_code: self
                .groups
                .iter()
                .filter(|group| group.block_len() < self.spec.d)
                .count(),
            crop_to_block: self.spec.crop == Crop::ToBlock,
        }
    }

    /// Bytes held between calls: cached factors (none with [`FactorStorage::Regenerate`]) and the
    /// CPU engine's scratch buffer.
    pub fn cached_bytes(&self) -> usize {
        let scratch = 4 * lock(&self.scratch_f32).len() + 8 * lock(&self.scratch_f64).len();
        let host: usize = self.cached_host.iter().map(CpuFactors::bytes).sum::<usize>() + scratch;
        let device: usize = self
            .cached_device
            .iter()
            .map(|factors| {
                [&factors.signs, &factors.perm, &factors.inv_perm, &factors.gauss, &factors.scale, &factors.scale_f32]
                    .iter()
                    .map(|tensor| tensor.numel() * tensor.kind().elt_size_in_bytes())
                    .sum::<usize>()
            })
            .sum();
        host + device
    }

    /// `P x`, as one flat tensor per parameter tensor (in the order given to [`Projector::new`]),
    /// in the dtype and on the device of `x`: on the CPU, views of one fresh `D`-element tensor
    /// (see [`Projector::forward_into`]); on a device, views of each group's fresh result.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>, FastfoodError> {
        self.check_input(x)?;
        if self.engine == Engine::Cpu {
            let out = Tensor::empty([self.total_params() as i64], (x.kind(), x.device()));
            return self.forward_into(x, &out);
        }
        // On a device each group's result is already a fresh tensor: its views are the outputs,
        // with no copy into one buffer.
        let x = x.contiguous();
        let mut outputs: Vec<Option<Tensor>> = (0..self.numels.len()).map(|_| None).collect();
        for (group_idx, group) in self.groups.iter().enumerate() {
            let out = self.forward_device_group(group_idx, group, &x)?;
            for &(tensor_idx, offset) in &group.members {
                outputs[tensor_idx] = Some(out.narrow(0, offset as i64, self.numels[tensor_idx] as i64));
            }
        }
        Ok(outputs.into_iter().map(|out| out.expect("every tensor belongs to a group")).collect())
    }

    /// One group's `P x` with a device engine (tch ops, the fused kernel or the per-stage FWHT).
    fn forward_device_group(&self, group_idx: usize, group: &Group, x: &Tensor) -> Result<Tensor, FastfoodError> {
        self.with_device_factors(group_idx, |factors| match self.engine {
            Engine::Fused if x.kind() == Kind::Float => forward_group_fused(group, factors, x),
            Engine::Anchor => Ok(forward_group(group, factors, x, true)),
            Engine::Cpu | Engine::TchOps | Engine::Fused => Ok(forward_group(group, factors, x, false)),
        })
    }

    /// `P x` written into `out`: a contiguous 1-D tensor of `D` elements in the dtype and on the
    /// device of `x`, holding the tensors' outputs one after another in the order given to
    /// [`Projector::new`]. Returns one view of `out` per tensor, as [`Projector::forward`] does.
    /// A caller that projects at every step keeps one `out` between calls: on the CPU every page
    /// of a fresh `D`-element buffer costs a page fault (a 91 MB buffer per call for MiniLM).
    ///
    /// # Errors
    /// [`FastfoodError::WrongInputLength`] or [`FastfoodError::UnsupportedKind`] for `x`,
    /// [`FastfoodError::WrongOutput`] when `out` is not such a tensor.
    pub fn forward_into(&self, x: &Tensor, out: &Tensor) -> Result<Vec<Tensor>, FastfoodError> {
        self.check_forward_into(x, out)?;
        match (self.engine, x.kind()) {
            (Engine::Cpu, Kind::Float) => self.forward_cpu::<f32>(x, out, None),
            (Engine::Cpu, Kind::Double) => self.forward_cpu::<f64>(x, out, None),
            _ => {
                let x = x.contiguous();
                let mut group_start = 0usize;
                for (group_idx, group) in self.groups.iter().enumerate() {
                    let region = out.narrow(0, group_start as i64, group.out_len as i64);
                    group_start += group.out_len;
                    region.shallow_clone().copy_(&self.forward_device_group(group_idx, group, &x)?);
                }
            }
        }
        Ok(self.views_of(out))
    }

    /// [`Projector::forward_into`] with the CPU engine, handing every run of the output to
    /// `epilogue` as it is written (while it is in cache). `T` must be the kind of `x`.
    ///
    /// # Errors
    /// As [`Projector::forward_into`]; [`FastfoodError::WrongEngine`] unless the engine is
    /// [`Engine::Cpu`].
    pub(crate) fn forward_into_with<T: CpuReal>(
        &self,
        x: &Tensor,
        out: &Tensor,
        epilogue: &Epilogue<'_, T>,
    ) -> Result<Vec<Tensor>, FastfoodError> {
        self.check_forward_into(x, out)?;
        assert_eq!(x.kind(), T::KIND, "forward_into_with: T is the kind of x");
        if self.engine != Engine::Cpu {
            return Err(FastfoodError::WrongEngine { engine: self.engine });
        }
        self.forward_cpu(x, out, Some(epilogue));
        Ok(self.views_of(out))
    }

    fn forward_cpu<T: CpuReal>(&self, x: &Tensor, out: &Tensor, epilogue: Option<&Epilogue<'_, T>>) {
        let x = x.contiguous();
        let mut scratch = T::scratch_of(self);
        let mut group_start = 0usize;
        for (group_idx, group) in self.groups.iter().enumerate() {
            let region = out.narrow(0, group_start as i64, group.out_len as i64);
            self.with_host_factors(group_idx, |factors| {
                cpu::forward_group::<T>(
                    group,
                    factors,
                    &x,
                    &region,
                    &mut scratch,
                    epilogue.map(|epilogue| (epilogue, group_start)),
                )
            });
            group_start += group.out_len;
        }
    }

    /// One view of `out` per tensor.
    fn views_of(&self, out: &Tensor) -> Vec<Tensor> {
        let mut offset = 0i64;
        self.numels
            .iter()
            .map(|&numel| {
                let view = out.narrow(0, offset, numel as i64);
                offset += numel as i64;
                view
            })
            .collect()
    }

    /// `P^T` applied to one output-space vector per tensor (each flattened to `numel` elements):
    /// `sum_t P_t^T u_t`, of length `d`.
    pub fn transpose(&self, per_tensor: &[Tensor]) -> Result<Tensor, FastfoodError> {
        self.transpose_weighted(per_tensor, None)
    }

    /// `sum_t w_t P_t^T u_t`: [`Projector::transpose`] with a scalar weight per tensor (SAID's
    /// scales), applied as the vectors are read instead of through a scaled copy of each.
    ///
    /// # Errors
    /// [`FastfoodError::WrongTensorCount`] when `per_tensor` (or `weights`) does not have one entry
    /// per tensor, [`FastfoodError::WrongTensorLength`] when an entry has another number of
    /// elements than its tensor; [`FastfoodError::UnsupportedKind`] for a dtype other than f32 or
    /// f64.
    pub fn transpose_weighted(&self, per_tensor: &[Tensor], weights: Option<&[f64]>) -> Result<Tensor, FastfoodError> {
        if per_tensor.len() != self.numels.len() {
            return Err(FastfoodError::WrongTensorCount { expected: self.numels.len(), actual: per_tensor.len() });
        }
        if let Some(weights) = weights
            && weights.len() != self.numels.len()
        {
            return Err(FastfoodError::WrongTensorCount { expected: self.numels.len(), actual: weights.len() });
        }
        if let Some((index, tensor)) =
            per_tensor.iter().enumerate().find(|(index, tensor)| tensor.numel() != self.numels[*index])
        {
            return Err(FastfoodError::WrongTensorLength {
                index,
                name: self.names[index].clone(),
                expected: self.numels[index],
                actual: tensor.numel(),
            });
        }
        let first = &per_tensor[0];
        check_kind(first.kind())?;
        for tensor in per_tensor {
            self.check_device(tensor.device())?;
            if tensor.kind() != first.kind() {
                return Err(FastfoodError::MixedKinds { first: first.kind(), other: tensor.kind() });
            }
        }
        let total = Tensor::zeros([self.spec.d as i64], (first.kind(), first.device()));
        let (mut scratch_f32, mut scratch_f64) = (lock(&self.scratch_f32), lock(&self.scratch_f64));
        for (group_idx, group) in self.groups.iter().enumerate() {
            let pieces: Vec<(Tensor, Option<f64>)> = group
                .members
                .iter()
                .map(|&(tensor_idx, _)| {
                    (per_tensor[tensor_idx].reshape([-1]), weights.map(|weights| weights[tensor_idx]))
                })
                .collect();
            let grad = match self.engine {
                Engine::Cpu => self.with_host_factors(group_idx, |factors| match first.kind() {
                    Kind::Float => cpu::transpose_group::<f32>(group, factors, &pieces, &mut scratch_f32),
                    Kind::Double => cpu::transpose_group::<f64>(group, factors, &pieces, &mut scratch_f64),
                    kind => panic!("checked kind {kind:?}"),
                }),
                Engine::TchOps | Engine::Fused | Engine::Anchor => {
                    let pieces: Vec<Tensor> = pieces
                        .into_iter()
                        .map(|(piece, weight)| match weight {
                            Some(weight) => piece * weight,
                            None => piece,
                        })
                        .collect();
                    let u = if pieces.len() == 1 { pieces[0].shallow_clone() } else { Tensor::cat(&pieces, 0) };
                    self.with_device_factors(group_idx, |factors| {
                        if self.engine == Engine::Fused && u.kind() == Kind::Float {
                            transpose_group_fused(group, factors, &u.contiguous())
                        } else {
                            Ok(transpose_group(group, factors, &u, self.engine == Engine::Anchor))
                        }
                    })?
                }
            };
            let mut head = total.narrow(0, 0, group.in_len as i64);
            head += grad;
        }
        Ok(total)
    }

    /// The `D x d` matrix of `P` (f64, CPU) built densely from the factors, with no FWHT and no
    /// gather: an independent reference for tests. Small sizes only (blocks up to 4096).
    #[doc(hidden)]
    pub fn dense_matrix(&self) -> Tensor {
        let options = (tch::Kind::Double, Device::Cpu);
        let matrix = Tensor::zeros([self.total_params() as i64, self.spec.d as i64], options);
        for group in &self.groups {
            assert!(group.block_len() <= 4096, "dense_matrix is for small test sizes");
            let block_len = group.block_len() as i64;
            let host = HostFactors::generate(self.spec.seed, group);
            let hadamard = fwht::hadamard_matrix(group.log2_block, tch::Kind::Double, Device::Cpu);
            // A group's outputs are contiguous in the concatenation, starting at its first tensor.
            let out_offset: usize = self.numels[..group.members[0].0].iter().sum();
            for chunk in 0..group.n_chunks {
                let range = chunk * group.block_len()..(chunk + 1) * group.block_len();
                let signs = Tensor::from_slice(&host.signs[range.clone()]).to_kind(tch::Kind::Double).diag(0);
                let gauss = Tensor::from_slice(&host.gauss[range.clone()]).to_kind(tch::Kind::Double).diag(0);
                let permutation = Tensor::zeros([block_len, block_len], options);
                for (position, &source) in host.perm[range].iter().enumerate() {
                    let _ = permutation.get(position as i64).get(source as i64).fill_(1.0);
                }
                let block =
                    hadamard.matmul(&gauss).matmul(&permutation).matmul(&hadamard).matmul(&signs) * host.scale[chunk];
                let in_start = chunk as i64 * block_len;
                let in_cols = (group.in_len as i64 - in_start).min(block_len);
                let mut target = matrix.narrow(0, out_offset as i64, group.out_len as i64).narrow(1, in_start, in_cols);
                target += block.narrow(0, 0, group.out_len as i64).narrow(1, 0, in_cols);
            }
        }
        matrix
    }

    fn check_forward_into(&self, x: &Tensor, out: &Tensor) -> Result<(), FastfoodError> {
        self.check_input(x)?;
        let total = self.total_params();
        let overlaps = {
            let bytes = |tensor: &Tensor| tensor.numel() * tensor.kind().elt_size_in_bytes();
            let (x_start, out_start) = (x.data_ptr() as usize, out.data_ptr() as usize);
            x.device() == out.device() && x_start < out_start + bytes(out) && out_start < x_start + bytes(x)
        };
        if out.dim() != 1
            || out.numel() != total
            || out.kind() != x.kind()
            || out.device() != x.device()
            || !out.is_contiguous()
            || overlaps
        {
            return Err(FastfoodError::WrongOutput {
                expected: format!(
                    "a contiguous 1-D {:?} tensor of {total} elements on {:?}, apart from the input",
                    x.kind(),
                    x.device()
                ),
                actual: format!(
                    "{:?} {:?} on {:?}{}",
                    out.size(),
                    out.kind(),
                    out.device(),
                    if overlaps { ", sharing memory with the input" } else { "" }
                ),
            });
        }
        Ok(())
    }

    fn check_input(&self, x: &Tensor) -> Result<(), FastfoodError> {
        let len = x.numel();
        if x.dim() != 1 || len != self.spec.d {
            return Err(FastfoodError::WrongInputLength { expected: self.spec.d, actual: len });
        }
        self.check_device(x.device())?;
        check_kind(x.kind())
    }

    fn check_device(&self, device: Device) -> Result<(), FastfoodError> {
        if device != self.spec.device {
            return Err(FastfoodError::WrongDevice { expected: self.spec.device, actual: device });
        }
        Ok(())
    }

    fn with_host_factors<R>(&self, group_idx: usize, run: impl FnOnce(&CpuFactors) -> R) -> R {
        match self.spec.storage {
            FactorStorage::Cached => run(&self.cached_host[group_idx]),
            FactorStorage::Regenerate => run(&CpuFactors::generate(self.spec.seed, &self.groups[group_idx])),
        }
    }

    fn with_device_factors<R>(&self, group_idx: usize, run: impl FnOnce(&GroupFactors) -> R) -> R {
        match self.spec.storage {
            FactorStorage::Cached => run(&self.cached_device[group_idx]),
            FactorStorage::Regenerate => {
                run(&HostFactors::generate(self.spec.seed, &self.groups[group_idx]).to_device(self.spec.device))
            }
        }
    }
}

/// The element types of the CPU engine, with the projector's scratch buffer of each.
pub(crate) trait CpuReal: Real {
    /// The projector's scratch buffer of this type.
    fn scratch_of(projector: &Projector) -> std::sync::MutexGuard<'_, Vec<Self>>;
}
impl CpuReal for f32 {
    fn scratch_of(projector: &Projector) -> std::sync::MutexGuard<'_, Vec<f32>> {
        lock(&projector.scratch_f32)
    }
}
impl CpuReal for f64 {
    fn scratch_of(projector: &Projector) -> std::sync::MutexGuard<'_, Vec<f64>> {
        lock(&projector.scratch_f64)
    }
}

/// Locks a scratch buffer; a panic elsewhere cannot leave it inconsistent (its contents are
/// arbitrary anyway), so a poisoned lock is taken as it is.
fn lock<T>(scratch: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    scratch.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check_kind(kind: Kind) -> Result<(), FastfoodError> {
    match kind {
        Kind::Float | Kind::Double => Ok(()),
        kind => Err(FastfoodError::UnsupportedKind { kind }),
    }
}

/// A group's factors in full, as generated: what goes to the device, and what the dense reference
/// matrix is built from.
struct HostFactors {
    block_len: usize,
    /// `c L` signs, chunk after chunk.
    signs: Vec<i8>,
    /// `c L`: chunk `j`'s permutation `pi_j` over `0..L` at `j L..(j + 1) L`.
    perm: Vec<u32>,
    /// `c L` Gaussians.
    gauss: Vec<f32>,
    /// `c` scales `1 / (||G_j|| sqrt(n))`.
    scale: Vec<f64>,
}

impl HostFactors {
    fn generate(seed: u64, group: &Group) -> HostFactors {
        let block_len = group.block_len();
        let n_chunks = group.n_chunks;
        let blocks: Vec<BlockFactors> = (0..n_chunks)
            .into_par_iter()
            .map(|chunk| BlockFactors::generate(seed, &group.name, chunk, block_len))
            .collect();
        let mut factors = HostFactors {
            block_len,
            signs: Vec::with_capacity(n_chunks * block_len),
            perm: Vec::with_capacity(n_chunks * block_len),
            gauss: Vec::with_capacity(n_chunks * block_len),
            scale: Vec::with_capacity(n_chunks),
        };
        let sqrt_out = (group.out_len as f64).sqrt();
        for block in blocks {
            factors.signs.extend_from_slice(&block.signs);
            factors.perm.extend_from_slice(&block.perm);
            factors.gauss.extend_from_slice(&block.gauss);
            factors.scale.push(1.0 / (block.gauss_norm * sqrt_out));
        }
        factors
    }

    fn n_chunks(&self) -> usize {
        self.scale.len()
    }

    fn to_device(&self, device: Device) -> GroupFactors {
        let block_len = self.block_len;
        let n_chunks = self.n_chunks();
        let mut perm = Vec::with_capacity(self.perm.len());
        let mut inv_perm = vec![0i32; self.perm.len()];
        for (position, &source) in self.perm.iter().enumerate() {
            let global_source = (position / block_len) * block_len + source as usize;
            perm.push(global_source as i32);
            inv_perm[global_source] = position as i32;
        }
        let shape = [n_chunks as i64, block_len as i64];
        GroupFactors {
            signs: Tensor::from_slice(&self.signs).reshape(shape).to_device(device),
            perm: Tensor::from_slice(&perm).to_device(device),
            inv_perm: Tensor::from_slice(&inv_perm).to_device(device),
            gauss: Tensor::from_slice(&self.gauss).reshape(shape).to_device(device),
            scale: Tensor::from_slice(&self.scale).reshape([n_chunks as i64, 1]).to_device(device),
            scale_f32: Tensor::from_slice(&self.scale.iter().map(|&scale| scale as f32).collect::<Vec<f32>>())
                .to_device(device),
        }
    }
}

/// A group's factors as the CPU engine keeps them: only what its loops read (see the `cpu`
/// module), 6 bytes per padded element for inputs of up to 2^16 (d <= 65,536) against the 9 of
/// the full factors.
struct CpuFactors {
    /// Chunk `j`'s first `m_j` signs (`m_j` its input length) at `j L`: the rest multiply the zero
    /// padding. All chunks but the last are `L` long, so chunk `j` still starts at `j L`.
    signs: Vec<i8>,
    /// `pi_j(i)`, chunk after chunk, cut to the bits the engine reads (`pi_j(i) mod s_j`).
    perm: Perm,
    /// `c L` Gaussians.
    gauss: Vec<f32>,
    /// `c` scales `1 / (||G_j|| sqrt(n))`.
    scale: Vec<f64>,
}

/// The permutation's entries: the CPU engine reads `pi(i) mod s` with `s = 2^ceil(log2 m)` for a
/// chunk of `m` inputs, so when every chunk's `s` is at most 2^16 the low 16 bits are all it needs.
enum Perm {
    Low16(Vec<u16>),
    Full(Vec<u32>),
}

impl CpuFactors {
    fn generate(seed: u64, group: &Group) -> CpuFactors {
        let block_len = group.block_len();
        let chunk_len = |chunk: usize| (group.in_len - chunk * block_len).min(block_len);
        let low16 = (0..group.n_chunks).all(|chunk| chunk_len(chunk).next_power_of_two() <= 1 << 16);
        let blocks: Vec<BlockFactors> = (0..group.n_chunks)
            .into_par_iter()
            .map(|chunk| BlockFactors::generate(seed, &group.name, chunk, block_len))
            .collect();
        let sqrt_out = (group.out_len as f64).sqrt();
        let mut factors = CpuFactors {
            signs: Vec::with_capacity(group.in_len),
            perm: if low16 { Perm::Low16(Vec::new()) } else { Perm::Full(Vec::new()) },
            gauss: Vec::with_capacity(group.n_chunks * block_len),
            scale: Vec::with_capacity(group.n_chunks),
        };
        for (chunk, block) in blocks.into_iter().enumerate() {
            factors.signs.extend_from_slice(&block.signs[..chunk_len(chunk)]);
            match &mut factors.perm {
                // Truncation keeps the low 16 bits, all that is read.
                Perm::Low16(perm) => perm.extend(block.perm.iter().map(|&source| source as u16)),
                Perm::Full(perm) => perm.extend_from_slice(&block.perm),
            }
            factors.gauss.extend_from_slice(&block.gauss);
            factors.scale.push(1.0 / (block.gauss_norm * sqrt_out));
        }
        factors
    }

    fn bytes(&self) -> usize {
        let perm = match &self.perm {
            Perm::Low16(perm) => 2 * perm.len(),
            Perm::Full(perm) => 4 * perm.len(),
        };
        self.signs.len() + perm + 4 * self.gauss.len() + 8 * self.scale.len()
    }
}

/// The FWHT of the tch-op engines: the Kronecker path, or the authors' per-stage one.
fn tch_fwht(v: &mut Tensor, anchor: bool) {
    if anchor {
        let transformed = fwht::fwht_anchor(v).expect("block length is a checked power of two");
        *v = transformed;
    } else {
        fwht::fwht_in_place(v).expect("block length is a checked power of two");
    }
}

fn forward_group(group: &Group, factors: &GroupFactors, x: &Tensor, anchor: bool) -> Tensor {
    let block_len = group.block_len() as i64;
    let n_chunks = group.n_chunks as i64;
    let kind = x.kind();
    let input = x.narrow(0, 0, group.in_len as i64);
    let padded = input.constant_pad_nd([0, n_chunks * block_len - group.in_len as i64]).reshape([n_chunks, block_len]);
    let mut v = padded * &factors.signs;
    tch_fwht(&mut v, anchor);
    let mut v =
        v.reshape([-1]).index_select(0, &factors.perm).reshape([n_chunks, block_len]) * factors.gauss.to_kind(kind);
    tch_fwht(&mut v, anchor);
    let v = v.narrow(1, 0, group.out_len as i64) * factors.scale.to_kind(kind);
    if n_chunks == 1 { v.reshape([-1]) } else { v.sum_dim_intlist(0, false, kind) }
}

fn transpose_group(group: &Group, factors: &GroupFactors, u: &Tensor, anchor: bool) -> Tensor {
    let block_len = group.block_len() as i64;
    let n_chunks = group.n_chunks as i64;
    let kind = u.kind();
    let padded = u.constant_pad_nd([0, block_len - group.out_len as i64]).reshape([1, block_len]);
    let mut v = padded * factors.scale.to_kind(kind);
    tch_fwht(&mut v, anchor);
    let mut v = (v * factors.gauss.to_kind(kind))
        .reshape([-1])
        .index_select(0, &factors.inv_perm)
        .reshape([n_chunks, block_len]);
    tch_fwht(&mut v, anchor);
    (v * &factors.signs).reshape([-1]).narrow(0, 0, group.in_len as i64)
}

/// The default engine of a device: the CPU engine on the CPU; on CUDA the fused kernel when it
/// loads, else the tch-op path (said once per process, with the reason, on stderr). The
/// environment variable [`ENGINE_ENV`] overrides it.
pub fn default_engine(device: Device) -> Engine {
    if let Some(engine) = std::env::var(ENGINE_ENV).ok().and_then(|name| Engine::parse(&name))
        && (engine != Engine::Cpu || device == Device::Cpu)
    {
        return engine;
    }
    match device {
        Device::Cpu => Engine::Cpu,
        device => match crate::fused::available(device) {
            Ok(()) => Engine::Fused,
            Err(err) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| tracing::warn!("Fastfood falls back to tch operations on {device:?}: {err}"));
                Engine::TchOps
            }
        },
    }
}

/// [`forward_group`] with the fused kernel, using the structure of the input as the CPU engine
/// does. A chunk of `m <= L` inputs, signed, is zero past `s = 2^ceil(log2 m)`, and
/// `H_L = H_{L/s} (x) H_s`, so `H_L pad_L(B x)` is `w = H_s pad_s(B x)` repeated `L / s` times:
/// the first transform is a small one (`s` per chunk), and the second reads `w[pi(i) mod s]`
/// (the kernel's periodic source; `w` is small enough to stay in cache) times `G_i` in its first
/// pass and scales in its last. So `P` costs about two passes over the padded length, reading the
/// permutation and the Gaussians once. With several chunks (`d > L`) every chunk is full and
/// `s = L`.
fn forward_group_fused(group: &Group, factors: &GroupFactors, x: &Tensor) -> Result<Tensor, FastfoodError> {
    let (rows, log_n) = (group.n_chunks, group.log2_block);
    let small_log = if rows == 1 { group.in_len.next_power_of_two().trailing_zeros().min(log_n) } else { log_n };
    let input = x.narrow(0, 0, group.in_len as i64).contiguous();
    // Chunk j's first `s` signs; with one chunk, the first `s` of its row (a small copy).
    let signs = if small_log == log_n {
        factors.signs.shallow_clone()
    } else {
        factors.signs.narrow(1, 0, 1 << small_log).contiguous()
    };
    let mut first = fused::Transform::new(&input, rows, small_log);
    first.pre_sign = Some(&signs);
    let w = fused::run(&first)?.reshape([-1]);
    let mut second = fused::Transform::new(&w, rows, log_n);
    second.gather = Some(&factors.perm);
    second.period_log2 = Some(small_log);
    second.pre_vec = Some((&factors.gauss, fused::At::Destination));
    second.post_row = Some(&factors.scale_f32);
    let v = fused::run(&second)?.narrow(1, 0, group.out_len as i64);
    Ok(if rows == 1 { v.reshape([-1]) } else { v.sum_dim_intlist(0, false, Kind::Float) })
}

/// [`transpose_group`] with the fused kernel: the output-space vector is transformed once (zero
/// padding fused), then every chunk gathers from it through its inverse permutation and transforms
/// again, its signs fused into the stores. With one chunk (`d <= L`, the usual case) the Gaussians
/// and the scale are applied as the first transform stores, so the gather reads one scattered
/// value per element instead of two; with several, each chunk's are applied as it loads.
fn transpose_group_fused(group: &Group, factors: &GroupFactors, u: &Tensor) -> Result<Tensor, FastfoodError> {
    let (rows, log_n) = (group.n_chunks, group.log2_block);
    let mut first = fused::Transform::new(u, 1, log_n);
    if rows == 1 {
        first.post_vec = Some(&factors.gauss);
        first.post_row = Some(&factors.scale_f32);
    }
    let w = fused::run(&first)?.reshape([-1]);
    let mut second = fused::Transform::new(&w, rows, log_n);
    second.gather = Some(&factors.inv_perm);
    second.broadcast_src = true;
    if rows > 1 {
        second.pre_vec = Some((&factors.gauss, fused::At::Source));
        second.pre_row = Some(&factors.scale_f32);
    }
    second.post_sign = Some(&factors.signs);
    Ok(fused::run(&second)?.reshape([-1]).narrow(0, 0, group.in_len as i64))
}

/// The factors of one block, as generated on the CPU.
struct BlockFactors {
    signs: Vec<i8>,
    perm: Vec<u32>,
    gauss: Vec<f32>,
    /// `||G||` over the f32 values, summed in f64.
    gauss_norm: f64,
}

impl BlockFactors {
    fn generate(seed: u64, group_name: &str, chunk: usize, len: usize) -> BlockFactors {
        let mut rng = random::keyed_rng("fastfood v1", seed, group_name, chunk as u64);
        rng.set_stream(0);
        let mut signs = Vec::with_capacity(len);
        while signs.len() < len {
            let bits = rng.next_u64();
            let take = (len - signs.len()).min(64);
            signs.extend((0..take).map(|bit| if (bits >> bit) & 1 == 1 { 1i8 } else { -1i8 }));
        }

        rng.set_stream(1);
        let mut perm: Vec<u32> = (0..len as u32).collect();
        random::shuffle(&mut rng, &mut perm);

        rng.set_stream(2);
        let gauss = random::normals(&mut rng, len);
        let gauss_norm = gauss.iter().map(|&value| f64::from(value) * f64::from(value)).sum::<f64>().sqrt();
        BlockFactors { signs, perm, gauss, gauss_norm }
    }
}

/// What the CPU engine hands a caller of [`Projector::forward_into_with`] as it writes the
/// output: `(offset, values)` for each run of final values of `P x`, `offset` counted in the
/// concatenation of all tensors, while the run is still in cache. Runs are disjoint, cover the
/// output once, and may come from several threads at once.
pub(crate) type Epilogue<'a, T> = dyn Fn(usize, &[T]) + Sync + 'a;

/// The CPU engine: loops over host memory that use the structure of the input.
///
/// Forward, per chunk `x_j` of length `m <= L`, with `s = 2^ceil(log2 m)`: `B_j x_j` is zero past
/// `s`, and `H_L = H_{L/s} (x) H_s`, so `H_L pad_L(B_j x_j)` is `w = H_s pad_s(B_j x_j)` repeated
/// `L / s` times. The permutation then only needs `w[pi_j(i) mod s]`, read from a buffer that stays
/// in cache. One FWHT of length `L` follows, with both ends fused into its passes over memory
/// ([`fwht::fwht_fused`]): each leaf is filled with `z_i = G_i w[pi_j(i) mod s]` just before its
/// first stage, and each run of the last pass is scaled, cropped and written to the output (and
/// handed to the caller's [`Epilogue`]) instead of being written back. So `P` reads the
/// permutation and the Gaussians once, writes the block once and reads it once, and writes the
/// output once.
///
/// The transpose mirrors it: one FWHT of `pad_L(u)` (shared by all chunks), its leaves filled from
/// the per-tensor vectors (weighted as they are read), then `(H_L Pi^T G z)[..s] = H_s(a)` with
/// `a[k] = sum_{pi(i) mod s = k} G_i z_i`, accumulated from the runs of the FWHT's last pass (with
/// one chunk; with several, from the transformed block in one streaming pass per chunk), and a
/// small FWHT. No random access to long vectors and no inverse permutation.
///
/// Parallel work is split at fixed points (never by rayon's adaptive splitting), and partial sums
/// are combined in a fixed order, so results are bit-identical whatever the thread count.
mod cpu {
    use rayon::prelude::*;
    use tch::{Device, Tensor};

    use super::{CpuFactors, Epilogue, Group, Perm};
    use crate::fwht::{Ends, Order, Real, fwht_fused, fwht_slice};

    /// The scatter-add of the transpose is split into this many partial sums, a number fixed
    /// independently of the thread count.
    const N_PARTIALS: usize = 16;
    /// Parts of a pass that sums nothing (the forward's last pass, a shared transform): load
    /// balance only.
    const N_FORWARD_PARTS: usize = 64;

    /// # Safety
    /// `tensor` must be a contiguous CPU tensor of element type `T` that outlives the slice.
    unsafe fn as_slice<T>(tensor: &Tensor) -> &[T] {
        unsafe { std::slice::from_raw_parts(tensor.data_ptr() as *const T, tensor.numel()) }
    }

    /// # Safety
    /// As [`as_slice`], and nothing else may access the tensor while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn as_mut_slice<T>(tensor: &Tensor) -> &mut [T] {
        unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr() as *mut T, tensor.numel()) }
    }

    /// An output pointer that the parts of one pass may share: they write disjoint runs.
    #[derive(Clone, Copy)]
    struct SharedOut<T>(*mut T);
    // SAFETY: only ever used to write disjoint ranges from different threads (see the users).
    unsafe impl<T: Send> Send for SharedOut<T> {}
    unsafe impl<T: Send> Sync for SharedOut<T> {}

    fn sign<T: Real>(sign: i8) -> T {
        if sign > 0 { T::from_f64(1.0) } else { T::from_f64(-1.0) }
    }

    /// A buffer of `len` elements from `scratch`, grown if needed; its contents are arbitrary.
    fn scratch_of<T: Real>(scratch: &mut Vec<T>, len: usize) -> &mut [T] {
        if scratch.len() < len {
            scratch.resize(len, T::ZERO);
        }
        &mut scratch[..len]
    }

    /// An entry of a stored permutation, as an index.
    trait PermIndex: Copy + Send + Sync {
        fn index(self) -> usize;
    }
    impl PermIndex for u16 {
        fn index(self) -> usize {
            usize::from(self)
        }
    }
    impl PermIndex for u32 {
        fn index(self) -> usize {
            self as usize
        }
    }

    /// `H_s pad_s(B_j x_j)`: the small first transform of chunk `j`.
    fn first_transform<T: Real>(input: &[T], signs: &[i8]) -> Vec<T> {
        let mut small = vec![T::ZERO; input.len().next_power_of_two()];
        for ((value, &input), &sign_value) in small.iter_mut().zip(input).zip(signs) {
            *value = sign::<T>(sign_value) * input;
        }
        fwht_slice(&mut small).expect("power of two");
        small
    }

    /// One chunk of the forward: fills leaves with `G_i w[pi(i) mod s]`, stores the scaled,
    /// cropped result into the output (adding to it after the first chunk).
    struct Forward<'a, T> {
        small: &'a [T],
        mask: usize,
        gauss: &'a [f32],
        scale: T,
        out: SharedOut<T>,
        out_len: usize,
        accumulate: bool,
        /// With the global offset of the group's first output.
        epilogue: Option<(&'a Epilogue<'a, T>, usize)>,
    }

    /// [`Forward`] with the chunk's permutation entries.
    struct WithPerm<'a, E, P>(&'a E, &'a [P]);

    impl<T: Real, P: PermIndex> Ends<T> for WithPerm<'_, Forward<'_, T>, P> {
        type Acc = ();
        fn new_acc(&self) {}
        #[inline(always)]
        fn load(&self, start: usize, leaf: &mut [T]) {
            let (forward, end) = (self.0, start + leaf.len());
            for ((value, &source), &gauss) in leaf.iter_mut().zip(&self.1[start..end]).zip(&forward.gauss[start..end]) {
                *value = T::from_f32(gauss) * forward.small[source.index() & forward.mask];
            }
        }
        #[inline(always)]
        fn store(&self, _: &mut (), start: usize, values: &[T]) {
            let forward = self.0;
            if start >= forward.out_len {
                return;
            }
            let len = values.len().min(forward.out_len - start);
            // SAFETY: `out` holds `out_len` elements; the runs of one pass are disjoint, so no
            // other thread touches `start..start + len` during this call.
            let out = unsafe { std::slice::from_raw_parts_mut(forward.out.0.add(start), len) };
            if forward.accumulate {
                for (out, &value) in out.iter_mut().zip(values) {
                    *out = *out + value * forward.scale;
                }
            } else {
                for (out, &value) in out.iter_mut().zip(values) {
                    *out = value * forward.scale;
                }
            }
            if let Some((epilogue, group_offset)) = forward.epilogue {
                epilogue(group_offset + start, out);
            }
        }
    }

    pub(super) fn forward_group<T: Real>(
        group: &Group,
        factors: &CpuFactors,
        x: &Tensor,
        out: &Tensor,
        scratch: &mut Vec<T>,
        epilogue: Option<(&Epilogue<'_, T>, usize)>,
    ) {
        let block_len = group.block_len();
        // SAFETY: `x` is contiguous (made so by the caller) and of kind T; `out` is a contiguous
        // range of `out_len` elements of kind T (checked by the caller) that nothing else reads
        // or writes during this call.
        let (x, out_values) = unsafe { (&as_slice::<T>(x)[..group.in_len], as_mut_slice::<T>(out)) };
        let out = SharedOut(out_values.as_mut_ptr());
        let z = scratch_of(scratch, block_len);
        for (chunk, input) in x.chunks(block_len).enumerate() {
            let block = chunk * block_len..(chunk + 1) * block_len;
            let small = first_transform(input, &factors.signs[chunk * block_len..]);
            let last = chunk + 1 == group.n_chunks;
            // Every element of `out` is written by the first chunk, so no zeroing.
            let forward = Forward {
                small: &small,
                mask: small.len() - 1,
                gauss: &factors.gauss[block.clone()],
                scale: T::from_f64(factors.scale[chunk]),
                out,
                out_len: group.out_len,
                accumulate: chunk > 0,
                epilogue: if last { epilogue } else { None },
            };
            match &factors.perm {
                Perm::Low16(perm) => {
                    fwht_fused(z, &WithPerm(&forward, &perm[block]), N_FORWARD_PARTS, Order::LoadContiguous)
                }
                Perm::Full(perm) => {
                    fwht_fused(z, &WithPerm(&forward, &perm[block]), N_FORWARD_PARTS, Order::LoadContiguous)
                }
            };
        }
    }

    /// The group's output-space vector, one weighted piece per member tensor, zero past them.
    struct Pieces<'a, T> {
        /// `(offset in the group's output, values, weight)`, in output order.
        pieces: Vec<(usize, &'a [T], Option<T>)>,
        out_len: usize,
    }

    impl<T: Real> Pieces<'_, T> {
        #[inline(always)]
        fn load(&self, start: usize, leaf: &mut [T]) {
            let end = start + leaf.len();
            let first = self.pieces.partition_point(|(offset, values, _)| offset + values.len() <= start);
            for &(offset, values, weight) in &self.pieces[first..] {
                if offset >= end {
                    break;
                }
                let (from, to) = (start.max(offset), end.min(offset + values.len()));
                let (target, source) = (&mut leaf[from - start..to - start], &values[from - offset..to - offset]);
                match weight {
                    Some(weight) => {
                        for (target, &value) in target.iter_mut().zip(source) {
                            *target = value * weight;
                        }
                    }
                    None => target.copy_from_slice(source),
                }
            }
            if end > self.out_len {
                leaf[self.out_len.max(start) - start..].fill(T::ZERO);
            }
        }
    }

    /// The transpose with one chunk: leaves filled from the pieces, the fold
    /// `a[pi(i) mod s] += G_i z_i` taken from the last pass into one partial sum per part.
    struct Transpose<'a, T, P> {
        pieces: &'a Pieces<'a, T>,
        small_len: usize,
        perm: &'a [P],
        gauss: &'a [f32],
    }

    impl<T: Real, P: PermIndex> Ends<T> for Transpose<'_, T, P> {
        type Acc = Vec<T>;
        fn new_acc(&self) -> Vec<T> {
            vec![T::ZERO; self.small_len]
        }
        #[inline(always)]
        fn load(&self, start: usize, leaf: &mut [T]) {
            self.pieces.load(start, leaf);
        }
        #[inline(always)]
        fn store(&self, partial: &mut Vec<T>, start: usize, values: &[T]) {
            let end = start + values.len();
            scatter_add(partial, values, &self.perm[start..end], &self.gauss[start..end]);
        }
    }

    /// `partial[pi(i) mod s] += G_i z_i` over a run (`partial` holds `s`, a power of two, values).
    #[inline(always)]
    fn scatter_add<T: Real, P: PermIndex>(partial: &mut [T], z: &[T], perm: &[P], gauss: &[f32]) {
        let mask = partial.len() - 1;
        for ((&value, &target), &gauss) in z.iter().zip(perm).zip(gauss) {
            // SAFETY: `target & mask <= mask < partial.len()`.
            let slot = unsafe { partial.get_unchecked_mut(target.index() & mask) };
            *slot = *slot + T::from_f32(gauss) * value;
        }
    }

    /// The shared transform of several chunks: filled from the pieces, the result left in the
    /// working buffer ([`Order::StoreContiguous`] leaves it there).
    struct TransformOnly<'a, T>(&'a Pieces<'a, T>);

    impl<T: Real> Ends<T> for TransformOnly<'_, T> {
        type Acc = ();
        fn new_acc(&self) {}
        #[inline(always)]
        fn load(&self, start: usize, leaf: &mut [T]) {
            self.0.load(start, leaf);
        }
        fn store(&self, _: &mut (), _: usize, _: &[T]) {}
    }

    /// `sum_{pi(i) mod s = k} G_i z_i` over a transformed block, in `N_PARTIALS` fixed pieces.
    fn fold<T: Real, P: PermIndex>(z: &[T], perm: &[P], gauss: &[f32], small_len: usize) -> Vec<Vec<T>> {
        let partial_len = z.len().div_ceil(N_PARTIALS);
        z.par_chunks(partial_len)
            .zip(perm.par_chunks(partial_len))
            .zip(gauss.par_chunks(partial_len))
            .map(|((z, perm), gauss)| {
                let mut partial = vec![T::ZERO; small_len];
                scatter_add(&mut partial, z, perm, gauss);
                partial
            })
            .collect()
    }

    pub(super) fn transpose_group<T: Real>(
        group: &Group,
        factors: &CpuFactors,
        pieces: &[(Tensor, Option<f64>)],
        scratch: &mut Vec<T>,
    ) -> Tensor {
        let block_len = group.block_len();
        let z = scratch_of(scratch, block_len);
        let contiguous: Vec<Tensor> = pieces.iter().map(|(piece, _)| piece.contiguous()).collect();
        let mut offset = 0;
        let loaded = Pieces {
            pieces: contiguous
                .iter()
                .zip(pieces)
                .map(|(piece, (_, weight))| {
                    // SAFETY: contiguous CPU tensor of kind T (checked by the caller), alive
                    // until the end of this function.
                    let values = unsafe { as_slice::<T>(piece) };
                    offset += values.len();
                    (offset - values.len(), values, weight.map(T::from_f64))
                })
                .collect(),
            out_len: group.out_len,
        };

        // Every element is written by its chunk, so no zeroing.
        let result = Tensor::empty([group.in_len as i64], (pieces[0].0.kind(), Device::Cpu));
        // SAFETY: fresh tensor of kind T.
        let result_values = unsafe { as_mut_slice::<T>(&result) };
        let small_len_of = |chunk: usize| (group.in_len - chunk * block_len).min(block_len).next_power_of_two();
        let partials_of_chunk: Vec<Vec<Vec<T>>> = if group.n_chunks == 1 {
            let (small_len, gauss) = (small_len_of(0), &factors.gauss[..]);
            vec![match &factors.perm {
                Perm::Low16(perm) => fwht_fused(
                    z,
                    &Transpose { pieces: &loaded, small_len, perm, gauss },
                    N_PARTIALS,
                    Order::StoreContiguous,
                ),
                Perm::Full(perm) => fwht_fused(
                    z,
                    &Transpose { pieces: &loaded, small_len, perm, gauss },
                    N_PARTIALS,
                    Order::StoreContiguous,
                ),
            }]
        } else {
            fwht_fused(z, &TransformOnly(&loaded), N_FORWARD_PARTS, Order::StoreContiguous);
            let z = &*z;
            (0..group.n_chunks)
                .map(|chunk| {
                    let block = chunk * block_len..(chunk + 1) * block_len;
                    let gauss = &factors.gauss[block.clone()];
                    match &factors.perm {
                        Perm::Low16(perm) => fold(z, &perm[block], gauss, small_len_of(chunk)),
                        Perm::Full(perm) => fold(z, &perm[block], gauss, small_len_of(chunk)),
                    }
                })
                .collect()
        };
        for ((chunk, output), partials) in result_values.chunks_mut(block_len).enumerate().zip(partials_of_chunk) {
            let mut small = vec![T::ZERO; output.len().next_power_of_two()];
            for partial in partials {
                for (sum, value) in small.iter_mut().zip(partial) {
                    *sum = *sum + value;
                }
            }
            fwht_slice(&mut small).expect("power of two");
            let scale = T::from_f64(factors.scale[chunk]);
            for ((out, &value), &sign_value) in output.iter_mut().zip(&small).zip(&factors.signs[chunk * block_len..]) {
                *out = sign::<T>(sign_value) * value * scale;
            }
        }
        result
    }
}
