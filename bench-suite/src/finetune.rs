//! Fine-tune one checkpoint on one task once: the unit that the command line and the experiment
//! runner share. Data and checkpoint come from the verified store (cache, mirror or network).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use datasets::tasks::Example;
use serde::Serialize;
use tch::nn;

use crate::Error;
use crate::reference::{
    Checkpoint, ModelRef, ReferenceError, Subject, TaskRef, TextTask, is_task_file, load_task_file,
};
use crate::settings::TrainingSpec;
use crate::synthetic;
use encoders::checkpoint::{self, LoadReport};
use encoders::models::{Config, ModelType, SequenceClassifier};
use encoders::shapes;
use results::search::{Method, Training};
use results::{Compat, LambdaGrouping, Mode, RunResult, Scope, TrainConfig};
use subspace::device::parse_device;
use subspace::random;
use subspace::{self, Method as SubspaceMethod};
use trainer::interrupt::Interrupter;
use trainer::tokenize::TextEncoder;
use trainer::train::{LabelledExample, StepReport, TrainData, train};

/// Learning rates when none is given. Subspace: on MiniLM / SST-2 (4000 examples, one epoch,
/// SAID d = 1000) 0.02 and 1.0 stayed at the majority class and 0.3 reached 76% dev accuracy.
pub const DEFAULT_FULL_LR: f64 = 2e-5;
/// The learning rate of DID and SAID runs when none is given (chosen as [`DEFAULT_FULL_LR`]'s note
/// says).
pub const DEFAULT_SUBSPACE_LR: f64 = 0.3;
/// The learning rate of head-only runs when none is given (the task head alone, with AdamW).
pub const DEFAULT_HEAD_LR: f64 = 1e-3;

/// One fine-tuning run as `bench-suite finetune` asks for it: a model, a task, a method, and
/// training settings that take the paper's defaults where absent ([`TrainingSpec`], the same
/// definition a spec's `training:` uses).
#[derive(Debug, Clone)]
pub struct FinetuneRequest {
    /// A checkpoint of the manifest (asset id), a hub checkpoint pinned by commit
    /// (`org/name@<commit>`), a local HF-format folder (a path starting with `./`, `../` or `/`),
    /// or a synthetic model ([`crate::reference::ModelRef::resolve`]).
    pub model: String,
    /// A task of the manifest by name, or a task file (`.yaml`/`.yml`: a
    /// `datasets::local::LocalTaskSpec`, its paths relative to the file).
    pub task: String,
    /// Full fine-tuning, DID, SAID or the head alone.
    pub mode: Mode,
    /// The subspace dimension (DID and SAID; 0 for full and head-only fine-tuning).
    pub d: usize,
    /// The learning rate; `None`: [`DEFAULT_FULL_LR`], [`DEFAULT_SUBSPACE_LR`] or [`DEFAULT_HEAD_LR`].
    pub lr: Option<f64>,
    /// The Fastfood map's scope; `None`: the compat mode's ([`Compat::default_scope`]).
    pub scope: Option<Scope>,
    /// The subspace's compatibility mode (DID/SAID): `Compat::Aghajanyan` is the authors' code.
    pub compat: Compat,
    /// SAID's scale grouping; `None`: the compat mode's ([`Compat::default_grouping`]).
    pub grouping: Option<LambdaGrouping>,
    /// Training settings; absent fields take the paper's ([`results::Training::PAPER`]).
    pub training: TrainingSpec,
    /// Seed of the training subset (`max_train_examples`), kept apart from `seed` so that runs
    /// with different seeds train on the same examples.
    pub subset_seed: u64,
    /// Every seed of the run (data order, dropout, head, projection).
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Save the run's state here every `checkpoint_every` steps, and resume from what is here.
    pub run_dir: Option<PathBuf>,
    /// Read-only folders to take assets from before the network.
    pub mirrors: Vec<PathBuf>,
    /// Never touch the network.
    pub offline: bool,
}

