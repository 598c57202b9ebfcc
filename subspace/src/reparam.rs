//! The subspace reparameterisation of a model: DID and SAID over its named parameters.
//!
//! - DID: `theta_t = theta_0,t + P_t(theta_d)`.
//! - SAID: `theta_t = theta_0,t + lambda_g(t) P_t(theta_{d-m})`, with `m` scales `lambda` (one per
//!   group `g`, initialised to 1) and `theta` initialised to 0, so the model starts at `theta_0`.
//!   Groups: [`LambdaGrouping::PerTensor`] (the authors' code: one scale per tensor) or
//!   [`LambdaGrouping::PerLayer`] (embeddings, each transformer layer, everything else as the task
//!   head: `m = n_layers + 2`).
//!
//! # Gradients, with no autograd through `P`
//! After an ordinary backward has left `g_t = dLoss/dtheta_t` on every parameter tensor:
//!
//! ```text
//! grad theta    = sum_t lambda_g(t) P_t^T g_t
//! grad lambda_g = sum_{t in g} <g_t, P_t theta>
//! ```
//!
//! Weights are written as `theta_0 + lambda P(theta)` once per optimiser step, outside autograd.
//! SAID keeps the `P_t theta` of that write for the next step's `grad lambda` (the same `theta`),
//! so `P` runs once per step, not twice: one more copy of the parameters' size, exact.
//!
//! # Memory
//! We keep a flat copy of `theta_0` (4 bytes per parameter at f32; 0.5 GB for RoBERTa-base). It
//! could be recovered instead by applying the change `lambda' P(theta') - lambda P(theta)` to the
//! weights in place, but then the weights drift from `theta_0 + P(theta)` by rounding at every
//! step, and a run restarted from a checkpoint of `theta` and `lambda` alone (a few kilobytes) would
//! no longer reproduce an uninterrupted run bit for bit. Exactness and tiny checkpoints are worth
//! one copy of the weights; full fine-tuning holds three (Adam's two moments and the gradient).
//!
//! # The `aghajanyan` compatibility mode
//! Reproduces the behaviour of the authors' code (as redistributed in rabeehk/compacter,
//! `seq2seq/projections/intrinsic.py`), defects included, so that its numbers can be compared with
//! ours. It is *not* a correct implementation of the method:
//! - per-tensor scope; SAID has one scale per tensor plus one that no tensor uses, so `theta` has
//!   `d - m - 1` coordinates;
//! - a tensor whose block length `L_t` is shorter than `theta` sees only `theta[..L_t]` (cropping);
//! - its Hadamard backward divides by `sqrt(L_t)` while its forward does not, twice, so the gradient
//!   of `theta` through tensor `t` is `1 / L_t` of the true one (the gradient of `lambda` is right).

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;

use tch::{Kind, Tensor};

use crate::fastfood::{self, CpuReal, Crop, Engine, FactorStorage, FastfoodError, Projector, ProjectorSpec, Scope};
use crate::fwht::Real;

/// The vocabulary and the run-record description are part of the results schema (the `results`
/// crate); inside this crate the subspace method is `Method`.
pub use results::{Compat, LambdaGrouping, SubspaceDescription, SubspaceMethod as Method};

/// Where a parameter tensor sits in its network, for SAID's per-layer scales: the model says it
/// (each family knows its own names: BERT's `layer.N`, T5's `block.N`, BART's encoder and decoder
/// layers numbered one after the other), the engine never guesses from a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LayerGroup {
    /// Token, position and type embeddings and their normalisation.
    Embeddings,
    /// Transformer layer `i` (0-based, over the whole network).
    Layer(usize),
    /// Everything else: pooler, task or language-model head.
    Head,
}

