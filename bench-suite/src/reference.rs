//! What a model or task name refers to, resolved once (when a spec is checked, or when the
//! command line is read), so that the runner and `finetune` match on a kind instead of testing
//! names.
//!
//! A model is a checkpoint (one of the manifest, by asset id; one of the hub pinned by commit,
//! `org/name@<commit>`; or a local HF-format folder, named by a path that starts with `./`, `../`
//! or `/`) or one of the tiny random-weight models of
//! [`synthetic`] (tests and the `smoke` preset). A task is a task of the manifest, a task the
//! user declares over local files ([`datasets::local`]), or the synthetic task. Synthetic models
//! have no tokenizer and the synthetic task no text, so each runs only with the other, which
//! [`Subject::new`] checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datasets::local::{LocalTask, LocalTaskSpec};
use datasets::manifest::{Asset, Manifest};
use datasets::store::{Store, sha256_file};
use datasets::tasks::{Example, Metric, Task};

use crate::synthetic;
use encoders::models::Config;

/// What a local model folder must hold, said by every error about one.
const LOCAL_MODEL: &str = "a local model is a folder with config.json, model.safetensors (or pytorch_model.bin) \
                           and tokenizer.json (or BERT's vocab.txt)";

/// Why a name, a local folder or a task file refers to nothing that can run. Each message names
/// the thing and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// A local model folder, or a file it must hold, is missing.
    #[error("{}: {missing} ({LOCAL_MODEL})", folder.display())]
    LocalModel {
        /// The folder.
        folder: PathBuf,
        /// What is missing (`no such folder`, `no config.json`, ...).
        missing: String,
    },
    /// A local model's file changed since the folder was opened (a run trains what its key names).
    #[error(
        "{}: changed since the spec was read (sha256 {now}, was {was}); rerun the command to measure the new files",
        path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its sha256 now.
        now: String,
        /// Its sha256 when the folder was opened.
        was: String,
    },
    /// A model name that is no synthetic model, local folder, hub checkpoint or manifest model.
    #[error(
        "`{name}` is not a model of the manifest (known: {}; a local folder is a path starting with ./, ../ or /, \
         a hub checkpoint is org/name@<commit>)",
        known.join(", ")
    )]
    UnknownModel {
        /// The name given.
        name: String,
        /// The manifest's checkpoints and the synthetic models.
        known: Vec<String>,
    },
    /// A task name that is no task of the suite or of the spec.
    #[error("`{name}` is not a task (known: {})", known.join(", "))]
    UnknownTask {
        /// The name given.
        name: String,
        /// The suite's tasks, the declared ones and the synthetic task.
        known: Vec<String>,
    },
    /// A hub checkpoint name that is not `org/name@<commit>`.
    #[error("{0}")]
    HubName(String),
    /// A name a user's task cannot have.
    #[error("`{name}` {rule}")]
    TaskName {
        /// The name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A task file that cannot be read, parsed or loaded.
    #[error("{}: {message}", path.display())]
    TaskFile {
        /// The file.
        path: PathBuf,
        /// Why (with the field of the declaration when one is at fault).
        message: String,
    },
    /// A model and a task that cannot run together.
    #[error("{0}")]
    Mismatch(String),
    /// A checkpoint of a pre-training that is not there (yet).
    #[error("{checkpoint}: pre-training `{pretraining}` {why}")]
    Pretraining {
        /// The checkpoint's name (`pretrained:<name>@<update>`).
        checkpoint: String,
        /// The pre-training's name in the spec.
        pretraining: String,
        /// What is missing and what to do.
        why: String,
    },
    /// A file could not be read, hashed or fetched.
    #[error(transparent)]
    Store(#[from] datasets::Error),
}

/// The three files of an HF-format checkpoint the suite reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The model's `config.json`.
    pub config: PathBuf,
    /// The weights: `model.safetensors`, or a `torch.save` `pytorch_model.bin` where the checkpoint
    /// publishes only that ([`weights_file`]).
    pub weights: PathBuf,
    /// The tokenizer: `tokenizer.json`, or BERT's `vocab.txt` where the checkpoint publishes only
    /// that ([`tokenizer_file`]).
    pub tokenizer: PathBuf,
}

