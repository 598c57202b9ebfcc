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
//!            length_buckets: 16,       # optional: length-bucketed batches (chunks of 16 batches)
//!            train_eval_examples: 1000} # optional: training accuracy on these (default: all)
//! search: {mode: bisect, d_min: 100, d_max: 10000, threshold: 0.9,
//!          every: 4,                   # optional: every 4th grid value
//!          determined_factor: 4}       # optional: widest high/low of a determined d90 (default 4)
//! methods:
//!   full: {method: full, lr: [2.0e-5, 5.0e-5, 1.0e-4], epochs: 3}   # a method may set its epochs
//!   said: {method: said, lr: [0.1, 0.3, 1.0], lr_d0: 1000,          # rates for d = 1000, scaled
//!          lambda_lr: 0.01,                                          # by sqrt(1000 / d); scales' rate
//!          grouping: per_layer, scope: global}
//!   did:  {method: did, lr: [0.1, 0.3, 1.0], scope: per_tensor}
//! tasks:                      # optional: tasks over local files (paths relative to this file)
//!   reviews: {train: reviews.csv, dev_fraction: 0.2, split_seed: 0, text: [text], label: label}
//! experiments:
//!   - name: table1
//!     kind: d90                # what it measures (the default, and so far the only kind)
//!     models: [sentence-transformers/all-MiniLM-L6-v2]   # or ./a-local-folder, org/name@<commit>
//!     tasks: [sst2, mrpc]
//!     methods: [said, did]     # each against the baseline `full` (or `baseline: NAME`)
//!     training: {epochs: 3}    # optional overrides, field by field
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pretrain::{PretrainSettings, checkpoint_updates_of};
use crate::reference::{Checkpoint, ModelRef, Produced, Subject, TaskRef};
use crate::settings::TrainingSpec;
use datasets::local::LocalTaskSpec;
pub use results::search::ExperimentKind;
use results::search::{Method, PretrainingRef, Search, SearchMode, SearchPlan, d_grid_every};
use results::{Compat, LambdaGrouping, Mode, Scope};
use std::sync::Arc;

/// An error in a spec: where (file, line when known, field) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The field's path, e.g. `experiments[1].methods[0]`.
    pub field: String,
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

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    pub mode: Option<SearchMode>,
    pub d_min: Option<usize>,
    pub d_max: Option<usize>,
    /// The fraction of the baseline's best dev metric to reach (the paper: 0.9).
    pub threshold: Option<f64>,
    /// Search every this many grid values (indices `i` with `i mod every = 0`): a coarser grid,
    /// for presets that cannot afford the full one (default 1).
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    pub method: Mode,
    pub lr: Vec<f64>,
    /// The learning rates are for this `d`; at another `d` each is scaled by `sqrt(lr_d0 / d)`
    /// (with Adam the subspace step grows like `lr sqrt(d)`). Absent: the same rates at every `d`.
    pub lr_d0: Option<usize>,
    /// SAID: the learning rate of the scales `lambda` (absent: the rate of `theta`).
    pub lambda_lr: Option<f64>,
    /// Epochs of this method's runs (absent: the experiment's `training.epochs`), e.g. a longer
    /// baseline so that it converges.
    pub epochs: Option<usize>,
    pub scope: Option<Scope>,
    pub grouping: Option<LambdaGrouping>,
    pub compat: Option<Compat>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// `d90` (the default), `trajectory` or `size`.
    #[serde(default)]
    pub kind: ExperimentKind,
    pub name: String,
    /// The models (`d90`, `size`); a `trajectory` has `pretraining` instead.
    #[serde(default)]
    pub models: Vec<String>,
    /// A `trajectory`'s pre-training (a name of the spec's `pretraining:` map).
    pub pretraining: Option<String>,
    /// A `trajectory`'s checkpoints by update (default: every checkpoint of the pre-training).
    pub updates: Option<Vec<usize>>,
    pub tasks: Vec<String>,
    pub methods: Vec<String>,
    pub baseline: Option<String>,
    pub seeds: Option<Vec<u64>>,
    pub training: Option<TrainingSpec>,
    pub search: Option<SearchSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub description: String,
    pub device: Option<String>,
    pub seeds: Option<Vec<u64>>,
    /// Seed of the training subset (`max_train_examples`), the same for every run.
    pub subset_seed: Option<u64>,
    #[serde(default)]
    pub training: TrainingSpec,
    #[serde(default)]
    pub search: SearchSpec,
    pub methods: BTreeMap<String, MethodSpec>,
    /// Tasks over local files, by the name experiments give them (paths relative to the spec's
    /// folder); the manifest's tasks need no declaration.
    #[serde(default)]
    pub tasks: BTreeMap<String, LocalTaskSpec>,
    /// MLM pre-trainings from scratch, by the name experiments give them (`pretrained:<name>`,
    /// `pretraining: <name>`); see `bench_suite::pretrain::PretrainSettings`. Paths are relative
    /// to the spec's folder.
    #[serde(default)]
    pub pretraining: BTreeMap<String, PretrainSettings>,
    pub experiments: Vec<ExperimentSpec>,
}

