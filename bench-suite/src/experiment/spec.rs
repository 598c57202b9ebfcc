//! Experiment specs: YAML in, a checked [`Plan`] out, before any training starts.
//!
//! A spec names models, tasks and methods, the training settings, learning-rate grids, seeds and
//! the d90 search; [`parse`] rejects unknown keys and malformed values (serde's message, with the
//! YAML line), then checks what can be checked without assets (names, grids, bounds); the runner
//! then checks what needs the model's shapes (`d_min > m` for SAID, `d_max <= D`) and the assets'
//! presence, still before the first step. Every error names the file, the line and the field.
//!
//! ```yaml
//! description: what this preset is for
//! device: cpu                 # cpu | cuda | cuda:N, overridable on the command line
//! seeds: [0, 1, 2]            # every probe runs each seed; success uses the median
//! training: {epochs: 1, batch_size: 32, max_len: 128, max_train_examples: 2000,
//!            length_buckets: 16,       # optional: length-bucketed batches in chunks of 16 (the default; 0: off)
//!            train_eval_examples: 1000} # optional: training accuracy on these (default: all)
//! search: {mode: bisect, d_min: 100, d_max: 10000, threshold: 0.9,
//!          every: 4,                   # optional: every 4th grid value
//!          determined_factor: 4}       # optional: widest high/low of a determined d90 (default 4)
//! methods:
//!   full: {method: full, lr: [2.0e-5, 5.0e-5, 1.0e-4], epochs: 3}   # a method may set its epochs
//!   said: {method: said, lr: [0.1, 0.3, 1.0], lr_d0: 1000,          # rates for d = 1000, scaled
//!          lambda_lr: 0.01,                                          # by sqrt(1000 / d); scales' rate
//!          grouping: per_layer, scope: global,
//!          lr_extend: 2}           # optional: up to 2 more rates where a seed's best is at an end
//!   did:  {method: did, lr: [0.1, 0.3, 1.0], scope: per_tensor}
//!   head: {method: head_only, lr: [1.0e-3, 3.0e-3, 1.0e-2]}        # the task head alone
//! tasks:                      # optional: tasks over local files (paths relative to this file)
//!   reviews: {train: reviews.csv, dev_fraction: 0.2, split_seed: 0, text: [text], label: label}
//! experiments:
//!   - name: table1
//!     kind: d90                # what it measures: d90 (the default), size or trajectory
//!     models: [sentence-transformers/all-MiniLM-L6-v2]   # or ./a-local-folder, org/name@<commit>
//!     tasks: [sst2, mrpc]
//!     methods: [said, did]     # each against the baseline `full` (or `baseline: NAME`)
//!     control: head            # optional: a `method: head_only` method trained beside the baseline
//!     training: {epochs: 3}    # optional overrides, field by field
//!   - name: multiberts
//!     kind: trajectory         # d90 along a pre-training: the spec's own (`pretraining: <name>`),
//!     checkpoints:             # or one published by others, its checkpoints by update
//!       {0: google/multiberts-seed_0-step_0k@<commit>, 60000: google/multiberts-seed_0-step_60k@<commit>}
//!     tasks: [mrpc]
//!     methods: [said]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::yaml_location::{locate, second_key_line};
use crate::reference::{Checkpoint, ModelRef, Produced, Subject, TaskRef};
use crate::settings::TrainingSpec;
use datasets::local::LocalTaskSpec;
pub use results::search::ExperimentKind;
use results::search::{Method, PretrainingRef, Search, SearchMode, SearchPlan, Training, d_grid_every};
use results::{Compat, LambdaGrouping, Mode, Scope};
use std::sync::Arc;
use trainer::pretrain::{PretrainSettings, checkpoint_updates_of};

/// An error in a spec: where (file, line when known, field) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The spec file (a preset's is `bench-suite/presets/<name>.yaml`).
    pub file: PathBuf,
    /// The 1-based line of the field, when the spec writes it (not for a default).
    pub line: Option<usize>,
    /// The field's path, e.g. `experiments[1].methods[0]`.
    pub field: String,
    /// What is wrong and, where one exists, what to write instead.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}: {}", self.file.display(), self.field, self.message),
            None => write!(f, "{}: {}: {}", self.file.display(), self.field, self.message),
        }
    }
}

/// A spec's `search:` settings (top level and per experiment); absent fields take the
/// experiment's, then the spec's, then the protocol's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// `bisect` (ladder, confirm, bisect; the default) or `grid` (every grid value).
    pub mode: Option<SearchMode>,
    /// The smallest d searched (default 100, the paper's grid start).
    pub d_min: Option<usize>,
    /// The largest d searched (default: the grid's end, 10^6, capped by the model's D).
    pub d_max: Option<usize>,
    /// The fraction of the baseline's best dev metric to reach (the paper: 0.9).
    pub threshold: Option<f64>,
    /// Search every this many grid values, counted from the first at or above `d_min`: a coarser
    /// grid, for presets that cannot afford the full one (default 1).
    pub every: Option<usize>,
    /// A d90 is determined when its 95% interval is closed inside the searched range and at most
    /// this factor wide, high / low (default 4; reports read it from the search's plan).
    pub determined_factor: Option<f64>,
}

impl SearchSpec {
    /// Whether this layer sets the field named `field` (as the spec spells it).
    fn is_set(&self, field: &str) -> bool {
        match field {
            "mode" => self.mode.is_some(),
            "d_min" => self.d_min.is_some(),
            "d_max" => self.d_max.is_some(),
            "threshold" => self.threshold.is_some(),
            "every" => self.every.is_some(),
            "determined_factor" => self.determined_factor.is_some(),
            _ => false,
        }
    }

    fn or(&self, base: &SearchSpec) -> SearchSpec {
        SearchSpec {
            mode: self.mode.or(base.mode),
            d_min: self.d_min.or(base.d_min),
            d_max: self.d_max.or(base.d_max),
            threshold: self.threshold.or(base.threshold),
            every: self.every.or(base.every),
            determined_factor: self.determined_factor.or(base.determined_factor),
        }
    }
}

/// A method under a spec's `methods:`, by the name experiments give it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    /// `full` (a baseline), `did` or `said` (searched), or `head_only` (a control).
    pub method: Mode,
    /// The learning-rate grid: every probe trains each rate with each seed.
    pub lr: Vec<f64>,
    /// The learning rates are for this `d`; at another `d` each is scaled by `sqrt(lr_d0 / d)`
    /// (with Adam the subspace step grows like `lr sqrt(d)`). Absent: the same rates at every `d`.
    pub lr_d0: Option<usize>,
    /// d90 searches: while some seed's best run lies at the lowest or the highest rate of a probe,
    /// every seed trains one more rate beyond that end (a step of the grid's ratio there), in at
    /// most this many rounds, so that the rates bracket each seed's best. The grid must increase.
    /// Absent: the grid as given.
    pub lr_extend: Option<usize>,
    /// SAID: the learning rate of the scales `lambda` (absent: the rate of `theta`).
    pub lambda_lr: Option<f64>,
    /// Epochs of this method's runs (absent: the experiment's `training.epochs`), e.g. a longer
    /// baseline so that it converges.
    pub epochs: Option<usize>,
    /// The Fastfood map's scope (default: the compat mode's, `Compat::default_scope`).
    pub scope: Option<Scope>,
    /// SAID's scale grouping (default: the compat mode's, `Compat::default_grouping`).
    pub grouping: Option<LambdaGrouping>,
    /// `none` (the exact method, default) or `aghajanyan` (the authors' code, defects included).
    pub compat: Option<Compat>,
}