impl FinetuneRequest {
    /// A request with every setting at its default (the paper's setup, seed 0, CPU).
    pub fn new(model: &str, task: &str, mode: Mode, d: usize) -> FinetuneRequest {
        FinetuneRequest {
            model: model.to_owned(),
            task: task.to_owned(),
            mode,
            d,
            lr: None,
            scope: None,
            compat: Compat::None,
            grouping: None,
            training: TrainingSpec::default(),
            subset_seed: 0,
            seed: 0,
            device: "cpu".to_owned(),
            run_dir: None,
            mirrors: Vec::new(),
            offline: false,
        }
    }

    /// The settings that need no files, checked and resolved: the training settings
    /// ([`TrainingSpec::resolve`]), a positive finite learning rate, a subspace dimension for
    /// DID and SAID.
    pub fn check(&self) -> Result<Training, Error> {
        if self.mode.subspace_method().is_some() && self.d == 0 {
            return Err(Error::NoDimension(self.mode));
        }
        if self.mode.subspace_method().is_none() && self.d != 0 {
            return Err(Error::Value {
                setting: "d",
                value: self.d.to_string(),
                message: format!("{} fine-tuning has no subspace: d is for did and said", self.mode),
            });
        }
        let training = self.training.resolve(self.subset_seed, &self.device).map_err(|err| Error::Value {
            setting: err.field,
            value: err.value,
            message: err.message,
        })?;
        if let Some(lr) = self.lr
            && !(lr.is_finite() && lr > 0.0)
        {
            return Err(Error::Value {
                setting: "lr",
                value: lr.to_string(),
                message: "a learning rate is a positive finite number".to_owned(),
            });
        }
        Ok(training)
    }

    /// The method the request names, with the compat mode's scope and grouping where it names
    /// none (the rule a spec's methods follow).
    pub fn method(&self) -> Method {
        let default_lr = match self.mode {
            Mode::Full => DEFAULT_FULL_LR,
            Mode::HeadOnly => DEFAULT_HEAD_LR,
            Mode::Did | Mode::Said => DEFAULT_SUBSPACE_LR,
        };
        Method {
            name: self.mode.to_string(),
            mode: self.mode,
            lrs: vec![self.lr.unwrap_or(default_lr)],
            lr_d0: None,
            lr_extend: None,
            lambda_lr: None,
            epochs: None,
            scope: self.scope.unwrap_or(self.compat.default_scope()),
            grouping: self.grouping.unwrap_or(self.compat.default_grouping()),
            compat: self.compat,
        }
    }

    /// The model and task the request names, read and checked (a local folder hashed, a task
    /// file parsed), before anything is fetched or trained.
    pub fn subject(&self) -> Result<Subject, Error> {
        fn value(setting: &'static str, value: &str) -> impl FnOnce(ReferenceError) -> Error {
            let value = value.to_owned();
            move |err| Error::Value { setting, value, message: err.to_string() }
        }
        let model = ModelRef::resolve(&self.model, Path::new("."), &Manifest::embedded(), &mut BTreeMap::new())
            .map_err(value("model", &self.model))?;
        let task = if is_task_file(&self.task) {
            TaskRef::Text(TextTask::Local(Arc::new(
                load_task_file(Path::new(&self.task)).map_err(value("task", &self.task))?,
            )))
        } else {
            TaskRef::resolve(&self.task, &BTreeMap::new()).map_err(value("task", &self.task))?
        };
        Subject::new(model, task).map_err(value("model", &self.model))
    }

    /// `d` against the model with its task head: at most D parameters, and for SAID more than its
    /// m scales (one per group, which `d` includes).
    pub fn check_dimension(&self, config: &Config, n_labels: usize) -> Result<(), Error> {
        let Method { grouping, compat, .. } = self.method();
        let method = self.mode.subspace_method().unwrap_or(SubspaceMethod::Did);
        let n_labels = n_labels as i64;
        let (total, scales) = shapes::subspace_dimensions(config, n_labels, method, grouping, compat);
        if self.d > total {
            return Err(Error::Value {
                setting: "d",
                value: self.d.to_string(),
                message: format!(
                    "exceeds D = {total}, the parameters of {} with its head; use 1 to {total}",
                    self.model
                ),
            });
        }
        subspace::check_dimension(self.d, scales, method, grouping, compat).map_err(|err| Error::Value {
            setting: "d",
            value: self.d.to_string(),
            message: format!("{err}; use {} to {total}", scales + 1),
        })?;
        Ok(())
    }
}