/// A search of a checked spec: its plan (part of the result's key), the model and task it trains
/// (resolved from the plan's names), and where in the spec it came from (errors found later,
/// against the model's shapes or the assets, point there).
#[derive(Debug, Clone)]
pub struct PlannedSearch {
    pub plan: SearchPlan,
    pub subject: Subject,
    pub origin: Origin,
}

/// The spec location of a search, for errors the runner finds (model shapes, assets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    pub file: PathBuf,
    pub experiment_index: usize,
    /// Positions of the search's model and task in the experiment's lists.
    pub model_index: usize,
    pub task_index: usize,
    text: String,
}

impl Origin {
    /// An error about `field` (relative to the experiment, e.g. `search.d_min`; the top-level
    /// value when the experiment does not set it).
    pub fn error(&self, field: &str, message: String) -> SpecError {
        let experiment_field = format!("experiments[{}].{field}", self.experiment_index);
        let (field, line) = match locate(&self.text, &experiment_field) {
            Some(line) => (experiment_field, Some(line)),
            None => (field.to_owned(), locate(&self.text, field)),
        };
        SpecError { file: self.file.clone(), line, field, message }
    }
}

/// A checked spec: the searches in a fixed order (experiments in file order, then models, tasks,
/// methods), which `--shard` partitions.
#[derive(Debug, Clone)]
pub struct Plan {
    pub description: String,
    pub device: String,
    pub searches: Vec<PlannedSearch>,
}

