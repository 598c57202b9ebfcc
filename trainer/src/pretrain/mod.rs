//! MLM pre-training from scratch with RoBERTa's recipe (Liu et al. 2019, sections 3.1 and 4), at
//! any size an HF config describes: the checkpoints the paper's section 5.2 (d90 along
//! pre-training) and 5.3 (d90 against size) fine-tune.
//!
//! - Data ([`data`]): a corpus packed into full sequences of `max_len` tokens across document
//!   boundaries; a held-out part chosen by document content.
//! - Masking ([`masking`]): 15% of tokens, 80/10/10, re-drawn every epoch from keyed seeds.
//! - Optimisation: AdamW (beta2 0.98, eps 1e-6, weight decay 0.01 except biases and LayerNorm
//!   weights), linear warmup then linear decay to 0, gradients of `batch_size / micro_batch_size`
//!   forward passes accumulated into one update, the loss being the mean cross-entropy over every
//!   predicted token of the update; bf16 autocast on CUDA with `precision: bf16`.
//! - Initialisation: HF's `_init_weights` from keyed streams
//!   ([`encoders::models::bert::initialise_from_scratch`]).
//!
//! A pre-training lives in `<out>/pretraining/<key>/` (the key hashes its resolved
//! [`PretrainSpec`]): `checkpoints/<hash>/` (HF folders: `config.json`, `model.safetensors` with HF
//! tensor names, `tokenizer.json`; named by the sha256 of their files), `work/` (the resumable
//! state: every weight and Adam moment, committed at every checkpoint and on SIGTERM) and, when it
//! has finished, `record.json` ([`PretrainingRecord`]). The data order of epoch `e` is a
//! permutation drawn from `(seed, e)`, the masks from `(seed, epoch, sequence)` and dropout is
//! reseeded before every forward pass, so a run killed at any moment and started again ends with
//! bit-identical weights (on a CPU with the same thread count; on CUDA, the backward passes of
//! embeddings and `index_select` accumulate with atomics, so a resumed run is close but not
//! bit-identical).

pub mod data;
pub mod masking;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Reduction, Tensor, nn};

use datasets::corpus::Corpus;
use datasets::store::Store;
use results::{Precision, PretrainCheckpoint, PretrainSpec, PretrainingRecord, Provenance};

use crate::Error;
use crate::interrupt::{Interrupter, Terminated};
use crate::optim::{self, AdamConfig, AdamW};
use crate::precision::Autocast;
use crate::session::{Next, SavedState, Session};
use data::{Packed, PretrainTokenizer, Sequences};
use encoders::models::bert::initialise_from_scratch;
use encoders::models::{Config, MaskedLm, ModelType};

/// A pre-training as a user writes it (a YAML file, or a block of a spec): everything but
/// `model`, `tokenizer`, `corpus` and `updates` has RoBERTa's value or a default for small runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSettings {
    /// The encoder: an HF config as a map (`{model_type: roberta, hidden_size: 256, ...}`) or the
    /// path of a `config.json`. `vocab_size`, `pad_token_id` and `max_position_embeddings` are
    /// taken from the tokenizer and `max_len` when absent.
    pub model: ModelSource,
    /// The tokenizer to use: a path to a `tokenizer.json` (or to BERT's `vocab.txt`), or a model
    /// (manifest id, `org/name@<commit>`, local folder) whose tokenizer it is.
    pub tokenizer: String,
    /// A corpus of `datasets::corpus` (`task-text`, `c4-en`, `c4-en:<shards>`), or a local `.txt`
    /// (documents separated by blank lines), `.jsonl` or `.json.gz` (a `text` field per line) file.
    pub corpus: String,
    /// Optimiser updates to train for, each over `batch_size` sequences.
    pub updates: usize,
    /// Tokens per packed sequence, start and end tokens included; default
    /// [`results::DEFAULT_MAX_LEN`].
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Sequences per update; default 64.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Defaults to `batch_size` (no accumulation).
    #[serde(default)]
    pub micro_batch_size: Option<usize>,
    /// Peak learning rate, reached at the end of warmup; default 6e-4 (RoBERTa-Base's).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Defaults to 6% of `updates` (RoBERTa-Base warmed up for 24k of its 500k updates, 4.8%; 6% is
    /// RoBERTa's fine-tuning warmup and keeps short runs stable).
    #[serde(default)]
    pub warmup_updates: Option<usize>,
    /// AdamW's decoupled weight decay (none on biases and LayerNorm weights), in [0, 1); default
    /// 0.01 (RoBERTa's).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// AdamW's beta2; default 0.98 (RoBERTa's).
    #[serde(default = "default_beta2")]
    pub adam_beta2: f64,
    /// AdamW's epsilon; default 1e-6 (RoBERTa's).
    #[serde(default = "default_eps")]
    pub adam_eps: f64,
    /// Global gradient-norm clipping threshold; 0, the default, clips nothing (as RoBERTa).
    #[serde(default)]
    pub max_grad_norm: f64,
    /// Fraction of the maskable tokens chosen for prediction; default 0.15 (BERT's).
    #[serde(default = "default_mask_probability")]
    pub mask_probability: f64,
    /// Seed of the initialisation, data order, masks and dropout; default 0.
    #[serde(default)]
    pub seed: u64,
    /// Updates between HF checkpoints (written at update 0, every this many and at the last), when
    /// the resumable state is also committed.
    pub checkpoint_every: usize,
    /// The fraction of documents held out (by content) for the held-out loss.
    #[serde(default = "default_heldout_fraction")]
    pub heldout_fraction: f64,
    /// How many held-out sequences (the first ones) the held-out loss is measured on at each
    /// checkpoint; default 256.
    #[serde(default = "default_heldout_sequences")]
    pub heldout_sequences: usize,
    /// Precision of the encoder's forward and backward: f32 (the default) or bf16 autocast.
    #[serde(default)]
    pub precision: Precision,
}