/// The result of a fine-tuning run, as printed and recorded.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneOutput {
    /// The model's name: its manifest id, hub repository, local folder name or synthetic name.
    pub model: String,
    /// The task's name.
    pub task: String,
    /// Training examples the run used (after `max_train_examples`).
    pub train_examples: usize,
    /// The device as asked for (`cpu`, `cuda` or `cuda:N`).
    pub device: String,
    /// The length in tokens, special tokens included, that texts were truncated to.
    pub max_len: usize,
    /// The run's result, its fields flattened into this object's JSON.
    #[serde(flatten)]
    pub result: RunResult,
    /// Peak resident memory of the process (`VmHWM`), where the kernel reports it.
    pub peak_resident_bytes: Option<u64>,
}

/// Why `max_len` does not fit the model and task, with the range that works: at least the
/// template's special tokens plus one token per text (the tokenizer can then always truncate),
/// at most the model's position table ([`Config::max_sequence_length`]). `None` when it fits.
pub fn max_len_problem(config: &Config, encoder: &TextEncoder, paired: bool) -> Option<String> {
    let (min, max) = (encoder.min_max_len(paired), config.max_sequence_length().max(0) as usize);
    let works = format!("use {min} to {max}");
    if let Err(err) = encoder.check_max_len(paired) {
        let message = err.to_string();
        let why = message.strip_prefix(&format!("max_len {} ", encoder.max_len())).unwrap_or(&message);
        return Some(format!("{why}; {works}"));
    }
    if encoder.max_len() > max {
        return Some(format!(
            "exceeds the model's {max} positions (max_position_embeddings {}); {works}",
            config.max_position_embeddings
        ));
    }
    None
}

/// Why the tokenizer can give ids the model has no embedding for (an added token beyond
/// `vocab_size`, which would make the embedding lookup fail mid-training), with what to do.
/// `None` when every id fits.
pub fn vocabulary_problem(config: &Config, encoder: &TextEncoder) -> Option<String> {
    let (token, id) = encoder.largest_token()?;
    (i64::from(id) >= config.vocab_size).then(|| {
        format!(
            "the tokenizer's token `{token}` has id {id}, beyond the model's {} embeddings (config.json vocab_size): \
             save the model after resizing its embeddings to the tokenizer (HF `model.resize_token_embeddings(len(\
             tokenizer))`), or remove the added token",
            config.vocab_size
        )
    })
}

/// Reads and checks the `config.json` of the checkpoint `name` (a hub repository, a manifest id or
/// a folder's name); one without `model_type` (the BERT miniatures' 2020 commits) takes the family
/// `name` names, as HF infers it from the repository's name ([`Config::from_json_named`]).
pub fn read_config(path: &std::path::Path, name: &str) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    Config::from_json_named(&text, name)
        .map_err(|source| Error::Config { path: path.to_path_buf(), source: Box::new(source) })
}

/// A model and a task, loaded once for many runs: the checkpoint's config and weights file (or a
/// synthetic model), the tokenised training subset and dev splits.
pub struct Workload {
    /// The model's name (as [`FinetuneOutput::model`]).
    pub model: String,
    /// The task's name.
    pub task: String,
    /// The checkpoint's `config.json` (or the synthetic model's configuration).
    pub config: Config,
    /// `None`: a synthetic model, initialised from the keyed RNG.
    weights: Option<PathBuf>,
    /// The task's number of classes, the classification head's outputs.
    pub n_labels: i64,
    /// The tokenised training examples: the split, or the random subset `max_train_examples` drew,
    /// in the split's order.
    pub train: Vec<LabelledExample>,
    /// The tokenised dev splits, whole, by name (MNLI has two); the first is the one scored.
    pub dev: Vec<(String, Vec<LabelledExample>)>,
    /// Report F1 of label 1 as well as accuracy (MRPC, QQP).
    pub with_f1: bool,
    /// Accuracy of always predicting the most frequent label of the first dev split.
    pub majority_accuracy: f64,
}