/// Parses and checks a spec. `text` is the file's content and `file` its name (for errors).
pub fn parse(text: &str, file: &Path) -> Result<Plan, SpecError> {
    refuse_duplicate_keys(text, file)?;
    let spec: SpecFile = serde_norway::from_str(text).map_err(|err| {
        let line = err.location().map(|location| location.line());
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
        SpecError { file: file.to_path_buf(), line, field, message }
    })?;
    check(spec, text, file)
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

/// The 1-based line of the second `key:` of the mapping whose first key is at (`line`, `column`),
/// both 1-based: a block mapping's keys at that column, or a flow mapping's (`{a: 1, a: 2}`).
fn second_key_line(text: &str, line: usize, column: usize, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let starts_with_key = |rest: &str| {
        let rest = rest.trim_start();
        [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|spelled| rest.strip_prefix(spelled.as_str()).is_some_and(|after| after.trim_start().starts_with(':')))
    };
    let first = lines.get(line - 1)?;
    let column_byte = first.char_indices().nth(column - 1).map_or(first.len(), |(idx, _)| idx);
    let brace = if first[column_byte..].starts_with('{') {
        Some(column_byte)
    } else {
        first[..column_byte].trim_end().ends_with('{').then(|| first[..column_byte].rfind('{')).flatten()
    };
    if let Some(brace) = brace {
        // A flow mapping: keys follow `{` or `,` at nesting depth 1.
        let (mut depth, mut seen) = (0usize, 0usize);
        let offset: usize = text.split_inclusive('\n').take(line - 1).map(str::len).sum::<usize>() + brace;
        for (idx, ch) in text[offset..].char_indices() {
            match ch {
                '{' | '[' => depth += 1,
                '}' | ']' => depth = depth.checked_sub(1)?,
                _ => {}
            }
            if depth == 1 && matches!(ch, '{' | ',') && starts_with_key(&text[offset + idx + 1..]) {
                seen += 1;
                if seen == 2 {
                    // The key's own line, which may follow the comma's.
                    let after = &text[offset + idx + 1..];
                    let key_at = offset + idx + 1 + (after.len() - after.trim_start().len());
                    return Some(text[..key_at].matches('\n').count() + 1);
                }
            }
            if depth == 0 {
                return None;
            }
        }
        return None;
    }
    let indent = column - 1;
    let mut seen = usize::from(starts_with_key(&first[column_byte..]));
    for (idx, text) in lines.iter().enumerate().skip(line) {
        let content = text.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let own_indent = text.len() - content.len();
        if own_indent < indent {
            return None;
        }
        if own_indent == indent && starts_with_key(content) {
            seen += 1;
            if seen == 2 {
                return Some(idx + 1);
            }
        }
    }
    None
}

fn check(spec: SpecFile, text: &str, file: &Path) -> Result<Plan, SpecError> {
    let error = |field: &str, message: String| SpecError {
        file: file.to_path_buf(),
        line: locate(text, field),
        field: field.to_owned(),
        message,
    };
    let device = spec.device.clone().unwrap_or_else(|| "cpu".to_owned());
    if !(device == "cpu" || device == "cuda" || device.strip_prefix("cuda:").is_some_and(|n| n.parse::<u32>().is_ok()))
    {
        return Err(error("device", format!("`{device}` is not cpu, cuda or cuda:N")));
    }
    // Paths in the spec (local models and task files) are relative to its folder.
    let base = file.parent().unwrap_or(Path::new("."));
    let mut local_tasks = BTreeMap::new();
    for (name, task) in &spec.tasks {
        let field = format!("tasks.{name}");
        if let Err(message) = crate::reference::check_task_name(name) {
            return Err(error(&field, message));
        }
        let loaded = task.load(name, base).map_err(|err| match err {
            datasets::Error::TaskDeclaration { field: inner, message } => error(&format!("{field}.{inner}"), message),
            err => error(&field, err.to_string()),
        })?;
        local_tasks.insert(name.clone(), Arc::new(loaded));
    }
    let mut pretrainings: BTreeMap<String, Arc<PretrainSettings>> = BTreeMap::new();
    for (name, settings) in &spec.pretraining {
        let field = format!("pretraining.{name}");
        if name.is_empty() || name.contains([',', '/', ' ', '@', ':']) {
            return Err(error(&field, format!("`{name}` must be non-empty, without , / @ : or spaces")));
        }
        crate::pretrain::check_numbers(settings).map_err(|err| match err {
            crate::pretrain::PretrainError::Settings { field: inner, message } => {
                error(&format!("{field}.{inner}"), message)
            }
            err => error(&field, err.to_string()),
        })?;
        pretrainings.insert(name.clone(), Arc::new(settings.clone()));
    }
    // `pretrained:<name>[@<update>]`: a checkpoint of one of the spec's pre-trainings (the last
    // one without an update).
    let produced: BTreeMap<(String, usize), Arc<Produced>> = pretrainings
        .iter()
        .flat_map(|(name, settings)| {
            checkpoint_updates_of(settings.updates, settings.checkpoint_every).into_iter().map(move |update| {
                ((name.clone(), update), Arc::new(Produced::new(name, update, settings.clone(), base)))
            })
        })
        .collect();
    let resolve_produced = |reference: &str| -> Result<Arc<Produced>, String> {
        let (name, update) = match reference.split_once('@') {
            Some((name, update)) => {
                (name, Some(update.parse::<usize>().map_err(|_| format!("`{update}` is not an update number"))?))
            }
            None => (reference, None),
        };
        let Some(settings) = pretrainings.get(name) else {
            let known: Vec<&str> = pretrainings.keys().map(String::as_str).collect();
            return Err(format!(
                "no pre-training `{name}` under `pretraining:` (defined: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ));
        };
        let updates = checkpoint_updates_of(settings.updates, settings.checkpoint_every);
        let update = update.unwrap_or(settings.updates);
        produced.get(&(name.to_owned(), update)).cloned().ok_or_else(|| {
            format!(
                "pre-training `{name}` writes checkpoints at updates {}; {update} is not one",
                updates.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
            )
        })
    };
    let mut opened = BTreeMap::new();
    let mut methods = BTreeMap::new();
    for (name, method) in &spec.methods {
        let field = format!("methods.{name}");
        if method.lr.is_empty() {
            return Err(error(&format!("{field}.lr"), "needs at least one learning rate".to_owned()));
        }
        if let Some(lr) = method.lr.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            return Err(error(&format!("{field}.lr"), format!("{lr} is not a positive learning rate")));
        }
        if method.method == Mode::Full
            && (method.scope.is_some() || method.grouping.is_some() || method.compat.is_some())
        {
            return Err(error(&field, "scope, grouping and compat are for did and said, not full".to_owned()));
        }
        if method.method == Mode::Did && method.grouping.is_some() {
            return Err(error(
                &format!("{field}.grouping"),
                "DID has no scales to group (grouping is for said)".into(),
            ));
        }
        let compat = method.compat.unwrap_or(Compat::None);
        let scope = method.scope.unwrap_or(compat.default_scope());
        let grouping = method.grouping.unwrap_or(compat.default_grouping());
        if compat == Compat::Aghajanyan && (scope != Scope::PerTensor || grouping != LambdaGrouping::PerTensor) {
            return Err(error(
                &format!("{field}.compat"),
                "the aghajanyan compatibility mode is per-tensor: scope and grouping must be per_tensor".to_owned(),
            ));
        }
        if method.method != Mode::Said && method.lambda_lr.is_some() {
            return Err(error(&format!("{field}.lambda_lr"), "only SAID has scales to give a learning rate".into()));
        }
        if let Some(lambda_lr) = method.lambda_lr
            && !(lambda_lr.is_finite() && lambda_lr > 0.0)
        {
            return Err(error(&format!("{field}.lambda_lr"), format!("{lambda_lr} is not a positive learning rate")));
        }
        match (method.method, method.lr_d0) {
            (Mode::Full, Some(_)) => {
                return Err(error(&format!("{field}.lr_d0"), "full fine-tuning has no d to scale by".into()));
            }
            (_, Some(0)) => return Err(error(&format!("{field}.lr_d0"), "must be at least 1".into())),
            _ => {}
        }
        if method.epochs == Some(0) {
            return Err(error(&format!("{field}.epochs"), "must be at least 1".into()));
        }
        let resolved = Method {
            name: name.clone(),
            mode: method.method,
            lrs: method.lr.clone(),
            lr_d0: method.lr_d0,
            lambda_lr: method.lambda_lr,
            epochs: method.epochs,
            scope,
            grouping,
            compat,
        };
        methods.insert(name.clone(), resolved);
    }
    if spec.experiments.is_empty() {
        return Err(error("experiments", "the spec has no experiments".to_owned()));
    }

    let mut searches = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (idx, experiment) in spec.experiments.iter().enumerate() {
        let field = |name: &str| format!("experiments[{idx}].{name}");
        // What each kind expands into: the models its searches fine-tune.
        let model_names: Vec<String> = match experiment.kind {
            ExperimentKind::D90 | ExperimentKind::Size => {
                for (value, what) in
                    [(experiment.pretraining.is_some(), "pretraining"), (experiment.updates.is_some(), "updates")]
                {
                    if value {
                        return Err(error(
                            &field(what),
                            "is for `kind: trajectory`; this experiment lists `models`".to_owned(),
                        ));
                    }
                }
                if experiment.kind == ExperimentKind::Size && experiment.models.len() < 2 {
                    return Err(error(
                        &field("models"),
                        "a size experiment compares models: list at least two".to_owned(),
                    ));
                }
                experiment.models.clone()
            }
            ExperimentKind::Trajectory => {
                if !experiment.models.is_empty() {
                    return Err(error(
                        &field("models"),
                        "a trajectory fine-tunes the checkpoints of its `pretraining`, not `models`".to_owned(),
                    ));
                }
                let Some(name) = &experiment.pretraining else {
                    return Err(error(&field("pretraining"), "a trajectory needs `pretraining: <name>`".to_owned()));
                };
                let settings = pretrainings
                    .get(name)
                    .ok_or_else(|| error(&field("pretraining"), resolve_produced(name).err().unwrap_or_default()))?;
                let all = checkpoint_updates_of(settings.updates, settings.checkpoint_every);
                let updates = experiment.updates.clone().unwrap_or_else(|| all.clone());
                if updates.is_empty() {
                    return Err(error(&field("updates"), "is empty".to_owned()));
                }
                for (index, update) in updates.iter().enumerate() {
                    resolve_produced(&format!("{name}@{update}"))
                        .map_err(|message| error(&format!("{}[{index}]", field("updates")), message))?;
                }
                updates.iter().map(|update| format!("pretrained:{name}@{update}")).collect()
            }
        };
        if !names.insert(experiment.name.as_str()) {
            return Err(error(&field("name"), format!("`{}` names two experiments", experiment.name)));
        }
        if experiment.name.is_empty() || experiment.name.contains([',', '/', ' ']) {
            return Err(error(
                &field("name"),
                format!("`{}` must be non-empty, without , / or spaces", experiment.name),
            ));
        }
        for (list, what) in [(&model_names, "models"), (&experiment.tasks, "tasks"), (&experiment.methods, "methods")] {
            if list.is_empty() {
                return Err(error(&field(what), "is empty".to_owned()));
            }
        }
        let manifest = datasets::manifest::Manifest::embedded();
        let model_field = |index: usize| format!("{}[{index}]", field("models"));
        let models = model_names
            .iter()
            .enumerate()
            .map(|(index, model)| match model.strip_prefix("pretrained:") {
                Some(reference) => resolve_produced(reference)
                    .map(|produced| ModelRef::Checkpoint(Checkpoint::Produced(produced)))
                    .map_err(|message| error(&model_field(index), message)),
                None => ModelRef::resolve(model, base, &manifest, &mut opened)
                    .map_err(|message| error(&model_field(index), message)),
            })
            .collect::<Result<Vec<ModelRef>, SpecError>>()?;
        let tasks = experiment
            .tasks
            .iter()
            .enumerate()
            .map(|(index, task)| {
                TaskRef::resolve(task, &local_tasks)
                    .map_err(|message| error(&format!("{}[{index}]", field("tasks")), message))
            })
            .collect::<Result<Vec<TaskRef>, SpecError>>()?;
        let baseline_name = experiment.baseline.clone().unwrap_or_else(|| "full".to_owned());
        let baseline_field = if experiment.baseline.is_some() { field("baseline") } else { field("name") };
        let baseline = match methods.get(&baseline_name) {
            Some(method) if method.mode == Mode::Full => method.clone(),
            Some(_) => {
                return Err(error(
                    &baseline_field,
                    format!("baseline `{baseline_name}` is not a `method: full` method"),
                ));
            }
            None => {
                return Err(error(
                    &baseline_field,
                    format!("the baseline method `{baseline_name}` is not defined under `methods`"),
                ));
            }
        };
        let mut chosen = Vec::new();
        for (method_idx, name) in experiment.methods.iter().enumerate() {
            let method_field = format!("{}[{method_idx}]", field("methods"));
            match methods.get(name) {
                None => {
                    let known: Vec<&str> = methods.keys().map(String::as_str).collect();
                    return Err(error(
                        &method_field,
                        format!("`{name}` is not defined under `methods` (defined: {})", known.join(", ")),
                    ));
                }
                Some(method) if method.mode == Mode::Full => {
                    return Err(error(
                        &method_field,
                        format!("`{name}` is full fine-tuning, the baseline; searches are for did or said methods"),
                    ));
                }
                Some(method) => chosen.push(method.clone()),
            }
        }

        let training_spec = experiment.training.as_ref().map_or(spec.training.clone(), |own| own.or(&spec.training));
        let training = training_spec.resolve(spec.subset_seed.unwrap_or(0)).map_err(|err| {
            // The experiment's own value if it sets the field, else the top level's.
            let name = format!("training.{}", err.field);
            let path =
                if experiment.training.as_ref().is_some_and(|own| own.is_set(err.field)) { field(&name) } else { name };
            error(&path, format!("{}: {}", err.value, err.message))
        })?;

        let search_spec = experiment.search.as_ref().map_or(spec.search.clone(), |own| own.or(&spec.search));
        let search_field = |name: &str| {
            if experiment.search.as_ref().is_some_and(|own| own.is_set(name)) {
                field(&format!("search.{name}"))
            } else {
                format!("search.{name}")
            }
        };
        let threshold = search_spec.threshold.unwrap_or(0.9);
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(error(&search_field("threshold"), format!("{threshold} is outside (0, 1]")));
        }
        let d_min = search_spec.d_min.unwrap_or(100);
        if let Some(d_max) = search_spec.d_max
            && d_max < d_min
        {
            return Err(error(&search_field("d_max"), format!("{d_max} is below d_min = {d_min}")));
        }
        if let Some(factor) = search_spec.determined_factor
            && !(factor.is_finite() && factor > 1.0)
        {
            return Err(error(&search_field("determined_factor"), format!("{factor} must be a number above 1")));
        }
        if search_spec.every == Some(0) {
            return Err(error(&search_field("every"), "must be at least 1".to_owned()));
        }
        let every = search_spec.every.unwrap_or(1);
        if d_grid_every(d_min, search_spec.d_max.unwrap_or(usize::MAX), every).is_empty() {
            return Err(error(
                &search_field("d_min"),
                format!(
                    "no grid value int(10^(2 + 4i/63)){} lies in [{d_min}, {}]",
                    if every > 1 { format!(" with i a multiple of {every}") } else { String::new() },
                    search_spec.d_max.map_or("10^6".to_owned(), |d| d.to_string())
                ),
            ));
        }
        let search = Search {
            mode: search_spec.mode.unwrap_or(SearchMode::Bisect),
            d_min,
            d_max: search_spec.d_max,
            threshold,
            every: search_spec.every.filter(|&every| every > 1),
            // The default is left out of the plan, so searches keep their keys.
            determined_factor: search_spec.determined_factor.filter(|&factor| factor != Search::DETERMINED_FACTOR),
        };
        let seeds = experiment.seeds.clone().or_else(|| spec.seeds.clone()).unwrap_or_else(|| vec![0]);
        if seeds.is_empty() {
            let seeds_field = if experiment.seeds.is_some() { field("seeds") } else { "seeds".to_owned() };
            return Err(error(&seeds_field, "needs at least one seed".to_owned()));
        }
        for (model_index, model) in models.iter().enumerate() {
            for (task_index, task) in tasks.iter().enumerate() {
                let subject = Subject::new(model.clone(), task.clone())
                    .map_err(|message| error(&model_field(model_index), message))?;
                let origin = Origin {
                    file: file.to_path_buf(),
                    experiment_index: idx,
                    model_index,
                    task_index,
                    text: text.to_owned(),
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
                        seeds: seeds.clone(),
                        training: training.clone(),
                        search: search.clone(),
                        pretraining: match &subject {
                            Subject::Text { model: Checkpoint::Produced(produced), .. } => {
                                Some(PretrainingRef { name: produced.pretraining.clone(), update: produced.update })
                            }
                            _ => None,
                        },
                        kind: experiment.kind,
                    };
                    searches.push(PlannedSearch { plan, subject: subject.clone(), origin: origin.clone() });
                }
            }
        }
    }
    Ok(Plan { description: spec.description, device, searches })
}

