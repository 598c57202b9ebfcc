//! MLM pre-training: its spec (the resolved settings that key it), the checkpoints it writes and
//! its record (the paper's section 5.2 trajectory starts from these).
//!
//! A pre-training is keyed by everything that changes its weights: the encoder's HF config, the
//! tokenizer's sha256, the corpus and its packed data's identity, the recipe's numbers, the seed,
//! the precision and the device. Its checkpoints are HF folders named by the sha256 of their
//! files, listed by update in the record.

use serde::{Deserialize, Serialize};

use crate::Precision;
use crate::run::Provenance;

/// The resolved settings of one MLM pre-training run (RoBERTa's recipe, Liu et al. 2019,
/// section 4.1 and appendix B, at any scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSpec {
    /// The encoder's HF `config.json` (a BERT or RoBERTa config), as written into every
    /// checkpoint.
    pub model: serde_json::Value,
    /// sha256 of the `tokenizer.json` every checkpoint carries.
    pub tokenizer_sha256: String,
    /// The corpus by name (`datasets::corpus`): `task-text`, `c4-en`, ...
    pub corpus: String,
    /// The packed corpus's key: a hash of the packing format, the corpus's identity (its pinned
    /// hashes or revision), the tokenizer's sha256, `max_len` and the held-out fraction.
    pub data: String,
    /// Tokens per sequence, `[CLS]`/`<s>` and the final separator included.
    pub max_len: usize,
    /// Sequences per update (RoBERTa-Base: 8,192).
    pub batch_size: usize,
    /// Sequences per forward pass; `batch_size / micro_batch_size` passes are accumulated into
    /// one update.
    pub micro_batch_size: usize,
    /// Optimiser updates in all.
    pub updates: usize,
    /// Peak learning rate (RoBERTa-Base: 6e-4).
    pub lr: f64,
    /// Updates of linear warmup to `lr`, then linear decay to 0 at `updates` (RoBERTa-Base:
    /// 24,000 of 500,000).
    pub warmup_updates: usize,
    /// AdamW's decoupled weight decay (0.01), not on biases and LayerNorm weights.
    pub weight_decay: f64,
    /// AdamW's beta2 (RoBERTa: 0.98).
    pub adam_beta2: f64,
    /// AdamW's eps (RoBERTa: 1e-6).
    pub adam_eps: f64,
    /// Global gradient-norm clip; 0 for none (RoBERTa's fairseq recipe: none).
    pub max_grad_norm: f64,
    /// The fraction of tokens selected for prediction (0.15), of which 80% are replaced by the
    /// mask token, 10% by a random token and 10% kept.
    pub mask_probability: f64,
    /// Initialisation, data order, masks and dropout are drawn from keyed streams of this seed.
    pub seed: u64,
    /// An HF checkpoint every this many updates (and at update 0 and the last update).
    pub checkpoint_every: usize,
    /// Held-out sequences the MLM loss is measured on at every checkpoint.
    pub heldout_sequences: usize,
    /// f32, or bf16 autocast for the encoder's forward and backward (weights and optimiser stay
    /// f32).
    pub precision: Precision,
    /// `cpu` or `cuda`.
    pub device: String,
}

impl PretrainSpec {
    /// The key of the pre-training: its folder name.
    pub fn key(&self) -> String {
        crate::hash_key(self)
    }
}

/// One HF checkpoint a pre-training wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainCheckpoint {
    /// The optimiser updates done when it was written (0: the initial weights).
    pub update: usize,
    /// The folder's name under `checkpoints/`: sha256 (16 hex digits) of its files.
    pub hash: String,
    /// Mean MLM cross-entropy (nats per predicted token) on the held-out sequences, with fixed
    /// masks.
    pub heldout_loss: f64,
    /// Mean training MLM loss over the updates since the previous checkpoint (`None` at 0).
    pub train_loss: Option<f64>,
}

/// A finished pre-training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainingRecord {
    /// [`PretrainSpec::key`]: the pre-training's folder name under `pretraining/`.
    pub key: String,
    /// The settings it ran with.
    pub spec: PretrainSpec,
    /// The encoder's parameters (the MLM head's own included, tied decoder counted once).
    pub parameters: usize,
    /// Every checkpoint it wrote, by increasing update.
    pub checkpoints: Vec<PretrainCheckpoint>,
    /// Tokens in the training and held-out parts of the packed corpus.
    pub train_tokens: u64,
    /// Tokens in the held-out part of the packed corpus.
    pub heldout_tokens: u64,
    /// Seconds of training over every process, and sequence tokens (padding excluded) per second.
    pub wall_time_s: f64,
    /// Training throughput: sequence tokens (padding excluded) per second of `wall_time_s`.
    pub tokens_per_s: f64,
    /// The code revision, host and time that made the record.
    pub provenance: Provenance,
}