/// One experiment of a spec: the models (or a pre-training's checkpoints), tasks and methods
/// whose every combination is a d90 search.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// `d90` (the default), `trajectory` or `size`.
    #[serde(default)]
    pub kind: ExperimentKind,
    /// The experiment's name, unique in the spec (part of each search's key).
    pub name: String,
    /// The models (`d90`, `size`); a `trajectory` has `pretraining` instead.
    #[serde(default)]
    pub models: Vec<String>,
    /// A `trajectory`'s pre-training (a name of the spec's `pretraining:` map).
    pub pretraining: Option<String>,
    /// A `trajectory`'s checkpoints by update (default: every checkpoint of the pre-training).
    pub updates: Option<Vec<usize>>,
    /// A `trajectory` along a pre-training published by others, instead of `pretraining`: its
    /// checkpoints by update, each a model name (`org/name@<commit>`, a manifest id, a local
    /// folder), e.g. the MultiBERTs' `{0: google/multiberts-seed_0-step_0k@<commit>, ...}`. Its
    /// searches carry the experiment's name and the update as their pre-training, so the report
    /// orders them along it; update 0 (the initialisation) is the precondition's reference.
    pub checkpoints: Option<BTreeMap<usize, String>>,
    /// Tasks of the manifest or of the spec's `tasks:`.
    pub tasks: Vec<String>,
    /// The DID or SAID methods searched, by their names under `methods:`.
    pub methods: Vec<String>,
    /// The full fine-tuning method d90 is measured against (default: the method named `full`).
    pub baseline: Option<String>,
    /// A `head_only` method trained beside the baseline as the control of every search: does the
    /// head alone, on the frozen encoder, reach the target? (Default: none.)
    pub control: Option<String>,
    /// The seeds of every probe and of the baseline (default: the spec's, else `[0]`).
    pub seeds: Option<Vec<u64>>,
    /// Training settings over the spec's, field by field.
    pub training: Option<TrainingSpec>,
    /// Search settings over the spec's, field by field.
    pub search: Option<SearchSpec>,
}

/// A spec file as written (YAML, unknown keys refused): [`parse`] checks it into a [`Plan`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// What the spec is for, shown by `reproduce` and in reports.
    pub description: String,
    /// `cpu` (default), `cuda` or `cuda:N`.
    pub device: Option<String>,
    /// The seeds of every experiment that names none (default `[0]`).
    pub seeds: Option<Vec<u64>>,
    /// Seed of the training subset (`max_train_examples`), the same for every run.
    pub subset_seed: Option<u64>,
    /// Training settings of every experiment (each may override them field by field).
    #[serde(default)]
    pub training: TrainingSpec,
    /// Search settings of every experiment (each may override them field by field).
    #[serde(default)]
    pub search: SearchSpec,
    /// The methods experiments refer to, by name.
    pub methods: BTreeMap<String, MethodSpec>,
    /// Tasks over local files, by the name experiments give them (paths relative to the spec's
    /// folder); the manifest's tasks need no declaration.
    #[serde(default)]
    pub tasks: BTreeMap<String, LocalTaskSpec>,
    /// MLM pre-trainings from scratch, by the name experiments give them (`pretrained:<name>`,
    /// `pretraining: <name>`); see `trainer::pretrain::PretrainSettings`. Paths are relative
    /// to the spec's folder.
    #[serde(default)]
    pub pretraining: BTreeMap<String, PretrainSettings>,
    /// The experiments, run in file order.
    pub experiments: Vec<ExperimentSpec>,
}

/// A search of a checked spec: its plan (part of the result's key), the model and task it trains
/// (resolved from the plan's names), and where in the spec it came from (errors found later,
/// against the model's shapes or the assets, point there).
#[derive(Debug, Clone)]
pub struct PlannedSearch {
    /// The resolved search, keyed with the model's and data's identities by the runner.
    pub plan: SearchPlan,
    /// The model and task it fine-tunes.
    pub subject: Subject,
    /// Where in the spec it came from.
    pub origin: Origin,
}

/// The spec location of a search, for errors the runner finds (model shapes, assets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    /// The spec file.
    pub file: PathBuf,
    /// The experiment's position in `experiments`.
    pub experiment_index: usize,
    /// The model's field, relative to the experiment: `models[i]`, or a published trajectory's
    /// `checkpoints.<update>`.
    pub model_field: String,
    /// The position of the search's task in the experiment's `tasks`.
    pub task_index: usize,
    text: String,
}

impl Origin {
    /// An error about `field` (relative to the experiment, e.g. `search.d_min`; the top-level
    /// value when the experiment does not set it). The experiment's own lists (`models`,
    /// `checkpoints`, `tasks`) are always named under it, at the line of the nearest part the
    /// file writes (a list given by a YAML alias has no line of its own per item).
    pub fn error(&self, field: &str, message: String) -> SpecError {
        let experiment_field = format!("experiments[{}].{field}", self.experiment_index);
        if let Some(line) = locate(&self.text, &experiment_field) {
            return SpecError { file: self.file.clone(), line: Some(line), field: experiment_field, message };
        }
        if ["models", "checkpoints", "tasks"].iter().any(|list| field.starts_with(list)) {
            let mut path = experiment_field.as_str();
            let line = loop {
                match path.rfind(['.', '[']) {
                    Some(end) => path = &path[..end],
                    None => break None,
                }
                if let Some(line) = locate(&self.text, path) {
                    break Some(line);
                }
            };
            return SpecError { file: self.file.clone(), line, field: experiment_field, message };
        }
        SpecError { file: self.file.clone(), line: locate(&self.text, field), field: field.to_owned(), message }
    }
}

/// A checked spec: the searches in a fixed order (experiments in file order, then models, tasks,
/// methods), which `--shard` partitions.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The spec's description.
    pub description: String,
    /// Where every run trains: `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// The searches, in the order above.
    pub searches: Vec<PlannedSearch>,
}

/// Parses and checks a spec. `text` is the file's content and `file` its name (for errors).
pub fn parse(text: &str, file: &Path) -> Result<Plan, SpecError> {
    parse_on(text, file, None)
}

/// [`parse`] for `device` where given (`reproduce --device`) instead of the spec's, so that
/// `precision: auto` resolves for the device the runs train on.
pub fn parse_on(text: &str, file: &Path, device: Option<&str>) -> Result<Plan, SpecError> {
    refuse_duplicate_keys(text, file)?;
    let parsed = match merged(text) {
        // Merge keys or `x-` keys: the merged document, written out and read again so that
        // errors name their field (a `Value`'s own errors name none); the field's line is then
        // looked up in the text the user wrote.
        Some(value) => value
            .and_then(|value| serde_norway::to_string(&value))
            .and_then(|merged| serde_norway::from_str(&merged))
            .map_err(|err| (err, false)),
        None => serde_norway::from_str(text).map_err(|err| (err, true)),
    };
    let mut spec: SpecFile = parsed.map_err(|(err, own_lines)| {
        let line = err.location().filter(|_| own_lines).map(|location| location.line());
        // serde's message names the field (`experiments[0]: unknown field `x`, expected ...`).
        let message = err.to_string();
        let (field, message) = match message.split_once(": ") {
            Some((field, rest)) if !field.contains(' ') => (field.to_owned(), rest.to_owned()),
            _ => ("(document)".to_owned(), message),
        };
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_owned(),
            None => message,
        };
        let line = line.or_else(|| locate(text, &field));
        SpecError { file: file.to_path_buf(), line, field, message }
    })?;
    if let Some(device) = device {
        spec.device = Some(device.to_owned());
    }
    check(spec, text, file)
}