/// What a subspace run asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubspaceConfig {
    /// DID or SAID.
    pub method: Method,
    /// The intrinsic dimension: every trainable coordinate, `theta`'s `d - m` plus SAID's `m`
    /// scales (`m = 0` for DID). At most the number of parameters `D`; above `m` for SAID.
    pub d: usize,
    /// The Fastfood map's block groups: one over all tensors, or one per tensor.
    pub scope: Scope,
    /// Ignored for DID.
    pub grouping: LambdaGrouping,
    /// The exact method, or the authors' code with its defects (needs the per-tensor scope and,
    /// for SAID, the per-tensor grouping).
    pub compat: Compat,
    /// The seed every Fastfood factor is drawn from.
    pub seed: u64,
    /// Keep the Fastfood factors between calls, or regenerate them at every call.
    pub factor_storage: FactorStorage,
}

/// Why a [`Subspace`] cannot be built, or cannot write weights or compute gradients.
#[derive(Debug, thiserror::Error)]
pub enum SubspaceError {
    /// SAID with `d <= m`: no coordinate left for `theta`.
    #[error("SAID needs d > m: d = {d}, but the {grouping:?} grouping has m = {m} scales{extra}")]
    DimensionTooSmall {
        /// The dimension asked for.
        d: usize,
        /// The number of scales (with the unused one of the compatibility mode).
        m: usize,
        /// The grouping the scales come from.
        grouping: LambdaGrouping,
        /// Appended to the message: the compatibility mode's extra scale explained, or empty.
        extra: &'static str,
    },
    /// The `aghajanyan` compatibility mode with a scope other than [`Scope::PerTensor`].
    #[error(
        "the aghajanyan compatibility mode is per-tensor only (its code has no global scope): use scope per_tensor"
    )]
    CompatNeedsPerTensor,
    /// SAID in the `aghajanyan` compatibility mode with a grouping other than
    /// [`LambdaGrouping::PerTensor`].
    #[error("the aghajanyan compatibility mode has one scale per tensor: use grouping per_tensor")]
    CompatNeedsPerTensorGrouping,
    /// `d` above the number of parameters `D`.
    #[error("d = {d} exceeds the {total} parameters it would reparameterise")]
    DimensionTooLarge {
        /// The dimension asked for.
        d: usize,
        /// The number of parameters `D`: the elements of all tensors.
        total: usize,
    },
    /// A parameter whose dtype differs from the first parameter's.
    #[error("parameter `{name}` is {kind:?}; the subspace needs all parameters in one float kind ({expected:?})")]
    MixedKinds {
        /// The parameter's name.
        name: String,
        /// Its dtype.
        kind: Kind,
        /// The first parameter's dtype.
        expected: Kind,
    },
    /// No parameter has a gradient: no backward pass has run.
    #[error("parameter `{name}` has no gradient: run a backward pass before asking for subspace gradients")]
    MissingGradient {
        /// The first parameter's name.
        name: String,
    },
    /// [`Subspace::new`] given a number of layer groups other than its number of parameters.
    #[error("{groups} layer groups given for {params} parameter tensors: one per tensor, in the same order")]
    LayerGroups {
        /// The number of layer groups given.
        groups: usize,
        /// The number of parameter tensors given.
        params: usize,
    },
    /// An error of the Fastfood projector (among them [`FastfoodError::NoTensors`] for an empty
    /// parameter list).
    #[error(transparent)]
    Fastfood(#[from] FastfoodError),
}

/// The reparameterisation of a set of named parameter tensors.
pub struct Subspace {
    config: SubspaceConfig,
    names: Vec<String>,
    /// The model's own tensors (shallow clones: writes reach the model).
    params: Vec<Tensor>,
    theta0: Vec<Tensor>,
    projector: Rc<Projector>,
    /// `lambda` group of each tensor (SAID only).
    group_of: Vec<usize>,
    n_lambda: usize,
    theta: Tensor,
    lambda: Tensor,
    /// `P theta` of the last weight write (`D` elements, one range per tensor), kept between
    /// steps: a fresh buffer per step costs a page fault per 4 KiB on the CPU.
    /// CPU engine only (`None` on devices, whose caching allocators reuse memory anyway).
    projected_buffer: Option<Tensor>,
    /// SAID: views of `projected_buffer` per tensor, for `grad lambda`; `None` until the first
    /// write.
    projected: Option<Vec<Tensor>>,
}