fn default_max_len() -> usize {
    results::DEFAULT_MAX_LEN
}
fn default_batch_size() -> usize {
    64
}
fn default_lr() -> f64 {
    6e-4
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_beta2() -> f64 {
    AdamConfig::ROBERTA.beta2
}
fn default_eps() -> f64 {
    AdamConfig::ROBERTA.eps
}
fn default_mask_probability() -> f64 {
    0.15
}
fn default_heldout_fraction() -> f64 {
    0.01
}
fn default_heldout_sequences() -> usize {
    256
}

/// An encoder config: inline or a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ModelSource {
    /// The path of a `config.json`, relative to the settings' base folder.
    File(PathBuf),
    /// The config's fields, written in place.
    Inline(serde_json::Map<String, serde_json::Value>),
}

fn settings_error(field: &str, message: impl Into<String>) -> Error {
    Error::Settings { field: field.to_owned(), message: message.into() }
}

/// A checked pre-training, its data packed and ready to train.
pub struct Prepared {
    /// The resolved pre-training, which keys its folder.
    pub spec: PretrainSpec,
    /// The encoder's config, with the vocabulary size, padding id and positions filled in from the
    /// tokenizer and `max_len` where the settings left them out.
    pub config: Config,
    /// The tokenizer, with the special tokens packing and masking use.
    pub tokenizer: PretrainTokenizer,
    /// The packed corpus: its training and held-out parts.
    pub packed: Packed,
    /// `<out>/pretraining/<key>`.
    pub dir: PathBuf,
}

/// A checked and keyed pre-training whose corpus is not packed yet (what `--check-only` needs).
pub struct Resolved {
    /// The resolved pre-training, which keys its folder.
    pub spec: PretrainSpec,
    /// The encoder's config, with the vocabulary size, padding id and positions filled in from the
    /// tokenizer and `max_len` where the settings left them out.
    pub config: Config,
    /// The tokenizer, with the special tokens packing and masking use.
    pub tokenizer: PretrainTokenizer,
    corpus: CorpusSource,
    /// The corpus and its files' identities (part of the packed data's key).
    corpus_identity: String,
    heldout_fraction: f64,
    /// `<out>/pretraining/<key>`.
    pub dir: PathBuf,
}

/// Checks `settings` (paths relative to `base`) and keys the pre-training: its key is known
/// before the corpus is packed, and nothing is fetched (the corpus's files are fetched by
/// [`Resolved::pack`]). Nothing is written under `out`.
///
/// `tokenizer` is the tokenizer file (`tokenizer.json` or `vocab.txt`) that `settings.tokenizer`
/// names, found by the caller
/// (`reference::pretraining_tokenizer`: a model's tokenizer or a file), so that this module does
/// not depend on model references, which name its checkpoints.
pub fn resolve(
    settings: &PretrainSettings,
    tokenizer: &Path,
    base: &Path,
    store: &Store,
    out: &Path,
    device: Device,
) -> Result<Resolved, Error> {
    check_numbers(settings)?;
    let corpus = CorpusSource::resolve(&settings.corpus, base)?;
    let tokenizer = PretrainTokenizer::from_file(tokenizer)?;
    let (model, config) = model_config(&settings.model, base, &tokenizer, settings.max_len)?;
    // The corpus's identity keys the packed data and so the pre-training; its files are fetched
    // only when it is packed (C4's shards are tens of GB).
    let corpus_identity = match &corpus {
        CorpusSource::Named(named) => named.identity(store.manifest(), |id| store.content_id(id))?,
        CorpusSource::File { sha256, .. } => format!("file:{sha256}"),
    };
    let updates = settings.updates;
    let spec = PretrainSpec {
        model,
        tokenizer_sha256: tokenizer.sha256.clone(),
        corpus: corpus.name(),
        data: data::packed_key(&corpus_identity, &tokenizer.sha256, settings.max_len, settings.heldout_fraction),
        max_len: settings.max_len,
        batch_size: settings.batch_size,
        micro_batch_size: settings.micro_batch_size.unwrap_or(settings.batch_size),
        updates,
        lr: settings.lr,
        warmup_updates: settings.warmup_updates.unwrap_or((updates as f64 * 0.06).round() as usize),
        weight_decay: settings.weight_decay,
        adam_beta2: settings.adam_beta2,
        adam_eps: settings.adam_eps,
        max_grad_norm: settings.max_grad_norm,
        mask_probability: settings.mask_probability,
        seed: settings.seed,
        checkpoint_every: settings.checkpoint_every,
        heldout_sequences: settings.heldout_sequences,
        precision: settings.precision,
        device: if device.is_cuda() { "cuda".to_owned() } else { "cpu".to_owned() },
    };
    let dir = out.join("pretraining").join(spec.key());
    Ok(Resolved { spec, config, tokenizer, corpus, corpus_identity, heldout_fraction: settings.heldout_fraction, dir })
}