/// The document with YAML 1.1 merge keys applied (`<<: *common` copies the keys of the mapping
/// `common` anchors that the mapping does not set itself, as PyYAML and Compose read them) and
/// top-level keys starting with `x-` (Compose's convention for a place to hold anchors) removed;
/// `None` when the text has neither, so that serde reads the text itself and its errors keep
/// their lines.
fn merged(text: &str) -> Option<Result<serde_norway::Value, serde_norway::Error>> {
    let mut value: serde_norway::Value = serde_norway::from_str(text).ok()?;
    fn has_merge_key(value: &serde_norway::Value) -> bool {
        match value {
            serde_norway::Value::Mapping(mapping) => mapping.contains_key("<<") || mapping.values().any(has_merge_key),
            serde_norway::Value::Sequence(sequence) => sequence.iter().any(has_merge_key),
            serde_norway::Value::Tagged(tagged) => has_merge_key(&tagged.value),
            _ => false,
        }
    }
    let holders: Vec<serde_norway::Value> = value
        .as_mapping()?
        .keys()
        .filter(|key| key.as_str().is_some_and(|key| key.starts_with("x-")))
        .cloned()
        .collect();
    if holders.is_empty() && !has_merge_key(&value) {
        return None;
    }
    if let Some(mapping) = value.as_mapping_mut() {
        for key in &holders {
            mapping.remove(key);
        }
    }
    // A merged mapping may bring a merge key of its own (`<<: *b` where `b` merges `a`): one
    // pass per level of such chains.
    for _ in 0..64 {
        if !has_merge_key(&value) {
            break;
        }
        if let Err(err) = value.apply_merge() {
            return Some(Err(err));
        }
    }
    Some(Ok(value))
}

/// A key defined twice in one mapping, anywhere in the document, is an error naming the line of
/// its second definition: serde would otherwise let the second silently win (a map such as
/// `methods`) or stop at a line that is not the duplicate's.
fn refuse_duplicate_keys(text: &str, file: &Path) -> Result<(), SpecError> {
    // serde_norway's `Value` refuses duplicates; its location is the mapping's first key.
    let Err(err) = serde_norway::from_str::<serde_norway::Value>(text) else { return Ok(()) };
    let message = err.to_string();
    let Some(at) = message.find("duplicate entry with key ") else { return Ok(()) };
    let (path, rest) = message.split_at(at);
    let key_text = rest["duplicate entry with key ".len()..].split(" at line ").next().unwrap_or_default();
    let key = key_text.strip_prefix('"').and_then(|key| key.strip_suffix('"')).unwrap_or(key_text).to_owned();
    let mapping_field = path.trim_end_matches(": ");
    let field = if mapping_field.is_empty() { key.clone() } else { format!("{mapping_field}.{key}") };
    let line =
        err.location().map(|mark| second_key_line(text, mark.line(), mark.column(), &key).unwrap_or(mark.line()));
    Err(SpecError {
        file: file.to_path_buf(),
        line,
        field,
        message: format!("the key `{key}` is defined twice in one mapping; keep one definition"),
    })
}

/// Checks a parsed spec and expands it into searches, in steps (ripgrep's "low args to high
/// args"): the device, the local tasks, the pre-trainings, the methods, then each experiment by
/// its kind. Nothing is read but the spec's own local files; the runner checks shapes and assets.
fn check(spec: SpecFile, text: &str, file: &Path) -> Result<Plan, SpecError> {
    let at = Locator { file, text, base: file.parent().unwrap_or(Path::new(".")) };
    let device = at.device(&spec)?;
    let local_tasks = at.local_tasks(&spec)?;
    let pretrainings = at.pretrainings(&spec)?;
    let methods = at.methods(&spec)?;
    if spec.experiments.is_empty() {
        return Err(at.error("experiments", "the spec has no experiments".to_owned()));
    }
    let mut searches = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut opened = BTreeMap::new();
    for (index, experiment) in spec.experiments.iter().enumerate() {
        let inputs = Inputs { spec: &spec, local_tasks: &local_tasks, pretrainings: &pretrainings, methods: &methods };
        let experiment_at = ExperimentAt { at: &at, index, experiment };
        searches.extend(experiment_at.expand(&inputs, &mut names, &mut opened)?);
    }
    Ok(Plan { description: spec.description, device, searches })
}

/// What a spec's errors need: its file, its text (for the line of a field) and its folder (what
/// its relative paths are relative to).
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    base: &'a Path,
}

/// The spec-wide declarations every experiment draws on, checked.
struct Inputs<'a> {
    spec: &'a SpecFile,
    local_tasks: &'a BTreeMap<String, Arc<datasets::local::LocalTask>>,
    pretrainings: &'a Pretrainings,
    methods: &'a BTreeMap<String, Method>,
}

/// The spec's pre-trainings and the checkpoints each writes (`pretrained:<name>@<update>`).
struct Pretrainings {
    settings: BTreeMap<String, Arc<PretrainSettings>>,
    produced: BTreeMap<(String, usize), Arc<Produced>>,
}