impl Workload {
    /// A checkpoint (of the manifest, from the store; or a local folder) and a task with text
    /// (the manifest's, parsed from the store; or one over local files); `max_train_examples`
    /// takes a random subset drawn from `subset_seed` (the same for every mode, learning rate and
    /// run seed). Tokenised texts are cached in the store's folder.
    pub fn from_checkpoint(
        store: &Store,
        model: &Checkpoint,
        task: &TextTask,
        max_len: usize,
        max_train_examples: Option<usize>,
        subset_seed: u64,
    ) -> Result<Workload, Error> {
        let tokenized_cache = store.home().join("tokenized");
        if let Checkpoint::Local(local) = model {
            local.verify()?;
        }
        let files = model.files(store)?;
        let config = read_config(&files.config, &model.name())?;
        let encoder = TextEncoder::from_file(&files.tokenizer, max_len)?;
        if let Some(message) = max_len_problem(&config, &encoder, task.is_pair()) {
            return Err(Error::Value { setting: "max_len", value: max_len.to_string(), message });
        }
        if let Some(message) = vocabulary_problem(&config, &encoder) {
            return Err(Error::Value { setting: "model", value: model.name(), message });
        }
        let tokenize = |split: &str,
                        examples: &[Example],
                        limit: Option<usize>|
         -> Result<Vec<LabelledExample>, Error> {
            let mut chosen: Vec<usize> = (0..examples.len()).collect();
            if let Some(limit) = limit.filter(|&limit| limit < examples.len()) {
                let mut rng = random::keyed_rng("finetune v1", subset_seed, split, 0);
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
        let (train, dev, n_labels, with_f1) = task.with_splits(store, |splits| -> Result<_, Error> {
            let train = tokenize("train", splits.train, max_train_examples)?;
            let dev: Vec<(String, Vec<LabelledExample>)> = splits
                .dev
                .iter()
                .map(|(split, examples)| Ok((split.clone(), tokenize(split, examples, None)?)))
                .collect::<Result<_, Error>>()?;
            Ok((train, dev, splits.n_labels as i64, splits.with_f1))
        })??;
        // BART's and T5's heads read each example's last end-of-sequence token: a tokenizer
        // whose template adds none is refused here, before any training.
        if let (ModelType::Bart | ModelType::T5, Some(eos)) = (config.model_type, config.eos_token_id) {
            let lacking = train
                .iter()
                .chain(dev.iter().flat_map(|(_, examples)| examples))
                .find(|example| !example.encoded.ids.contains(&(eos as u32)));
            if lacking.is_some() {
                return Err(Error::Value {
                    setting: "model",
                    value: model.name(),
                    message: format!(
                        "its tokenizer ({}) writes examples without the end-of-sequence token {eos} that the \
                         {} classification head reads; use the model's own tokenizer",
                        files.tokenizer.display(),
                        config.model_type.name()
                    ),
                });
            }
        }
        Ok(Workload {
            model: model.name().to_owned(),
            task: task.name().to_owned(),
            majority_accuracy: majority_accuracy(&dev[0].1, n_labels),
            config,
            weights: Some(files.weights),
            n_labels,
            train,
            dev,
            with_f1,
        })
    }

    /// A synthetic model (one of [`synthetic::MODELS`]) on the synthetic task: 384 training
    /// examples (or `max_train_examples`) and 128 dev examples.
    pub fn synthetic(model: &str, config: &Config, max_train_examples: Option<usize>) -> Workload {
        let config = config.clone();
        let dev = synthetic::examples(128, 2, "dev");
        Workload {
            model: model.to_owned(),
            task: synthetic::TASK.to_owned(),
            majority_accuracy: majority_accuracy(&dev, 2),
            config,
            weights: None,
            n_labels: 2,
            train: synthetic::examples(max_train_examples.unwrap_or(384), 1, "train"),
            dev: vec![("dev".to_owned(), dev)],
            with_f1: false,
        }
    }

    /// Builds the model on `device` (weights from the checkpoint, the head from `head_seed`) and
    /// trains it with `config`; `run_dir` holds its saved state, and `interrupter` stops it.
    pub fn run(
        &self,
        device: tch::Device,
        config: &TrainConfig,
        run_dir: Option<&std::path::Path>,
        interrupter: &Interrupter,
        on_loaded: &mut dyn FnMut(&LoadReport),
        on_step: &mut dyn FnMut(StepReport),
    ) -> Result<RunResult, Error> {
        let vs = nn::VarStore::new(device);
        let model = SequenceClassifier::new(vs.root(), &self.config, self.n_labels);
        match &self.weights {
            Some(weights) => {
                let report = checkpoint::load(
                    &vs,
                    weights,
                    self.config.model_type.prefix(),
                    checkpoint::Head::Fresh(self.config.model_type.head_prefixes()),
                    config.seeds.head,
                    self.config.initializer_range,
                )?;
                on_loaded(&report);
            }
            None => synthetic::init_weights(&vs, config.seeds.head),
        }
        let data = TrainData {
            train: &self.train,
            dev: self.dev.iter().map(|(name, examples)| (name.clone(), examples.as_slice())).collect(),
            with_f1: self.with_f1,
            pad_id: self.config.pad_token_id as u32,
        };
        Ok(train(&vs, &model, &data, config, run_dir, interrupter, on_step)?)
    }
}

fn majority_accuracy(examples: &[LabelledExample], n_labels: i64) -> f64 {
    let mut counts = vec![0usize; n_labels.max(1) as usize];
    for example in examples {
        counts[example.label] += 1;
    }
    *counts.iter().max().unwrap_or(&0) as f64 / examples.len().max(1) as f64
}

/// Runs one fine-tuning; `on_step` sees every step, `on_loaded` the checkpoint report.
pub fn finetune(
    request: &FinetuneRequest,
    interrupter: &Interrupter,
    on_loaded: &mut dyn FnMut(&LoadReport),
    on_step: &mut dyn FnMut(StepReport),
) -> Result<FinetuneOutput, Error> {
    let training = request.check()?;
    let subject = request.subject()?;
    let device = parse_device(&request.device)?;
    let mut store_config = StoreConfig::from_env()?;
    store_config.mirrors.extend(request.mirrors.iter().cloned());
    store_config.offline |= request.offline;
    let store = Store::new(store_config, Manifest::embedded())?;
    let workload = match &subject {
        Subject::Text { model, task } => {
            let files = model.files(&store)?;
            let config = read_config(&files.config, &model.name())?;
            checkpoint::check_for_finetuning(&files.weights, &config, task.n_labels() as i64)?;
            if request.mode.subspace_method().is_some() {
                request.check_dimension(&config, task.n_labels())?;
            }
            Workload::from_checkpoint(
                &store,
                model,
                task,
                training.max_len,
                training.max_train_examples,
                training.subset_seed,
            )?
        }
        Subject::Synthetic { model, config } => {
            if request.mode.subspace_method().is_some() {
                request.check_dimension(config, 2)?;
            }
            Workload::synthetic(model, config, training.max_train_examples)
        }
    };
    let method = request.method();
    let mut train_config = training.run_config(&method, request.d, method.lrs[0], request.seed);
    // Without a run folder there is nowhere to save the run's state.
    if request.run_dir.is_none() {
        train_config.checkpoint_every = None;
    }
    let result = workload.run(device, &train_config, request.run_dir.as_deref(), interrupter, on_loaded, on_step)?;
    Ok(FinetuneOutput {
        model: workload.model.clone(),
        task: workload.task.clone(),
        train_examples: workload.train.len(),
        device: request.device.clone(),
        max_len: training.max_len,
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