impl Resolved {
    /// The updates at which the pre-training writes a checkpoint: 0, every `checkpoint_every`,
    /// and the last.
    pub fn checkpoint_updates(&self) -> Vec<usize> {
        checkpoint_updates(&self.spec)
    }

    /// What the pre-training still needs of its corpus before it can run: nothing once it has
    /// finished (its `record.json` is in [`Resolved::dir`]) or its corpus is packed in the store's
    /// cache, else the corpus files neither the cache nor a mirror has ([`Store::unavailable`]:
    /// nothing is downloaded).
    ///
    /// # Errors
    /// The manifest lacks the corpus's asset, or a cached or mirrored file cannot be read.
    pub fn corpus_need(&self, store: &Store) -> Result<CorpusNeed, Error> {
        if self.dir.join("record.json").exists() {
            return Ok(CorpusNeed::Finished);
        }
        if packed_cache(store).join(&self.spec.data).join("packed.json").exists() {
            return Ok(CorpusNeed::Packed);
        }
        match &self.corpus {
            CorpusSource::Named(named) => Ok(CorpusNeed::Files(named_corpus_unavailable(*named, store)?)),
            CorpusSource::File { .. } => Ok(CorpusNeed::LocalFile),
        }
    }

    /// Packs the corpus into the store's cache (once per corpus, tokenizer, length and held-out
    /// fraction; `on_packing` sees the documents read so far).
    pub fn pack(
        self,
        store: &Store,
        interrupter: &Interrupter,
        on_packing: &mut dyn FnMut(u64),
    ) -> Result<Prepared, Error> {
        let Resolved { spec, config, tokenizer, corpus, corpus_identity, heldout_fraction, dir } = self;
        // Fetched (and verified) only when the corpus is not packed yet.
        let documents = || -> Result<_, Error> {
            Ok(match &corpus {
                CorpusSource::Named(named) => {
                    let assets = named.assets(store.manifest())?;
                    let paths = assets.iter().map(|asset| store.ensure_asset(asset)).collect::<Result<Vec<_>, _>>()?;
                    named.documents(&paths)?
                }
                CorpusSource::File { path, .. } => datasets::corpus::local_documents(path)?,
            })
        };
        let corpus_name = corpus.name();
        let packing = data::Packing {
            corpus: &corpus_name,
            corpus_identity: &corpus_identity,
            max_len: spec.max_len,
            heldout_fraction,
        };
        let packed = data::pack_or_open(&packed_cache(store), packing, documents, &tokenizer, interrupter, on_packing)?;
        debug_assert_eq!(packed.key, spec.data);
        if packed.train.is_empty() {
            return Err(settings_error("corpus", format!("`{}` has no training text", corpus.name())));
        }
        if packed.heldout.is_empty() {
            return Err(settings_error(
                "heldout_fraction",
                format!("no document of `{}` is held out at {heldout_fraction}; raise it", corpus.name()),
            ));
        }
        Ok(Prepared { spec, config, tokenizer, packed, dir })
    }
}

/// What a pre-training may still need of its corpus `settings.corpus` (a name of [`Corpus`] or
/// a local file relative to `base`) before it is keyed (its tokenizer not here yet): the corpus
/// files neither the cache nor a mirror has, at most, since the key (and so whether it has finished
/// or its corpus is packed) needs the tokenizer. Nothing is downloaded; a local file is not read.
///
/// # Errors
/// The corpus is neither a known name nor a local file's name, or a cached file cannot be read.
pub fn corpus_need_unkeyed(settings: &PretrainSettings, store: &Store) -> Result<CorpusNeed, Error> {
    match CorpusSource::named(&settings.corpus)? {
        Some(named) => Ok(CorpusNeed::Files(named_corpus_unavailable(named, store)?)),
        None => Ok(CorpusNeed::LocalFile),
    }
}

