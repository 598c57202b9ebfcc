//! What a run is asked to do: the vocabulary of methods, maps and precisions, and the training
//! settings ([`TrainConfig`]) whose hash, with the model and data, is the run's key.
//!
//! The enums are spelt in result files, specs and signatures by their serde names (`said`,
//! `per_layer`, `aghajanyan`, `bf16`), which [`fmt::Display`] prints too. With the `clap`
//! feature they are also command-line value enums under the same names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Epochs of the paper's fine-tuning setup (every command line and spec default comes from here).
pub const DEFAULT_EPOCHS: usize = 3;
/// Examples per batch of the paper's fine-tuning setup.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Tokens per example after truncation (fine-tuning's and pre-training's default, as GLUE
/// fine-tuning scripts use).
pub const DEFAULT_MAX_LEN: usize = 128;

/// Prints a unit enum by its serde name.
macro_rules! serde_display {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&crate::serde_name(self))
            }
        }
    )*};
}

/// What a run trains: every weight, the task head alone (a control), or a subspace of dimension
/// `d` (the paper's section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum Mode {
    /// Full fine-tuning (the baseline d90 is measured against).
    Full,
    /// Direct intrinsic dimension: `theta_D = theta_0 + P(theta_d)`.
    Did,
    /// Structure-aware intrinsic dimension: `theta_i = theta_0,i + lambda_i P(theta_{d-m})_i`.
    Said,
    /// The control of a d90: only the task head trains (the model's `LayerGroup::Head` tensors:
    /// BERT's pooler and classifier, RoBERTa's classification head, ...), the encoder stays at
    /// `theta_0`. What the pre-trained features give without moving them.
    HeadOnly,
}

/// A subspace method (the modes that have a `d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubspaceMethod {
    /// `theta_D = theta_0 + P(theta_d)`.
    Did,
    /// `theta_i = theta_0,i + lambda_i P(theta_{d-m})_i`, with m scales `lambda`.
    Said,
}

impl Mode {
    /// The subspace method of a DID or SAID run; `None` for full and head-only fine-tuning, which
    /// have no `d`.
    pub fn subspace_method(self) -> Option<SubspaceMethod> {
        match self {
            Mode::Full | Mode::HeadOnly => None,
            Mode::Did => Some(SubspaceMethod::Did),
            Mode::Said => Some(SubspaceMethod::Said),
        }
    }
}

/// How the Fastfood map's output space is cut into block groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum Scope {
    /// One group over the concatenation of all tensors (Li et al.).
    Global,
    /// One group per tensor, each padded to its own power of two (the authors' code).
    PerTensor,
}

/// SAID's scales `lambda`: one per parameter tensor, or one per layer group that the model names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum LambdaGrouping {
    /// One scale per parameter tensor (the authors' code; `aghajanyan` adds one no tensor uses).
    PerTensor,
    /// One scale per layer group: the embeddings, each transformer layer, and everything else as
    /// the task head (`m = n_layers + 2`).
    PerLayer,
}

/// The exact method, or the authors' code with its defects (see `subspace::reparam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum Compat {
    /// The exact method.
    None,
    /// The authors' code, defects included (cropping, an unused scale, a 1/L_t gradient).
    Aghajanyan,
}

impl Compat {
    /// The map scope of a method that names none: per tensor in the authors' mode (the only
    /// scope it accepts), else Li et al.'s global map.
    pub fn default_scope(self) -> Scope {
        match self {
            Compat::None => Scope::Global,
            Compat::Aghajanyan => Scope::PerTensor,
        }
    }

    /// SAID's scale grouping of a method that names none: one scale per tensor in the authors'
    /// mode (the only grouping it accepts), else one per layer group.
    pub fn default_grouping(self) -> LambdaGrouping {
        match self {
            Compat::None => LambdaGrouping::PerLayer,
            Compat::Aghajanyan => LambdaGrouping::PerTensor,
        }
    }
}

/// Numeric precision of the encoder's forward and backward (the autocast itself lives with tch,
/// in `trainer`'s `precision` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Precision {
    /// Everything in f32 (the default; bit-reproducible on CPU).
    #[default]
    #[cfg_attr(feature = "clap", value(alias = "fp32"))]
    F32,
    /// bf16 autocast for the encoder's forward/backward; weights and optimiser in f32.
    Bf16,
}

impl Precision {
    /// Whether this is f32, the default, which serde leaves out of configs and plans so that f32
    /// keys stay as they were before precisions existed.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

serde_display!(Mode, SubspaceMethod, Scope, LambdaGrouping, Compat, Precision);

/// Independent seeds, so that one can vary while the others stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seeds {
    /// The order of the training examples and batches of every epoch (not the training subset:
    /// that is `subset_seed`).
    pub data: u64,
    /// The initialisation of the fresh task head (of every weight for a synthetic model).
    pub head: u64,
    /// The dropout RNG, reseeded from this seed and the step before every step.
    pub dropout: u64,
    /// The Fastfood projection's random factors (DID and SAID; unused in full fine-tuning).
    pub projection: u64,
}