impl Subspace {
    /// Takes the model's named parameters (in a fixed order, e.g. `VarStore::variables` sorted by
    /// name) with the layer group of each (`layers[i]` for `named_params[i]`; what SAID's
    /// per-layer scales group by); `theta` starts at 0 and `lambda` at 1, so the weights are
    /// unchanged.
    ///
    /// # Errors
    /// A setting the method cannot take (see [`SubspaceError`]), `layers` of another length than
    /// `named_params`, parameters of mixed kinds, or a `d` the parameters cannot hold.
    pub fn new(
        named_params: &[(String, Tensor)],
        layers: &[LayerGroup],
        config: SubspaceConfig,
    ) -> Result<Subspace, SubspaceError> {
        if layers.len() != named_params.len() {
            return Err(SubspaceError::LayerGroups { groups: layers.len(), params: named_params.len() });
        }
        let compat = config.compat == Compat::Aghajanyan;
        if compat && config.scope != Scope::PerTensor {
            return Err(SubspaceError::CompatNeedsPerTensor);
        }
        if compat && config.method == Method::Said && config.grouping != LambdaGrouping::PerTensor {
            return Err(SubspaceError::CompatNeedsPerTensorGrouping);
        }
        let Some((_, first)) = named_params.first() else { return Err(FastfoodError::NoTensors.into()) };
        let (kind, device) = (first.kind(), first.device());
        if let Some((name, param)) = named_params.iter().find(|(_, param)| param.kind() != kind) {
            return Err(SubspaceError::MixedKinds { name: name.clone(), kind: param.kind(), expected: kind });
        }
        let names: Vec<String> = named_params.iter().map(|(name, _)| name.clone()).collect();
        let numels: Vec<usize> = named_params.iter().map(|(_, param)| param.numel()).collect();
        let total: usize = numels.iter().sum();
        if config.d > total {
            return Err(SubspaceError::DimensionTooLarge { d: config.d, total });
        }

        let (group_of, n_lambda) = scale_groups(layers, config.method, config.grouping, config.compat);
        check_dimension(config.d, n_lambda, config.method, config.grouping, config.compat)?;
        let theta_len = config.d - n_lambda;
        let shapes: Vec<(String, usize)> = names.iter().cloned().zip(numels).collect();
        let projector = shared_projector(ProjectorKey {
            engine: fastfood::default_engine(device),
            shapes,
            spec: ProjectorSpec {
                d: theta_len,
                scope: config.scope,
                seed: config.seed,
                crop: if compat { Crop::ToBlock } else { Crop::None },
                storage: config.factor_storage,
                device,
            },
        })?;
        let theta0 = named_params.iter().map(|(_, param)| param.detach().reshape([-1]).copy()).collect();
        // The CPU engine writes the weights through their memory, from several threads: contiguous
        // tensors that share no memory only (a model's own parameters are; tied or strided ones
        // take the tensor-operation path).
        let contiguous = named_params.iter().all(|(_, param)| param.is_contiguous()) && !shares_memory(named_params);
        let projected_buffer =
            (projector.engine() == Engine::Cpu && contiguous).then(|| Tensor::empty([total as i64], (kind, device)));
        Ok(Subspace {
            projected_buffer,
            params: named_params.iter().map(|(_, param)| param.shallow_clone()).collect(),
            names,
            theta0,
            projector,
            group_of,
            n_lambda,
            theta: Tensor::zeros([theta_len as i64], (kind, device)),
            lambda: Tensor::ones([n_lambda as i64], (kind, device)),
            projected: None,
            config,
        })
    }