/// The weights file of the HF-format folder `folder`: `model.safetensors`, else the index of a
/// sharded one (`model.safetensors.index.json`), else `pytorch_model.bin`, else its index (the
/// order in which HF's `from_pretrained` looks for them); `None` when it has none.
pub fn weights_file(folder: &Path) -> Option<PathBuf> {
    ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
        .into_iter()
        .map(|name| folder.join(name))
        .find(|path| path.is_file())
}

/// The tokenizer file of the HF-format folder `folder`: `tokenizer.json`, else BERT's `vocab.txt`
/// (from which [`trainer::tokenize::wordpiece`] builds the tokenizer HF would); `None` when it has
/// neither.
pub fn tokenizer_file(folder: &Path) -> Option<PathBuf> {
    ["tokenizer.json", "vocab.txt"].into_iter().map(|name| folder.join(name)).find(|path| path.is_file())
}

/// A local HF-format folder (what `save_pretrained` writes, with the tokenizer's `tokenizer.json`
/// or BERT's `vocab.txt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    /// The name results give it: the folder's own name.
    pub name: String,
    /// Its config, weights and tokenizer files.
    pub files: ModelFiles,
    /// sha256 of each file the model is read from, by file name (with `tokenizer_config.json`
    /// when the tokenizer is built from `vocab.txt` and the folder has one).
    pub hashes: BTreeMap<String, String>,
    /// The first 12 hex digits of the sha256 of the files' hashes (`hashes`): the model's identity in
    /// run keys and signatures (a changed file is another model; a moved folder is the same one).
    pub revision: String,
}

impl LocalModel {
    /// Checks that the folder still holds the files it was opened with (a run trains on what
    /// its key names, also when the folder is edited during a long reproduction).
    ///
    /// # Errors
    /// A file that changed or went away since the folder was opened, named.
    pub fn verify(&self) -> Result<(), ReferenceError> {
        let folder = self.files.config.parent().expect("a file in the folder");
        for (name, was) in &self.hashes {
            let path = folder.join(name);
            let now = sha256_file(&path)?;
            if &now != was {
                return Err(ReferenceError::Changed { path, now, was: was.clone() });
            }
        }
        Ok(())
    }

    /// Opens the folder `path` and hashes its files. The weights are `model.safetensors`, or
    /// `pytorch_model.bin` (a `torch.save` file) when the folder has no safetensors, as HF prefers;
    /// the tokenizer is `tokenizer.json`, or BERT's `vocab.txt` (with the `tokenizer_config.json`
    /// beside it, if any) when there is no `tokenizer.json`.
    ///
    /// # Errors
    /// The folder or one of its files is missing, or cannot be read.
    pub fn open(path: &Path) -> Result<LocalModel, ReferenceError> {
        let missing =
            |missing: &str| ReferenceError::LocalModel { folder: path.to_path_buf(), missing: missing.to_owned() };
        if !path.is_dir() {
            return Err(missing("no such folder"));
        }
        let config = path.join("config.json");
        if !config.is_file() {
            return Err(missing("no config.json"));
        }
        let files = ModelFiles {
            config,
            weights: weights_file(path).ok_or_else(|| {
                missing("no model.safetensors and no pytorch_model.bin (nor the index of a sharded one)")
            })?,
            tokenizer: tokenizer_file(path).ok_or_else(|| missing("no tokenizer.json and no vocab.txt"))?,
        };
        let tokenizer_config = path.join("tokenizer_config.json");
        let wordpiece_config =
            (files.tokenizer.ends_with("vocab.txt") && tokenizer_config.is_file()).then_some(&tokenizer_config);
        // A sharded checkpoint's shards are part of its identity, as its index names them.
        let shards = encoders::checkpoint::index_shards(&files.weights)
            .map_err(|err| ReferenceError::LocalModel { folder: path.to_path_buf(), missing: err.to_string() })?
            .map(|shards| shards.into_keys().collect::<Vec<_>>())
            .unwrap_or_default();
        let mut hashes = BTreeMap::new();
        for path in [&files.config, &files.weights, &files.tokenizer].into_iter().chain(wordpiece_config).chain(&shards)
        {
            let name = path.file_name().expect("a file").to_string_lossy().into_owned();
            hashes.insert(name, sha256_file(path)?);
        }
        let identity: String = hashes.iter().map(|(name, hash)| format!("{name} {hash}\n")).collect();
        let revision = datasets::local::short_sha256(identity.as_bytes(), 6);
        let name = path
            .canonicalize()
            .ok()
            .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".to_owned());
        Ok(LocalModel { name, files, hashes, revision })
    }
}