/// What a pre-training needs of its corpus before it can run ([`Resolved::corpus_need`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorpusNeed {
    /// Nothing: the pre-training has finished, and its checkpoints are read without the corpus.
    Finished,
    /// Nothing: the corpus is packed in the store's cache for this tokenizer and length.
    Packed,
    /// A local corpus file (checked when the spec is read; nothing to fetch).
    LocalFile,
    /// The named corpus's files that neither the cache nor a mirror has (empty: all are here).
    Files(Vec<datasets::store::MissingFile>),
}

fn named_corpus_unavailable(corpus: Corpus, store: &Store) -> Result<Vec<datasets::store::MissingFile>, Error> {
    let mut missing = Vec::new();
    for asset in corpus.assets(store.manifest())? {
        missing.extend(store.unavailable(&asset)?);
    }
    Ok(missing)
}

/// The folder of packed corpora in the store's cache, one `<key>` folder each.
fn packed_cache(store: &Store) -> PathBuf {
    store.home().join("pretraining-data")
}

/// The updates at which a pre-training writes a checkpoint: 0, every `checkpoint_every`, and the
/// last.
pub fn checkpoint_updates(spec: &PretrainSpec) -> Vec<usize> {
    checkpoint_updates_of(spec.updates, spec.checkpoint_every)
}

/// [`checkpoint_updates`] of a pre-training of `updates` updates with a checkpoint every
/// `checkpoint_every` (at least 1).
pub fn checkpoint_updates_of(updates: usize, checkpoint_every: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..=updates).step_by(checkpoint_every.max(1)).collect();
    if all.last() != Some(&updates) {
        all.push(updates);
    }
    all
}

/// A corpus by name, or a local file by path (its name in records: the file name and the first
/// 12 hex digits of its sha256).
enum CorpusSource {
    Named(Corpus),
    File { path: PathBuf, sha256: String },
}

impl CorpusSource {
    fn resolve(name: &str, base: &Path) -> Result<CorpusSource, Error> {
        if let Some(corpus) = CorpusSource::named(name)? {
            return Ok(CorpusSource::Named(corpus));
        }
        let path = base.join(name);
        let sha256 = datasets::store::sha256_file(&path).map_err(|err| settings_error("corpus", err.to_string()))?;
        Ok(CorpusSource::File { path, sha256 })
    }

    /// The named corpus `name` stands for; `None` for a local file's name (read by
    /// [`CorpusSource::resolve`]).
    fn named(name: &str) -> Result<Option<Corpus>, Error> {
        if datasets::corpus::is_corpus_file(name) {
            return Ok(None);
        }
        Corpus::from_name(name)
            .map(Some)
            .map_err(|err| settings_error("corpus", format!("{err} (or a local .txt, .jsonl or .json.gz file)")))
    }

    fn name(&self) -> String {
        match self {
            CorpusSource::Named(corpus) => corpus.name(),
            CorpusSource::File { path, sha256 } => {
                let file = path.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned());
                format!("{file}@{}", &sha256[..12])
            }
        }
    }
}

/// Checks the numbers of `settings` (what needs no file or asset).
pub fn check_numbers(settings: &PretrainSettings) -> Result<(), Error> {
    let micro = settings.micro_batch_size.unwrap_or(settings.batch_size);
    let checks: [(&str, bool, String); 13] = [
        ("weight_decay", settings.weight_decay >= 0.0 && settings.weight_decay < 1.0, "must lie in [0, 1)".to_owned()),
        ("adam_beta2", settings.adam_beta2 >= 0.0 && settings.adam_beta2 < 1.0, "must lie in [0, 1)".to_owned()),
        ("adam_eps", settings.adam_eps > 0.0 && settings.adam_eps.is_finite(), "must be positive".to_owned()),
        (
            "max_grad_norm",
            settings.max_grad_norm >= 0.0 && settings.max_grad_norm.is_finite(),
            "must be 0 (no clipping) or positive".to_owned(),
        ),
        ("updates", settings.updates > 0, "must be at least 1".to_owned()),
        ("batch_size", settings.batch_size > 0, "must be at least 1".to_owned()),
        (
            "micro_batch_size",
            micro > 0 && settings.batch_size.is_multiple_of(micro.max(1)),
            format!("{micro} must divide batch_size {}", settings.batch_size),
        ),
        ("max_len", settings.max_len >= 3, "must leave room for the two frame tokens and one token".to_owned()),
        ("lr", settings.lr > 0.0 && settings.lr.is_finite(), "must be positive".to_owned()),
        (
            "warmup_updates",
            settings.warmup_updates.is_none_or(|warmup| warmup <= settings.updates),
            format!("must be at most updates ({})", settings.updates),
        ),
        (
            "mask_probability",
            settings.mask_probability > 0.0 && settings.mask_probability < 1.0,
            "must lie strictly between 0 and 1".to_owned(),
        ),
        ("checkpoint_every", settings.checkpoint_every > 0, "must be at least 1".to_owned()),
        (
            "heldout_fraction",
            settings.heldout_fraction > 0.0 && settings.heldout_fraction < 1.0 && settings.heldout_sequences > 0,
            "must lie strictly between 0 and 1, with heldout_sequences at least 1".to_owned(),
        ),
    ];
    for (field, ok, message) in checks {
        if !ok {
            return Err(settings_error(field, message));
        }
    }
    Ok(())
}