    /// The Fastfood map `P: R^(d - m) -> R^D` (possibly shared with earlier subspaces of the same
    /// key on this thread).
    pub fn projector(&self) -> &Projector {
        &self.projector
    }

    /// The subspace coordinates `theta`: 1-D, `d - m` elements (`d` for DID), in the parameters'
    /// dtype and on their device.
    pub fn theta(&self) -> &Tensor {
        &self.theta
    }

    /// The scales (empty for DID).
    pub fn lambda(&self) -> &Tensor {
        &self.lambda
    }

    /// The subspace's record for run results: method, grouping (SAID only), compatibility mode,
    /// `m`, the length of `theta` and the projector's summary.
    pub fn description(&self) -> SubspaceDescription {
        SubspaceDescription {
            method: self.config.method,
            grouping: (self.config.method == Method::Said).then_some(self.config.grouping),
            compat: self.config.compat,
            n_lambda: self.n_lambda,
            theta_len: self.theta.numel(),
            projector: self.projector.summary(),
        }
    }

    /// Sets `theta` and `lambda` (copied) and writes the weights.
    pub fn set(&mut self, theta: &Tensor, lambda: &Tensor) -> Result<(), SubspaceError> {
        let _guard = tch::no_grad_guard();
        self.theta.copy_(theta);
        self.lambda.copy_(lambda);
        self.write_weights()
    }

    /// Writes `theta_0 + lambda P(theta)` into the model's tensors, outside autograd: on the CPU
    /// as the projection writes each run of `P theta` (one pass over `theta_0` and the weights,
    /// while the run is in cache), elsewhere with one fused pass per tensor and no temporaries.
    pub fn write_weights(&mut self) -> Result<(), SubspaceError> {
        let _guard = tch::no_grad_guard();
        let projected = match &self.projected_buffer {
            Some(buffer) if self.theta.kind() == Kind::Float => self.write_weights_cpu::<f32>(buffer)?,
            Some(buffer) if self.theta.kind() == Kind::Double => self.write_weights_cpu::<f64>(buffer)?,
            _ => {
                let projected = self.projector.forward(&self.theta)?;
                for (tensor_idx, (param, offset)) in self.params.iter().zip(&projected).enumerate() {
                    let target = param.view([-1]);
                    let _ = match self.config.method {
                        Method::Did => self.theta0[tensor_idx].add_out(&target, offset),
                        Method::Said => self.theta0[tensor_idx].addcmul_out(
                            &target,
                            offset,
                            &self.lambda.get(self.group_of[tensor_idx] as i64),
                        ),
                    };
                }
                projected
            }
        };
        self.projected = (self.config.method == Method::Said).then_some(projected);
        Ok(())
    }

    /// [`Subspace::write_weights`] with the CPU engine: `P theta` goes to `buffer`, and each run of
    /// it, as it is written, becomes `theta_0 + lambda P theta` in the weights it belongs to.
    fn write_weights_cpu<T: CpuReal>(&self, buffer: &Tensor) -> Result<Vec<Tensor>, SubspaceError> {
        let lambda: Vec<f64> = match self.config.method {
            Method::Did => Vec::new(),
            Method::Said => {
                Vec::<f64>::try_from(&self.lambda.to_kind(Kind::Double)).expect("a 1-D CPU tensor converts")
            }
        };
        let mut offset = 0;
        let targets: Vec<WeightTarget<T>> = self
            .params
            .iter()
            .zip(&self.theta0)
            .enumerate()
            .map(|(tensor_idx, (param, theta0))| {
                let len = param.numel();
                offset += len;
                WeightTarget {
                    start: offset - len,
                    len,
                    weights: param.data_ptr() as *mut T,
                    theta0: theta0.data_ptr() as *const T,
                    scale: (self.config.method == Method::Said).then(|| T::from_f64(lambda[self.group_of[tensor_idx]])),
                }
            })
            .collect();
        let targets = WeightTargets(targets);
        let epilogue = |start: usize, values: &[T]| targets.write(start, values);
        Ok(self.projector.forward_into_with(&self.theta, buffer, &epilogue)?)
    }