/// A checkpoint with HF weights and a tokenizer.
#[derive(Debug, Clone)]
pub enum Checkpoint {
    /// A checkpoint of the manifest, by asset id (e.g. `FacebookAI/roberta-base`), fetched and
    /// verified by the store.
    Manifest(String),
    /// A checkpoint of the hub the manifest does not list, pinned by commit (`org/name@<commit>`;
    /// [`Asset::hub_checkpoint`]): fetched, trusted on first use and locked like the manifest's.
    Hub(Arc<Asset>),
    /// A local folder.
    Local(Arc<LocalModel>),
    /// A checkpoint of a pre-training the spec runs (`pretrained:<name>@<update>`).
    Produced(Arc<Produced>),
}

/// A checkpoint of one of the spec's pre-trainings. Its files exist once that pre-training has
/// run, which the runner does before the searches that fine-tune it; where they are is known
/// once the runner has keyed the pre-training ([`Produced::locate`]).
#[derive(Debug)]
pub struct Produced {
    /// The pre-training's name in the spec.
    pub pretraining: String,
    /// The update whose checkpoint this is.
    pub update: usize,
    /// The pre-training's settings, as the spec declares them.
    pub settings: Arc<trainer::pretrain::PretrainSettings>,
    /// The folder the spec's relative paths start from.
    pub base: PathBuf,
    /// The pre-training's key and its folder (`<results>/pretraining/<key>`), set by the runner.
    location: std::sync::OnceLock<(String, PathBuf)>,
}

impl Produced {
    /// The checkpoint at `update` of the spec's pre-training `pretraining` (`base`: the spec's
    /// folder), not located yet ([`Produced::locate`]).
    pub fn new(
        pretraining: &str,
        update: usize,
        settings: Arc<trainer::pretrain::PretrainSettings>,
        base: &Path,
    ) -> Produced {
        Produced {
            pretraining: pretraining.to_owned(),
            update,
            settings,
            base: base.to_path_buf(),
            location: std::sync::OnceLock::new(),
        }
    }

    /// Records the pre-training's key and folder (the first call wins; later calls with other
    /// values are ignored, as one plan keys a pre-training once).
    pub fn locate(&self, key: &str, dir: &Path) {
        let _ = self.location.set((key.to_owned(), dir.to_path_buf()));
    }

    /// The name results give it: `pretrained:<name>@<update>`.
    pub fn name(&self) -> String {
        format!("pretrained:{}@{}", self.pretraining, self.update)
    }

    /// The checkpoint's folder, from the finished pre-training's record.
    pub fn folder(&self) -> Result<PathBuf, ReferenceError> {
        let missing = |why: String| ReferenceError::Pretraining {
            checkpoint: self.name(),
            pretraining: self.pretraining.clone(),
            why,
        };
        let Some((_, dir)) = self.location.get() else {
            return Err(missing("has not been keyed yet".to_owned()));
        };
        let record_path = dir.join("record.json");
        let record: results::PretrainingRecord = results::read_record(&record_path)
            .map_err(|err| missing(format!("has a record that cannot be used: {err}")))?
            .ok_or_else(|| missing(format!("has not finished ({} is missing): run it first", record_path.display())))?;
        let checkpoint = record
            .checkpoints
            .iter()
            .find(|checkpoint| checkpoint.update == self.update)
            .ok_or_else(|| missing(format!("wrote no checkpoint at update {}", self.update)))?;
        Ok(dir.join("checkpoints").join(&checkpoint.hash))
    }
}

impl Checkpoint {
    /// The name results give it (the asset id, or the local folder's name).
    pub fn name(&self) -> String {
        match self {
            Checkpoint::Manifest(id) => id.clone(),
            Checkpoint::Hub(asset) => asset.hf.as_ref().map_or(&asset.id, |hf| &hf.repo).clone(),
            Checkpoint::Local(local) => local.name.clone(),
            Checkpoint::Produced(produced) => produced.name(),
        }
    }