/// The encoder's HF config as a JSON object, with `vocab_size`, `pad_token_id` and
/// `max_position_embeddings` filled in from the tokenizer and `max_len` when absent, and checked
/// against them.
fn model_config(
    source: &ModelSource,
    base: &Path,
    tokenizer: &PretrainTokenizer,
    max_len: usize,
) -> Result<(serde_json::Value, Config), Error> {
    let mut map = match source {
        ModelSource::Inline(map) => map.clone(),
        ModelSource::File(path) => {
            let path = base.join(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|err| settings_error("model", format!("{}: {err}", path.display())))?;
            serde_json::from_str(&text).map_err(|err| settings_error("model", format!("{}: {err}", path.display())))?
        }
    };
    let model_type = map.get("model_type").and_then(|value| value.as_str()).unwrap_or_default().to_owned();
    let pad = i64::from(tokenizer.pad_id);
    // RoBERTa's positions start after the padding index.
    let positions = max_len as i64 + if model_type == "roberta" { pad + 1 } else { 0 };
    map.entry("vocab_size").or_insert(tokenizer.vocab_size.into());
    map.entry("pad_token_id").or_insert(pad.into());
    map.entry("max_position_embeddings").or_insert(positions.into());
    let value = serde_json::Value::Object(map);
    let config = Config::from_json(&value.to_string()).map_err(|err| settings_error("model", err.to_string()))?;
    match config.model_type {
        ModelType::Roberta => {}
        ModelType::Bert => {
            return Err(settings_error(
                "model.model_type",
                "bert: BERT's classifier reads a pooler that MLM pre-training does not train (HF's BertForMaskedLM \
                 has none), so its checkpoints could not be fine-tuned here; pre-train `roberta` (the paper's \
                 section 5.2 pre-trains RoBERTa)",
            ));
        }
        other => {
            return Err(settings_error(
                "model.model_type",
                format!(
                    "{}: pre-training implements RoBERTa's recipe and MLM head; set model_type: roberta (the paper's \
                     section 5.2 pre-trains RoBERTa)",
                    other.name()
                ),
            ));
        }
    }
    if (config.vocab_size as usize) < tokenizer.vocab_size {
        return Err(settings_error(
            "model.vocab_size",
            format!("{} is smaller than the tokenizer's {} tokens", config.vocab_size, tokenizer.vocab_size),
        ));
    }
    if config.pad_token_id != pad {
        return Err(settings_error(
            "model.pad_token_id",
            format!("{} is not the tokenizer's padding token {pad}", config.pad_token_id),
        ));
    }
    if (config.max_sequence_length() as usize) < max_len {
        return Err(settings_error(
            "model.max_position_embeddings",
            format!(
                "{} positions hold sequences of at most {} tokens, below max_len {max_len}",
                config.max_position_embeddings,
                config.max_sequence_length()
            ),
        ));
    }
    Ok((value, config))
}

/// What the trainer reports after each update (for progress bars and logs).
#[derive(Debug, Clone, Copy)]
pub struct UpdateReport {
    /// Updates done so far (0 in the report of the initial checkpoint).
    pub update: usize,
    /// Updates of the whole pre-training.
    pub updates: usize,
    /// Mean MLM loss of the update's predicted tokens.
    pub loss: f64,
    /// The learning rate this update used, from the linear schedule (0 at update 0).
    pub lr: f64,
    /// Tokens (sequence tokens, padding excluded) per second in this process so far.
    pub tokens_per_s: f64,
    /// The held-out loss, at updates that wrote a checkpoint.
    pub heldout_loss: Option<f64>,
}

/// The resumable state in `work/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PretrainState {
    spec: PretrainSpec,
    update: usize,
    checkpoints: Vec<PretrainCheckpoint>,
    loss_sum: f64,
    loss_count: usize,
    tokens: u64,
    elapsed_s: f64,
    tensors_file: String,
}

impl SavedState for PretrainState {
    fn step(&self) -> usize {
        self.update
    }
    fn elapsed_s(&self) -> f64 {
        self.elapsed_s
    }
    fn tensors_file(&self) -> &str {
        &self.tensors_file
    }
    fn saved(&self, elapsed_s: f64, tensors_file: String) -> PretrainState {
        PretrainState { elapsed_s, tensors_file, ..self.clone() }
    }
}