impl Pretrainings {
    /// `<name>[@<update>]`: a checkpoint of one of the spec's pre-trainings (the last one without
    /// an update), or why there is none.
    fn resolve(&self, reference: &str) -> Result<Arc<Produced>, String> {
        let (name, update) = match reference.split_once('@') {
            Some((name, update)) => {
                (name, Some(update.parse::<usize>().map_err(|_| format!("`{update}` is not an update number"))?))
            }
            None => (reference, None),
        };
        let Some(settings) = self.settings.get(name) else {
            let known: Vec<&str> = self.settings.keys().map(String::as_str).collect();
            return Err(format!(
                "no pre-training `{name}` under `pretraining:` (defined: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ));
        };
        let updates = checkpoint_updates_of(settings.updates, settings.checkpoint_every);
        let update = update.unwrap_or(settings.updates);
        self.produced.get(&(name.to_owned(), update)).cloned().ok_or_else(|| {
            format!(
                "pre-training `{name}` writes checkpoints at updates {}; {update} is not one",
                updates.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

impl Locator<'_> {
    /// An error about the field at `path` (`methods.said.lr`), at its line when it is written.
    fn error(&self, path: &str, message: String) -> SpecError {
        SpecError { file: self.file.to_path_buf(), line: locate(self.text, path), field: path.to_owned(), message }
    }

    fn device(&self, spec: &SpecFile) -> Result<String, SpecError> {
        let device = spec.device.clone().unwrap_or_else(|| "cpu".to_owned());
        let cuda_n = device.strip_prefix("cuda:").is_some_and(|n| n.parse::<u32>().is_ok());
        if !(device == "cpu" || device == "cuda" || cuda_n) {
            return Err(self.error("device", format!("`{device}` is not cpu, cuda or cuda:N")));
        }
        Ok(device)
    }

    /// The tasks over local files, read and checked (paths relative to the spec's folder).
    fn local_tasks(&self, spec: &SpecFile) -> Result<BTreeMap<String, Arc<datasets::local::LocalTask>>, SpecError> {
        let mut local_tasks = BTreeMap::new();
        for (name, task) in &spec.tasks {
            let field = format!("tasks.{name}");
            if let Err(err) = crate::reference::check_task_name(name) {
                return Err(self.error(&field, err.to_string()));
            }
            let loaded = task.load(name, self.base).map_err(|err| match err {
                datasets::Error::TaskDeclaration { field: inner, message } => {
                    self.error(&format!("{field}.{inner}"), message)
                }
                err => self.error(&field, err.to_string()),
            })?;
            local_tasks.insert(name.clone(), Arc::new(loaded));
        }
        Ok(local_tasks)
    }

    fn pretrainings(&self, spec: &SpecFile) -> Result<Pretrainings, SpecError> {
        let mut settings_by_name: BTreeMap<String, Arc<PretrainSettings>> = BTreeMap::new();
        for (name, settings) in &spec.pretraining {
            let field = format!("pretraining.{name}");
            if name.is_empty() || name.contains([',', '/', ' ', '@', ':']) {
                return Err(self.error(&field, format!("`{name}` must be non-empty, without , / @ : or spaces")));
            }
            trainer::pretrain::check_numbers(settings).map_err(|err| match err {
                trainer::Error::Settings { field: inner, message } => self.error(&format!("{field}.{inner}"), message),
                err => self.error(&field, err.to_string()),
            })?;
            settings_by_name.insert(name.clone(), Arc::new(settings.clone()));
        }
        let produced = settings_by_name
            .iter()
            .flat_map(|(name, settings)| {
                checkpoint_updates_of(settings.updates, settings.checkpoint_every).into_iter().map(move |update| {
                    ((name.clone(), update), Arc::new(Produced::new(name, update, settings.clone(), self.base)))
                })
            })
            .collect();
        Ok(Pretrainings { settings: settings_by_name, produced })
    }

    /// Every method of `methods:`, checked, with the compat mode's scope and grouping where it
    /// names none.
    fn methods(&self, spec: &SpecFile) -> Result<BTreeMap<String, Method>, SpecError> {
        let mut methods = BTreeMap::new();
        for (name, method) in &spec.methods {
            let field = format!("methods.{name}");
            let error = |inner: &str, message: String| self.error(&format!("{field}.{inner}"), message);
            if method.lr.is_empty() {
                return Err(error("lr", "needs at least one learning rate".to_owned()));
            }
            if let Some(lr) = method.lr.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
                return Err(error("lr", format!("{lr} is not a positive learning rate")));
            }
            let subspace_only = method.scope.is_some() || method.grouping.is_some() || method.compat.is_some();
            if method.method.subspace_method().is_none() && subspace_only {
                let message = format!("scope, grouping and compat are for did and said, not {}", method.method);
                return Err(self.error(&field, message));
            }
            if method.method == Mode::Did && method.grouping.is_some() {
                return Err(error("grouping", "DID has no scales to group (grouping is for said)".into()));
            }
            let compat = method.compat.unwrap_or(Compat::None);
            let scope = method.scope.unwrap_or(compat.default_scope());
            let grouping = method.grouping.unwrap_or(compat.default_grouping());
            let per_tensor = scope == Scope::PerTensor && grouping == LambdaGrouping::PerTensor;
            if compat == Compat::Aghajanyan && !per_tensor {
                return Err(error(
                    "compat",
                    "the aghajanyan compatibility mode is per-tensor: scope and grouping must be per_tensor".to_owned(),
                ));
            }
            if method.method != Mode::Said && method.lambda_lr.is_some() {
                return Err(error("lambda_lr", "only SAID has scales to give a learning rate".into()));
            }
            if let Some(lambda_lr) = method.lambda_lr
                && !(lambda_lr.is_finite() && lambda_lr > 0.0)
            {
                return Err(error("lambda_lr", format!("{lambda_lr} is not a positive learning rate")));
            }
            match (method.method, method.lr_d0) {
                (Mode::Full | Mode::HeadOnly, Some(_)) => {
                    return Err(error("lr_d0", format!("{} fine-tuning has no d to scale by", method.method)));
                }
                (_, Some(0)) => return Err(error("lr_d0", "must be at least 1".into())),
                _ => {}
            }
            if method.epochs == Some(0) {
                return Err(error("epochs", "must be at least 1".into()));
            }
            if let Some(extend) = method.lr_extend {
                if method.method.subspace_method().is_none() {
                    let message = format!("{} is not searched over d: only did and said probes extend", method.method);
                    return Err(error("lr_extend", message));
                }
                if extend == 0 {
                    return Err(error("lr_extend", "must be at least 1 (leave it out for the grid as given)".into()));
                }
                if method.lr.len() < 2 || !method.lr.windows(2).all(|pair| pair[0] < pair[1]) {
                    let message = "needs a grid of at least two increasing rates (it steps by the ratio at an end)";
                    return Err(error("lr_extend", message.into()));
                }
            }
            let resolved = Method {
                name: name.clone(),
                mode: method.method,
                lrs: method.lr.clone(),
                lr_d0: method.lr_d0,
                lr_extend: method.lr_extend,
                lambda_lr: method.lambda_lr,
                epochs: method.epochs,
                scope,
                grouping,
                compat,
            };
            methods.insert(name.clone(), resolved);
        }
        Ok(methods)
    }
}

/// One experiment of the spec, with the way its fields are addressed in errors.
struct ExperimentAt<'a> {
    at: &'a Locator<'a>,
    index: usize,
    experiment: &'a ExperimentSpec,
}

impl<'a> ExperimentAt<'a> {
    /// The field of the experiment's `index`-th model, relative to the experiment: `models[i]`,
    /// or a published trajectory's `checkpoints.<update>`.
    fn model_field(&self, index: usize) -> String {
        match &self.experiment.checkpoints {
            Some(checkpoints) => match checkpoints.keys().nth(index) {
                Some(update) => format!("checkpoints.{update}"),
                None => "checkpoints".to_owned(),
            },
            None => format!("models[{index}]"),
        }
    }

    /// The path of the experiment's own field `name` (`experiments[1].models`).
    fn own(&self, name: &str) -> String {
        format!("experiments[{}].{name}", self.index)
    }

    /// The one way a layered field is addressed: the experiment's own value when it sets it,
    /// else the top level's (`search.d_min`).
    fn layered(&self, set_here: bool, name: &str) -> String {
        if set_here { self.own(name) } else { name.to_owned() }
    }

    fn error(&self, path: &str, message: String) -> SpecError {
        self.at.error(path, message)
    }

    /// The experiment's searches: every model and task with every chosen method.
    fn expand(
        &self,
        inputs: &Inputs,
        names: &mut std::collections::BTreeSet<&'a str>,
        opened: &mut BTreeMap<PathBuf, Arc<crate::reference::LocalModel>>,
    ) -> Result<Vec<PlannedSearch>, SpecError> {
        let experiment = self.experiment;
        let model_names = match experiment.kind {
            ExperimentKind::D90 | ExperimentKind::Size => self.listed_models()?,
            ExperimentKind::Trajectory => self.trajectory_models(inputs.pretrainings)?,
        };
        // A published trajectory's updates, in the order of its models.
        let published: Option<Vec<usize>> = experiment.checkpoints.as_ref().map(|map| map.keys().copied().collect());
        if !names.insert(experiment.name.as_str()) {
            return Err(self.error(&self.own("name"), format!("`{}` names two experiments", experiment.name)));
        }
        if experiment.name.is_empty() || experiment.name.contains([',', '/', ' ']) {
            let message = format!("`{}` must be non-empty, without , / or spaces", experiment.name);
            return Err(self.error(&self.own("name"), message));
        }
        for (list, what) in [(&model_names, "models"), (&experiment.tasks, "tasks"), (&experiment.methods, "methods")] {
            if list.is_empty() {
                return Err(self.error(&self.own(what), "is empty".to_owned()));
            }
        }
        let models = self.models(&model_names, inputs.pretrainings, opened)?;
        let tasks = experiment
            .tasks
            .iter()
            .enumerate()
            .map(|(index, task)| {
                TaskRef::resolve(task, inputs.local_tasks)
                    .map_err(|err| self.error(&format!("{}[{index}]", self.own("tasks")), err.to_string()))
            })
            .collect::<Result<Vec<TaskRef>, SpecError>>()?;
        let baseline = self.baseline(inputs.methods)?;
        let control = self.control(inputs.methods)?;
        let chosen = self.chosen_methods(inputs.methods)?;
        let training = self.training(inputs.spec)?;
        let search = self.search(inputs.spec)?;
        let seeds = experiment.seeds.clone().or_else(|| inputs.spec.seeds.clone()).unwrap_or_else(|| vec![0]);
        if seeds.is_empty() {
            let path = self.layered(experiment.seeds.is_some(), "seeds");
            return Err(self.error(&path, "needs at least one seed".to_owned()));
        }
        // A seed listed twice would count its runs twice in every median and move the d90.
        if let Some(seed) = seeds.iter().enumerate().find_map(|(at, seed)| seeds[..at].contains(seed).then_some(seed)) {
            let path = self.layered(experiment.seeds.is_some(), "seeds");
            return Err(self.error(&path, format!("lists seed {seed} twice: each seed is one repeat; list it once")));
        }
        let mut searches = Vec::new();
        for (model_index, model) in models.iter().enumerate() {
            for (task_index, task) in tasks.iter().enumerate() {
                let subject = Subject::new(model.clone(), task.clone())
                    .map_err(|err| self.error(&self.own(&self.model_field(model_index)), err.to_string()))?;
                let origin = Origin {
                    file: self.at.file.to_path_buf(),
                    experiment_index: self.index,
                    model_field: self.model_field(model_index),
                    task_index,
                    text: self.at.text.to_owned(),
                };
                for method in &chosen {
                    let plan = SearchPlan {
                        experiment: experiment.name.clone(),
                        // A local folder is named by its own name (its content is in the key).
                        model: match &subject {
                            Subject::Text { model, .. } => model.name(),
                            Subject::Synthetic { model, .. } => model.clone(),
                        },
                        task: experiment.tasks[task_index].clone(),
                        method: method.clone(),
                        baseline: baseline.clone(),
                        control: control.clone(),
                        seeds: seeds.clone(),
                        training: training.clone(),
                        search: search.clone(),
                        pretraining: match &subject {
                            Subject::Text { model: Checkpoint::Produced(produced), .. } => {
                                Some(PretrainingRef { name: produced.pretraining.clone(), update: produced.update })
                            }
                            _ => published.as_ref().map(|updates| PretrainingRef {
                                name: experiment.name.clone(),
                                update: updates[model_index],
                            }),
                        },
                        kind: experiment.kind,
                    };
                    searches.push(PlannedSearch { plan, subject: subject.clone(), origin: origin.clone() });
                }
            }
        }
        Ok(searches)
    }

    /// A `d90` or `size` experiment's `models` (a size experiment compares two or more).
    fn listed_models(&self) -> Result<Vec<String>, SpecError> {
        let experiment = self.experiment;
        for (set, what) in [
            (experiment.pretraining.is_some(), "pretraining"),
            (experiment.updates.is_some(), "updates"),
            (experiment.checkpoints.is_some(), "checkpoints"),
        ] {
            if set {
                let message = "is for `kind: trajectory`; this experiment lists `models`".to_owned();
                return Err(self.error(&self.own(what), message));
            }
        }
        if experiment.kind == ExperimentKind::Size && experiment.models.len() < 2 {
            let message = "a size experiment compares models: list at least two".to_owned();
            return Err(self.error(&self.own("models"), message));
        }
        Ok(experiment.models.clone())
    }

    /// A `trajectory` experiment's models: the checkpoints of its pre-training at its updates
    /// (default: every checkpoint), as `pretrained:<name>@<update>`.
    fn trajectory_models(&self, pretrainings: &Pretrainings) -> Result<Vec<String>, SpecError> {
        let experiment = self.experiment;
        if !experiment.models.is_empty() {
            let message = "a trajectory fine-tunes the checkpoints of its `pretraining` (or its published \
                           `checkpoints`), not `models`"
                .to_owned();
            return Err(self.error(&self.own("models"), message));
        }
        if let Some(checkpoints) = &experiment.checkpoints {
            for (set, what) in
                [(experiment.pretraining.is_some(), "pretraining"), (experiment.updates.is_some(), "updates")]
            {
                if set {
                    let message =
                        "a trajectory follows its own `pretraining` or published `checkpoints`, not both".to_owned();
                    return Err(self.error(&self.own(what), message));
                }
            }
            if checkpoints.len() < 2 {
                let message = "a trajectory compares checkpoints along a pre-training: list at least two".to_owned();
                return Err(self.error(&self.own("checkpoints"), message));
            }
            // Its searches carry the experiment's name as their pre-training's: one name, one
            // trajectory in the report.
            if pretrainings.settings.contains_key(&experiment.name) {
                let message = format!(
                    "`{}` also names a pre-training under `pretraining:`; a published trajectory is reported under its \
                     experiment's name: rename one",
                    experiment.name
                );
                return Err(self.error(&self.own("name"), message));
            }
            if let Some((update, _)) = checkpoints.iter().find(|(_, name)| name.starts_with("pretrained:")) {
                let message = "is a checkpoint of the spec's own pre-training: follow it with `pretraining:` instead";
                return Err(self.error(&format!("{}.{update}", self.own("checkpoints")), message.to_owned()));
            }
            return Ok(checkpoints.values().cloned().collect());
        }
        let Some(name) = &experiment.pretraining else {
            return Err(self.error(&self.own("pretraining"), "a trajectory needs `pretraining: <name>`".to_owned()));
        };
        let settings = pretrainings.settings.get(name).ok_or_else(|| {
            self.error(&self.own("pretraining"), pretrainings.resolve(name).err().unwrap_or_default())
        })?;
        let all = checkpoint_updates_of(settings.updates, settings.checkpoint_every);
        let updates = experiment.updates.clone().unwrap_or_else(|| all.clone());
        if updates.is_empty() {
            return Err(self.error(&self.own("updates"), "is empty".to_owned()));
        }
        for (index, update) in updates.iter().enumerate() {
            pretrainings
                .resolve(&format!("{name}@{update}"))
                .map_err(|message| self.error(&format!("{}[{index}]", self.own("updates")), message))?;
        }
        Ok(updates.iter().map(|update| format!("pretrained:{name}@{update}")).collect())
    }

    /// Each model name resolved: a checkpoint of the spec's pre-training, or a model reference.
    fn models(
        &self,
        names: &[String],
        pretrainings: &Pretrainings,
        opened: &mut BTreeMap<PathBuf, Arc<crate::reference::LocalModel>>,
    ) -> Result<Vec<ModelRef>, SpecError> {
        let manifest = datasets::manifest::Manifest::embedded();
        let mut models = Vec::new();
        for (index, model) in names.iter().enumerate() {
            let resolved = match model.strip_prefix("pretrained:") {
                Some(reference) => {
                    pretrainings.resolve(reference).map(|produced| ModelRef::Checkpoint(Checkpoint::Produced(produced)))
                }
                None => ModelRef::resolve(model, self.at.base, &manifest, opened).map_err(|err| err.to_string()),
            };
            models.push(resolved.map_err(|message| self.error(&self.own(&self.model_field(index)), message))?);
        }
        Ok(models)
    }

    /// The baseline method (`full` unless the experiment names one), which must be full
    /// fine-tuning.
    fn baseline(&self, methods: &BTreeMap<String, Method>) -> Result<Method, SpecError> {
        let experiment = self.experiment;
        let name = experiment.baseline.clone().unwrap_or_else(|| "full".to_owned());
        let path = if experiment.baseline.is_some() { self.own("baseline") } else { self.own("name") };
        match methods.get(&name) {
            Some(method) if method.mode == Mode::Full => Ok(method.clone()),
            Some(_) => Err(self.error(&path, format!("baseline `{name}` is not a `method: full` method"))),
            None => Err(self.error(&path, format!("the baseline method `{name}` is not defined under `methods`"))),
        }
    }

    /// The head-only control the experiment names, if any: a `method: head_only` method.
    fn control(&self, methods: &BTreeMap<String, Method>) -> Result<Option<Method>, SpecError> {
        let Some(name) = &self.experiment.control else { return Ok(None) };
        match methods.get(name) {
            Some(method) if method.mode == Mode::HeadOnly => Ok(Some(method.clone())),
            Some(_) => {
                Err(self.error(&self.own("control"), format!("control `{name}` is not a `method: head_only` method")))
            }
            None => {
                Err(self
                    .error(&self.own("control"), format!("the control method `{name}` is not defined under `methods`")))
            }
        }
    }

    /// The methods the experiment searches: defined, and DID or SAID.
    fn chosen_methods(&self, methods: &BTreeMap<String, Method>) -> Result<Vec<Method>, SpecError> {
        let mut chosen = Vec::new();
        for (index, name) in self.experiment.methods.iter().enumerate() {
            let path = format!("{}[{index}]", self.own("methods"));
            match methods.get(name) {
                None => {
                    let known: Vec<&str> = methods.keys().map(String::as_str).collect();
                    let message = format!("`{name}` is not defined under `methods` (defined: {})", known.join(", "));
                    return Err(self.error(&path, message));
                }
                Some(method) if method.mode == Mode::Full => {
                    let message =
                        format!("`{name}` is full fine-tuning, the baseline; searches are for did or said methods");
                    return Err(self.error(&path, message));
                }
                Some(method) if method.mode == Mode::HeadOnly => {
                    let message = format!(
                        "`{name}` trains the head alone, a control with no d to search: name it as `control: {name}`"
                    );
                    return Err(self.error(&path, message));
                }
                Some(method) => chosen.push(method.clone()),
            }
        }
        Ok(chosen)
    }

    /// The experiment's training settings over the spec's, resolved ([`TrainingSpec::resolve`]).
    fn training(&self, spec: &SpecFile) -> Result<Training, SpecError> {
        let own = self.experiment.training.as_ref();
        let layered = own.map_or(spec.training.clone(), |own| own.or(&spec.training));
        let device = spec.device.as_deref().unwrap_or("cpu");
        layered.resolve(spec.subset_seed.unwrap_or(0), device).map_err(|err| {
            let path = self.layered(own.is_some_and(|own| own.is_set(err.field)), &format!("training.{}", err.field));
            self.error(&path, format!("{}: {}", err.value, err.message))
        })
    }

    /// The experiment's search settings over the spec's, with the protocol's defaults.
    fn search(&self, spec: &SpecFile) -> Result<Search, SpecError> {
        let own = self.experiment.search.as_ref();
        let layered = own.map_or(spec.search.clone(), |own| own.or(&spec.search));
        let error = |name: &str, message: String| {
            let path = self.layered(own.is_some_and(|own| own.is_set(name)), &format!("search.{name}"));
            self.error(&path, message)
        };
        let threshold = layered.threshold.unwrap_or(0.9);
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(error("threshold", format!("{threshold} is outside (0, 1]")));
        }
        let d_min = layered.d_min.unwrap_or(100);
        if let Some(d_max) = layered.d_max
            && d_max < d_min
        {
            return Err(error("d_max", format!("{d_max} is below d_min = {d_min}")));
        }
        if let Some(factor) = layered.determined_factor
            && !(factor.is_finite() && factor > 1.0)
        {
            return Err(error("determined_factor", format!("{factor} must be a number above 1")));
        }
        if layered.every == Some(0) {
            return Err(error("every", "must be at least 1".to_owned()));
        }
        let every = layered.every.unwrap_or(1);
        if d_grid_every(d_min, layered.d_max.unwrap_or(usize::MAX), every).is_empty() {
            return Err(error(
                "d_min",
                format!(
                    "no grid value int(10^(2 + 4i/63)){} lies in [{d_min}, {}]",
                    if every > 1 { format!(" with i a multiple of {every}") } else { String::new() },
                    layered.d_max.map_or("10^6".to_owned(), |d| d.to_string())
                ),
            ));
        }
        Ok(Search {
            mode: layered.mode.unwrap_or(SearchMode::Bisect),
            d_min,
            d_max: layered.d_max,
            threshold,
            every: layered.every.filter(|&every| every > 1),
            // The default is left out of the plan, so searches keep their keys.
            determined_factor: layered.determined_factor.filter(|&factor| factor != Search::DETERMINED_FACTOR),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use results::Precision;

    const GOOD: &str = "\
description: test
seeds: [0, 1]
training:
  epochs: 2
  max_train_examples: 100
search: {mode: grid, d_min: 200, d_max: 1000}
methods:
  full: {method: full, lr: [1.0e-3]}
  said: {method: said, lr: [0.05, 0.1]}
  did:
    method: did
    lr: [0.2]
experiments:
  - name: first
    models: [synthetic/tiny-bert]
    tasks: [synthetic]
    methods: [said, did]
  - name: second
    models: [synthetic/tiny-roberta, synthetic/tiny-bert]
    tasks: [synthetic]
    methods: [did]
    training:
      epochs: 5
";

    #[test]
    fn a_good_spec_expands_into_searches_in_order() {
        let plan = parse(GOOD, Path::new("good.yaml")).unwrap();
        let summary: Vec<String> = plan
            .searches
            .iter()
            .map(|search| {
                let search = &search.plan;
                format!("{} {} {} {}", search.experiment, search.model, search.method.name, search.training.epochs)
            })
            .collect();
        assert_eq!(
            summary,
            [
                "first synthetic/tiny-bert said 2",
                "first synthetic/tiny-bert did 2",
                "second synthetic/tiny-roberta did 5",
                "second synthetic/tiny-bert did 5"
            ]
        );
        // A trajectory along a published pre-training: its checkpoints in update order, each
        // search carrying the experiment's name and its update.
        let published = GOOD.replace(
            "    models: [synthetic/tiny-bert]\n",
            "    kind: trajectory\n    checkpoints: {60000: synthetic/tiny-roberta, 0: synthetic/tiny-bert}\n",
        );
        let trajectory = parse(&published, Path::new("t.yaml")).unwrap();
        let points: Vec<(String, Option<PretrainingRef>)> = trajectory.searches[..4]
            .iter()
            .map(|search| (search.plan.model.clone(), search.plan.pretraining.clone()))
            .collect();
        let at = |update| Some(PretrainingRef { name: "first".to_owned(), update });
        assert_eq!(
            points,
            [
                ("synthetic/tiny-bert".to_owned(), at(0)),
                ("synthetic/tiny-bert".to_owned(), at(0)),
                ("synthetic/tiny-roberta".to_owned(), at(60000)),
                ("synthetic/tiny-roberta".to_owned(), at(60000)),
            ]
        );
        assert_eq!(trajectory.searches[0].plan.kind, ExperimentKind::Trajectory);
        assert!(trajectory.searches[4..].iter().all(|search| search.plan.pretraining.is_none()));
        // `kind: d90` is the default written out.
        let explicit =
            parse(&GOOD.replace("  - name: first\n", "  - name: first\n    kind: d90\n"), Path::new("k.yaml"));
        assert_eq!(explicit.unwrap().searches.len(), plan.searches.len());
        let first = &plan.searches[0].plan;
        assert_eq!(first.seeds, [0, 1]);
        assert_eq!(first.training.max_train_examples, Some(100));
        assert_eq!(
            first.search,
            Search {
                mode: SearchMode::Grid,
                d_min: 200,
                d_max: Some(1000),
                threshold: 0.9,
                every: None,
                determined_factor: None
            }
        );
        assert_eq!(first.method.grouping, LambdaGrouping::PerLayer);
        assert_eq!(first.baseline.name, "full");
        assert_eq!(plan.device, "cpu");
        assert_eq!(first.training.precision, Precision::F32);
        // bf16 from the spec reaches the plan; f32 plans serialise as they always did.
        let bf16 =
            parse(&GOOD.replacen("  epochs: 2\n", "  epochs: 2\n  precision: bf16\n", 1), Path::new("s.yaml")).unwrap();
        assert_eq!(bf16.searches[0].plan.training.precision, Precision::Bf16);
        assert!(!serde_json::to_string(&first.training).unwrap().contains("precision"));
    }

    /// A `head_only` method is a control named by `control:`, never a searched method; plans
    /// without one serialise as before (their keys are unchanged).
    #[test]
    fn a_head_only_method_is_a_control() {
        let with_head = GOOD.replacen("  did:\n", "  head: {method: head_only, lr: [1.0e-3, 1.0e-2]}\n  did:\n", 1);
        let text = with_head.replacen("    methods: [said, did]\n", "    methods: [said, did]\n    control: head\n", 1);
        let plan = parse(&text, Path::new("c.yaml")).unwrap();
        let control = plan.searches[0].plan.control.as_ref().expect("the first experiment names a control");
        assert_eq!(
            (control.name.as_str(), control.mode, control.lrs.as_slice()),
            ("head", Mode::HeadOnly, &[1e-3, 1e-2][..])
        );
        assert!(plan.searches[2].plan.control.is_none());
        assert!(!serde_json::to_string(&plan.searches[2].plan).unwrap().contains("control"));
        let errors = [
            (
                "    control: head\n",
                "    control: said\n",
                "experiments[0].control",
                "is not a `method: head_only` method",
            ),
            (
                "    control: head\n",
                "    control: probe\n",
                "experiments[0].control",
                "`probe` is not defined under `methods`",
            ),
            (
                "methods: [said, did]\n",
                "methods: [said, head]\n",
                "experiments[0].methods[1]",
                "name it as `control: head`",
            ),
            (
                "lr: [1.0e-3, 1.0e-2]}",
                "lr: [1.0e-3], lr_d0: 100}",
                "methods.head.lr_d0",
                "head_only fine-tuning has no d",
            ),
            ("lr: [1.0e-3, 1.0e-2]}", "lr: [1.0e-3], scope: global}", "methods.head", "not head_only"),
        ];
        for (from, to, field, message) in errors {
            assert!(text.contains(from), "{from}");
            let err = parse(&text.replacen(from, to, 1), Path::new("c.yaml")).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(message), "{err}");
        }
    }

    /// Replaces `from` by `to` in the good spec and checks the error's line, field and message.
    fn check(from: &str, to: &str, line: Option<usize>, field: &str, message: &str) {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        let err = parse(&text, Path::new("bad.yaml")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (line, field), "{err}");
        assert!(err.message.contains(message), "{err}");
        assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
    }

    #[test]
    fn every_error_names_the_file_line_and_field() {
        // Malformed YAML and unknown keys: serde's message, with the field and the line.
        check("    lr: [0.2]", "    lr: [0.2]\n    rate: 3", Some(13), "methods.did", "unknown field `rate`");
        check("  epochs: 2\n", "  epochs: 2\n  epoch: 3\n", Some(5), "training", "unknown field `epoch`");
        check("search: {mode: grid,", "search: {mode: sweep,", Some(6), "search.mode", "unknown variant `sweep`");
        check("  epochs: 2\n", "  epochs: two\n", Some(4), "training.epochs", "invalid type");
        check(
            "  epochs: 2\n",
            "  epochs: 2\n  precision: fp16\n",
            Some(5),
            "training.precision",
            "unknown variant `fp16`",
        );
        // Names that do not exist.
        check(
            "tasks: [synthetic]\n    methods: [said",
            "tasks: [sts]\n    methods: [said",
            Some(16),
            "experiments[0].tasks[0]",
            "`sts` is not a task",
        );
        check(
            "models: [synthetic/tiny-bert]",
            "models: [bert-tiny]",
            Some(15),
            "experiments[0].models[0]",
            "not a model",
        );
        check(
            "methods: [said, did]",
            "methods: [said, lora]",
            Some(17),
            "experiments[0].methods[1]",
            "`lora` is not defined",
        );
        check("methods: [said, did]", "methods: [full]", Some(17), "experiments[0].methods[0]", "baseline");
        // A model and a task that cannot run together, and a kind that does not exist.
        check(
            "models: [synthetic/tiny-bert]\n    tasks: [synthetic]",
            "models: [synthetic/tiny-bert]\n    tasks: [sst2]",
            Some(15),
            "experiments[0].models[0]",
            "`synthetic/tiny-bert` has no tokenizer: it runs the synthetic task only",
        );
        check(
            "  - name: first\n",
            "  - name: first\n    kind: timeline\n",
            Some(15),
            "experiments[0].kind",
            "unknown variant `timeline`, expected one of `d90`, `trajectory`, `size`",
        );
        // A trajectory fine-tunes a pre-training's checkpoints, named by `pretraining`, not
        // `models`; a size experiment compares two or more models; a `pretrained:` model names a
        // pre-training of the spec.
        check(
            "  - name: first\n",
            "  - name: first\n    kind: trajectory\n",
            Some(16),
            "experiments[0].models",
            "a trajectory fine-tunes the checkpoints of its `pretraining` (or its published `checkpoints`), not `models`",
        );
        // A published trajectory lists two or more checkpoints, each a model, and not beside a
        // pre-training.
        let first = "    models: [synthetic/tiny-bert]\n";
        let published = |checkpoints: &str| format!("    kind: trajectory\n    checkpoints: {checkpoints}\n");
        check(first, &published("{0: synthetic/tiny-bert}"), Some(16), "experiments[0].checkpoints", "at least two");
        check(
            first,
            &published("{0: synthetic/tiny-bert, 60000: synthetic/tiny-gpt}"),
            Some(16),
            "experiments[0].checkpoints.60000",
            "`synthetic/tiny-gpt` is not a model",
        );
        check(
            first,
            &published("{0: synthetic/tiny-bert, 10: synthetic/tiny-bert}\n    updates: [0]"),
            Some(17),
            "experiments[0].updates",
            "not both",
        );
        // A published trajectory is reported under its experiment's name, which no pre-training
        // of the spec may also have.
        let tiny = "{model: {model_type: roberta, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, \
                    intermediate_size: 64}, tokenizer: tokenizer.json, corpus: corpus.txt, updates: 40, max_len: 24, \
                    batch_size: 8, lr: 3.0e-3, checkpoint_every: 20}";
        check(
            "experiments:\n  - name: first\n    models: [synthetic/tiny-bert]\n",
            &format!(
                "pretraining:\n  first: {tiny}\nexperiments:\n  - name: first\n{}",
                published("{0: synthetic/tiny-bert, 10: synthetic/tiny-bert}")
            ),
            Some(16),
            "experiments[0].name",
            "also names a pre-training",
        );
        check(
            "  - name: second\n",
            "  - name: second\n    checkpoints: {0: synthetic/tiny-bert, 10: synthetic/tiny-bert}\n",
            Some(19),
            "experiments[1].checkpoints",
            "is for `kind: trajectory`",
        );
        check(
            "  - name: first\n",
            "  - name: first\n    kind: size\n",
            Some(16),
            "experiments[0].models",
            "a size experiment compares models: list at least two",
        );
        check(
            "models: [synthetic/tiny-bert]\n    tasks",
            "models: [pretrained:nothing]\n    tasks",
            Some(15),
            "experiments[0].models[0]",
            "no pre-training `nothing` under `pretraining:` (defined: none)",
        );
        check("  - name: second", "  - name: first", Some(18), "experiments[1].name", "names two experiments");
        // Values out of range.
        check("d_max: 1000}", "d_max: 150}", Some(6), "search.d_max", "below d_min");
        check("d_min: 200, d_max: 1000}", "d_min: 101, d_max: 114}", Some(6), "search.d_min", "no grid value");
        check("lr: [0.05, 0.1]", "lr: []", Some(9), "methods.said.lr", "at least one");
        check("lr: [0.05, 0.1]", "lr: [0.05, -1]", Some(9), "methods.said.lr", "-1 is not a positive");
        check("      epochs: 5", "      epochs: 0", Some(23), "experiments[1].training.epochs", "at least 1");
        check("  epochs: 2\n", "  epochs: 0\n", Some(4), "training.epochs", "at least 1");
        check("seeds: [0, 1]", "seeds: []", Some(2), "seeds", "at least one seed");
        check("seeds: [0, 1]", "seeds: [0, 1, 0]", Some(2), "seeds", "lists seed 0 twice");
        check("description: test", "description: test\ndevice: tpu", Some(2), "device", "`tpu` is not cpu");
        check(
            "    method: did\n",
            "    method: did\n    grouping: per_layer\n",
            Some(12),
            "methods.did.grouping",
            "DID has no scales",
        );
        check(
            "{method: full, lr: [1.0e-3]}",
            "{method: full, lr: [1.0e-3], scope: global}",
            Some(8),
            "methods.full",
            "not full",
        );
        check(
            "said: {method: said, lr: [0.05, 0.1]}",
            "said: {method: said, lr: [0.05, 0.1], compat: aghajanyan, scope: global}",
            Some(9),
            "methods.said.compat",
            "per-tensor",
        );
        let said = "said: {method: said, lr: [0.05, 0.1]}";
        let extend = |to: &str| format!("said: {{method: said, {to}}}");
        check(said, &extend("lr: [0.05, 0.1], lr_extend: 0"), Some(9), "methods.said.lr_extend", "at least 1");
        check(said, &extend("lr: [0.05], lr_extend: 2"), Some(9), "methods.said.lr_extend", "at least two increasing");
        check(said, &extend("lr: [0.1, 0.05], lr_extend: 2"), Some(9), "methods.said.lr_extend", "increasing rates");
        check(
            "{method: full, lr: [1.0e-3]}",
            "{method: full, lr: [1.0e-3, 1.0e-2], lr_extend: 1}",
            Some(8),
            "methods.full.lr_extend",
            "only did and said probes extend",
        );
        let plan =
            parse(&GOOD.replacen(said, &extend("lr: [0.05, 0.1], lr_extend: 2"), 1), Path::new("x.yaml")).unwrap();
        assert_eq!(plan.searches[0].plan.method.lr_extend, Some(2));
    }

    #[test]
    fn a_key_defined_twice_is_refused_at_its_second_line() {
        // Block maps at every depth, list items, flow maps, and the document's root.
        check("  did:\n", "  said: {method: said, lr: [0.5]}\n  did:\n", Some(10), "methods.said", "defined twice");
        check("    lr: [0.2]\n", "    lr: [0.2]\n    method: did\n", Some(13), "methods.did.method", "defined twice");
        check("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n", Some(5), "training.epochs", "defined twice");
        check("{mode: grid,", "{mode: grid, mode: bisect,", Some(6), "search.mode", "defined twice");
        check("{mode: grid,", "{mode: grid,\n  mode: bisect,", Some(7), "search.mode", "defined twice");
        check(
            "    tasks: [synthetic]\n",
            "    tasks: [synthetic]\n    tasks: [sst2]\n",
            Some(17),
            "experiments[0].tasks",
            "defined twice",
        );
        check(
            "description: test\n",
            "description: test\ndescription: again\n",
            Some(2),
            "description",
            "defined twice",
        );
    }

    #[test]
    fn locate_follows_block_and_flow_styles() {
        assert_eq!(locate(GOOD, "description"), Some(1));
        assert_eq!(locate(GOOD, "methods.did.lr"), Some(12));
        assert_eq!(locate(GOOD, "methods.said.lr"), Some(9));
        assert_eq!(locate(GOOD, "experiments[1].models[1]"), Some(19));
        assert_eq!(locate(GOOD, "experiments[1].training.epochs"), Some(23));
        assert_eq!(locate(GOOD, "experiments[0].search.d_min"), None);
        assert_eq!(locate(GOOD, "training.epochs"), Some(4));
        assert_eq!(locate(GOOD, "nothing"), None);
    }
}