    /// Its files, fetched and verified first for a manifest checkpoint.
    pub fn files(&self, store: &Store) -> Result<ModelFiles, ReferenceError> {
        let paths = match self {
            Checkpoint::Manifest(id) => store.ensure(id)?,
            Checkpoint::Hub(asset) => store.ensure_asset(asset)?,
            Checkpoint::Local(local) => return Ok(local.files.clone()),
            Checkpoint::Produced(produced) => {
                let folder = produced.folder()?;
                return Ok(ModelFiles {
                    config: folder.join("config.json"),
                    weights: folder.join("model.safetensors"),
                    tokenizer: folder.join("tokenizer.json"),
                });
            }
        };
        Ok(ModelFiles {
            config: paths.file("config.json"),
            // An asset lists the weights it publishes: safetensors, or only a torch.save file.
            weights: weights_file(&paths.root.join("files")).unwrap_or_else(|| paths.file("model.safetensors")),
            // And `tokenizer.json`, or only BERT's `vocab.txt` (with its `tokenizer_config.json`).
            tokenizer: tokenizer_file(&paths.root.join("files")).unwrap_or_else(|| paths.file("tokenizer.json")),
        })
    }

    /// Its identity in run keys and signatures: the pinned revision, or the local files' hash.
    pub fn revision(&self, store: &Store) -> Result<String, ReferenceError> {
        match self {
            Checkpoint::Manifest(id) => Ok(store.content_id(id)?),
            // As the manifest's checkpoints: the commit's first 7 hex digits.
            Checkpoint::Hub(asset) => {
                Ok(asset.hf.as_ref().map(|hf| hf.revision.chars().take(7).collect()).unwrap_or_default())
            }
            Checkpoint::Local(local) => Ok(local.revision.clone()),
            // The pre-training's key (which fixes its weights) and the update.
            Checkpoint::Produced(produced) => match produced.location.get() {
                Some((key, _)) => Ok(format!("{key}@{}", produced.update)),
                None => Err(ReferenceError::Pretraining {
                    checkpoint: produced.name(),
                    pretraining: produced.pretraining.clone(),
                    why: "has not been keyed yet".to_owned(),
                }),
            },
        }
    }

    /// The sha256 of each file of a local checkpoint, for result provenance (empty for the
    /// manifest's and the hub's, which the manifest and its lock file pin).
    pub fn hashes(&self) -> BTreeMap<String, String> {
        match self {
            Checkpoint::Manifest(_) | Checkpoint::Hub(_) | Checkpoint::Produced(_) => BTreeMap::new(),
            Checkpoint::Local(local) => {
                local.hashes.iter().map(|(file, hash)| (format!("model/{file}"), hash.clone())).collect()
            }
        }
    }
}

/// A model a search fine-tunes.
#[derive(Debug, Clone)]
pub enum ModelRef {
    /// A checkpoint with HF-format files: the manifest's, the hub's, a local folder or a
    /// pre-training's.
    Checkpoint(Checkpoint),
    /// A tiny random-weight model of [`synthetic::MODELS`], built from the keyed RNG.
    Synthetic {
        /// Its name, one of [`synthetic::MODELS`].
        name: String,
        /// Its encoder configuration.
        config: Box<Config>,
    },
}