/// What stops a pre-training from outside, not part of its identity.
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    /// Stop (with the state saved) after this many updates in this process (a test knob).
    pub max_updates_this_process: Option<usize>,
    /// Stop after the current update with the state saved when asked (SIGTERM).
    pub interrupter: Interrupter,
}

/// What [`pretrain`] ended with.
pub enum Finished {
    /// Finished, now or by an earlier run whose `record.json` was found: its record.
    Completed(Box<PretrainingRecord>),
    /// Stopped by [`RunLimits`] at this update, with its state saved.
    Stopped {
        /// Updates done, all of them in the saved state.
        update: usize,
    },
}

/// Runs (or resumes, or reuses) the pre-training `prepared` describes on `device`; its record's
/// provenance names `code_revision` (the binary's).
pub fn pretrain(
    prepared: &Prepared,
    device: Device,
    limits: RunLimits,
    code_revision: &str,
    on_update: &mut dyn FnMut(UpdateReport),
) -> Result<Finished, Error> {
    let spec = &prepared.spec;
    let record_path = prepared.dir.join("record.json");
    if let Some(record) = results::read_or_set_aside::<PretrainingRecord>(&record_path)? {
        return Ok(Finished::Completed(Box::new(record)));
    }
    let work = prepared.dir.join("work");
    let mut session = Session::begin(Some(&work), "weights", limits.max_updates_this_process, &limits.interrupter);
    let vs = nn::VarStore::new(device);
    let model = MaskedLm::new(vs.root(), &prepared.config);
    initialise_from_scratch(&vs, &prepared.config, spec.seed);
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let model_type: ModelType = prepared.config.model_type;
    let mut optimizer = AdamW::new(
        named.iter().map(|(_, tensor)| tensor.shallow_clone()).collect(),
        named.iter().map(|(name, _)| !model_type.no_decay(name)).collect(),
        vec![1.0; named.len()],
        AdamConfig { beta1: 0.9, beta2: spec.adam_beta2, eps: spec.adam_eps },
    );
    let parameters = optimizer.numel();
    let check = |state: &PretrainState| {
        if &state.spec == spec { Ok(()) } else { Err("this folder holds another pre-training; remove it".to_owned()) }
    };
    let fresh = || PretrainState {
        spec: spec.clone(),
        update: 0,
        checkpoints: Vec::new(),
        loss_sum: 0.0,
        loss_count: 0,
        tokens: 0,
        elapsed_s: 0.0,
        tensors_file: String::new(),
    };
    let (mut state, _) = session.resume(&mut optimizer, check, fresh)?;
    let tokens_before = state.tokens;
    if state.checkpoints.is_empty() {
        let checkpoint = write_checkpoint(prepared, &model, &named, device, 0, None)?;
        on_update(UpdateReport {
            update: 0,
            updates: spec.updates,
            loss: f64::NAN,
            lr: 0.0,
            tokens_per_s: 0.0,
            heldout_loss: Some(checkpoint.heldout_loss),
        });
        state.checkpoints.push(checkpoint);
        session.save(&optimizer, &state)?;
    }

    let train = &prepared.packed.train;
    let micro_batches = spec.batch_size / spec.micro_batch_size;
    let mut order: Option<(u64, Vec<u32>)> = None;
    while state.update < spec.updates {
        if session.limit_reached(state.update) {
            session.save(&optimizer, &state)?;
            return Ok(Finished::Stopped { update: state.update });
        }
        // The update's sequences: positions `update * batch_size ..` of the epochs' orders.
        let mut sequences = Vec::with_capacity(spec.batch_size);
        for slot in 0..spec.batch_size {
            let position = (state.update * spec.batch_size + slot) as u64;
            let epoch = position / train.len() as u64;
            if order.as_ref().is_none_or(|(cached, _)| *cached != epoch) {
                order = Some((epoch, epoch_order(spec.seed, epoch, train.len())));
            }
            let sequence = order.as_ref().expect("drawn above").1[(position % train.len() as u64) as usize];
            let ids = train.read(sequence as usize)?;
            let masked = masking::mask(
                &ids,
                &prepared.tokenizer.vocabulary,
                spec.mask_probability,
                spec.seed,
                "train",
                epoch,
                u64::from(sequence),
            );
            sequences.push(masked);
        }
        let predicted: usize = sequences.iter().map(|masked| masked.targets.len()).sum();
        let tokens: usize = sequences.iter().map(|masked| masked.input.len()).sum();
        for (_, tensor) in &named {
            let mut grad = tensor.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
        let mut loss_total = 0.0;
        for (micro, chunk) in sequences.chunks(spec.micro_batch_size).enumerate() {
            tch::manual_seed(derived_seed(spec.seed, "dropout", (state.update * micro_batches + micro) as u64));
            let batch = MaskedBatch::new(chunk, prepared.tokenizer.pad_id, device);
            let loss_sum = batch.summed_loss(&model, spec.precision, device, true);
            loss_total += loss_sum.double_value(&[]);
            (loss_sum / predicted.max(1) as f64).backward();
        }
        let loss = loss_total / predicted.max(1) as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged { update: state.update, loss });
        }
        let mut grads: Vec<Tensor> = named.iter().map(|(_, tensor)| tensor.grad()).collect();
        optim::clip_grad_norm(&mut grads, spec.max_grad_norm);
        let lr = optim::linear_schedule(spec.lr, state.update, spec.updates, spec.warmup_updates);
        state.update += 1;
        optimizer.step(&grads, lr, spec.weight_decay, state.update);
        state.loss_sum += loss;
        state.loss_count += 1;
        state.tokens += tokens as u64;
        let tokens_per_s = (state.tokens - tokens_before) as f64 / session.elapsed_this_process_s().max(1e-9);
        let at_checkpoint = state.update.is_multiple_of(spec.checkpoint_every) || state.update == spec.updates;
        let mut heldout_loss = None;
        if at_checkpoint {
            let train_loss = Some(state.loss_sum / state.loss_count.max(1) as f64);
            let checkpoint = write_checkpoint(prepared, &model, &named, device, state.update, train_loss)?;
            heldout_loss = Some(checkpoint.heldout_loss);
            state.checkpoints.push(checkpoint);
            state.loss_sum = 0.0;
            state.loss_count = 0;
        }
        on_update(UpdateReport { update: state.update, updates: spec.updates, loss, lr, tokens_per_s, heldout_loss });
        if session.end_step(&optimizer, &state, at_checkpoint)? == Next::Interrupted {
            return Err(Error::Terminated(Terminated::Pretraining { update: state.update }));
        }
    }

    let wall_time_s = session.elapsed_s();
    let record = PretrainingRecord {
        key: spec.key(),
        spec: spec.clone(),
        parameters,
        checkpoints: state.checkpoints.clone(),
        train_tokens: prepared.packed.train.counts.tokens,
        heldout_tokens: prepared.packed.heldout.counts.tokens,
        wall_time_s,
        tokens_per_s: state.tokens as f64 / wall_time_s.max(1e-9),
        provenance: Provenance::now(code_revision, BTreeMap::new()),
    };
    results::write_record(&record_path, &record).map_err(|err| Error::Io { path: err.path, source: err.source })?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(Finished::Completed(Box::new(record)))
}