    /// `(grad theta, grad lambda)` from the gradients that a backward pass left on the model's
    /// tensors. `grad lambda` is empty for DID. A tensor without a gradient, where others have
    /// one, is one the loss does not reach (XLNet's query-stream `mask_emb` in classification):
    /// its derivative is exactly zero, and it is read as such.
    ///
    /// # Errors
    /// `MissingGradient` when no tensor has a gradient (no backward pass has run), naming the first.
    pub fn gradients(&self) -> Result<(Tensor, Tensor), SubspaceError> {
        let _guard = tch::no_grad_guard();
        if self.params.iter().all(|param| !param.grad().defined()) {
            let name = self.names.first().cloned().unwrap_or_default();
            return Err(SubspaceError::MissingGradient { name });
        }
        let mut grads = Vec::with_capacity(self.params.len());
        for param in &self.params {
            let grad = param.grad();
            grads.push(if grad.defined() { grad.reshape([-1]) } else { param.zeros_like().reshape([-1]) });
        }
        // The weight of each tensor's gradient in `grad theta`: its scale (SAID) and, in the
        // compatibility mode, the authors' Hadamard backward (1 / sqrt(L_t), twice; L_t is a
        // power of two, so the product is exact).
        let compat = self.config.compat == Compat::Aghajanyan;
        let defect = |tensor_idx: usize| 1.0 / self.projector.block_len_of_tensor(tensor_idx) as f64;
        let grad_theta = if self.projector.engine() == Engine::Cpu {
            // On the CPU the weights are applied as the projection reads the gradients (no scaled
            // copies); reading the scales to the host is free there.
            let lambda: Vec<f64> = match self.config.method {
                Method::Did => Vec::new(),
                Method::Said => {
                    Vec::<f64>::try_from(&self.lambda.to_kind(Kind::Double)).expect("a 1-D CPU tensor converts")
                }
            };
            let weights: Option<Vec<f64>> = (self.config.method == Method::Said || compat).then(|| {
                (0..grads.len())
                    .map(|tensor_idx| {
                        let scale =
                            if self.config.method == Method::Said { lambda[self.group_of[tensor_idx]] } else { 1.0 };
                        scale * if compat { defect(tensor_idx) } else { 1.0 }
                    })
                    .collect()
            });
            self.projector.transpose_weighted(&grads, weights.as_deref())?
        } else {
            // On a device the scales stay there (no host synchronisation per step).
            let scaled: Vec<Tensor> = grads
                .iter()
                .enumerate()
                .map(|(tensor_idx, grad)| {
                    let mut weight = match self.config.method {
                        Method::Did => None,
                        Method::Said => Some(self.lambda.get(self.group_of[tensor_idx] as i64)),
                    };
                    if compat {
                        let defect = defect(tensor_idx);
                        weight = Some(weight.map_or_else(|| Tensor::from(defect).to_kind(grad.kind()), |w| w * defect));
                    }
                    match weight {
                        Some(weight) => grad * weight.to_device(grad.device()),
                        None => grad.shallow_clone(),
                    }
                })
                .collect();
            self.projector.transpose(&scaled)?
        };

        let grad_lambda = Tensor::zeros([self.n_lambda as i64], (self.theta.kind(), self.theta.device()));
        if self.config.method == Method::Said {
            // The weights were written from this `theta`: its projection is at hand after the
            // first write (before it, `theta` is zero and its projection costs one pass).
            let computed;
            let projected = match &self.projected {
                Some(projected) => projected,
                None => {
                    computed = self.projector.forward(&self.theta)?;
                    &computed
                }
            };
            for (tensor_idx, (grad, offset)) in grads.iter().zip(projected).enumerate() {
                let mut slot = grad_lambda.narrow(0, self.group_of[tensor_idx] as i64, 1);
                slot += grad.dot(offset).reshape([1]);
            }
        }
        Ok((grad_theta, grad_lambda))
    }
}