impl ModelRef {
    /// The model `name` names: a synthetic model, a hub checkpoint pinned by commit
    /// (`org/name@<commit>`), a local folder (a path starting with `./`, `../` or `/`, resolved
    /// against `base`; `opened` keeps the folders already read), or a checkpoint of `manifest`.
    ///
    /// # Errors
    /// A folder that is not a checkpoint, or a name that is none of these: the message says why
    /// and lists the known names.
    pub fn resolve(
        name: &str,
        base: &Path,
        manifest: &Manifest,
        opened: &mut BTreeMap<PathBuf, Arc<LocalModel>>,
    ) -> Result<ModelRef, ReferenceError> {
        if let Some(config) = synthetic::model_config(name) {
            return Ok(ModelRef::Synthetic { name: name.to_owned(), config: Box::new(config) });
        }
        if is_path(name) {
            let path = if base == Path::new(".") { PathBuf::from(name) } else { base.join(name) };
            // A folder listed twice (or in several experiments) is read and hashed once.
            let key = path.canonicalize().unwrap_or_else(|_| path.clone());
            if let Some(local) = opened.get(&key) {
                return Ok(ModelRef::Checkpoint(Checkpoint::Local(local.clone())));
            }
            let local = Arc::new(LocalModel::open(&path)?);
            opened.insert(key, local.clone());
            return Ok(ModelRef::Checkpoint(Checkpoint::Local(local)));
        }
        if let Some((repo, revision)) = name.split_once('@') {
            let asset = Asset::hub_checkpoint(repo, revision).map_err(ReferenceError::HubName)?;
            // A listed commit that holds no tokenizer the suite reads is refused here, when the
            // spec is read: before any search fetches anything.
            if let Some(Err(err)) = datasets::pin::published_files(repo, revision) {
                return Err(ReferenceError::HubName(err.to_string()));
            }
            return Ok(ModelRef::Checkpoint(Checkpoint::Hub(Arc::new(asset))));
        }
        if manifest.asset(name).is_ok_and(|asset| asset.hf.is_some()) {
            return Ok(ModelRef::Checkpoint(Checkpoint::Manifest(name.to_owned())));
        }
        let known = manifest
            .assets
            .iter()
            .filter(|asset| asset.hf.is_some())
            .map(|asset| asset.id.clone())
            .chain(synthetic::MODELS.iter().map(|name| (*name).to_owned()))
            .collect();
        Err(ReferenceError::UnknownModel { name: name.to_owned(), known })
    }
}

/// Whether a model name is a path (`./`, `../`, `/`): manifest ids never start so.
pub fn is_path(name: &str) -> bool {
    name.starts_with("./") || name.starts_with("../") || name.starts_with('/')
}

/// A task with text: one of the manifest's, or one declared over local files.
#[derive(Debug, Clone)]
pub enum TextTask {
    /// A task of the manifest, its data fetched and verified by the store.
    Manifest(Task),
    /// A task declared over local files ([`datasets::local`]), read and checked when it was
    /// resolved.
    Local(Arc<LocalTask>),
}

/// A task's splits, labels and metric, whichever kind it is.
pub struct TaskSplits<'a> {
    /// The training split.
    pub train: &'a [Example],
    /// In the task's order: the first is the one a run is judged by.
    pub dev: Vec<(String, &'a [Example])>,
    /// The number of classes.
    pub n_labels: usize,
    /// Report F1 of label 1 as well as accuracy (the task's metrics include F1: MRPC, QQP).
    pub with_f1: bool,
}

impl TextTask {
    /// The name results give it.
    pub fn name(&self) -> &str {
        match self {
            TextTask::Manifest(task) => task.name(),
            TextTask::Local(local) => &local.name,
        }
    }

    /// Whether its examples are sentence pairs (MRPC, MNLI) rather than single texts.
    pub fn is_pair(&self) -> bool {
        match self {
            TextTask::Manifest(task) => task.is_pair(),
            TextTask::Local(local) => local.is_pair(),
        }
    }

    /// The number of classes, the classification head's outputs.
    pub fn n_labels(&self) -> usize {
        match self {
            TextTask::Manifest(task) => task.labels().len(),
            TextTask::Local(local) => local.labels.len(),
        }
    }

    /// Makes a manifest task's files available (fetched and verified); a local task was read
    /// when it was resolved.
    pub fn ensure(&self, store: &Store) -> Result<(), datasets::Error> {
        match self {
            TextTask::Manifest(task) => store.ensure(task.asset_id()).map(|_| ()),
            TextTask::Local(_) => Ok(()),
        }
    }

    /// Its identity in run keys and signatures: the data file's hash (manifest), or the hash of
    /// the declaration and the files (local).
    pub fn data_id(&self, store: &Store) -> Result<String, datasets::Error> {
        match self {
            TextTask::Manifest(task) => store.content_id(task.asset_id()),
            TextTask::Local(local) => Ok(local.data_id.clone()),
        }
    }

    /// The sha256 of each file of a local task, for result provenance.
    pub fn hashes(&self) -> BTreeMap<String, String> {
        match self {
            TextTask::Manifest(_) => BTreeMap::new(),
            TextTask::Local(local) => {
                local.hashes.iter().map(|(split, hash)| (format!("task/{split}"), hash.clone())).collect()
            }
        }
    }

