//! Fine-tune one checkpoint on one task once: the unit that the command line and the experiment
//! runner share. Data and checkpoint come from the verified store (cache, mirror or network).

use std::path::PathBuf;

use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use datasets::tasks::{Metric, Task};
use serde::Serialize;
use tch::nn;

use crate::checkpoint::{self, CheckpointError, LoadReport};
use crate::device::{DeviceError, parse_device};
use crate::fastfood::Scope;
use crate::model::{Config, ConfigError, SequenceClassifier};
use crate::random;
use crate::tokenize::{TextEncoder, TokenizeError};
use crate::train::{LabelledExample, Mode, RunResult, Seeds, StepReport, TrainConfig, TrainData, TrainError, train};

/// Learning rates when none is given. Subspace: on MiniLM / SST-2 (4000 examples, one epoch,
/// SAID d = 1000) 0.02 and 1.0 stayed at the majority class and 0.3 reached 76% dev accuracy.
pub const DEFAULT_FULL_LR: f64 = 2e-5;
pub const DEFAULT_SUBSPACE_LR: f64 = 0.3;

#[derive(Debug, Clone)]
pub struct FinetuneRequest {
    pub model: String,
    pub task: Task,
    pub mode: Mode,
    pub d: usize,
    pub lr: Option<f64>,
    pub epochs: usize,
    pub batch_size: usize,
    pub max_len: usize,
    pub max_train_examples: Option<usize>,
    pub device: String,
    pub seed: u64,
    pub scope: Scope,
    pub run_dir: Option<PathBuf>,
    pub mirrors: Vec<PathBuf>,
    pub offline: bool,
}

impl FinetuneRequest {
    pub fn new(model: &str, task: Task, mode: Mode, d: usize) -> FinetuneRequest {
        FinetuneRequest {
            model: model.to_owned(),
            task,
            mode,
            d,
            lr: None,
            epochs: 3,
            batch_size: 32,
            max_len: 128,
            max_train_examples: None,
            device: "cpu".to_owned(),
            seed: 0,
            scope: Scope::Global,
            run_dir: None,
            mirrors: Vec::new(),
            offline: false,
        }
    }
}

/// The result of a fine-tuning run, as printed and recorded.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneOutput {
    pub model: String,
    pub task: String,
    pub train_examples: usize,
    pub device: String,
    pub max_len: usize,
    #[serde(flatten)]
    pub result: RunResult,
    /// Peak resident memory of the process (`VmHWM`), where the kernel reports it.
    pub peak_resident_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Data(#[from] datasets::Error),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{path}: {source}")]
    Config { path: PathBuf, source: ConfigError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("task {task} has no split `{split}`")]
    NoSplit { task: String, split: String },
    #[error("mode {0:?} needs a subspace dimension d > 0")]
    NoDimension(Mode),
}

/// Runs one fine-tuning; `on_step` sees every step, `on_loaded` the checkpoint report.
pub fn finetune(
    request: &FinetuneRequest,
    on_loaded: &mut dyn FnMut(&LoadReport),
    on_step: &mut dyn FnMut(StepReport),
) -> Result<FinetuneOutput, FinetuneError> {
    if request.mode != Mode::Full && request.d == 0 {
        return Err(FinetuneError::NoDimension(request.mode));
    }
    let device = parse_device(&request.device)?;
    let mut store_config = StoreConfig::from_env()?;
    store_config.mirrors.extend(request.mirrors.iter().cloned());
    store_config.offline |= request.offline;
    let tokenized_cache = store_config.home.join("tokenized");
    let store = Store::new(store_config, Manifest::embedded())?;
    let model_files = store.ensure(&request.model)?;
    let task_data = request.task.load(&store.ensure(request.task.asset_id())?)?;

    let config_path = model_files.file("config.json");
    let config_text = std::fs::read_to_string(&config_path)
        .map_err(|source| FinetuneError::Io { path: config_path.clone(), source })?;
    let config =
        Config::from_json(&config_text).map_err(|source| FinetuneError::Config { path: config_path, source })?;
    let encoder = TextEncoder::from_file(&model_files.file("tokenizer.json"), request.max_len)?;
    let tokenize = |split: &str, limit: Option<usize>| -> Result<Vec<LabelledExample>, FinetuneError> {
        let examples = task_data
            .split(split)
            .ok_or_else(|| FinetuneError::NoSplit { task: request.task.name().to_owned(), split: split.to_owned() })?;
        let mut chosen: Vec<usize> = (0..examples.len()).collect();
        if let Some(limit) = limit.filter(|&limit| limit < examples.len()) {
            // A seeded random subset, the same for every mode and learning rate.
            let mut rng = random::keyed_rng("finetune v1", request.seed, split, 0);
            random::shuffle(&mut rng, &mut chosen);
            chosen.truncate(limit);
            chosen.sort_unstable();
        }
        let texts: Vec<(&str, Option<&str>)> =
            chosen.iter().map(|&idx| (examples[idx].text_a.as_str(), examples[idx].text_b.as_deref())).collect();
        let encoded = encoder.encode_all(&texts, Some(&tokenized_cache))?;
        Ok(encoded
            .into_iter()
            .zip(&chosen)
            .map(|(encoded, &idx)| LabelledExample { encoded, label: examples[idx].label })
            .collect())
    };
    let train_set = tokenize("train", request.max_train_examples)?;
    let dev_sets: Vec<(String, Vec<LabelledExample>)> = request
        .task
        .dev_splits()
        .iter()
        .map(|split| Ok((split.to_string(), tokenize(split, None)?)))
        .collect::<Result<_, FinetuneError>>()?;

    let vs = nn::VarStore::new(device);
    let model = SequenceClassifier::new(vs.root(), &config, request.task.labels().len() as i64);
    let report = checkpoint::load(
        &vs,
        &model_files.file("model.safetensors"),
        config.model_type.prefix(),
        Some("classifier"),
        request.seed,
        config.initializer_range,
    )?;
    on_loaded(&report);

    let default_lr = if request.mode == Mode::Full { DEFAULT_FULL_LR } else { DEFAULT_SUBSPACE_LR };
    let mut train_config = TrainConfig::new(request.mode, request.d, request.lr.unwrap_or(default_lr));
    train_config.scope = request.scope;
    train_config.epochs = request.epochs;
    train_config.batch_size = request.batch_size;
    train_config.seeds = Seeds::all(request.seed);
    train_config.checkpoint_every = request.run_dir.as_ref().map(|_| 50);
    let data = TrainData {
        train: &train_set,
        dev: dev_sets.iter().map(|(name, examples)| (name.clone(), examples.as_slice())).collect(),
        with_f1: request.task.metrics().contains(&Metric::F1),
        pad_id: config.pad_token_id as u32,
    };
    let result = train(&vs, &model, &data, &train_config, request.run_dir.as_deref(), on_step)?;
    Ok(FinetuneOutput {
        model: request.model.clone(),
        task: request.task.name().to_owned(),
        train_examples: train_set.len(),
        device: request.device.clone(),
        max_len: request.max_len,
        result,
        peak_resident_bytes: process_memory_bytes("VmHWM"),
    })
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, `VmHWM`, ...), in bytes;
/// `None` where the kernel does not report it.
pub fn process_memory_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let value = status.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?;
    value.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|kib| kib * 1024)
}