/// Whether any two of the tensors overlap in memory (tied weights).
fn shares_memory(named_params: &[(String, Tensor)]) -> bool {
    let mut ranges: Vec<(usize, usize)> = named_params
        .iter()
        .map(|(_, param)| {
            let start = param.data_ptr() as usize;
            (start, start + param.numel() * param.kind().elt_size_in_bytes())
        })
        .collect();
    ranges.sort_unstable();
    ranges.windows(2).any(|pair| pair[1].0 < pair[0].1)
}

/// Where one tensor's run of `P theta` goes: `weights[i] = theta_0[i] + scale * P(theta)[start + i]`
/// (`scale` 1 for DID).
struct WeightTarget<T> {
    start: usize,
    len: usize,
    weights: *mut T,
    theta0: *const T,
    scale: Option<T>,
}

/// The weight targets of all tensors, in output order.
struct WeightTargets<T>(Vec<WeightTarget<T>>);

// SAFETY: the pointers are to the model's contiguous weight tensors and to `theta_0`, which live
// as long as the `Subspace` that builds these targets for one call; the projection's runs are
// disjoint, so threads write disjoint weights, and nothing else touches them during the call.
unsafe impl<T: Send> Sync for WeightTargets<T> {}

impl<T: Real> WeightTargets<T> {
    /// Writes the weights of outputs `start..start + values.len()`.
    fn write(&self, start: usize, values: &[T]) {
        crate::fwht::simd(
            #[inline(always)]
            || self.write_runs(start, values),
        )
    }

    #[inline(always)]
    fn write_runs(&self, start: usize, values: &[T]) {
        let end = start + values.len();
        let first = self.0.partition_point(|target| target.start + target.len <= start);
        for target in &self.0[first..] {
            if target.start >= end {
                break;
            }
            let (from, to) = (start.max(target.start), end.min(target.start + target.len));
            let values = &values[from - start..to - start];
            // SAFETY: see `WeightTargets`; `from - target.start .. to - target.start` lies inside
            // the tensor's `len` elements.
            let (weights, theta0) = unsafe {
                (
                    std::slice::from_raw_parts_mut(target.weights.add(from - target.start), to - from),
                    std::slice::from_raw_parts(target.theta0.add(from - target.start), to - from),
                )
            };
            match target.scale {
                Some(scale) => {
                    for ((weight, &theta0), &value) in weights.iter_mut().zip(theta0).zip(values) {
                        *weight = theta0 + scale * value;
                    }
                }
                None => {
                    for ((weight, &theta0), &value) in weights.iter_mut().zip(theta0).zip(values) {
                        *weight = theta0 + value;
                    }
                }
            }
        }
    }
}

/// Everything a [`Projector`] is a function of: its spec, the tensors' shapes, and the engine
/// `Projector::new` picks for the device (it reads an environment variable that benchmarks
/// change between runs).
#[derive(Debug, Clone, PartialEq)]
struct ProjectorKey {
    engine: Engine,
    shapes: Vec<(String, usize)>,
    spec: ProjectorSpec,
}

thread_local! {
    /// The projector of the last subspace built on this thread, kept for the next one (per
    /// thread: a projector holds tensors, which are not `Sync`).
    static LAST_PROJECTOR: RefCell<Option<(ProjectorKey, Rc<Projector>)>> = const { RefCell::new(None) };
}