    /// Runs `f` on the task's splits (a manifest task is parsed from the store first).
    pub fn with_splits<T>(&self, store: &Store, f: impl FnOnce(TaskSplits) -> T) -> Result<T, datasets::Error> {
        match self {
            TextTask::Manifest(task) => {
                let data = task.load(&store.ensure(task.asset_id())?)?;
                let train = data.split("train").ok_or_else(|| missing_split(*task, "train"))?;
                let mut dev = Vec::new();
                for split in task.dev_splits() {
                    dev.push((split.to_string(), data.split(split).ok_or_else(|| missing_split(*task, split))?));
                }
                Ok(f(TaskSplits {
                    train,
                    dev,
                    n_labels: task.labels().len(),
                    with_f1: task.metrics().contains(&Metric::F1),
                }))
            }
            TextTask::Local(local) => Ok(f(TaskSplits {
                train: &local.train,
                dev: vec![("dev".to_owned(), local.dev.as_slice())],
                n_labels: local.labels.len(),
                with_f1: local.with_f1(),
            })),
        }
    }
}

fn missing_split(task: Task, split: &str) -> datasets::Error {
    datasets::Error::Manifest {
        file: PathBuf::from("datasets/manifest.yaml"),
        message: format!("task `{}` parsed without its `{split}` split", task.name()),
    }
}

/// Whether `name` can name a task the user declares: not a task of the suite, and without the
/// characters that separate fields in signatures, keys and spec paths.
///
/// # Errors
/// The message says which rule the name breaks.
pub fn check_task_name(name: &str) -> Result<(), ReferenceError> {
    let broken = |rule| Err(ReferenceError::TaskName { name: name.to_owned(), rule });
    if name == synthetic::TASK || Task::from_name(name).is_ok() {
        return broken("is a task of the suite: give your task another name");
    }
    if name.is_empty() || name.contains([',', '/', ' ', '|', '@', '.', '[', ']', ':']) {
        return broken("must be non-empty, without , / | @ . [ ] : or spaces");
    }
    Ok(())
}

/// A task a search fine-tunes on.
#[derive(Debug, Clone)]
pub enum TaskRef {
    /// A task with text: the manifest's or one over local files.
    Text(TextTask),
    /// The synthetic bag-of-words task of [`synthetic`].
    Synthetic,
}

impl TaskRef {
    /// The task `name` names: the synthetic task, one of `local` (declared by the spec, or a
    /// task file on the command line), or a task of the manifest.
    ///
    /// # Errors
    /// An unknown name: the message lists the known ones.
    pub fn resolve(name: &str, local: &BTreeMap<String, Arc<LocalTask>>) -> Result<TaskRef, ReferenceError> {
        if name == synthetic::TASK {
            return Ok(TaskRef::Synthetic);
        }
        if let Some(task) = local.get(name) {
            return Ok(TaskRef::Text(TextTask::Local(task.clone())));
        }
        Task::from_name(name).map(|task| TaskRef::Text(TextTask::Manifest(task))).map_err(|_| {
            let known = Task::ALL
                .iter()
                .map(|task| task.name().to_owned())
                .chain(local.keys().cloned())
                .chain([synthetic::TASK.to_owned()])
                .collect();
            ReferenceError::UnknownTask { name: name.to_owned(), known }
        })
    }
}

/// Whether a `--task` value is a task file (`.yaml`, `.yml`) rather than a task's name.
pub fn is_task_file(value: &str) -> bool {
    value.ends_with(".yaml") || value.ends_with(".yml")
}

/// Reads a task file given on the command line (`--task my-task.yaml`): a [`LocalTaskSpec`] in
/// YAML, named by the file's stem, its paths relative to the file's folder.
///
/// # Errors
/// The file cannot be read or parsed, or its task fails its checks.
pub fn load_task_file(path: &Path) -> Result<LocalTask, ReferenceError> {
    let error = |message: String| ReferenceError::TaskFile { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|err| error(err.to_string()))?;
    let spec: LocalTaskSpec = serde_norway::from_str(&text).map_err(|err| error(err.to_string()))?;
    let name = path.file_stem().map_or(String::new(), |stem| stem.to_string_lossy().into_owned());
    check_task_name(&name).map_err(|err| error(format!("the file's name names the task: {err}")))?;
    spec.load(&name, path.parent().unwrap_or(Path::new("."))).map_err(|err| match err {
        datasets::Error::TaskDeclaration { field, message } => error(format!("{field}: {message}")),
        err => ReferenceError::Store(err),
    })
}