/// The 1-based line of a field path (`experiments[1].search.d_min`, `methods.said.lr`) in a YAML
/// text written in block style, by following keys and list items; a path into a flow value
/// (`training: {epochs: 1}`, `tasks: [sst2, mrpc]`) ends on that value's line. `None` when the path
/// is not spelled out (a default).
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |idx: usize| lines[idx].len() - lines[idx].trim_start().len();
    let meaningful = |idx: usize| !lines[idx].trim().is_empty() && !lines[idx].trim_start().starts_with('#');
    let is_item = |idx: usize| lines[idx].trim_start().starts_with("- ");
    // The children of the current node: lines (start, end) and, for a list item, its own line.
    let (mut start, mut end) = (0usize, lines.len());
    let mut item_line: Option<usize> = None;
    let mut found: Option<usize> = None;
    let mut in_flow = false;
    for segment in split_path(path) {
        if in_flow {
            // Inside a flow value: a key must appear on that line; indices stay there.
            if let Segment::Key(key) = &segment
                && !lines[found?].contains(&format!("{key}:"))
            {
                return None;
            }
            continue;
        }
        let children: Vec<usize> = (start..end).filter(|&idx| meaningful(idx)).collect();
        let child_indent = children.first().map(|&idx| indent(idx));
        let line = match &segment {
            Segment::Key(key) => {
                let is_key =
                    |idx: usize| lines[idx].trim_start().trim_start_matches("- ").starts_with(&format!("{key}:"));
                item_line.filter(|&idx| is_key(idx)).or_else(|| {
                    children
                        .iter()
                        .copied()
                        .find(|&idx| Some(indent(idx)) == child_indent && !is_item(idx) && is_key(idx))
                })?
            }
            Segment::Index(index) => {
                let items: Vec<usize> =
                    children.iter().copied().filter(|&idx| Some(indent(idx)) == child_indent && is_item(idx)).collect();
                *items.get(*index)?
            }
        };
        found = Some(line);
        let value = lines[line].trim_start().trim_start_matches("- ").split_once(':').map_or("", |(_, v)| v.trim());
        in_flow = matches!(segment, Segment::Key(_)) && (value.starts_with('{') || value.starts_with('['));
        let own_indent = indent(line);
        end = (line + 1..lines.len()).find(|&idx| meaningful(idx) && indent(idx) <= own_indent).unwrap_or(lines.len());
        start = line + 1;
        item_line = matches!(segment, Segment::Index(_)).then_some(line);
        if matches!(segment, Segment::Key(_)) && is_item(line) {
            // `- key: value` inside an item: its children sit deeper than the item's content.
            let content_indent = own_indent + 2;
            end = (line + 1..lines.len())
                .find(|&idx| meaningful(idx) && indent(idx) <= content_indent)
                .unwrap_or(lines.len());
        }
    }
    found.map(|line| line + 1)
}

enum Segment {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(key, rest)| (key, rest));
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_owned()));
        }
        for index in rest.split('[') {
            if let Ok(index) = index.trim_end_matches(']').parse() {
                segments.push(Segment::Index(index));
            }
        }
    }
    segments
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
            "a trajectory fine-tunes the checkpoints of its `pretraining`, not `models`",
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