/// The projector for `key`: the last one built if it has the same key, else a new one (which
/// then replaces it). A d90 probe trains every learning rate of a seed one after another with the
/// same `(d, seed)`, and generating the factors of a `2^25` block costs about 2 s of a 30 s run;
/// a projector is a pure function of its key and is never mutated after construction, so sharing
/// one changes no number. The previous projector is released before a new one is built, so at
/// most one set of factors (and the CPU engine's scratch block) is held beyond the subspaces
/// alive: about 420 MB of host memory for a `2^25` block, or the factors on the GPU, until the
/// next subspace with another key, [`release_shared_projector`], or the thread's end.
fn shared_projector(key: ProjectorKey) -> Result<Rc<Projector>, FastfoodError> {
    LAST_PROJECTOR.with_borrow_mut(|last| {
        if let Some((last_key, projector)) = last.as_ref()
            && *last_key == key
        {
            return Ok(Rc::clone(projector));
        }
        *last = None;
        // The key's engine, whatever the environment says by now.
        let projector = Projector::new(&key.shapes, key.spec)?.with_engine(key.engine);
        let projector = Rc::new(projector);
        *last = Some((key, Rc::clone(&projector)));
        Ok(projector)
    })
}

/// Drops the projector kept for the next subspace of this thread (the trainer calls it before a
/// full fine-tuning run, which needs none).
pub fn release_shared_projector() {
    LAST_PROJECTOR.with_borrow_mut(|last| *last = None);
}

/// The scale group of each tensor (given its layer group) and the number of scales `m` (0 for
/// DID): the layout [`Subspace::new`] uses, available without tensors (experiment specs are
/// checked with it before any model is loaded).
pub fn scale_groups(
    layers: &[LayerGroup],
    method: Method,
    grouping: LambdaGrouping,
    compat: Compat,
) -> (Vec<usize>, usize) {
    match (method, grouping) {
        (Method::Did, _) => (vec![0; layers.len()], 0),
        (Method::Said, LambdaGrouping::PerTensor) => {
            ((0..layers.len()).collect(), layers.len() + usize::from(compat == Compat::Aghajanyan))
        }
        (Method::Said, LambdaGrouping::PerLayer) => layer_groups(layers),
    }
}

/// SAID needs `d > m`: `theta` keeps `d - m` coordinates.
pub fn check_dimension(
    d: usize,
    m: usize,
    method: Method,
    grouping: LambdaGrouping,
    compat: Compat,
) -> Result<(), SubspaceError> {
    if method == Method::Said && d <= m {
        return Err(SubspaceError::DimensionTooSmall {
            d,
            m,
            grouping,
            extra: if compat == Compat::Aghajanyan {
                " (one per tensor plus the unused one of the authors' code)"
            } else {
                ""
            },
        });
    }
    Ok(())
}

/// Groups for [`LambdaGrouping::PerLayer`]: 0 for the embeddings, `1 + i` for layer `i`,
/// `n_layers + 1` for the head (pooler included), where `n_layers` is one more than the largest
/// layer index. `m = n_layers + 2`.
fn layer_groups(layers: &[LayerGroup]) -> (Vec<usize>, usize) {
    let n_layers = layers
        .iter()
        .filter_map(|layer| match layer {
            LayerGroup::Layer(index) => Some(index + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let groups = layers
        .iter()
        .map(|layer| match layer {
            LayerGroup::Embeddings => 0,
            LayerGroup::Layer(index) => 1 + index,
            LayerGroup::Head => n_layers + 1,
        })
        .collect();
    (groups, n_layers + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_layer_groups_number_embeddings_layers_and_head() {
        use LayerGroup::{Embeddings, Head, Layer};
        let (groups, m) = layer_groups(&[Embeddings, Layer(0), Layer(11), Layer(3), Head, Head, Embeddings]);
        assert_eq!(groups, vec![0, 1, 12, 4, 13, 13, 0]);
        assert_eq!(m, 14);
        // No layers at all: embeddings and head, two scales.
        assert_eq!(layer_groups(&[Head, Embeddings]), (vec![1, 0], 2));
    }
}