/// A model on a task: what one search (and each of its runs) trains.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A checkpoint on a task with text.
    Text {
        /// The checkpoint fine-tuned.
        model: Checkpoint,
        /// The task it is fine-tuned on.
        task: TextTask,
    },
    /// A synthetic model on the synthetic task.
    Synthetic {
        /// The synthetic model's name (one of [`synthetic::MODELS`]).
        model: String,
        /// Its encoder configuration.
        config: Box<Config>,
    },
}

impl Subject {
    /// The pair, if it can run.
    ///
    /// # Errors
    /// A synthetic model on a text task (it has no tokenizer) or a checkpoint on the synthetic
    /// task (it has no text): the message says which.
    pub fn new(model: ModelRef, task: TaskRef) -> Result<Subject, ReferenceError> {
        match (model, task) {
            (ModelRef::Checkpoint(model), TaskRef::Text(task)) => Ok(Subject::Text { model, task }),
            (ModelRef::Synthetic { name, config }, TaskRef::Synthetic) => {
                Ok(Subject::Synthetic { model: name, config })
            }
            (ModelRef::Synthetic { name, .. }, TaskRef::Text(_)) => {
                Err(ReferenceError::Mismatch(format!("`{name}` has no tokenizer: it runs the synthetic task only")))
            }
            (ModelRef::Checkpoint(model), TaskRef::Synthetic) => Err(ReferenceError::Mismatch(format!(
                "the synthetic task needs a synthetic model, not `{}`",
                model.name()
            ))),
        }
    }

    /// The sha256 of every local file the subject reads, for result provenance.
    pub fn input_hashes(&self) -> BTreeMap<String, String> {
        match self {
            Subject::Text { model, task } => model.hashes().into_iter().chain(task.hashes()).collect(),
            Subject::Synthetic { .. } => BTreeMap::new(),
        }
    }
}

/// The tokenizer file a pre-training's `tokenizer` setting names: a file (`*.json`, or BERT's
/// `vocab.txt`; relative to `base`) or a model (a manifest id, `org/name@<commit>`, a local folder)
/// whose tokenizer it is.
/// Errors are [`trainer::Error::Settings`] on the `tokenizer` field.
pub fn pretraining_tokenizer(name: &str, base: &Path, store: &Store) -> Result<PathBuf, trainer::Error> {
    let error = |message: String| trainer::Error::Settings { field: "tokenizer".to_owned(), message };
    if name.ends_with(".json") || Path::new(name).file_name().is_some_and(|file| file == "vocab.txt") {
        let path = base.join(name);
        if !path.is_file() {
            return Err(error(format!("{} is not a file", path.display())));
        }
        return Ok(path);
    }
    let resolved = ModelRef::resolve(name, base, store.manifest(), &mut BTreeMap::new());
    match resolved.map_err(|err| error(err.to_string()))? {
        ModelRef::Checkpoint(checkpoint) => match checkpoint.files(store) {
            Ok(files) => Ok(files.tokenizer),
            Err(ReferenceError::Store(err)) => Err(trainer::Error::Datasets(err)),
            Err(err) => Err(error(err.to_string())),
        },
        ModelRef::Synthetic { .. } => Err(error(format!("`{name}` is a synthetic model, which has no tokenizer"))),
    }
}

/// [`trainer::pretrain::resolve`] with the tokenizer the settings name.
pub fn resolve_pretraining(
    settings: &trainer::pretrain::PretrainSettings,
    base: &Path,
    store: &Store,
    out: &Path,
    device: tch::Device,
) -> Result<trainer::pretrain::Resolved, trainer::Error> {
    let tokenizer = pretraining_tokenizer(&settings.tokenizer, base, store)?;
    trainer::pretrain::resolve(settings, &tokenizer, base, store, out, device)
}