/// The order of the training sequences in epoch `epoch`.
fn epoch_order(seed: u64, epoch: u64, len: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    subspace::random::shuffle(&mut subspace::random::keyed_rng("mlm data v1", seed, "order", epoch), &mut order);
    order
}

fn derived_seed(seed: u64, purpose: &str, index: u64) -> i64 {
    use rand_core::RngCore;
    (subspace::random::keyed_rng("mlm v1", seed, purpose, index).next_u64() >> 1) as i64
}

/// Masked sequences as tensors: inputs padded to the longest, the flat positions of the
/// predicted tokens and their labels.
struct MaskedBatch {
    input_ids: Tensor,
    attention_mask: Tensor,
    token_type_ids: Tensor,
    positions: Tensor,
    labels: Tensor,
}

impl MaskedBatch {
    /// The MLM cross-entropy summed over the batch's predicted tokens (computed in f32 whatever
    /// the forward's precision), a scalar tensor that training backpropagates.
    fn summed_loss(&self, model: &MaskedLm, precision: Precision, device: Device, train: bool) -> Tensor {
        let logits = precision.run(device, || {
            model.forward_at(&self.input_ids, &self.attention_mask, &self.token_type_ids, &self.positions, train)
        });
        logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float).nll_loss_nd::<Tensor>(
            &self.labels,
            None,
            Reduction::Sum,
            -100,
        )
    }

    fn new(sequences: &[masking::Masked], pad_id: u32, device: Device) -> MaskedBatch {
        let longest = sequences.iter().map(|masked| masked.input.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(sequences.len() * longest);
        let mut mask = Vec::with_capacity(sequences.len() * longest);
        let (mut positions, mut labels) = (Vec::new(), Vec::new());
        for (row, masked) in sequences.iter().enumerate() {
            let padding = longest - masked.input.len();
            ids.extend(
                masked.input.iter().map(|&id| i64::from(id)).chain(std::iter::repeat_n(i64::from(pad_id), padding)),
            );
            mask.extend(std::iter::repeat_n(1i64, masked.input.len()).chain(std::iter::repeat_n(0, padding)));
            for &(position, original) in &masked.targets {
                positions.push((row * longest + position) as i64);
                labels.push(i64::from(original));
            }
        }
        let shape = [sequences.len() as i64, longest as i64];
        let input_ids = Tensor::from_slice(&ids).reshape(shape).to_device(device);
        MaskedBatch {
            token_type_ids: input_ids.zeros_like(),
            input_ids,
            attention_mask: Tensor::from_slice(&mask).reshape(shape).to_device(device),
            positions: Tensor::from_slice(&positions).to_device(device),
            labels: Tensor::from_slice(&labels).to_device(device),
        }
    }
}