impl Seeds {
    /// Every seed set to `seed`, as a search's runs have them (a signature then shows one `seed:`).
    pub fn all(seed: u64) -> Seeds {
        Seeds { data: seed, head: seed, dropout: seed, projection: seed }
    }
}

/// Every training setting of one run (its model and data are in [`crate::RunSpec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Full fine-tuning, DID or SAID.
    pub mode: Mode,
    /// Subspace dimension (ignored for `full`).
    pub d: usize,
    /// The Fastfood map's scope (ignored for `full`).
    pub scope: Scope,
    /// SAID's grouping of the scales `lambda` (ignored unless the mode is `said`).
    pub grouping: LambdaGrouping,
    /// The exact method or the authors' code (ignored for `full`).
    pub compat: Compat,
    /// Peak learning rate (of every weight in `full`, of `theta` in DID and SAID), reached after
    /// the linear warmup and then decayed linearly to 0.
    pub lr: f64,
    /// Epochs over the training examples.
    pub epochs: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// The fraction of all steps over which the learning rate warms up linearly from 0.
    pub warmup_ratio: f64,
    /// AdamW's decoupled weight decay, not applied to biases, LayerNorm weights or the subspace's
    /// `theta` and `lambda`.
    pub weight_decay: f64,
    /// The gradient's global norm is clipped to this.
    pub max_grad_norm: f64,
    /// Evaluate every this many steps, and at the end of every epoch.
    pub eval_every: Option<usize>,
    /// Save a checkpoint every this many steps (needs a run folder).
    pub checkpoint_every: Option<usize>,
    /// A loss above this ends the run as diverged.
    pub divergence_loss: f64,
    /// Every evaluation also measures accuracy on the training examples (in dropout-free eval
    /// mode), for the generalization gap: the first this many, `None` for the whole training set
    /// (the default), `Some(0)` not at all.
    #[serde(default)]
    pub train_eval_examples: Option<usize>,
    /// Length-bucketed batches: each epoch's shuffled order is cut into chunks of this many
    /// batches, sorted by length within each chunk, and the batches are shuffled again, so a batch
    /// holds examples of similar length (less padding) and the order stays random. `None`: plain
    /// shuffled batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_buckets: Option<usize>,
    /// SAID: the learning rate of the scales `lambda` (`None`: `lr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_lr: Option<f64>,
    /// The seeds of data order, head initialisation, dropout and projection.
    pub seeds: Seeds,
    /// f32, or bf16 autocast for the encoder (weights, optimiser and projection stay f32). Left
    /// out of the serialised config when f32, so f32 runs keep the keys they always had.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// End the process's run after this many steps, its state saved when it has a run folder (for
    /// testing resumption). A test knob: not part of the run's key.
    pub max_steps_this_process: Option<usize>,
}

impl TrainConfig {
    /// Defaults of the paper's fine-tuning setup ([`crate::Training::PAPER`]), to be overridden
    /// per experiment.
    pub fn new(mode: Mode, d: usize, lr: f64) -> TrainConfig {
        let paper = crate::Training::PAPER;
        TrainConfig {
            mode,
            d,
            scope: Compat::None.default_scope(),
            grouping: Compat::None.default_grouping(),
            compat: Compat::None,
            lr,
            epochs: paper.epochs,
            batch_size: paper.batch_size,
            warmup_ratio: paper.warmup_ratio,
            weight_decay: paper.weight_decay,
            max_grad_norm: paper.max_grad_norm,
            eval_every: paper.eval_every,
            // A run saves its state only where a caller gives it a folder and an interval.
            checkpoint_every: None,
            divergence_loss: 1e4,
            train_eval_examples: paper.train_eval_examples,
            length_buckets: paper.length_buckets,
            lambda_lr: None,
            seeds: Seeds::all(0),
            precision: paper.precision,
            max_steps_this_process: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_names() {
        assert_eq!(serde_json::to_string(&Precision::Bf16).unwrap(), "\"bf16\"");
        assert_eq!(serde_json::from_str::<Precision>("\"f32\"").unwrap(), Precision::F32);
    }

    #[cfg(feature = "clap")]
    #[test]
    fn precision_flags_accept_fp32() {
        use clap::ValueEnum;
        assert_eq!(Precision::from_str("bf16", false), Ok(Precision::Bf16));
        assert_eq!(Precision::from_str("f32", false), Ok(Precision::F32));
        assert_eq!(Precision::from_str("fp32", false), Ok(Precision::F32));
        assert!(Precision::from_str("fp16", false).is_err());
    }
}