/// Mean MLM loss per predicted token on the first `heldout_sequences` held-out sequences, with
/// masks fixed by the seed (the same at every checkpoint).
pub fn heldout_loss(
    model: &MaskedLm,
    heldout: &Sequences,
    tokenizer: &PretrainTokenizer,
    spec: &PretrainSpec,
    device: Device,
) -> Result<f64, Error> {
    let _guard = tch::no_grad_guard();
    let count = spec.heldout_sequences.min(heldout.len());
    let mut sequences = Vec::with_capacity(count);
    for index in 0..count {
        let ids = heldout.read(index)?;
        sequences.push(masking::mask(
            &ids,
            &tokenizer.vocabulary,
            spec.mask_probability,
            spec.seed,
            "heldout",
            0,
            index as u64,
        ));
    }
    let (mut loss_sum, mut predicted) = (0.0, 0usize);
    for chunk in sequences.chunks(spec.micro_batch_size) {
        let batch = MaskedBatch::new(chunk, tokenizer.pad_id, device);
        loss_sum += batch.summed_loss(model, spec.precision, device, false).double_value(&[]);
        predicted += chunk.iter().map(|masked| masked.targets.len()).sum::<usize>();
    }
    Ok(loss_sum / predicted.max(1) as f64)
}

/// Writes the HF folder of the model's current weights under `checkpoints/<hash>/` (through a
/// temporary folder renamed whole; a folder already there has the same bytes by its name) and
/// measures the held-out loss.
fn write_checkpoint(
    prepared: &Prepared,
    model: &MaskedLm,
    named: &[(String, Tensor)],
    device: Device,
    update: usize,
    train_loss: Option<f64>,
) -> Result<PretrainCheckpoint, Error> {
    let heldout_loss = heldout_loss(model, &prepared.packed.heldout, &prepared.tokenizer, &prepared.spec, device)?;
    let root = prepared.dir.join("checkpoints");
    let staging = root.join(format!(".partial-{update}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(Error::io(&staging))?;
    let hash =
        write_hf_folder(&staging, &prepared.spec.model, prepared.config.model_type, named, &prepared.tokenizer.json)?;
    let target = root.join(&hash);
    if target.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    } else {
        std::fs::rename(&staging, &target).map_err(Error::io(&target))?;
    }
    Ok(PretrainCheckpoint { update, hash, heldout_loss, train_loss })
}

/// Writes `config.json` (the spec's config with HF's `architectures`), `model.safetensors` (the
/// model's tensors under their HF names, on the CPU, f32) and `tokenizer.json` (`tokenizer_json`,
/// the pre-training tokenizer's) into `dir`;
/// returns the checkpoint's name: the first 16 hex digits of the sha256 of the three files'
/// sha256.
pub fn write_hf_folder(
    dir: &Path,
    config: &serde_json::Value,
    model_type: ModelType,
    named: &[(String, Tensor)],
    tokenizer_json: &[u8],
) -> Result<String, Error> {
    let mut config = config.clone();
    let architecture = match model_type {
        ModelType::Bert => "BertForMaskedLM",
        ModelType::Roberta => "RobertaForMaskedLM",
        ModelType::XlmRoberta => "XLMRobertaForMaskedLM",
        ModelType::Electra
        | ModelType::DistilBert
        | ModelType::Albert
        | ModelType::Bart
        | ModelType::T5
        | ModelType::Xlnet => {
            unreachable!("pre-training settings refuse {} (resolve)", model_type.name())
        }
    };
    config["architectures"] = serde_json::json!([architecture]);
    let config_path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config).expect("serialisable") + "\n";
    std::fs::write(&config_path, text).map_err(Error::io(&config_path))?;
    let weights_path = dir.join("model.safetensors");
    let tensors: Vec<(String, Tensor)> = named
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.detach().to_device(Device::Cpu).to_kind(Kind::Float)))
        .collect();
    Tensor::write_safetensors(&tensors, &weights_path)
        .map_err(|err| Error::Io { path: weights_path.clone(), source: std::io::Error::other(err) })?;
    let tokenizer_path = dir.join("tokenizer.json");
    std::fs::write(&tokenizer_path, tokenizer_json).map_err(Error::io(&tokenizer_path))?;
    let mut digest = Sha256::new();
    for path in [&config_path, &weights_path, &tokenizer_path] {
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        digest.update(Sha256::digest(&bytes));
        std::fs::File::open(path).and_then(|file| file.sync_all()).map_err(Error::io(path))?;
    }
    Ok(digest.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect())
}
